"""hls4ml's real build_prj.tcl, run by the stand-in installs (tests/standin_xilinx, a test double) in tclsh:
projects converted by hlsflow (Vivado and Vitis backends) are built by hls4ml's own build(), which runs
`vivado_hls -f build_prj.tcl "..."` or `vitis-run --tcl build_prj.tcl --mode hls` (reading build_opt.tcl),
and the commands the script ran are read back from the stand-in's record. No figure here is a Vivado result."""

import json
import re
import shutil

import pytest

from conftest import REPO_ROOT, flow_env, run_invoke

STANDIN = REPO_ROOT / "tests" / "standin_xilinx"
PART = "xc7z020clg400-1"
CLOCK = 7  # ns: not a default of hls4ml's or hlsflow's, so create_clock shows it came from the config
INSTALLS = [  # (install, the hls4ml backend whose project it builds)
    ("Vivado/2018.2", "Vivado"),
    ("Vivado/2020.1", "Vivado"),
    ("Vitis_HLS/2024.1", "Vitis"),
]
FLAG_SETS = [
    {"csim": False, "synth": True, "export": False, "vsynth": False},  # what hlsflow synth runs
    {"csim": True, "synth": True, "export": False, "vsynth": True},
    {"csim": False, "synth": True, "export": True, "vsynth": False},
    {"csim": True, "synth": False, "export": False, "vsynth": False},
]


@pytest.fixture(scope="session")
def tiny_projects(tmp_path_factory):
    """A two-layer MLP converted by `invoke convert` once per backend: {backend: (config, output dir)}."""
    import tensorflow as tf
    from tensorflow.keras import layers

    from hlsflow.stages.starter import render_config, starter_hls_config

    root = tmp_path_factory.mktemp("tiny")
    tf.keras.utils.set_random_seed(2)
    inp = tf.keras.Input((4,), name="x")
    out = layers.Dense(3, name="fc2")(layers.Dense(8, activation="relu", name="fc1")(inp))
    model = tf.keras.Model(inp, out)
    model_path = root / "tiny.keras"
    model.save(model_path)
    hls = starter_hls_config(model, precision="ap_fixed<16,6>", reuse_factor=1, strategy="Latency")
    projects = {}
    for backend in ("Vivado", "Vitis"):
        text = render_config(hls, str(model_path), str(root / backend), None, part=PART, io_type="io_parallel",
                             clock=CLOCK)
        assert "\nBackend: Vivado " in text
        config = root / f"{backend}.yml"
        config.write_text(text.replace("\nBackend: Vivado ", f"\nBackend: {backend} "))
        proc = run_invoke("convert", "--config", config)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        projects[backend] = (config, root / backend)
    return projects


def _copy(tiny_projects, backend, tmp_path):
    """A private copy of the converted project: each run writes into its own."""
    out = tmp_path / backend
    shutil.copytree(tiny_projects[backend][1], out)
    return out


def _calls(out):
    return [json.loads(line) for line in (out / "vivado_hls_standin_calls.log").read_text().splitlines()]


@pytest.mark.parametrize("flags", FLAG_SETS, ids=lambda f: "-".join(k for k, v in f.items() if v))
@pytest.mark.parametrize("install, backend", INSTALLS, ids=[i for i, _ in INSTALLS])
def test_hls4ml_build_runs_build_prj_tcl(tiny_projects, tmp_path, monkeypatch, install, backend, flags):
    import hls4ml

    out = _copy(tiny_projects, backend, tmp_path)
    bin_dir = STANDIN / install / "bin"
    monkeypatch.setenv("PATH", f"{bin_dir}:{flow_env()['PATH']}")
    monkeypatch.setenv("STANDIN_DELAY", "0")
    for name in ("STANDIN_MODE", "STANDIN_VERSION", "STANDIN_FIXTURES"):
        monkeypatch.delenv(name, raising=False)

    monkeypatch.chdir(out)  # hlsflow writes `OutputDir: .` into the project's hls4ml_config.yml
    # hls4ml's own build(): the command line (or build_opt.tcl) is hls4ml's, not ours.
    built = hls4ml.converters.link_existing_project(str(out)).build(
        reset=False, cosim=False, validation=False, fifo_opt=False, **flags)

    calls = _calls(out)
    tool = "vivado_hls" if backend == "Vivado" else "vitis-run"
    hls = [row for row in calls if row["tool"] == tool]
    vivado = [row for row in calls if row["tool"] == "vivado"]
    assert {row["tool"] for row in calls} <= {tool, "vivado"}
    commands = [row["command"] for row in hls]
    args = {row["command"]: row["args"] for row in hls}

    assert commands[:2] == ["open_project", "set_top"] and commands[-1] == "exit"
    assert args["open_project"] == ["myproject_prj"] and args["set_top"] == ["myproject"]
    assert args["set_part"] == [PART]
    assert args["create_clock"][0] == "-period" and float(args["create_clock"][1]) == CLOCK
    assert args["exit"] == ["0"]
    assert ("csynth_design" in commands) == flags["synth"]
    assert ("csim_design" in commands) == flags["csim"]
    assert "cosim_design" not in commands
    assert ("export_design" in commands) == flags["export"]
    # Vivado logic synthesis: hls4ml's `exec vivado -mode batch -source vivado_synth.tcl`.
    assert bool(vivado) == flags["vsynth"]
    if flags["vsynth"]:
        assert [row["command"] for row in vivado] == [
            "add_files", "synth_design", "opt_design", "report_utilization", "exit"]
        assert vivado[1]["args"] == ["-top", "myproject", "-part", PART]

    # hls4ml's own report reader reads what the stand-in laid down.
    assert ("CSynthesisReport" in built) == flags["synth"]
    assert ("VivadoSynthReport" in built) == flags["vsynth"]
    app = "hls.app" if backend == "Vitis" else "vivado_hls.app"
    assert (out / "myproject_prj" / app).is_file()
    reports = out / "myproject_prj" / "solution1" / "syn" / "report"
    assert (reports / "myproject_csynth.xml").is_file() == flags["synth"]
    if flags["synth"]:
        # The install's own real report set (fixtures/vivado_hls_2018.2, _2020.1, vitis_hls_2024.1).
        version = install.split("/")[1]
        assert re.search(rf"^\* Version:\s+{re.escape(version)} ", (reports / "myproject_csynth.rpt").read_text(), re.M)
        assert (reports / "csynth.xml").is_file() == (backend == "Vitis")


def test_vitis_hls_f_reads_build_opt_tcl(tiny_projects, tmp_path):
    """`vitis_hls -f build_prj.tcl`: the Vitis script takes its options from build_opt.tcl, not $::argv."""
    import subprocess

    out = _copy(tiny_projects, "Vitis", tmp_path)
    opts = (out / "build_opt.tcl").read_text()
    assert "csim       1" in opts and "cosim      1" in opts  # hls4ml's template defaults
    (out / "build_opt.tcl").write_text(opts.replace("csim       1", "csim       0")
                                       .replace("cosim      1", "cosim      0")
                                       .replace("validation 1", "validation 0"))
    exe = STANDIN / "Vitis_HLS" / "2024.1" / "bin" / "vitis_hls"
    # The arguments say csim=1: the script ignores them.
    proc = subprocess.run([str(exe), "-f", "build_prj.tcl", "csim=1"], cwd=out, capture_output=True, text=True,
                          timeout=60, env=flow_env(STANDIN_DELAY="0"))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    commands = [row["command"] for row in _calls(out)]
    assert "csynth_design" in commands and "csim_design" not in commands
    assert "Version: 2024.1" in (out / "vitis_hls.log").read_text()
    assert "STAND-IN" in proc.stderr


def test_hlsflow_synth_and_report_through_the_standin(tiny_projects, tmp_path):
    config, _ = tiny_projects["Vivado"]
    out = tmp_path / "synth"
    env = flow_env(XILINX_VIVADO=STANDIN / "Vivado" / "2018.2", STANDIN_DELAY="0")
    proc = run_invoke("synth", "report", "--config", config, "--out", out, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "finished Architecture Synthesis" in proc.stdout

    calls = _calls(out)
    assert {row["tool"] for row in calls} == {"vivado_hls"}
    args = {row["command"]: row["args"] for row in calls}
    assert "csynth_design" in args and "cosim_design" not in args and "csim_design" not in args
    assert args["set_part"] == [PART] and float(args["create_clock"][1]) == CLOCK

    # The report stage read the real 2018.2 reports the stand-in laid down, and says whose they are.
    report = json.loads((out / "report.json").read_text())
    assert report["tool_version"] == "2018.2"
    assert report["latency"]["worst_cycles"] == 21 and report["clock"]["estimated_ns"] == 3.582
    assert report["produced_by_test_double"] is True
    assert "stand-in (a test double)" in (out / "report.md").read_text()
