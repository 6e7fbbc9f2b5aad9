"""The one exception type a user ever sees from the flow, and the one checker of flag values."""

import errno
import math
import os
import re
import shutil


class FlowError(Exception):
    """A failure the user can fix: the message is one sentence that says what is wrong
    and what to do. cli/program.py turns it into that sentence on stderr and a non-zero exit."""

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


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan  # fails every range check below


def fraction(value, flag: str, example: str = "0.99"):
    """None, or a flag's value as a float in [0, 1]."""
    if value is None:
        return None
    number = _number(value)
    if not 0 <= number <= 1:
        raise FlowError(f"{flag} '{value}' is not a fraction between 0 and 1: give e.g. {example}.")
    return number


def positive_number(value, flag: str, example: str):
    """None, or a flag's value as a finite float above 0."""
    if value is None:
        return None
    number = _number(value)
    if not (0 < number < math.inf):
        raise FlowError(f"{flag} '{value}' is not a positive number: give e.g. {example}.")
    return number


# What a task declares of its flags (cli.flow_task(checks=...)): kind -> (checker, example).
FLAG_KINDS = {
    "count": (whole_number, "100"),
    "fraction": (fraction, "0.99"),
    "seconds": (positive_number, "3600"),
}


# Examples that read better than the kind's own for these flags.
FLAG_EXAMPLES = {"workers": "2", "cross_check": "20", "max_samples": "300", "timeout": "3600"}


def check_flag(value, name: str, kind: str):
    """A flag's value checked and converted by its kind: the one place flags are checked."""
    checker, example = FLAG_KINDS[kind]
    example = FLAG_EXAMPLES.get(name, example)
    flag = "--" + name.replace("_", "-")
    return checker(value, flag, f"{flag} {example}")


def _first_copy_error(exc: OSError) -> OSError:
    """shutil.copytree (hls4ml copies its templates with it) gathers its failures in one
    shutil.Error of (source, destination, text) entries, which keep no errno: the first one, as
    the OSError it was, so that a disk filling during the copy is named like any other."""
    entries = exc.args[0] if isinstance(exc, shutil.Error) and exc.args and isinstance(exc.args[0], list) else []
    for entry in entries:
        found = re.match(r"\[Errno (\d+)\] ([^:]+)", str(entry[2])) if isinstance(entry, tuple) and len(entry) == 3 \
            else None
        if found:
            return OSError(int(found[1]), found[2], entry[1])
    return exc


def from_os_error(exc: OSError, folder=None) -> FlowError:
    """One sentence for an OSError no check foresaw (a full disk, a read-only mount): what the
    system said, and the folder being written (`folder`, else the file's own)."""
    exc = _first_copy_error(exc)
    where = exc.filename or "a file"
    folder = folder or (os.path.dirname(os.path.abspath(exc.filename)) if exc.filename else "the output folder")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return FlowError(f"No space left on the disk of {folder} ({exc.strerror}): free space there (`df -h {folder}`) "
                         "or choose an output folder on another disk, then run again.")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return FlowError(f"Not allowed to write {where} ({exc.strerror}): choose a folder you can write, or fix its "
                         "permissions.")
    return FlowError(f"The system refused an operation on {where} ({exc.strerror or exc}): check that path and run "
                     "again.")
