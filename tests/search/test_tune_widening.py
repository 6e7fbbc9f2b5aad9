"""tune-precision reaches its gate where types can, from init's uniform default: on the Conv1D and
MLP stand-ins of issue 21 (its max pooling's accumulator found, its softmax's table kept with the
logits' integer bits), on a model whose weights' rounding is at fault (the wider search: weights,
biases and accumulators), and it stops honestly on a model no type can bring to the gate."""

import json

import numpy as np
import pytest

from conftest import run_invoke
import precision_standins


def _uniform_config(root, model, samples, io_type):
    """init's uniform ap_fixed<16,6> config for the model, with its samples."""
    import tensorflow as tf

    from hlsflow.stages.starter import render_config, starter_hls_config

    hls = starter_hls_config(tf.keras.models.load_model(model))
    config = root / f"{model.stem}.yml"
    config.write_text(render_config(hls, model.name, f"prj_{model.stem}", samples.name, io_type=io_type))
    return config


def _tune(config):
    proc = run_invoke("tune-precision", "--config", config, "--no-compare-auto")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    result = json.loads((config.parent / f"prj_{config.stem}" / "tune.json").read_text())
    print("\n".join(line for line in proc.stdout.splitlines() if "step " in line) + "\n" + _final(proc))
    return proc, result


def _final(proc) -> str:
    return proc.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("name", ["conv", "mlp"])
def test_tune_takes_the_standins_to_the_gate(name, tmp_path):
    model, samples = precision_standins.MAKERS[name](tmp_path)
    config = _uniform_config(tmp_path, model, samples, precision_standins.IO_TYPE[name])
    proc, result = _tune(config)
    before, after = result["before"], result["after"]
    assert before["agreement"] < 0.6, before
    assert result["outcome"] == "met" and after["gate"] and after["agreement"] >= 0.99, after
    assert _final(proc).startswith(f"Gate met: agreement {before['agreement']:.1%} -> {after['agreement']:.1%}")
    changes = after["changes"]
    if name == "conv":
        assert "accum" in changes["pool1"], changes  # max pooling takes its max in the accumulator type
    else:
        # The logits gained integer bits, and their softmax a table that keeps its step. Measured
        # without it, the same types fall short: the trap is real.
        from hlsflow.config import load_config, parse_precision
        from hlsflow import flow
        from hlsflow.emulator.propose import with_changes

        assert parse_precision(changes["out"]["result"]).integer > 8, changes
        assert changes["out_softmax"]["TableSize"] >= 4096, changes
        trapped = {layer: {k: v for k, v in kinds.items() if k != "TableSize"} for layer, kinds in changes.items()}
        cfg = load_config(config)
        r = flow.csim(with_changes(cfg, trapped, tmp_path / "trapped"), min_agreement=0)
        print(f"the same types with hls4ml's default softmax table: agreement {r['top1_agreement']:.1%}")
        assert r["top1_agreement"] < 0.99, r["top1_agreement"]
        assert "#   out_softmax TableSize: " in (tmp_path / "mlp.tuned.yml").read_text()


@pytest.fixture
def lsb_model(tmp_path):
    """Ten logits that differ by a few weight LSBs (csim: "no single data-path type is at fault"):
    no data-path type is at fault, the weights' rounding is."""
    model, samples = precision_standins.lsb_model(tmp_path)
    return _uniform_config(tmp_path, model, samples, "io_parallel")


def test_tune_widens_weights_when_the_data_path_steps_fall_short(lsb_model):
    from hlsflow.config import parse_precision

    proc, result = _tune(lsb_model)
    trials, after = result["trials"], result["after"]
    labels = [t["label"] for t in trials]
    wider = labels.index("ranges")
    assert not any(t["gate"] for t in trials[:wider]), trials  # the data-path steps all fell short ...
    assert result["outcome"] == "met" and after["gate"], after  # ... the wider search did not
    step = after["label"].split("-without-")[0]  # the step found, before tune dropped what it did not need
    assert step == "ranges" or step.endswith("-all"), after["label"]
    weight = parse_precision(after["changes"]["fc"]["weight"])
    assert weight.width - weight.integer > 10, after["changes"]  # finer weights than the default's 10 bits
    if step.startswith("frac+"):  # the fewest bits: one fewer on the same types fails
        k = int(step.split("+")[1].split("-")[0])
        fewer = next((t for t in trials if t["label"] == f"frac+{k - 1}-all"), None)
        assert k == 1 or (fewer is not None and not fewer["gate"]), labels
    assert _final(proc).startswith("Gate met") and f"for {after['added_bits']} added bits" in _final(proc)


@pytest.fixture
def tied_model(tmp_path):
    """Two logits that differ by a millionth of their size: no fixed-point type the search tries
    tells them apart, so the labels Keras gives cannot be met."""
    import tensorflow as tf
    from tensorflow.keras import layers

    rng = np.random.default_rng(2)
    inp = tf.keras.Input((8,), name="features")
    model = tf.keras.Model(inp, layers.Dense(2, name="fc")(inp))
    w = rng.normal(0, 1, (8, 1))
    model.get_layer("fc").set_weights([np.hstack([w, w * (1 + 1e-6)]).astype(np.float32), np.zeros(2, np.float32)])
    model.save(tmp_path / "tied.keras")
    x = rng.normal(0, 1, (100, 8)).astype(np.float32)
    np.savez(tmp_path / "tied.npz", X=x, y=model.predict(x, verbose=0).argmax(1))
    return _uniform_config(tmp_path, tmp_path / "tied.keras", tmp_path / "tied.npz", "io_parallel")


def test_tune_stops_honestly_where_no_type_can_reach_the_gate(tied_model):
    proc, result = _tune(tied_model)
    # Cause before cure: even the widest diagnostic design falls short, and Keras's margins show near
    # ties, so no bits are bought (issue 37).
    assert result["outcome"] == "unreachable" and result["cause"]["kind"] == "near ties", result["cause"]
    assert not any(t["gate"] for t in result["trials"])
    final = _final(proc)
    assert final.startswith("Gate NOT reachable") and "Keras margin" in final, final
    # In samples, never as "0.0 points short" of a gate shown as equal (issue 37).
    short = next(t for t in result["trials"] if t["label"] == (result["after"]["label"] if result["outcome"] == "not met"
                                                                else "before"))
    missing = 99 - short["agreeing"]
    assert f"{missing} sample{'s' if missing != 1 else ''} short of the 99.0% gate: {short['agreeing']} of 100 agree, " \
           "99 needed" in final, final
