"""The catalogue of everyday mistakes, run as a user runs them: the installed `hlsflow` command, from
a user's folder outside this checkout. Each case must end in a non-zero exit whose last line is one
sentence (no traceback), and leave the user's folder as it was: no file of theirs changed, moved or
deleted, no staging folder or lock file left behind. Where a case may write (the output folder of
a run that converts before it finds the mistake), only that folder may change."""

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

# From this file, not conftest's TESTS_DIR: the host's tests (tests/image) import its helpers, and
# there `conftest` is tests/image's.
DATA = Path(__file__).resolve().parents[1] / "data"


def hlsflow(*args, cwd, env=None):
    """The installed command (inside the image: /usr/local/bin/hlsflow; on a host with the flow's
    stack: the venv's), natively: this test is about the command, not the container."""
    command = shutil.which("hlsflow")
    assert command, "the hlsflow command is not installed"
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("XILINX", "VIVADO", "STANDIN_"))}
    environment.update(HLSFLOW_NATIVE="1", TF_CPP_MIN_LOG_LEVEL="2", **(env or {}))
    return subprocess.run([command, *map(str, args)], cwd=cwd, env=environment, capture_output=True, text=True,
                          timeout=600)


def folder_state(root: Path, skip=None) -> dict:
    """{relative path: sha256 (or link target)} of everything under root, hidden files included;
    `skip`: a folder whose content may change."""
    state = {}
    for folder, dirs, files in os.walk(root):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            path = Path(folder) / name
            if skip and (path == skip or skip in path.parents):
                continue
            rel = path.relative_to(root).as_posix()
            state[rel] = f"-> {os.readlink(path)}" if path.is_symlink() else hashlib.sha256(path.read_bytes()).hexdigest()
    return state


def user_folder(root: Path) -> Path:
    """root, made a user's folder before `hlsflow init`: models/ with the tiny CNN and its samples."""
    (root / "models").mkdir()
    for name in ("tiny_cnn.keras", "tiny_samples.npz"):
        shutil.copy(DATA / name, root / "models" / name)
    return root


@pytest.fixture(scope="module")
def starter(tmp_path_factory):
    """A user's folder: models/ with the tiny CNN, its samples and the config `hlsflow init` wrote."""
    root = user_folder(tmp_path_factory.mktemp("user"))
    proc = hlsflow("init", "--model", "models/tiny_cnn.keras", "--samples", "models/tiny_samples.npz", cwd=root)
    assert proc.returncode == 0, proc.stderr
    return root


@pytest.fixture(scope="module")
def converted_user(starter, tmp_path_factory):
    """The same folder after a successful `hlsflow convert` into build/tiny (an hlsflow output)."""
    root = tmp_path_factory.mktemp("converted")
    shutil.copytree(starter, root, dirs_exist_ok=True)
    proc = hlsflow("convert", "--config", "models/hls4ml_config.yml", "--out", "build/tiny", cwd=root)
    assert proc.returncode == 0, proc.stderr
    return root


def _samples(path: Path, **arrays) -> str:
    import numpy as np  # here, not at the top: the host's tests import this file's helpers without numpy

    np.savez(path, **arrays)
    return str(path)


def _x(n=4):
    import numpy as np

    return np.random.default_rng(0).uniform(0, 1, (n, 8, 8, 1)).astype(np.float32)


# (case id, setup(folder) -> extra args, args, expected exit, words in the error, folder that may change)
CONFIG = ("--config", "models/hls4ml_config.yml")
OUT = ("--out", "build/tiny")
CASES = [
    # output folders hlsflow cannot prove are its own
    ("out is the current folder", None, ("convert", *CONFIG, "--out", "."), 2, "is the folder you are in", None),
    ("out holds the config", None, ("convert", *CONFIG, "--out", "models"), 2, "an input of this run", None),
    ("OutputDir: . in a config", "dot_config", ("convert", "--config", "dot.yml"), 2, "is the folder you are in",
     None),
    ("out holds a web app's manifest.json", "webapp", ("convert", *CONFIG, "--out", "webapp"), 2,
     "holds manifest.json", None),
    ("out holds a foreign hls4ml_config.yml", "foreign_project", ("convert", *CONFIG, "--out", "other"), 2,
     "which hlsflow did not write", None),
    ("out is a symbolic link", "symlink", ("convert", *CONFIG, "--out", "link"), 2, "is a symbolic link", None),
    ("out is a file", "a_file", ("convert", *CONFIG, "--out", "a_file"), 2, "is a file, not a folder", None),
    ("out is the root folder", None, ("convert", *CONFIG, "--out", "/"), 2, "is the root folder", None),
    ("verify on a folder hlsflow did not write", "webapp", ("verify", "webapp"), 2,
     "is not an hlsflow manifest", None),
    # samples
    ("NaN samples", "nan", ("csim", *CONFIG, *OUT, "--samples", "bad.npz"), 2, "holds NaN or infinite values", None),
    ("inf samples", "inf", ("csim", *CONFIG, *OUT, "--samples", "bad.npz"), 2, "holds NaN or infinite values", None),
    ("float64 beyond float32", "huge", ("csim", *CONFIG, *OUT, "--samples", "bad.npz"), 2, "beyond float32", None),
    ("empty samples", "empty", ("csim", *CONFIG, *OUT, "--samples", "bad.npz"), 2, "holds no samples", None),
    ("string samples", "strings", ("csim", *CONFIG, *OUT, "--samples", "bad.npz"), 2, "not real numbers", None),
    ("complex samples", "complex", ("csim", *CONFIG, *OUT, "--samples", "bad.npz"), 2, "complex numbers", None),
    ("string labels", "string_labels", ("csim", *CONFIG, *OUT, "--samples", "bad.npz"), 2, "not numbers", None),
    ("fewer labels than samples", "short_labels", ("csim", *CONFIG, *OUT, "--samples", "bad.npz"), 2,
     "4 samples but 3 labels", None),
    ("no X array", "no_x", ("csim", *CONFIG, *OUT, "--samples", "bad.npz"), 2, "has no array named X", None),
    ("samples of the wrong shape", "wrong_shape", ("csim", *CONFIG, *OUT, "--samples", "bad.npz"), 2,
     "per item but the model takes", "build/tiny"),
    # flags
    ("--max-samples abc", None, ("csim", *CONFIG, *OUT, "--max-samples", "abc"), 2, "is not a positive whole number",
     None),
    ("--min-agreement high", None, ("flow", *CONFIG, *OUT, "--min-agreement", "high"), 2,
     "is not a fraction between 0 and 1", None),
    ("--workers -3", None, ("csim", *CONFIG, *OUT, "--workers=-3"), 2, "is not a positive whole number", None),
    ("--cross-check 0", None, ("csim", *CONFIG, *OUT, "--cross-check", "0"), 2, "is not a positive whole number",
     None),
    ("--timeout never", None, ("synth", *CONFIG, *OUT, "--timeout", "never"), 2, "is not a positive number", None),
    # config
    ("ReuseFactor 10^12", None, ("convert", *CONFIG, *OUT, "--reuse-factor", str(10**12)), 2,
     "more than hls4ml's C++ can hold", None),
    ("LayerName naming no layer", "layer_typo", ("convert", "--config", "typo.yml", *OUT), 2,
     "did you mean 'conv'?", None),
    # models
    ("a Lambda layer", "lambda_model", ("convert", "--model", "lambda.keras", *OUT), 2, "has a Lambda layer", None),
]


def setup_case(kind, root: Path) -> None:
    import numpy as np

    models = root / "models"
    if kind == "dot_config":
        (root / "dot.yml").write_text((models / "hls4ml_config.yml").read_text()
                                      .replace("KerasModel: tiny_cnn.keras", "KerasModel: models/tiny_cnn.keras")
                                      .replace("samples: tiny_samples.npz", "samples: models/tiny_samples.npz")
                                      .replace("OutputDir: ", "OutputDir: . #"))
    elif kind == "webapp":
        (root / "webapp").mkdir()
        (root / "webapp" / "manifest.json").write_text('{"name": "my app", "start_url": "/"}\n')
        (root / "webapp" / "index.html").write_text("<html></html>\n")
    elif kind == "foreign_project":
        (root / "other").mkdir()
        (root / "other" / "hls4ml_config.yml").write_text("ProjectName: mine\n")
        (root / "other" / "train.py").write_text("print('my training script')\n")
    elif kind == "symlink":
        (root / "elsewhere").mkdir()
        (root / "link").symlink_to(root / "elsewhere")
    elif kind == "a_file":
        (root / "a_file").write_text("not a folder\n")
    elif kind in ("nan", "inf", "huge"):
        x = _x().astype(np.float64)
        x[2, 0, 0, 0] = {"nan": np.nan, "inf": np.inf, "huge": 1e300}[kind]
        _samples(root / "bad.npz", X=x)
    elif kind == "empty":
        _samples(root / "bad.npz", X=np.zeros((0, 8, 8, 1), np.float32))
    elif kind == "strings":
        _samples(root / "bad.npz", X=np.full((4, 8, 8, 1), "a"))
    elif kind == "complex":
        _samples(root / "bad.npz", X=_x() + 1j)
    elif kind == "string_labels":
        _samples(root / "bad.npz", X=_x(), y=np.array(["cat", "dog", "cat", "dog"]))
    elif kind == "short_labels":
        _samples(root / "bad.npz", X=_x(), y=np.array([0, 1, 2]))
    elif kind == "no_x":
        _samples(root / "bad.npz", inputs=_x())
    elif kind == "wrong_shape":
        _samples(root / "bad.npz", X=np.zeros((4, 7, 7, 1), np.float32))
    elif kind == "layer_typo":
        text = (models / "hls4ml_config.yml").read_text()
        assert "\n    conv:\n" in text, text
        (root / "typo.yml").write_text(text.replace("\n    conv:\n", "\n    convv:\n")
                                       .replace("KerasModel: tiny_cnn.keras", "KerasModel: models/tiny_cnn.keras")
                                       .replace("samples: tiny_samples.npz", "samples: models/tiny_samples.npz"))
    elif kind == "lambda_model":
        import tensorflow as tf

        inp = tf.keras.Input((4,))
        out = tf.keras.layers.Lambda(lambda t: t * 2)(tf.keras.layers.Dense(2)(inp))
        tf.keras.Model(inp, out).save(root / "lambda.keras")
    elif kind is not None:
        raise AssertionError(kind)


def assert_one_sentence(proc, *words: str) -> None:
    """The run ended in one `ERROR: ...` sentence, its last line, holding each of `words`."""
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines, proc.stdout[-2000:]
    last = lines[-1]
    assert last.startswith("ERROR: ") and last.rstrip().endswith("."), last
    assert [line for line in lines if line.startswith("ERROR:")] == [last], proc.stderr[-2000:]
    for word in words:
        assert word in last, last


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_mistake_is_one_sentence_and_touches_nothing(case, starter, tmp_path):
    name, kind, args, code, words, may_change = case
    root = tmp_path / "user"
    shutil.copytree(starter, root, symlinks=True)
    setup_case(kind, root)
    before = folder_state(root)
    proc = hlsflow(*args, cwd=root)
    assert proc.returncode == code, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert_one_sentence(proc, words)
    skip = root / may_change if may_change else None
    assert folder_state(root, skip) == {k: v for k, v in before.items()
                                        if not skip or not (root / k == skip or skip in (root / k).parents)}


def test_foreign_file_in_an_output_folder_blocks_its_replacement(converted_user, tmp_path):
    """A file hlsflow did not write, dropped into its output folder, is never deleted with it."""
    root = tmp_path / "user"
    shutil.copytree(converted_user, root, symlinks=True)
    (root / "build" / "tiny" / "notes.txt").write_text("my notes\n")
    before = folder_state(root)
    proc = hlsflow("convert", *CONFIG, *OUT, "--force", cwd=root)
    assert proc.returncode == 2
    assert_one_sentence(proc, "holds notes.txt, which hlsflow did not write")
    assert folder_state(root) == before


def test_damaged_manifest_is_named_not_crashed_on(converted_user, tmp_path):
    root = tmp_path / "user"
    shutil.copytree(converted_user, root, symlinks=True)
    manifest = root / "build" / "tiny" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["stages"]["convert"]["outputs"] = ["not", "a", "mapping"]
    manifest.write_text(json.dumps(data))
    before = folder_state(root)
    for args in (("verify", "build/tiny"), ("csim", *CONFIG, *OUT)):
        proc = hlsflow(*args, cwd=root)
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert_one_sentence(proc, "manifest.json is damaged (stages/convert/outputs")
    assert folder_state(root) == before


def test_dead_runs_leftovers_are_cleaned_and_the_lock_file_goes(converted_user, tmp_path):
    """A convert killed half-way leaves its marked staging folder and its lock file; the next run
    removes both (and nothing unmarked), and leaves no lock file of its own."""
    root = tmp_path / "user"
    shutil.copytree(converted_user, root, symlinks=True)
    from hlsflow.state import signing  # the marks a killed run of this user leaves: its key's

    dead = root / "build" / ".tiny.partial-abc123"
    (dead / "firmware").mkdir(parents=True)
    (dead / ".hlsflow-staging").write_text(signing.vouch(f"staging:{dead.name}"))
    (dead / "firmware" / "half.h").write_text("// half written\n")
    unmarked = root / "build" / ".tiny.partial-mine"
    unmarked.mkdir()
    (unmarked / "keep.txt").write_text("not hlsflow's\n")
    forged = root / "build" / ".tiny.partial-forged"  # a mark anyone can make: an empty file
    forged.mkdir()
    (forged / ".hlsflow-staging").touch()
    (root / "build" / ".tiny.lock").write_text(signing.vouch("lock:.tiny.lock"))
    proc = hlsflow("convert", *CONFIG, *OUT, "--force", cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not dead.exists()
    assert (unmarked / "keep.txt").read_text() == "not hlsflow's\n"
    assert sorted(p.name for p in (root / "build").iterdir()) == [".tiny.partial-forged", ".tiny.partial-mine", "tiny"]
