"""The fast engine on depthwise and separable convolutions and the shape layers, bit for bit
against hls4ml's own per-layer C++ trace (tests/emulator/layerwise.py).

Two tiny models carry every layer: a 2-D depthwise-separable CNN (DepthwiseConv2D, SeparableConv2D,
UpSampling2D, Cropping2D, Concatenate, Permute, padded pooling) and a 1-D one (DepthwiseConv1D,
SeparableConv1D, UpSampling1D, Cropping1D, Concatenate, Permute, Reshape, Dropout), each in
io_parallel with Latency and in io_stream with Resource (hls4ml 1.3.0's C++ has no io_parallel
Resource depthwise convolution). Each is one g++ build."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from layerwise import config as _config, layerwise as _layerwise

# Narrow, rounding and saturating types where the C++ casts: the products into a depthwise
# accumulator (AP_RND on each product), a saturating accumulator (its sum follows the C++ kernel's
# order: the Latency one in io_parallel, the Resource one in io_stream), a depthwise result that
# saturates, and the separable convolution's intermediate (depthwise) result.
TYPES_2D = {"dw": {"accum": "ap_fixed<18,7,AP_RND>", "result": "ap_fixed<10,3,AP_RND_CONV,AP_SAT>"},
            "dw_s2": {"accum": "ap_fixed<14,2,AP_RND,AP_SAT>"},
            "sep": {"depthwise_result": "ap_fixed<12,4,AP_RND,AP_SAT>"},
            "cat": {"result": "ap_fixed<12,4,AP_RND,AP_SAT>"}}
TYPES_1D = {"dw": {"accum": "ap_fixed<20,8,AP_RND_CONV>"}, "up": {"result": "ap_fixed<16,6>"}}


def _save(root, model, shape, seed, scale=1.5):
    model.save(root / "m.keras")
    rng = np.random.default_rng(seed)
    np.savez(root / "s.npz", X=rng.normal(0, scale, (16,) + shape).astype(np.float32))
    return root / "m.keras", root / "s.npz"


def _cnn_2d(root, io_type):
    import tensorflow as tf
    from tensorflow.keras import layers

    tf.keras.utils.set_random_seed(1)
    inp = tf.keras.Input((7, 7, 2))
    a = layers.DepthwiseConv2D(3, padding="same", name="dw")(inp)
    a = layers.SeparableConv2D(3, 3, name="sep")(a)  # 5x5x3
    a = layers.UpSampling2D(2, name="up")(a)  # 10x10x3
    a = layers.Cropping2D(((1, 1), (2, 0)), name="crop")(a)  # 8x8x3
    b = layers.DepthwiseConv2D(2, strides=2, name="dw_s2")(a)  # 4x4x3
    b = layers.UpSampling2D((2, 2), name="up2")(b)  # 8x8x3
    m = layers.Concatenate(name="cat")([a, b])  # 8x8x6
    m = layers.Permute((2, 1, 3), name="permute")(m)
    m = layers.Cropping2D(((0, 1), (1, 0)), name="crop2")(m)  # 7x7x6
    # padded pooling, and windows other than the stride: io_parallel only (hls4ml's stream pooling asserts)
    if io_type == "io_parallel":
        m = layers.MaxPooling2D(2, padding="same", name="maxpool")(m)  # 4x4
        m = layers.AveragePooling2D(3, strides=2, padding="same", name="avgpool")(m)  # 2x2
    else:
        m = layers.MaxPooling2D(2, name="maxpool")(m)  # 3x3
        m = layers.AveragePooling2D(3, name="avgpool")(m)  # 1x1
    out = layers.Dense(4, name="fc")(layers.Flatten(name="flat")(m))
    model = tf.keras.Model(inp, out)
    dw = model.get_layer("dw")
    dw.set_weights([dw.get_weights()[0] * 2, np.linspace(-0.5, 0.5, 2)])  # values that reach the saturation
    return _save(root, model, (7, 7, 2), 1)


def _cnn_1d(root, io_type):
    import tensorflow as tf
    from tensorflow.keras import layers

    tf.keras.utils.set_random_seed(2)
    inp = tf.keras.Input((12, 3))
    a = layers.Conv1D(4, 3, name="conv")(inp)  # 10x4
    a = layers.DepthwiseConv1D(3, padding="same", name="dw")(a)
    a = layers.Dropout(0.3, name="drop")(a)
    a = layers.SeparableConv1D(5, 3, strides=1, name="sep")(a)  # 8x5
    a = layers.UpSampling1D(3, name="up")(a)  # 24x5
    a = layers.Cropping1D((1, 3), name="crop")(a)  # 20x5
    b = layers.DepthwiseConv1D(2, strides=2, name="dw_s2")(a)  # 10x5
    b = layers.UpSampling1D(2, name="up2")(b)  # 20x5
    m = layers.Concatenate(axis=1, name="cat")([a, b])  # 40x5
    m = layers.Permute((2, 1), name="permute")(m)  # 5x40
    m = layers.Reshape((20, 10), name="reshape")(m)
    if io_type == "io_parallel":
        m = layers.AveragePooling1D(3, strides=2, padding="same", name="avgpool")(m)  # 10x10
    else:
        m = layers.AveragePooling1D(2, name="avgpool")(m)
    m = layers.Conv1D(3, 2, name="conv2")(m)
    out = layers.Dense(4, activation="softmax", name="fc")(layers.Flatten(name="flat")(m))
    return _save(root, tf.keras.Model(inp, out), (12, 3), 2)


CASES = [("io_parallel", "Latency", 1), ("io_stream", "Resource", 2)]


@pytest.mark.parametrize("io_type, strategy, reuse", CASES, ids=[c[0] for c in CASES])
def test_depthwise_separable_cnn_2d(tmp_path, io_type, strategy, reuse):
    model, samples = _cnn_2d(tmp_path, io_type)
    cfg = _config(tmp_path, model, samples, io_type=io_type, strategy=strategy, reuse=reuse, layer_types=TYPES_2D)
    compared, engine = _layerwise(cfg, 16)
    assert {"dw", "sep_depthwise", "sep_pointwise", "up", "crop", "dw_s2", "up2", "cat", "permute", "crop2",
            "maxpool", "avgpool", "fc"} <= set(compared), compared


@pytest.mark.parametrize("io_type, strategy, reuse", CASES, ids=[c[0] for c in CASES])
def test_depthwise_separable_cnn_1d(tmp_path, io_type, strategy, reuse):
    model, samples = _cnn_1d(tmp_path, io_type)
    cfg = _config(tmp_path, model, samples, io_type=io_type, strategy=strategy, reuse=reuse, layer_types=TYPES_1D)
    compared, engine = _layerwise(cfg, 16)
    assert "drop" not in engine.layer_names  # hls4ml removes Dropout; the engine runs the graph without it
    assert {"dw", "sep_depthwise", "sep_pointwise", "up", "crop", "dw_s2", "up2", "cat", "permute", "avgpool",
            "conv2", "fc"} <= set(compared), compared


def test_what_hls4ml_cannot_build_is_one_sentence(tmp_path):
    """Designs whose C++ hls4ml 1.3.0 asserts against (its emulation aborts, Vivado drops the layer): the
    fast engine names the layer and the change in one sentence instead of falling back to a C++ path that
    aborts. No g++ here: the engine is built from the converted graph alone."""
    import tensorflow as tf
    from tensorflow.keras import layers

    from hlsflow.config import load_config
    from hlsflow.design import in_memory
    from hlsflow.emulator import fastemu
    from hlsflow.errors import FlowError
    from hlsflow.loading import load_keras_model

    inp = tf.keras.Input((6, 6, 2))
    a = layers.SeparableConv2D(3, 3, name="sep")(inp)
    model, samples = _save(tmp_path, tf.keras.Model(inp, layers.MaxPooling2D(3, padding="same", name="pool")(a)),
                           (6, 6, 2), 0)
    cases = [("io_parallel", "Resource", "sep_depthwise (DepthwiseConv2D) cannot use the Resource strategy",
              "Set Strategy: Latency for sep in"),
             ("io_stream", "Latency", "pool (Pooling2D) pools with padding", "padding='valid'")]
    for io_type, strategy, what, fix in cases:
        cfg = load_config(path=_config(tmp_path, model, samples, io_type=io_type, strategy=strategy),
                          announce=False)
        with in_memory(load_keras_model(model), cfg) as hls_model:
            with pytest.raises(FlowError) as error:
                fastemu.build(hls_model, tmp_path / "unwritten")
        assert what in str(error.value) and fix in str(error.value), str(error.value)


@st.composite
def conv_1d_models(draw):
    """A random chain of the 1-D layers of this module over a small input, with random types."""
    ops = draw(st.lists(st.sampled_from(["dw", "sep", "up", "crop", "concat", "permute"]), min_size=2, max_size=4))
    width, chans = draw(st.integers(5, 9)), draw(st.integers(1, 3))
    io_type = draw(st.sampled_from(["io_parallel", "io_stream"]))
    strategy = "Latency" if io_type == "io_parallel" else draw(st.sampled_from(["Latency", "Resource"]))
    precision = draw(st.sampled_from(["ap_fixed<16,6>", "ap_fixed<12,4>", "ap_fixed<10,5>"]))
    result = draw(st.sampled_from(["", ",AP_RND,AP_SAT", ",AP_RND_CONV,AP_SAT_SYM", ",AP_TRN_ZERO,AP_WRAP"]))
    return ops, width, chans, io_type, strategy, precision, result, draw(st.integers(0, 999)), draw(st.sampled_from(
        [0.5, 3.0, 20.0]))


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                HealthCheck.function_scoped_fixture])
@given(spec=conv_1d_models())
def test_random_1d_models_layer_by_layer(tmp_path_factory, spec):
    import tensorflow as tf
    from tensorflow.keras import layers

    ops, width, chans, io_type, strategy, precision, result, seed, scale = spec
    root = tmp_path_factory.mktemp("random")
    tf.keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    inp = tf.keras.Input((width, chans))
    a, w, c, types = inp, width, chans, {}
    for i, op in enumerate(ops):
        name = f"{op}{i}"
        if op == "dw":
            k, s = int(rng.integers(1, 4)), int(rng.integers(1, 3))
            pad = "same" if k > w or rng.random() < 0.5 else "valid"
            a = layers.DepthwiseConv1D(k, strides=s, padding=pad, name=name)(a)
            w = -(-w // s) if pad == "same" else (w - k) // s + 1
        elif op == "sep":
            k, f = int(min(rng.integers(1, 4), w)), int(rng.integers(1, 5))
            a = layers.SeparableConv1D(f, k, name=name)(a)
            w, c = w - k + 1, f
        elif op == "up" and w < 12:
            f = int(rng.integers(2, 4))
            a = layers.UpSampling1D(f, name=name)(a)
            w *= f
        elif op == "crop" and w > 2:
            left = int(rng.integers(0, w - 1))
            right = int(rng.integers(0, w - left - 1))
            a = layers.Cropping1D((left, right), name=name)(a)
            w -= left + right
        elif op == "concat":
            axis = int(rng.choice([1, -1]))
            a = layers.Concatenate(axis=axis, name=name)([a, layers.DepthwiseConv1D(1, name=f"dwc{i}")(a)])
            w, c = (w * 2, c) if axis == 1 else (w, c * 2)
        elif op == "permute" and w * c <= 64:
            a = layers.Permute((2, 1), name=name)(a)
            w, c = c, w
        else:
            continue
        if result:
            bits = precision[len("ap_fixed<"):-1]
            types[name] = {"result": f"ap_fixed<{bits}{result}>"}
    out = layers.Dense(3, name="fc")(layers.Flatten(name="flat")(a))
    model, samples = _save(root, tf.keras.Model(inp, out), (width, chans), seed, scale)
    cfg = _config(root, model, samples, precision=precision, io_type=io_type, strategy=strategy,
                       reuse=2 if strategy == "Resource" else 1, layer_types=types)
    compared, _ = _layerwise(cfg, 16)
    assert "fc" in compared
