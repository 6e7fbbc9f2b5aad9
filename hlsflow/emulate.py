"""Bit-accurate emulation of the written HLS project, compared with Keras.

Two engines give the same bits:
- fast (the default): fastemu.py runs each layer's fixed-point arithmetic on the whole batch;
- cpp: hls4ml's own C++ emulation. ModelGraph.compile() only runs g++ on the generated C++ (it
  never runs Vivado); we run the project's build_lib.sh the same way, then load the library in
  one worker process per core, because a single hls4ml predict() call uses one core.
`auto` takes the fast engine unless a layer has no fast implementation; `--cross-check N` runs N
samples through both and fails on the first differing bit, naming the layer.
"""

import multiprocessing
import os
import re
import resource
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np

from . import _emulation_worker, console, outdir
from .errors import FlowError, whole_number
from .files import sha256, write_json
from .loading import load_keras_model, load_samples, resolve_samples

CHUNK = 8  # images per task handed to a worker: small enough for a live progress bar
FAST_CHUNK = 100  # images per fast-engine batch: whole-array work, memory in the hundreds of MB at most
ENGINES = ("auto", "fast", "cpp")
BUILD_LOG = "emulation_build.log"
CHECK_LOG = "cpp_check.log"
RESULT = "csim.json"


def build_library(cfg, project: dict) -> dict:
    """g++ the emulation library of the current project unless the manifest says it is built."""
    out = cfg.output_dir
    lib = outdir.emulation_library(out, cfg.project_name, project["stamp"])
    stage = outdir.Stage(out, "build-emulation", {"project": project["tree_hash"],
                                                  "g++": outdir.environment()["versions"]["g++"]})
    if stage.state()[0] == outdir.CURRENT:
        console.step(f"Emulation library up to date: {lib.name}")
        stage.reuse()
        return {"library": str(lib), "built": False, "seconds": 0.0, "peak_mb": None}
    with stage.running():
        console.step("Building the bit-accurate emulation with g++ (this is C emulation, not Vivado)")
        start = time.monotonic()
        proc = subprocess.Popen(["bash", "./build_lib.sh"], cwd=out, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        while True:
            try:
                output, _ = proc.communicate(timeout=5)
                break
            except subprocess.TimeoutExpired:
                console.say(f"  g++ still compiling... {time.monotonic() - start:.0f}s")
        seconds = time.monotonic() - start
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        (out / BUILD_LOG).write_text(output)
        if proc.returncode != 0 or not lib.exists():
            tail = "\n".join(output.strip().splitlines()[-15:])
            console.say(tail)
            raise FlowError(f"g++ could not build the emulation library (exit {proc.returncode}); the compiler "
                            f"output is in {out / BUILD_LOG}: {known_fix(output)}")
        console.say(f"  built {lib.name} in {seconds:.1f}s (peak g++ memory {peak_mb:.0f} MB)")
        result = {"library": str(lib), "built": True, "seconds": round(seconds, 2), "peak_mb": round(peak_mb, 1)}
        stage.done([lib.relative_to(out).as_posix(), BUILD_LOG], result=result)
    return result


def run_emulation(lib: str, function: str, x: np.ndarray, n_out: int, workers: int) -> np.ndarray:
    chunks = [x[i:i + CHUNK] for i in range(0, len(x), CHUNK)]
    progress = console.Progress(len(x), f"emulating on {workers} core{'s' if workers > 1 else ''}")
    results = []
    if workers == 1:
        _emulation_worker.init(lib, function, n_out)
        for chunk in chunks:
            results.append(_emulation_worker.run(chunk))
            progress.advance(len(chunk))
    else:
        # spawn, not fork: the parent holds TensorFlow's threads, which fork does not survive.
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(workers, initializer=_emulation_worker.init, initargs=(lib, function, n_out)) as pool:
            for out in pool.imap(_emulation_worker.run, chunks):
                results.append(out)
                progress.advance(len(out))
    progress.close()
    return np.concatenate(results) if results else np.zeros((0, n_out), np.float32)


LOW_AGREEMENT = 0.99  # below this, csim looks for the layers at fault
ACCURACY_DROP = 0.005  # or when emulation loses more than half a point of Keras's accuracy


def accuracy_drop(r: dict) -> float:
    """Keras accuracy minus emulated accuracy (0 without labels)."""
    if r.get("keras_accuracy") is None or r.get("hls_accuracy") is None:
        return 0.0
    return r["keras_accuracy"] - r["hls_accuracy"]


def check_engine(engine) -> str:
    engine = engine or "auto"
    if engine not in ENGINES:
        raise FlowError(f"Unknown engine '{engine}': give --engine auto, fast or cpp.")
    return engine


def csim_flags(engine=None, cross_check=None) -> tuple:
    """(engine, cross-check sample count) checked: one sentence for a bad value of either."""
    return check_engine(engine), whole_number(cross_check, "--cross-check", "--cross-check 20")


def csim_stage(cfg, project: dict, samples=None, max_samples=None, engine=None) -> tuple:
    """(the csim Stage, the samples file, the sample count): what csim's results are made from."""
    samples = resolve_samples(cfg, samples)
    limit = max_samples or cfg.flow["emulation"].get("max_samples")
    stage = outdir.Stage(cfg.output_dir, "csim", {"project": project["tree_hash"], "samples": sha256(samples, cache=True),
                                                  "max_samples": limit, "g++": outdir.environment()["versions"]["g++"],
                                                  "engine": check_engine(engine)})
    return stage, samples, limit


def known_fix(compiler_output: str) -> str:
    """What to do about g++'s errors on hls4ml's C++: the fix for the ones we know, else where to look."""
    if re.search(r"'softmax_config\d+' was not declared", compiler_output.replace("\u2018", "'").replace("\u2019", "'")):
        # hls4ml 1.3.0 declares Softmax_configN for a Keras Softmax layer but calls softmax_configN
        return ("hls4ml 1.3.0 misnames the config of a standalone Keras Softmax layer; use Activation('softmax') "
                "or activation='softmax' on the layer before it, which compute the same.")
    return "change the layer or setting the errors above name, or report them to hls4ml."


def check_compiles(cfg, project: dict) -> None:
    """g++ -fsyntax-only on the written firmware, once per project tree: the fast engine reads the
    design's types and weights but not its C++, so without this a design hls4ml wrote wrongly (a
    config it names but never declares) would pass csim and fail only in Vivado. A few seconds,
    no code generated."""
    out = cfg.output_dir
    stage = outdir.Stage(out, "check-cpp", {"project": project["tree_hash"],
                                            "g++": outdir.environment()["versions"]["g++"]})
    if stage.state()[0] == outdir.CURRENT:
        stage.reuse()
        return
    if shutil.which("g++") is None:
        raise FlowError("csim checks the written C++ with g++, which is not on PATH: install g++ (Debian: "
                        "apt-get install g++) or run hlsflow from its image.")
    with stage.running():
        console.step("Checking that g++ accepts the written C++ (syntax and templates only)")
        std = "-std=c++23" if subprocess.run(["g++", "-Werror", "-fsyntax-only", "-std=c++23", "-xc++", "-"], input="",
                                             capture_output=True, text=True).returncode == 0 else "-std=c++11"
        # build_lib.sh chooses the standard the same way; WEIGHTS_DIR is what it defines too
        proc = subprocess.run(["g++", "-fsyntax-only", std, "-Ifirmware/ap_types/", f'-DWEIGHTS_DIR="{out / "firmware" / "weights"}"',
                               f"firmware/{cfg.project_name}.cpp"], cwd=out, capture_output=True, text=True)
        (out / CHECK_LOG).write_text(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            errors = [line for line in proc.stderr.splitlines() if "error" in line][:5]
            console.say("\n".join(errors))
            raise FlowError(f"g++ rejects the C++ hls4ml wrote for this design (the errors are in {out / CHECK_LOG}), "
                            f"so neither emulation nor Vivado can use it: {known_fix(proc.stderr)}")
        stage.done([CHECK_LOG], result={"std": std})


def csim(cfg, samples=None, min_agreement=None, max_samples=None, workers=None, quiet_advice=False,
         force=False, engine=None, cross_check=None) -> dict:
    project = outdir.require_project(cfg)
    out = cfg.output_dir
    engine, cross_check = csim_flags(engine, cross_check)
    if cross_check:
        force = True  # a cross-check is asked for now: never answered from an earlier run
    stage, samples, limit = csim_stage(cfg, project, samples, max_samples, engine)
    state, why = stage.state()
    if state == outdir.CURRENT and not force:
        console.step(f"csim up to date: {out / RESULT} (project, samples and sample count unchanged)")
        result = stage.reuse()
        print_result(result)
        print_faults(result)
    else:
        if state != outdir.MISSING:
            console.step(f"csim runs again: {why}")
        with stage.running():
            result = _emulate(cfg, project, samples, limit, workers, quiet_advice, engine, cross_check)
            write_json(out / RESULT, result)
            stage.done([RESULT], result=result, sources={"samples": {"path": str(samples),
                                                                     "sha256": sha256(samples, cache=True)}})

    gate = min_agreement if min_agreement is not None else cfg.flow["emulation"].get("min_agreement")
    if gate is not None and result["top1_agreement"] < float(gate):
        raise FlowError(f"Emulation agrees with Keras on {result['top1_agreement']:.1%} of top-1 labels, below "
                        f"the required {float(gate):.1%}: widen the failing layers' precision "
                        "(see the precision profile) before synthesis.", exit_code=3)
    return result


def fast_engine(cfg, keras_model, required: bool):
    """The fast engine for the project in the output directory, or None (with one line saying
    which layer) when a layer has no fast implementation and the C++ path is acceptable."""
    import tempfile

    from . import fastemu
    from .convert import convert_model
    from .fixedpoint import Unsupported

    with tempfile.TemporaryDirectory() as tmp:  # an in-memory conversion; nothing is written there
        hls_model, _ = convert_model(keras_model, cfg, Path(tmp) / "prj")
    try:
        return fastemu.build(hls_model, cfg.output_dir)
    except Unsupported as exc:
        if required:
            raise FlowError(f"The fast engine cannot emulate this design: {exc}. Run with --engine cpp "
                            "(or auto, which falls back by itself).") from None
        console.say(f"Fast engine: {exc} has no fast implementation; csim uses the C++ emulation for the "
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
    import tempfile

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
    import contextlib
    import io

    from . import fastemu
    from .convert import convert_model
    from .fixedpoint import Unsupported

    hls_model, _ = convert_model(keras_model, cfg, workdir)
    with contextlib.redirect_stdout(io.StringIO()):
        hls_model.write()  # the headers and weights the fast engine reads; no g++
    try:
        engine = fastemu.build(hls_model, workdir)
    except Unsupported as exc:
        console.say(f"Fast engine: {exc} has no fast implementation; the trace comes from hls4ml's C++ emulation.")
        return cpp_trace(cfg, keras_model, x, workdir / "traced")
    console.step("Tracing every layer on the fast engine")
    _, trace = engine.run(x, trace=True)
    return hls_model, trace


def cpp_trace(cfg, keras_model, x, workdir: Path) -> tuple:
    """(ModelGraph, {layer: outputs}): hls4ml's bit-accurate per-layer trace, from a traced copy of
    the design compiled with g++ in workdir."""
    import contextlib
    import copy
    import io

    from .convert import convert_model

    traced_cfg = copy.deepcopy(cfg)
    for layer in traced_cfg.hls_config.setdefault("LayerName", {}).values():
        layer["Trace"] = True
    for layer in keras_model.layers:
        traced_cfg.hls_config["LayerName"].setdefault(layer.name, {})["Trace"] = True
    hls_model, _ = convert_model(keras_model, traced_cfg, workdir)
    console.step("Compiling a traced copy of the design (g++) for hls4ml's per-layer trace")
    with contextlib.redirect_stdout(io.StringIO()):
        _, trace = hls_model.trace(np.ascontiguousarray(x))
    return hls_model, trace


def _emulate(cfg, project, samples, limit, workers, quiet_advice, engine="auto", check=None) -> dict:
    keras_model = load_keras_model(cfg.keras_model)
    if len(keras_model.inputs) != 1 or len(keras_model.outputs) != 1:
        raise FlowError("csim compares single-input, single-output models only: this model has "
                        f"{len(keras_model.inputs)} inputs and {len(keras_model.outputs)} outputs.")
    x, y = load_samples(samples, tuple(keras_model.inputs[0].shape), limit)
    n_out = int(np.prod(keras_model.outputs[0].shape[1:]))
    cores = workers or os.cpu_count() or 1
    fast = fast_engine(cfg, keras_model, required=engine == "fast") if engine != "cpp" else None
    if check and fast is None:
        raise FlowError("--cross-check compares the fast engine with the C++ one, and this design runs on the "
                        "C++ engine only (see the line above).")
    workers = max(1, min(cores, (len(x) + CHUNK - 1) // CHUNK)) if fast is None else cores
    if fast is not None:
        check_compiles(cfg, project)  # the C++ engine's own build checks this

    console.step(f"Keras reference on {len(x)} samples from {samples}")
    y_keras = keras_model.predict(x, batch_size=64, verbose=0).reshape(len(x), -1)
    console.step("Bit-accurate emulation of the HLS design")
    if fast is not None and len(x):
        fast.run(x[:1])  # numba compiles its kernels on first use: a few seconds that are not emulation
    start = time.monotonic()
    if fast is not None:
        build = {"library": None, "built": False, "seconds": 0.0, "peak_mb": None}
        y_hls = run_fast(fast, x, workers)
    else:
        build = build_library(cfg, project)
        y_hls = run_emulation(build["library"], f"{cfg.project_name}_float", x, n_out, workers)
    seconds = time.monotonic() - start
    checked = cross_check(cfg, project, fast, keras_model, x[:check], y_hls, cores) if check else None

    diff = np.abs(y_hls - y_keras)
    result = {
        "samples": len(x),
        "samples_file": str(samples),
        "top1_agreement": float(np.mean(y_hls.argmax(1) == y_keras.argmax(1))),
        "keras_accuracy": float(np.mean(y_keras.argmax(1) == y)) if y is not None else None,
        "hls_accuracy": float(np.mean(y_hls.argmax(1) == y)) if y is not None else None,
        "max_abs_diff": float(diff.max()) if diff.size else 0.0,
        "mean_abs_diff": float(diff.mean()) if diff.size else 0.0,
        "images_per_second": round(len(x) / seconds, 1) if seconds > 0 else None,
        "workers": workers,
        "engine": "fast" if fast is not None else "cpp",
        "emulation_build": build,
        "cross_check": checked,
    }
    print_result(result)
    if (result["top1_agreement"] < LOW_AGREEMENT or accuracy_drop(result) > ACCURACY_DROP) and not quiet_advice:
        from . import profile

        try:
            faults = profile.quick_check(cfg, keras_model, x[:50])
        except Exception as exc:  # noqa: BLE001 -- hls4ml's analysis fails on some layers; the figures above stand
            reason = " ".join(str(exc).split())[:160] or type(exc).__name__
            console.warn(f"The analysis of which types are at fault failed on this model ({type(exc).__name__}: "
                         f"{reason}); the emulation figures above stand. `hlsflow profile` shows the layers one by one.")
            result["layers_at_fault"] = None
            result["fault_analysis_error"] = f"{type(exc).__name__}: {reason}"
        else:
            result["layers_at_fault"] = [profile.describe(f) for f in faults]
            print_faults(result)
    return result


def print_faults(result: dict) -> None:
    if result.get("layers_at_fault") == []:  # checked, and no type is to blame on its own
        console.say("No single data-path type is at fault: each layer's output and accumulator type holds the Keras "
                    "values of the checked samples at its resolution, so the difference is rounding of weights and "
                    "values that adds up. `hlsflow profile` shows where each layer departs from Keras; "
                    "`hlsflow tune-precision` tries more fractional bits.")
    elif result.get("layers_at_fault"):
        console.say("Layers at fault (Keras values outside their fixed-point type, or below its resolution):")
        for line in result["layers_at_fault"]:
            console.say(f"  {line}")
        console.say("`hlsflow tune-precision` proposes the widened types and measures the result.")


def print_result(r: dict) -> None:
    def pct(v):
        return "n/a (no labels)" if v is None else f"{v:.1%}"

    console.say(console.table(["figure", "value"], [
        ("samples", r["samples"]),
        ("top-1 agreement HLS vs Keras", pct(r["top1_agreement"])),
        ("Keras accuracy", pct(r["keras_accuracy"])),
        ("HLS emulation accuracy", pct(r["hls_accuracy"])),
        ("accuracy lost (Keras - HLS)", "n/a (no labels)" if r["hls_accuracy"] is None
         else f"{100 * accuracy_drop(r):.1f} points"),
        ("max |HLS - Keras|", f"{r['max_abs_diff']:.4g}"),
        ("mean |HLS - Keras|", f"{r['mean_abs_diff']:.4g}"),
        ("images/s", f"{r['images_per_second']} ({r.get('engine', 'cpp')} engine, {r['workers']} "
                     f"{'threads' if r.get('engine') == 'fast' else 'workers'})"),
    ]))
