"""Which engine emulates a design: the fast one (fastemu.py, each layer's fixed-point
arithmetic on a whole batch) run in batches, or hls4ml's C++ emulation (cpp.py) where a layer
has no fast implementation; and the two compared bit for bit on the same samples."""

import contextlib
import io
import tempfile
from pathlib import Path

import numpy as np

from .. import console
from ..design import convert_model, in_memory
from ..errors import FlowError
from . import fastemu
from .cpp import build_library, cpp_trace, run_emulation
from .fixedpoint import Unsupported

FAST_CHUNK = 100  # images per fast-engine batch: whole-array work, memory in the hundreds of MB at most


def fast_engine(cfg, keras_model, required: bool):
    """The fast engine for the project in the output directory, or None (with one line saying
    which layer) when a layer has no fast implementation and the C++ path is acceptable."""
    with in_memory(keras_model, cfg) as hls_model:  # the engine reads the written project, not this folder
        try:
            return fastemu.build(hls_model, cfg.output_dir)
        except Unsupported as exc:
            if required:
                raise FlowError(f"The fast engine cannot emulate this design: {exc}. Run with --engine cpp "
                                "(or auto, which falls back by itself).") from None
            console.say(f"Fast engine: {exc}, so csim uses the C++ emulation for the "
                        "whole model.")
            return None


def run_fast(engine, x: np.ndarray, workers: int) -> np.ndarray:
    import numba

    numba.set_num_threads(max(1, min(workers, numba.config.NUMBA_NUM_THREADS)))
    progress = console.Progress(len(x), f"emulating (fast engine, {workers} thread{'s' if workers > 1 else ''})")
    results = []
    for i in range(0, len(x), FAST_CHUNK):
        results.append(engine.run(x[i:i + FAST_CHUNK]))
        progress.advance(len(results[-1]))
    progress.close()
    return np.concatenate(results) if results else np.zeros((0, 0), np.float32)


def cross_check(cfg, project, engine, keras_model, x: np.ndarray, y_fast: np.ndarray, workers: int) -> dict:
    """Both engines on the same samples, compared bit for bit; the first difference is traced
    layer by layer through hls4ml's own trace and named."""
    build = build_library(cfg, project)
    n_out = y_fast.shape[1]
    console.step(f"Cross-check: {len(x)} samples through hls4ml's C++ emulation too")
    y_cpp = run_emulation(build["library"], f"{cfg.project_name}_float", x, n_out, workers)
    differ = np.flatnonzero((y_cpp.view(np.uint32) != y_fast[:len(x)].view(np.uint32)).any(axis=1))
    if not len(differ):
        console.say(f"Cross-check: the fast engine and the C++ emulation agree bit for bit on all {len(x)} samples.")
        return {"samples": len(x), "identical": True}
    i = int(differ[0])
    with tempfile.TemporaryDirectory() as tmp:
        _, trace = cpp_trace(cfg, keras_model, x[i:i + 1], Path(tmp) / "traced")
    _, fast_trace = engine.run(x[i:i + 1], trace=True)
    layer = next((name for name in engine.layer_names if name in trace
                  and not np.array_equal(np.asarray(trace[name], np.float64).reshape(-1), fast_trace[name].reshape(-1))),
                 "the output")
    raise FlowError(f"Cross-check failed: sample {i} differs between the fast engine and hls4ml's C++ emulation, "
                    f"first at layer {layer} ({len(differ)} of {len(x)} samples differ). Use --engine cpp for "
                    "this design and report the layer to hlsflow's maintainers.")


def layer_trace(cfg, keras_model, x, workdir: Path) -> tuple:
    """(ModelGraph, {layer: outputs}): every layer's bit-accurate outputs, from the fast engine on
    the design written to workdir, or from hls4ml's C++ trace (one line says why) where a layer
    has no fast implementation."""
    hls_model, _ = convert_model(keras_model, cfg, workdir)
    with contextlib.redirect_stdout(io.StringIO()):
        hls_model.write()  # the headers and weights the fast engine reads; no g++
    try:
        engine = fastemu.build(hls_model, workdir)
    except Unsupported as exc:
        console.say(f"Fast engine: {exc}, so the trace comes from hls4ml's C++ emulation.")
        return cpp_trace(cfg, keras_model, x, workdir / "traced")
    console.step("Tracing every layer on the fast engine")
    _, trace = engine.run(x, trace=True)
    return hls_model, trace
