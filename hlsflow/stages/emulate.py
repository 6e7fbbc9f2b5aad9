"""csim: bit-accurate emulation of the written HLS project, compared with Keras.

Two engines give the same bits (emulator/): the fast one (the default) runs each layer's
fixed-point arithmetic on the whole batch; `cpp` is hls4ml's own C++ emulation, built with g++
(never Vivado). `auto` takes the fast engine unless a layer has no fast implementation;
`--cross-check N` runs N samples through both and fails on the first differing bit, naming the
layer. Below 99% agreement the layers whose types are at fault are named.
"""

import os
import time

import numpy as np

from .. import console
from ..emulator import cpp, engines, ranges
from ..errors import FlowError, whole_number
from ..files import sha256, write_json
from ..loading import load_keras_model, load_samples, resolve_samples
from ..state import outdir

ENGINES = ("auto", "fast", "cpp")
RESULT = "csim.json"
LOW_AGREEMENT = 0.99  # below this, csim looks for the layers at fault
ACCURACY_DROP = 0.005  # or when emulation loses more than half a point of Keras's accuracy
CURRENT = "csim up to date: {out}/csim.json (project, samples and sample count unchanged)"
AGAIN = "csim runs again"


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


def made_from(cfg, project: dict, samples=None, max_samples=None, engine=None, **flags) -> dict:
    """The project, the samples and their count, the compiler and the engine; not the gate, the
    workers or a cross-check, which change no figure."""
    return {"project": project["tree_hash"], "samples": sha256(resolve_samples(cfg, samples), cache=True),
            "max_samples": max_samples or cfg.flow["emulation"].get("max_samples"),
            "g++": outdir.environment()["versions"]["g++"], "engine": check_engine(engine)}


def work(cfg, into, project: dict, samples=None, max_samples=None, workers=None, engine=None, cross_check=None,
         quiet_advice=False) -> outdir.Outcome:
    samples = resolve_samples(cfg, samples)
    limit = max_samples or cfg.flow["emulation"].get("max_samples")
    result = _emulate(cfg, project, samples, limit, workers, quiet_advice, check_engine(engine), cross_check)
    write_json(into / RESULT, result)
    return outdir.Outcome([RESULT], result=result,
                          sources={"samples": {"path": str(samples), "sha256": sha256(samples, cache=True)}})


def shown(cfg, record: dict, reused: bool) -> dict:
    result = record.get("result") or {}
    if reused:
        print_result(result)
        print_faults(result)
    return result


def gate(cfg, result: dict, min_agreement=None) -> None:
    """FlowError (exit 3) when the agreement is below --min-agreement, else the config's gate."""
    gate = min_agreement if min_agreement is not None else cfg.flow["emulation"].get("min_agreement")
    if gate is not None and result["top1_agreement"] < float(gate):
        raise FlowError(f"Emulation agrees with Keras on {result['top1_agreement']:.1%} of top-1 labels, below "
                        f"the required {float(gate):.1%}: widen the failing layers' precision "
                        "(see the precision profile) before synthesis.", exit_code=3)


def _emulate(cfg, project, samples, limit, workers, quiet_advice, engine="auto", check=None) -> dict:
    keras_model = load_keras_model(cfg.keras_model)
    if len(keras_model.inputs) != 1 or len(keras_model.outputs) != 1:
        raise FlowError("csim compares single-input, single-output models only: this model has "
                        f"{len(keras_model.inputs)} inputs and {len(keras_model.outputs)} outputs.")
    x, y = load_samples(samples, tuple(keras_model.inputs[0].shape), limit)
    n_out = int(np.prod(keras_model.outputs[0].shape[1:]))
    cores = workers or os.cpu_count() or 1
    fast = engines.fast_engine(cfg, keras_model, required=engine == "fast") if engine != "cpp" else None
    if check and fast is None:
        raise FlowError("--cross-check compares the fast engine with the C++ one, and this design runs on the "
                        "C++ engine only (see the line above).")
    workers = max(1, min(cores, (len(x) + cpp.CHUNK - 1) // cpp.CHUNK)) if fast is None else cores
    if fast is not None:
        cpp.check_compiles(cfg, project)  # the C++ engine's own build checks this

    console.step(f"Keras reference on {len(x)} samples from {samples}")
    y_keras = keras_model.predict(x, batch_size=64, verbose=0).reshape(len(x), -1)
    console.step("Bit-accurate emulation of the HLS design")
    if fast is not None and len(x):
        fast.run(x[:1])  # numba compiles its kernels on first use: a few seconds that are not emulation
    start = time.monotonic()
    if fast is not None:
        build = {"library": None, "built": False, "seconds": 0.0, "peak_mb": None}
        y_hls = engines.run_fast(fast, x, workers)
    else:
        build = cpp.build_library(cfg, project)
        y_hls = cpp.run_emulation(build["library"], f"{cfg.project_name}_float", x, n_out, workers)
    seconds = time.monotonic() - start
    checked = engines.cross_check(cfg, project, fast, keras_model, x[:check], y_hls, cores) if check else None

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
        try:
            faults = ranges.quick_check(cfg, keras_model, x[:50])
        except Exception as exc:  # noqa: BLE001 -- hls4ml's analysis fails on some layers; the figures above stand
            reason = " ".join(str(exc).split())[:160] or type(exc).__name__
            console.warn(f"The analysis of which types are at fault failed on this model ({type(exc).__name__}: "
                         f"{reason}); the emulation figures above stand. `hlsflow profile` shows the layers one by one.")
            result["layers_at_fault"] = None
            result["fault_analysis_error"] = f"{type(exc).__name__}: {reason}"
        else:
            result["layers_at_fault"] = [ranges.describe(f) for f in faults]
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
