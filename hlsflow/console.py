"""Plain terminal output: headings, warnings, errors and a dependency-free progress bar."""

import os
import sys
import time


def verbose() -> bool:
    """`hlsflow --verbose`: TensorFlow's, Dask's and the entrypoint's own log lines are shown."""
    return os.environ.get("HLSFLOW_VERBOSE") == "1"


# Each line is one write (print writes its end apart): lines from two threads (a build's wheels and
# its Debian base) never run into each other.
def say(message: str = "") -> None:
    print(f"{message}\n", end="", flush=True)


def step(message: str) -> None:
    print(f"==> {message}\n", end="", flush=True)


def warn(message: str) -> None:
    print(f"WARNING: {message}\n", end="", file=sys.stderr, flush=True)


def error(message: str) -> None:
    print(f"ERROR: {message}\n", end="", file=sys.stderr, flush=True)


def detail(message: str) -> None:
    """A line that belongs to the warning or error after it: on stderr, to keep them together."""
    print(f"{message}\n", end="", file=sys.stderr, flush=True)


def table(headers, rows) -> str:
    """A Markdown-style table that reads well in a terminal and pastes into a report."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


class Progress:
    """A one-line progress bar on a terminal; periodic plain lines when output is a log."""

    def __init__(self, total: int, label: str, stream=None, plain: bool = False):
        self.total = max(int(total), 1)
        self.label = label
        self.done = 0
        self.start = time.monotonic()
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() and not plain  # plain: lines, as for a log
        self._last_line = -1.0
        self._finished = False

    def advance(self, n: int = 1) -> None:
        self.done = min(self.total, self.done + n)
        elapsed = time.monotonic() - self.start
        if self.tty:
            filled = int(30 * self.done / self.total)
            self.stream.write(
                f"\r{self.label} [{'#' * filled}{'.' * (30 - filled)}] "
                f"{self.done}/{self.total} {elapsed:5.1f}s"
            )
            self.stream.flush()
        elif (elapsed - self._last_line >= 5 and self.done < self.total) or (
                self.done == self.total and not self._finished):
            # An estimate of the total can fall short (docker save streams more than the image
            # size says): the finished line is written once, not for every chunk after it.
            self._finished = self.done == self.total
            self._last_line = elapsed
            self.stream.write(f"{self.label}: {self.done}/{self.total} ({elapsed:.1f}s)\n")
            self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
