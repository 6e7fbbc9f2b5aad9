"""What limits agreement, found before anything is bought (csim's fault analysis, tune-precision).

Diagnostic designs, each run on the fast engine in a temporary folder, are never written as advice:
- "widest": every type given WIDE_FRAC more fractional bits and the integer bits its Keras values
  need (WIDE_INT more for the data path: partial sums Keras does not show), and every table widened
  (a softmax's TableSize times TABLE_GROWTH, its exp and 1/sum tables, their input and sum types
  WIDE_FRAC more fractional bits; a sigmoid's or tanh's alike): what these knobs can reach at most;
- "wide types": the same types with each table as the user's design steps it (a softmax's table
  grows only to keep its step on the wider input: its index is the top bits of that input's type);
- "wide data path": wide types with the weights and biases as configured;
- "tables": the user's types with every table widened.
Which of them meets the gate says what limits the design: a data-path type (the accumulators,
when "wide accumulators" alone meets it or comes within noise of "wide data path": hls4ml truncates
each product before adding), a weight or bias
type, a table. When even the widest does not, the samples it still flips are shown with Keras's own
margins (top-1 minus top-2 probability): near ties when most are below MARGIN, else the first
layer whose bit-accurate trace departs from Keras (one hls4ml inserted, or one it computes otherwise).
"""

import contextlib
import io
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .. import stats
from ..fixedtype import FixedType
from . import propose, ranges

WIDE_FRAC = 12  # fractional bits a diagnostic design adds to every type
WIDE_INT = 2  # and integer bits to the data path, above what Keras's values need
TABLE_GROWTH = 64  # a diagnostic table has this many times the entries
MAX_ACTIVATION_TABLE = 2**16
MAX_SOFTMAX_TABLE = 2**18  # hls4ml's own cap with its 18-bit 1/sum table; the fast engine fills each entry
MARGIN = 2.0**-10  # a Keras margin below one step of hls4ml's default ap_fixed<16,6> is a near tie
DEPART = 0.05  # a layer departs from Keras where its largest error passes this share of its range
CONSTANTS = ("weight", "bias", "depthwise", "pointwise", "scale")  # a layer's trained values


@dataclass
class Cause:
    kind: str  # "accumulators", "data path", "weights", "table", "types and table", "near ties", "layer", "none"
    text: str  # one sentence with the figures
    figures: dict = field(default_factory=dict)  # {design: [agreeing, samples]}
    tables: list = field(default_factory=list)  # the table layers, when a table is the cause
    layer: str = None  # the layer that departs, when kind is "layer"
    reachable: bool = True  # whether the widest design meets the gate
    margins: dict = field(default_factory=dict)  # Keras's margins of the samples the widest still flips

    def as_dict(self) -> dict:
        return asdict(self)


def margins(y_keras: np.ndarray, metric: str) -> np.ndarray:
    """Keras's own margin of each sample: top-1 minus top-2 probability (a softmax of logits that
    are not probabilities already), or the distance to the threshold of a thresholded output."""
    y = np.asarray(y_keras, dtype=np.float64).reshape(len(y_keras), -1)
    if metric.startswith("threshold"):
        return np.abs(y - float(metric.split("_")[1])).min(axis=1)
    if y.shape[1] < 2:
        return np.full(len(y), np.inf)
    probability = np.all(y >= 0) and np.allclose(y.sum(axis=1), 1.0, atol=1e-3)
    if not probability:
        e = np.exp(y - y.max(axis=1, keepdims=True))
        y = e / e.sum(axis=1, keepdims=True)
    top = np.sort(y, axis=1)
    return top[:, -1] - top[:, -2]


def agreeing(metric: str, y_hls, y_keras) -> np.ndarray:
    """Per sample: whether the design's label is Keras's (csim's metric)."""
    if metric.startswith("threshold"):
        level = float(metric.split("_")[1])
        return np.all((y_hls > level) == (y_keras > level), axis=1)
    return y_hls.argmax(1) == y_keras.argmax(1)


def _integer(f, wide: bool) -> int:
    if f.kind in CONSTANTS or (f.layer_class == "BatchNormalization" and f.kind in ranges.BN_TUNABLE):
        return max(f.fixed.integer, propose.integer_for_constants(f.keras_min, f.keras_max, f.fixed.signed))
    need = propose.integer_for_data(f.keras_min, f.keras_max, f.fixed.signed)
    return max(f.fixed.integer, need + (WIDE_INT if wide else 0))


def wide_types(findings, weights: bool = True) -> dict:
    """{layer: {kind: precision}}: every type but the tables WIDE_FRAC fractional bits wider, with
    the integer bits its values need (weights and biases left as they are without `weights`)."""
    changes = {}
    for f in findings:
        if f.fixed is None or f.kind in propose.LEFT_ALONE or (f.layer_class == "Softmax" and f.kind != "result"):
            continue  # the tables and the softmax's own types are wide_tables'
        constant = f.kind in CONSTANTS or (f.layer_class == "BatchNormalization" and f.kind in ranges.BN_TUNABLE)
        if constant and not weights:
            continue
        integer = _integer(f, wide=True)
        t = FixedType(integer + f.fixed.frac + WIDE_FRAC, integer, f.fixed.signed)
        changes.setdefault(f.layer, {})[f.kind] = ranges.type_text(t, f.modes)
    return changes


def wide_design(cfg, keras_model, x, findings, weights: bool = True) -> dict:
    """wide_types, found again on the changed graph: a wider type can make hls4ml keep a layer it
    removed before (a linear activation whose type now differs from its input's), at its old type."""
    changes = wide_types(findings, weights)
    for _ in range(propose.ROUNDS):
        again, _ = propose.look(propose.with_changes(cfg, changes), keras_model, x)
        more = {layer: kinds for layer, kinds in wide_types([f for f in again if f.layer not in changes],
                                                            weights).items()}
        if not more:
            break
        changes = merge(changes, more)
    return changes


def _input_type(setting, changes) -> FixedType:
    from ..config import parse_precision

    text = changes.get(setting.input_layer, {}).get("result") if setting.input_layer else None
    return parse_precision(text) if text else setting.input_type


def kept_steps(settings, changes) -> dict:
    """{softmax: {TableSize: n}} that keeps each softmax's exp-table step as the user's design has
    it once `changes` widen its input's integer bits (else the wider input alone coarsens it)."""
    kept = {}
    for s in settings:
        if s.activation != "softmax" or s.input_type is None:
            continue
        t = _input_type(s, changes)
        grown = t.integer - s.input_type.integer
        if grown > 0:
            kept[s.layer] = {propose.TABLE_SIZE: _capped(s.table_size * 2**grown, t)}
    return kept


def _capped(size: int, input_t: FixedType) -> int:
    """hls4ml's own cap (fix_softmax_table_size: 2^(input width)), and the index taken from a type
    of one bit less (inp_norm_t drops the sign)."""
    return int(min(size, 2 ** (input_t.width - int(input_t.signed)), MAX_SOFTMAX_TABLE))


def wide_tables(settings, changes, growth: int = TABLE_GROWTH, frac: int = WIDE_FRAC) -> dict:
    """{layer: {...}}: every table `growth` times the entries (on top of kept_steps) and its types
    `frac` fractional bits wider, on the design `changes` describe."""
    kept = kept_steps(settings, changes)
    out = {}
    for s in settings:
        size = kept.get(s.layer, {}).get(propose.TABLE_SIZE, s.table_size) * growth
        if s.activation == "softmax":
            t = _input_type(s, changes)
            size = _capped(size, t) if t is not None else size
        else:
            size = min(size, MAX_ACTIVATION_TABLE)
        entry = {propose.TABLE_SIZE: int(size)}
        for key, (t, modes) in s.types.items():
            if frac:
                entry[key] = ranges.type_text(FixedType(t.width + frac, t.integer, t.signed), modes)
        out[s.layer] = entry
    return out


def merge(*change_sets) -> dict:
    """Per-layer changes, later sets winning key by key."""
    merged = {}
    for changes in change_sets:
        for layer, kinds in changes.items():
            merged.setdefault(layer, {}).update(kinds)
    return merged


def run_design(cfg, keras_model, x, trace=False):
    """(ModelGraph, outputs[, trace]) of the design `cfg` describes, on the fast engine, in a
    temporary folder. Unsupported when a layer has no fast implementation."""
    from ..design import convert_model
    from . import fastemu

    with tempfile.TemporaryDirectory() as tmp:
        prj = Path(tmp) / "prj"
        hls_model, _ = convert_model(keras_model, cfg, prj)
        with contextlib.redirect_stdout(io.StringIO()):
            hls_model.write()
        engine = fastemu.build(hls_model, prj)
        if trace:
            y, traced = engine.run(x, trace=True)
            return hls_model, y, traced
        return hls_model, engine.run(x)


def _departing_layer(hls_model, keras_model, x, traced) -> tuple:
    """(layer, its largest error as a share of its Keras range, whether hls4ml inserted it), the
    first in the graph whose bit-accurate values depart from Keras's by more than DEPART."""
    values = {}
    findings = ranges.range_findings(hls_model, keras_model, ranges.keras_layer_outputs(keras_model, x), x, values)
    inserted = {f.layer for f in findings if f.keras_layer and "inserted by hls4ml" in f.keras_layer}
    keras_names = {f.layer: f.keras_layer for f in findings}
    for layer in hls_model.get_layers():
        name = layer.name
        if name not in traced or name not in values or layer.class_name == "Input":
            continue
        ours = np.asarray(traced[name], np.float64).reshape(len(x), -1)
        theirs = np.asarray(values[name], np.float64).reshape(len(x), -1)
        if ours.shape != theirs.shape:
            continue
        span = float(np.abs(theirs).max()) or 1.0
        err = float(np.abs(ours - theirs).max()) / span
        if err > DEPART:
            return name, err, name in inserted or not keras_names.get(name)
    return None, 0.0, False


def diagnose(cfg, keras_model, x, y_keras, metric: str, gate: float, say=None) -> Cause:
    """What limits the agreement of the design `cfg` on x (see the module's doc). `say` prints
    each design's figure as it is measured."""
    n = len(x)
    y_keras = np.asarray(y_keras).reshape(n, -1)
    findings, _ = propose.look(cfg, keras_model, x[:min(n, 100)])
    from ..design import in_memory

    with in_memory(keras_model, cfg) as hls_model:
        settings = ranges.table_settings(hls_model)
    figures, flipped = {}, {}

    def measure(name, changes, words, trace=False):
        design = propose.with_changes(cfg, changes)
        got = run_design(design, keras_model, x, trace=trace)
        ok = agreeing(metric, got[1], y_keras)
        figures[name] = [int(ok.sum()), n]
        flipped[name] = ~ok
        if say:
            say(f"  diagnostic design [{name}] {words}: agreement {stats.figure(int(ok.sum()), n, gate)}")
        return stats.meets(int(ok.sum()), n, gate), got

    def share(name):
        return stats.figure(*figures[name], gate)

    mine, _ = measure("yours", {}, "your configuration")
    xs = x[:min(n, 100)]
    types = wide_design(cfg, keras_model, xs, findings)
    typed = merge(types, kept_steps(settings, types))
    widest_changes = merge(types, wide_tables(settings, types)) if settings else typed
    widest_words = (f"every type +{WIDE_FRAC} fractional bits and the integer bits its values need, every table "
                    f"x{TABLE_GROWTH} entries and +{WIDE_FRAC} fractional bits") if settings else \
        f"every type +{WIDE_FRAC} fractional bits and the integer bits its values need"
    widest, got = measure("widest", widest_changes, widest_words, trace=True)
    m = margins(y_keras, metric)
    table_names = [s.layer for s in settings]
    if not widest:
        hls_model, _, traced = got
        lost = flipped["widest"]
        tiny = int(np.sum(m[lost] < MARGIN))
        median = float(np.median(m[lost])) if lost.any() else 0.0
        margin_info = {"flipped": int(lost.sum()), "below": tiny, "threshold": MARGIN, "median": median,
                       "all_median": float(np.median(m))}
        if lost.any() and tiny * 2 >= int(lost.sum()):
            return Cause("near ties", f"truly near-tied samples: even the widest design ({widest_words}) agrees on "
                         f"{share('widest')}, and {tiny} of the {int(lost.sum())} samples it flips have a Keras margin "
                         f"(top-1 minus top-2 probability) below {MARGIN:.2g} (their median {median:.2g}; all "
                         f"samples' median {float(np.median(m)):.2g}): no type or table can tell them apart",
                         figures, reachable=False, margins=margin_info)
        layer, err, inserted = _departing_layer(hls_model, keras_model, x, traced)
        if layer:
            who = "a layer hls4ml inserted" if inserted else "a layer hls4ml computes otherwise than Keras"
            return Cause("layer", f"{who}: {layer} departs from Keras by up to {err:.0%} of its range even in the "
                         f"widest design ({widest_words}), which agrees on {share('widest')}; the samples it flips are "
                         f"no near ties (Keras margin median {median:.2g})", figures, layer=layer, reachable=False,
                         margins=margin_info)
        return Cause("none", f"nothing this search can change: the widest design ({widest_words}) agrees on "
                     f"{share('widest')}, no layer departs from Keras by more than {DEPART:.0%} of its range, and the "
                     f"samples it flips have a Keras margin median of {median:.2g}", figures, reachable=False,
                     margins=margin_info)
    if settings:
        wide, _ = measure("wide types", typed, f"every type +{WIDE_FRAC} fractional bits, tables as yours")
    else:  # no table: the widest design is the wide-types one
        wide, figures["wide types"] = True, figures["widest"]
    if wide:
        path = wide_design(cfg, keras_model, xs, findings, weights=False)
        dp, _ = measure("wide data path", merge(path, kept_steps(settings, path)),
                        f"the data path +{WIDE_FRAC} fractional bits, weights and biases as yours")
        if dp:
            sums = {layer: {"accum": kinds["accum"]} for layer, kinds in path.items() if "accum" in kinds}
            terms = {f.layer: f.terms for f in findings if f.kind == "accum" and f.terms}
            if sums and terms:
                alone, _ = measure("wide accumulators", sums, f"only the accumulators +{WIDE_FRAC} fractional bits")
            # named when they alone meet the gate, or come within noise of the whole data path widened
            if sums and terms and (alone or not stats.improves(figures["wide data path"][0],
                                                               figures["wide accumulators"][0], n)):
                most = max(terms, key=terms.get)
                return Cause("accumulators", f"the accumulators' rounding: hls4ml cuts each product to accum_t "
                             f"before adding ({terms[most]} products a sum in {most}), so sums drift low; with only "
                             f"the accumulators wider it agrees on {share('wide accumulators')}, with the whole data "
                             f"path wider on {share('wide data path')} (yours: {share('yours')})", figures)
            return Cause("data path", f"a data-path type: your configuration agrees on {share('yours')}, the same "
                         f"design with the data-path types wider on {share('wide data path')}", figures)
        return Cause("weights", f"a weight or bias type: with the data-path types wider it agrees on "
                     f"{share('wide data path')}, with the weights and biases wider too on {share('wide types')} "
                     f"(yours: {share('yours')})", figures)
    alone, _ = measure("tables", wide_tables(settings, {}), f"your types, every table x{TABLE_GROWTH} entries and "
                       f"+{WIDE_FRAC} fractional bits")
    names = ", ".join(table_names)
    if alone:
        return Cause("table", f"a table: {names} (your types with the tables wider agree on {share('tables')}; "
                     f"every type wider with the tables as yours on {share('wide types')}; yours: {share('yours')})",
                     figures, tables=table_names)
    return Cause("types and table", f"types and a table together: wider types alone agree on {share('wide types')}, "
                 f"wider tables ({names}) alone on {share('tables')}, both on {share('widest')} (yours: "
                 f"{share('yours')})", figures, tables=table_names)
