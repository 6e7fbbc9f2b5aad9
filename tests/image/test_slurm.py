"""`hlsflow sweep --jobqueue slurm.yml` on a real Slurm (tests/image/slurm.py: munged, slurmctld and
slurmd on this machine), from a user's folder with the host's `hlsflow` command, as a user runs it:
the sweep's container submits with the image's sbatch (the launcher mounts slurm.conf and munge's
socket), each job's `python` runs the toolchain image through the engine, and its worker connects
back over the host's network. Nothing of ours is mocked; every wait is bounded. Jobs lost at their
walltime or all at once: test_slurm_lost.py.

A host test (it needs the engine and Slurm's daemons): inside the image it is skipped.
"""

import csv
import json
import os
import re
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
# The sweep's container and the jobs' workers run one image: a tag of the module's own (slurm.image), so that a
# rebuild of hlsflow:latest meanwhile cannot give them different code.
from slurm import (error_lines, point_logs_started, run_hlsflow, sweep_args,  # noqa: E402
                   user_env, wait_for, write_jobqueue)

POINTS = ("rf2_ap-fixed-16-6", "rf2_ap-fixed-12-5", "rf4_ap-fixed-16-6", "rf4_ap-fixed-12-5")

pytestmark = pytest.mark.skipif("1" in (os.environ.get("HLSFLOW_IN_IMAGE"), os.environ.get("HLSFLOW_NATIVE")),
                                reason="a host test: it starts Slurm's daemons and the image's containers")


@pytest.fixture(scope="module")
def slurm_sweep(slurm, shared_dir):
    """The 4-point sweep on 2 Slurm jobs; one job is cancelled (scancel) while points run."""
    out = shared_dir / "sw-slurm"
    jobqueue = write_jobqueue(shared_dir, slurm)
    errors = open(shared_dir / "sw-slurm.stderr", "w+")
    proc = run_hlsflow(*sweep_args("sw-slurm", "--jobqueue", jobqueue), cwd=shared_dir, env=user_env(slurm),
                       stderr=errors)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)  # read as it is printed
    reader.start()
    try:
        # The sweep says both jobs' workers run and none is lost; Slurm says both jobs run; two points began.
        def both_busy():
            running = sorted((j for j, state in slurm.queue().items() if state == "RUNNING"), key=int)
            said = any(line.rstrip().endswith(" 2 running, 0 lost") for line in list(lines))
            return running if said and len(running) == 2 and len(point_logs_started(out)) >= 2 else None

        running = wait_for(both_busy, 600, "two running jobs with a point each")
        cancelled = running[0]
        slurm.command("scancel", cancelled)
        proc.wait(timeout=1500)
        reader.join(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)
        errors.seek(0)
        stdout, stderr = "".join(lines), errors.read()
        errors.close()
    assert proc.returncode == 0, stdout[-4000:] + stderr[-4000:] + slurm.logs()
    return {"out": out, "stdout": stdout, "stderr": stderr, "cancelled": cancelled,
            "sweep": json.loads((out / "sweep.json").read_text())}


@pytest.fixture(scope="module")
def local_sweep(shared_dir, slurm):
    proc = run_hlsflow(*sweep_args("sw-local", "--workers", "2"), cwd=shared_dir, env=user_env(slurm))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return shared_dir / "sw-local"


def csim_figures(point: Path) -> dict:
    result = json.loads((point / "csim.json").read_text())
    return {k: result[k] for k in ("samples", "top1_agreement", "keras_accuracy", "hls_accuracy", "max_abs_diff",
                                   "mean_abs_diff")}


def tree_hash(point: Path) -> str:
    return json.loads((point / "manifest.json").read_text())["stages"]["convert"]["tree_hash"]


def read_rows(out: Path) -> dict:
    with open(out / "sweep.csv") as f:
        return {row["point"]: row for row in csv.DictReader(f)}


def test_the_sweep_ran_in_slurm_jobs_and_wrote_its_results(slurm, slurm_sweep):
    out, stdout, summary = slurm_sweep["out"], slurm_sweep["stdout"], slurm_sweep["sweep"]
    assert "dask-jobqueue: submitting 2 job(s)" in stdout
    assert set(read_rows(out)) == set(POINTS)
    for name in ("sweep.csv", "sweep.md", "pareto.png"):
        assert (out / name).is_file(), name
    jobs = summary["jobs"]
    assert len(jobs) >= 2, jobs  # and one in place of the cancelled, if it came before the other finished all
    # Every job ended (the sweep cancels its own at the end): Slurm's record of each names it, its partition
    # and the node it ran on.
    records = wait_for(lambda: (lambda r: r if set(jobs) <= set(r) else None)(slurm.jobs_completed()), 120,
                        f"Slurm's completion records of jobs {jobs}")
    for job in jobs:
        assert records[job]["Name"] == "hlsflow-sweep" and records[job]["Partition"] == "main", records[job]
        assert records[job]["NodeList"] == slurm.node, records[job]
    for row in summary["points"]:
        # csim ran at every point (whether the preflight rules a point out depends on the part, not on Slurm).
        assert row["status"] in ("ok", "ruled out") and row["agreement"] is not None and not row["reused"], row
        assert row["job"] in jobs, row
    # Each job's output went beside the sweep, and the closing note names the jobs for sacct.
    assert sorted(p.name for p in (out / "jobs").glob("*.out")), list((out / "jobs").iterdir())
    assert f"sacct -j {','.join(jobs)}" in stdout.strip().splitlines()[-1]
    assert "Traceback" not in slurm_sweep["stderr"]


def test_progress_counts_jobs_pending_running_and_lost(slurm_sweep):
    lines = [line for line in slurm_sweep["stdout"].splitlines() if line.startswith("sweep: ")]
    # Both jobs' workers at work before the cancel; after it, one lost (and a new one pending, then running).
    assert any(re.search(r", jobs: \d pending, 2 running, 0 lost$", line) for line in lines), lines
    assert any(re.search(r", jobs: \d pending, \d running, 1 lost$", line) for line in lines), lines
    assert lines[-1].startswith("sweep: 4/4 done, 0 running, 0 failed"), lines


def test_a_cancelled_job_has_its_point_rerun_in_another_job(slurm, slurm_sweep):
    out, cancelled, summary = slurm_sweep["out"], slurm_sweep["cancelled"], slurm_sweep["sweep"]
    assert slurm.jobs_completed()[cancelled]["JobState"] == "CANCELLED"
    # The point it was running began twice (its log gets a header per run) and finished in another job.
    rerun = [p.stem for p in out.glob("*.log") if p.read_text(errors="replace").count("==== point ") == 2]
    assert rerun, {p.name: p.read_text(errors="replace")[-500:] for p in out.glob("*.log")}
    rows = {row["point"]: row for row in summary["points"]}
    for name in rerun:
        assert rows[name]["job"] != cancelled, rows[name]


def test_slurm_results_equal_a_local_sweep(slurm_sweep, local_sweep):
    slurm_out = slurm_sweep["out"]
    for name in POINTS:
        assert tree_hash(slurm_out / name) == tree_hash(local_sweep / name), name
        assert csim_figures(slurm_out / name) == csim_figures(local_sweep / name), name
    drop = ("seconds", "reused", "job")
    slurm_rows = {r["point"]: {k: v for k, v in r.items() if k not in drop} for r in slurm_sweep["sweep"]["points"]}
    local = json.loads((local_sweep / "sweep.json").read_text())
    assert "jobs" not in local
    assert slurm_rows == {r["point"]: {k: v for k, v in r.items() if k not in drop} for r in local["points"]}


def test_a_missing_partition_or_an_unknown_key_is_one_sentence_before_any_job(slurm, shared_dir):
    before = set(slurm.jobs_completed()) | set(slurm.queue())
    bad_queue = write_jobqueue(shared_dir, slurm, "bad-queue.yml", queue="gpu")
    proc = run_hlsflow(*sweep_args("sw-bad", "--jobqueue", bad_queue), cwd=shared_dir, env=user_env(slurm),
                       timeout=600)
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert error_lines(proc.stderr) == [f"ERROR: queue in {bad_queue} is 'gpu', a partition this Slurm does not "
                                        "have: use one of main, short."]
    bad_key = write_jobqueue(shared_dir, slurm, "bad-key.yml", wall_time="01:00:00")
    proc = run_hlsflow(*sweep_args("sw-bad", "--jobqueue", bad_key), cwd=shared_dir, env=user_env(slurm), timeout=600)
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert error_lines(proc.stderr) == [f"ERROR: wall_time in cluster of {bad_key} is no argument of dask-jobqueue's "
                                        "SLURMCluster: fix or remove it."]
    assert "Traceback" not in proc.stderr
    assert set(slurm.jobs_completed()) | set(slurm.queue()) == before  # nothing was submitted


def test_the_sweep_started_again_reuses_its_points_and_submits_nothing(slurm, shared_dir, slurm_sweep):
    before = set(slurm.jobs_completed()) | set(slurm.queue())
    proc = run_hlsflow(*sweep_args("sw-slurm", "--jobqueue", shared_dir / "slurm.yml"), cwd=shared_dir,
                       env=user_env(slurm), timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "4 current (reused), 0 to run" in proc.stdout and "dask-jobqueue" not in proc.stdout
    assert set(slurm.jobs_completed()) | set(slurm.queue()) == before


