"""What a user types is checked by its grammar, natively, as a user runs the installed command from
a folder of their own: every numeric flag takes ASCII digits only (int() and float() also take "٣",
"1_000", blanks and "nan", and int() raised on "²"), no flag or path may hold a control character,
and a sweep's grid must name at least one key and have at most --max-points points (counted before
any point is made). Each mistake ends in exit 2, one sentence, and the user's folder as it was."""

import shutil

import pytest

from conftest import REPO_ROOT, TESTS_DIR
from state.test_safety import assert_one_sentence, folder_state, hlsflow

MODEL = ("--model", "models/tiny_cnn.keras")
OUT = ("--out", "build/tiny")
GRID = ("--grid", "grid.yml")


@pytest.fixture
def user(tmp_path):
    """A user's folder: the tiny CNN and its samples, a small grid, and a config whose OutputDir holds
    a newline (as a YAML escape)."""
    (tmp_path / "models").mkdir()
    for name in ("tiny_cnn.keras", "tiny_samples.npz"):
        shutil.copy(TESTS_DIR / "data" / name, tmp_path / "models" / name)
    (tmp_path / "grid.yml").write_text("ReuseFactor: [1, 2]\nPrecision: ['ap_fixed<16,6>', 'ap_fixed<8,3>']\n")
    (tmp_path / "empty.yml").write_text("# a grid still to be written\n")
    (tmp_path / "nested_empty.yml").write_text("grid: {}\n")
    # 1000 x 1000: a million points, which made the sweep work for minutes before its first line.
    values = ", ".join(str(i) for i in range(1, 1001))
    (tmp_path / "huge.yml").write_text(f"ReuseFactor: [{values}]\nClockPeriod: [{values}]\n")
    (tmp_path / "newline.yml").write_text('KerasModel: models/tiny_cnn.keras\nOutputDir: "build/a\\nb"\n')
    return tmp_path


def run(user, *args):
    """The installed command, running this checkout's code (the image's own copy may be older)."""
    return hlsflow(*args, cwd=user, env={"PYTHONPATH": str(REPO_ROOT)})


# (args, words of the sentence): every numeric flag of the user's tasks, each with a value int() or
# float() would take (or raise on) but no flag means.
NUMBERS = [
    (("csim", *MODEL, "--max-samples", "²"), "--max-samples '²' is not a positive whole number"),
    (("csim", *MODEL, "--max-samples", "٣"), "--max-samples '٣' is not a positive whole number"),
    (("csim", *MODEL, "--max-samples", "1_000"), "--max-samples '1_000' is not a positive whole number"),
    (("csim", *MODEL, "--max-samples", " 5"), "--max-samples ' 5' is not a positive whole number"),
    (("csim", *MODEL, "--workers", "٢"), "--workers '٢' is not a positive whole number"),
    (("csim", *MODEL, "--cross-check", "2.0"), "--cross-check '2.0' is not a positive whole number"),
    (("csim", *MODEL, "--min-agreement", "nan"), "--min-agreement 'nan' is not a fraction between 0 and 1"),
    (("csim", *MODEL, "--max-error", "inf"), "--max-error 'inf' is not a positive number"),
    (("flow", *MODEL, "--max-error", "1e999"), "--max-error '1e999' is not a positive number"),
    (("synth", *MODEL, "--timeout", "nan"), "--timeout 'nan' is not a positive number"),
    (("plan", *MODEL, "--dsp-margin", "٠.٥"), "--dsp-margin '٠.٥' is not a fraction in (0, 1]"),
    (("tune-precision", *MODEL, "--target", "infinity"), "--target 'infinity' is not a fraction in (0, 1]"),
    (("profile", *MODEL, "--max-samples", "²"), "--max-samples '²' is not a positive whole number"),
    (("sweep", *MODEL, *GRID, "--max-points", "5e2"), "--max-points '5e2' is not a positive whole number"),
    (("sweep", *MODEL, *GRID, "--memory-per-point", "٤GB"), "Memory per point '٤GB' is not an amount of memory"),
    (("convert", *MODEL, "--reuse-factor", "²"), "ReuseFactor '²' (--reuse-factor) is not a positive integer"),
    (("convert", *MODEL, "--reuse-factor", " 8"), "ReuseFactor ' 8' (--reuse-factor) is not a positive integer"),
    (("convert", *MODEL, "--clock", "inf"), "Clock period 'inf' is not a positive number"),
    (("convert", *MODEL, "--clock", "1_0"), "Clock period '1_0' is not a positive number"),
    (("convert", *MODEL, "--precision", "ap_fixed<١٦,6>"), "is not a fixed-point type"),
    (("init", *MODEL, "--config", "new.yml", "--clock", "nan"), "Clock period 'nan' is not a positive number"),
    (("lab", "--port", "²"), "--port '²' is not a port number from 1 to 65535"),
]

# A control character in any flag or path, named before anything runs.
CONTROLS = [
    (("convert", *MODEL, "--out", "build/a\nb"), "--out 'build/a\\nb' holds a newline"),
    (("convert", "--model", "models/tiny_cnn.keras\n", *OUT), "--model 'models/tiny_cnn.keras\\n' holds a newline"),
    (("csim", *MODEL, "--samples", "models/tiny\tsamples.npz"), "--samples 'models/tiny\\tsamples.npz' holds a tab"),
    (("convert", "--config", "x\x1b[2J.yml"), "--config 'x\\x1b[2J.yml' holds U+001B"),
    (("sweep", *MODEL, "--grid", "grid\r.yml"), "--grid 'grid\\r.yml' holds a carriage return"),
    (("verify", "build/a\nb"), "The argument out 'build/a\\nb' holds a newline"),
    (("convert", "--config", "newline.yml"), "The output directory"),
]

# What invoke's parser refuses (an unknown task or flag, a flag without its value): hlsflow's sentence.
PARSE = [
    (("csimm", *MODEL), "hlsflow has no task or flag 'csimm': `hlsflow --help` lists the tasks"),
    (("profile", *MODEL, "--bogus"), "hlsflow has no task or flag '--bogus'"),
    (("--bogus", "convert", *MODEL), "hlsflow has no task or flag '--bogus'"),
    (("csim", *MODEL, "--max-samples"), "--max-samples needs a value: `hlsflow --help` lists the tasks"),
]

# Grids refused before any point is made: no sweep folder is written.
GRIDS = [
    (("sweep", *MODEL, "--grid", "empty.yml"), "names no config key"),
    (("sweep", *MODEL, "--grid", "nested_empty.yml"), "names no config key"),
    (("sweep", *MODEL, "--grid", "huge.yml"), "has 1,000,000 points, more than --max-points 500"),
    (("sweep", *MODEL, *GRID, "--max-points", "3"), "has 4 points, more than --max-points 3"),
]


@pytest.mark.parametrize("args, words", NUMBERS + CONTROLS + PARSE + GRIDS,
                         ids=[" ".join(a[:1] + a[-2:]).encode("unicode_escape").decode() for a, _ in
                              NUMBERS + CONTROLS + PARSE + GRIDS])
def test_refused_by_its_grammar_and_nothing_written(user, args, words):
    before = folder_state(user)
    proc = run(user, *args)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert_one_sentence(proc, words)
    assert folder_state(user) == before
    assert not list(user.glob("**/*-sweep")) and not (user / "build").exists()
