"""The flow configuration: hls4ml's own YAML schema plus one `Flow` section of ours.

hls4ml keys (KerasModel, OutputDir, ProjectName, Part, Backend, IOType, ClockPeriod,
HLSConfig) mean what they mean to hls4ml. Paths in a file are relative to that file;
paths given as flags are relative to the current directory. Flags override the file.
Everything is validated here, before any model is loaded, so that a typo costs seconds.
"""

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from . import parts
from .errors import FlowError

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO_ROOT / "project" / "hls4ml_config.yml"

IO_TYPES = ("io_stream", "io_parallel")
BACKENDS = ("Vivado",)
STRATEGIES = ("Latency", "Resource")

FLOW_DEFAULTS = {
    "synthesis": {"csim": False, "export": False, "vsynth": False, "timeout_s": 12 * 3600},
    "emulation": {"samples": None, "max_samples": 300, "min_agreement": None},
}

# ap_fixed<W,I>, ap_ufixed<W,I> (optionally with quantisation/overflow modes), ap_int<W>,
# ap_uint<W>, and hls4ml's backend-neutral fixed<W,I> / ufixed / int / uint spellings.
_FIXED = re.compile(r"^(ap_)?(u?)fixed<\s*(\d+)\s*,\s*(-?\d+)\s*(,\s*[A-Z_]+\s*)*>$")
_INT = re.compile(r"^(ap_)?(u?)int<\s*(\d+)\s*>$")


@dataclass(frozen=True)
class FixedType:
    signed: bool
    width: int
    integer: int

    @property
    def max_value(self) -> float:
        return 2.0 ** (self.integer - (1 if self.signed else 0)) - 2.0 ** -(self.width - self.integer)

    @property
    def min_value(self) -> float:
        return -(2.0 ** (self.integer - 1)) if self.signed else 0.0

    @property
    def resolution(self) -> float:
        return 2.0 ** -(self.width - self.integer)


def parse_precision(text, where: str = "precision") -> FixedType:
    """A FixedType for an HLS precision string, or FlowError naming where it was found."""
    s = str(text).strip()
    m = _FIXED.match(s)
    if m and int(m.group(3)) >= 1:
        return FixedType(signed=not m.group(2), width=int(m.group(3)), integer=int(m.group(4)))
    m = _INT.match(s)
    if m and int(m.group(3)) >= 1:
        return FixedType(signed=not m.group(2), width=int(m.group(3)), integer=int(m.group(3)))
    raise FlowError(
        f"Precision '{text}' ({where}) is not a fixed-point type: write it like ap_fixed<16,6> "
        "(total bits, integer bits) or ap_int<8>."
    )


def parse_reuse_factor(value, where: str = "HLSConfig") -> int:
    if isinstance(value, bool):
        value = None
    try:
        rf = int(str(value).strip())
    except (TypeError, ValueError):
        rf = 0
    if rf < 1 or str(value).strip() not in (str(rf), f"{rf}.0"):
        raise FlowError(f"ReuseFactor '{value}' ({where}) is not a positive integer: give a whole number such as "
                        "1, 8 or 32.")
    return rf


@dataclass
class FlowConfig:
    source: Path
    keras_model: Path
    output_dir: Path
    project_name: str
    part: str
    backend: str
    io_type: str
    clock_period: float
    hls_config: dict
    flow: dict = field(default_factory=lambda: copy.deepcopy(FLOW_DEFAULTS))

    def hls4ml_kwargs(self) -> dict:
        """Arguments for hls4ml.converters.convert_from_keras_model."""
        return {
            "hls_config": copy.deepcopy(self.hls_config),
            "output_dir": str(self.output_dir),
            "project_name": self.project_name,
            "part": self.part,
            "backend": self.backend,
            "io_type": self.io_type,
            "clock_period": self.clock_period,
        }

    def requested_reuse_factor(self, layer_name: str) -> int:
        layer = self.hls_config.get("LayerName", {}).get(layer_name, {})
        return int(layer.get("ReuseFactor", self.hls_config["Model"]["ReuseFactor"]))

    def samples_path(self):
        samples = self.flow["emulation"].get("samples")
        return Path(samples) if samples else None


def _resolve(base: Path, value) -> Path:
    p = Path(str(value)).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def _set_precisions(hls_config: dict, precision: str) -> None:
    """Set weight, bias and result precision everywhere, as the seed did."""
    model = hls_config.setdefault("Model", {})
    model["Precision"] = {"default": precision}
    for layer in hls_config.get("LayerName", {}).values():
        prec = layer.get("Precision")
        if isinstance(prec, dict):
            for key in ("weight", "bias", "result"):
                if key in prec:
                    prec[key] = precision
        elif prec is not None:
            layer["Precision"] = precision


def _check_precisions(hls_config: dict) -> None:
    def check(value, where):
        if isinstance(value, dict):
            for key, v in value.items():
                check(v, f"{where} {key}")
        elif str(value) != "auto":
            parse_precision(value, where)

    check(hls_config["Model"].get("Precision", {}), "HLSConfig Model Precision")
    for name, layer in hls_config.get("LayerName", {}).items():
        if "Precision" in layer:
            check(layer["Precision"], f"layer {name}")


def load_config(path=None, model=None, out=None, part=None, io_type=None, reuse_factor=None,
                precision=None, clock=None) -> FlowConfig:
    path = Path(path) if path else DEFAULT_CONFIG
    if not path.is_file():
        raise FlowError(f"Config file {path} not found: pass --config with a YAML file like project/hls4ml_config.yml.")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise FlowError(f"Config file {path} is not valid YAML ({str(exc).splitlines()[0]}): fix the syntax.") from exc
    if not isinstance(raw, dict):
        raise FlowError(f"Config file {path} does not hold a mapping: start from project/hls4ml_config.yml.")
    base = path.resolve().parent
    cwd = Path.cwd()

    keras_model = _resolve(cwd, model) if model else raw.get("KerasModel")
    if keras_model is None:
        raise FlowError(f"No model given: set KerasModel in {path} or pass --model.")
    keras_model = keras_model if model else _resolve(base, keras_model)

    hls_config = copy.deepcopy(raw.get("HLSConfig") or {})
    hls_config.setdefault("Model", {})
    model_cfg = hls_config["Model"]
    model_cfg.setdefault("Precision", {"default": "ap_fixed<16,6>"})
    model_cfg.setdefault("ReuseFactor", 1)
    model_cfg.setdefault("Strategy", "Latency")
    if precision is not None:
        parse_precision(precision, "--precision")
        _set_precisions(hls_config, precision)
    if reuse_factor is not None:
        rf = parse_reuse_factor(reuse_factor, "--reuse-factor")
        model_cfg["ReuseFactor"] = rf
        for layer in hls_config.get("LayerName", {}).values():
            if "ReuseFactor" in layer:
                layer["ReuseFactor"] = rf
    model_cfg["ReuseFactor"] = parse_reuse_factor(model_cfg["ReuseFactor"], "HLSConfig Model")
    for name, layer in hls_config.get("LayerName", {}).items():
        if "ReuseFactor" in layer:
            layer["ReuseFactor"] = parse_reuse_factor(layer["ReuseFactor"], f"layer {name}")
    if str(model_cfg["Strategy"]).capitalize() not in STRATEGIES:
        raise FlowError(f"Strategy '{model_cfg['Strategy']}' is unknown: use Latency or Resource.")
    _check_precisions(hls_config)

    part_name = part or raw.get("Part", "xcvu13p-flga2577-2-e")
    parts.get_part(part_name)
    io = io_type or raw.get("IOType", "io_parallel")
    if io not in IO_TYPES:
        raise FlowError(f"IOType '{io}' is unknown: use io_stream or io_parallel.")
    backend = raw.get("Backend", "Vivado")
    if backend not in BACKENDS:
        raise FlowError(f"Backend '{backend}' is not supported by this flow: use Vivado.")
    clock_value = clock if clock is not None else raw.get("ClockPeriod", 5)
    try:
        clock_period = float(clock_value)
    except (TypeError, ValueError):
        clock_period = -1.0
    if not clock_period > 0:
        raise FlowError(f"Clock period '{clock_value}' is not a positive number of nanoseconds: give e.g. --clock 5.")

    flow = copy.deepcopy(FLOW_DEFAULTS)
    for section, values in (raw.get("Flow") or {}).items():
        if section not in flow or not isinstance(values, dict):
            raise FlowError(f"Flow section '{section}' in {path} is unknown: use synthesis or emulation.")
        flow[section].update(values)
    if flow["emulation"].get("samples"):
        flow["emulation"]["samples"] = str(_resolve(base, flow["emulation"]["samples"]))

    output_dir = _resolve(cwd, out) if out else _resolve(base, raw.get("OutputDir", "my-hls-test"))
    project_name = str(raw.get("ProjectName", "myproject"))
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", project_name):
        raise FlowError(f"ProjectName '{project_name}' is not a C identifier: use letters, digits and underscores.")
    return FlowConfig(path, keras_model, output_dir, project_name, part_name, backend, io, clock_period,
                      hls_config, flow)


def seed_hls_config(keras_model, precision="ap_fixed<16,6>", reuse_factor=32, strategy="Resource") -> dict:
    """The seed's HLSConfig for a model: per-layer entries as hls4ml's granularity='name'
    makes them, with weight, bias and result set to one precision everywhere."""
    import hls4ml

    cfg = hls4ml.utils.config_from_keras_model(
        keras_model, granularity="name", default_precision=precision, default_reuse_factor=reuse_factor
    )
    cfg["Model"]["Strategy"] = strategy
    for layer in cfg["LayerName"].values():
        layer.pop("Trace", None)
    cfg["Model"].pop("TraceOutput", None)
    _set_precisions(cfg, precision)
    return cfg


CONFIG_HEADER = """\
# hls4ml flow configuration, in hls4ml's own YAML schema plus a `Flow` section of ours.
# Paths are relative to this file. Flags of the invoke tasks override these values:
#   --config --model --out --part --io-type --reuse-factor --precision --clock
KerasModel: {model}
OutputDir: {out}
ProjectName: {project}
Part: {part}          # Zynq-7010: 80 DSP48, 60 BRAM36 (120 BRAM_18K), 17,600 LUT
Backend: Vivado
# io_stream, not the seed's io_parallel: with io_parallel the reference CNN took 810 s and
# 7.1 GB of g++ to build its emulation and then aborted on an assertion in
# nnet_conv2d_resource.h (ReuseFactor > filt_h*filt_w*n_chan); with io_stream it built in
# 12.5 s and 0.5 GB and runs. io_parallel stays selectable (--io-type io_parallel).
IOType: {io_type}
ClockPeriod: {clock}
Flow:
  synthesis:           # vivado_hls -f build_prj.tcl; cosimulation is always off
    csim: false        # Vivado's own C simulation (our `invoke csim` is faster)
    export: false      # export_design; Vivado HLS 2018.2 needs the Y2K22 patch (AR 76960)
    vsynth: false      # Vivado logic synthesis after HLS
    timeout_s: 43200   # stop synthesis after 12 hours
  emulation:
    samples: {samples}
    max_samples: 300
    min_agreement: null  # e.g. 0.99 makes `invoke csim` fail below 99% top-1 agreement
# The seed's settings: ap_fixed<16,6> for weight, bias and result on every layer,
# ReuseFactor 32, Resource strategy. Per-layer entries as
# hls4ml.utils.config_from_keras_model(granularity='name') makes them.
"""


def render_config_file(hls_config: dict, model: str, out: str, samples: str, project="myproject",
                       part="xc7z010clg400-1", io_type="io_stream", clock=5) -> str:
    header = CONFIG_HEADER.format(model=model, out=out, project=project, part=part, io_type=io_type,
                                  clock=clock, samples=samples)
    body = yaml.safe_dump({"HLSConfig": hls_config}, sort_keys=False, default_flow_style=None, width=120)
    return header + body
