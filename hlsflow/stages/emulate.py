"""csim: bit-accurate emulation of the written HLS project, compared with Keras.

Two engines give the same bits (emulator/): the fast one (the default) runs each layer's
fixed-point arithmetic on the whole batch; `cpp` is hls4ml's own C++ emulation, built with g++
(never Vivado). `auto` takes the fast engine unless a layer has no fast implementation;
`--cross-check N` runs N samples through both and fails on the first differing bit, naming the
layer. Below 99% agreement the layers whose types are at fault are named.

The figure fits the model's output (emulator/figures.py): top-1 agreement for a classifier
(softmax, or logits with class labels), agreement at a threshold for one sigmoid output (or one
logit with 0/1 labels), and the absolute and relative error against Keras for anything else (a
regression). The gates: min_agreement for the agreement figures, max_error (max |HLS - Keras|)
for any output.
"""

import contextlib
import io
import os
import time

import numpy as np

from .. import console, stats, steps
from ..emulator import cpp, engines, ranges
from ..emulator.figures import choose_metric, compare, labels_kind, output_activation
from ..emulator.fixedpoint import Unsupported
from ..errors import FlowError, whole_number
from ..files import sha256, write_atomically, write_json
from ..inputs import environment, model_hashes
from ..loading import load_keras_model
from ..samples import load_samples, resolve_samples

ENGINES = ("auto", "fast", "cpp")
RESULT = steps.CSIM.outputs[0]
LOW_AGREEMENT = 0.99  # below this, csim looks for the layers at fault
HIGH_ERROR = 0.05  # or, for an output measured by its error, above this mean relative error
ACCURACY_DROP = 0.005  # or when emulation loses more than half a point of Keras's accuracy
CURRENT = "csim up to date: {out}/csim.json (project, samples and sample count unchanged)"
AGAIN = "csim runs again"
REFERENCE = steps.KERAS_REFERENCE.outputs[0]


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


def made_from(cfg, project: dict, samples=None, max_samples=None, engine=None, check_cpp=True, **flags) -> dict:
    """The project, the samples and their count, the compiler and the engine, and whether g++ checked
    the C++ (tune's trial designs skip it); not the gate, the workers or a cross-check, which change
    no figure."""
    return {"project": project["tree_hash"], "samples": sha256(resolve_samples(cfg, samples), cache=True),
            "max_samples": max_samples or cfg.flow["emulation"].get("max_samples"),
            "g++": environment()["versions"]["g++"], "engine": check_engine(engine),
            "metric": cfg.flow["emulation"].get("metric") or "auto", "cpp_checked": bool(check_cpp)}


def work(cfg, into, project: dict, samples=None, max_samples=None, workers=None, engine=None, cross_check=None,
         quiet_advice=False, check_cpp=True, caches=None) -> steps.Outcome:
    samples = resolve_samples(cfg, samples)
    limit = max_samples or cfg.flow["emulation"].get("max_samples")
    result = _emulate(cfg, project, samples, limit, workers, quiet_advice, check_engine(engine), cross_check, caches,
                      check_cpp)
    write_json(into / RESULT, result)
    return steps.Outcome([RESULT], result=result,
                         sources={"samples": {"path": str(samples), "sha256": sha256(samples, cache=True)}})


def shown(cfg, record: dict, reused: bool) -> dict:
    result = record.get("result") or {}
    if reused:
        print_result(result)
        print_faults(result)
    return result


WORK = steps.Work(steps.CSIM, work, made_from=made_from, shown=shown, current=CURRENT, again=AGAIN, caches=True)


def gate(cfg, result: dict, min_agreement=None, max_error=None) -> None:
    """FlowError (exit 3) when the figure misses its gate (the flags, else the config's): the
    agreement below min_agreement (judged on the exact count of samples), or max |HLS - Keras|
    above max_error. Either way the line says when the gate lies inside the figure's 95% interval."""
    emulation = cfg.flow["emulation"]
    low = min_agreement if min_agreement is not None else emulation.get("min_agreement")
    high = max_error if max_error is not None else emulation.get("max_error")
    metric = result.get("metric", "top1")  # a csim.json of an earlier version measured top-1 only
    if low is not None:
        if metric == "error":
            raise FlowError(f"csim measures this model's output by its error against Keras ({_output_text(result)}, "
                            "not a classifier's labels), so an agreement gate (min_agreement, --min-agreement, "
                            "tune-precision's target) does not apply to it: gate it with max_error (--max-error).")
        n = result["samples"]
        k = stats.count(result.get("agreement", result.get("top1_agreement")), n)
        note = stats.gate_note(k, n, low)
        if not stats.meets(k, n, low):
            inside = f" ({note})" if note else ""
            raise FlowError(f"Emulation agrees with Keras on {stats.figure(k, n, low)} of {_labels_text(metric)}, "
                            f"below the required {stats.percent(float(low), k / n)} ({stats.needed(n, low)} of {n})"
                            f"{inside}: "
                            f"{_advice(result)}.", exit_code=3)
        console.say(f"Gate met: {_figure_text(metric)} {stats.figure(k, n, low)} >= min_agreement "
                    f"{stats.percent(float(low))}" + (f"; {note}." if note else "."))
    if high is not None:
        if result["max_abs_diff"] > float(high):
            raise FlowError(f"Emulation departs from Keras by up to {result['max_abs_diff']:.4g} (max |HLS - Keras| "
                            f"over {result['samples']} samples), above the allowed max_error {float(high):g}: "
                            f"{_advice(result)}.", exit_code=3)
        console.say(f"Gate met: max |HLS - Keras| {result['max_abs_diff']:.4g} <= max_error {float(high):g}.")


def _advice(result: dict) -> str:
    """What to do about a missed gate, true to what the fault analysis found (or did not look for)."""
    faults = result.get("layers_at_fault")
    if result.get("cause"):
        first = "no single layer's type is at fault, and " if faults == [] else ""
        return f"{first}what limits it is {result['cause']['text']}; {_cause_advice(result['cause'])}"
    if faults:
        named = sorted({line.split()[0] for line in faults})
        return (f"widen the types of the layers named above ({', '.join(named)}), or let `hlsflow tune-precision` "
                "find and measure the widened types, before synthesis")
    if faults == []:
        return ("no single layer's type is at fault (each holds the Keras values at its resolution), so the "
                "difference is rounding that adds up: `hlsflow tune-precision` measures finer types, and "
                "`hlsflow profile` shows where the layers depart from Keras")
    return ("widen the types of the layers that depart from Keras (`hlsflow profile` shows which; no layer was "
            "checked here), or let `hlsflow tune-precision` find and measure the widened types")


def _figure_text(metric: str) -> str:
    if metric == "top1":
        return "top-1 agreement HLS vs Keras"
    if metric.startswith("threshold"):
        return f"agreement at threshold {metric.split('_')[1]}"
    return "error against Keras"


def _labels_text(metric: str) -> str:
    return "top-1 labels" if metric == "top1" else f"labels read at threshold {metric.split('_')[1]}"


def _output_text(r: dict) -> str:
    n = r.get("outputs")
    return f"{r.get('output_activation', 'unknown')} output" + (f", {n} value{'s' if n != 1 else ''}" if n else "")


class _Keras:
    """The Keras model, loaded (TensorFlow and all: seconds) the first time something needs it; a
    current project with its Keras reference cached needs it only for the fault analysis."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.model = None

    def __call__(self):
        if self.model is None:
            model = load_keras_model(self.cfg.keras_model)
            if len(model.inputs) != 1 or len(model.outputs) != 1:
                raise FlowError("csim compares single-input, single-output models only: this model has "
                                f"{len(model.inputs)} inputs and {len(model.outputs)} outputs.")
            self.model = model
        return self.model


def keras_reference(cfg, samples, limit, keras, caches) -> tuple:
    """(x, y, Keras's outputs (samples x values), facts: the model's input shape, output count and
    output activation). Kept in the output folder (REFERENCE, recorded by `caches`) by the
    model's and the samples' hashes and the sample count, so that a csim with both unchanged
    imports no TensorFlow; a missing, damaged or mismatched file is computed again."""
    inputs = {"model": list(model_hashes(cfg).values()), "samples": sha256(samples, cache=True),
              "max_samples": limit, "TensorFlow": environment()["versions"]["TensorFlow"]}
    cached = _cached_reference(cfg, caches.kept(steps.KERAS_REFERENCE, inputs))
    if cached is not None:
        facts, y_keras = cached
        x, y = load_samples(samples, tuple(facts["input_shape"]), limit, labels_as_stored=True)
        if y_keras.shape == (len(x), facts["outputs"]):
            console.step(f"Keras reference on {len(x)} samples from {samples}: reused from "
                         f"{cfg.output_dir / REFERENCE} (model and samples unchanged)")
            return x, y, y_keras, facts
    model = keras()
    x, y = load_samples(samples, tuple(model.inputs[0].shape), limit, labels_as_stored=True)
    facts = {"input_shape": list(model.inputs[0].shape), "outputs": int(np.prod(model.outputs[0].shape[1:])),
             "output_activation": output_activation(model)}
    console.step(f"Keras reference on {len(x)} samples from {samples}")
    y_keras = model.predict(x, batch_size=64, verbose=0).reshape(len(x), -1)

    def work(into):
        (into / steps.CACHE_DIR).mkdir(exist_ok=True)
        buffer = io.BytesIO()
        np.save(buffer, y_keras, allow_pickle=False)
        write_atomically(into / REFERENCE, buffer.getvalue())
        return steps.Outcome([REFERENCE], result=facts)

    caches.keep(steps.KERAS_REFERENCE, inputs, work, force=True)
    return x, y, y_keras, facts


def _cached_reference(cfg, facts):
    """(facts, Keras's outputs) when the record is current (its facts kept) and its file reads as it
    should; else None."""
    if facts is None:
        return None
    try:
        y_keras = np.load(cfg.output_dir / REFERENCE, allow_pickle=False)
        ok = (isinstance(facts.get("input_shape"), list) and isinstance(facts.get("outputs"), int)
              and isinstance(facts.get("output_activation"), str) and y_keras.ndim == 2)
    except Exception:  # noqa: BLE001 -- whatever a damaged file fails with means "compute it again"
        return None
    return (facts, y_keras) if ok else None


def _emulate(cfg, project, samples, limit, workers, quiet_advice, engine="auto", check=None, caches=None,
             check_cpp=True) -> dict:
    keras = _Keras(cfg)
    cores = workers or os.cpu_count() or 1
    fast = engines.fast_engine(cfg, project, keras, engine == "fast", caches) if engine != "cpp" else None
    if check and fast is None:
        raise FlowError("--cross-check compares the fast engine with the C++ one, and this design runs on the "
                        "C++ engine only (see the line above).")
    # g++'s syntax check of the C++ runs beside the Keras reference and the emulation (the C++
    # engine's own build checks it); a rejection ends csim before anything is written.
    with cpp.compiles_checked(cfg, project, caches) if fast is not None and check_cpp else contextlib.nullcontext():
        x, y, y_keras, facts = keras_reference(cfg, samples, limit, keras, caches)
        n_out, activation = facts["outputs"], facts["output_activation"]
        metric = choose_metric(cfg.flow["emulation"].get("metric") or "auto", activation, n_out, labels_kind(y, n_out))
        console.step("Bit-accurate emulation of the HLS design")
        if fast is not None:
            try:
                if len(x):
                    fast.run(x[:1])  # numba compiles its kernels on first use: a few seconds that are not emulation
                start = time.monotonic()
                y_hls = engines.run_fast(fast, x, cores)
            except Unsupported as exc:  # what only the values show (a float too large to wrap): the C++ engine
                fast = engines.unsupported_while_running(exc, required=engine == "fast", check=check)
        workers = max(1, min(cores, (len(x) + cpp.CHUNK - 1) // cpp.CHUNK)) if fast is None else cores
        if fast is not None:
            build = {"library": None, "built": False, "seconds": 0.0, "peak_mb": None}
        else:
            build = cpp.build_library(cfg, project, caches)
            start = time.monotonic()  # images/s is the emulation's speed; g++'s seconds are in emulation_build
            y_hls = cpp.run_emulation(build["library"], f"{cfg.project_name}_float", x, n_out, workers)
        seconds = time.monotonic() - start
        checked = engines.cross_check(cfg, project, fast, keras(), x[:check], y_hls, cores, caches) if check else None

    result = {
        "samples": len(x),
        "samples_file": str(samples),
        "metric": metric,
        "gate": "max_error" if metric == "error" else "min_agreement",  # the config key that fits the figure
        "output_activation": activation,
        "outputs": n_out,
        **compare(metric, y_hls, y_keras, y),
        "images_per_second": round(len(x) / seconds, 1) if seconds > 0 else None,
        "workers": workers,
        "engine": "fast" if fast is not None else "cpp",
        "emulation_build": build,
        "cross_check": checked,
    }
    print_result(result)
    low = result["mean_rel_error"] > HIGH_ERROR if metric == "error" else result["agreement"] < LOW_AGREEMENT
    if (low or accuracy_drop(result) > ACCURACY_DROP) and not quiet_advice:
        result.update(_fault_analysis(cfg, project, samples, limit, keras, x, caches, y_keras, metric))
        if result.get("fault_analysis_error"):
            console.warn(f"The analysis of which types are at fault failed on this model "
                         f"({result['fault_analysis_error']}); the emulation figures above stand. `hlsflow profile` "
                         "shows the layers one by one.")
        else:
            print_faults(result)
    return result


def _fault_analysis(cfg, project, samples, limit, keras, x, caches, y_keras=None, metric="top1") -> dict:
    """{"layers_at_fault": [lines], "cause": what limits agreement (emulator/cause.py, for a figure
    of agreement)}, or None there and why in "fault_analysis_error". Kept in the manifest by the
    project, the samples and the code, like the rest of csim's set-up: it needs the Keras model and
    hls4ml."""
    inputs = {"project": project["tree_hash"], "design": project.get("key"), "samples": sha256(samples, cache=True),
              "max_samples": limit, "code": engines.code_version(),
              "TensorFlow": environment()["versions"]["TensorFlow"]}
    found = caches.kept(steps.FAULT_ANALYSIS, inputs) or {}
    if isinstance(found.get("layers_at_fault"), list) or isinstance(found.get("fault_analysis_error"), str):
        return found
    try:
        faults = ranges.quick_check(cfg, keras(), x[:50])
    except Exception as exc:  # noqa: BLE001 -- hls4ml's analysis fails on some layers; the figures above stand
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        found = {"layers_at_fault": None, "fault_analysis_error": f"{type(exc).__name__}: {reason}"}
    else:
        found = {"layers_at_fault": [ranges.describe(f) for f in faults]}
        if metric != "error" and y_keras is not None:
            found["cause"] = _cause(cfg, keras(), x, y_keras, metric)
    caches.keep(steps.FAULT_ANALYSIS, inputs, lambda into: steps.Outcome([], result=found), force=True)
    return found


def _cause(cfg, keras_model, x, y_keras, metric):
    """emulator/cause.py's finding as a dict, or None (and one line why) where the diagnostic designs
    cannot run on the fast engine."""
    from ..emulator import cause

    gate = cfg.flow["emulation"].get("min_agreement") or LOW_AGREEMENT
    console.step("Looking for what limits agreement (diagnostic designs, never written as advice)")
    try:
        return cause.diagnose(cfg, keras_model, x, y_keras, metric, gate, say=console.say).as_dict()
    except Unsupported as exc:
        console.say(f"The diagnostic designs need the fast engine, and {exc}: no cause named.")
    except Exception as exc:  # noqa: BLE001 -- hls4ml may refuse a diagnostic design; the figures above stand
        console.say(f"The diagnostic designs could not run on this model ({type(exc).__name__}: "
                    f"{' '.join(str(exc).split())[:160]}): no cause named.")
    return None


def _cause_advice(found: dict) -> str:
    """What to do, given what limits agreement."""
    kind = found["kind"]
    if kind == "table":
        return (f"give the table of {', '.join(found['tables'])} more entries (LayerName: TableSize) or wider "
                "types (exp_table_t, inv_table_t beside TableSize), or let `hlsflow tune-precision` measure them")
    if kind in ("data path", "weights", "types and table"):
        return "`hlsflow tune-precision` searches there and measures each step"
    if kind == "near ties":
        return "no type can change that: more decisive samples, or a gate these samples can reach"
    if kind == "layer":
        return (f"no type or table can change that: check what hls4ml supports of {found['layer']}'s Keras options; "
                "`hlsflow profile` shows each layer's departure from Keras")
    return "`hlsflow profile` shows each layer's departure from Keras"


def print_faults(result: dict) -> None:
    found = result.get("cause")
    if found:
        if result.get("layers_at_fault") == []:
            console.say("No single data-path type is at fault: each layer's output and accumulator type holds the "
                        "Keras values of the checked samples at its resolution.")
        elif result.get("layers_at_fault"):
            console.say("Layers at fault (Keras values outside their fixed-point type, or below its resolution):")
            for line in result["layers_at_fault"]:
                console.say(f"  {line}")
        console.say(f"What limits agreement: {found['text']}. Next: {_cause_advice(found)}.")
        return
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
    def pct(v):  # a share of the samples, with its 95% interval and count
        return "n/a (no labels)" if v is None else stats.figure(stats.count(v, r["samples"]), r["samples"])

    metric = r.get("metric", "top1")
    rows = [("samples", r["samples"] if metric == "error" else f"{r['samples']} (shares: [95% interval], count)"),
            ("csim measures", f"{_figure_text(metric)} ({_output_text(r)}); gate: {r.get('gate', 'min_agreement')}")]
    if metric == "error":
        rows += [("max |HLS - Keras| / |Keras|", f"{r['max_rel_error']:.4g}"),
                 ("mean |HLS - Keras| / |Keras|", f"{r['mean_rel_error']:.4g}")]
    else:
        rows += [(_figure_text(metric), pct(r.get("agreement", r.get("top1_agreement")))),
                 ("Keras accuracy", pct(r["keras_accuracy"])),
                 ("HLS emulation accuracy", pct(r["hls_accuracy"])),
                 ("accuracy lost (Keras - HLS)", "n/a (no labels)" if r["hls_accuracy"] is None
                  else f"{100 * accuracy_drop(r):.1f} points")]
    rows += [("max |HLS - Keras|", f"{r['max_abs_diff']:.4g}"),
             ("mean |HLS - Keras|", f"{r['mean_abs_diff']:.4g}"),
             ("images/s", f"{r['images_per_second']} ({r.get('engine', 'cpp')} engine, {r['workers']} "
                          f"{'threads' if r.get('engine') == 'fast' else 'workers'})")]
    console.say(console.table(["figure", "value"], rows))
