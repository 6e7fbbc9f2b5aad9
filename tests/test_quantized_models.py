"""QKeras and HGQ models, as users bring them (issue 21): the image's pinned stack imports both;
the loader reads them from .keras, .h5 and JSON + weights; `hlsflow init` writes the types their
quantizers imply; `init` then `flow` from an empty folder outside the checkout exits 0, with csim
on the fast engine bit for bit the same as hls4ml's C++ (--cross-check); and the fast engine's
layers of emulator/quantizers.py against hls4ml's own per-layer trace.

The models are the bundled ones models/make_quantized_models.py trains on scikit-learn's digits."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO_ROOT, error_lines, flow_env, run_hlsflow
from emulator.layerwise import config, layerwise

MODELS = REPO_ROOT / "models"


def hlsflow(*args, cwd):
    """The `hlsflow` program (this checkout's code) run natively from `cwd`."""
    return run_hlsflow(*args, cwd=cwd)


def samples(name, n=None):
    with np.load(MODELS / f"{name}_samples.npz") as data:
        return data["X"][:n], data["y"][:n]


def test_pinned_stack_imports_qkeras_and_hgq():
    """The pins of docker/requirements.in and requirements-nodeps.in, together, in the image."""
    from importlib.metadata import PackageNotFoundError, version

    import tensorflow as tf

    assert (tf.__version__, np.__version__, version("hls4ml")) == ("2.15.0", "1.25.0", "1.3.0")
    assert (version("QKeras"), version("HGQ"), version("tensorflow-model-optimization")) == ("0.9.0", "0.2.6", "0.7.5")
    from HGQ.proxy import FixedPointQuantizer  # noqa: F401
    from qkeras import QActivation, QDense  # noqa: F401
    from qkeras.utils import _add_supported_quantized_objects  # noqa: F401

    with pytest.raises(PackageNotFoundError):  # HGQ's declared `tensorflow` was not installed over tensorflow-cpu
        version("tensorflow")


@pytest.mark.parametrize("name", ["qkeras_cnn", "qkeras_mlp", "hgq_mlp"])
def test_loader_reads_keras_h5_and_json(tmp_path, name):
    from hlsflow.loading import load_keras_model

    x, _ = samples(name, 32)
    model = load_keras_model(MODELS / f"{name}.keras")
    expected = model.predict(x, verbose=0)
    model.save(tmp_path / "saved.h5")
    (tmp_path / "arch.json").write_text(model.to_json())
    model.save_weights(tmp_path / "arch.h5")  # the weights beside the architecture
    for path in (tmp_path / "saved.h5", tmp_path / "arch.json"):
        again = load_keras_model(path)
        assert [type(layer).__name__ for layer in again.layers] == [type(layer).__name__ for layer in model.layers]
        assert np.array_equal(again.predict(x, verbose=0), expected), path.name


def test_a_missing_package_or_a_custom_layer_is_one_sentence(tmp_path):
    import tensorflow as tf

    from hlsflow.errors import FlowError
    from hlsflow.loading import load_keras_model

    class MyDense(tf.keras.layers.Dense):  # a layer of the user's own, whose code the loader does not have
        pass

    inp = tf.keras.Input((4,))
    tf.keras.Model(inp, MyDense(2, name="mine")(inp)).save(tmp_path / "custom.keras")
    with pytest.raises(FlowError, match=r"uses the custom layer MyDense, which Keras cannot load without its code"):
        load_keras_model(tmp_path / "custom.keras")
    # Where QKeras cannot be imported (a native install without it), `init` names it in one sentence.
    blocked = ("import runpy, sys; sys.modules['qkeras'] = None; "
               "sys.argv = ['hlsflow'] + sys.argv[1:]; runpy.run_module('hlsflow', run_name='__main__')")
    env = flow_env(PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", blocked, "init", "--model", MODELS / "qkeras_cnn.keras", "--config",
                           tmp_path / "never.yml"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    (line,) = error_lines(proc)
    assert line.startswith(f"ERROR: {MODELS / 'qkeras_cnn.keras'} is a QKeras model (it uses QConv2D, QActivation, "
                           "QDense), and QKeras cannot be imported here (No module named"), line
    assert line.endswith("): run it in hlsflow's image, which has QKeras."), line
    assert not (tmp_path / "never.yml").exists()


# What `init` must write for each model: its IOType and the types its quantizers set.
EXPECTED = {
    "qkeras_mlp": ("io_parallel", ["#   fc1: weight ap_fixed<6,1>, bias ap_fixed<6,1>",
                                 "#   relu1: result ap_ufixed<6,2,AP_RND_CONV,AP_SAT>",
                                 "#   fc2: weight ap_fixed<4,1>, bias ap_fixed<6,1>",
                                 "#   q2: result ap_fixed<8,4,AP_RND_CONV,AP_SAT>"]),
    "qkeras_cnn": ("io_stream", ["#   conv1: weight ap_fixed<6,1>, bias ap_fixed<6,1>",
                                 "#   relu1: result ap_ufixed<6,2,AP_RND_CONV,AP_SAT>",
                                 "#   relu2: result ap_ufixed<6,2,AP_RND_CONV,AP_SAT>",
                                 "#   fc: weight ap_fixed<6,1>, bias ap_fixed<6,1>"]),
    "hgq_mlp": ("io_parallel", ["# Types from the quantizers: this is an HGQ proxy model, so every per-layer "
                                "type is 'auto':"]),
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_init_then_flow_from_an_empty_folder(tmp_path, name):
    """A new user's first run: the config's types come from the quantizers, the flow exits 0, csim
    runs on the fast engine and agrees bit for bit with hls4ml's C++ emulation."""
    io_type, comments = EXPECTED[name]
    work = tmp_path / "work"
    work.mkdir()
    init = hlsflow("init", "--model", MODELS / f"{name}.keras", "--samples", MODELS / f"{name}_samples.npz",
                   "--config", "hls4ml_config.yml", cwd=work)
    assert init.returncode == 0, init.stdout[-2000:] + init.stderr[-2000:]
    text = (work / "hls4ml_config.yml").read_text()
    assert f"\nIOType: {io_type}\n" in text
    for line in comments:
        assert line + "\n" in text, line
    flow = hlsflow("flow", cwd=work)
    assert flow.returncode == 0, flow.stdout[-3000:] + flow.stderr[-3000:]
    out = work / "build" / name
    result = json.loads((out / "csim.json").read_text())
    assert result["engine"] == "fast" and result["samples"] == 300, result
    assert result["top1_agreement"] >= 0.99, result  # measured: 99.7% (QKeras), 100% (HGQ)
    defines = (out / "firmware" / "defines.h").read_text()
    if name.startswith("qkeras"):  # the quantizers' types reached the design
        assert "ap_ufixed<6,2,AP_RND_CONV,AP_SAT" in defines and "ap_fixed<6,1> " in defines
    else:  # the proxy model's own types, bit-exact: HLS computes what Keras computes
        assert "ap_fixed<16,6>" not in defines and result["max_abs_diff"] == 0, result
    check = hlsflow("csim", "--cross-check", 20, cwd=work)
    assert check.returncode == 0, check.stdout[-3000:] + check.stderr[-3000:]
    assert "agree bit for bit on all 20 samples" in check.stdout
    assert json.loads((out / "csim.json").read_text())["cross_check"] == {"samples": 20, "identical": True}
    if name == "hgq_mlp":  # hls4ml streams no per-element quantizer: asked for anyway, one sentence
        stream = hlsflow("convert", "--io-type", "io_stream", "--out", "build/stream", cwd=work)
        assert stream.returncode == 2 and "Traceback" not in stream.stderr, stream.stderr[-2000:]
        assert "only supported with IOType=io_parallel" in error_lines(stream)[0]


@pytest.fixture(scope="module")
def alpha_model(tmp_path_factory):
    """A QConv2D whose scales are powers of two per filter (an exponent ApplyAlpha over channels) and a
    QDense whose scales are any numbers (alpha='auto': an ApplyAlpha with a fixed-point scale)."""
    import tensorflow as tf
    from qkeras import QActivation, QConv2D, QDense

    root = tmp_path_factory.mktemp("alpha")
    tf.keras.utils.set_random_seed(3)
    q6 = "quantized_bits(6,0,alpha=1)"
    inp = tf.keras.Input((6, 6, 2))
    a = QConv2D(4, 3, kernel_quantizer="quantized_bits(4,0,alpha='auto_po2')", bias_quantizer=q6, name="conv")(inp)
    a = tf.keras.layers.Flatten(name="flat")(QActivation("quantized_relu(6,2)", name="relu")(a))
    out = QDense(5, kernel_quantizer="quantized_bits(4,0,alpha='auto')", bias_quantizer=q6, name="fc")(a)
    model = tf.keras.Model(inp, out)
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (64, 6, 6, 2)).astype(np.float32)
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, rng.normal(0, 1, (64, 5)), epochs=2, verbose=0)  # scales away from their initial values
    model.save(root / "alpha.keras")
    np.savez(root / "alpha_samples.npz", X=x)
    return root


@pytest.mark.parametrize("name, io_type, layers", [
    ("qkeras_mlp", "io_parallel", {"fc2_alpha": "ApplyAlpha"}),
    ("alpha", "io_parallel", {"conv_alpha": "ApplyAlpha", "fc_alpha": "ApplyAlpha"}),
    ("alpha", "io_stream", {"conv_alpha": "ApplyAlpha", "fc_alpha": "ApplyAlpha"}),
    ("hgq_mlp", "io_parallel", {"quantize": "FixedPointQuantizer", "fc1_relu_quantizer": "FixedPointQuantizer",
                                "fc2_quantizer": "FixedPointQuantizer"}),
])
def test_quantizer_layers_match_hls4ml_trace(tmp_path, alpha_model, name, io_type, layers):
    """ApplyAlpha (power-of-two scales per output or per filter, and fixed-point ones) and HGQ's
    per-element quantizers, layer by layer against hls4ml's C++ trace (HGQ's in io_parallel only:
    hls4ml refuses io_stream for them; the flow test above shows the sentence)."""
    folder = alpha_model if name == "alpha" else MODELS
    cfg = config(tmp_path, folder / f"{name}.keras", folder / f"{name}_samples.npz", io_type=io_type)
    compared, engine = layerwise(cfg, 64)
    classes = {step.name: step.cls for step in engine.steps}
    for layer, cls in layers.items():
        assert classes.get(layer) == cls and layer in compared, (layer, classes, compared)
