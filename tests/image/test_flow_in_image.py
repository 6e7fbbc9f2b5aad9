"""The flow itself through the image, started on the host as a user starts it: one container per
invocation, the Vivado stand-in (a test double) mounted read-only as the Xilinx tree."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STANDIN_ROOT = REPO / "tests" / "standin_xilinx"


def host_invoke(*args, **env):
    environ = {k: v for k, v in os.environ.items() if k not in ("HLSFLOW_NATIVE", "HLSFLOW_IN_IMAGE")}
    environ.update(env)
    return subprocess.run([sys.executable, "-m", "invoke", *map(str, args)], cwd=REPO, env=environ,
                          capture_output=True, text=True, timeout=1200)


@pytest.fixture(scope="module")
def out(built_image):
    path = REPO / "build" / "test-image-flow"
    shutil.rmtree(path, ignore_errors=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_convert_synth_report_from_the_host(out):
    proc = host_invoke("convert", "synth", "report", "--out", out, XILINX_ROOT=str(STANDIN_ROOT),
                       STANDIN_DELAY="0")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    line = next(line for line in proc.stdout.splitlines() if "C synthesis of myproject" in line)
    assert f"({STANDIN_ROOT}/Vivado/2018.2/bin/vivado_hls) (test double" in line, line
    assert "hlsflow: " not in proc.stderr  # the entrypoint says what it found only under --verbose
    assert "Converting with hls4ml (io_stream, Vivado, part xc7z010clg400-1" in proc.stdout
    assert "VERDICT: does NOT fit xc7z010clg400-1" in proc.stdout
    args = (out / "vivado_hls_standin.args").read_text().splitlines()
    assert args == ["-f build_prj.tcl reset=0 csim=0 synth=1 cosim=0 validation=0 export=0 vsynth=0 fifo_opt=0"]
    report = json.loads((out / "report.json").read_text())
    # The stand-in's 2018.2 report is for the VX690T: judged against it, the configured Z010 stated.
    assert report["tool_version"] == "2018.2" and report["resources"]["DSP"]["available"] == 3600
    assert report["target_part"] == "xc7z010clg400-1"
    # Everything the container wrote belongs to the invoking user.
    for path in (out, out / "report.json", out / "myproject_prj", out / "manifest.json"):
        assert path.stat().st_uid == os.getuid(), path


def test_convert_csim_in_the_image(out):
    proc = host_invoke("convert", "csim", "--out", out, "--max-samples", "16")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Vivado" not in proc.stderr  # csim was asked for, not synthesis
    result = json.loads((out / "csim.json").read_text())
    assert result["samples"] == 16 and result["top1_agreement"] == 1.0
    assert result["keras_accuracy"] == 1.0


def test_flow_without_vivado_skips_synthesis_in_one_line(out):
    out = out.with_name(out.name + "-novivado")  # no synthesis results yet (those would be reported)
    shutil.rmtree(out, ignore_errors=True)
    proc = host_invoke("flow", "--out", out, "--samples", REPO / "models" / "samples_2_15.npz")
    shutil.rmtree(out, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("Synthesis skipped: no Vivado HLS found") == 1
