"""Which engine emulates a design: the fast one (fastemu.py, each layer's fixed-point
arithmetic on a whole batch) run in batches, or hls4ml's C++ emulation (cpp.py) where a layer
has no fast implementation; and the two compared bit for bit on the same samples."""

import contextlib
import hashlib
import io
import pickle
import platform
import tempfile
from pathlib import Path

import numpy as np

from .. import console, steps
from ..design import convert_model, in_memory
from ..errors import FlowError
from ..files import write_atomically
from . import fastemu
from .cpp import build_library, cpp_trace, run_emulation
from .fixedpoint import Unsupported

FAST_CHUNK = 100  # images per fast-engine batch: whole-array work, memory in the hundreds of MB at most
ENGINE_RECORD = steps.FAST_ENGINE.name  # the manifest's record of the cached engine
ENGINE_FILE = steps.FAST_ENGINE.outputs[0]
# What the engine's state is computed by: a change to any of these builds it again.
ENGINE_CODE = ("emulator/*.py", "fixedtype.py", "design.py")


def code_version() -> str:
    """sha256 of the engine's own source, so a cached engine never outlives the code that built it."""
    package = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for pattern in ENGINE_CODE:
        for path in sorted(package.glob(pattern)):
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def fast_engine(cfg, project: dict, load_keras, required: bool, caches):
    """The fast engine for the project in the output directory, or None (with one line saying
    which layer) when a layer has no fast implementation and the C++ path is acceptable. Built
    once per project tree and engine code, and kept in the output folder (ENGINE_FILE, recorded by
    `caches`, state.records.Caches): a current project's csim then needs neither hls4ml's conversion
    nor the Keras model, which `load_keras()` loads only when the engine is built."""
    inputs = {"project": project["tree_hash"], "design": project.get("key"), "engine": code_version(),
              "Python": platform.python_version(), "numpy": np.__version__}
    cached = _cached_engine(caches, inputs)
    if cached is None:
        with in_memory(load_keras(), cfg) as hls_model:  # the engine reads the written project, not this folder
            try:
                cached = fastemu.build(hls_model, cfg.output_dir)
            except Unsupported as exc:
                cached = str(exc)

        _keep(caches, inputs, cached)
    if isinstance(cached, str):
        if required:
            raise FlowError(f"The fast engine cannot emulate this design: {cached}. Run with --engine cpp "
                            "(or auto, which falls back by itself).")
        console.say(f"Fast engine: {cached}, so csim uses the C++ emulation for the "
                    "whole model.")
        return None
    return cached


def unsupported_while_running(exc: Unsupported, required: bool, check=None):
    """None after one line saying why the C++ engine runs instead, when the fast engine met at run
    time something it does not reproduce; FlowError when the fast engine was required."""
    if required or check:
        why = "--engine fast was asked for" if required else "--cross-check compares it with the C++ one"
        raise FlowError(f"The fast engine cannot emulate this design ({exc}) and {why}: run with --engine cpp "
                        "(or auto, which falls back by itself).")
    console.say(f"Fast engine: {exc} while emulating, so csim uses the C++ emulation for the whole model.")
    return None


def _keep(caches, inputs: dict, built) -> None:
    """Hand the engine just built (or why there is none) to `caches` for the next csim on this
    project. An engine that cannot be stored is simply not kept: csim goes on, the next one builds
    it again."""
    if isinstance(built, str):
        caches.keep(steps.FAST_ENGINE, inputs, lambda into: steps.Outcome([], result={"unsupported": built}),
                    force=True)
        return
    try:
        # The engine's layers are closures over their weights, types and tables: cloudpickle stores
        # them by value (code and data), where pickle only names module-level functions.
        import cloudpickle

        data = cloudpickle.dumps(built, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # noqa: BLE001 -- whatever a layer holds that cannot be stored
        console.say(f"Fast engine: not kept for the next csim ({type(exc).__name__}); it is built again then.")
        return

    def work(into):
        (into / steps.CACHE_DIR).mkdir(exist_ok=True)
        write_atomically(into / ENGINE_FILE, data)
        return steps.Outcome([ENGINE_FILE], result={"unsupported": None})

    caches.keep(steps.FAST_ENGINE, inputs, work, force=True)


def _cached_engine(caches, inputs: dict):
    """The recorded engine (or the recorded reason it cannot be built) when its record is current
    and its file loads; None otherwise, and the engine is built again: a damaged or foreign file
    is never trusted."""
    result = caches.kept(steps.FAST_ENGINE, inputs)
    if result is None:
        return None
    if result.get("unsupported"):
        return str(result["unsupported"])
    try:
        engine = pickle.loads((caches.out_dir / ENGINE_FILE).read_bytes())
    except Exception:  # noqa: BLE001 -- anything unpickling fails with means "build it again"
        return None
    if not isinstance(engine, fastemu.Engine):
        return None
    console.say(f"Fast engine: reused from {caches.out_dir / ENGINE_FILE} (project and engine code unchanged).")
    return engine


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


def cross_check(cfg, project, engine, keras_model, x: np.ndarray, y_fast: np.ndarray, workers: int,
                caches) -> dict:
    """Both engines on the same samples, compared bit for bit; the first difference is traced
    layer by layer through hls4ml's own trace and named."""
    build = build_library(cfg, project, caches)
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
    try:
        _, trace = engine.run(x, trace=True)
    except Unsupported as exc:  # what only the values show
        console.say(f"Fast engine: {exc} while tracing, so the trace comes from hls4ml's C++ emulation.")
        return cpp_trace(cfg, keras_model, x, workdir / "traced")
    return hls_model, trace
