"""`hlsflow tune-precision`: the fewest added bits that bring the design to the gate.

Starting from the types emulator/ranges.py finds at fault, it widens integer bits where Keras
values overflow (with headroom, fractional bits kept), then searches fractional and integer bits
where that is not enough; when that falls short too, it widens the search to every type (weights,
biases and accumulators fitted to their values by emulator/propose.py, then fractional bits on all
of them, then integer bits where values grow). In every step a softmax whose input gained integer
bits gets the table that keeps its step (propose.table_changes: hls4ml's softmax trap).
Every step is measured as the user would measure it: `flow.csim` on the step's own output folder
under <out>-tune/, so a run again reuses every step still current.
The parts, by job: search/trial.py measures a step and its cost, search/candidates.py makes the
steps, search/tuned_config.py writes the tuned config and hls4ml's 'auto' baseline.
Writes tune.json into the output folder, and the tuned config beside the user's config (or into
the output folder, for a model given alone).
"""

import copy
import dataclasses
import math
from dataclasses import asdict
from pathlib import Path

from .. import console, flow, stats, steps
from ..config import CONFIG_NAME, config_is_for, gate_of
from ..emulator import cause as causes, propose, ranges
from ..errors import FlowError
from ..files import sha256, write_atomically, write_json
from ..inputs import design_inputs, digest
from ..loading import load_keras_model, load_samples, resolve_samples
# The search's parts, by job: the measure and its cost, the candidate steps, what is written.
from .candidates import (TABLE_STEPS, _count, _fraction_search, _overflow_fix, _prune, _table_search,
                         _wider_search)
from .trial import ACCURACY_TOLERANCE, Trial, Tuner, _accuracy_text, _bits, _short
from .tuned_config import AUTO_CONVERT_SECONDS, _auto_bits, _auto_changes, _changes_text, _config_yaml, _Expired, \
    _time_limit

__all__ = ["ACCURACY_TOLERANCE", "Trial", "Tuner", "tune", "_config_yaml", "_short"]

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
    flow.check_claimable(cfg, samples)
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
        chosen = _fraction_search(tuner, findings, overflow, found is not None and found.kind == "accumulators")
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
        tuner.confirm(chosen)  # the design whose config is written: g++ checks its C++ once
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
        tuner.confirm(best_seen)
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

    inputs = {"design": digest(design_inputs(cfg)), "samples": sha256(samples, cache=True),
              "max_samples": max_samples, "target": target}
    flow.record_command(steps.TUNE, cfg, inputs, work, samples)  # recorded for `hlsflow verify`
    console.say(final)
    return result


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
