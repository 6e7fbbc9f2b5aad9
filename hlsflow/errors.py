"""The one exception type a user ever sees from the flow."""


class FlowError(Exception):
    """A failure the user can fix: the message is one sentence that says what is wrong
    and what to do. tasks.py turns it into that sentence on stderr and a non-zero exit."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code
