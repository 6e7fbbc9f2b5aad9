"""The one exception type a user ever sees from the flow, the one grammar of the numbers a user types, and
the one checker of flag values."""

import errno
import math
import numbers
import os
import re
import shutil
import unicodedata
from dataclasses import dataclass


class FlowError(Exception):
    """A failure the user can fix: the message is one sentence that says what is wrong
    and what to do. cli/program.py turns it into that sentence on stderr and a non-zero exit."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


# The one grammar of a number a user types (a flag, or a value in a config or grid file): ASCII
# digits, a sign, a point and an exponent. int() and float() also take other scripts' digits ("٣"),
# "1_000" and blanks around, and float() "nan" and "inf"; int() raises on "²", which isdigit()
# passed. Such a number is never what a flag means: it is refused by the flag's own sentence.
WHOLE = re.compile(r"[+-]?[0-9]+")
DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def as_number(value, whole: bool = False):
    """The int (`whole`) or finite float `value` is written as, else None. A string must be
    written in the grammar above; an int or float (a YAML value, a default) must be finite, and
    whole for `whole`."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, numbers.Real):
        if not math.isfinite(value):
            return None
        if whole:
            return int(value) if float(value).is_integer() else None
        return float(value)
    text = str(value)
    if whole:
        return int(text) if WHOLE.fullmatch(text) else None
    number = float(text) if DECIMAL.fullmatch(text) else math.nan
    return number if math.isfinite(number) else None  # "1e999" is written as a number, but is inf


@dataclass(frozen=True)
class NumberKind:
    """What a numeric flag takes: whole or not, its range, and how its sentence names it."""
    whole: bool
    low: float
    high: float = math.inf
    low_included: bool = True
    what: str = ""
    example: str = ""

    def check(self, value, flag: str, example: str):
        """None, or the value as a number of this kind; else the one sentence, which names the flag."""
        if value is None:
            return None
        number = as_number(value, self.whole)
        if number is None or not (self.low <= number <= self.high) or (number == self.low and not self.low_included):
            raise FlowError(f"{flag} '{value}' is not {self.what}: give e.g. {example}.")
        return number


# What a task declares of its numeric flags (cli.flow_task(checks=...)): every numeric flag of every
# task is one of these, checked by check_flag.
FLAG_KINDS = {
    "count": NumberKind(True, 1, what="a positive whole number", example="100"),
    "fraction": NumberKind(False, 0, 1, what="a fraction between 0 and 1", example="0.99"),
    "share": NumberKind(False, 0, 1, low_included=False, what="a fraction in (0, 1]", example="0.8"),
    "seconds": NumberKind(False, 0, low_included=False, what="a positive number", example="3600"),
    "positive": NumberKind(False, 0, low_included=False, what="a positive number", example="1"),
    "port": NumberKind(True, 1, 65535, what="a port number from 1 to 65535", example="8888"),
}


# Examples that read better than the kind's own for these flags.
FLAG_EXAMPLES = {"workers": "2", "cross_check": "20", "max_samples": "300", "timeout": "3600", "max_error": "0.05",
                 "dsp_margin": "0.8 for 80% of the part", "bram_margin": "0.8 for 80% of the part",
                 "max_points": "500"}


def check_flag(value, name: str, kind: str):
    """A flag's value checked and converted by its kind: the one place numeric flags are checked."""
    flag = "--" + name.replace("_", "-")
    example = FLAG_EXAMPLES.get(name, FLAG_KINDS[kind].example)
    return FLAG_KINDS[kind].check(value, flag, f"{flag} {example}")


def whole_number(value, flag: str, example: str):
    """None, or a flag's value as a positive int; the one sentence for anything else."""
    return FLAG_KINDS["count"].check(value, flag, example)


def fraction(value, flag: str, example: str = "0.99"):
    """None, or a flag's value as a float in [0, 1]."""
    return FLAG_KINDS["fraction"].check(value, flag, example)


def positive_number(value, flag: str, example: str):
    """None, or a flag's value as a finite float above 0."""
    return FLAG_KINDS["positive"].check(value, flag, example)


# Control characters (a newline, a tab, an escape...) end a line of the C++, Tcl and shell scripts
# a path is written into: no path or flag a user means has one.
def control_character(text: str):
    """The first control character in text, named ("a newline", "U+001B"), or None."""
    for char in str(text):
        if unicodedata.category(char) == "Cc":
            return {"\n": "a newline", "\r": "a carriage return", "\t": "a tab"}.get(char, f"U+{ord(char):04X}")
    return None


def check_text(value, what: str) -> None:
    """FlowError naming `what` (a flag, a config key) when its value holds a control character."""
    char = control_character(value) if isinstance(value, (str, os.PathLike)) else None
    if char:
        raise FlowError(f"{what} {str(value)!r} holds {char}: give it without control characters, which break the "
                        "C++, Tcl and shell scripts that paths and values are written into.")


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
