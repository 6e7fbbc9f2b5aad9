"""A bounded wait for the tests: every wait on something outside the test (a worker, a Slurm job)
ends, in an AssertionError that names what never came."""

import time


def wait_for(condition, timeout, what, every=0.5):
    """condition()'s first true value, polled every `every` seconds for at most `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
