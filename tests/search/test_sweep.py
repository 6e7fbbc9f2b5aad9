"""`hlsflow sweep`: a grid of configs of the tiny CNN, each point a whole flow, on real Dask (a
LocalCluster, and a `dask scheduler` with two `dask worker` processes on 127.0.0.1), synthesis
through the Vivado stand-in. Nothing of ours is mocked; every wait is bounded."""

import contextlib
import csv
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT, error_lines, flow_env, run_invoke
from waiting import wait_for

DATA = REPO_ROOT / "tests" / "data"
STANDIN_VIVADO = REPO_ROOT / "tests" / "standin_xilinx" / "Vivado" / "2018.2"
GRID_6 = """\
# 3 ReuseFactors x 2 precisions; RF 1 needs ~292 multipliers, more than the part's 80 DSPs.
ReuseFactor: [1, 4, plan]
Precision: ["ap_fixed<16,6>", "ap_fixed<12,5>"]
"""


def write_config(root, part="xc7z010clg400-1"):
    config = root / "tiny.yml"
    config.write_text(f"""\
KerasModel: {DATA / 'tiny_cnn.keras'}
OutputDir: out
ProjectName: myproject
Part: {part}
IOType: io_stream
ClockPeriod: 5
HLSConfig:
  Model:
    Precision: {{default: 'ap_fixed<16,6>'}}
    ReuseFactor: 1
    Strategy: Resource
Flow:
  emulation:
    samples: {DATA / 'tiny_samples.npz'}
""")
    return config


def sweep_env(**extra):
    return flow_env(XILINX_VIVADO=STANDIN_VIVADO, **extra)


def small_design_fixtures(root):
    """The stand-in's fixtures with the C synthesis report's LUT and FF cut to what a small part
    holds: the real report (2.07 M LUT) fits no part, and a sweep's best point must fit one."""
    import shutil

    fixtures = root / "fixtures"
    shutil.copytree(REPO_ROOT / "tests" / "standin_xilinx" / "fixtures", fixtures)
    xml = fixtures / "vivado_hls_2018.2" / "myproject_csynth.xml"
    text = xml.read_text()
    for old, new in (("<FF>1105961</FF>", "<FF>12000</FF>"), ("<LUT>2070828</LUT>", "<LUT>9000</LUT>")):
        assert text.count(old) == 1
        text = text.replace(old, new)
    xml.write_text(text)
    return fixtures


def read_rows(folder):
    with open(folder / "sweep.csv") as f:
        return {row["point"]: row for row in csv.DictReader(f)}


# ------------------------------------------------------------------ no cluster needed

def test_grid_points_names_and_mistakes(tmp_path):
    from hlsflow.errors import FlowError
    from hlsflow.search.grid import point_name, read_grid

    grid = tmp_path / "grid.yml"
    grid.write_text(GRID_6 + "io_type: io_stream\n")
    points = read_grid(grid)
    assert len(points) == 6
    assert points[0] == {"ReuseFactor": 1, "Precision": "ap_fixed<16,6>", "IOType": "io_stream"}
    assert [point_name(p) for p in points][:2] == ["rf1_ap-fixed-16-6_io-stream", "rf1_ap-fixed-12-5_io-stream"]
    grid.write_text("ReuseFacter: [1, 2]\n")
    with pytest.raises(FlowError, match=r"^ReuseFacter: unknown key in the grid .*grid.yml; use ReuseFactor"):
        read_grid(grid)
    grid.write_text("Precision: [plan]\n")
    with pytest.raises(FlowError, match="only ReuseFactor can be"):
        read_grid(grid)


def test_a_bad_grid_value_is_one_sentence_before_anything_runs(tmp_path):
    config = write_config(tmp_path)
    grid = tmp_path / "grid.yml"
    grid.write_text("ReuseFactor: [4, 0]\n")
    proc = run_invoke("sweep", "--config", config, "--grid", grid, "--out", tmp_path / "sw", env=sweep_env())
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert error_lines(proc) == [(f"ERROR: Point rf0 of {grid}: ReuseFactor '0' (--reuse-factor) is not a positive "
                                  "integer: give a whole number such as 1, 8 or 32.")]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "sw").exists()
    grid.write_text("ReuseFactor: [4]\n")
    for flags, sentence in ((("--memory-per-point", "lots"), "Memory per point 'lots' is not an amount of memory"),
                            (("--max-samples", "ten"), "--max-samples 'ten' is not a positive whole number"),
                            (("--min-agreement", "2"), "--min-agreement '2' is not a fraction between 0 and 1")):
        proc = run_invoke("sweep", "--config", config, "--grid", grid, "--out", tmp_path / "sw", *flags,
                          env=sweep_env())
        assert proc.returncode == 2 and len(error_lines(proc)) == 1, proc.stderr[-2000:]
        assert error_lines(proc)[0].startswith(f"ERROR: {sentence}"), error_lines(proc)
        assert not (tmp_path / "sw").exists()


def test_slurm_job_script_runs_one_point_per_worker_in_the_image(tmp_path):
    from hlsflow.search.cluster import jobqueue_cluster

    spec = tmp_path / "slurm.yml"
    spec.write_text("""\
system: slurm
jobs: 3
cluster:
  queue: fpga
  account: hls
  cores: 4
  walltime: "02:00:00"
  python: apptainer exec /shared/hlsflow.sif python
""")
    # check=False: no Slurm to ask whether partition fpga exists (tests/image/test_slurm.py has one).
    cluster, jobs = jobqueue_cluster(spec, memory_per_point="3GB", check=False)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert jobs == 3
    lines = script.splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    for directive in ("#SBATCH -p fpga", "#SBATCH -A hls", "#SBATCH -n 1", "#SBATCH --cpus-per-task=4",
                      "#SBATCH -t 02:00:00", "#SBATCH -J hlsflow-sweep"):
        assert directive in lines, (directive, script)
    # 4 workers x 3 GB, one thread each: one point per worker at a time, in the image's Python.
    assert "#SBATCH --mem=12G" in lines, script
    worker = next(line for line in lines if "distributed.cli.dask_worker" in line)
    assert worker.startswith("apptainer exec /shared/hlsflow.sif python -m distributed.cli.dask_worker tcp://")
    assert "--nthreads 1" in worker and "--nworkers 4" in worker and "--memory-limit 2.79GiB" in worker, worker


# ------------------------------------------------------------------ on a local cluster

@pytest.fixture(scope="module")
def six_point_sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    config = write_config(root)
    grid = root / "grid.yml"
    grid.write_text(GRID_6)
    args = ("sweep", "--config", config, "--grid", grid, "--out", root / "sw", "--max-samples", "16",
            "--workers", "2", "--memory-per-point", "2GB", "--min-agreement", "0.9")
    env = sweep_env(STANDIN_FIXTURES=small_design_fixtures(root))
    first = run_invoke(*args, env=env)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    return {"root": root, "out": root / "sw", "args": args, "first": first, "env": env}


def test_six_points_give_a_table_a_chart_and_the_best_point(six_point_sweep):
    out, proc = six_point_sweep["out"], six_point_sweep["first"]
    rows = read_rows(out)
    assert len(rows) == 6
    assert "Local Dask cluster: 2 worker(s)" in proc.stdout
    for name, row in rows.items():
        manifest = json.loads((out / name / "manifest.json").read_text())
        assert manifest["stages"]["csim"]["status"] == "ok", name
        assert row["reused"] == "False"
        assert 0.9 <= float(row["agreement"]) <= 1.0, row
        if name.startswith("rf1_"):
            # ~292 multipliers for 80 DSPs: marked, and never synthesised.
            assert row["status"] == "ruled out" and row["fits_estimate"] == "False", row
            assert row["synthesis"] == "skipped: preflight rules it out" and row["latency_cycles"] == ""
            assert "synth" not in manifest["stages"]
        else:
            assert row["status"] == "ok" and row["synthesis"] == "ran (TEST DOUBLE, not Vivado)", row
            assert int(row["est_multipliers"]) <= 80 and row["fits_estimate"] == "True"
            report = json.loads((out / name / "report.json").read_text())
            assert int(row["latency_cycles"]) == report["latency"]["worst_cycles"]
            assert int(row["DSP"]) == report["resources"]["DSP"]["used"]
            assert row["fits"] == str(report["fits"]) and row["timing_met"] == str(report["timing_met"])
            assert row["stand_in"] == "True" and row["fits"] == "True" and row["LUT"] == "9000"
    plan = (out / "rfplan_ap-fixed-16-6.plan.yml").read_text()
    assert plan.startswith("# Planned by `hlsflow plan`")
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| point" in (out / "sweep.md").read_text()
    assert "sweep: 6/6 done, 0 running, 0 failed" in proc.stdout
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("Fastest point that fits with agreement >= 90.0%: "), last
    # Same stand-in latency everywhere: the tie goes to the first name.
    assert "rf4_ap-fixed-12-5 (latency" in last and "agreement" in last, last


def test_a_second_run_reuses_every_finished_point(six_point_sweep):
    out = six_point_sweep["out"]
    manifests = {p: p.stat().st_mtime_ns for p in out.glob("*/manifest.json")}
    assert len(manifests) == 6
    again = run_invoke(*six_point_sweep["args"], env=six_point_sweep["env"])
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "6 current (reused), 0 to run" in again.stdout
    assert "Dask" not in again.stdout  # no cluster was even started
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/manifest.json")} == manifests
    assert {row["reused"] for row in read_rows(out).values()} == {"True"}
    assert again.stdout.strip().splitlines()[-1] == six_point_sweep["first"].stdout.strip().splitlines()[-1]


def test_a_failing_point_is_recorded_and_the_others_finish(tmp_path):
    config = write_config(tmp_path)
    grid = tmp_path / "grid.yml"
    grid.write_text("ReuseFactor: [1, 4]\n")
    # The stand-in fails every synthesis: rf4 fails in Vivado, rf1 (ruled out) never gets there.
    proc = run_invoke("sweep", "--config", config, "--grid", grid, "--out", tmp_path / "sw", "--max-samples", "8",
                      "--workers", "2", "--memory-per-point", "2GB", env=sweep_env(STANDIN_MODE="fail"))
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = read_rows(tmp_path / "sw")
    assert rows["rf1"]["status"] == "ruled out" and float(rows["rf1"]["agreement"]) > 0.9
    assert rows["rf4"]["status"] == "failed" and rows["rf4"]["error"].startswith("vivado_hls "), rows["rf4"]
    assert "FAILED: vivado_hls" in (tmp_path / "sw" / "rf4.log").read_text()
    assert error_lines(proc) == [(f"ERROR: 1 of 2 point(s) failed (rf4): each one's error is in {tmp_path / 'sw'}/"
                                  f"sweep.md and its log in {tmp_path / 'sw'}/<point>.log.")]
    assert "Traceback" not in proc.stderr
    assert (tmp_path / "sw" / "pareto.png").is_file()
    assert proc.stdout.strip().splitlines()[-1] == "No fastest point: no point was synthesised."


# ------------------------------------------------------------------ on an existing scheduler

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_worker_killed_mid_point_has_its_point_retried_and_the_sweep_completes(tmp_path):
    import psutil
    from distributed import Client

    config = write_config(tmp_path)
    grid = tmp_path / "grid.yml"
    grid.write_text("ReuseFactor: [4, 8]\n")
    port = _free_port()
    # Synthesis lasts ~15 s in the stand-in, so that the kill lands mid-point.
    env = sweep_env(STANDIN_DELAY="2", PYTHONPATH=REPO_ROOT)
    procs, sweep = [], None
    logs = tmp_path / "dask-logs"
    logs.mkdir()

    def start(name, *args):
        with open(logs / f"{name}.log", "w") as log:  # the child keeps its own copy of the descriptor
            proc = subprocess.Popen([sys.executable, "-m", "dask", *args], env=env, cwd=tmp_path, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(proc)
        return proc

    try:
        start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard")
        address = f"tcp://127.0.0.1:{port}"
        workers = [start(f"worker{i}", "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard",
                         "--host", "127.0.0.1", "--memory-limit", "2GB") for i in range(2)]
        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=120)
        sweep = subprocess.Popen([sys.executable, "-m", "invoke", "sweep", "--config", str(config), "--grid", str(grid),
                                  "--out", str(tmp_path / "sw"), "--max-samples", "8", "--scheduler", address],
                                 cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        worker_pids = {w.pid for w in workers}

        def synthesising():  # the worker whose point is in Vivado now (not in a `vivado_hls -version` probe)
            for proc in psutil.process_iter(["cmdline"]):
                if any("build_prj.tcl" in part for part in proc.info["cmdline"] or []):
                    with contextlib.suppress(psutil.Error):
                        for parent in proc.parents():
                            if parent.pid in worker_pids:
                                return parent.pid, proc
            return None

        victim, vivado = wait_for(synthesising, 300, "a stand-in synthesis on a worker")
        point = Path(vivado.cwd()).name
        # The node dies: its worker and the synthesis it started.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(os.getpgid(vivado.pid), signal.SIGKILL)
        os.kill(victim, signal.SIGKILL)
        stdout, stderr = sweep.communicate(timeout=600)
        assert sweep.returncode == 0, stdout[-4000:] + stderr[-4000:]
        rows = read_rows(tmp_path / "sw")
        assert {r["status"] for r in rows.values()} == {"ok"} and {r["synthesis"] for r in rows.values()} == {"ran (TEST DOUBLE, not Vivado)"}
        assert "sweep: 2/2 done, 0 running, 0 failed" in stdout
        runs = json.loads((tmp_path / "sw" / point / "manifest.json").read_text())["runs"]
        synth_runs = [r["status"] for r in runs if r["stage"] == "synth"]
        # The killed run stays recorded as running; the retry on the other worker finished it.
        assert synth_runs == ["running", "ok"], runs
    finally:
        if sweep is not None and sweep.poll() is None:
            sweep.kill()
            sweep.communicate(timeout=30)
        for proc in procs:  # scheduler and workers: each in a session of its own
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
