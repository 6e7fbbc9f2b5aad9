"""The guard `make test` runs over the suite (tests/guard.py, hlsflow/dev/testing.py): every test
asserts, none asserts on wall-clock time, and in CI none is skipped. Each kind it refuses is shown
here on a planted test."""

import subprocess
import sys
import textwrap

import pytest

import guard
from conftest import TESTS_DIR
from hlsflow.dev import testing
from hlsflow.errors import FlowError


def test_every_test_asserts_and_none_reads_the_clock():
    found = guard.check_tree(TESTS_DIR)
    assert found == [], "\n".join(found)
    # It read the suite, helpers included: this very test, and the helpers tests assert through.
    assert "assert_one_sentence" in guard.checking_helpers(
        [guard.ast.parse(p.read_text()) for p in TESTS_DIR.rglob("*.py") if "__pycache__" not in p.parts])


PLANTED = textwrap.dedent('''
    import time
    import pytest
    from waiting import wait_for

    def looks(x):
        return x + 1

    def checks(x):
        assert x == 1

    def checks_through(x):
        checks(x)

    def test_asserts_nothing():
        looks(1)

    def test_asserts_through_two_helpers():
        checks_through(1)

    def test_raises():
        with pytest.raises(ValueError):
            int("x")

    def test_times_itself():
        started = time.monotonic()
        looks(1)
        took = time.monotonic() - started
        assert took < 5

    def test_collects_times():
        arrivals = []
        arrivals.append(time.perf_counter())
        assert arrivals[-1] - arrivals[0] >= 0.45

    def test_waits_with_a_bound():
        deadline = time.monotonic() + 5
        assert wait_for(lambda: True, 5, "something")
''')


def line(text: str) -> int:
    return PLANTED.splitlines().index(text) + 1


def test_a_test_without_an_assertion_is_found():
    found = guard.problems({"planted.py": PLANTED}, {"waiting.py": (TESTS_DIR / "waiting.py").read_text()})
    assert [p for p in found if "asserts nothing" in p] == [
        f"planted.py:{line('def test_asserts_nothing():')}: test_asserts_nothing asserts nothing (directly or "
        "through a named helper)"]


def test_an_assertion_on_wall_clock_time_is_found():
    found = guard.problems({"planted.py": PLANTED}, {"waiting.py": (TESTS_DIR / "waiting.py").read_text()})
    clock = [p.split(" asserts on")[0] for p in found if "wall-clock" in p]
    assert clock == [f"planted.py:{line('    assert took < 5')}: test_times_itself",
                     f"planted.py:{line('    assert arrivals[-1] - arrivals[0] >= 0.45')}: test_collects_times"]


def test_a_skip_in_ci_fails_the_run(tmp_path):
    """A real pytest run of a planted test that skips, with its junit read as `invoke test` reads it."""
    (tmp_path / "test_planted.py").write_text("import pytest\n\n\ndef test_skips():\n"
                                              "    pytest.skip('nothing to run here')\n\n\ndef test_runs():\n"
                                              "    assert True\n")
    junit = tmp_path / "planted.xml"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}",
                           "--rootdir", str(tmp_path), str(tmp_path / "test_planted.py")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert testing.skipped(junit) == ["test_planted::test_skips: nothing to run here"]
    testing.refuse_skips_in_ci([junit], environ={})  # outside CI a skip is reported, not refused
    with pytest.raises(FlowError) as refused:
        testing.refuse_skips_in_ci([junit], environ={"CI": "true"})
    assert str(refused.value) == ("1 test(s) skipped in CI, where every test must run (test_planted::test_skips: "
                                  "nothing to run here): make them run there or remove them.")
    assert refused.value.exit_code == 1
