"""The fast engine's layers of quantization-aware models, as hls4ml 1.3 writes them:

- ApplyAlpha: QKeras's per-output scale (a quantizer with alpha='auto_po2' or a number), which
  hls4ml moves out of the Dense or convolution into nnet::normalize after it. A power-of-two
  scale is an exponent struct {sign, weight} multiplied as a shift (nnet::product::
  weight_exponential); any other scale is an ordinary fixed-point multiply;
- FixedPointQuantizer: the quantizers of an HGQ proxy model that hls4ml could not fold into the
  layer before them (a bit width per element): one generated function per layer, in
  firmware/nnet_utils/nnet_code_gen.h, that casts element i to its own ap_fixed type (or sets it
  to 0 when it has no bits), then to the layer's result type.

QKeras's activations need nothing here: hls4ml turns quantized_relu into a relu and
quantized_bits into a linear activation whose result types carry the quantizer's width, rounding
and saturation (activations.py casts to them); binary, ternary and hard activations are
activations.py's.
"""

import re
from pathlib import Path

import numpy as np

from . import fixedpoint as fp
from ..fixedtype import FixedType
from .fixedpoint import Unsupported
from .layerdata import weights


def layer_fn(layer, cls, out_t: FixedType, project_dir: Path):
    """The step of one layer class of this module, or None when the class is not one of them."""
    if cls == "ApplyAlpha":
        return apply_alpha(layer, out_t, project_dir)
    if cls == "FixedPointQuantizer":
        return fixed_point_quantizer(layer, out_t, project_dir)
    return None


# ------------------------------------------------------------------ ApplyAlpha

def _weights_file(layer, key: str, project_dir: Path):
    var = layer.weights[key]
    path = project_dir / "firmware" / "weights" / f"{var.name}.txt"
    if not path.is_file():
        raise Unsupported(f"no {path.name}: the engine reads exponent weights from the project's text files")
    return var, path.read_text().strip()


def _exponent_scale(layer, project_dir: Path):
    """(sign, exponent) int arrays of a power-of-two scale, read as nnet::load_exponent_weights_from_txt
    reads "{1.0, -1}, {1.0, 0}, ...": each pair streamed into the struct's ap_uint<1> sign ("1.0" reads
    as 1, "-1.0" as 1 too: the low bit) and ap_int weight."""
    var, text = _weights_file(layer, "scale", project_dir)
    pairs = re.findall(r"\{\s*([^,{}]+?)\s*,\s*([^,{}]+?)\s*\}", text)
    if len(pairs) != var.data.size:
        raise Unsupported(f"{var.name}.txt holds {len(pairs)} scales, the layer has {var.data.size}")
    try:
        sign = np.array([int(float(s)) & 1 for s, _ in pairs], dtype=np.int64)
        exponent = np.array([int(e) for _, e in pairs], dtype=np.int64)
    except ValueError:
        raise Unsupported(f"{var.name}.txt is not a list of {{sign, exponent}} pairs") from None
    width = var.type.precision.width  # the struct's `weight` member: ap_int<width>
    low, high = -(1 << (width - 1)), (1 << (width - 1)) - 1
    if exponent.size and (exponent.min() < low or exponent.max() > high):
        raise Unsupported("an exponent outside its type")
    return sign, exponent, width


def apply_alpha(layer, out_t: FixedType, project_dir: Path):

    b, b_t = weights(layer, "bias", project_dir)
    b = b.reshape(-1)
    scale_type = type(layer.weights["scale"].type.precision).__name__
    if "Exponent" in scale_type or "Exponent" in type(layer.weights["scale"]).__name__:
        sign, exponent, exp_width = _exponent_scale(layer, project_dir)
        exponential = True
    else:
        s, s_t = weights(layer, "scale", project_dir)
        s = s.reshape(-1)
        exponential = False

    def per_channel(raw, values):
        """raw as (N, positions, channels) against one value per channel, or (N, n_in) per element."""
        flat = raw.reshape(len(raw), -1)
        if flat.shape[1] == len(values):
            return flat
        if flat.shape[1] % len(values):
            raise Unsupported(f"{flat.shape[1]} inputs for {len(values)} scales")
        return flat.reshape(len(raw), -1, len(values))

    def run(ins):
        raw, t = ins[0]
        if exponential:
            # weight_exponential: r_T = ap_fixed<2*(We+Wx), We+Wx>; y = (r_T)x << e (a right shift for
            # e < 0, dropping bits below r_T); -y cast back to r_T when the sign bit is 0.
            r_t = FixedType(2 * (exp_width + t.width), exp_width + t.width)
            x = per_channel(fp.convert(raw, t, r_t), sign)
            left = np.maximum(exponent, 0)
            right = np.maximum(-exponent, 0)
            y = fp.overflow(x << left, r_t) >> right
            y = np.where(sign == 1, y, fp.overflow(-y, r_t))
            frac, prod_frac = max(r_t.frac, b_t.frac), r_t.frac
        else:
            x = per_channel(raw, s)
            y = x * s  # product::mult: exact
            frac, prod_frac = max(t.frac + s_t.frac, b_t.frac), t.frac + s_t.frac
        total = (y << (frac - prod_frac)) + (b << (frac - b_t.frac))  # one bias per scale: the last axis
        return fp.cast(total, frac, out_t).reshape(raw.shape)
    return run


# ------------------------------------------------------------------ HGQ's FixedPointQuantizer

_ASSIGN = re.compile(r"out\[(\d+)\]\s*=\s*(?:0|(ap_u?fixed<[^>]*>)\(inp\[(\d+)\]\));")


def _mask_function(name: str, project_dir: Path) -> str:
    path = project_dir / "firmware" / "nnet_utils" / "nnet_code_gen.h"
    if not path.is_file():
        raise Unsupported("no firmware/nnet_utils/nnet_code_gen.h")
    m = re.search(r"void %s\s*\(\s*input_t \*inp, output_t \*out\)\s*\{(.*?)\n\}" % re.escape(name),
                  path.read_text(), re.S)
    if not m:
        raise Unsupported(f"no quantizer function {name} in nnet_code_gen.h")
    return m.group(1)


def by_type(types) -> list:
    """[(type, indices of the elements of that type)]: one cast per type, not per element."""
    groups = {}
    for i, t in enumerate(types):
        groups.setdefault(t, []).append(i)
    return [(t, np.array(idx)) for t, idx in groups.items()]


def fixed_point_quantizer(layer, out_t: FixedType, project_dir: Path):
    """Each element cast to its own type as the generated function does, then to the result type."""
    n = int(np.prod(layer.get_input_variable().shape))
    body = _mask_function(layer.name, project_dir)
    types = [None] * n  # None: the element is set to 0
    seen = 0
    for index, text, source in _ASSIGN.findall(body):
        i = int(index)
        if i >= n or (source and int(source) != i):
            raise Unsupported(f"quantizer element {i} of {n}")
        types[i] = fp.cpp_type(text) if text else None
        seen += 1
    if seen != n:
        raise Unsupported(f"the quantizer function sets {seen} of {n} elements")
    groups = by_type(types)

    def run(ins):
        raw, t = ins[0]
        flat = raw.reshape(len(raw), -1)
        out = np.zeros(flat.shape, np.int64)
        for each_t, idx in groups:
            if each_t is not None:
                out[:, idx] = fp.convert(fp.convert(flat[:, idx], t, each_t), each_t, out_t)
        return out.reshape(raw.shape)
    return run
