"""tune-precision's measure and cost: a Trial (one configuration, measured by emulation against the
gate, its added bits and the BRAM its tables add), and the Tuner that measures each in its own output
folder under <out>-tune/."""

import contextlib
import io
import math
from dataclasses import dataclass

from .. import console, flow, preflight, stats
from ..config import parse_precision
from ..design import in_memory
from ..emulator import cause as causes, propose
from ..emulator.ranges import fixed_type
from ..errors import FlowError

ACCURACY_TOLERANCE = 0.005  # emulated accuracy may be at most half a point below Keras's


@contextlib.contextmanager
def _shown_if_it_fails():
    """The block's printing (a step's csim) held back, and its last lines shown only when it fails."""
    captured = io.StringIO()
    try:
        with contextlib.redirect_stdout(captured):
            yield
    except FlowError:
        console.say(captured.getvalue()[-3000:])
        raise


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

    def confirm(self, trial: Trial) -> None:
        """The step whose config tune writes, with g++'s syntax check that its search skipped: its
        csim is recorded again with the check (the same figures); FlowError if g++ rejects its C++."""
        with _shown_if_it_fails():
            flow.csim(propose.with_changes(self.cfg, trial.changes, self.root / trial.label), samples=self.samples,
                      max_samples=self.max_samples, quiet_advice=True, min_agreement=0)

    def measure(self, trial: Trial, findings) -> Trial:
        if trial.label not in ("before", "auto"):  # the user's and hls4ml's own types are measured as they are
            trial.changes = causes.merge(trial.changes, propose.table_changes(self.softmax, self.types, trial.changes))
        in_place = trial.label == "before" and not self.relabelled
        trial_cfg = self.cfg if in_place else propose.with_changes(self.cfg, trial.changes, self.root / trial.label)
        with _shown_if_it_fails():
            # As `hlsflow csim` on the step's folder: converted first when not current, csim recorded there.
            # min_agreement=0: the config's gate is the target tune measures against, not a reason to stop
            # g++'s syntax check only for your configuration: a step changes types and table sizes,
            # and the one written out is checked by confirm(); the others are thrown away.
            r = flow.csim(trial_cfg, samples=self.samples, max_samples=self.max_samples, quiet_advice=True,
                          min_agreement=0, check_cpp=trial.label == "before")
            trial.dsp, trial.bram = resource_estimate(trial_cfg, self.keras_model)
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
