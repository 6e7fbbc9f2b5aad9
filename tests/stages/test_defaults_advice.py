"""Flags and defaults that mean what they say (issue 37): tune-precision takes another model's config
with --model as convert does; init picks io_parallel for a small MLP; a plan shares multipliers
under Resource; plans and tuned configs have output folders of their own; a sweep over Precision
keeps per-layer types; a missed gate's advice is true; samples of the wrong shape are refused
before anything is converted; and `flow` after tune-precision reuses the csim nothing changed.
Run as a user would, from a folder outside the checkout, with tiny models."""

import json
import shutil
import sys

import numpy as np
import pytest
import yaml

from conftest import TESTS_DIR, error_lines, run_hlsflow

sys.path.insert(0, str(TESTS_DIR / "search"))
import precision_standins  # noqa: E402


def _ok(proc):
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return proc


def _one_sentence(proc, code: int, words: str) -> str:
    errors = error_lines(proc)
    assert proc.returncode == code and len(errors) == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert errors[0].endswith(".") and words in errors[0], errors[0]
    assert "Traceback" not in proc.stderr
    return errors[0]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A user's folder: their config (`hlsflow init`'s) for mine.keras, whose input is named
    'image', and other.keras, a sharp little classifier every type here gets right, with samples."""
    import tensorflow as tf
    from tensorflow.keras import layers

    root = tmp_path_factory.mktemp("defaults")
    tf.keras.utils.set_random_seed(5)
    rng = np.random.default_rng(5)
    inp = tf.keras.Input((6,), name="image")
    tf.keras.Model(inp, layers.Dense(2, name="head")(inp)).save(root / "mine.keras")
    _ok(run_hlsflow("init", "--model", "mine.keras", cwd=root))
    assert "image:" in (root / "hls4ml_config.yml").read_text()

    inp = tf.keras.Input((4,), name="features")
    other = tf.keras.Model(inp, layers.Dense(3, activation="softmax", name="fc_b")(inp))
    other.get_layer("fc_b").set_weights([np.array([[4, 0, -4], [0, 4, 0], [-4, 0, 4], [1, 1, 1]], np.float32),
                                         np.zeros(3, np.float32)])
    other.save(root / "other.keras")
    x = rng.uniform(-1, 1, (80, 4)).astype(np.float32)
    p = np.sort(other.predict(x, verbose=0), axis=1)
    x = x[p[:, -1] - p[:, -2] > 0.1][:60]  # no near-ties: every label has a margin
    np.savez(root / "other.npz", X=x, y=other.predict(x, verbose=0).argmax(1))
    return root


OTHER = ("--model", "other.keras", "--samples", "other.npz", "--out", "prj_other")


@pytest.fixture(scope="module")
def tuned(folder):
    """convert, then tune-precision, with the same flags, beside a config of another model's."""
    convert = _ok(run_hlsflow("convert", "--model", "other.keras", "--out", "prj_other", cwd=folder))
    tune = run_hlsflow("tune-precision", *OTHER, "--no-compare-auto", cwd=folder)
    return convert, tune


def test_tune_precision_takes_another_models_config_as_convert_does(folder, tuned):
    from hlsflow.config import load_config
    from hlsflow.search.tune import _config_yaml

    _, tune = tuned
    _ok(tune)
    assert "names no layer" not in tune.stdout + tune.stderr
    result = json.loads((folder / "prj_other" / "tune.json").read_text())
    assert result["outcome"] == "already met", result
    # Had a config been written, it is this model's: the settings of the config found, none of its
    # layers, and an output folder of its own (the project it was compared with stays).
    import os

    cwd = os.getcwd()
    os.chdir(folder)
    try:
        cfg = load_config(model="other.keras", out="prj_other", samples="other.npz", announce=False)
    finally:
        os.chdir(cwd)
    written = folder / "other.tuned.yml"
    written.write_text(_config_yaml(cfg, {"fc_b": {"result": "ap_fixed<20,8>"}}, written))
    raw = yaml.safe_load(written.read_text())
    assert set(raw["HLSConfig"]["LayerName"]) == {"fc_b"}, raw["HLSConfig"]["LayerName"]
    assert raw["OutputDir"] == str(folder / "prj_other-tuned"), raw["OutputDir"]
    _ok(run_hlsflow("convert", "--config", written.name, cwd=folder))
    assert (folder / "prj_other-tuned" / "manifest.json").is_file()


def test_a_tuned_config_beside_its_own_has_its_own_output_folder(folder, tmp_path):
    from hlsflow.config import load_config
    from hlsflow.search.tune import _config_yaml

    for name in ("other.keras", "other.npz"):
        shutil.copy(folder / name, tmp_path / name)
    _ok(run_hlsflow("init", "--model", "other.keras", "--samples", "other.npz", "--config", "own.yml", cwd=tmp_path))
    target = tmp_path / "own.tuned.yml"
    raw = yaml.safe_load(_config_yaml(load_config(tmp_path / "own.yml", announce=False),
                                      {"fc_b": {"result": "ap_fixed<20,8>"}}, target))
    assert yaml.safe_load((tmp_path / "own.yml").read_text())["OutputDir"] == "build/other"
    assert raw["OutputDir"] == "build/other-tuned" and raw["KerasModel"] == "other.keras", raw


def test_flow_after_tune_precision_reuses_the_csim_nothing_changed(folder, tuned):
    _ok(tuned[1])
    flow = _ok(run_hlsflow("flow", *OTHER, cwd=folder))
    assert "csim up to date" in flow.stdout, flow.stdout[-3000:]
    assert "csim runs again" not in flow.stdout, flow.stdout[-3000:]


def test_init_picks_io_parallel_for_a_small_mlp_only(tmp_path):
    import tensorflow as tf
    from tensorflow.keras import layers

    inp = tf.keras.Input((16,), name="jets")
    h = layers.Dense(64, activation="relu", name="fc1")(layers.BatchNormalization(name="bn")(inp))
    h = layers.Dense(32, activation="relu", name="fc2")(layers.Dropout(0.1, name="drop")(h))
    tf.keras.Model(inp, layers.Dense(5, activation="softmax", name="out")(h)).save(tmp_path / "jets.keras")
    shutil.copy(TESTS_DIR / "data" / "tiny_cnn.keras", tmp_path / "cnn.keras")
    _ok(run_hlsflow("init", "--model", "jets.keras", "--config", "jets.yml", cwd=tmp_path))
    _ok(run_hlsflow("init", "--model", "cnn.keras", "--config", "cnn.yml", cwd=tmp_path))
    jets, cnn = (tmp_path / "jets.yml").read_text(), (tmp_path / "cnn.yml").read_text()
    assert yaml.safe_load(jets)["IOType"] == "io_parallel" and yaml.safe_load(cnn)["IOType"] == "io_stream"
    rule = "init's rule: io_parallel for a small dense-only model"
    assert rule in jets and rule in cnn and "chosen for this small dense-only model" in jets


def test_a_plan_shares_multipliers_under_resource_in_its_own_output_folder(tmp_path):
    import tensorflow as tf

    inp = tf.keras.Input((16,), name="x")
    h = tf.keras.layers.Dense(8, name="fc")(inp)
    tf.keras.Model(inp, tf.keras.layers.Dense(2, name="small")(h)).save(tmp_path / "tiny.keras")
    # 128 + 16 MACs on 64 DSPs (80% of the xc7z010's 80): fc gets ReuseFactor 4, small keeps 1.
    _ok(run_hlsflow("plan", "--model", "tiny.keras", "--out", "build/tiny", "--part", "xc7z010clg400-1",
                    cwd=tmp_path))
    raw = yaml.safe_load((tmp_path / "build" / "tiny.plan.yml").read_text())
    layers = raw["HLSConfig"]["LayerName"]
    assert raw["HLSConfig"]["Model"]["Strategy"] == "Latency"
    assert layers["fc"]["ReuseFactor"] > 1 and layers["fc"]["Strategy"] == "Resource", layers
    assert layers["small"]["ReuseFactor"] == 1 and "Strategy" not in layers["small"], layers
    assert raw["OutputDir"] == "tiny-plan", raw["OutputDir"]


def test_a_sweep_over_precision_keeps_per_layer_types(folder, tmp_path):
    """A sweep point's config: the grid's Precision is the default, and types set per layer apart from
    the old default (init's proposals from the samples) stay."""
    from hlsflow.config import load_config
    from hlsflow.search.grid import KEYS

    config = tmp_path / "proposed.yml"
    config.write_text(f"KerasModel: {folder / 'other.keras'}\nOutputDir: prj\nHLSConfig:\n"
                      "  Model: {Precision: {default: 'ap_fixed<16,6>'}}\n  LayerName:\n"
                      "    features: {Precision: {result: 'ap_fixed<16,6>'}}\n"
                      "    fc_b: {Precision: {result: 'ap_fixed<20,8>', weight: 'ap_fixed<16,6>', accum: "
                      "'ap_fixed<24,10>'}}\n")
    point = load_config(config, announce=False, **{KEYS["Precision"]: "ap_fixed<10,4>"})
    layers = point.hls_config["LayerName"]
    assert point.hls_config["Model"]["Precision"] == {"default": "ap_fixed<10,4>"}
    assert layers["features"]["Precision"] == {"result": "ap_fixed<10,4>"}
    assert layers["fc_b"]["Precision"] == {"result": "ap_fixed<20,8>", "weight": "ap_fixed<10,4>",
                                           "accum": "ap_fixed<24,10>"}, layers
    # --precision keeps its meaning: every layer's types.
    everywhere = load_config(config, announce=False, precision="ap_fixed<10,4>").hls_config["LayerName"]
    assert everywhere["fc_b"]["Precision"]["result"] == "ap_fixed<10,4>"


@pytest.fixture(scope="module")
def lsb(tmp_path_factory):
    """Ten logits that differ by a few weight LSBs: csim finds no single data-path type at fault."""
    root = tmp_path_factory.mktemp("lsb")
    precision_standins.lsb_model(root)
    return root


def test_a_missed_gate_says_what_is_true(lsb, folder):
    flags = ("--model", "lsb.keras", "--samples", "lsb.npz", "--out", "prj", "--io-type", "io_parallel")
    proc = run_hlsflow("csim", *flags, "--min-agreement", "0.99", cwd=lsb)
    result = json.loads((lsb / "prj" / "csim.json").read_text())
    assert result["layers_at_fault"] == [], result  # no layer is named ...
    error = _one_sentence(proc, 3, "no single layer's type is at fault")
    assert "failing layers" not in error and "tune-precision" in error, error  # ... so none is blamed
    # A gate no analysis ran for (the figure is high): it says that no layer was checked.
    passing = run_hlsflow("csim", *OTHER, "--max-error", "1e-12", cwd=folder)
    error = _one_sentence(passing, 3, "no layer was checked here")
    assert "failing layers" not in error, error


def test_samples_of_the_wrong_shape_are_refused_before_conversion(folder, tmp_path):
    for name in ("other.keras", "hls4ml_config.yml"):
        shutil.copy(folder / name, tmp_path / name)
    np.savez(tmp_path / "wide.npz", X=np.zeros((5, 7), np.float32))
    for command in ("csim", "flow"):
        proc = run_hlsflow(command, "--model", "other.keras", "--samples", "wide.npz", "--out", "prj", cwd=tmp_path)
        _one_sentence(proc, 2, "have shape (7,) per item but the model takes (4,)")
        assert "Converting" not in proc.stdout and not (tmp_path / "prj").exists(), proc.stdout[-2000:]
