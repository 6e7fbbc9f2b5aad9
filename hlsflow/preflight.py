"""Preflight: what can be known about a design in seconds, before anyone waits for Vivado.

Every figure here is an estimate computed from the hls4ml graph (multipliers = n_in * n_out /
ReuseFactor per layer, weight storage = weights x bit width); only Vivado gives real ones.
"""

import math
from dataclasses import dataclass, field

from . import console, parts

BRAM_18K_BITS = 18 * 1024
# Above this many input values, an io_parallel convolution is fully unrolled by g++ and Vivado:
# the reference CNN (32x32x3 input) took 810 s and 7.1 GB of g++ just to build its emulation.
IO_PARALLEL_LARGE_INPUT = 4096


@dataclass
class LayerEstimate:
    name: str
    kind: str
    n_in: int
    n_out: int
    positions: int  # output pixels a kernel is applied at (1 for Dense)
    reuse_requested: int
    reuse_used: int
    weight_bits: int
    n_weights: int
    da_luts: float = None  # distributed_arithmetic: da4ml's LUT estimate of the adder graph; None otherwise

    @property
    def distributed(self) -> bool:
        return self.da_luts is not None

    @property
    def macs(self) -> int:
        return self.positions * self.n_in * self.n_out

    @property
    def multipliers(self) -> int:
        # A DA layer's constant products are shifts and adds: no DSP (hls4ml's documentation).
        return 0 if self.distributed else math.ceil(self.n_in * self.n_out / self.reuse_used)

    @property
    def bram_18k(self) -> int:
        # Its weights are wired into the adder graph, not stored.
        return 0 if self.distributed else math.ceil(self.n_weights * self.weight_bits / BRAM_18K_BITS)


@dataclass
class Preflight:
    part_name: str
    part: "parts.Part | None"  # None: the device is not in the table, so no figures to judge against
    layers: list = field(default_factory=list)
    findings: list = field(default_factory=list)  # (level, text); level is "error" or "warning"

    @property
    def total_multipliers(self) -> int:
        return sum(layer.multipliers for layer in self.layers)

    @property
    def total_macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def total_bram_18k(self) -> int:
        return sum(layer.bram_18k for layer in self.layers)

    @property
    def da_luts(self) -> int:
        return round(sum(layer.da_luts for layer in self.layers if layer.distributed))

    @property
    def errors(self) -> list:
        return [text for level, text in self.findings if level == "error"]

    @property
    def fits(self):
        """Whether the estimates fit the part; None when its device is not in the table."""
        if self.part is None:
            return None
        return self.total_multipliers <= self.part.DSP and self.total_bram_18k <= self.part.BRAM_18K

    def verdict(self) -> str:
        if self.errors:
            return f"VERDICT: will not work as configured: {len(self.errors)} error(s) above; fix them before emulation or synthesis."
        if self.part is None:
            return (f"VERDICT: fit on {self.part_name} cannot be judged before synthesis: its device is not in "
                    "hlsflow's table (`hlsflow parts`), so the report judges it against Vivado's own figures.")
        dsp = f"~{self.total_multipliers:,} multipliers for {self.part.DSP:,} DSPs"
        bram = f"~{self.total_bram_18k:,} of {self.part.BRAM_18K:,} BRAM_18K for weights"
        if self.fits:
            return f"VERDICT: likely fits {self.part.name} ({dsp}, {bram}; estimates, Vivado decides)."
        return (f"VERDICT: does NOT fit {self.part.name} ({dsp}, {bram}; estimates): raise ReuseFactor, "
                "shrink the model or pick a larger part before running synthesis.")

    def as_dict(self) -> dict:
        return {
            "part": self.part_name,
            "estimated_multipliers": self.total_multipliers,
            "estimated_macs": self.total_macs,
            "estimated_weight_bram_18k": self.total_bram_18k,
            "estimated_da_luts": self.da_luts,
            "available": self.part.resources() if self.part else None,
            "fits_estimate": self.fits,
            "findings": [{"level": level, "text": text} for level, text in self.findings],
            "verdict": self.verdict(),
        }


def _layer_geometry(layer):
    """(n_in, n_out, positions) of a multiplying layer, or None for layers without weights."""
    cls = layer.class_name
    if cls in ("Dense",):
        return layer.get_attr("n_in"), layer.get_attr("n_out"), 1
    if cls in ("Conv2D", "PointwiseConv2D", "Conv2DBatchnorm"):
        n_in = layer.get_attr("filt_height") * layer.get_attr("filt_width") * layer.get_attr("n_chan")
        return n_in, layer.get_attr("n_filt"), layer.get_attr("out_height") * layer.get_attr("out_width")
    if cls in ("Conv1D", "PointwiseConv1D"):
        n_in = layer.get_attr("filt_width") * layer.get_attr("n_chan")
        return n_in, layer.get_attr("n_filt"), layer.get_attr("out_width")
    return None


def run(hls_model, cfg) -> Preflight:
    part = parts.find_part(cfg.part)
    report = Preflight(part_name=cfg.part, part=part)
    large_parallel = []
    for layer in hls_model.get_layers():
        geometry = _layer_geometry(layer)
        if geometry is None:
            continue
        n_in, n_out, positions = geometry
        requested = cfg.requested_reuse_factor(layer.name)
        used = int(layer.get_attr("reuse_factor"))
        weight = layer.get_weights("weight") if "weight" in layer.weights else None
        n_weights = int(weight.data.size) if weight is not None else n_in * n_out
        weight_type = layer.types.get("weight_t")
        width = int(getattr(weight_type.precision, "width", 16)) if weight_type else 16
        strategy = str(layer.get_attr("strategy", "")).lower()
        da_luts = None
        if strategy == "distributed_arithmetic":  # da4ml's own figure (hls4ml keeps it on the layer)
            # one adder graph per output position computed in parallel (n_partitions passes of a convolution)
            instances = max(positions // max(int(layer.get_attr("n_partitions") or 1), 1), 1)
            da_luts = float(layer.get_attr("da_kernel_cost") or 0) * instances
        est = LayerEstimate(layer.name, layer.class_name, n_in, n_out, positions, requested, used, width, n_weights,
                            da_luts)
        report.layers.append(est)

        if used != requested:
            valid = hls_model.config.backend.get_valid_reuse_factors(n_in, n_out)
            shown = ", ".join(map(str, valid[:20])) + (", ..." if len(valid) > 20 else "")
            report.findings.append(("warning", f"{layer.name}: ReuseFactor {requested} is invalid for n_in={n_in}, "
                                    f"n_out={n_out}; hls4ml silently uses {used}. Valid: {shown}."))
        if (cfg.io_type == "io_parallel" and strategy == "resource" and "Conv" in layer.class_name
                and used > n_in):
            report.findings.append(("error", f"{layer.name}: io_parallel Resource convolution with ReuseFactor "
                                    f"{used} > filt_h*filt_w*n_chan = {n_in}; emulation aborts on an assertion in "
                                    "nnet_conv2d_resource.h: use io_stream or a ReuseFactor <= " f"{n_in}."))
        if cfg.io_type == "io_parallel" and "Conv" in layer.class_name:
            in_size = math.prod(layer.get_input_variable().shape)
            if in_size >= IO_PARALLEL_LARGE_INPUT:
                large_parallel.append(f"{layer.name} ({in_size:,} inputs)")
    if large_parallel:
        report.findings.append(("warning", "io_parallel unrolls whole convolutions on large inputs: "
                                f"{', '.join(large_parallel)}; for the reference CNN g++ took 810 s and 7.1 GB "
                                "to build the emulation, io_stream 12.5 s and 0.5 GB."))
    if part is not None and report.total_multipliers > part.DSP:
        report.findings.append(("warning", f"~{report.total_multipliers:,} multipliers (estimate) against "
                                f"{part.DSP} DSPs on {part.name}: at these ReuseFactors the design cannot fit."))
    return report


def print_report(report: Preflight) -> None:
    console.step(f"Preflight against {report.part_name} (estimates, not Vivado results)")
    rows = [
        (e.name, e.kind, e.n_in, e.n_out, e.reuse_requested, e.reuse_used, f"{e.macs:,}", f"{e.multipliers:,}",
         e.bram_18k)
        for e in report.layers
    ]
    rows.append(("TOTAL", "", "", "", "", "", f"{report.total_macs:,}", f"{report.total_multipliers:,}",
                 report.total_bram_18k))
    console.say(console.table(
        ["layer", "type", "n_in", "n_out", "RF asked", "RF used", "MACs/image", "est. multipliers",
         "est. BRAM_18K"], rows))
    if report.part is not None:
        console.say(f"Part {report.part.name}: {report.part.describe()} ({report.part.sheet})")
    say_distributed(report.layers)
    for level, text in report.findings:
        console.say(f"  {level.upper()}: {text}")
    console.say(report.verdict())


def say_distributed(estimates) -> None:
    """One line for the distributed_arithmetic layers, whose cost is LUTs instead of DSPs."""
    da = [e for e in estimates if e.distributed]
    if da:
        console.say(f"Distributed arithmetic ({', '.join(e.name for e in da)}): 0 DSPs and no weight BRAM, "
                    f"~{round(sum(e.da_luts for e in da)):,} LUTs of adder graphs (da4ml's estimate).")
