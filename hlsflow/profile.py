"""Precision profile and advice: where the fixed-point design stops computing what Keras does.

For every hls4ml layer: the Keras value range of its output (and of its accumulator, where
hls4ml has one), what the configured types can hold, whether values overflow or fall below the
resolution, and the per-layer error of hls4ml's own trace against Keras. The advice widens
only the types that overflow, keeping their fractional bits, and proves the change by
emulating again.
"""

import contextlib
import copy
import io
import math
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import console, outdir
from .config import FixedType
from .convert import convert_model
from .loading import load_keras_model, load_samples, resolve_samples
from .errors import FlowError
from .files import sha256, write_atomically, write_json

# Layers whose accumulator holds a sum we can bound from Keras values.
ACCUM_FROM_OUTPUT = ("Conv1D", "Conv2D", "PointwiseConv1D", "PointwiseConv2D", "Dense")
ACCUM_POOLING = ("GlobalPooling2D", "GlobalPooling1D", "Pooling2D", "Pooling1D")
HEADROOM = 1.25  # advice leaves 25% above the largest value seen


@dataclass
class Finding:
    layer: str
    kind: str  # "result" or "accum"
    keras_min: float
    keras_max: float
    type_name: str
    type_min: float
    type_max: float
    resolution: float
    overflow: bool
    underflow_share: float  # share of non-zero values smaller than the resolution
    fixed: FixedType = None  # the type itself, for the advice
    trace_max_err: float = None
    trace_mean_err: float = None

    @property
    def verdict(self) -> str:
        if self.overflow:
            return "OVERFLOW"
        if self.underflow_share > 0.5:
            return "loses resolution"
        return "ok"


def fixed_type(precision) -> FixedType:
    """A FixedType from an hls4ml precision object (FixedPrecisionType or IntegerPrecisionType)."""
    width = int(getattr(precision, "width", 0))
    integer = int(getattr(precision, "integer", width))
    return FixedType(signed=bool(getattr(precision, "signed", True)), width=width, integer=integer)


def _type_text(t: FixedType) -> str:
    return f"ap_{'' if t.signed else 'u'}fixed<{t.width},{t.integer}>"


def keras_layer_outputs(keras_model, x) -> dict:
    import tensorflow as tf

    layers = [layer for layer in keras_model.layers if not isinstance(layer, tf.keras.layers.InputLayer)]
    probe = tf.keras.Model(keras_model.inputs, [layer.output for layer in layers])
    outs = probe.predict(x, batch_size=32, verbose=0)
    outs = outs if isinstance(outs, list) else [outs]
    return {layer.name: out for layer, out in zip(layers, outs)}


def _accumulator_values(layer, keras_out, keras_model):
    """The values a layer's accumulator holds, as far as Keras can tell us, or None."""
    cls = layer.class_name
    if cls in ACCUM_FROM_OUTPUT:
        bias = keras_model.get_layer(layer.name).get_weights()
        return keras_out - (bias[1] if len(bias) > 1 else 0.0)  # the sum before the bias is added
    if cls in ACCUM_POOLING and str(layer.get_attr("pool_op", "Average")) == "Average":
        shape = layer.get_input_variable().shape
        n = int(np.prod(shape[:-1])) if cls.startswith("Global") else \
            int(layer.get_attr("pool_height", 1)) * int(layer.get_attr("pool_width", 1))
        return keras_out * n  # hls4ml sums the window, then divides
    return None


def _finding(layer_name, kind, values, t: FixedType) -> Finding:
    values = np.asarray(values, dtype=np.float64)
    lo, hi = float(values.min()), float(values.max())
    nonzero = np.abs(values[values != 0])
    share = float(np.mean(nonzero < t.resolution)) if nonzero.size else 0.0
    return Finding(layer_name, kind, lo, hi, _type_text(t), t.min_value, t.max_value, t.resolution,
                   overflow=hi > t.max_value or lo < t.min_value, underflow_share=share, fixed=t)


def range_findings(hls_model, keras_model, keras_outs) -> list:
    """Findings for every layer that has a Keras counterpart (hls4ml's own inserted layers have none)."""
    findings = []
    for layer in hls_model.get_layers():
        out = keras_outs.get(layer.name)
        if out is None:
            continue
        result = _finding(layer.name, "result", out, fixed_type(layer.get_output_variable().type.precision))
        if layer.class_name == "Softmax":
            result.underflow_share = 0.0  # tiny probabilities rounding to 0 do not change the label
        findings.append(result)
        accum_t = layer.types.get("accum_t")
        if accum_t is not None:
            acc = _accumulator_values(layer, out, keras_model)
            if acc is not None:
                findings.append(_finding(layer.name, "accum", acc, fixed_type(accum_t.precision)))
    return findings


def quick_check(cfg, keras_model, x) -> list:
    """Overflowing layers from Keras ranges alone (no g++): what `csim` names when agreement is low."""
    with tempfile.TemporaryDirectory() as tmp:
        hls_model, _ = convert_model(keras_model, cfg, Path(tmp) / "prj")
    return [f for f in range_findings(hls_model, keras_model, keras_layer_outputs(keras_model, x)) if f.overflow]


def describe(f: Finding) -> str:
    what = "accumulator" if f.kind == "accum" else "output"
    return (f"{f.layer} {what}: Keras reaches [{f.keras_min:.3g}, {f.keras_max:.3g}] but {f.type_name} holds "
            f"[{f.type_min:.3g}, {f.type_max:.4g}]")


def _traced(cfg, keras_model, x, workdir: Path) -> dict:
    """hls4ml's bit-accurate per-layer trace (compiles a traced copy of the project with g++)."""
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


def profile(cfg, samples=None, max_samples=50, png=None) -> dict:
    samples = resolve_samples(cfg, samples)
    out = cfg.output_dir
    out.mkdir(parents=True, exist_ok=True)
    stage = outdir.Stage(out, "profile", {"design": outdir.digest(outdir.design_inputs(cfg)),
                                          "samples": sha256(samples, cache=True), "max_samples": max_samples})
    with outdir.locked(out), stage.running():
        result, picture = _profile(cfg, samples, max_samples, png)
        made = ["profile.json"] + ([picture.relative_to(out).as_posix()] if picture.parent == out else [])
        stage.done(made, result={"samples": result["samples"]})
    return result


def _profile(cfg, samples, max_samples, png) -> tuple:
    keras_model = load_keras_model(cfg.keras_model)
    x, _ = load_samples(samples, tuple(keras_model.inputs[0].shape), max_samples)
    console.step(f"Profiling {cfg.keras_model.name} on {len(x)} samples")
    keras_outs = keras_layer_outputs(keras_model, x)
    with tempfile.TemporaryDirectory() as tmp:
        hls_model, trace = _traced(cfg, keras_model, x, Path(tmp) / "traced")
    findings = range_findings(hls_model, keras_model, keras_outs)
    for f in findings:
        if f.kind == "result" and f.layer in trace:
            diff = np.abs(np.asarray(trace[f.layer]).reshape(len(x), -1) - keras_outs[f.layer].reshape(len(x), -1))
            f.trace_max_err, f.trace_mean_err = float(diff.max()), float(diff.mean())
    print_profile(findings)
    result = {"samples": len(x), "findings": [asdict(f) | {"verdict": f.verdict} for f in findings]}
    out = cfg.output_dir
    write_json(out / "profile.json", result)
    picture = Path(png).absolute() if png else out / "precision_profile.png"
    draw_profile(findings, picture, cfg.keras_model.name)
    console.say(f"Profile written to {out / 'profile.json'} and {picture}")
    return result, picture


def print_profile(findings) -> None:
    rows = []
    for f in findings:
        err = "" if f.trace_mean_err is None else f"{f.trace_mean_err:.3g} / {f.trace_max_err:.3g}"
        rows.append((f.layer, f.kind, f"[{f.keras_min:.3g}, {f.keras_max:.3g}]", f.type_name,
                     f"[{f.type_min:.3g}, {f.type_max:.4g}]", f"{f.resolution:.2g}", f"{f.underflow_share:.0%}",
                     err, f.verdict))
    console.say(console.table(["layer", "value", "Keras range", "type", "type range", "resolution",
                               "below res.", "trace err mean/max", "verdict"], rows))
    bad = [f for f in findings if f.overflow]
    if bad:
        console.say("Layers at fault: " + "; ".join(describe(f) for f in bad) + ".")
    else:
        console.say("No layer's Keras range exceeds its fixed-point type.")


def draw_profile(findings, path: Path, title: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels = [f"{f.layer} ({f.kind})" for f in findings]
    fig = Figure(figsize=(9, max(3, 0.28 * len(findings) + 1)))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(111)
    ys = np.arange(len(findings))
    ax.barh(ys, [f.type_max - f.type_min for f in findings], left=[f.type_min for f in findings],
            color="#cfe3f7", label="fixed-point type range")
    for y, f in zip(ys, findings):
        ax.plot([f.keras_min, f.keras_max], [y, y], color="#d62728" if f.overflow else "#1f77b4", lw=3)
    ax.set_yticks(ys, labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlabel("value (Keras range as a line, red where it overflows the type)")
    ax.set_title(f"Precision profile: {title}")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=110)
    write_atomically(path, png.getvalue())


def advise(findings) -> dict:
    """{layer: {kind: new precision}} widening each overflowing type, fractional bits kept."""
    changes = {}
    for f in findings:
        if not f.overflow:
            continue
        frac = f.fixed.width - f.fixed.integer
        peak = max(abs(f.keras_min), abs(f.keras_max)) * HEADROOM
        needed = max(f.fixed.integer, math.ceil(math.log2(peak)) + int(f.fixed.signed))
        wider = FixedType(f.fixed.signed, needed + frac, needed)
        changes.setdefault(f.layer, {})[f.kind] = _type_text(wider)
    return changes


def _tuned_yaml(cfg, changes: dict, target: Path) -> str:
    import yaml

    raw = yaml.safe_load(Path(cfg.source).read_text())
    layers = raw.setdefault("HLSConfig", {}).setdefault("LayerName", {})
    for layer, kinds in changes.items():
        prec = layers.setdefault(layer, {}).setdefault("Precision", {})
        if not isinstance(prec, dict):
            prec = layers[layer]["Precision"] = {"result": prec}
        prec.update(kinds)
    if target.resolve().parent != Path(cfg.source).resolve().parent:  # relative paths would break
        raw["KerasModel"], raw["OutputDir"] = str(cfg.keras_model), str(cfg.output_dir)
        if cfg.flow["emulation"].get("samples"):
            raw.setdefault("Flow", {}).setdefault("emulation", {})["samples"] = cfg.flow["emulation"]["samples"]
    lines = [f"# Tuned by `hlsflow tune-precision` from {Path(cfg.source).name}; changed precisions:"]
    lines += [f"#   {layer} {kind}: {value}" for layer, kinds in changes.items() for kind, value in kinds.items()]
    return "\n".join(lines) + "\n" + yaml.safe_dump(raw, sort_keys=False, default_flow_style=None, width=120)


def tune(cfg, samples=None, max_samples=None, write=None) -> dict:
    """Profile, widen what overflows, emulate before and after, write the improved config."""
    from . import convert as convert_stage
    from . import emulate
    from .config import load_config

    keras_model = load_keras_model(cfg.keras_model)
    samples = resolve_samples(cfg, samples)
    x, _ = load_samples(samples, tuple(keras_model.inputs[0].shape), 100)
    findings = quick_check(cfg, keras_model, x)
    changes = advise(findings)
    if cfg.source is None:
        raise FlowError("tune-precision improves a config file, and none is in use: write one with `hlsflow init "
                        "--model MODEL`, then run `hlsflow tune-precision --config FILE`.")
    target = Path(write) if write else Path(cfg.source).with_name(Path(cfg.source).stem + ".tuned.yml")
    if not changes:
        console.say("Every Keras range fits its fixed-point type: nothing to change.")
    else:
        console.step("Advice (each overflowing type widened, fractional bits kept, 25% headroom):")
        for f in findings:
            console.say(f"  {describe(f)} -> {changes[f.layer][f.kind]}")
    write_atomically(target, _tuned_yaml(cfg, changes, target))

    results = {}
    for label, path in (("before", cfg.source), ("after", target)):
        trial = load_config(path, model=cfg.keras_model, part=cfg.part, io_type=cfg.io_type, clock=cfg.clock_period,
                            out=cfg.output_dir.with_name(f"{cfg.output_dir.name}-tune-{label}"))
        console.step(f"Emulating the {label} configuration")
        convert_stage.convert(trial)
        results[label] = emulate.csim(trial, samples=samples, max_samples=max_samples, quiet_advice=True)
    before, after = results["before"]["top1_agreement"], results["after"]["top1_agreement"]
    console.say(f"Top-1 agreement with Keras: {before:.1%} before, {after:.1%} after "
                f"({results['after']['samples']} samples, measured by emulation).")
    console.say(f"Improved config written to {target}: adopt it with --config {target} or copy its changes.")
    return {"changes": changes, "before": before, "after": after, "config": str(target)}
