"""Types that fit the model's values: `hlsflow init --samples` writes them, and tune-precision
starts its wider search from them.

From the samples' Keras values through hls4ml's graph (ranges.py's findings, no g++):
- the data path (the input, every layer's output and the sums of Dense/Conv/pooling) gets the
  integer bits its values need with headroom, never fewer than the default, its fractional bits
  kept, so a type is as wide as its range asks and no wider;
- an accumulator of many products (a Dense's or Conv's sums) gets fractional bits too: hls4ml
  truncates each product to accum_t before adding, so the sum drifts low by half a step a product
  (accum_bias_bits);
- weights and biases (BatchNormalization's scale and bias too) get the integer bits their own
  values need at the default width, so small weights gain resolution for free;
- a softmax whose input gained integer bits gets a larger table: hls4ml indexes its exp table by
  the top bits of x_max - x in a type of its input's integer bits (inp_norm_t), so every integer
  bit added there doubles the table's step unless the table doubles too; and a softmax whose two
  largest inputs lie closer than its table's step on more than TIED_SHARE of the samples gets the
  table that tells them apart (up to MAX_TABLE_SIZE, else the one for all but TIED_SHARE_AT_MOST;
  closer ties are for tune's diagnosis to show).
Types the config sets apart from the default (a quantizer's, the user's) are kept unless their
values overflow them; the softmax's own types (tables, saturating) are left to hls4ml.
"""

import math
from dataclasses import dataclass, field

import numpy as np

from ..fixedtype import FixedType
from . import ranges

HEADROOM = 1.25  # a data-path type holds 25% above the largest value the samples reach
DATA_PATH = ("result", "accum")
LEFT_ALONE = ("table", "exp_table", "inv_table", "inv_inp")  # tables and softmax types: hls4ml's own
# The softmax's exp table: hls4ml's default (1024 entries on ap_fixed<16,6>) steps by 2^-5; a table
# on a wider input may step by 2^-3 at most (logits closer than that tie), and grows to 2^14 entries
# at most (each 18-bit table is then 16 BRAM_18K).
DEFAULT_TABLE_SIZE = 1024
SOFTMAX_STEP_BITS = 3
MAX_TABLE_SIZE = 2**14
ROUNDS = 5  # a changed type can make hls4ml keep a layer it removed before; found again this often


@dataclass
class Change:
    layer: str
    kind: str  # an hls4ml type without _t, or TABLE_SIZE
    value: object  # the precision text, or the table size
    origin: str  # "samples", "weights" or "softmax"
    why: str


TABLE_SIZE = "TableSize"  # a change to a softmax layer's entry, not to its Precision
# hls4ml 1.3.0 reads a table's type from the layer's own `<kind>_t` key (Layer.__init__ takes any
# key ending in _t); the same kinds under Precision are silently ignored.
LAYER_TYPE_KEYS = ("table", "exp_table", "inv_table", "inv_inp")


@dataclass
class Proposal:
    changes: list = field(default_factory=list)
    findings: list = field(default_factory=list)  # every type seen, at its width before any change

    def as_changes(self) -> dict:
        """{layer: {kind: value}}, as tune-precision's trials hold them."""
        out = {}
        for c in self.changes:
            out.setdefault(c.layer, {})[c.kind] = c.value
        return out


def integer_for_data(lo: float, hi: float, signed: bool) -> int:
    """Integer bits (sign included) that hold [lo, hi] with HEADROOM."""
    peak = max(abs(lo), abs(hi)) * HEADROOM
    return math.ceil(math.log2(peak)) + int(signed) if peak > 0 else 1


def integer_for_constants(lo: float, hi: float, signed: bool) -> int:
    """The fewest integer bits (sign included, at least 1) that hold fixed values in [lo, hi]."""
    peak = max(abs(lo), abs(hi))
    if peak == 0:
        return 1
    # A type of I integer bits reaches just below 2^(I-1) when signed, 2^I when not.
    return max(1, math.floor(math.log2(peak)) + 1 + int(signed))


ACCUM_BIAS_LSBS = 4  # an accumulator's truncation bias is kept within this many steps of the default type


def accum_bias_bits(terms) -> int:
    """Fractional bits an accumulator of `terms` products needs beyond the default's: hls4ml truncates
    each product to accum_t before adding, half a step low on average, so n products drift n/2 steps
    (the published Conv1D example's 1280-product sums lost 80% of its labels that way); with
    log2(n) - 1 - log2(ACCUM_BIAS_LSBS) more bits the drift stays within ACCUM_BIAS_LSBS steps."""
    if not terms or terms < 2:
        return 0
    return max(0, math.ceil(math.log2(terms)) - 1 - int(math.log2(ACCUM_BIAS_LSBS)))


def table_size_for(input_integer: int, input_width: int) -> int:
    """The softmax table size that keeps the exp table's step at 2^-SOFTMAX_STEP_BITS on an input of
    `input_integer` integer bits: its index is the top log2(size) bits of a type of input_integer - 1
    integer bits (hls4ml's inp_norm_t), and hls4ml caps the size at 2^(width - 1)."""
    size = 2 ** max(input_integer - 1 + SOFTMAX_STEP_BITS, 0)
    return min(max(size, DEFAULT_TABLE_SIZE), MAX_TABLE_SIZE, 2 ** (input_width - 1))


def pinned_types(hls_config: dict) -> set:
    """(layer, kind) the config sets apart from its Model default: a quantizer's or the user's type."""
    from ..fixedtype import NotFixedPoint, parse

    def same(a, b):
        try:
            return parse(a) == parse(b)
        except NotFixedPoint:
            return str(a) == str(b)

    model = hls_config.get("Model", {}).get("Precision", {})
    default = model.get("default") if isinstance(model, dict) else model
    pinned = set()
    for name, entry in (hls_config.get("LayerName") or {}).items():
        prec = entry.get("Precision")
        kinds = prec.items() if isinstance(prec, dict) else ([("result", prec)] if prec is not None else [])
        for kind, value in kinds:
            if default is None or not same(value, default):
                pinned.add((name, kind))
    return pinned


def look(cfg, keras_model, x, outs=None) -> tuple:
    """(every type's finding, {softmax: (the layer it reads, its table size, the gaps between its top
    two inputs that TIED_SHARE and TIED_SHARE_AT_MOST of the samples fall below, or None)}) of the design `cfg` describes,
    from one conversion in memory; `outs`: Keras's layer outputs on x, when known."""
    from ..design import in_memory

    outs = ranges.keras_layer_outputs(keras_model, x) if outs is None else outs
    values = {}
    with in_memory(keras_model, cfg) as hls_model:
        findings = ranges.range_findings(hls_model, keras_model, outs, x, values)
        softmax = {}
        for layer in hls_model.get_layers():
            node = layer.get_input_node() if layer.class_name == "Softmax" else None
            if node is not None:
                stable = str(layer.get_attr("implementation", "stable")).lower() == "stable"
                softmax[layer.name] = (node.name, int(layer.get_attr("table_size", DEFAULT_TABLE_SIZE) or
                                                      DEFAULT_TABLE_SIZE),
                                       _top_gap(values.get(node.name), len(x)) if stable else None)
    return findings, softmax


TIED_SHARE = 0.01  # init gives a softmax the table that tells apart the top two inputs of all but this share
# or, when that takes more than MAX_TABLE_SIZE entries, of all but this share (the published Conv1D
# example's random-input samples: 1% apart by less than 2^14 entries can resolve, 5% by 4096)
TIED_SHARE_AT_MOST = 0.05


def _top_gap(z, n: int):
    """The gaps between the two largest inputs of a softmax that TIED_SHARE and TIED_SHARE_AT_MOST
    of the samples fall below."""
    if z is None:
        return None
    z = np.asarray(z, np.float64).reshape(n, -1)
    if z.shape[1] < 2:
        return None
    top = np.sort(z, axis=1)
    return tuple(float(q) for q in np.quantile(top[:, -1] - top[:, -2], (TIED_SHARE, TIED_SHARE_AT_MOST)))


def table_size_for_gap(input_integer: int, gap) -> int:
    """The fewest entries (a power of two) whose exp-table step, on an input of `input_integer`
    integer bits, is no larger than `gap`; None when that is beyond MAX_TABLE_SIZE (ties no table
    size resolves: tune-precision's diagnosis shows them)."""
    if not gap or gap <= 0:
        return None
    size = 2 ** max(0, math.ceil(math.log2(2.0 ** (input_integer - 1) / gap)))
    return size if size <= MAX_TABLE_SIZE else None


def with_changes(cfg, changes: dict, output_dir=None):
    """`cfg` with {layer: {kind: value}} set in its LayerName entries (TableSize beside Precision)."""
    import copy
    import dataclasses

    hls = copy.deepcopy(cfg.hls_config)
    layers = hls.setdefault("LayerName", {})
    for layer, kinds in changes.items():
        entry = layers.setdefault(layer, {})
        for kind, value in kinds.items():
            if kind == TABLE_SIZE:
                entry[TABLE_SIZE] = int(value)
                continue
            if kind in LAYER_TYPE_KEYS:
                entry[f"{kind}_t"] = value
                continue
            prec = entry.get("Precision")
            if not isinstance(prec, dict):
                prec = entry["Precision"] = {} if prec is None else {"result": prec}
            prec[kind] = value
    return dataclasses.replace(cfg, hls_config=hls, output_dir=output_dir or cfg.output_dir)


def _rule(f, default: FixedType, pinned: set, changed: dict):
    """The change one finding asks for, or None."""
    if f.layer_class == "Softmax" or f.kind in LEFT_ALONE or f.fixed is None:
        return None
    set_apart = (f.layer, f.kind) in pinned or (f.fixed != default and f.kind not in changed.get(f.layer, {}))
    if set_apart and not f.overflow:
        # A quantizer's or the user's type (or one hls4ml derived from a quantizer, as on the
        # ApplyAlpha layer it inserts), and the values fit it.
        return None
    signed = f.fixed.signed
    if f.kind in DATA_PATH:
        integer = max(f.fixed.integer, integer_for_data(f.keras_min, f.keras_max, signed))
        frac = max(f.fixed.frac, default.frac + accum_bias_bits(f.terms)) if f.kind == "accum" and \
            not set_apart else f.fixed.frac
        if integer == f.fixed.integer and frac == f.fixed.frac:
            return None
        t = FixedType(integer + frac, integer, signed)
        where = "the samples span" if f.layer_class == "Input" else "Keras reaches"
        why = [f"{where} [{f.keras_min:.3g}, {f.keras_max:.3g}]"] if integer > f.fixed.integer else []
        if frac > f.fixed.frac:
            why.append(f"it sums {f.terms} products, each cut to its last bit, and +{frac - f.fixed.frac} fractional "
                       f"bits keep their bias within {ACCUM_BIAS_LSBS} steps of {default}")
        return Change(f.layer, f.kind, ranges.type_text(t, f.modes), "samples", "; ".join(why))
    # A layer's constants (weights, biases, BatchNormalization's scale and bias): exact, no headroom.
    integer = integer_for_constants(f.keras_min, f.keras_max, signed)
    t = FixedType(max(default.width, integer + default.frac), integer, signed)
    if t.width == f.fixed.width and t.integer == f.fixed.integer:
        return None
    return Change(f.layer, f.kind, ranges.type_text(t, f.modes), "weights",
                  f"they lie in [{f.keras_min:.3g}, {f.keras_max:.3g}]")


def table_changes(softmax: dict, findings, changes: dict) -> dict:
    """{softmax: {TableSize: n}} for each softmax whose input, as `changes` leave it, needs a larger
    table than it has (the softmax trap: see the module's doc)."""
    return {c.layer: {c.kind: c.value} for c in _softmax_changes(softmax, findings, changes)}


def _softmax_changes(softmax: dict, findings, changes: dict) -> list:
    """A larger table for each softmax whose input now has more integer bits than its table allows."""
    from ..config import parse_precision

    types = {(f.layer, f.kind): f.fixed for f in findings}
    out = []
    for name, (source, size, *gap) in softmax.items():
        text = changes.get(source, {}).get("result")
        t = parse_precision(text) if text else types.get((source, "result"))
        if t is None:
            continue
        wanted = table_size_for(t.integer, t.width)
        why = f"keeps its exp table's step at 2^-{SOFTMAX_STEP_BITS} on {source}'s {t}"
        gaps = gap[0] if gap and gap[0] else (None, None)
        share, apart = TIED_SHARE, table_size_for_gap(t.integer, gaps[0])
        if apart is None:  # the closest 1% ask for more than MAX_TABLE_SIZE: the table for all but 5%
            share, apart = TIED_SHARE_AT_MOST, table_size_for_gap(t.integer, gaps[1])
        if apart is not None and apart > wanted and apart <= 2 ** (t.width - 1):
            wanted, why = apart, (f"its step tells apart the two largest values of {source} on all but "
                                  f"{share:.0%} of the samples (gap {gaps[0 if share == TIED_SHARE else 1]:.3g})")
        if wanted > size:
            out.append(Change(name, TABLE_SIZE, wanted, "softmax", why))
    return out


def propose(cfg, keras_model, x, pinned=None) -> Proposal:
    """The types the samples `x` ask for on the design `cfg` describes (see the module's doc)."""
    from ..config import parse_precision

    model = cfg.hls_config.get("Model", {}).get("Precision", {})
    default = parse_precision(model.get("default") if isinstance(model, dict) else model)
    pinned = pinned_types(cfg.hls_config) if pinned is None else pinned
    outs = ranges.keras_layer_outputs(keras_model, x)
    proposal = Proposal()
    changes = {}
    for _ in range(ROUNDS):
        findings, softmax = look(with_changes(cfg, changes), keras_model, x, outs)
        if not proposal.findings:
            proposal.findings = findings
        else:  # types of layers hls4ml keeps only now, at their width before any change
            seen = {(f.layer, f.kind) for f in proposal.findings}
            proposal.findings += [f for f in findings if (f.layer, f.kind) not in seen]
        new = [c for c in (_rule(f, default, pinned, changes) for f in findings) if c is not None
               and changes.get(c.layer, {}).get(c.kind) != c.value]
        for c in new:
            changes.setdefault(c.layer, {})[c.kind] = c.value
        new += [c for c in _softmax_changes(softmax, findings, changes)
                if changes.get(c.layer, {}).get(c.kind) != c.value]
        for c in new:
            changes.setdefault(c.layer, {})[c.kind] = c.value
        by_key = {(c.layer, c.kind): c for c in proposal.changes}
        by_key.update({(c.layer, c.kind): c for c in new})
        proposal.changes = list(by_key.values())
        if not new:
            break
    return proposal


def note(proposal: Proposal, samples_name: str, default: str) -> str:
    """Comment lines saying where each proposed type came from."""
    if not proposal.changes:
        return (f"# Types from the samples' ranges ({samples_name}): every value fits its type (a quantizer's, "
                f"else the default {default}), so none is changed.\n")
    words = {"samples": "from the samples", "weights": "from the weights", "softmax": "for the softmax"}
    lines = [f"# Types from the samples' ranges ({samples_name}, through the Keras model), by `hlsflow init "
             "--samples`:"]
    for c in proposal.changes:
        lines.append(f"#   {c.layer} {c.kind}: {c.value}  {words[c.origin]}: {c.why}")
    lines.append(f"#   every other type: the default {default}")
    return "\n".join(lines) + "\n"


SAMPLES_USED = 300  # samples run through Keras for the ranges (csim's default count)


def for_starter(hls_config: dict, keras_model, model_path, samples_path, io_type: str, part: str, clock) -> tuple:
    """(hls_config with the proposed types, comment lines) for `hlsflow init --samples`."""
    import tempfile
    from pathlib import Path

    from ..config import FlowConfig
    from ..samples import load_samples

    x, _ = load_samples(samples_path, tuple(keras_model.inputs[0].shape), SAMPLES_USED)
    default = hls_config["Model"]["Precision"]["default"]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = FlowConfig(source=None, keras_model=Path(model_path), output_dir=Path(tmp) / "prj",
                         project_name="myproject", part=part, backend="Vivado", io_type=io_type,
                         clock_period=float(clock), hls_config=hls_config)
        proposal = propose(cfg, keras_model, x)
        proposed = with_changes(cfg, proposal.as_changes()).hls_config
    return proposed, note(proposal, f"{Path(samples_path).name}, {len(x)} samples", default)
