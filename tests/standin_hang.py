"""What the Vivado stand-in's STANDIN_MODE=hang leaves running: tclsh waiting in the design step,
and one child of it marked `standin-hang <working directory>` in its command line
(tests/standin_xilinx/standin.tcl). A run stopped by its whole process group leaves neither; a
run stopped by killing one process leaves the child, which these helpers find in /proc."""

import contextlib
import re
from pathlib import Path

from waiting import wait_for

HANG_LINE = re.compile(r"STANDIN_MODE=hang: this design step never returns; child (\d+) \(standin-hang (.*)\)")


def descendants(pid: int) -> list:
    """Every process below pid, from /proc (children, then theirs): a tree whose process groups
    differ, as vivado_hls's differs from hlsflow's."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def marked(directory) -> list:
    """The live processes the stand-in's hang mode started in directory (a zombie, dead and not
    yet reaped, has an empty command line: it is not counted)."""
    mark = f"standin-hang {Path(directory).resolve()}".encode()
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if cmdline.read_bytes().split(b"\0")[0] == mark:
                found.append(int(cmdline.parent.name))
    return found


def hang_child(directory):
    """The pid of the child the stand-in says it started in directory (its vivado_hls.log), or None."""
    log = Path(directory) / "vivado_hls.log"
    match = HANG_LINE.search(log.read_text(errors="replace")) if log.is_file() else None
    return int(match.group(1)) if match else None


def wait_hanging(directory, timeout=120) -> int:
    """The child's pid, once the stand-in hangs in directory and its child runs."""
    def running():  # an earlier run's log may name a child long gone
        pid = hang_child(directory)
        return pid if pid in marked(directory) else None

    pid = wait_for(running, timeout, f"the stand-in to hang in {directory}", every=0.2)
    assert marked(directory) == [pid], (pid, marked(directory))
    return pid


def wait_none_left(directory, timeout=30) -> None:
    """Returns once no marked child of a hang in directory lives (a signal takes a moment to land);
    fails naming the survivors."""
    with contextlib.suppress(AssertionError):
        wait_for(lambda: not marked(directory), timeout, "", every=0.2)
    assert marked(directory) == [], f"the stand-in's child outlived its run in {directory}: {marked(directory)}"
