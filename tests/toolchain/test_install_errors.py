"""An install the user names that is not there (issue 38): XILINX_ROOT, XILINX_VIVADO, XILINX_HLS,
--vivado or --vitis naming a missing folder or one that holds no tool is one sentence and exit 1
(doctor) or 2 (flow, synth), never "synthesis will be skipped"; a failing `-version` quotes what the
tool itself said. Run as a user runs them: the `hlsflow` program from a folder of theirs."""

import hashlib
import shutil

import pytest
from installs import make_install

from conftest import TESTS_DIR, flow_env, run_hlsflow

DATA = TESTS_DIR / "data"


def last_error(proc) -> str:
    lines = proc.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("ERROR:")]
    assert len(errors) == 1 and lines[-1] == errors[0] and errors[0].endswith("."), proc.stderr
    assert "Traceback" not in proc.stderr
    return errors[0]


def state(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


@pytest.fixture
def user(tmp_path):
    root = tmp_path / "user"
    (root / "models").mkdir(parents=True)
    for name in ("tiny_cnn.keras", "tiny_samples.npz"):
        shutil.copy(DATA / name, root / "models" / name)
    (root / "hls4ml_config.yml").write_text(
        "KerasModel: models/tiny_cnn.keras\nOutputDir: build/tiny\nPart: pynq-z2\nIOType: io_stream\n"
        "Flow:\n  emulation: {samples: models/tiny_samples.npz}\n")
    (root / "empty").mkdir()
    return root


def _cases(user):
    missing = user / "no" / "such" / "folder"
    return {
        "XILINX_ROOT missing": ({"XILINX_ROOT": missing}, (), f"ERROR: XILINX_ROOT is {missing}, which is not a folder"),
        "XILINX_ROOT without tools": ({"XILINX_ROOT": user / "empty"}, (),
                                      f"ERROR: XILINX_ROOT is {user / 'empty'}, which holds no Vivado"),
        "XILINX_VIVADO missing": ({"XILINX_VIVADO": missing}, (), f"ERROR: XILINX_VIVADO is {missing}, which is not"),
        "XILINX_HLS without vitis_hls": ({"XILINX_HLS": user / "empty"}, (),
                                         f"ERROR: XILINX_HLS is {user / 'empty'}, which holds no bin/vitis_hls"),
        "--vivado without a tool": ({}, ("--vivado", user / "empty"), f"ERROR: No vivado_hls at {user / 'empty'}"),
        "--vitis missing": ({}, ("--vitis", missing), f"ERROR: No vivado_hls at {missing}"),
    }


CASE_NAMES = ["XILINX_ROOT missing", "XILINX_ROOT without tools", "XILINX_VIVADO missing", "XILINX_HLS without vitis_hls",
              "--vivado without a tool", "--vitis missing"]


@pytest.mark.parametrize("case", CASE_NAMES)
def test_doctor_names_it_in_one_sentence_and_exits_1(user, case):
    env, flags, message = _cases(user)[case]
    proc = run_hlsflow("doctor", *flags, cwd=user, env=flow_env(**env))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert last_error(proc).startswith(message)
    assert "VERDICT" not in proc.stdout and "skipped" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("command", ["flow", "synth"])
@pytest.mark.parametrize("case", ["XILINX_ROOT missing", "XILINX_HLS without vitis_hls", "--vivado without a tool"])
def test_flow_and_synth_name_it_in_one_sentence_exit_2_and_write_nothing(user, case, command):
    env, flags, message = _cases(user)[case]
    before = state(user)
    proc = run_hlsflow(command, *flags, cwd=user, env=flow_env(**env))
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert last_error(proc).startswith(message)
    assert state(user) == before  # named before anything converts


def _failing_tool(tree):
    """An install whose vivado_hls fails at start, as one missing a system library does."""
    folder = make_install(tree, "Vivado", "2018.2")
    script = folder / "bin" / "vivado_hls"
    script.write_text("#!/bin/bash\necho 'starting' \necho 'loader: error while loading shared libraries: "
                      "libtinfo.so.5: cannot open shared object file: No such file or directory' >&2\nexit 127\n")
    return folder


def test_a_failing_version_quotes_what_the_tool_said(user, tmp_path):
    tree = tmp_path / "Xilinx"
    _failing_tool(tree)
    said = "libtinfo.so.5: cannot open shared object file"

    doctor = run_hlsflow("doctor", cwd=user, env=flow_env(XILINX_ROOT=tree))
    assert doctor.returncode == 1
    row = next(line for line in doctor.stdout.splitlines() if line.startswith("| runs (-version)"))
    assert "failed with status 127, saying" in row and said in row
    assert "hlsflow doctor" not in row  # doctor does not tell you to run doctor

    synth = run_hlsflow("synth", cwd=user, env=flow_env(XILINX_ROOT=tree))
    assert synth.returncode == 2
    assert said in last_error(synth)


def test_vivado_dir_alone_answers(user):
    # No XILINX_ROOT: --vivado names the install (what the launcher mounts for it: tests/image/test_install_mounts.py).
    standin = TESTS_DIR / "standin_xilinx" / "Vivado" / "2018.2"
    proc = run_hlsflow("doctor", "--vivado", standin, cwd=user, env=flow_env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "vivado_hls 2018.2 (test double" in proc.stdout
