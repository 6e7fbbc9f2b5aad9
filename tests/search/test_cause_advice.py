"""Cause before cure (issue 37), as a new user meets it: from an empty folder, the installed command's
`init --samples`, then `csim` and `tune-precision`, on two models nobody tuned by hand:
- a softmax whose exp table limits agreement: logits up to 60 (the input type needs 8 integer
  bits, so hls4ml's table steps by 1/8) whose top two differ by 0.03 to 0.2. Keras is sure of each
  label, the table ties them. init gives the table the entries the samples' gaps need; with
  hls4ml's default table instead, csim names the table, and tune buys table entries, no type bits,
  and says their BRAM cost;
- a truly near-tied model: the same logits with the top two 0 to 3e-4 apart. Keras's own margins
  (top-1 minus top-2 probability) show it, and tune reports the gate unreachable, buying nothing.
Weights are set by hand (no training): deterministic, and built in a second."""

import json

import numpy as np
import pytest
import yaml

from state.test_safety import hlsflow
import precision_standins

MARGIN = 2.0**-10  # emulator/cause.py's near-tie margin: one step of ap_fixed<16,6>


def _make(root, name, lo, hi, n=300, seed=0):
    """Three logits z0 = 30u, z1 = 30u + v, z2 = -30u, softmax; the label is v's sign, |v| in [lo, hi]."""
    import tensorflow as tf
    from tensorflow.keras import layers

    rng = np.random.default_rng(seed)
    inp = tf.keras.Input((2,), name="x")
    logits = layers.Dense(3, name="logits")(inp)
    model = tf.keras.Model(inp, layers.Activation("softmax", name="prob")(logits))
    model.get_layer("logits").set_weights([np.array([[30, 30, -30], [0, 1, 0]], np.float32), np.zeros(3, np.float32)])
    x = np.stack([rng.uniform(0.5, 2.0, n), rng.uniform(lo, hi, n) * rng.choice([-1, 1], n)], 1).astype(np.float32)
    model.save(root / f"{name}.keras")
    np.savez(root / f"{name}.npz", x=x)
    return model, x


def jet_mlp(root):
    """16 inputs, 5 classes, BatchNormalization and Dropout, as hls4ml's tutorial part 1 (seeded,
    trained for seconds on labels from a fixed projection of the inputs); (model, samples)."""
    import tensorflow as tf
    from tensorflow.keras import layers as L

    tf.keras.utils.set_random_seed(3)
    x = np.random.default_rng(3).normal(0, 1, (1500, 16)).astype(np.float32)
    y = (x @ np.random.default_rng(4).normal(size=(16, 5))).argmax(1)
    model = tf.keras.Sequential([tf.keras.Input((16,), name="jets"), L.Dense(64, name="fc1"),
                                 L.BatchNormalization(name="bn1"), L.Activation("relu", name="relu1"),
                                 L.Dropout(0.25, name="drop1"), L.Dense(32, name="fc2"), L.BatchNormalization(name="bn2"),
                                 L.Activation("relu", name="relu2"), L.Dropout(0.25, name="drop2"),
                                 L.Dense(5, name="out"), L.Activation("softmax", name="prob")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x[:1200], y[:1200], epochs=8, batch_size=64, verbose=0)
    model.save(root / "jet_mlp.keras")
    np.savez(root / "jet_mlp.npz", X=x[1200:], y=y[1200:])
    return root / "jet_mlp.keras", root / "jet_mlp.npz"


def clip_model(root):
    """Dense, ReLU(max_value=6) (hls4ml 1.3.0 writes a plain relu), Dense, softmax; (model, samples)."""
    import tensorflow as tf
    from tensorflow.keras import layers

    rng = np.random.default_rng(0)
    inp = tf.keras.Input((4,), name="x")
    clipped = layers.ReLU(max_value=6.0, name="clip")(layers.Dense(8, name="fc1")(inp))
    model = tf.keras.Model(inp, layers.Dense(3, activation="softmax", name="out")(clipped))
    model.get_layer("fc1").set_weights([rng.normal(0, 3, (4, 8)).astype(np.float32), np.zeros(8, np.float32)])
    model.get_layer("out").set_weights([rng.normal(0, 1, (8, 3)).astype(np.float32), np.zeros(3, np.float32)])
    model.save(root / "clip.keras")
    np.savez(root / "clip.npz", x=rng.normal(0, 1, (300, 4)).astype(np.float32))
    return root / "clip.keras", root / "clip.npz"


def both_model(root):
    """The softmax-table model on inputs up to 40; (model, samples)."""
    import tensorflow as tf
    from tensorflow.keras import layers

    rng = np.random.default_rng(0)
    inp = tf.keras.Input((2,), name="x")
    model = tf.keras.Model(inp, layers.Activation("softmax", name="prob")(layers.Dense(3, name="logits")(inp)))
    model.get_layer("logits").set_weights([np.array([[1.5, 1.5, -1.5], [0, 1, 0]], np.float32), np.zeros(3, np.float32)])
    x = np.stack([rng.uniform(10, 40, 300), rng.uniform(0.03, 0.2, 300) * rng.choice([-1, 1], 300)], 1)
    model.save(root / "both.keras")
    np.savez(root / "both.npz", x=x.astype(np.float32))
    return root / "both.keras", root / "both.npz"


def both_user_config(config: dict) -> dict:
    """init's config as a user's own might be: hls4ml's default softmax table, the default input type."""
    layer_names = config["HLSConfig"]["LayerName"]
    layer_names["prob"].pop("TableSize", None)
    layer_names["x"]["Precision"]["result"] = "ap_fixed<16,6>"
    return config


def _ok(proc):
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stdout[-4000:] + proc.stderr[-3000:]
    return proc.stdout


def _user(tmp_path_factory, name, lo, hi):
    root = tmp_path_factory.mktemp(name)
    model, x = _make(root, name, lo, hi)
    _ok(hlsflow("init", "--model", f"{name}.keras", "--samples", f"{name}.npz", cwd=root))
    return root, model, x


@pytest.fixture(scope="module")
def table_user(tmp_path_factory):
    """init's folder, and default.yml: init's config with hls4ml's default softmax table (1024
    entries), as a user's own config would have it, into build/default."""
    root, model, x = _user(tmp_path_factory, "table", 0.03, 0.2)
    config = yaml.safe_load((root / "hls4ml_config.yml").read_text())
    config["HLSConfig"]["LayerName"]["prob"].pop("TableSize")
    config["OutputDir"] = "build/default"
    (root / "default.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root, model, x


@pytest.fixture(scope="module")
def tied_user(tmp_path_factory):
    return _user(tmp_path_factory, "tied", 0.0, 3e-4)


def test_init_gives_the_softmax_the_table_its_samples_need(table_user):
    root, _, _ = table_user
    config = (root / "hls4ml_config.yml").read_text()
    size = yaml.safe_load(config)["HLSConfig"]["LayerName"]["prob"]["TableSize"]
    # The step 2^7 / size tells apart the two largest logits of 99% of the samples (gaps from 0.03).
    assert size == 4096, config
    assert "prob TableSize: 4096  for the softmax: its step tells apart the two largest values" in config
    _ok(hlsflow("csim", cwd=root))
    csim = json.loads((root / "build" / "table" / "csim.json").read_text())
    assert csim["agreement"] >= 0.95, csim["agreement"]


def test_csim_names_the_softmax_table_as_the_cause(table_user):
    root, _, _ = table_user
    out = _ok(hlsflow("csim", "--config", "default.yml", cwd=root))
    csim = json.loads((root / "build" / "default" / "csim.json").read_text())
    assert csim["agreement"] < 0.95, csim["agreement"]  # the first flow is far off: the table ties the labels
    assert csim["cause"]["kind"] == "table" and csim["cause"]["tables"] == ["prob"], csim["cause"]
    line = next(line for line in out.splitlines() if line.startswith("What limits agreement:"))
    assert "a table: prob" in line and "TableSize" in line, line
    # The old advice, "rounding that adds up", is no longer what csim says here.
    assert "rounding of weights and values that adds up" not in out


def test_tune_buys_table_entries_not_bits_and_says_their_cost(table_user):
    root, _, _ = table_user
    out = _ok(hlsflow("tune-precision", "--no-compare-auto", "--config", "default.yml", cwd=root))
    result = json.loads((root / "build" / "default" / "tune.json").read_text())
    assert result["outcome"] == "met" and result["cause"]["kind"] == "table", result["outcome"]
    after = result["after"]
    assert after["agreement"] >= 0.99 and after["added_bits"] == 0, after
    assert set(after["changes"]) == {"prob"} and after["changes"]["prob"]["TableSize"] > 1024, after["changes"]
    assert after["table_bram"] > 0, after
    # It searched where the cause is: no step bought a type bit on the way.
    assert all(t["added_bits"] == 0 for t in result["trials"]), [(t["label"], t["added_bits"]) for t in result["trials"]]
    final = out.strip().splitlines()[-1]
    assert final.startswith("Gate met:") and "prob TableSize" in final and "BRAM_18K of tables" in final, final
    tuned = yaml.safe_load((root / "default.tuned.yml").read_text())
    assert tuned["HLSConfig"]["LayerName"]["prob"]["TableSize"] == after["changes"]["prob"]["TableSize"]
    # The cheapest table that passes: half as many entries fails (the search's own step before it).
    smaller = [t for t in result["trials"] if t["changes"].get("prob", {}).get("TableSize", 0)
               == after["changes"]["prob"]["TableSize"] // 2]
    assert smaller and not smaller[0]["gate"], [(t["label"], t["gate"]) for t in result["trials"]]


def test_tune_reports_near_ties_unreachable_with_keras_margins(tied_user):
    root, model, x = tied_user
    out = _ok(hlsflow("tune-precision", "--no-compare-auto", cwd=root))
    result = json.loads((root / "build" / "tied" / "tune.json").read_text())
    assert result["outcome"] == "unreachable" and result["config"] is None, result["outcome"]
    found = result["cause"]
    assert found["kind"] == "near ties" and not found["reachable"], found
    # The evidence is Keras's own: its margins on the samples csim measures, computed here.
    p = np.sort(model.predict(x[:300], verbose=0), axis=1)
    tiny = int(np.sum(p[:, -1] - p[:, -2] < MARGIN))
    assert found["margins"]["flipped"] <= tiny and found["margins"]["below"] * 2 >= found["margins"]["flipped"], found
    assert found["margins"]["flipped"] > 3, found  # the gate is out of reach, not missed by a sample
    final = out.strip().splitlines()[-1]
    assert final.startswith("Gate NOT reachable:") and "Keras margin" in final and "nothing written" in final, final
    assert not (root / "hls4ml_config.tuned.yml").exists()
    assert len(result["trials"]) == 1  # no bits bought: only your configuration was measured


def test_profile_shows_the_table_and_each_types_distribution(table_user):
    from types import SimpleNamespace

    from matplotlib.patches import PathPatch

    from hlsflow.stages.profile import profile_figure

    root, _, x = table_user
    out = _ok(hlsflow("profile", "--config", "default.yml", cwd=root))
    profile = json.loads((root / "build" / "default" / "profile.json").read_text())
    table = profile["tables"][0]
    assert (table["layer"], table["activation"], table["table_size"]) == ("prob", "softmax", 1024), table
    # The logits need 8 integer bits: the exp table's 1024 entries step by 2^(8-1) / 1024.
    assert table["input_step"] == 2.0**7 / 1024, table
    logits = x[:profile["samples"]] @ np.array([[30, 30, -30], [0, 1, 0]])
    top = np.sort(logits, axis=1)
    assert table["tied_share"] == pytest.approx(np.mean(top[:, -1] - top[:, -2] < 0.125), abs=0.021), table
    assert "Tables that tie labels: prob's top two inputs are closer than its table's step 0.125" in out
    kinds = {(f["layer"], f["kind"]) for f in profile["findings"]}
    assert {("prob", "exp_table"), ("prob", "inv_table"), ("prob", "inv_inp"), ("prob", "accum")} <= kinds, kinds
    # Each type's distribution, as hls4ml's numerical() draws it: log2 |value| quantiles, the input's from the samples.
    first = next(f for f in profile["findings"] if (f["layer"], f["kind"]) == ("x", "result"))
    values = np.abs(x[:profile["samples"]].astype(np.float64))
    assert first["log2_quantiles"] == pytest.approx(np.percentile(np.log2(values[values > 0]), [5, 25, 50, 75, 95]))
    drawn = profile_figure([SimpleNamespace(**f) for f in profile["findings"]], "table").axes[0]
    boxes = [p for p in drawn.patches if isinstance(p, PathPatch)]
    assert len(boxes) == sum(1 for f in profile["findings"] if f["log2_quantiles"]), len(boxes)


def test_table_types_go_where_hls4ml_reads_them(table_user, tmp_path):
    """hls4ml 1.3.0 reads a table's type from the layer's `<kind>_t` key and ignores the same kind
    under Precision: the first is honoured, the second said so, in one line."""
    root, _, _ = table_user
    config = yaml.safe_load((root / "hls4ml_config.yml").read_text())
    config["OutputDir"] = "build/keys"
    config["HLSConfig"]["LayerName"]["prob"].update({"inv_table_t": "ap_fixed<20,8,AP_RND,AP_SAT>"})
    config["HLSConfig"]["LayerName"]["prob"]["Precision"]["exp_table"] = "ap_fixed<22,8>"
    (root / "keys.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    proc = hlsflow("convert", "--config", "keys.yml", cwd=root)
    _ok(proc)
    warning = [line for line in proc.stderr.splitlines() if line.startswith("WARNING: Layer prob: Precision exp_table")]
    assert warning and "write exp_table_t: 'ap_fixed<22,8>' beside Precision." in warning[0], proc.stderr[-2000:]
    defines = (root / "build" / "keys" / "firmware" / "defines.h").read_text()
    assert "typedef ap_fixed<20,8,AP_RND,AP_SAT,0> prob_inv_table_t;" in defines, defines


def test_jet_tagging_mlp_agrees_from_init_and_tune_says_so(tmp_path):
    """hls4ml's tutorial-1 shape (BatchNormalization, Dropout, softmax over 5 classes): init's types
    (its softmax's table included: without it, 294 of 300) meet the 99% gate on the first flow, and
    tune-precision says so."""
    model, samples = jet_mlp(tmp_path)
    _ok(hlsflow("init", "--model", model.name, "--samples", samples.name, cwd=tmp_path))
    _ok(hlsflow("csim", cwd=tmp_path))
    csim = json.loads((tmp_path / "build" / "jet_mlp" / "csim.json").read_text())
    assert csim["agreement_count"] >= 297 and csim["samples"] == 300, csim
    out = _ok(hlsflow("tune-precision", "--no-compare-auto", cwd=tmp_path))
    result = json.loads((tmp_path / "build" / "jet_mlp" / "tune.json").read_text())
    final = out.strip().splitlines()[-1]
    assert result["outcome"] in ("already met", "met") and result["after"]["agreeing"] >= 297, result["outcome"]
    assert final.startswith(("The gate was met already", "Gate met:")) and "added bits" in final or \
        "0 bits added" in final, final


def test_a_layer_hls4ml_computes_otherwise_is_named_and_nothing_bought(tmp_path):
    """ReLU(max_value=6): hls4ml 1.3.0's Keras converter writes a plain relu (no clip at 6), so no
    type reaches Keras's labels. csim names the layer from the widest design's trace; tune buys nothing."""
    clip_model(tmp_path)
    _ok(hlsflow("init", "--model", "clip.keras", "--samples", "clip.npz", cwd=tmp_path))
    out = _ok(hlsflow("csim", cwd=tmp_path))
    csim = json.loads((tmp_path / "build" / "clip" / "csim.json").read_text())
    assert csim["cause"]["kind"] == "layer" and csim["cause"]["layer"] == "clip", csim["cause"]
    assert "What limits agreement: a layer hls4ml computes otherwise than Keras: clip departs" in out
    out = _ok(hlsflow("tune-precision", "--no-compare-auto", cwd=tmp_path))
    result = json.loads((tmp_path / "build" / "clip" / "tune.json").read_text())
    assert result["outcome"] == "unreachable" and len(result["trials"]) == 1, result["outcome"]
    assert "Gate NOT reachable" in out.strip().splitlines()[-1] and "clip departs" in out.strip().splitlines()[-1]


def test_types_and_table_together_cost_one_bit_and_one_table(tmp_path):
    """Inputs up to 40 in an ap_fixed<16,6> input and hls4ml's default softmax table: neither wider
    types nor wider tables alone reach the gate, both do. tune buys the input's one integer bit and
    the table that tells the logits apart, then tries each without the other: both are needed."""
    both_model(tmp_path)
    _ok(hlsflow("init", "--model", "both.keras", "--samples", "both.npz", cwd=tmp_path))
    config = yaml.safe_load((tmp_path / "hls4ml_config.yml").read_text())
    (tmp_path / "mine.yml").write_text(yaml.safe_dump(both_user_config(config), sort_keys=False))
    out = _ok(hlsflow("tune-precision", "--config", "mine.yml", "--no-compare-auto", cwd=tmp_path))
    result = json.loads((tmp_path / "build" / "both" / "tune.json").read_text())
    assert result["cause"]["kind"] == "types and table", result["cause"]
    after = result["after"]
    assert result["outcome"] == "met" and after["agreement"] >= 0.99, after
    assert after["changes"] == {"x": {"result": "ap_fixed<17,7>"}, "prob": {"TableSize": 4096}}, after["changes"]
    assert after["added_bits"] == 1 and after["table_bram"] > 0, after
    dropped = {t["label"].split("-without-")[1]: t["gate"] for t in result["trials"] if "-without-" in t["label"]}
    assert dropped == {"x": False, "prob": False}, dropped  # each tried without, neither could go
    assert "for 1 added bits on 1 types and +" in out.strip().splitlines()[-1]
    # g++ checked the C++ of the step whose config tune wrote, and of no step it threw away.
    checked = sorted(log.parent.name for log in (tmp_path / "build" / "both-tune").glob("*/cpp_check.log"))
    assert checked == [after["label"]], (checked, after["label"])


def test_weights_named_where_their_rounding_limits(tmp_path):
    """Ten logits that differ by a few weight LSBs, no table: with the data path wider the labels
    still flip, with the weights wider too they do not, so csim names a weight or bias type."""
    precision_standins.lsb_model(tmp_path)
    _ok(hlsflow("init", "--model", "lsb.keras", "--precision", "ap_fixed<16,6>", cwd=tmp_path))
    out = _ok(hlsflow("csim", "--samples", "lsb.npz", cwd=tmp_path))
    csim = json.loads((tmp_path / "build" / "lsb" / "csim.json").read_text())
    assert csim["agreement"] < 0.99 and csim["cause"]["kind"] == "weights", csim.get("cause")
    assert "What limits agreement: a weight or bias type" in out
