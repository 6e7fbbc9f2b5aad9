"""`hlsflow tune-precision`: the fewest added bits that bring the design to the gate.

Starting from the types emulator/ranges.py finds at fault, it widens integer bits where Keras
values overflow (with headroom, fractional bits kept), then searches fractional and integer bits
where that is not enough; when that falls short too, it widens the search to every type (weights,
biases and accumulators fitted to their values by emulator/propose.py, then fractional bits on all
of them, then integer bits where values grow). In every step a softmax whose input gained integer
bits gets the table that keeps its step (propose.table_changes: hls4ml's softmax trap).
Every step is measured as the user would measure it: `flow.csim` on the step's own output folder
under <out>-tune/, so a run again reuses every step still current.
Writes tune.json into the output folder, and the tuned config beside the user's config (or into
the output folder, for a model given alone).
"""

import contextlib
import copy
import dataclasses
import io
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from .. import console, flow, preflight, stats, steps
from ..config import CONFIG_NAME, config_is_for, gate_of, parse_precision
from ..fixedtype import FixedType
from ..design import in_memory
from ..emulator import cause as causes, propose, ranges
from ..emulator.ranges import Finding, fixed_type, type_text
from ..errors import FlowError
from ..files import sha256, write_atomically, write_json
from ..loading import load_keras_model, load_samples, resolve_samples
from ..state import outdir

ACCURACY_TOLERANCE = 0.005  # emulated accuracy may be at most half a point below Keras's
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


@dataclass
class Trial:
    label: str
    what: str
    changes: dict  # {layer: {kind: precision text}} on top of the user's config
    added_bits: int
    agreement: float = None
    keras_accuracy: float = None
    hls_accuracy: float = None
    gate: bool = False
    dsp: int = None
    bram: int = None
    samples: int = None  # the count behind each share, for its 95% interval
    agreeing: int = None
    agreement_ci95: list = None
    hls_correct: int = None
    inside_noise: str = ""  # why a step that met the gate did so by a change no larger than noise: not taken
    table_bram: int = 0  # BRAM_18K the step's larger or wider tables add (estimate: ceil(bits / 18 Kib) per table)

    def figure(self, gate=None) -> str:
        """The agreement with its 95% interval and count: "99.0% [97.1%, 99.7%] (297 of 300)"."""
        return stats.figure(self.agreeing, self.samples, gate)


def _bits(findings, changes: dict) -> int:
    """Bits added over the types changed (new width - old width, summed)."""
    by_key = {(f.layer, f.kind): f for f in findings}
    added = 0
    for layer, kinds in changes.items():
        for kind, text in kinds.items():
            f = by_key.get((layer, kind))
            if f is not None and text != "auto" and kind != propose.TABLE_SIZE:
                added += parse_precision(text).width - f.fixed.width
    return added


def resource_estimate(cfg, keras_model) -> tuple:
    """(DSP, BRAM_18K) estimates: the preflight's multipliers, each taking more than one DSP48 when
    its operands outgrow 25x18 bits, and its weight storage. Estimates only; Vivado gives real ones."""
    dsp = 0
    with in_memory(keras_model, cfg) as hls_model:
        report = preflight.run(hls_model, cfg)
        layers = {layer.name: layer for layer in hls_model.get_layers()}
        for est in report.layers:
            data = fixed_type(layers[est.name].get_input_variable().type.precision).width
            wide, narrow = max(data, est.weight_bits), min(data, est.weight_bits)
            dsp += est.multipliers * math.ceil(wide / 25) * math.ceil(narrow / 18)
    return dsp, report.total_bram_18k


BRAM_BITS = 18 * 1024


def table_bram(settings, changes: dict) -> int:
    """BRAM_18K the changed tables add: a softmax holds two tables (exp and 1/sum) of TableSize
    entries, a sigmoid's or tanh's one; each as many BRAM_18K as its bits need (an estimate)."""
    from ..config import parse_precision

    added = 0
    for s in settings:
        entry = changes.get(s.layer, {})
        if not entry:
            continue
        size = int(entry.get(propose.TABLE_SIZE, s.table_size))
        for key in (("exp_table", "inv_table") if s.activation == "softmax" else ("table",)):
            if key not in s.types:
                continue
            old = s.types[key][0].width
            new = parse_precision(entry[key]).width if key in entry else old
            added += math.ceil(size * new / BRAM_BITS) - math.ceil(s.table_size * old / BRAM_BITS)
    return added


def _cost(t: "Trial") -> tuple:
    """The cost tune minimises: added type bits first (each is logic, or a DSP's width, on every
    value it carries), then the BRAM its tables add."""
    return (t.added_bits, t.table_bram)


class Tuner:
    """Measures configurations by bit-accurate emulation against the gate, each in its own
    output directory under <out>-tune/, so that a run again reuses every trial still current."""

    def __init__(self, cfg, keras_model, samples, max_samples, target, tolerance):
        self.cfg, self.keras_model, self.samples = cfg, keras_model, samples
        self.max_samples, self.target, self.tolerance = max_samples, target, tolerance
        self.root = cfg.output_dir.with_name(f"{cfg.output_dir.name}-tune")
        self.trials = []
        self.softmax, self.types = {}, []  # propose.look's: each softmax's input, and every type
        # csim's metric set to top-1 for tune: the user's configuration is then measured in a folder
        # of tune's own, so the user's output folder keeps the csim its own config records
        self.relabelled = False
        self.settings = []  # the design's tables (ranges.TableSetting), for the cost of a table step

    def passes(self, r: dict) -> bool:
        """The gate, on the exact count of agreeing samples (never a rounded share)."""
        agreement = r.get("agreement", r.get("top1_agreement"))
        if agreement is None or not stats.meets(stats.count(agreement, r["samples"]), r["samples"], self.target):
            return False
        return r["hls_accuracy"] is None or r["hls_accuracy"] >= r["keras_accuracy"] - self.tolerance

    def noise(self, trial: Trial) -> str:
        """Why the trial is no improvement on the user's configuration beyond noise, or "": the
        figure that failed the gate (agreement, else accuracy) must rise above the upper end of its
        95% interval (stats.improves); a smaller gain is what another draw of samples could give."""
        before = self.trials[0] if self.trials else None
        if before is None or before.gate or trial is before:
            return ""
        n = trial.samples
        if before.agreeing < stats.needed(n, self.target):
            old, new, what = before.agreeing, trial.agreeing, "agreement"
        elif before.hls_correct is not None:
            old, new, what = before.hls_correct, trial.hls_correct, "accuracy"
        else:
            return ""
        if stats.improves(new, old, n):
            return ""
        return (f"{what} {stats.percent(new / n)} is within the 95% interval {stats.ci_text(old, n)} of your "
                f"configuration's {stats.percent(old / n)}")

    def measure(self, trial: Trial, findings) -> Trial:
        if trial.label not in ("before", "auto"):  # the user's and hls4ml's own types are measured as they are
            trial.changes = causes.merge(trial.changes, propose.table_changes(self.softmax, self.types, trial.changes))
        in_place = trial.label == "before" and not self.relabelled
        trial_cfg = self.cfg if in_place else propose.with_changes(self.cfg, trial.changes, self.root / trial.label)
        captured = io.StringIO()
        try:
            with contextlib.redirect_stdout(captured):
                # As `hlsflow csim` on the step's folder: converted first when not current, csim recorded there.
                # min_agreement=0: the config's gate is the target tune measures against, not a reason to stop
                r = flow.csim(trial_cfg, samples=self.samples, max_samples=self.max_samples, quiet_advice=True,
                              min_agreement=0)
                trial.dsp, trial.bram = resource_estimate(trial_cfg, self.keras_model)
        except FlowError:
            console.say(captured.getvalue()[-3000:])
            raise
        trial.agreement, trial.keras_accuracy, trial.hls_accuracy = (r.get("agreement", r.get("top1_agreement")),
                                                                     r["keras_accuracy"], r["hls_accuracy"])
        trial.samples = r["samples"]
        trial.agreeing = stats.count(trial.agreement, trial.samples)
        trial.agreement_ci95 = list(stats.interval(trial.agreeing, trial.samples))
        if trial.hls_accuracy is not None:
            trial.hls_correct = stats.count(trial.hls_accuracy, trial.samples)
        trial.table_bram = table_bram(self.settings, trial.changes)
        trial.gate = self.passes(r)
        noise = self.noise(trial) if trial.gate else ""
        if noise:  # bits are never bought for what another draw of samples could give by itself
            trial.gate, trial.inside_noise = False, noise
        verdict = (f"gate met by a change inside noise ({noise}): not taken as an improvement" if noise
                   else "gate met" if trial.gate else "gate not met")
        self.trials.append(trial)
        tables = f", {trial.table_bram:+d} BRAM_18K of tables" if trial.table_bram else ""
        console.say(f"  {'baseline' if trial.label == 'auto' else f'step {len(self.trials) - 1}'} [{trial.label}] {trial.what}: {trial.added_bits:+d} bits{tables}, "
                    f"agreement {trial.figure(self.target)}{_accuracy_text(trial)} -> {verdict}")
        return trial


def _accuracy_text(t: Trial) -> str:
    if t.hls_accuracy is None:
        return ""
    n = t.samples
    keras = stats.count(t.keras_accuracy, n)
    return (f", accuracy {stats.figure(t.hls_correct, n)} (Keras {stats.figure(keras, n)}, "
            f"{100 * (t.keras_accuracy - t.hls_accuracy):+.1f} points lost)")


def _auto_changes(findings) -> dict:
    """hls4ml's own type inference ('auto') for every result and accumulator it can infer (not the
    input, whose type hls4ml cannot infer)."""
    changes = {}
    for f in findings:
        if f.kind in ("result", "accum") and f.layer_class != "Input":
            changes.setdefault(f.layer, {})[f.kind] = "auto"
    return changes


AUTO_CONVERT_SECONDS = 60  # an in-memory conversion takes seconds; hls4ml 1.3 never ends on some graphs


class _Expired(BaseException):
    """Raised by _time_limit; a BaseException, so that no `except Exception` on the way swallows it."""


@contextlib.contextmanager
def _time_limit(seconds: int):
    """_Expired after `seconds` (SIGALRM: main thread only; elsewhere no limit)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise _Expired

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _auto_bits(cfg, keras_model, findings, changes) -> int:
    """Bits hls4ml's inferred types add over the user's, read from its converted graph."""
    trial = propose.with_changes(cfg, changes, cfg.output_dir)
    widths = {}
    with in_memory(keras_model, trial) as hls_model:
        for layer in hls_model.get_layers():
            for key, named in layer.types.items():
                widths[(layer.name, key[:-2])] = getattr(named.precision, "width", None)
    return sum(widths[(f.layer, f.kind)] - f.fixed.width for f in findings
               if f.kind in changes.get(f.layer, {}) and widths.get((f.layer, f.kind)) is not None)


def _config_yaml(cfg, changes: dict, target: Path) -> str:
    """The user's config with the changed precisions; without a config file of this model's (none,
    or one written for another model, used with --model), the effective one."""
    import yaml

    if cfg.source is not None and config_is_for(cfg):
        raw = yaml.safe_load(Path(cfg.source).read_text())
        origin = Path(cfg.source).name
    else:
        hls = copy.deepcopy(cfg.hls_config)
        if cfg.source is not None:  # another model's config: its LayerName entries name that model's layers
            hls.pop("LayerName", None)
        raw = {"KerasModel": str(cfg.keras_model), "OutputDir": str(cfg.output_dir),
               "ProjectName": cfg.project_name, "Part": cfg.part, "Backend": cfg.backend, "IOType": cfg.io_type,
               "ClockPeriod": cfg.clock_period, "HLSConfig": hls}
        origin = (f"hlsflow's defaults for {cfg.keras_model.name}" if cfg.source is None else
                  f"{Path(cfg.source).name} (written for another model: its settings, not its layers) for "
                  f"{cfg.keras_model.name}")
    layers = raw.setdefault("HLSConfig", {}).setdefault("LayerName", {})
    for layer, kinds in changes.items():
        entry = layers.setdefault(layer, {})
        if propose.TABLE_SIZE in kinds:
            entry[propose.TABLE_SIZE] = int(kinds[propose.TABLE_SIZE])
        for kind in propose.LAYER_TYPE_KEYS:  # hls4ml's own keys for table types (see propose)
            if kind in kinds:
                entry[f"{kind}_t"] = kinds[kind]
        types = {kind: value for kind, value in kinds.items()
                 if kind != propose.TABLE_SIZE and kind not in propose.LAYER_TYPE_KEYS}
        if not types:
            continue
        prec = entry.setdefault("Precision", {})
        if not isinstance(prec, dict):
            prec = entry["Precision"] = {"result": prec}
        prec.update(types)
    beside = cfg.source is not None and config_is_for(cfg) and \
        target.resolve().parent == Path(cfg.source).resolve().parent
    if not beside:  # the file's relative paths would break elsewhere
        raw["KerasModel"] = str(cfg.keras_model)
        if cfg.flow["emulation"].get("samples"):
            raw.setdefault("Flow", {}).setdefault("emulation", {})["samples"] = cfg.flow["emulation"]["samples"]
    # Its own output folder: adopting the tuned config must not replace the project it was compared with.
    tuned = cfg.output_dir.with_name(cfg.output_dir.name + "-tuned")
    raw["OutputDir"] = os.path.relpath(tuned, target.resolve().parent) if beside else str(tuned)
    lines = [f"# Tuned by `hlsflow tune-precision` from {origin}; changed precisions:"]
    lines += [f"#   {layer} {kind}: {value}" for layer, kinds in changes.items() for kind, value in kinds.items()]
    return "\n".join(lines) + "\n" + yaml.safe_dump(raw, sort_keys=False, default_flow_style=None, width=120)


TUNE_RESULT = steps.TUNE.outputs[0]
TUNED = ".tuned.yml"  # the tuned config's name: <config>.tuned.yml beside the config


def _labels_measured(cfg, keras_model, samples):
    """The config with csim measuring the predicted labels, tune's gate: csim's "auto" takes a linear
    output of several values without labels for a regression, tune takes it for a classifier's logits.
    Unchanged where "auto" measures top-1 anyway (a softmax, or class labels): a config changed for
    nothing would make the user's next csim run again, its metric "changed"."""
    from ..loading import read_samples
    from ..stages import emulate

    metric = cfg.flow["emulation"].get("metric", "auto")
    if metric == "error":
        raise FlowError("tune-precision meets an agreement of the predicted labels, and this config measures "
                        "the error against Keras (Flow.emulation.metric: error): set metric to auto or top1 "
                        "for tune-precision.")
    n_out = int(math.prod(keras_model.outputs[0].shape[1:]))
    if metric != "auto" or n_out < 2:
        return cfg
    labels = emulate.labels_kind(read_samples(samples)[1], n_out)
    if emulate.choose_metric("auto", emulate.output_activation(keras_model), n_out, labels) == "top1":
        return cfg
    flow_settings = copy.deepcopy(cfg.flow)
    flow_settings["emulation"]["metric"] = "top1"
    return dataclasses.replace(cfg, flow=flow_settings)


def tune(cfg, samples=None, max_samples=None, write=None, target=None, compare_auto=True) -> dict:
    """Search for the fewest added bits that meet the gate, measuring every step by emulation."""
    from ..loading import keras3_lane

    if not keras3_lane():  # the keras3 lane has no TensorFlow, nor its retracing notices
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")  # Keras's retracing notices, once per trial, say nothing useful here
    samples = resolve_samples(cfg, samples)
    # Checked before the search, which takes minutes: its results go into the output directory.
    outdir.check_output_path(cfg.output_dir, outdir.run_inputs(cfg, samples))
    outdir.check_owned(cfg.output_dir)
    target = gate_of(cfg, target)  # --target comes checked (cli/kinds.py)
    keras_model = load_keras_model(cfg.keras_model)
    measured = _labels_measured(cfg, keras_model, samples)
    relabelled, cfg = measured is not cfg, measured
    x, _ = load_samples(samples, tuple(keras_model.inputs[0].shape), 100)
    every_type, softmax = propose.look(cfg, keras_model, x)
    findings = [f for f in every_type if f.tunable]
    # A config written for another model, used with --model, is used as convert uses it: its
    # LayerName entries are about that model's layers (design.check_layer_names lets them be, hls4ml
    # ignores them), and the tuned config is the effective one, for this model.
    own = cfg.source is not None and config_is_for(cfg)
    if write:
        config_path = Path(write)
    elif own:
        config_path = Path(cfg.source).with_name(Path(cfg.source).stem + TUNED)
    else:  # a model alone: its tuned config belongs with its output, never in this checkout's project/
        config_path = cfg.output_dir / (Path(CONFIG_NAME).stem + TUNED)
    tuner = Tuner(cfg, keras_model, samples, max_samples, target, ACCURACY_TOLERANCE)
    # Each step's table only keeps its step on a widened input (the trap); tables for the samples' ties are searched
    tuner.softmax, tuner.types = {name: entry[:2] for name, entry in softmax.items()}, every_type
    tuner.relabelled = relabelled
    console.step(f"Gate: top-1 agreement >= {stats.percent(target)}, and with labels emulated accuracy within "
                 f"{100 * ACCURACY_TOLERANCE:.1f} point of Keras; every step is measured by emulation, and counts only "
                 "when it improves on your configuration beyond the 95% interval of its figure; the cost minimised: "
                 "added type bits, then the BRAM_18K tables add (the preflight's DSP and BRAM estimates are shown)")
    for f in findings:
        if f.verdict != "ok":
            console.say(f"  {ranges.describe(f)}")

    from ..design import in_memory as converted

    with converted(keras_model, cfg) as hls_model:
        tuner.settings = ranges.table_settings(hls_model)
    best = tuner.measure(Trial("before", "your configuration", {}, 0), findings)
    chosen = best if best.gate else None
    # Cause before cure: what limits agreement decides where the search looks, and whether it can reach the gate.
    found = _diagnose(tuner, keras_model, samples, max_samples) if chosen is None else None
    reachable = found is None or found.reachable
    overflow, findings = _overflow_fix(cfg, keras_model, x, findings)
    if chosen is None and reachable and found is not None and found.kind in ("table", "types and table"):
        chosen = _table_search(tuner, every_type + findings, {} if found.kind == "table" else overflow)
        # Types as well: every step below on top of the largest tables (pruned at the end when not needed).
        overflow = causes.merge(overflow, causes.wide_tables(tuner.settings, overflow, growth=2 ** TABLE_STEPS[-1],
                                                             frac=0))
    weights = found is not None and found.kind == "weights"  # the data-path steps would search elsewhere
    if chosen is None and reachable and overflow and not weights:
        step = tuner.measure(Trial("overflow", f"integer bits where values overflow ({_count(overflow)} types)",
                                   overflow, _bits(findings, overflow)), findings)
        chosen = step if step.gate else None
    if chosen is None and reachable and not weights:
        chosen = _fraction_search(tuner, findings, overflow)
    if chosen is None and reachable:
        chosen = _wider_search(tuner, keras_model, x, every_type + findings, overflow)
    if chosen is not None and chosen is not best:
        chosen = _prune(tuner, chosen, every_type + findings)
    best_seen = chosen or max(tuner.trials, key=lambda t: (t.gate, t.agreement, t.hls_accuracy or 0, -t.added_bits))

    auto = None
    if compare_auto:
        changes = _auto_changes(findings)
        try:
            with _time_limit(AUTO_CONVERT_SECONDS):
                auto_bits = _auto_bits(cfg, keras_model, findings, changes)
        except _Expired:
            auto_bits = None
            console.say(f"  baseline [auto] skipped: hls4ml's conversion with 'auto' types did not finish in "
                        f"{AUTO_CONVERT_SECONDS} s on this model (its optimizer loops on some graphs).")
        if auto_bits is not None:
            auto = tuner.measure(Trial("auto", "hls4ml's own type inference ('auto') as a baseline", changes,
                                       auto_bits), findings)
            tuner.trials.pop()  # a baseline, not a step of the search

    result = {"target": target, "accuracy_tolerance": ACCURACY_TOLERANCE, "samples": str(samples),
              "trials": [asdict(t) for t in tuner.trials], "auto": asdict(auto) if auto else None,
              "before": asdict(tuner.trials[0]), "after": asdict(best_seen), "config": None,
              "outcome": None, "cause": found.as_dict() if found is not None else None,
              "cost": "added type bits, then BRAM_18K of tables (DSP and BRAM_18K of the preflight shown)"}
    before = tuner.trials[0]
    n = before.samples
    tuned = None  # the tuned config's text, written with tune.json below
    if before.gate:
        result["outcome"] = "already met"
        note = stats.gate_note(before.agreeing, n, target)
        final = (f"The gate was met already by your configuration (agreement {before.figure(target)}"
                 f"{_accuracy_text(before)}{'; ' + note if note else ''}): 0 bits added, nothing written.")
    elif chosen is not None:
        tuned = _config_yaml(cfg, chosen.changes, config_path)
        result["outcome"], result["config"] = "met", str(config_path)
        note = stats.gate_note(chosen.agreeing, n, target)
        final = (f"Gate met: agreement {before.agreement:.1%} -> {chosen.agreement:.1%} ({chosen.agreeing} of {n} "
                 f"samples, 95% interval {stats.ci_text(chosen.agreeing, n)}; was {before.agreeing} of {n}, "
                 f"{stats.ci_text(before.agreeing, n)}){_accuracy_text(chosen)}{'; ' + note if note else ''}, "
                 f"for {chosen.added_bits} added bits on {_count(chosen.changes)} types"
                 f"{f' and {chosen.table_bram:+d} BRAM_18K of tables' if chosen.table_bram else ''} "
                 f"({_changes_text(chosen.changes)}; estimate: ~{chosen.dsp} DSP, "
                 f"~{chosen.bram} BRAM_18K; was ~{before.dsp} DSP, ~{before.bram} BRAM_18K). Tuned config written to "
                 f"{config_path}: adopt it with --config {config_path}.")
    elif not reachable:
        result["outcome"] = "unreachable"
        final = (f"Gate NOT reachable: your configuration agrees on {before.figure(target)} ({_short(before, target)}), "
                 "and what limits it is "
                 f"{found.text}; tried: the diagnostic designs above; no bits bought, nothing written.")
    elif best_seen is not before and not tuner.noise(best_seen):
        tuned = _config_yaml(cfg, best_seen.changes, config_path)
        result["outcome"], result["config"] = "not met", str(config_path)
        final = (f"Gate NOT met: the best step reached agreement {best_seen.figure(target)}{_accuracy_text(best_seen)} "
                 f"(from {before.figure(target)}), {_short(best_seen, target)}, for {best_seen.added_bits} added bits; "
                 f"that config is written to {config_path}, but it does not meet the gate: "
                 + (f"what limits it is {found.text}." if found is not None else
                    "look at the model itself or its samples (near-ties that any rounding flips)."))
    else:
        result["outcome"] = "nothing improved"
        reason = tuner.noise(best_seen) if best_seen is not before else ""
        gain = (f"the best step reached {best_seen.figure(target)}, no improvement beyond noise ({reason})" if reason
                else "no step improved on it")
        final = (f"Nothing could be improved beyond noise: your configuration agrees on {before.figure(target)} "
                 f"({_short(before, target)}), and {gain}; no bits bought, nothing written.")
    if auto is not None:
        ours = chosen.added_bits if chosen is not None else None
        if auto.gate and (ours is None or auto.added_bits < ours):
            verdict = "hls4ml's 'auto' is cheaper"
        elif ours is not None and (not auto.gate or ours <= auto.added_bits):
            verdict = "this search is cheaper" if auto.gate else "only this search meets the gate"
        else:
            verdict = "neither meets the gate"
        console.say(f"Baseline, hls4ml's 'auto' types: {auto.added_bits:+d} bits, agreement {auto.figure(target)}"
                    f"{_accuracy_text(auto)}, gate {'met' if auto.gate else 'not met'} ({verdict}).")
        result["auto_verdict"] = verdict
    out = cfg.output_dir

    def work(into):
        # Written once the folder is claimed: a tuned config in the output folder, written before,
        # was a file of no record's there, and the claim refused the folder for it.
        if tuned is not None:
            write_atomically(config_path, tuned)
        write_json(out / TUNE_RESULT, result)
        made = [TUNE_RESULT]
        if result["config"] and config_path.resolve().parent == out.resolve():
            made.append(config_path.name)
        return steps.Outcome(made, result={"outcome": result["outcome"], "after": best_seen.label})

    inputs = {"design": outdir.digest(outdir.design_inputs(cfg)), "samples": sha256(samples, cache=True),
              "max_samples": max_samples, "target": target}
    flow.record_command(steps.TUNE, cfg, inputs, work, samples)  # recorded for `hlsflow verify`
    console.say(final)
    return result


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


def _fraction_search(tuner, findings, overflow):
    """On top of the overflow fix, in this order, until the gate is met:
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


def _short(trial: Trial, target: float) -> str:
    """How far the trial is from the gate, in samples: a share rounded to a tenth of a point would
    show 98.997% as the 99.0% it falls short of."""
    n, k = trial.samples, trial.agreeing
    missing = stats.needed(n, target) - k
    if trial.inside_noise:
        return f"it meets the {stats.percent(target)} gate only by a change inside noise ({trial.inside_noise})"
    if missing <= 0:
        return (f"its agreement meets the {stats.percent(target)} gate but its accuracy is more than "
                f"{100 * ACCURACY_TOLERANCE:.1f} point below Keras's")
    return (f"{missing} sample{'s' if missing != 1 else ''} short of the {stats.percent(target, k / n)} gate: "
            f"{k} of {n} agree, {stats.needed(n, target)} needed")


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


def _diagnose(tuner, keras_model, samples, max_samples):
    """emulator/cause.py's finding on the samples csim measures, or None where the diagnostic designs
    cannot run (one line why)."""
    from ..emulator.fixedpoint import Unsupported
    from ..stages import emulate

    limit = max_samples or tuner.cfg.flow["emulation"].get("max_samples")
    x, y = load_samples(samples, tuple(keras_model.inputs[0].shape), limit, labels_as_stored=True)
    y_keras = keras_model.predict(x, batch_size=64, verbose=0).reshape(len(x), -1)
    n_out = y_keras.shape[1]
    metric = emulate.choose_metric(tuner.cfg.flow["emulation"].get("metric") or "auto",
                                   emulate.output_activation(keras_model), n_out, emulate.labels_kind(y, n_out))
    console.step("What limits agreement, before anything is bought (diagnostic designs, never written as advice)")
    try:
        found = causes.diagnose(tuner.cfg, keras_model, x, y_keras, metric, tuner.target, say=console.say)
    except Unsupported as exc:
        console.say(f"The diagnostic designs need the fast engine, and {exc}: the search looks everywhere.")
        return None
    except FlowError:
        raise
    except Exception as exc:  # noqa: BLE001 -- hls4ml may refuse a diagnostic design; the search still runs
        console.say(f"The diagnostic designs could not run on this model ({type(exc).__name__}: "
                    f"{' '.join(str(exc).split())[:160]}): the search looks everywhere.")
        return None
    console.say(f"What limits agreement: {found.text}.")
    return found


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
    for layer in order[:PRUNE_MAX]:
        if layer not in chosen.changes or len(chosen.changes) < 2:
            continue
        changes = {name: kinds for name, kinds in chosen.changes.items() if name != layer}
        trial = tuner.measure(Trial(f"{chosen.label}-without-{layer}", f"the step so far without its changes to {layer}", changes,
                                    _bits(findings, changes)), findings)
        if trial.gate and _cost(trial) <= _cost(chosen):
            chosen = trial
    return chosen


def _changes_text(changes: dict, most: int = 8) -> str:
    """"prob TableSize 8192, fc result ap_fixed<20,8>, ...": what a config changes."""
    items = [f"{layer} {kind} {value}" for layer, kinds in changes.items() for kind, value in kinds.items()]
    more = f", and {len(items) - most} more" if len(items) > most else ""
    return ", ".join(items[:most]) + more
