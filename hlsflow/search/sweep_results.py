"""A sweep's results: its table (sweep.csv, sweep.md), the fastest point that fits, and the
Pareto chart (pareto.png)."""

import csv
import io
import math
from pathlib import Path

from .. import console, stats
from ..files import write_atomically
from .grid import KEYS

COLUMNS = ("point", *KEYS, "status", "synthesis", "reused", "samples", "agreement", "agreement_ci95", "keras_accuracy",
           "keras_accuracy_ci95", "hls_accuracy", "hls_accuracy_ci95", "max_abs_diff", "est_multipliers", "est_bram_18k",
           "fits_estimate", "latency_cycles", "latency_ns", "interval",
           "DSP", "BRAM_18K", "LUT", "FF", "fits", "timing_met", "stand_in", "seconds", "error")


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def write_table(rows: list, sweep_dir: Path) -> None:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([_fmt(row.get(c)) for c in COLUMNS])
    write_atomically(sweep_dir / "sweep.csv", text.getvalue())
    shown = [c for c in COLUMNS if any(row.get(c) not in (None, "") for row in rows)]
    write_atomically(sweep_dir / "sweep.md", console.table(shown, [[_fmt(r.get(c)) for c in shown] for r in rows]) + "\n")


def best_point(rows: list, gate: float):
    """The fastest point that fits (Vivado's figures) with agreement at or above the gate."""
    good = [r for r in rows if r.get("fits") and r.get("agreement") is not None and _meets(r, gate)
            and (r.get("latency_ns") is not None or r.get("latency_cycles") is not None)]
    return min(good, key=lambda r: (r["latency_ns"] if r.get("latency_ns") is not None else math.inf,
                                    r.get("latency_cycles") or 0, r["point"]), default=None)


def _meets(row: dict, gate: float) -> bool:
    """The row's agreement at or above the gate, on the exact count where the row has it."""
    if row.get("samples"):
        return stats.meets(stats.count(row["agreement"], row["samples"]), row["samples"], gate)
    return row["agreement"] >= gate


def _agreement_text(row: dict, gate: float) -> str:
    if not row.get("samples"):
        return stats.percent(row["agreement"], gate)
    k, n = stats.count(row["agreement"], row["samples"]), row["samples"]
    note = stats.gate_note(k, n, gate)
    return stats.figure(k, n, gate) + (f"; {note}" if note else "")


def pareto_front(points: list) -> list:
    """(x, y) pairs no other pair beats in both, sorted by x."""
    front, best_y = [], math.inf
    for x, y in sorted(points):
        if y < best_y:
            front.append((x, y))
            best_y = y
    return front


def render_pareto_png(rows: list, gate: float) -> bytes:
    # Figure + Agg canvas directly, as report.py: no pyplot, no global backend state.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .. import standin

    synthesised = [r for r in rows if r.get("latency_cycles") is not None]
    # A test double's figures are stamped as such, and never called Vivado's.
    double = any(r.get("stand_in") for r in synthesised)
    whose = "test double" if double else "Vivado"
    resource = "DSP" if any(r.get("DSP") for r in synthesised) else "LUT"
    fig = Figure(figsize=(7.5, 5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    points = [r for r in synthesised if r.get(resource) is not None]
    if points:
        xs = [r[resource] for r in points]
        ys = [r["latency_ns"] if r.get("latency_ns") is not None else r["latency_cycles"] for r in points]
        unit = "ns" if all(r.get("latency_ns") is not None for r in points) else "cycles"
        agreement = [r["agreement"] if r.get("agreement") is not None else 0.0 for r in points]
        low = min(min(agreement), gate) if agreement else gate
        # A point the report says does not fit the part keeps its colour, ringed in red.
        edges = ["black" if r.get("fits") else "tab:red" for r in points]
        scatter = ax.scatter(xs, ys, c=agreement, cmap="viridis", vmin=low, vmax=1.0, s=60, edgecolors=edges,
                             linewidths=[1 if r.get("fits") else 2.5 for r in points], zorder=3)
        fig.colorbar(scatter, ax=ax, label="top-1 agreement with Keras")
        if not all(r.get("fits") for r in points):
            ax.scatter([], [], facecolors="none", edgecolors="tab:red", linewidths=2.5, label=f"does not fit ({whose})")
        # Points with the same figures share one dot: one label names them all.
        at = {}
        for x, y, r in zip(xs, ys, points):
            at.setdefault((x, y), []).append(r["point"])
        for (x, y), names in at.items():
            ax.annotate(", ".join(names), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        front = pareto_front(list(zip(xs, ys)))
        ax.plot([p[0] for p in front], [p[1] for p in front], color="tab:gray", linestyle=":", zorder=2,
                label="Pareto front")
        limits = sorted({r["limits"][resource] for r in points if (r.get("limits") or {}).get(resource)})
        for i, limit in enumerate(limits):
            ax.axvline(limit, color="tab:red", linestyle="--", linewidth=1,
                       label=f"part limit ({limit:,} {resource})" if i == 0 or len(limits) > 1 else None)
        ax.set_xlabel(f"{resource} used ({'test double, not Vivado HLS' if double else 'Vivado HLS estimate'})")
        ax.set_ylabel(f"latency, worst case ({unit})")
        ax.legend(loc="best", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no point was synthesised", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    ax.set_title(f"Sweep: latency against {resource} ({len(points)} of {len(rows)} points synthesised)")
    standin.lay_out(fig, double)
    return standin.png(fig, double)


def final_line(rows: list, gate: float) -> str:
    best = best_point(rows, gate)
    if best is None and any(r.get("max_abs_diff") is not None for r in rows):
        return ("No fastest point: this model's output is measured by its error against Keras, not by agreement "
                "of labels, and the sweep picks its best point by agreement; compare max_abs_diff and latency in "
                "the table.")
    if best is None:
        synthesised = sum(1 for r in rows if r.get("latency_cycles") is not None)
        why = "no point was synthesised" if not synthesised else \
            f"none of the {synthesised} synthesised point(s) fits with agreement at or above {gate:.1%}"
        return f"No fastest point: {why}."
    latency = f"{best['latency_ns']:g} ns" if best.get("latency_ns") is not None else f"{best['latency_cycles']} cycles"
    return (f"Fastest point that fits with agreement >= {gate:.1%}: {best['point']} (latency {latency}, "
            f"{best.get('DSP')} DSP, {best.get('LUT')} LUT, agreement {_agreement_text(best, gate)}).")
