"""`hlsflow init --samples`: types from the samples' ranges through the model, so that the first
csim of a model on unnormalised values agrees with Keras where init's uniform default does not;
the config's comments say where each type came from; without --samples init is as before."""

import sys
from pathlib import Path

import re

import pytest
import yaml

from conftest import run_invoke

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "search"))
import precision_standins  # noqa: E402


@pytest.fixture(scope="module", params=["conv", "mlp"])
def standin(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    model, samples = precision_standins.MAKERS[request.param](root)
    return request.param, model, samples


# "#   fc1 weight: ap_fixed<16,1>  from the weights: they lie in [-0.474, 0.494]"
NOTE = re.compile(r"^#   (\S+) (\S+): (\S+)  (from the samples|from the weights|for the softmax): (.*)$", re.M)


def _agreement(config: Path, samples: Path) -> float:
    from hlsflow import flow
    from hlsflow.config import load_config

    return flow.csim(load_config(config), samples=samples, min_agreement=0)["top1_agreement"]


def test_init_with_samples_gives_a_first_csim_that_agrees(standin):
    name, model, samples = standin
    io_type = precision_standins.IO_TYPE[name]
    uniform, proposed = model.with_name("uniform.yml"), model.with_name("proposed.yml")
    plain = run_invoke("init", "--model", model, "--config", uniform, "--io-type", io_type)
    assert plain.returncode == 0, plain.stdout[-2000:] + plain.stderr[-2000:]
    init = run_invoke("init", "--model", model, "--samples", samples, "--config", proposed, "--io-type", io_type)
    assert init.returncode == 0, init.stdout[-2000:] + init.stderr[-2000:]
    assert f"Proposing types from the ranges of {samples.name}" in init.stdout

    # Without --samples, init is as it was: one precision everywhere, no proposal.
    text = uniform.read_text()
    assert "Types from the samples' ranges" not in text
    layers = yaml.safe_load(text)["HLSConfig"]["LayerName"]
    assert {value for entry in layers.values() for value in entry["Precision"].values()} == {"ap_fixed<16,6>"}

    # The proposal's comments say where each type came from, and each is what the config holds.
    text = proposed.read_text()
    notes = NOTE.findall(text)
    origins = {(kind, origin) for _, kind, _, origin, _ in notes}
    assert {("result", "from the samples"), ("accum", "from the samples"), ("weight", "from the weights"),
            ("bias", "from the weights")} <= origins, notes
    assert any(why.startswith("the samples span [") for *_, why in notes), notes  # the input layer's
    assert "#   every other type: the default ap_fixed<16,6>" in text
    layers = yaml.safe_load(text)["HLSConfig"]["LayerName"]
    for layer, kind, value, _, _ in notes:
        written = layers[layer]["TableSize"] if kind == "TableSize" else layers[layer]["Precision"][kind]
        assert str(written) == value, (layer, kind, value, layers[layer])

    before, after = _agreement(uniform, samples), _agreement(proposed, samples)
    print(f"{name}: first csim agreement {before:.1%} with the uniform default, {after:.1%} with init --samples")
    assert before < 0.6, before  # the default is far off on these models ...
    assert after >= 0.95, after  # ... and the proposed types are not

    if name == "mlp":
        # Its logits reach hundreds: their type gains integer bits, so its softmax gets a table large
        # enough to keep its step (hls4ml indexes it by the input's top bits). Measured: the same
        # types with hls4ml's default table of 1024 lose agreement.
        raw = yaml.safe_load(text)
        entry = raw["HLSConfig"]["LayerName"]["out_softmax"]
        assert entry["TableSize"] >= 4096 and ("out_softmax", "TableSize") in {n[:2] for n in notes}, entry
        del entry["TableSize"]
        raw["OutputDir"] = "build/default-table"
        default_table = proposed.with_name("default_table.yml")
        default_table.write_text(yaml.safe_dump(raw, sort_keys=False))
        without = _agreement(default_table, samples)
        print(f"mlp: agreement {without:.1%} with the proposed types and hls4ml's default softmax table")
        assert without < after - 0.05, (after, without)


def test_init_with_samples_keeps_the_quantizers_types(tmp_path):
    """A QKeras model's types come from its quantizers: the proposal keeps each one its values fit."""
    import qkeras  # noqa: F401 -- the image has it: a broken import fails here, never skips
    import tensorflow as tf

    from hlsflow.loading import load_keras_model
    from hlsflow.stages.starter import quantizer_types, starter_hls_config, write_starter

    models = Path(__file__).resolve().parents[2] / "models"
    model, samples = models / "qkeras_mlp.keras", models / "qkeras_mlp_samples.npz"
    assert model.is_file() and samples.is_file(), "models/make_quantized_models.py makes them; they are committed"
    quantized = quantizer_types(starter_hls_config(load_keras_model(model)))
    assert quantized, "the QKeras MLP has quantizer types"
    tf.keras.backend.clear_session()
    written = yaml.safe_load(write_starter(model, config=tmp_path / "q.yml", samples=samples).read_text())
    layers = written["HLSConfig"]["LayerName"]
    for layer, kinds in quantized.items():
        for kind, value in kinds.items():
            assert layers[layer]["Precision"][kind] == value, (layer, kind, layers[layer])


@pytest.mark.parametrize("kind", ["separable", "lstm"])
def test_init_with_samples_on_layers_keras_does_not_split_like_hls4ml(tmp_path, kind):
    """A SeparableConv2D (hls4ml splits it in two: a depthwise half Keras has no output for) and an
    LSTM (whose activation Keras will not unset): the proposal skips what Keras cannot tell and
    writes the config, where both once ended in a traceback."""
    import numpy as np
    import tensorflow as tf
    from tensorflow.keras import layers

    tf.keras.utils.set_random_seed(3)
    if kind == "separable":
        shape, body = (10, 10, 3), [layers.SeparableConv2D(6, 3, activation="relu", name="sep"),
                                    layers.GlobalAveragePooling2D(), layers.Dense(3, activation="softmax")]
    else:
        shape, body = (6, 4), [layers.LSTM(5, name="lstm"), layers.Dense(3, activation="softmax")]
    tf.keras.Sequential([tf.keras.Input(shape), *body]).save(tmp_path / "m.keras")
    np.savez(tmp_path / "s.npz", X=np.random.default_rng(0).normal(0, 40, (30,) + shape).astype(np.float32))
    proc = run_invoke("init", "--model", tmp_path / "m.keras", "--samples", tmp_path / "s.npz", "--io-type",
                      "io_parallel")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stdout[-2000:] + proc.stderr[-3000:]
    text = (tmp_path / "hls4ml_config.yml").read_text()
    # The inputs span +-100 and more: the proposal widened the input's type from the samples.
    assert re.search(r"^#   \S+ result: ap_fixed<\d+,(\d+)>  from the samples: the samples span", text, re.M), text
