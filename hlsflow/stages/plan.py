"""`hlsflow plan`: a ReuseFactor per layer so that the design fits the part, as fast as it can.

Everything here is an estimate, built on preflight's own (multipliers = n_in x n_out /
ReuseFactor, weight BRAM = weights x bit width) plus one of ours for time: a layer computes its
output positions one after the other, each in ReuseFactor cycles, so it is busy
positions x ReuseFactor cycles per image. In io_stream the layers run concurrently and the
busiest one sets the interval; the sum of all of them bounds the latency from above. Only
Vivado gives real figures.

The ReuseFactors offered for a layer are those hls4ml's backend accepts (its own
_validate_reuse_factor), so hls4ml never silently replaces one.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

from .. import console, parts
from ..errors import FlowError, check_flag
from ..files import write_atomically
from .. import preflight

DEFAULT_MARGIN = 0.8  # of the part's DSPs and BRAM: routing and the rest of the design need some
PLANNED = ".plan.yml"  # the planned config's name: <config>.plan.yml (or <out>.plan.yml)


def valid_reuse_factors(backend, n_in: int, n_out: int) -> list:
    """hls4ml's valid ReuseFactors for a layer. Its get_valid_reuse_factors tries every integer
    up to n_in x n_out (millions for a big Dense); its last assertion admits divisors of
    n_in x n_out only, so trying those with its own check gives the same list, quickly."""
    total = n_in * n_out
    divisors = set()
    for d in range(1, math.isqrt(total) + 1):
        if total % d == 0:
            divisors.update((d, total // d))
    return [rf for rf in sorted(divisors) if backend._validate_reuse_factor(n_in, n_out, rf)]


@dataclasses.dataclass
class LayerPlan:
    estimate: preflight.LayerEstimate  # preflight's estimate at the chosen ReuseFactor
    options: list  # accepted ReuseFactors, ascending

    @property
    def rf(self) -> int:
        return self.estimate.reuse_used

    @property
    def cycles(self) -> int:
        return self.estimate.positions * self.rf

    def at(self, rf: int) -> LayerPlan:
        return LayerPlan(dataclasses.replace(self.estimate, reuse_requested=rf, reuse_used=rf), self.options)


@dataclasses.dataclass
class Plan:
    part: parts.Part
    clock_ns: float
    layers: list
    dsp_budget: int
    bram_budget: int

    @property
    def multipliers(self) -> int:
        return sum(p.estimate.multipliers for p in self.layers)

    @property
    def bram_18k(self) -> int:
        return sum(p.estimate.bram_18k for p in self.layers)

    @property
    def macs(self) -> int:
        return sum(p.estimate.macs for p in self.layers)

    @property
    def interval(self) -> int:
        return max((p.cycles for p in self.layers), default=0)

    @property
    def latency(self) -> int:
        return sum(p.cycles for p in self.layers)

    @property
    def dsp_bound_cycles(self) -> float:
        """MACs / DSPs: no design on this part computes an image in fewer cycles."""
        return self.macs / self.part.DSP


def _margin(value, name: str) -> float:
    if value is None:
        return DEFAULT_MARGIN
    return check_flag(value, name, "share")


def _layers(report: preflight.Preflight, backend, cfg) -> list:
    plans = []
    for est in report.layers:
        if est.distributed:  # hls4ml accepts a DA layer at ReuseFactor 1 only; it uses no DSP anyway
            plans.append(LayerPlan(est, [1]).at(1))
            continue
        options = valid_reuse_factors(backend, est.n_in, est.n_out)
        if cfg.io_type == "io_parallel" and "Conv" in est.kind:
            # Above n_in, io_parallel Resource convolutions abort emulation (preflight's error).
            options = [rf for rf in options if rf <= est.n_in] or options[:1]
        plans.append(LayerPlan(est, options).at(options[0]))
    return plans


def _fastest_within(layers: list, dsp_budget: int):
    """The plan with the smallest interval whose multipliers fit dsp_budget, or None.

    For a target interval T each layer takes its largest ReuseFactor with positions x RF <= T
    (fewest multipliers); fitting only gets easier as T grows, so the smallest T that fits is
    found by bisection over the intervals that can occur. Leftover DSPs then go, one step at a
    time, to the layer that saves the most cycles per extra multiplier, shortening the latency."""
    def at_interval(t):
        chosen = []
        for lp in layers:
            fitting = [rf for rf in lp.options if lp.estimate.positions * rf <= t]
            if not fitting:
                return None
            chosen.append(lp.at(fitting[-1]))
        return chosen

    def fits(chosen):
        return chosen is not None and sum(p.estimate.multipliers for p in chosen) <= dsp_budget

    targets = sorted({lp.estimate.positions * rf for lp in layers for rf in lp.options})
    lo, hi = 0, len(targets) - 1
    if not fits(at_interval(targets[hi])):
        return None
    while lo < hi:
        mid = (lo + hi) // 2
        if fits(at_interval(targets[mid])):
            hi = mid
        else:
            lo = mid + 1
    chosen = at_interval(targets[lo])
    spare = dsp_budget - sum(p.estimate.multipliers for p in chosen)
    while True:
        best = None
        for i, lp in enumerate(chosen):
            smaller = [rf for rf in lp.options if rf < lp.rf]
            if not smaller:
                continue
            step = lp.at(smaller[-1])
            extra = step.estimate.multipliers - lp.estimate.multipliers
            if extra <= spare:
                gain = (lp.cycles - step.cycles) / max(extra, 1)
                if best is None or gain > best[0]:
                    best = (gain, i, step, extra)
        if best is None:
            return chosen
        _, i, step, extra = best
        chosen[i], spare = step, spare - extra


def _smallest_fitting_part(layers, dsp_margin, bram_margin):
    """The smallest part in parts.py that holds the weights and the fewest multipliers possible."""
    least_mult = sum(lp.at(lp.options[-1]).estimate.multipliers for lp in layers)
    bram = sum(lp.estimate.bram_18k for lp in layers)
    for part in sorted(parts.PARTS.values(), key=lambda p: (p.DSP, p.BRAM_18K)):
        if least_mult <= int(part.DSP * dsp_margin) and bram <= int(part.BRAM_18K * bram_margin):
            return part
    return None


def _no_fit(cfg, part, layers, dsp_budget, bram_budget, dsp_margin, bram_margin) -> FlowError:
    least_mult = sum(lp.at(lp.options[-1]).estimate.multipliers for lp in layers)
    bram = sum(lp.estimate.bram_18k for lp in layers)
    why = []
    if bram > bram_budget:
        why.append(f"its weights need ~{bram:,} BRAM_18K against {bram_budget:,} "
                   f"({bram_margin:.0%} of {part.BRAM_18K:,})")
    if least_mult > dsp_budget:
        why.append(f"even the largest ReuseFactors need ~{least_mult:,} multipliers against {dsp_budget:,} DSPs "
                   f"({dsp_margin:.0%} of {part.DSP:,})")
    bigger = _smallest_fitting_part(layers, dsp_margin, bram_margin)
    advice = (f"use a part like {bigger.name} ({bigger.describe()})" if bigger else
              "no part in hlsflow/parts.py is large enough, so shrink the model or give its weights fewer bits")
    return FlowError(f"{cfg.keras_model.name} cannot fit {part.name} at any ReuseFactor (estimates): "
                     f"{' and '.join(why)}; {advice}.", exit_code=1)


def make_plan(hls_model, cfg, dsp_margin=DEFAULT_MARGIN, bram_margin=DEFAULT_MARGIN) -> Plan:
    report = preflight.run(hls_model, cfg)
    part = report.part
    if part is None:
        raise FlowError(f"Part {cfg.part} is of a device not in hlsflow's table, so there are no DSP and BRAM "
                        "figures to plan against: give --part a part of a device `hlsflow parts` lists, or set "
                        "the ReuseFactors yourself.")
    dsp_budget, bram_budget = int(part.DSP * dsp_margin), int(part.BRAM_18K * bram_margin)
    layers = _layers(report, hls_model.config.backend, cfg)
    if not layers:
        raise FlowError(f"{cfg.keras_model.name} has no Dense or convolution layer, so there is no ReuseFactor to "
                        "plan: convert it as it is.")
    chosen = _fastest_within(layers, dsp_budget)
    if chosen is None or sum(lp.estimate.bram_18k for lp in layers) > bram_budget:
        raise _no_fit(cfg, part, layers, dsp_budget, bram_budget, dsp_margin, bram_margin)
    return Plan(part, cfg.clock_period, chosen, dsp_budget, bram_budget)


def _us(cycles: float, clock_ns: float) -> str:
    return f"{cycles * clock_ns / 1000:,.1f} us"


def print_plan(plan: Plan, cfg, dsp_margin: float, bram_margin: float) -> None:
    console.step(f"ReuseFactor plan for {plan.part.name} at {cfg.clock_period} ns ({cfg.io_type}; estimates, "
                 "not Vivado results)")
    rows = [(lp.estimate.name, lp.estimate.kind, lp.estimate.n_in, lp.estimate.n_out,
             cfg.requested_reuse_factor(lp.estimate.name), lp.rf, f"{lp.estimate.multipliers:,}",
             lp.estimate.bram_18k, f"{lp.cycles:,}") for lp in plan.layers]
    rows.append(("TOTAL", "", "", "", "", "", f"{plan.multipliers:,}", plan.bram_18k, f"{plan.latency:,}"))
    console.say(console.table(["layer", "type", "n_in", "n_out", "RF now", "RF planned", "est. multipliers",
                               "est. BRAM_18K", "est. cycles"], rows))
    console.say(f"Estimated multipliers: ~{plan.multipliers:,} of {plan.dsp_budget:,} allowed ({dsp_margin:.0%} of "
                f"{plan.part.DSP:,} DSPs); weight BRAM_18K: ~{plan.bram_18k:,} of {plan.bram_budget:,} allowed "
                f"({bram_margin:.0%} of {plan.part.BRAM_18K:,}).")
    preflight.say_distributed([lp.estimate for lp in plan.layers])
    bound = plan.dsp_bound_cycles
    console.say(f"Estimated interval {plan.interval:,} cycles ({_us(plan.interval, plan.clock_ns)}, the busiest "
                f"layer), latency at most {plan.latency:,} cycles ({_us(plan.latency, plan.clock_ns)}); "
                f"DSP-bound limit MACs / (DSPs x f) = {plan.macs:,} / ({plan.part.DSP:,} x "
                f"{1000 / plan.clock_ns:g} MHz) = {_us(bound, plan.clock_ns)}: the interval is "
                f"{plan.interval / bound:.1f}x that limit.")


def plan_target(cfg, write=None) -> Path:
    """Where the plan goes: --write, else <config>.plan.yml beside the config of this model, else
    (--model without a config, or with one written for another model, such as the checkout's
    reference config) beside the output directory as <out>.plan.yml: inside it, converting into
    that directory would replace the folder holding the plan."""
    from ..config_files import resolve_paths

    if write:
        return Path(os.path.abspath(write))
    if cfg.source is not None and resolve_paths(cfg.source).model == cfg.keras_model:
        return Path(cfg.source).with_name(Path(cfg.source).stem + PLANNED)
    return cfg.output_dir.with_name(cfg.output_dir.name + PLANNED)


def planned_output(cfg) -> Path:
    """The planned config's output folder: <out>-plan, beside the one it was planned from."""
    return cfg.output_dir.with_name(cfg.output_dir.name + "-plan")


def plan_yaml(plan: Plan, cfg, target: Path, dsp_margin: float, bram_margin: float) -> str:
    import copy

    import yaml

    from ..config_files import config_is_for, read_raw

    raw = read_raw(Path(cfg.source)) if cfg.source is not None else {}
    here = target.parent

    def rel(path):  # relative to the plan file, as hlsflow reads paths in a config; absolute across trees
        path = os.path.abspath(path)
        return os.path.relpath(path, here) if os.path.commonpath([path, here]) != os.sep else path

    # Its own output folder: converting the plan must not replace the project it was planned from.
    raw["KerasModel"], raw["OutputDir"] = rel(cfg.keras_model), rel(planned_output(cfg))
    raw["ProjectName"], raw["Part"], raw["Backend"] = cfg.project_name, cfg.part, cfg.backend
    raw["IOType"], raw["ClockPeriod"] = cfg.io_type, cfg.clock_period
    samples = cfg.flow["emulation"].get("samples")
    if samples:
        raw.setdefault("Flow", {}).setdefault("emulation", {})["samples"] = rel(samples)
    hls = copy.deepcopy(cfg.hls_config)  # the effective one: flags given to plan are kept
    if cfg.source is not None and not config_is_for(cfg):
        hls.pop("LayerName", None)  # another model's layers: the plan is a config for this model
    layers = hls.setdefault("LayerName", {})
    for lp in plan.layers:
        entry = layers.setdefault(lp.estimate.name, {})
        entry["ReuseFactor"] = lp.rf
        if lp.rf > 1:  # Latency unrolls every multiplication; hls4ml shares multipliers under Resource
            entry["Strategy"] = "Resource"
    raw["HLSConfig"] = hls
    source = Path(cfg.source).name if cfg.source is not None else f"{cfg.keras_model.name} (hlsflow's defaults)"
    lines = [f"# Planned by `hlsflow plan` from {source} for {plan.part.name} (estimates, not Vivado results):",
             f"#   ~{plan.multipliers:,} multipliers for {plan.dsp_budget:,} DSPs ({dsp_margin:.0%} of "
             f"{plan.part.DSP:,}), ~{plan.bram_18k:,} weight BRAM_18K for {plan.bram_budget:,} "
             f"({bram_margin:.0%} of {plan.part.BRAM_18K:,}),",
             f"#   interval ~{plan.interval:,} cycles, latency at most ~{plan.latency:,} cycles at "
             f"{plan.clock_ns:g} ns. Planned ReuseFactors (Strategy Resource where above 1):"]
    lines += [f"#   {lp.estimate.name}: {lp.rf}" for lp in plan.layers]
    lines += [f"# OutputDir is the plan's own, beside {cfg.output_dir.name}: converting it replaces no project."]
    return "\n".join(lines) + "\n" + yaml.safe_dump(raw, sort_keys=False, default_flow_style=None, width=120)


def plan(cfg, dsp_margin=None, bram_margin=None, write=None) -> dict:
    """Plan, print, write the config, and check it: hls4ml keeps every ReuseFactor and preflight
    says it fits."""
    from ..config import load_config
    from ..design import in_memory
    from ..loading import load_keras_model

    dsp_margin, bram_margin = _margin(dsp_margin, "dsp_margin"), _margin(bram_margin, "bram_margin")
    target = plan_target(cfg, write)
    console.step(f"Loading {cfg.keras_model}")
    keras_model = load_keras_model(cfg.keras_model)
    with in_memory(keras_model, cfg) as hls_model:
        result = make_plan(hls_model, cfg, dsp_margin, bram_margin)
    print_plan(result, cfg, dsp_margin, bram_margin)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(target, plan_yaml(result, cfg, target, dsp_margin, bram_margin))
    except OSError as exc:
        raise FlowError(f"Cannot write the plan {target} ({exc.strerror}): choose a writable --write PATH.") from exc

    # The written config, read back as any config is, converted by hls4ml, checked by preflight.
    planned = load_config(target, announce=False)
    with in_memory(keras_model, planned) as hls_model:
        check = preflight.run(hls_model, planned)
    changed = [e.name for e in check.layers if e.reuse_used != e.reuse_requested]
    if changed or check.errors:
        raise FlowError(f"hls4ml did not keep the planned ReuseFactors of {', '.join(changed) or 'every layer'} "
                        f"(or preflight found errors) in {target}: please report this as an hlsflow bug.")
    console.say(check.verdict())
    console.say(f"Plan written to {target}: use it with --config {target}.")
    return {"config": str(target), "reuse_factors": {lp.estimate.name: lp.rf for lp in result.layers},
            "estimated_multipliers": result.multipliers, "estimated_interval_cycles": result.interval,
            "estimated_latency_cycles": result.latency, "fits_estimate": check.fits}
