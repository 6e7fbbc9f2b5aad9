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
from ..loading import load_keras_model
from ..samples import load_samples

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
    tables = ranges.table_settings(hls_model)
    for t in tables:  # a softmax's top two inputs closer than its table's step share an entry: a tie
        z = values.get(t.input_layer) if t.activation == "softmax" and t.step else None
        if z is not None and np.asarray(z).reshape(len(x), -1).shape[1] > 1:
            top = np.sort(np.asarray(z, np.float64).reshape(len(x), -1), axis=1)
            t.tied_share = float(np.mean(top[:, -1] - top[:, -2] < t.step))
    print_profile(findings, tables)
    result = {"samples": len(x), "findings": [asdict(f) | {"verdict": f.verdict} for f in findings],
              "tables": [{"layer": t.layer, "activation": t.activation, "implementation": t.implementation,
                          "table_size": t.table_size, "input_step": t.step, "tied_share": t.tied_share,
                          "types": {k: ranges.type_text(ft, m) for k, (ft, m) in t.types.items()}} for t in tables]}
    out = cfg.output_dir
    write_json(out / "profile.json", result)
    picture = Path(png).absolute() if png else out / "precision_profile.png"
    draw_profile(findings, picture, cfg.keras_model.name)
    console.say(f"Profile written to {out / 'profile.json'} and {picture}")
    return result, picture


def print_profile(findings, tables=()) -> None:
    rows = []
    for f in findings:
        err = "" if f.trace_mean_err is None else f"{f.trace_mean_err:.3g} / {f.trace_max_err:.3g}"
        rows.append((f.layer, f.keras_layer or "", f.kind, f"[{f.keras_min:.3g}, {f.keras_max:.3g}]", f.type_name,
                     f"[{f.type_min:.3g}, {f.type_max:.4g}]", f"{f.resolution:.2g}", f"{f.underflow_share:.0%}",
                     err, f.verdict))
    console.say(console.table(["layer", "from Keras", "type of", "Keras range", "type", "type range", "resolution",
                               "below res.", "trace err mean/max", "verdict"], rows))
    if tables:
        # The tables are types too: their size sets the step between the inputs they tell apart.
        console.say(console.table(["table layer", "activation", "TableSize", "input step", "top two closer than a step",
                                   "table types"],
                                  [(t.layer, f"{t.activation} ({t.implementation})" if t.implementation else t.activation,
                                    t.table_size, "" if t.step is None else f"{t.step:.3g}",
                                    "" if t.tied_share is None else f"{t.tied_share:.0%} of samples",
                                    ", ".join(f"{k} {ranges.type_text(ft, m)}" for k, (ft, m) in t.types.items()))
                                   for t in tables]))
    tying = [t for t in tables if t.tied_share]
    if tying:
        console.say("Tables that tie labels: " + "; ".join(
            f"{t.layer}'s top two inputs are closer than its table's step {t.step:.3g} on {t.tied_share:.0%} of samples "
            "(a larger TableSize makes the step finer)" for t in tying) + ".")
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
    """The profile as a matplotlib Figure (no pyplot), as hls4ml's numerical() draws it: for each
    type, the distribution of log2 |value| over the samples (box: quartiles, whiskers: 5% and 95%,
    dots: min and max) over the span its type represents, from its resolution to its largest value.
    Red where values overflow the type; tables (exp, 1/sum, activation) are drawn like any type."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels = [f"{f.layer} ({f.kind})" for f in findings]
    fig = Figure(figsize=(9, max(3, 0.28 * len(findings) + 1)))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(111)
    ys = np.arange(len(findings))
    low = [np.log2(f.resolution) for f in findings]
    high = [np.log2(max(abs(f.type_min), abs(f.type_max))) for f in findings]
    ax.barh(ys, np.subtract(high, low), left=low, color="#cfe3f7", height=0.8,
            label="type: resolution to largest |value|")
    def quantiles(f):  # a list, or None (a DataFrame's row may hold NaN there)
        q = f.log2_quantiles
        return list(q) if isinstance(q, (list, tuple, np.ndarray)) and len(q) == len(ranges.QUANTILES) else None

    boxes = []
    for y, f in zip(ys, findings):
        q = quantiles(f)
        if q is None:
            continue
        boxes.append({"whislo": q[0], "q1": q[1], "med": q[2], "q3": q[3], "whishi": q[4], "fliers": [],
                      "label": labels[y]})
        peak = max(abs(f.keras_min), abs(f.keras_max))
        colour = "#d62728" if f.overflow else "#1f77b4"
        ends = [np.log2(peak)] if peak > 0 else []
        ax.plot(ends, [y] * len(ends), "o", color=colour, ms=3)
    positions = [y for y, f in zip(ys, findings) if quantiles(f) is not None]
    if boxes:
        drawn = ax.bxp(boxes, positions=positions, orientation="horizontal", widths=0.5, showfliers=False, manage_ticks=False,
                       patch_artist=True)
        for patch, y in zip(drawn["boxes"], positions):
            patch.set_facecolor("#d62728" if findings[y].overflow else "#1f77b4")
            patch.set_alpha(0.7)
    if findings:  # values far below every type's resolution (a softmax's tiny exps) would squeeze the rest
        ax.set_xlim(left=max(ax.get_xlim()[0], min(low) - 8))
    ax.set_yticks(ys, labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("log2 |value| (box: quartiles, whiskers: 5% to 95%, dot: largest; red where it overflows)")
    ax.set_title(f"Precision profile: {title}")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig
