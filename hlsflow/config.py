"""The flow configuration: hls4ml's own YAML schema plus one `Flow` section of ours.

hls4ml keys (KerasModel, OutputDir, ProjectName, Part, Backend, IOType, ClockPeriod,
HLSConfig) mean what they mean to hls4ml. Paths in a file are relative to that file;
paths given as flags are relative to the current directory. Flags override the file.
Everything is validated here, before any model is loaded, so that a typo costs seconds; where
the file is and which paths it names is config_files.py's.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path

from . import parts
from .config_files import CONFIG_NAME, find_config, no_config, read_raw, resolve_against, resolve_paths
from .config_files import config_is_for  # noqa: F401 -- search/tune.py's, until it imports config_files.py
from .errors import FlowError, as_number
from .files import REPO_ROOT
from .fixedtype import FixedType, NotFixedPoint
from .fixedtype import parse as parse_fixed

DEFAULT_CONFIG = REPO_ROOT / "project" / "hls4ml_config.yml"

IO_TYPES = ("io_stream", "io_parallel")
BACKENDS = ("Vivado", "Vitis")  # hls4ml's backends; versions each runs: hlsflow/toolchain/xilinx.py
STRATEGIES = ("Latency", "Resource", "distributed_arithmetic")  # the last needs da4ml: keras3 lane

FLOW_DEFAULTS = {
    "synthesis": {"csim": False, "export": False, "vsynth": False, "timeout_s": 12 * 3600},
    # csim's gates: min_agreement for a classifier's labels, max_error (max |HLS - Keras|) for any
    # output; metric "auto" picks the figure from the model's last activation (emulator/figures.py).
    "emulation": {"samples": None, "max_samples": 300, "min_agreement": None, "max_error": None, "metric": "auto"},
}
# The agreement a sweep's best point and tune-precision's search ask for when the config names no gate.
DEFAULT_GATE = 0.99


def gate_of(cfg, given=None) -> float:
    """The agreement asked for: the flag's (checked by cli/kinds.py), else the config's, else DEFAULT_GATE."""
    return given if given is not None else (cfg.flow["emulation"].get("min_agreement") or DEFAULT_GATE)


def parse_precision(text, where: str = "precision") -> FixedType:
    """A FixedType for an HLS precision string, or FlowError naming where it was found."""
    try:
        return parse_fixed(text)
    except NotFixedPoint:
        raise FlowError(
            f"Precision '{text}' ({where}) is not a fixed-point type: write it like ap_fixed<16,6> "
            "(total bits, integer bits) or ap_int<8>."
        ) from None


# hls4ml writes reuse_factor into C++ as a 32-bit integer, and its templates divide with it as an int.
MAX_REUSE_FACTOR = 2**31 - 1


def parse_reuse_factor(value, where: str = "HLSConfig") -> int:
    rf = as_number(value, whole=True)
    if rf is None:  # 8.0 too, as YAML or a grid may write it
        number = as_number(value)
        rf = int(number) if number is not None and number.is_integer() else None
    if rf is None or rf < 1:
        raise FlowError(f"ReuseFactor '{value}' ({where}) is not a positive integer: give a whole number such as "
                        "1, 8 or 32.")
    if rf > MAX_REUSE_FACTOR:
        raise FlowError(f"ReuseFactor {rf} ({where}) is more than hls4ml's C++ can hold (at most {MAX_REUSE_FACTOR}; "
                        "a larger one would be cut to another number silently): give a ReuseFactor no larger than "
                        "the layer's multiplications, e.g. 1, 8 or 32.")
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


def check_strategy(value) -> str:
    strategy = {s.lower(): s for s in STRATEGIES}.get(str(value).lower())
    if strategy is None:
        raise FlowError(f"Strategy '{value}' is unknown: use Latency, Resource or distributed_arithmetic "
                        "(the keras3 lane's).")
    return strategy


def check_io_type(value) -> str:
    if value not in IO_TYPES:
        raise FlowError(f"IOType '{value}' is unknown: use io_stream or io_parallel.")
    return value


def parse_clock(value) -> float:
    clock_period = as_number(value)  # finite: it is written into the project's Tcl
    if clock_period is None or not clock_period > 0:
        raise FlowError(f"Clock period '{value}' is not a positive number of nanoseconds: give e.g. --clock 5.")
    return clock_period


def set_precisions(hls_config: dict, precision: str) -> None:
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


def set_default_precision(hls_config: dict, precision: str) -> None:
    """The model's default precision, and each per-layer weight, bias and result that was the old
    default; a per-layer type set apart from it (init's proposal from the samples, a quantizer's,
    the user's) is kept. A sweep's Precision values mean this: the grid names no per-layer type."""
    from .fixedtype import NotFixedPoint, parse

    def same(value, old) -> bool:
        try:
            return parse(str(value)) == parse(str(old))
        except NotFixedPoint:
            return str(value) == str(old)

    model = hls_config.setdefault("Model", {})
    old = model.get("Precision", {"default": "ap_fixed<16,6>"})
    old = old.get("default", "ap_fixed<16,6>") if isinstance(old, dict) else old
    model["Precision"] = {"default": precision}
    for layer in (hls_config.get("LayerName") or {}).values():
        prec = layer.get("Precision")
        if isinstance(prec, dict):
            for key in ("weight", "bias", "result"):
                if key in prec and same(prec[key], old):
                    prec[key] = precision
        elif prec is not None and same(prec, old):
            layer["Precision"] = precision


def _check_precisions(hls_config: dict) -> None:
    def check(value, where):
        if isinstance(value, dict):
            for key, v in value.items():
                check(v, f"{where} {key}")
        elif str(value) != "auto":
            parse_precision(value, where)

    check(hls_config["Model"].get("Precision", {}), "HLSConfig Model Precision")
    for section, word in (("LayerName", "layer"), ("LayerType", "layer type")):
        for name, layer in (hls_config.get(section) or {}).items():
            if "Precision" in layer:
                check(layer["Precision"], f"{word} {name}")
            for key in TABLE_TYPE_KEYS:
                if f"{key}_t" in layer:
                    check(layer[f"{key}_t"], f"{word} {name} {key}_t")
                if isinstance(layer.get("Precision"), dict) and key in layer["Precision"]:
                    from . import console

                    console.warn(f"{word.capitalize()} {name}: Precision {key} is ignored by hls4ml 1.3.0, which reads "
                                 f"a table's type from the layer's own key: write {key}_t: "
                                 f"'{layer['Precision'][key]}' beside Precision.")


# hls4ml 1.3.0 reads these types from a layer's `<kind>_t` key (Layer.__init__), not from its Precision
TABLE_TYPE_KEYS = ("table", "exp_table", "inv_table", "inv_inp")


# Used when no config file is found and a model is given: hls4ml's own defaults, except io_stream
# (with io_parallel a CNN's emulation can take many minutes and GB to build, then abort).
GENERIC_CONFIG = {
    "ProjectName": "myproject",
    "Part": "xcvu13p-flga2577-2-e",
    "Backend": "Vivado",
    "IOType": "io_stream",
    "ClockPeriod": 5,
    "HLSConfig": {"Model": {"Precision": {"default": "ap_fixed<16,6>"}, "ReuseFactor": 1,
                            "Strategy": "Latency"}},
}

# hls4ml keys this flow does not read, with what to write instead.
UNSUPPORTED_HLS4ML_KEYS = {
    "KerasJson": "use KerasModel: a .json model with its weights beside it",
    "KerasH5": "use KerasModel: a .h5 model, or a .json model with its weights beside it",
    "OnnxModel": "this flow converts Keras models only",
    "PytorchModel": "this flow converts Keras models only",
    "InputData": "give samples under Flow: emulation: samples",
    "OutputPredictions": "csim compares with Keras's own predictions",
    "Board": "give the Part",
    "Stamp": "the emulation library's stamp is set by hls4ml",
    "WriterConfig": "the project is written with hls4ml's defaults",
}


def _schema():
    import json

    return json.loads((Path(__file__).with_name("config.schema.json")).read_text())


def _where(error) -> str:
    return " > ".join(str(p) for p in error.absolute_path)


def _sentence(error, path: Path) -> str:
    """One sentence for a schema violation: the key, the value, what was expected."""
    import difflib

    where = _where(error)
    if error.validator == "additionalProperties":
        allowed = list((error.schema.get("properties") or {}).keys())
        unknown = sorted(k for k in error.instance if k not in allowed)
        key = unknown[0]
        place = f" in {where}" if where else ""
        if not where and key in UNSUPPORTED_HLS4ML_KEYS:
            return f"{key} in {path} is an hls4ml key this flow does not read: {UNSUPPORTED_HLS4ML_KEYS[key]}."
        close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6) or difflib.get_close_matches(
            key.lower(), [a.lower() for a in allowed], n=1, cutoff=0.6)
        if close and close[0] not in allowed:  # matched case-insensitively
            close = [a for a in allowed if a.lower() == close[0]]
        hint = f"did you mean {close[0]}?" if close else f"known keys here: {', '.join(allowed)}."
        return f"{key}: unknown key{place} in {path}; {hint}"
    if error.validator == "oneOf":  # a precision that is neither a string nor a known mapping
        unknown = next((e for e in error.context if e.validator == "additionalProperties"), None)
        if unknown is not None and isinstance(error.instance, dict):
            return _sentence(unknown, path)
        return (f"{where} in {path} is {error.instance!r}: give a precision such as ap_fixed<16,6>, or a "
                "mapping of result, weight, bias, accum... to precisions.")
    if error.validator == "enum":
        choices = ", ".join(str(c) for c in error.validator_value)
        return f"{where} in {path} is {error.instance!r}: use one of {choices}."
    expected = {"type": f"a value of type {error.validator_value}", "exclusiveMinimum": f"a number above "
                f"{error.validator_value}", "minimum": f"at least {error.validator_value}",
                "maximum": f"at most {error.validator_value}"}.get(error.validator, error.message)
    if isinstance(expected, str) and "type" in error.validator:
        kinds = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        words = {"integer": "a whole number", "number": "a number", "string": "text", "boolean": "true or false",
                 "object": "a mapping of keys", "null": "null", "array": "a list"}
        expected = " or ".join(words.get(k, k) for k in kinds)
    return f"{where} in {path} is {error.instance!r} but must be {expected}: fix it in the file."


def validate(raw: dict, path: Path) -> None:
    """Check the file against config.schema.json; FlowError with one sentence for the first problem."""
    from .schema import jsonschema

    validator = jsonschema().Draft202012Validator(_schema())
    errors = sorted(validator.iter_errors(raw), key=lambda e: (len(list(e.absolute_path)), list(
        map(str, e.absolute_path))))
    if errors:
        more = f" ({len(errors) - 1} more problem{'s' if len(errors) > 2 else ''} after this one)" \
            if len(errors) > 1 else ""
        sentence = _sentence(errors[0], path)
        raise FlowError(sentence[:-1] + more + sentence[-1] if more else sentence)


def load_config(path=None, model=None, out=None, part=None, io_type=None, reuse_factor=None,
                precision=None, clock=None, samples=None, strategy=None, announce=True,
                default_precision=None) -> FlowConfig:
    """The effective configuration: the file (given, or found by find_config), else hlsflow's
    generic defaults when a model is given, with flags overriding either. `precision` (--precision)
    sets every layer's types; `default_precision` (a sweep's Precision) keeps per-layer ones."""
    cwd = Path.cwd()
    path = resolve_against(cwd, path) if path else find_config(cwd)
    if path is not None:
        raw = read_raw(path)
        validate(raw, path)
    elif model:
        raw = copy.deepcopy(GENERIC_CONFIG)
        if announce:
            from . import console

            console.step(f"No {CONFIG_NAME} here and no --config: using hlsflow's defaults (io_stream, "
                         "ap_fixed<16,6>, ReuseFactor 1, Latency); `hlsflow init` writes them to a file to edit.")
    else:
        raise no_config(cwd)
    paths = resolve_paths(path, model, out, samples, cwd)
    keras_model = paths.model
    if keras_model is None:
        raise FlowError(f"No model given: set KerasModel in {path} or pass --model.")

    hls_config = copy.deepcopy(raw.get("HLSConfig") or {})
    hls_config.setdefault("Model", {})
    model_cfg = hls_config["Model"]
    model_cfg.setdefault("Precision", {"default": "ap_fixed<16,6>"})
    model_cfg.setdefault("ReuseFactor", 1)
    model_cfg.setdefault("Strategy", "Latency")
    if precision is not None:
        parse_precision(precision, "--precision")
        set_precisions(hls_config, precision)
    if default_precision is not None:
        parse_precision(default_precision, "Precision")
        set_default_precision(hls_config, default_precision)
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
    if strategy is not None:
        model_cfg["Strategy"] = check_strategy(strategy)
        for layer in hls_config.get("LayerName", {}).values():
            if "Strategy" in layer:
                layer["Strategy"] = model_cfg["Strategy"]
    check_strategy(model_cfg["Strategy"])
    _check_precisions(hls_config)

    # A board name stands for its part; any part runs (the grammar checked: it is written into Tcl).
    part_name = parts.resolve_part(part or raw.get("Part", "xcvu13p-flga2577-2-e"))
    io = check_io_type(io_type or raw.get("IOType", "io_parallel"))
    backend = raw.get("Backend", "Vivado")
    if backend not in BACKENDS:
        raise FlowError(f"Backend '{backend}' is not supported by this flow: use Vivado (Vivado HLS 2018.2-2020.1) "
                        "or Vitis (Vitis HLS 2020.2 and later).")
    clock_period = parse_clock(clock if clock is not None else raw.get("ClockPeriod", 5))

    flow = copy.deepcopy(FLOW_DEFAULTS)
    for section, values in (raw.get("Flow") or {}).items():
        if section not in flow or not isinstance(values, dict):
            raise FlowError(f"Flow section '{section}' in {path} is unknown: use synthesis or emulation.")
        flow[section].update(values)
    flow["emulation"]["samples"] = str(paths.samples) if paths.samples else None

    output_dir = paths.output_dir
    project_name = str(raw.get("ProjectName", "myproject"))
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", project_name):
        raise FlowError(f"ProjectName '{project_name}' is not a C identifier: use letters, digits and underscores.")
    return FlowConfig(path, keras_model, output_dir, project_name, part_name, backend, io, clock_period,
                      hls_config, flow)
