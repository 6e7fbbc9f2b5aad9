"""tune-precision's candidate steps, each measured by the Tuner (search/trial.py): integer bits where
values overflow, fractional and integer bits on the flagged and on every data-path type, types from
the samples' ranges, table sizes, and dropping what a later step made unnecessary."""

from ..config import parse_precision
from ..fixedtype import FixedType
from ..emulator import cause as causes, propose, ranges
from ..emulator.ranges import Finding, type_text
from .trial import Trial, _bits, _cost

FRACTION_STEPS = (1, 2, 4, 8)  # fractional bits tried, doubling, before bisecting between the last two
INTEGER_STEPS = (1, 2, 4)


def _widened(f: Finding, integer: int = None, extra_frac: int = 0) -> FixedType:
    integer = f.fixed.integer if integer is None else integer
    frac = f.fixed.width - f.fixed.integer + extra_frac
    return FixedType(signed=f.fixed.signed, width=integer + frac, integer=integer)


def _needed_integer(f: Finding) -> int:
    return max(f.fixed.integer, propose.integer_for_data(f.keras_min, f.keras_max, f.fixed.signed))


def advise(findings) -> dict:
    """{layer: {kind: new precision}} widening each overflowing data-path type, fractional bits kept."""
    changes = {}
    for f in findings:
        if f.overflow and f.tunable:
            changes.setdefault(f.layer, {})[f.kind] = type_text(_widened(f, _needed_integer(f)), f.modes)
    return changes


def _overflow_fix(cfg, keras_model, x, findings) -> tuple:
    """Integer bits for every overflowing type, found again on the changed graph until none is left:
    a widened type can make hls4ml keep a layer it removed before (a linear activation whose type
    now differs from its input's), and that layer may overflow in turn. Returns the changes and
    every type seen, at its original width (for counting bits)."""
    seen = {(f.layer, f.kind): f for f in findings}
    changes = advise(findings)
    for _ in range(5):
        again = [f for f in ranges.findings_for(propose.with_changes(cfg, changes, cfg.output_dir), keras_model, x) if f.tunable]
        for f in again:
            seen.setdefault((f.layer, f.kind), f)
        more = {layer: kinds for layer, kinds in advise(again).items()
                if any(kinds.get(k) != changes.get(layer, {}).get(k) for k in kinds)}
        if not more:
            break
        changes = causes.merge(changes, more)
    return changes, list(seen.values())


def _count(changes: dict) -> int:
    """Types changed (a softmax's table size is no type)."""
    return sum(len(kinds) - (propose.TABLE_SIZE in kinds) for kinds in changes.values())


def _fraction_search(tuner, findings, overflow, accumulators=False):
    """On top of the overflow fix, in this order, until the gate is met:
    - fractional bits on the accumulators, first when the diagnosis named them (`accumulators`);
    - fractional bits on the types flagged as losing resolution;
    - integer bits on every data-path type: overflow Keras cannot show (a product or partial sum
      larger than the final one, softmax's x_max - x, which hls4ml types from its input);
    - fractional bits on every data-path type (rounding that adds up over long sums).
    Fractional bits: the most first (is this set worth searching?), then doubling from one bit,
    then bisecting between the last failing and the first passing count. Integer bits: doubling
    from one (many integer bits coarsen softmax's table index), then bisecting."""
    lossy = [f for f in findings if f.loses_resolution]
    every = [f for f in findings if f.kind in ("result", "accum", "exp_table", "inv_table", "scale", "bias")
             and f.layer_class != "Softmax"]  # softmax's own types have saturating modes and tables
    plans = [("frac", "flagged", lossy, True)] if lossy else []
    sums = [f for f in every if f.kind == "accum"]
    if accumulators and sums:  # the diagnosis named them: each product truncated before adding
        plans.insert(0, ("frac", "accumulator", sums, True))
    plans += [("int", "every data-path", every, False), ("frac", "every data-path", every, True)]
    integers = {(layer, kind): parse_precision(text).integer for layer, kinds in overflow.items()
                for kind, text in kinds.items() if kind != propose.TABLE_SIZE}
    for bits, name, types, top_first in plans:
        def run(k, bits=bits, name=name, types=types):
            extra = {}
            for f in types:
                integer = integers.get((f.layer, f.kind), f.fixed.integer)
                t = _widened(f, integer, k) if bits == "frac" else _widened(f, integer + k)
                extra.setdefault(f.layer, {})[f.kind] = type_text(t, f.modes)
            changes = causes.merge(overflow, extra)
            word = "fractional" if bits == "frac" else "integer"
            return tuner.measure(Trial(f"{bits}+{k}-{name.split()[0]}", f"+{k} {word} bits on {len(types)} {name} "
                                       "types" + (" with the overflow fix" if overflow else ""), changes,
                                       _bits(findings, changes)), findings)

        passed = _fewest(run, FRACTION_STEPS if bits == "frac" else INTEGER_STEPS, top_first)
        if passed is not None:
            return passed
    return None


def _fewest(run, steps, top_first: bool):
    """The passing trial of the fewest bits `run(k)` finds: with `top_first` the most first (is this
    set worth searching?), then doubling through `steps`, then bisecting between the last failing
    and the first passing count. None when none passes."""
    passed, failed = None, 0
    if top_first:
        trial = run(steps[-1])
        if not trial.gate:
            return None
        passed = (steps[-1], trial)
    for k in steps[:-1] if top_first else steps:
        trial = run(k)
        if trial.gate:
            passed = (k, trial)
            break
        failed = k
    if passed is None:
        return None
    while passed[0] - failed > 1:
        k = (failed + passed[0]) // 2
        trial = run(k)
        if trial.gate:
            passed = (k, trial)
        else:
            failed = k
    return passed[1]


def _wider_search(tuner, keras_model, x, findings, overflow):
    """When the steps above fall short, every type, in this order, until the gate is met:
    - types from the samples' ranges (emulator/propose.py) on top of the overflow fix: weights and
      biases fitted to their own values (csim blames their rounding when no single data-path type
      is at fault), every accumulator and data-path type to its range, types the config pins apart
      from its default (a quantizer's) kept where their values fit;
    - fractional bits on every type on top of that, weights, biases and accumulators included:
      rounding that adds up over long sums;
    - integer bits on the data-path types whose values grow past the default: partial sums and
      values the samples do not reach.
    A softmax's input widened here gets its table (Tuner.measure), so no step falls into its trap."""
    proposal = propose.propose(tuner.cfg, keras_model, x)
    seen = {}
    for f in [*findings, *proposal.findings]:
        seen.setdefault((f.layer, f.kind), f)  # each type at its width before any change, for counting bits
    counted = list(seen.values())
    base = causes.merge(overflow, proposal.as_changes())
    if proposal.changes:  # else the ranges ask for nothing the overflow fix did not
        step = tuner.measure(Trial("ranges", f"types from the samples' ranges: weights and biases to their values, "
                                   f"accumulators and data path to theirs ({len(proposal.changes)} changes)", base,
                                   _bits(counted, base)), counted)
        if step.gate:
            return step

    def current(f) -> FixedType:
        text = base.get(f.layer, {}).get(f.kind)
        return parse_precision(text) if text else f.fixed

    every = [f for f in counted if f.layer_class != "Softmax" and f.kind not in propose.LEFT_ALONE
             and f.fixed is not None and base.get(f.layer, {}).get(f.kind, "") != "auto"]
    grown = [f for f in every if f.kind in propose.DATA_PATH and current(f).integer > f.fixed.integer]
    plans = [("frac", "all", every, True, "fractional bits on every type (weights, biases, accumulators too)")]
    if grown:
        plans.append(("int", "grown", grown, False, "integer bits on the data-path types whose values grow"))
    for bits, name, types, top_first, words in plans:
        def run(k, bits=bits, name=name, types=types, words=words):
            extra = {}
            for f in types:
                t = current(f)
                wider = FixedType(t.width + k, t.integer + (k if bits == "int" else 0), t.signed)
                extra.setdefault(f.layer, {})[f.kind] = type_text(wider, f.modes)
            changes = causes.merge(base, extra)
            return tuner.measure(Trial(f"{bits}+{k}-{name}", f"+{k} {words} ({len(types)} types) on the "
                                       "samples' ranges", changes, _bits(counted, changes)), counted)

        passed = _fewest(run, FRACTION_STEPS if bits == "frac" else INTEGER_STEPS, top_first)
        if passed is not None:
            return passed
    return None


TABLE_STEPS = (1, 2, 4, 6)  # a table's entries doubled this many times (x2 .. x64), the fewest that pass
PRUNE_MAX = 12  # layers whose changes the end of the search tries to drop, the most bits first


def _table_search(tuner, findings, base):
    """The fewest table entries (TableSize x2 .. x64), then the fewest fractional bits on the table
    types at x64, that meet the gate on top of `base`; None when none does."""
    settings = tuner.settings
    names = ", ".join(s.layer for s in settings)

    def sized(k):
        changes = causes.merge(base, causes.wide_tables(settings, base, growth=2**k, frac=0))
        return tuner.measure(Trial(f"table-x{2**k}", f"TableSize x{2**k} on {names}", changes,
                                   _bits(findings, changes)), findings)

    passed = _fewest(sized, TABLE_STEPS, top_first=True)
    if passed is not None:
        return passed

    def finer(k):
        changes = causes.merge(base, causes.wide_tables(settings, base, growth=2 ** TABLE_STEPS[-1], frac=k))
        return tuner.measure(Trial(f"table-x{2 ** TABLE_STEPS[-1]}+{k}", f"TableSize x{2 ** TABLE_STEPS[-1]} and +{k} "
                                   f"fractional bits on the table types of {names}", changes,
                                   _bits(findings, changes)), findings)

    return _fewest(finer, FRACTION_STEPS, top_first=True)


def _prune(tuner, chosen, findings):
    """The chosen step without each layer's changes that a later step made unnecessary: each layer's
    changes (the most bits first) dropped in turn, the drop kept where the gate still holds."""
    if len(chosen.changes) < 2:
        return chosen  # without its one layer's changes it is your configuration, which failed
    order = sorted(chosen.changes, key=lambda layer: -_bits(findings, {layer: chosen.changes[layer]}))
    # Each label names the step and the one layer dropped, not every drop kept before it: a folder's
    # name of them all grew past the file system's 255 bytes on the published Conv1D example.
    root = chosen.label
    for layer in order[:PRUNE_MAX]:
        if layer not in chosen.changes or len(chosen.changes) < 2:
            continue
        changes = {name: kinds for name, kinds in chosen.changes.items() if name != layer}
        trial = tuner.measure(Trial(f"{root}-without-{layer}", f"the step so far without its changes to {layer}", changes,
                                    _bits(findings, changes)), findings)
        if trial.gate and _cost(trial) <= _cost(chosen):
            chosen = trial
    return chosen
