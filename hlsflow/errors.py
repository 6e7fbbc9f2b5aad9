"""The one exception type a user ever sees from the flow."""


class FlowError(Exception):
    """A failure the user can fix: the message is one sentence that says what is wrong
    and what to do. tasks.py turns it into that sentence on stderr and a non-zero exit."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


def whole_number(value, flag: str, example: str):
    """None, or a flag's value as a positive int; the one sentence for anything else."""
    if value is None:
        return None
    if not (str(value).isdigit() and int(value) >= 1):
        raise FlowError(f"{flag} '{value}' is not a positive whole number: give e.g. {example}.")
    return int(value)
