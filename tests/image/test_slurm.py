"""`hlsflow sweep --jobqueue slurm.yml` on a real Slurm (tests/image/slurm.py: munged, slurmctld and
slurmd on this machine), from a user's folder with the host's `hlsflow` command, as a user runs it:
the sweep's container submits with the image's sbatch (the launcher mounts slurm.conf and munge's
socket), each job's `python` runs the toolchain image through the engine, and its worker connects
back over the host's network. Nothing of ours is mocked; every wait is bounded.

A host test (it needs the engine and Slurm's daemons): inside the image it is skipped.
"""

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from slurm import LocalSlurm, missing_reason, skip_or_fail  # noqa: E402
from test_user_project import hlsflow_command  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
STANDIN = REPO / "tests" / "standin_xilinx"
# The sweep's container and the jobs' workers run one image: a tag of this module's own, so that a rebuild of
# hlsflow:latest meanwhile cannot give them different code.
IMAGE = f"hlsflow:test-slurm-{os.getpid()}"
LABEL = "io.hlsflow.test-slurm"
GRID = 'ReuseFactor: [2, 4]\nPrecision: ["ap_fixed<16,6>", "ap_fixed<12,5>"]\n'
POINTS = ("rf2_ap-fixed-16-6", "rf2_ap-fixed-12-5", "rf4_ap-fixed-16-6", "rf4_ap-fixed-12-5")

pytestmark = pytest.mark.skipif("1" in (os.environ.get("HLSFLOW_IN_IMAGE"), os.environ.get("HLSFLOW_NATIVE")),
                                reason="a host test: it starts Slurm's daemons and the image's containers")


def run_hlsflow(*args, cwd, env, timeout=900, stderr=None):
    """The CompletedProcess; with `stderr` (a file), the running Popen, its stdout a pipe to read."""
    cmd = [hlsflow_command(), *map(str, args)]
    if stderr is not None:
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def error_lines(proc_stderr: str) -> list:
    return [line for line in proc_stderr.splitlines() if line.startswith("ERROR:")]


def _wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _engine_reason():
    if not shutil.which("docker"):
        return "the docker command is not installed: the jobs' workers run the image through it"
    proc = subprocess.run(["docker", "tag", "hlsflow:latest", IMAGE], capture_output=True, text=True, timeout=60)
    if proc.returncode:
        return f"no hlsflow:latest on the engine ({proc.stderr.strip()[-200:]}): build it with `make image`"
    return None


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    reason = missing_reason() or _engine_reason()
    if reason:
        skip_or_fail(reason)
    cluster = LocalSlurm(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        # A worker whose job was killed outright could outlive it: remove this module's containers.
        ids = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={LABEL}={cluster.root}"],
                             capture_output=True, text=True).stdout.split()
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)
        subprocess.run(["docker", "rmi", IMAGE], capture_output=True)


@pytest.fixture(scope="module")
def user_dir(tmp_path_factory, slurm):
    """A user's folder (the shared file system: the same path on every node) with the digits CNN."""
    root = tmp_path_factory.mktemp("user")
    (root / "models").mkdir()
    for name in ("digits_cnn.keras", "digits_samples.npz"):
        shutil.copy(REPO / "models" / name, root / "models" / name)
    (root / "grid.yml").write_text(GRID)
    return root


def write_jobqueue(user_dir: Path, slurm: LocalSlurm, name="slurm.yml", jobs=2, **cluster) -> Path:
    """slurm.yml as a user without Apptainer writes it: each job's python is the image's, run through the engine
    with the shared folder at the same path and the host's network (its worker connects back to the sweep)."""
    settings = {"cores": 1, "walltime": "00:30:00", **cluster}
    settings.setdefault("python", f"docker run --rm --network host --label {LABEL}={slurm.root} "
                                  f"-e HOST_UID=$(id -u) -e HOST_GID=$(id -g) -v {user_dir}:{user_dir} {IMAGE} python")
    lines = ["system: slurm", f"jobs: {jobs}", "cluster:"]
    lines += [f"  {key}: {json.dumps(value)}" for key, value in settings.items()]
    path = user_dir / name
    path.write_text("\n".join(lines) + "\n")
    return path


def sweep_args(out, *extra):
    return ("sweep", "--model", "models/digits_cnn.keras", "--samples", "models/digits_samples.npz", "--grid",
            "grid.yml", "--out", out, "--max-samples", "20", "--memory-per-point", "2GB", *extra)


def user_env(slurm, **extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("HLSFLOW_NATIVE", "HLSFLOW_IN_IMAGE", "HLSFLOW_CONFIG", "XILINX_ROOT", "VIVADO_DIR")}
    env.update(slurm.env, HLSFLOW_IMAGE=IMAGE, **extra)
    return env


def point_logs_started(out: Path) -> list:
    return sorted(p for p in out.glob("*.log") if p.read_text(errors="replace").count("==== point "))


@pytest.fixture(scope="module")
def slurm_sweep(slurm, user_dir):
    """The 4-point sweep on 2 Slurm jobs; one job is cancelled (scancel) while points run."""
    out = user_dir / "sw-slurm"
    jobqueue = write_jobqueue(user_dir, slurm)
    errors = open(user_dir / "sw-slurm.stderr", "w+")
    proc = run_hlsflow(*sweep_args("sw-slurm", "--jobqueue", jobqueue), cwd=user_dir, env=user_env(slurm),
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

        running = _wait_for(both_busy, 600, "two running jobs with a point each")
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
def local_sweep(user_dir, slurm):
    proc = run_hlsflow(*sweep_args("sw-local", "--workers", "2"), cwd=user_dir, env=user_env(slurm))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return user_dir / "sw-local"


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
    records = _wait_for(lambda: (lambda r: r if set(jobs) <= set(r) else None)(slurm.jobs_completed()), 120,
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


def test_a_missing_partition_or_an_unknown_key_is_one_sentence_before_any_job(slurm, user_dir):
    before = set(slurm.jobs_completed()) | set(slurm.queue())
    bad_queue = write_jobqueue(user_dir, slurm, "bad-queue.yml", queue="gpu")
    proc = run_hlsflow(*sweep_args("sw-bad", "--jobqueue", bad_queue), cwd=user_dir, env=user_env(slurm),
                       timeout=600)
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert error_lines(proc.stderr) == [f"ERROR: queue in {bad_queue} is 'gpu', a partition this Slurm does not "
                                        "have: use one of main, short."]
    bad_key = write_jobqueue(user_dir, slurm, "bad-key.yml", wall_time="01:00:00")
    proc = run_hlsflow(*sweep_args("sw-bad", "--jobqueue", bad_key), cwd=user_dir, env=user_env(slurm), timeout=600)
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert error_lines(proc.stderr) == [f"ERROR: wall_time in cluster of {bad_key} is no argument of dask-jobqueue's "
                                        "SLURMCluster: fix or remove it."]
    assert "Traceback" not in proc.stderr
    assert set(slurm.jobs_completed()) | set(slurm.queue()) == before  # nothing was submitted


def test_a_job_out_of_walltime_has_its_point_rerun_in_a_new_job(slurm, user_dir):
    """One job on the `short` partition (MaxTime 1 minute), asking for 1 minute. Its point's synthesis (the Vivado
    stand-in, each step STANDIN_DELAY long) lasts minutes, so Slurm ends the job mid-point (TIMEOUT); the job the
    sweep submits in its place reads a short delay (the job's python reads it when the job starts) and finishes."""
    delay = user_dir / "standin-delay"
    delay.write_text("30\n")
    python = (f"docker run --rm --network host --label {LABEL}={slurm.root} -e HOST_UID=$(id -u) "
              f"-e HOST_GID=$(id -g) -e STANDIN_DELAY=$(cat {delay}) -v {user_dir}:{user_dir} "
              f"-v {STANDIN}:{STANDIN}:ro {IMAGE} python")
    jobqueue = write_jobqueue(user_dir, slurm, "short.yml", jobs=1, queue="short", walltime="00:01:00", python=python)
    (user_dir / "grid-rf8.yml").write_text("ReuseFactor: [8]\n")
    out = user_dir / "sw-short"
    args = ("sweep", "--model", "models/digits_cnn.keras", "--samples", "models/digits_samples.npz", "--grid",
            "grid-rf8.yml", "--out", out, "--max-samples", "20", "--memory-per-point", "2GB", "--jobqueue", jobqueue,
            "--vivado", STANDIN / "Vivado" / "2018.2", "--synth-all")
    before = set(slurm.jobs_completed())
    with open(user_dir / "sw-short.stderr", "w+") as errors:
        proc = run_hlsflow(*args, cwd=user_dir, env=user_env(slurm), stderr=errors)
        try:
            # The first job's worker began the point: its delay is read; the next job's is short.
            _wait_for(lambda: point_logs_started(out), 300, "the first job's worker to begin the point")
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
    records = _wait_for(lambda: (lambda r: r if set(jobs) <= set(r) else None)(slurm.jobs_completed()), 120,
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
    assert row["job"] == jobs[1] and row["synthesis"] == "ran" and row["stand_in"] is True, row
    synth_runs = [r["status"] for r in json.loads((out / "rf8" / "manifest.json").read_text())["runs"]
                  if r["stage"] == "synth"]
    assert synth_runs[-1] == "ok" and "ok" not in synth_runs[:-1] and len(synth_runs) <= 2, synth_runs
    assert any(", 1 lost" in line for line in stdout.splitlines() if line.startswith("sweep: ")), stdout[-3000:]


def test_the_sweep_started_again_reuses_its_points_and_submits_nothing(slurm, user_dir, slurm_sweep):
    before = set(slurm.jobs_completed()) | set(slurm.queue())
    proc = run_hlsflow(*sweep_args("sw-slurm", "--jobqueue", user_dir / "slurm.yml"), cwd=user_dir,
                       env=user_env(slurm), timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "4 current (reused), 0 to run" in proc.stdout and "dask-jobqueue" not in proc.stdout
    assert set(slurm.jobs_completed()) | set(slurm.queue()) == before


def test_a_sweep_whose_jobs_all_died_resumes_from_what_is_current(slurm, user_dir):
    """The sweep's session and all its jobs end after its first point (a login node lost, the jobs
    cancelled): started again, it reuses the finished point and submits a job for the other only."""
    (user_dir / "grid-resume.yml").write_text("ReuseFactor: [8, 16]\n")
    jobqueue = write_jobqueue(user_dir, slurm, "resume.yml", jobs=1)
    args = ("sweep", "--model", "models/digits_cnn.keras", "--samples", "models/digits_samples.npz", "--grid",
            "grid-resume.yml", "--out", "sw-resume", "--max-samples", "20", "--memory-per-point", "2GB",
            "--jobqueue", jobqueue)
    with open(user_dir / "sw-resume.stderr", "w+") as errors:
        proc = run_hlsflow(*args, cwd=user_dir, env=user_env(slurm), stderr=errors)
        lines = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
        reader.start()
        try:
            _wait_for(lambda: any(line.startswith("sweep: 1/2 done") for line in list(lines)), 600,
                      "the first point to finish")
            proc.terminate()  # the session ends; then every job of the sweep's goes too
            proc.wait(timeout=120)
            slurm.command("scancel", "--name", "hlsflow-sweep")
            _wait_for(lambda: not slurm.queue() or None, 120, "the sweep's jobs to end")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=60)
    assert proc.returncode != 0
    cut_short = json.loads((user_dir / "sw-resume" / "sweep.json").read_text())
    assert cut_short["status"] == "running" and not (user_dir / "sw-resume" / "sweep.csv").exists(), cut_short
    before = set(slurm.jobs_completed())
    again = run_hlsflow(*args, cwd=user_dir, env=user_env(slurm), timeout=900)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:] + slurm.logs()
    assert "1 current (reused), 1 to run" in again.stdout, again.stdout[-3000:]
    summary = json.loads((user_dir / "sw-resume" / "sweep.json").read_text())
    assert summary["status"] == "done", summary
    rows = {row["point"]: row for row in summary["points"]}
    assert sorted(row["reused"] for row in rows.values()) == [False, True], rows
    new_jobs = set(summary["jobs"])
    assert new_jobs and not new_jobs & before, (summary["jobs"], before)
    ran = next(row for row in rows.values() if not row["reused"])
    assert ran["job"] in new_jobs and ran["status"] in ("ok", "ruled out"), ran
