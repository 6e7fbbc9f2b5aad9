"""Shared by the fast engine's tests: a model's every layer, fast engine against hls4ml's own
per-layer C++ trace, and a flow config written as `hlsflow init` writes it."""

from pathlib import Path

import numpy as np


def layerwise(cfg_path: Path, n: int, out_name="traced"):
    """Every layer of the fast engine against hls4ml's per-layer trace, and the outputs against predict()."""
    from hlsflow.emulator import fastemu
    from hlsflow.emulator.cpp import cpp_trace
    from hlsflow.config import load_config
    from hlsflow.loading import load_keras_model
    from hlsflow.samples import load_samples, resolve_samples

    cfg = load_config(path=cfg_path, announce=False)
    keras_model = load_keras_model(cfg.keras_model)
    x, _ = load_samples(resolve_samples(cfg), tuple(keras_model.inputs[0].shape), n)
    work = cfg_path.parent / out_name
    hls_model, trace = cpp_trace(cfg, keras_model, x, work)
    engine = fastemu.build(hls_model, work)
    y, fast = engine.run(x, trace=True)
    compared = []
    for name in engine.layer_names:
        if name in trace:
            cpp = np.asarray(trace[name], dtype=np.float64).reshape(len(x), -1)
            assert np.array_equal(cpp, fast[name]), f"layer {name} differs from hls4ml's trace"
            compared.append(name)
    y_cpp = hls_model.predict(np.ascontiguousarray(x)).reshape(len(x), -1).astype(np.float32)
    assert np.array_equal(y_cpp.view(np.uint32), y.view(np.uint32))
    # Without a trace the engine runs fused steps (a padding folded into its convolution, a ReLU
    # into the pass before it): the same bits.
    assert np.array_equal(engine.run(x).view(np.uint32), y.view(np.uint32)), "fused steps differ from the traced run"
    return compared, engine


def config(tmp_path: Path, model: Path, samples: Path, precision="ap_fixed<16,6>", io_type="io_parallel",
           strategy="Latency", reuse=1, layer_types=None) -> Path:
    from hlsflow.loading import load_keras_model
    from hlsflow.stages.starter import render_config, starter_hls_config

    keras_model = load_keras_model(model)
    hls = starter_hls_config(keras_model, precision=precision, reuse_factor=reuse, strategy=strategy)
    for layer, types in (layer_types or {}).items():
        hls["LayerName"].setdefault(layer, {}).setdefault("Precision", {}).update(types)
    path = tmp_path / "flow.yml"
    path.write_text(render_config(hls, str(model), "prj", str(samples), io_type=io_type))
    return path
