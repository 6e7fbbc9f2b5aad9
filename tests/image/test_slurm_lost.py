"""Slurm jobs lost while a sweep runs, on a real Slurm (tests/image/slurm.py), as in test_slurm.py: a job
killed at its walltime, and a sweep whose session and jobs all ended, started again. A module of its own,
with its own cluster: its waits (a minute of walltime) overlap test_slurm.py's sweeps in another worker.

A host test (it needs the engine and Slurm's daemons): inside the image it is skipped.
"""

import json
import os
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from slurm import (LABEL, REPO, point_logs_started, run_hlsflow, user_env,  # noqa: E402
                   wait_for, write_jobqueue)

STANDIN = REPO / "tests" / "standin_xilinx"

pytestmark = pytest.mark.skipif("1" in (os.environ.get("HLSFLOW_IN_IMAGE"), os.environ.get("HLSFLOW_NATIVE")),
                                reason="a host test: it starts Slurm's daemons and the image's containers")


def test_a_job_out_of_walltime_has_its_point_rerun_in_a_new_job(slurm, shared_dir):
    """One job on the `short` partition (MaxTime 1 minute), asking for 1 minute. Its point's synthesis (the Vivado
    stand-in, each step STANDIN_DELAY long) lasts minutes, so Slurm ends the job mid-point (TIMEOUT); the job the
    sweep submits in its place reads a short delay (the job's python reads it when the job starts) and finishes."""
    delay = shared_dir / "standin-delay"
    delay.write_text("30\n")
    python = (f"docker run --rm --network host --label {LABEL}={slurm.root} -e HOST_UID=$(id -u) "
              f"-e HOST_GID=$(id -g) -e STANDIN_DELAY=$(cat {delay}) -v {shared_dir}:{shared_dir} "
              f"-v {STANDIN}:{STANDIN}:ro {slurm.image} python")
    jobqueue = write_jobqueue(shared_dir, slurm, "short.yml", jobs=1, queue="short", walltime="00:01:00", python=python)
    (shared_dir / "grid-rf8.yml").write_text("ReuseFactor: [8]\n")
    out = shared_dir / "sw-short"
    args = ("sweep", "--model", "models/digits_cnn.keras", "--samples", "models/digits_samples.npz", "--grid",
            "grid-rf8.yml", "--out", out, "--max-samples", "20", "--memory-per-point", "2GB", "--jobqueue", jobqueue,
            "--vivado", STANDIN / "Vivado" / "2018.2", "--synth-all")
    before = set(slurm.jobs_completed())
    with open(shared_dir / "sw-short.stderr", "w+") as errors:
        proc = run_hlsflow(*args, cwd=shared_dir, env=user_env(slurm), stderr=errors)
        try:
            # The first job's worker began the point: its delay is read; the next job's is short.
            wait_for(lambda: point_logs_started(out), 300, "the first job's worker to begin the point")
            delay.write_text("0.05\n")
            stdout, _ = proc.communicate(timeout=900)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=60)
        errors.seek(0)
        stderr = errors.read()
    assert proc.returncode == 0, stdout[-4000:] + stderr[-4000:] + slurm.logs()
    summary = json.loads((out / "sweep.json").read_text())
    jobs = summary["jobs"]
    records = wait_for(lambda: (lambda r: r if set(jobs) <= set(r) else None)(slurm.jobs_completed()), 120,
                        f"Slurm's completion records of jobs {jobs}")
    assert not set(jobs) & before and len(jobs) == 2, (jobs, before)
    assert [records[job]["JobState"] for job in jobs] == ["TIMEOUT", "CANCELLED"], records
    assert {records[job]["Partition"] for job in jobs} == {"short"} and records[jobs[0]]["TimeLimit"] == "1"
    # Killed mid-point, run again in full in the second job. Where the minute ends depends on the
    # machine: in the synthesis, or before it (a container without numba's disk cache compiles the
    # kernels first); a synthesis the first job began is recorded as not finished.
    log = (out / "rf8.log").read_text()
    assert log.count("==== point rf8") == 2, log[-3000:]
    (row,) = summary["points"]
    assert row["job"] == jobs[1] and row["synthesis"] == "ran (TEST DOUBLE, not Vivado)" and row["stand_in"] is True, row
    synth_runs = [r["status"] for r in json.loads((out / "rf8" / "manifest.json").read_text())["runs"]
                  if r["stage"] == "synth"]
    assert synth_runs[-1] == "ok" and "ok" not in synth_runs[:-1] and len(synth_runs) <= 2, synth_runs
    assert any(", 1 lost" in line for line in stdout.splitlines() if line.startswith("sweep: ")), stdout[-3000:]



def test_a_sweep_whose_jobs_all_died_resumes_from_what_is_current(slurm, shared_dir):
    """The sweep's session and all its jobs end after its first point (a login node lost, the jobs
    cancelled): started again, it reuses the finished point and submits a job for the other only."""
    (shared_dir / "grid-resume.yml").write_text("ReuseFactor: [8, 16]\n")
    jobqueue = write_jobqueue(shared_dir, slurm, "resume.yml", jobs=1)
    args = ("sweep", "--model", "models/digits_cnn.keras", "--samples", "models/digits_samples.npz", "--grid",
            "grid-resume.yml", "--out", "sw-resume", "--max-samples", "20", "--memory-per-point", "2GB",
            "--jobqueue", jobqueue)
    with open(shared_dir / "sw-resume.stderr", "w+") as errors:
        proc = run_hlsflow(*args, cwd=shared_dir, env=user_env(slurm), stderr=errors)
        lines = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
        reader.start()
        try:
            wait_for(lambda: any(line.startswith("sweep: 1/2 done") for line in list(lines)), 600,
                      "the first point to finish")
            proc.terminate()  # the session ends; then every job of the sweep's goes too
            proc.wait(timeout=120)
            slurm.command("scancel", "--name", "hlsflow-sweep")
            wait_for(lambda: not slurm.queue() or None, 120, "the sweep's jobs to end")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=60)
    assert proc.returncode != 0
    cut_short = json.loads((shared_dir / "sw-resume" / "sweep.json").read_text())
    assert cut_short["status"] == "running" and not (shared_dir / "sw-resume" / "sweep.csv").exists(), cut_short
    before = set(slurm.jobs_completed())
    again = run_hlsflow(*args, cwd=shared_dir, env=user_env(slurm), timeout=900)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:] + slurm.logs()
    assert "1 current (reused), 1 to run" in again.stdout, again.stdout[-3000:]
    summary = json.loads((shared_dir / "sw-resume" / "sweep.json").read_text())
    assert summary["status"] == "done", summary
    rows = {row["point"]: row for row in summary["points"]}
    assert sorted(row["reused"] for row in rows.values()) == [False, True], rows
    new_jobs = set(summary["jobs"])
    assert new_jobs and not new_jobs & before, (summary["jobs"], before)
    ran = next(row for row in rows.values() if not row["reused"])
    assert ran["job"] in new_jobs and ran["status"] in ("ok", "ruled out"), ran
