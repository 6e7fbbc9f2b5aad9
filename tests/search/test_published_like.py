"""Issue 37's published hls4ml example models (fastmachinelearning/example-models, keras/), as a new
user meets them, through small stand-ins built here (the published files are not in this repository;
bench/results/advice-2026-12-07b.md has the figures measured on them):
- KERAS_conv1d.json: three Conv1D of 280 to 1280 products a sum and a Dense of 3200. hls4ml casts
  each product to accum_t (truncating) before adding, so a sum drifts low by half a step a product:
  19.5% agreement on init's types. The stand-in: one Conv1D of 1024 products a sum, small weights.
- KERAS_conv1d_small.json: a softmax whose closest 1% of samples ask for a table beyond 2^14
  entries, so init gave none and 16.5% of the labels tied. The stand-in: three logits, 96% of the
  samples' top two 0.005 to 0.03 apart, 4% closer than 1e-5.
From an empty folder: `init --samples`, then `csim`; and from hls4ml's default types, csim's cause
and `tune-precision`. Weights set by hand from a seeded generator: deterministic, built in a second."""

import json

import numpy as np
import pytest
import yaml

from state.test_safety import hlsflow


def _ok(proc):
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stdout[-4000:] + proc.stderr[-3000:]
    return proc.stdout


def conv_like(root):
    """Conv1D(16, kernel 32) on 48 x 32 inputs (1024 products a sum), Flatten, Dense(5) softmax; samples
    whose Keras top-1 leads by 0.05 or more (no near ties), labelled by Keras itself."""
    import tensorflow as tf
    from tensorflow.keras import layers

    rng = np.random.default_rng(5)
    inp = tf.keras.Input((48, 32), name="signal")
    a = layers.Flatten(name="flat")(layers.Conv1D(16, 32, activation="relu", name="conv")(inp))
    model = tf.keras.Model(inp, layers.Dense(5, activation="softmax", name="head")(a))
    model.get_layer("conv").set_weights([rng.normal(0, 0.02, (32, 32, 16)).astype(np.float32), np.zeros(16, np.float32)])
    model.get_layer("head").set_weights([rng.normal(0, 0.15, (17 * 16, 5)).astype(np.float32), np.zeros(5, np.float32)])
    x = rng.normal(0, 1, (600, 48, 32)).astype(np.float32)
    p = np.sort(model.predict(x, verbose=0), axis=1)
    keep = np.where(p[:, -1] - p[:, -2] > 0.05)[0][:300]
    model.save(root / "conv.keras")
    np.savez(root / "conv.npz", X=x[keep])
    return root / "conv.keras", root / "conv.npz"


def ties_like(root, n=300):
    """Logits z0 = 4u, z1 = 4u + v, z2 = -4u, softmax; the label is v's sign: |v| in [0.005, 0.03] on
    96% of the samples, below 1e-5 on 4% (true near ties)."""
    import tensorflow as tf
    from tensorflow.keras import layers

    rng = np.random.default_rng(2)
    inp = tf.keras.Input((2,), name="x")
    model = tf.keras.Model(inp, layers.Activation("softmax", name="prob")(layers.Dense(3, name="logits")(inp)))
    model.get_layer("logits").set_weights([np.array([[4, 4, -4], [0, 1, 0]], np.float32), np.zeros(3, np.float32)])
    tied = rng.random(n) < 0.04
    v = np.where(tied, rng.uniform(1e-6, 1e-5, n), rng.uniform(0.005, 0.03, n)) * rng.choice([-1, 1], n)
    x = np.stack([rng.uniform(0.5, 2.0, n), v], 1).astype(np.float32)
    model.save(root / "ties.keras")
    np.savez(root / "ties.npz", x=x)
    return root / "ties.keras", root / "ties.npz"


@pytest.fixture(scope="module")
def conv_user(tmp_path_factory):
    """An empty folder with the Conv1D stand-in, after `init --samples`."""
    root = tmp_path_factory.mktemp("conv")
    conv_like(root)
    _ok(hlsflow("init", "--model", "conv.keras", "--samples", "conv.npz", cwd=root))
    return root


def test_init_gives_the_accumulators_the_bits_their_sums_need(conv_user):
    config = (conv_user / "hls4ml_config.yml").read_text()
    conv = yaml.safe_load(config)["HLSConfig"]["LayerName"]["conv"]["Precision"]
    # 1024 products: log2(1024) - 1 - 2 = 7 bits more than ap_fixed<16,6>'s 10 fractional bits.
    assert conv["accum"] == "ap_fixed<23,6>", conv
    assert "conv accum: ap_fixed<23,6>  from the samples: it sums 1024 products, each cut to its last bit" in config
    _ok(hlsflow("csim", cwd=conv_user))
    csim = json.loads((conv_user / "build" / "conv" / "csim.json").read_text())
    assert csim["agreement"] >= 0.95, csim["agreement"]


def test_csim_and_tune_name_the_accumulators_and_buy_their_bits_alone(conv_user):
    """hls4ml's default types (init without samples, into build/default): the sums drift, csim names the
    accumulators, and tune reaches the gate by their fractional bits alone, saying what it bought."""
    root = conv_user
    _ok(hlsflow("init", "--model", "conv.keras", "--config", "default.yml", cwd=root))
    config = yaml.safe_load((root / "default.yml").read_text())
    config["OutputDir"], config["Flow"]["emulation"]["samples"] = "build/default", "conv.npz"
    (root / "default.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    out = _ok(hlsflow("csim", "--config", "default.yml", cwd=root))
    csim = json.loads((root / "build" / "default" / "csim.json").read_text())
    assert csim["agreement"] < 0.95 and csim["cause"]["kind"] == "accumulators", (csim["agreement"], csim["cause"])
    line = next(line for line in out.splitlines() if line.startswith("What limits agreement:"))
    assert "the accumulators' rounding: hls4ml cuts each product to accum_t before adding (1024 products a sum in " \
           "conv)" in line, line
    out = _ok(hlsflow("tune-precision", "--config", "default.yml", "--no-compare-auto", cwd=root))
    result = json.loads((root / "build" / "default" / "tune.json").read_text())
    after = result["after"]
    assert result["outcome"] == "met" and after["agreement"] >= 0.99, (result["outcome"], after["agreement"])
    assert result["cause"]["kind"] == "accumulators", result["cause"]
    # Only accumulators changed, and few bits: the data-path search of before bought 8 bits on every type.
    assert {kind for kinds in after["changes"].values() for kind in kinds} == {"accum"}, after["changes"]
    assert 0 < after["added_bits"] <= 8, after
    final = out.strip().splitlines()[-1]
    assert final.startswith("Gate met:") and f"for {after['added_bits']} added bits" in final and "conv accum" in final, final


def test_init_gives_the_table_that_tells_apart_all_but_five_percent(tmp_path):
    """The closest 1% of the samples' top two logits are beyond any table (2^14 entries at most):
    init still gives the softmax the table that tells apart all but 5%, and the first flow agrees."""
    ties_like(tmp_path)
    _ok(hlsflow("init", "--model", "ties.keras", "--samples", "ties.npz", cwd=tmp_path))
    config = (tmp_path / "hls4ml_config.yml").read_text()
    size = yaml.safe_load(config)["HLSConfig"]["LayerName"]["prob"]["TableSize"]
    # The input keeps ap_fixed<16,6>: the exp table's step is 2^5 / size, and gaps start at 0.005.
    assert size == 8192, config
    assert "its step tells apart the two largest values of logits on all but 5% of the samples" in config
    _ok(hlsflow("csim", cwd=tmp_path))
    csim = json.loads((tmp_path / "build" / "ties" / "csim.json").read_text())
    assert csim["agreement"] >= 0.95, csim["agreement"]
