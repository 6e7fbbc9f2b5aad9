"""Quiet by default: a process that emulates several times (a sweep's worker, a notebook) prints no
TensorFlow retracing notices; `hlsflow --verbose` (HLSFLOW_VERBOSE=1) shows them again. Each in a
fresh process of its own (TensorFlow warns of retracing only a few times per process): csim on
the tiny CNN with six sample counts, each a new batch shape for Keras's predict."""

import os
import shutil
import subprocess
import sys

from conftest import TESTS_DIR

DATA = TESTS_DIR / "data"
SIX_CSIMS = """
import sys
from hlsflow.cli.program import Executor, Program
from hlsflow.cli.tasks import namespace
for count in (3, 5, 7, 9, 11, 13):
    Program(namespace=namespace, name="hlsflow", binary="hlsflow", executor_class=Executor).run(
        ["hlsflow", "csim", "--model", "tiny_cnn.keras", "--samples", "tiny_samples.npz", "--out", sys.argv[1],
         "--max-samples", str(count)], exit=False)
"""


def six_csims(folder, out: str, **env):
    environment = {k: v for k, v in os.environ.items() if k not in ("HLSFLOW_VERBOSE", "TF_CPP_MIN_LOG_LEVEL")}
    environment.update(HLSFLOW_NATIVE="1", PYTHONPATH=str(TESTS_DIR.parent), **env)
    return subprocess.run([sys.executable, "-c", SIX_CSIMS, out], cwd=folder, env=environment, capture_output=True,
                          text=True, timeout=600)


def test_csim_prints_no_tensorflow_notices_unless_verbose(tmp_path):
    for name in ("tiny_cnn.keras", "tiny_samples.npz"):
        shutil.copy(DATA / name, tmp_path / name)
    quiet = six_csims(tmp_path, "quiet")
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    assert quiet.stdout.count("| top-1 agreement HLS vs Keras |") == 6, quiet.stdout[-3000:]
    assert "retracing" not in quiet.stdout + quiet.stderr, quiet.stderr[-3000:]
    assert "tensorflow" not in quiet.stderr.lower(), quiet.stderr[-3000:]  # nor TensorFlow's C++ start-up lines

    verbose = six_csims(tmp_path, "verbose", HLSFLOW_VERBOSE="1")
    assert verbose.returncode == 0, verbose.stderr[-3000:]
    assert "triggered tf.function retracing" in verbose.stderr  # what the quiet run did not print


def test_sweep_prints_no_dask_lines_unless_verbose(tmp_path):
    """A local Dask cluster of two workers, two points: Dask's own lines (its nanny's "Worker process
    still alive after 4.0 seconds, killing" as the sweep ends) are not printed; --verbose prints them."""
    for name in ("tiny_cnn.keras", "tiny_samples.npz"):
        shutil.copy(DATA / name, tmp_path / name)
    (tmp_path / "grid.yml").write_text("ReuseFactor: [1, 2]\n")
    command = shutil.which("hlsflow")
    environment = {k: v for k, v in os.environ.items() if k != "HLSFLOW_VERBOSE"}
    environment.update(HLSFLOW_NATIVE="1", PYTHONPATH=str(TESTS_DIR.parent))
    runs = {}
    for flags in ((), ("--verbose",)):
        runs[flags] = subprocess.run([command, *flags, "sweep", "--model", "tiny_cnn.keras", "--samples",
                                      "tiny_samples.npz", "--grid", "grid.yml", "--out", f"sweep{len(flags)}/p",
                                      "--workers", "2"], cwd=tmp_path, env=environment, capture_output=True,
                                     text=True, timeout=600)
        assert runs[flags].returncode == 0, runs[flags].stdout[-3000:] + runs[flags].stderr[-3000:]
    quiet, verbose = runs[()], runs[("--verbose",)]
    assert "2/2 done, 0 running, 0 failed" in quiet.stdout
    assert "distributed." not in quiet.stdout + quiet.stderr, quiet.stderr[-3000:]
    assert "distributed.scheduler - INFO" in verbose.stderr  # Dask's own lines, shown when asked for
