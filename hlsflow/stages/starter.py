"""`hlsflow init`: a starter config for the user's model, in hls4ml's own YAML schema with
per-layer entries as hls4ml.utils.config_from_keras_model(granularity='name') makes them, our
Flow section, and a comment on every knob."""

import os
from pathlib import Path

import yaml

from .. import console, parts
from ..config import (
    GENERIC_CONFIG,
    check_io_type,
    check_strategy,
    parse_clock,
    parse_precision,
    parse_reuse_factor,
    set_precisions,
)
from ..config_files import CONFIG_NAME
from ..design import check_layers_supported
from ..errors import FlowError
from ..files import write_atomically
from ..loading import load_keras_model, model_files
from ..samples import require_samples_file

TEMPLATE = """\
# hls4ml flow configuration for {model_name}, written by `hlsflow init`.
# hls4ml's own YAML schema plus a `Flow` section of hlsflow's. Paths are relative to this file.
# Flags override these values for one run: --model --out --part --io-type --reuse-factor
# --precision --clock. `hlsflow flow --config THIS_FILE` runs convert, csim, synth and report.
KerasModel: {model}
OutputDir: {out}            # the HLS project, emulation results and reports go here
ProjectName: {project}      # name of the top-level HLS function (a C identifier)
Part: {part}  # the FPGA part{part_note}
Backend: Vivado             # Vivado HLS 2018.2
{io_note}IOType: {io_type}
ClockPeriod: {clock}        # target clock period in ns
Flow:
  synthesis:                # vivado_hls -f build_prj.tcl; cosimulation is always off
    csim: false             # Vivado's own C simulation (hlsflow csim is faster)
    export: false           # export_design; Vivado HLS 2018.2 needs the Y2K22 patch (AR 76960)
    vsynth: false           # Vivado logic synthesis after HLS, for real LUT/FF figures
    timeout_s: 43200        # stop synthesis after 12 hours
  emulation:
    samples: {samples}      # .npz with X (and y labels) or .npy of inputs, for csim
    max_samples: 300        # csim emulates at most this many
    # csim's figure fits the output: top-1 agreement for a classifier (softmax, or logits with class
    # labels), agreement at 0.5 for one sigmoid output, else the error against Keras (a regression).
    metric: auto            # or top1, threshold, error
    min_agreement: null     # e.g. 0.99 makes csim fail below 99% agreement of the predicted labels
    max_error: null         # e.g. 0.05 makes csim fail when max |HLS - Keras| is above it (any output)
# HLSConfig: Model sets the defaults; LayerName overrides them per layer.
#   Precision: ap_fixed<W,I> is W bits with I integer bits (sign included): range +-2^(I-1),
#     resolution 2^-(W-I). result is a layer's output, weight/bias its parameters, accum its sums.
#     `hlsflow profile` shows where values overflow or lose resolution.
#   ReuseFactor: how many times each multiplier is reused. 1 is fastest and largest; larger
#     factors trade latency for DSPs. hls4ml moves an invalid value to the nearest valid one.
#   Strategy: Latency (fully unrolled) or Resource (for large layers and ReuseFactor > 1); in the
#     keras3 lane also distributed_arithmetic (adder graphs in LUTs, no DSPs; ReuseFactor 1).
"""


# Layers of a dense-only model: no convolution, pooling or recurrence (QKeras's spellings too).
DENSE_ONLY = {"InputLayer", "Dense", "QDense", "Activation", "QActivation", "ReLU", "LeakyReLU", "ELU", "PReLU",
              "ThresholdedReLU", "Softmax", "BatchNormalization", "QBatchNormalization", "Dropout", "Flatten"}
SMALL_DENSE = 4096  # weights of a Dense layer that io_parallel's fully unrolled Latency kernel takes well
IO_RULE = ("init's rule: io_parallel for a small dense-only model (Dense, activation, BatchNormalization,\n"
           "# Dropout and Flatten layers, no Dense of more than 4,096 weights), else io_stream.")
IO_NOTE = ("# io_parallel passes whole arrays between layers: it suits small MLPs. io_stream passes data through\n"
           "# FIFOs: the usual choice for CNNs (with io_parallel a CNN's emulation can take many minutes and GB\n"
           "# of g++ to build). " + IO_RULE + "\n")


def suits_io_parallel(keras_model) -> bool:
    """A small dense-only model (IO_RULE), which io_parallel suits better than io_stream."""
    import math

    for layer in keras_model.layers:
        if type(layer).__name__ not in DENSE_ONLY:
            return False
        kernel = getattr(layer, "kernel", None)
        if kernel is not None and math.prod(kernel.shape) > SMALL_DENSE:
            return False
    return True


def starter_hls_config(keras_model, precision="ap_fixed<16,6>", reuse_factor=1, strategy="Latency") -> dict:
    """HLSConfig with per-layer entries as hls4ml's granularity='name' makes them, with weight,
    bias and result at one precision everywhere but where the model's quantizers set them
    (quantizer_types): those are kept, and an HGQ proxy model's are all left to hls4ml."""
    import hls4ml

    try:
        cfg = hls4ml.utils.config_from_keras_model(
            keras_model, granularity="name", default_precision=precision, default_reuse_factor=reuse_factor)
    except Exception as exc:  # hls4ml's parser raises anything (an AssertionError for a layer it cannot read)
        from ..loading import _first_sentence

        reason = _first_sentence(" ".join(str(exc).split())) or type(exc).__name__
        raise FlowError(f"hls4ml {hls4ml.__version__} could not read the layers of model {keras_model.name} ({reason}): "
                        "rebuild the model with layers hls4ml converts, or report it to hls4ml.") from exc
    cfg["Model"]["Strategy"] = strategy
    cfg["Model"].pop("TraceOutput", None)
    for layer in cfg["LayerName"].values():
        layer.pop("Trace", None)
    if is_proxy_model(keras_model):  # hls4ml derives every type from the FixedPointQuantizers ('auto')
        cfg["Model"]["Precision"] = {"default": precision}
        return cfg
    quantized = quantizer_types(cfg)
    set_precisions(cfg, precision)
    for name, types in quantized.items():
        cfg["LayerName"][name]["Precision"].update(types)
    return cfg


def quantizer_types(hls_config: dict) -> dict:
    """{layer: {weight/bias/result: type}} that are not 'auto': in config_from_keras_model's output,
    the ones it read from QKeras quantizers. In C++ spelling where it is a fixed-point type (an
    exponent or binary type stays as hls4ml wrote it)."""
    found = {}
    for name, layer in hls_config.get("LayerName", {}).items():
        prec = layer.get("Precision")
        for key in ("weight", "bias", "result"):
            value = prec.get(key, "auto") if isinstance(prec, dict) else "auto"
            if str(value) != "auto":
                found.setdefault(name, {})[key] = str(_parse(value))
    return found


def _parse(text):
    from ..fixedtype import NotFixedPoint, parse

    try:
        return parse(text)
    except NotFixedPoint:
        return text


def is_proxy_model(keras_model) -> bool:
    """An HGQ proxy model: its FixedPointQuantizer layers carry every type (hls4ml's bit-exact flow)."""
    return any(type(layer).__name__ == "FixedPointQuantizer" for layer in keras_model.layers)


def quantizer_note(keras_model, hls_config: dict) -> str:
    """Comment lines naming the types that came from the model's quantizers ("" when none did)."""
    if is_proxy_model(keras_model):
        return ("# Types from the quantizers: this is an HGQ proxy model, so every per-layer type is 'auto':\n"
                "#   hls4ml takes them from its FixedPointQuantizer layers, bit-exact. A type set here\n"
                "#   overrides the model's. A bit width per element needs IOType io_parallel.\n")
    default = str(_parse(hls_config["Model"]["Precision"]["default"]))
    quantized = {name: kept for name, types in quantizer_types(hls_config).items()
                 if (kept := {key: value for key, value in types.items() if value != default})}
    if not quantized:
        return ""
    lines = ["# Types from the model's QKeras quantizers (kept; the others are the default above):"]
    lines += [f"#   {name}: " + ", ".join(f"{key} {value}" for key, value in types.items())
              for name, types in quantized.items()]
    return "\n".join(lines) + "\n"


def render_config(hls_config: dict, model: str, out: str, samples, model_name=None, project="myproject",
                  part="xc7z010clg400-1", io_type="io_stream", clock=5, comments="", io_note=IO_NOTE) -> str:
    known = parts.find_part(part)
    note = f": {known.describe()}" if known is not None else \
        ": its device is not in hlsflow's table, so fit is judged after synthesis"
    header = TEMPLATE.format(model=model, out=out, project=project, part=part, part_note=note, io_type=io_type,
                             io_note=io_note,
                             clock=clock, samples=samples if samples else "null",
                             model_name=model_name or Path(model).name)
    body = yaml.safe_dump({"HLSConfig": hls_config}, sort_keys=False, default_flow_style=None, width=110)
    return header + comments + body  # comments: quantizer_note's


def _relative(path: Path, to: Path) -> str:
    try:
        return os.path.relpath(path, to)
    except ValueError:  # another drive
        return str(path)


def write_starter(model, config=None, samples=None, part=None, io_type=None, reuse_factor=None, precision=None,
                  clock=None, strategy=None, force=False) -> Path:
    if not model:
        raise FlowError("init needs the model: pass --model PATH (a .keras, .h5, or .json with weights beside it).")
    model = Path(os.path.abspath(model))
    model_files(model)  # one sentence if it is missing or has no weights
    target = Path(os.path.abspath(config)) if config else model.with_name(CONFIG_NAME)
    if target.exists() and not force:
        raise FlowError(f"{target} already exists: pass --force to overwrite it, or --config OTHER.yml to write "
                        "another file.")
    defaults = GENERIC_CONFIG["HLSConfig"]["Model"]
    precision = precision or defaults["Precision"]["default"]
    parse_precision(precision, "--precision")
    rf = parse_reuse_factor(reuse_factor if reuse_factor is not None else defaults["ReuseFactor"], "--reuse-factor")
    strategy = check_strategy(strategy or defaults["Strategy"])
    io_given = io_type
    io_type = check_io_type(io_type or GENERIC_CONFIG["IOType"])
    part = parts.resolve_part(part or GENERIC_CONFIG["Part"])
    clock = parse_clock(clock if clock is not None else GENERIC_CONFIG["ClockPeriod"])
    if samples:
        samples = Path(os.path.abspath(samples))
        require_samples_file(samples)

    console.step(f"Reading {model}")
    keras_model = load_keras_model(model)
    check_layers_supported(keras_model)  # what convert and flow refuse, refused here in the same words
    hls = starter_hls_config(keras_model, precision=precision, reuse_factor=rf, strategy=strategy)
    io_note = IO_NOTE
    if not io_given and is_proxy_model(keras_model):  # hls4ml streams no per-element quantizer
        io_type = "io_parallel"
    elif not io_given and suits_io_parallel(keras_model):
        io_type = "io_parallel"
        io_note = IO_NOTE.replace("# io_parallel passes", "# io_parallel, chosen for this small dense-only model, passes")
    comments = quantizer_note(keras_model, hls)
    if samples and not is_proxy_model(keras_model):  # types from the samples' ranges through the model
        from ..emulator import propose

        console.step(f"Proposing types from the ranges of {samples.name} through the model")
        hls, proposed = propose.for_starter(hls, keras_model, model, samples, io_type, part, clock)
        comments += proposed
    base = target.parent
    text = render_config(hls, _relative(model, base), f"build/{model.stem}",
                         _relative(samples, base) if samples else None, model_name=model.name, part=part,
                         io_type=io_type, clock=f"{clock:g}", comments=comments, io_note=io_note)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(target, text)
    console.say(f"Wrote {target}: {len(hls['LayerName'])} layers, {precision}, ReuseFactor {rf}, {strategy}, "
                f"{io_type}, part {part}.")
    here = Path.cwd()
    shown = _relative(target, here) if target.parent != here else None
    console.say("Next: hlsflow flow" + (f" --config {shown}" if shown else ""))
    return target
