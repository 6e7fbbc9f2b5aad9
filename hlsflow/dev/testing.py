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


def _pytest(args, junit: Path) -> int:
    junit.parent.mkdir(parents=True, exist_ok=True)
    junit.unlink(missing_ok=True)
    # The 25 slowest tests close each run: where the suite's minutes go, for whoever speeds it up.
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--durations=25",
           f"--junitxml={junit}", *args]
    return subprocess.call(cmd, cwd=REPO_ROOT)


def _counts(junit: Path) -> dict:
    try:
        root = ET.parse(junit).getroot()
    except (OSError, ET.ParseError):
        return {"passed": 0, "failed": 1, "skipped": 0}
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    total = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    failed = total["failures"] + total["errors"]
    return {"passed": total["tests"] - failed - total["skipped"], "failed": failed, "skipped": total["skipped"]}


def skipped(junit: Path) -> list:
    """The tests junit records as skipped ("file::name: reason")."""
    try:
        root = ET.parse(junit).getroot()
    except (OSError, ET.ParseError):
        return []
    return [f"{case.get('classname', '')}::{case.get('name', '')}: {skip.get('message', '')}"
            for case in root.iter("testcase") for skip in case.findall("skipped")]


def refuse_skips_in_ci(junits, environ=os.environ) -> None:
    """In CI (CI=true, as GitHub and GitLab set it) every test runs: a skip there hides a test that
    proves nothing, so the run fails naming the skipped ones."""
    if environ.get("CI") != "true":
        return
    found = [name for junit in junits for name in skipped(junit)]
    if found:
        shown = "; ".join(found[:5]) + (f"; and {len(found) - 5} more" if len(found) > 5 else "")
        raise FlowError(f"{len(found)} test(s) skipped in CI, where every test must run ({shown}): make them run "
                        "there or remove them.", exit_code=1)


def run_flow_tests() -> int:
    """pytest on everything but tests/image, in this environment. The tests mostly keep one core
    busy each (TensorFlow, g++, numba), so two workers fill this 2-core machine; a test file stays
    in one worker, so its module fixtures (models converted once) are not built twice. The C++
    trees g++ accepted are this run's own (shared by its tests, never by an earlier run's)."""
    import tempfile

    from ..emulator import accepted

    os.environ[accepted.ENV] = tempfile.mkdtemp(prefix="hlsflow-cpp-accepted-")
    return _pytest(["tests", "--ignore=tests/image", *_workers(os.cpu_count() or 1, "loadfile"),
                    "--no-loadscope-reorder"], RESULTS / "flow.xml")  # the order tests/conftest.py sets


def run_all(host: bool = True, flow: bool = True) -> None:
    if launcher.in_image():
        host = False
    codes, counts = [], []
    if flow:
        console.step("Flow tests" + ("" if launcher.in_image() else " (inside the toolchain image)"))
        codes.append(run_flow_tests() if launcher.in_image()
                     else launcher.run_checkout_task(["test", "--flow-only"], REPO_ROOT))
        counts.append(_counts(RESULTS / "flow.xml"))
    if host:
        console.step("Image tests (host, real Docker engine)")
        # Four workers, a test file per worker (its module fixtures, such as the local Slurm, made
        # once): Slurm's waits and the tarball's overlap the rest (3:47-4:00 against 4:26-4:35 on
        # three). Not beside the flow tests: the image tests run flows in containers too, and on 2
        # cores the two together took as long as one after the other (21 minutes).
        workers = [*_workers(4, "loadfile"), "--no-loadscope-reorder"]  # the order tests/conftest.py sets
        codes.append(_pytest(["tests/image", *workers], RESULTS / "image.xml"))
        counts.append(_counts(RESULTS / "image.xml"))
    summary = {k: sum(c[k] for c in counts) for k in ("passed", "failed", "skipped")}
    if any(codes) and summary["failed"] == 0:
        summary["failed"] = 1  # a run that crashed before writing its results still failed
    console.say(f"{summary['passed']} passed, {summary['failed']} failed, {summary['skipped']} skipped")
    if summary["failed"]:
        raise FlowError("Some tests failed: read the failures above.", exit_code=1)
    refuse_skips_in_ci([RESULTS / "flow.xml"] * flow + [RESULTS / "image.xml"] * host)
