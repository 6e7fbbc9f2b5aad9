"""What someone hands a user (a config, a model, an output folder) is data: it never makes hlsflow
run code, and hlsflow never deletes a file of the user's because of its name. Each case runs the
installed command from a user's folder, as tests/state/test_safety.py does, with a payload that
would leave a marker file if it ever ran; the sanity checks show that each payload does run
where nothing stops it."""

import contextlib
import hashlib
import json
import os
import pickle
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import TESTS_DIR
from standin_hang import descendants
from test_safety import CONFIG, OUT, assert_one_sentence, converted_user, folder_state, hlsflow, starter  # noqa: F401

STANDIN = {"XILINX_VIVADO": str(TESTS_DIR / "standin_xilinx" / "Vivado" / "2018.2"), "STANDIN_DELAY": "0"}


def _copy(src: Path, tmp_path: Path) -> Path:
    root = tmp_path / "user"
    shutil.copytree(src, root, symlinks=True)
    return root


# ---------------------------------------------------------------- values that reach Tcl and C++

def test_a_part_that_would_run_tcl_is_refused_before_anything_runs(starter, tmp_path):
    """hls4ml writes the part into `set part "..."` in project.tcl, which the stand-in's real Tcl
    interpreter (like Vivado's) evaluates: `[exec ...]` there would run."""
    root = _copy(starter, tmp_path)
    marker = root / "PWNED"
    payload = f"xc7z020clg400-1[exec touch {marker}]"
    text = (root / "models" / "hls4ml_config.yml").read_text()
    assert "\nPart: " in text, text
    (root / "models" / "evil.yml").write_text("\n".join(
        f'Part: "{payload}"' if line.startswith("Part: ") else line for line in text.splitlines()) + "\n")
    before = folder_state(root)
    for args in (("flow", *CONFIG, *OUT, "--part", payload), ("flow", "--config", "models/evil.yml", *OUT)):
        proc = hlsflow(*args, cwd=root, env=STANDIN)
        assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert_one_sentence(proc, "is not a part name")
        assert not marker.exists()
        assert folder_state(root) == before


def test_the_part_payload_would_run_in_the_tcl_hls4ml_writes(tmp_path):
    """Sanity: the line hls4ml writes, evaluated by Tcl as Vivado's interpreter does, runs the payload."""
    marker = tmp_path / "PWNED"
    script = tmp_path / "project.tcl"
    script.write_text(f'variable part\nset part "xc7z020clg400-1[exec touch {marker}]"\n')
    subprocess.run(["tclsh", str(script)], check=True, timeout=60)
    assert marker.exists()


def _model_with_input_named(path: Path, name: str) -> None:
    import tensorflow as tf

    inp = tf.keras.Input((4,), name=name)
    tf.keras.Model(inp, tf.keras.layers.Dense(2, name="dense")(inp)).save(path)


@pytest.mark.parametrize("case", ["layer name", "Implementation", "output path", "clock"])
def test_text_that_would_become_code_is_refused(case, starter, tmp_path):
    root = _copy(starter, tmp_path)
    marker = root / "PWNED"
    code = f'"); system("touch {marker}"); //'
    args, words = ("convert", *CONFIG, *OUT), None
    if case == "layer name":
        # Keras keeps an Input's name as given; hls4ml makes it a C++ variable of the project.
        _model_with_input_named(root / "evil.keras", "x" + code)
        args, words = ("convert", "--model", "evil.keras", *OUT), "has characters hls4ml would write into C++"
    elif case == "Implementation":
        text = (root / "models" / "hls4ml_config.yml").read_text()
        assert "\n    conv:\n" in text, text
        (root / "models" / "evil.yml").write_text(text.replace("\n    conv:\n", f"\n    conv:\n      Implementation: "
                                                                f"{json.dumps('latency' + code)}\n"))
        args, words = ("convert", "--config", "models/evil.yml", *OUT), "Implementation"
    elif case == "output path":
        args, words = ("convert", *CONFIG, "--out", f"build/x{code}"), "without quotes, backslashes or control"
    elif case == "clock":
        args, words = ("convert", *CONFIG, *OUT, "--clock", "inf"), "is not a positive number of nanoseconds"
    before = folder_state(root)
    proc = hlsflow(*args, cwd=root)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert_one_sentence(proc, words)
    assert not marker.exists()
    assert folder_state(root) == before


# ---------------------------------------------------------------- an output folder handed over

def _rewrite_manifest(out: Path, stage: str, rel: str) -> None:
    """What anyone can do to a manifest: record the hash of a file they replaced."""
    from hlsflow.state import outdir

    manifest = json.loads((out / "manifest.json").read_text())
    record = manifest["stages"][stage]
    prefix = "x:" if record["outputs"][rel].startswith("x:") else ""
    record["outputs"][rel] = prefix + hashlib.sha256((out / rel).read_bytes()).hexdigest()
    if stage == "convert":
        record["tree_hash"] = manifest["tree_hash"] = outdir.tree_hash(record["outputs"])
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))


class _Planted:
    """A pickle that creates a file when it is loaded (pickle calls what __reduce__ names)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def test_a_planted_fast_engine_is_never_unpickled(converted_user, tmp_path):
    root = _copy(converted_user, tmp_path)
    out = root / "build" / "tiny"
    assert hlsflow("csim", *CONFIG, *OUT, cwd=root).returncode == 0
    engine = out / "csim_cache" / "fast_engine.pkl"
    assert engine.is_file()
    marker = root / "PWNED"
    payload = pickle.dumps(_Planted(marker))
    pickle.loads(payload)  # sanity: loading it runs the payload
    assert marker.exists()
    marker.unlink()
    engine.write_bytes(payload)
    _rewrite_manifest(out, "fast-engine", "csim_cache/fast_engine.pkl")

    check = hlsflow("verify", "build/tiny", cwd=root)
    assert check.returncode == 0, check.stderr[-2000:]
    assert "NOT signed with your key: fast-engine" in check.stdout, check.stdout
    assert "does not say who wrote them" in check.stdout

    proc = hlsflow("csim", *CONFIG, *OUT, "--force", cwd=root)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert not marker.exists()
    assert "Fast engine: reused" not in proc.stdout
    assert pickle.loads(engine.read_bytes()).__class__.__name__ == "Engine"  # built again, by this user
    again = hlsflow("verify", "build/tiny", cwd=root)
    assert again.returncode == 0 and "written by you: every record is signed with your key" in again.stdout, \
        again.stdout


def test_a_planted_build_script_never_runs(converted_user, tmp_path):
    """csim's C++ path runs the project's build_lib.sh and loads the library it builds: a project
    whose records this user did not sign is converted again from the model and config first (the
    planted file is exactly what the rewritten record says, so it is the record's to replace)."""
    root = _copy(converted_user, tmp_path)
    out = root / "build" / "tiny"
    marker = root / "PWNED"
    script = out / "build_lib.sh"
    script.write_text(f"touch {marker}\n" + script.read_text())
    _rewrite_manifest(out, "convert", "build_lib.sh")
    subprocess.run(["bash", "-c", f"head -1 {script} | bash"], check=True)  # sanity: the line runs
    assert marker.exists()
    marker.unlink()

    proc = hlsflow("csim", *CONFIG, *OUT, "--engine", "cpp", "--max-samples", "2", cwd=root)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "it was not recorded by you" in proc.stdout, proc.stdout
    assert not marker.exists()
    assert "touch" not in script.read_text()  # hls4ml wrote it again


# ---------------------------------------------------------------- files that are the user's

def test_files_named_like_tool_leftovers_stay_the_users(converted_user, tmp_path):
    root = _copy(converted_user, tmp_path)
    out = root / "build" / "tiny"
    mine = {"notes_prj/thesis.tex": "\\chapter{Results}\n", "results.o": "my object\n",
            "vivado_notes.log": "my notes\n", ".draft.1.tmp": "my draft\n"}
    for rel, text in mine.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(text)
    before = folder_state(root)
    for args in (("convert", *CONFIG, *OUT, "--force"), ("flow", *CONFIG, *OUT, "--force")):
        proc = hlsflow(*args, cwd=root, env=STANDIN)
        assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert_one_sentence(proc, "which hlsflow did not write")
        assert folder_state(root) == before


def test_what_failed_and_killed_syntheses_left_is_removed_by_the_next_run(converted_user, tmp_path):
    """Tool files that no successful run recorded, but the failed run recorded exactly ("left") or
    the killed run declared at its start ("may_leave"), are hlsflow's: the project replaces them."""
    root = _copy(converted_user, tmp_path)
    out = root / "build" / "tiny"
    failed = hlsflow("synth", *CONFIG, *OUT, cwd=root, env={**STANDIN, "STANDIN_MODE": "fail"})
    assert failed.returncode != 0
    record = json.loads((out / "manifest.json").read_text())["stages"]["synth"]
    assert record["status"] == "failed" and "vivado_hls.log" in record["left"], record
    assert hlsflow("convert", *CONFIG, *OUT, "--force", cwd=root).returncode == 0
    assert not (out / "vivado_hls.log").exists() and not (out / "myproject_prj").exists()

    # Killed outright while synthesising: nothing records what it wrote but its declaration.
    command = shutil.which("hlsflow")
    env = {**os.environ, **STANDIN, "STANDIN_MODE": "hang", "HLSFLOW_NATIVE": "1"}
    proc = subprocess.Popen([command, "synth", *CONFIG, *OUT], cwd=root, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        for _ in range(600):
            if (out / "vivado_hls.log").exists():
                break
            time.sleep(0.2)
        assert (out / "vivado_hls.log").exists()
    finally:
        tree = descendants(proc.pid)  # vivado_hls runs in a process group of its own
        for pid in [proc.pid, *tree]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=60)
    record = json.loads((out / "manifest.json").read_text())["stages"]["synth"]
    assert record["status"] == "running" and "myproject_prj/" in record["may_leave"], record
    (out / "notes_prj").mkdir()
    (out / "notes_prj" / "thesis.tex").write_text("mine\n")
    refused = hlsflow("convert", *CONFIG, *OUT, "--force", cwd=root)
    assert refused.returncode == 2
    assert_one_sentence(refused, "holds notes_prj/thesis.tex, which hlsflow did not write")
    shutil.rmtree(out / "notes_prj")
    proc = hlsflow("convert", *CONFIG, *OUT, "--force", cwd=root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not (out / "vivado_hls.log").exists() and not (out / "myproject_prj").exists()


def test_a_cifar_file_that_would_run_code_is_refused(tmp_path):
    """`invoke train-model --cifar FILE` reads CIFAR-10's python batches, which are pickles: a
    real batch's layout loads; one that names any other global is refused before it is called."""
    from hlsflow.dev.train import _read_cifar_batches
    from hlsflow.errors import FlowError

    batch = {b"batch_label": b"training batch 1 of 5", b"labels": [3, 7],
             b"data": np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072), b"filenames": [b"a.png", b"b.png"]}
    x, y = _read_cifar_batches([pickle.dumps(batch, protocol=2)])
    assert x.shape == (2, 32, 32, 3) and y.tolist() == [3, 7]
    marker = tmp_path / "PWNED"
    with pytest.raises(FlowError, match="which a CIFAR-10 batch does not hold"):
        _read_cifar_batches([pickle.dumps({**batch, b"data": _Planted(marker)}, protocol=2)])
    assert not marker.exists()
