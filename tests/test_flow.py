"""The flow end to end on a small model, as a user runs it: real hls4ml, real g++, and the
Vivado stand-in (tests/standin_xilinx, a test double) with real 2018.2 reports."""

import json
import sys
from importlib.metadata import version

import numpy as np
import pytest

import standin_hang
from conftest import REPO_ROOT, error_lines, flow_env, run_invoke

STANDIN = REPO_ROOT / "tests" / "standin_xilinx" / "Vivado" / "2018.2"


def standin_env(**extra):
    return flow_env(XILINX_VIVADO=STANDIN, STANDIN_DELAY="0", **extra)


def test_pinned_stack_is_what_runs():
    import tensorflow as tf

    assert tf.__version__ == "2.15.0"
    assert np.__version__ == "1.25.0"
    assert version("hls4ml") == "1.3.0"
    assert sys.version_info[:2] == (3, 11)


def test_convert_and_emulate_a_skip_connection_under_tf_2_15(converted):
    project, proc = converted
    out = project["out"]
    record = json.loads((out / "manifest.json").read_text())["stages"]["convert"]
    types = {row["name"]: row["type"] for row in record["result"]["layers"]}
    assert types["skip"] == "Merge" and types["c1"] == "Conv2D"
    assert "drop" not in types  # the Dropout is accepted, and removed by hls4ml
    assert (out / "firmware" / "myproject.cpp").exists() and (out / "build_prj.tcl").exists()
    assert (out / "model_graph.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| skip" in proc.stdout and "RF requested" in proc.stdout
    result = json.loads((out / "csim.json").read_text())
    assert result["samples"] == 40
    # The pinned stack gives 38 of 40 labels and a worst |HLS - Keras| of 0.025 on this seeded
    # design: no further flip, and at most a fifth more error (a 10-point drop used to pass).
    assert result["top1_agreement"] >= 38 / 40 and result["hls_accuracy"] == result["top1_agreement"], result
    assert 0 < result["max_abs_diff"] < 0.03 and result["mean_abs_diff"] < 0.011, result
    # The skip connection runs on the fast engine; the C++ library is built only for --engine cpp.
    assert result["engine"] == "fast" and result["emulation_build"]["library"] is None, result
    assert not list(out.parent.glob(".prj.partial-*")), "staging directory left behind"


def test_csim_gate_fails_below_the_required_agreement(converted, tmp_path):
    project, _ = converted
    # A gate no agreement can meet is a mistake in the flag, named before anything runs.
    proc = run_invoke("csim", "--config", project["config"], "--min-agreement", "1.01")
    assert proc.returncode == 2
    assert error_lines(proc) == ["ERROR: --min-agreement '1.01' is not a fraction between 0 and 1: give e.g. "
                                 "--min-agreement 0.99."]
    # A design too coarse to agree fails the gate with its own status.
    proc = run_invoke("csim", "--config", project["config"], "--out", tmp_path / "coarse", "--precision",
                      "ap_fixed<4,2>", "--max-samples", "20", "--min-agreement", "0.99")
    assert proc.returncode == 3, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert error_lines(proc) and "below the required 99.0%" in error_lines(proc)[0]


def test_csim_converts_first_when_the_project_is_missing_or_stale(converted, tmp_path):
    project, _ = converted
    out = tmp_path / "fresh"
    proc = run_invoke("csim", "--config", project["config"], "--out", out, "--max-samples", "8")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert f"==> csim: there is no HLS project at {out}; converting first" in proc.stdout
    assert (out / "manifest.json").is_file() and json.loads((out / "csim.json").read_text())["samples"] == 8
    # A changed precision makes the project stale: csim converts again, then emulates the new design.
    proc = run_invoke("csim", "--config", project["config"], "--out", out, "--max-samples", "8",
                      "--precision", "ap_fixed<18,8>")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (f"==> csim: the HLS project at {out} is not current (its hls4ml_settings changed); converting first"
            in proc.stdout)
    assert "ap_fixed<18,8>" in (out / "firmware" / "parameters.h").read_text() + (
        out / "firmware" / "defines.h").read_text()
    # Current now: nothing is converted.
    again = run_invoke("csim", "--config", project["config"], "--out", out, "--max-samples", "8",
                       "--precision", "ap_fixed<18,8>")
    assert again.returncode == 0 and "converting first" not in again.stdout


def test_report_synthesises_first(converted, tmp_path):
    project, _ = converted
    out = tmp_path / "rep"
    proc = run_invoke("report", "--config", project["config"], "--out", out, env=standin_env())
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "==> report: there is no HLS project" in proc.stdout
    assert f"==> report: no synthesis results in {out}; synthesising first" in proc.stdout
    assert json.loads((out / "report.json").read_text())["produced_by_test_double"] is True
    # Without Vivado, a report that needs synthesis says so in one sentence.
    bare = run_invoke("report", "--config", project["config"], "--out", tmp_path / "rep2")
    assert bare.returncode != 0 and error_lines(bare)[0].startswith("ERROR: No Vivado HLS found")


def test_synth_and_report_with_the_standin(converted):
    project, _ = converted
    out, config = project["out"], project["config"]
    proc = run_invoke("synth", "report", "--config", config, env=standin_env())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert str(STANDIN / "bin" / "vivado_hls") in proc.stdout
    assert "STAND-IN" in (out / "vivado_hls_run.log").read_text()
    args = (out / "vivado_hls_standin.args").read_text().splitlines()
    assert args == ["-f build_prj.tcl reset=0 csim=0 synth=1 cosim=0 validation=0 export=0 vsynth=0 fifo_opt=0"]
    assert "finished Architecture Synthesis" in proc.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["tool_version"] == "2018.2" and report["part"] == "xc7vx690tffg1927-2"
    assert report["latency"] == {"best_cycles": 21, "worst_cycles": 21, "best_ns": 86.52, "worst_ns": 86.52}
    assert report["clock"]["estimated_ns"] == 3.582 and report["clock"]["target_ns"] == 4.12
    assert report["interval"] == {"min": 1, "max": 1}
    assert report["resources"]["LUT"] == {"used": 2070828, "available": 433200, "percent": 478.03}
    assert report["resources"]["FF"]["used"] == 1105961
    assert report["resources"]["DSP"] == {"used": 1, "available": 3600, "percent": 0.03}
    assert report["resources"]["BRAM_18K"]["used"] == 0
    assert report["fits"] is False
    assert report["produced_by_test_double"] is True
    assert "stand-in (a test double)" in (out / "report.md").read_text()
    assert (out / "utilisation.png").read_bytes()[:4] == b"\x89PNG"

    # Nothing changed: a re-run neither converts nor synthesises again.
    again = run_invoke("convert", "synth", "--config", config, env=standin_env())
    assert again.returncode == 0
    assert again.stdout.count("up to date") + again.stdout.count("Up to date") == 2
    assert len((out / "vivado_hls_standin.args").read_text().splitlines()) == 1

    # --csim and --vsynth reach vivado_hls; cosimulation never does.
    flags = run_invoke("synth", "--config", config, "--csim", "--vsynth", "--force", env=standin_env())
    assert flags.returncode == 0, flags.stderr
    last = (out / "vivado_hls_standin.args").read_text().splitlines()[-1]
    assert "csim=1" in last and "vsynth=1" in last and "cosim=0" in last


@pytest.mark.parametrize("mode, exit_code, message", [
    ("fail", 4, "vivado_hls exited with status 1"),
    ("crash", 4, "vivado_hls was killed by SIGSEGV"),
    ("noreport", 4, "wrote no synthesis report"),
])
def test_synthesis_failures_are_one_sentence_and_keep_the_last_report(converted, mode, exit_code, message):
    project, _ = converted
    out = project["out"]
    before = json.loads((out / "manifest.json").read_text())["stages"]["convert"]
    proc = run_invoke("synth", "--config", project["config"], "--force", env=standin_env(STANDIN_MODE=mode))
    assert proc.returncode == exit_code, proc.stdout + proc.stderr
    errors = error_lines(proc)
    assert len(errors) == 1 and message in errors[0]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stages"]["convert"] == before
    assert manifest["stages"]["synth"]["status"] == "failed" and manifest["stages"]["synth"]["exit_status"] == 4
    assert manifest["runs"][-1] | {"started": None, "seconds": None} == {
        "stage": "synth", "command": manifest["runs"][-1]["command"], "started": None, "seconds": None,
        "status": "failed", "exit_status": 4, "reused": False}


def test_synthesis_timeout_stops_the_process_group(converted):
    project, _ = converted
    proc = run_invoke("synth", "--config", project["config"], "--force", "--timeout", "2",
                      env=standin_env(STANDIN_MODE="hang"))
    assert proc.returncode == 4
    assert "timeout" in error_lines(proc)[0]
    # The stand-in hung with a child of its own, and the timeout stopped both.
    assert standin_hang.hang_child(project["out"]), (project["out"] / "vivado_hls.log").read_text()[-2000:]
    standin_hang.wait_none_left(project["out"])


def test_other_vivado_version_is_a_warning(converted):
    project, _ = converted
    proc = run_invoke("synth", "--config", project["config"], "--force", env=standin_env(STANDIN_VERSION="2019.1"))
    assert proc.returncode == 0, proc.stderr
    assert "WARNING: Vivado HLS 2019.1 found" in proc.stderr


def test_export_refuses_without_the_y2k22_patch(converted):
    project, _ = converted
    proc = run_invoke("synth", "--config", project["config"], "--force", "--export", env=standin_env())
    assert proc.returncode != 0
    assert "Y2K22" in error_lines(proc)[0] and "AR 76960" in error_lines(proc)[0]


def test_no_vivado_found(converted):
    project, _ = converted
    proc = run_invoke("synth", "--config", project["config"], "--force")
    assert proc.returncode != 0
    assert error_lines(proc) == ["ERROR: No Vivado HLS found: mount Vivado 2018.2 (XILINX_ROOT, default /opt/Xilinx), "
                                 "source its settings64.sh, or pass --vivado /opt/Xilinx/Vivado/2018.2."]


def test_flow_skips_synthesis_in_one_line_without_vivado(converted, tmp_path):
    project, _ = converted
    proc = run_invoke("flow", "--config", project["config"], "--out", tmp_path / "novivado")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("Synthesis skipped: no Vivado HLS found") == 1
    # Synthesis results made earlier (on a machine with Vivado) are reported without Vivado.
    out = project["out"]
    assert run_invoke("synth", "--config", project["config"], env=standin_env()).returncode == 0
    again = run_invoke("flow", "--config", project["config"])
    assert again.returncode == 0, again.stderr
    assert "Synthesis skipped" not in again.stdout and "Synthesis up to date" in again.stdout
    assert (out / "report.json").is_file()


def test_ctrl_c_stops_synthesis_and_its_children(converted):
    import signal
    import subprocess

    from conftest import REPO_ROOT as root

    project, _ = converted
    proc = subprocess.Popen([sys.executable, "-m", "invoke", "synth", "--config", str(project["config"]), "--force"],
                            cwd=root, env=standin_env(STANDIN_MODE="hang"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        standin_hang.wait_hanging(project["out"])
    finally:
        proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "ERROR: Synthesis interrupted; vivado_hls and its children were stopped" in err
    synth = json.loads((project["out"] / "manifest.json").read_text())["stages"]["synth"]
    assert synth["status"] == "interrupted" and synth["exit_status"] == 130
    standin_hang.wait_none_left(project["out"])


def test_vivado_given_as_a_flag(converted):
    project, _ = converted
    proc = run_invoke("synth", "--config", project["config"], "--force", "--vivado", STANDIN,
                      env=flow_env(STANDIN_DELAY="0"))
    assert proc.returncode == 0, proc.stderr
    assert str(STANDIN / "bin" / "vivado_hls") in proc.stdout
    wrong = run_invoke("synth", "--config", project["config"], "--force", "--vivado", "/nonexistent/Vivado")
    assert wrong.returncode != 0
    assert error_lines(wrong)[0].startswith("ERROR: No vivado_hls at /nonexistent/Vivado (nor vitis_hls): pass --vivado")
