"""`hlsflow profile`: where the fixed-point design stops computing what Keras does.

For every hls4ml layer: the Keras value range of each of its types (emulator/ranges.py), what
the configured types can hold, whether values overflow or fall below the resolution, and the
per-layer error of the bit-accurate trace against Keras; a table, profile.json and a PNG.
`hlsflow tune-precision` (search/tune.py) widens the types and measures the result.
"""

import io
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .. import console, steps
from ..emulator import ranges
from ..emulator.engines import layer_trace
from ..files import write_atomically, write_json
from ..loading import load_keras_model, load_samples

DEFAULT_SAMPLES = 50  # profiled when --max-samples is not given


def work(cfg, samples, max_samples, png) -> tuple:
    """(the profile, the Outcome the runner records: profile.json and the picture, when it is in the
    output folder). flow.profile claims the folder and records the run."""
    out = cfg.output_dir
    result, picture = _profile(cfg, samples, max_samples, png)
    made = [steps.PROFILE.outputs[0]] + ([picture.relative_to(out).as_posix()] if picture.parent == out else [])
    return result, steps.Outcome(made, result={"samples": result["samples"]})


def _profile(cfg, samples, max_samples, png) -> tuple:
    keras_model = load_keras_model(cfg.keras_model)
    x, _ = load_samples(samples, tuple(keras_model.inputs[0].shape), max_samples)
    console.step(f"Profiling {cfg.keras_model.name} on {len(x)} samples")
    keras_outs = ranges.keras_layer_outputs(keras_model, x)
    with tempfile.TemporaryDirectory() as tmp:
        hls_model, trace = layer_trace(cfg, keras_model, x, Path(tmp) / "prj")
    values = {}
    findings = ranges.range_findings(hls_model, keras_model, keras_outs, x, values)
    for f in findings:
        if f.kind == "result" and f.layer in trace and f.layer in values:
            traced = np.asarray(trace[f.layer]).reshape(len(x), -1)
            keras = np.asarray(values[f.layer]).reshape(len(x), -1)
            if traced.shape == keras.shape:  # hls4ml's padding layers hold more values than Keras's
                diff = np.abs(traced - keras)
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
        rows.append((f.layer, f.keras_layer or "", f.kind, f"[{f.keras_min:.3g}, {f.keras_max:.3g}]", f.type_name,
                     f"[{f.type_min:.3g}, {f.type_max:.4g}]", f"{f.resolution:.2g}", f"{f.underflow_share:.0%}",
                     err, f.verdict))
    console.say(console.table(["layer", "from Keras", "type of", "Keras range", "type", "type range", "resolution",
                               "below res.", "trace err mean/max", "verdict"], rows))
    bad = ranges.at_fault(findings)
    if bad:
        console.say("Layers at fault: " + "; ".join(ranges.describe(f) for f in bad) + ".")
    else:
        console.say("No data-path type overflows or loses resolution on these samples.")
    weights = [f for f in findings if not f.tunable and f.overflow]
    if weights:
        console.say("Weights that do not fit their type: " + "; ".join(ranges.describe(f) for f in weights) + ".")


def draw_profile(findings, path: Path, title: str) -> None:
    png = io.BytesIO()
    profile_figure(findings, title).savefig(png, format="png", dpi=110)
    write_atomically(path, png.getvalue())


def profile_figure(findings, title: str):
    """The profile as a matplotlib Figure (no pyplot): each finding's Keras range over its type's."""
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
    return fig
