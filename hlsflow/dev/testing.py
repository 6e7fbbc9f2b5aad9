"""`invoke test`: the flow tests run inside the image (where the pinned stack is), the image
tests run on the host against the Docker engine; one summary line counts both."""

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from .. import console
from ..cli import launcher
from ..errors import FlowError
from ..files import REPO_ROOT

RESULTS = REPO_ROOT / "build" / "test-results"


def _workers(default: int, dist: str) -> list:
    """pytest-xdist's options: HLSFLOW_TEST_WORKERS=N overrides the default, 0 runs in one process
    (for a debugger or a single test)."""
    n = os.environ.get("HLSFLOW_TEST_WORKERS", str(default))
    return [] if n in ("0", "1") else ["-n", n, "--dist", dist]


def _command(args, junit: Path) -> list:
    junit.parent.mkdir(parents=True, exist_ok=True)
    junit.unlink(missing_ok=True)
    # The 25 slowest tests close each run: where the suite's minutes go, for whoever speeds it up.
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--durations=25",
            f"--junitxml={junit}", *args]


def _pytest(args, junit: Path) -> int:
    return subprocess.call(_command(args, junit), cwd=REPO_ROOT)


def _counts(junit: Path) -> dict:
    try:
        root = ET.parse(junit).getroot()
    except (OSError, ET.ParseError):
        return {"passed": 0, "failed": 1, "skipped": 0}
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    total = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    failed = total["failures"] + total["errors"]
    return {"passed": total["tests"] - failed - total["skipped"], "failed": failed, "skipped": total["skipped"]}


def run_flow_tests() -> int:
    """pytest on everything but tests/image, in this environment. The tests mostly keep one core
    busy each (TensorFlow, g++, numba), so two workers fill this 2-core machine; a test file stays
    in one worker, so its module fixtures (models converted once) are not built twice."""
    return _pytest(["tests", "--ignore=tests/image", *_workers(os.cpu_count() or 1, "loadfile")],
                   RESULTS / "flow.xml")


def _host_tests(log=None) -> subprocess.Popen:
    # Mostly waiting (on containers, Slurm, a browser): three workers, one per group of files
    # (tests/image/conftest.py groups the files that share Podman or the image tarball).
    cmd = _command(["tests/image", *_workers(3, "loadgroup")], RESULTS / "image.xml")
    return subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT if log else None)


def run_all(host: bool = True, flow: bool = True) -> None:
    if launcher.in_image():
        host = False
    codes, counts, beside = [], [], None
    if host and flow:
        # The image tests wait more than they compute, so they run beside the flow tests; their
        # output goes to a file and is shown once the flow tests end, so the two do not interleave.
        log_path = RESULTS / "image.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(log_path, "w")
        console.step(f"Image tests (host, real Docker engine) started beside the flow tests: {log_path}")
        beside = _host_tests(log)
        log.close()  # the child holds its own descriptor
    try:
        if flow:
            console.step("Flow tests" + ("" if launcher.in_image() else " (inside the toolchain image)"))
            codes.append(run_flow_tests() if launcher.in_image()
                         else launcher.run_checkout_task(["test", "--flow-only"], REPO_ROOT))
            counts.append(_counts(RESULTS / "flow.xml"))
        if host:
            if beside is None:
                console.step("Image tests (host, real Docker engine)")
                codes.append(_host_tests().wait())
            else:
                console.step("Image tests (host, real Docker engine), ran beside the flow tests")
                codes.append(beside.wait())
                beside = None
                sys.stdout.write((RESULTS / "image.log").read_text())
                sys.stdout.flush()
            counts.append(_counts(RESULTS / "image.xml"))
    finally:
        if beside is not None:  # the flow tests were interrupted: stop the image tests too
            beside.terminate()
            beside.wait()
    summary = {k: sum(c[k] for c in counts) for k in ("passed", "failed", "skipped")}
    if any(codes) and summary["failed"] == 0:
        summary["failed"] = 1  # a run that crashed before writing its results still failed
    console.say(f"{summary['passed']} passed, {summary['failed']} failed, {summary['skipped']} skipped")
    if summary["failed"]:
        raise FlowError("Some tests failed: read the failures above.", exit_code=1)
