"""From a user's folder outside the checkout, `hlsflow flow` through synthesis and `report`, with
the Tcl-executing stand-in (tests/standin_xilinx, a test double, no Xilinx software) mounted as
XILINX_ROOT and each of its installs chosen in turn: hls4ml's real build_prj.tcl runs in it, and
the report names the tool and version of the real reports the stand-in lays down."""

import json
import os
import re

import pytest

from conftest import REPO_ROOT, run_hlsflow

STANDIN_ROOT = REPO_ROOT / "tests" / "standin_xilinx"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A small Dense classifier, its samples, and its starter flow config text."""
    import numpy as np
    import tensorflow as tf
    from tensorflow.keras import layers

    from hlsflow.stages.starter import render_config, starter_hls_config

    root = tmp_path_factory.mktemp("tiny")
    tf.keras.utils.set_random_seed(2)
    inp = tf.keras.Input((6,), name="x")
    out = layers.Activation("softmax", name="sm")(layers.Dense(3, name="fc2")(
        layers.Activation("relu", name="r1")(layers.Dense(8, name="fc1")(inp))))
    model = tf.keras.Model(inp, out)
    model.save(root / "tiny.keras")
    x = np.random.default_rng(0).uniform(-1, 1, (20, 6)).astype(np.float32)
    np.savez(root / "samples.npz", X=x, y=model.predict(x, verbose=0).argmax(1))
    hls = starter_hls_config(model, precision="ap_fixed<18,8>", reuse_factor=1)
    text = render_config(hls, str(root / "tiny.keras"), "prj", str(root / "samples.npz"), part="xcu250-figd2104-2L-e")
    return text


def _env() -> dict:
    """A user's environment, with this checkout's hlsflow (not the image's copy) on the path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XILINX", "VIVADO", "STANDIN_"))}
    env["PYTHONPATH"] = str(REPO_ROOT)
    return env


def _calls(out):
    lines = (out / "vivado_hls_standin_calls.log").read_text().splitlines()
    return [json.loads(line) for line in lines]


@pytest.mark.parametrize("backend, flag, version, tool, command", [
    ("Vivado", "--vivado", "2018.2", "Vivado HLS", "vivado_hls -f build_prj.tcl"),
    ("Vivado", "--vivado", "2020.1", "Vivado HLS", "vivado_hls -f build_prj.tcl"),
    ("Vitis", "--vitis", "2024.1", "Vitis HLS", "vitis-run --tcl build_prj.tcl --mode hls"),
])
def test_flow_and_report_from_a_user_folder(tiny_model, tmp_path, backend, flag, version, tool, command):
    user = tmp_path / "user"
    user.mkdir()
    config = re.sub(r"^Backend: .*$", f"Backend: {backend}", tiny_model, flags=re.MULTILINE)
    assert f"Backend: {backend}" in config
    (user / "flow.yml").write_text(config)
    env = _env()
    env.update(XILINX_ROOT=str(STANDIN_ROOT), STANDIN_DELAY="0")

    def hlsflow(*args):
        return run_hlsflow(*args, cwd=user, env=env)

    flow = hlsflow("flow", "--config", "flow.yml", flag, version)
    assert flow.returncode == 0, flow.stdout[-3000:] + flow.stderr[-3000:]
    assert f"==> {tool} {version} ({STANDIN_ROOT}" in flow.stdout
    assert f"  {command}" in flow.stdout

    out = user / "prj"
    calls = _calls(out)
    names = [c["command"] for c in calls]
    assert "csynth_design" in names and "cosim_design" not in names and "export_design" not in names
    assert "csim_design" not in names
    assert ["xcu250-figd2104-2L-e"] in [c["args"] for c in calls if c["command"] == "set_part"]
    clocks = [c["args"] for c in calls if c["command"] == "create_clock"]
    assert clocks and float(clocks[0][clocks[0].index("-period") + 1]) == 5.0
    # build_opt.tcl, rewritten for the run, is convert's again: the project stays current.
    assert backend == "Vivado" or "cosim      1" in (out / "build_opt.tcl").read_text()

    report = hlsflow("report", "--config", "flow.yml", flag, version)
    assert report.returncode == 0, report.stdout[-3000:] + report.stderr[-3000:]
    data = json.loads((out / "report.json").read_text())
    assert data["tool"] == tool and data["tool_version"].startswith(version)
    assert data["produced_by_test_double"] is True
    md = (out / "report.md").read_text()
    assert f"- Tool: {tool} {data['tool_version']}" in md and "laid down by the" in md
    assert re.search(r"- Latency: best \d+ cycles \([\d.]+ ns\)", md)


def test_backend_vivado_on_the_vitis_install_is_refused_before_anything_runs(tiny_model, tmp_path):
    user = tmp_path / "user"
    user.mkdir()
    (user / "flow.yml").write_text(tiny_model)
    env = _env()
    env.update(XILINX_ROOT=str(STANDIN_ROOT), STANDIN_DELAY="0")
    proc = run_hlsflow("synth", "--config", "flow.yml", "--vitis", "2024.1", cwd=user, env=env)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ERROR:")]
    assert errors == [errors[0]] and "Backend Vivado runs vivado_hls, which Vitis HLS 2024.1" in errors[0]
    assert not (user / "prj").exists()  # named before converting


def test_synth_runs_doctors_blocking_checks_first(tiny_model, tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    user = tmp_path / "user"
    user.mkdir()
    (user / "flow.yml").write_text(tiny_model)
    env = _env()
    env.update(XILINX_ROOT=str(STANDIN_ROOT), STANDIN_DELAY="0", XILINXD_LICENSE_FILE=f"{port}@127.0.0.1")
    proc = run_hlsflow("synth", "--config", "flow.yml", "--vivado", "2020.1", cwd=user, env=env)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1 and f"server {port}@127.0.0.1 does not answer within 3 s" in errors[0]
    assert not (user / "prj" / "vivado_hls_standin_calls.log").exists()
