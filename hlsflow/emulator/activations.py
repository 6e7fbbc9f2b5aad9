"""The activations hls4ml's Vivado backend writes, on whole batches, bit for bit (the fast engine's
activation layers; softmax's stable and latency tables stay in fastemu).

What each reads is what the C++ reads:
- which function: the nnet:: name hls4ml's function templates give the layer (Activation's
  activation in lower case, leaky_relu / thresholded_relu / elu for ParametrizedActivation,
  prelu, hard_sigmoid / hard_tanh);
- the lookup tables' sizes and types: the layer's config struct in firmware/parameters.h and
  the typedefs in defines.h; their contents: nnet_activation.h's float code, each operation in
  float32 or float64 as C++ types it, libm's functions called as the C++ calls them;
- io_parallel or io_stream from the same struct: the stream versions differ (selu's lambda,
  ternary_tanh's thresholds, softmax legacy's table size);
- the parameters: the literal hls4ml writes into the call (alpha, theta) in the layer's
  param_t, PReLU's alphas from its weights file, hard_sigmoid's slope and shift as
  parameters.h defines them.
A table index is the C++'s `int index = data * table_size / 16 + ...`: ap_fixed products are
exact, the division and the conversion to int truncate towards zero.
hls4ml's Keras 2 converter writes a ReLU layer as plain relu, dropping max_value, threshold and
negative_slope: the design does not clip at 6, and neither does this engine.
"""

import ctypes
import ctypes.util
import functools
import re
from pathlib import Path

import numpy as np

from . import fixedpoint as fp
from ..fixedtype import FixedType
from .fixedpoint import Unsupported

CLASSES = ("Activation", "ReLU", "ParametrizedActivation", "PReLU", "HardActivation", "TernaryTanh")
INT = FixedType(32, 32)  # a C++ int assigned to an ap_fixed converts as ap_int<32>
SELU_LAMBDA = 1.0507009873554804934193349852946
SELU_ALPHA = 1.6732632423543772848170429916717
# Lookup tables indexed by data * size / span + offset: the span and the offset's numerator.
CENTRED = {"sigmoid": (16, 8), "softplus": (16, 8), "softsign": (16, 8), "tanh": (8, 4)}
NEGATIVE = ("elu", "selu")  # tables over [-8, 0], indexed by data * size / -8
COMPUTED = ("linear", "relu", "relu6", "relu1", "leaky_relu", "thresholded_relu", "prelu", "hard_sigmoid",
            "hard_tanh", "binary_tanh", "ternary_tanh")


def build(layer, out_t: FixedType, project_dir: Path, types: dict, weights):
    """The run function of an activation layer of a written project (`weights` reads a weights file
    as fastemu does); Unsupported names what it does not reproduce."""
    in_t = fp.hls4ml_type(layer.get_input_variable().type.precision)
    kind = function_name(layer)
    if kind not in COMPUTED and kind not in CENTRED and kind not in NEGATIVE:
        raise Unsupported(f"activation {kind}")
    if kind in ("linear", "relu"):  # no config needed (and the relu kernel skips the checks below)
        return make(kind, in_t, out_t)
    body = config_struct(project_dir, layer.get_attr("index"))
    consts, typedefs = _struct_fields(body)
    stream = consts.get("io_type", "") == "nnet::io_stream"

    def typed(name):
        text = typedefs.get(name)
        if text is None:
            raise Unsupported(f"no {name} in the layer's config struct")
        return types[text] if text in types else fp.cpp_type(text)

    options = {"stream": stream}
    if kind in CENTRED or kind in NEGATIVE:
        options.update(table_t=typed("table_t"), table_size=int(consts["table_size"]))
    if kind in ("leaky_relu", "thresholded_relu", "elu"):
        param_t = typed("param_t")
        options.update(param=fp.from_float(float(layer.get_attr("activ_param", 1.0)), param_t), param_t=param_t)
    elif kind == "prelu":
        alpha, param_t = weights(layer, "param", project_dir)
        options.update(param=alpha.reshape(-1), param_t=param_t)
    elif kind in ("hard_sigmoid", "hard_tanh"):
        text = (project_dir / "firmware" / "parameters.h").read_text()
        for name in ("slope", "shift"):
            m = re.search(r"const (\w+) \w+_config%s::%s = ([^;]+);" % (layer.get_attr("index"), name), text)
            if not m:
                raise Unsupported(f"no {name} of the layer in parameters.h")
            t = types[m.group(1)] if m.group(1) in types else fp.hls4ml_type(layer.get_attr(f"{name}_t").precision)
            options[name] = (int(fp.from_float(float(m.group(2).rstrip("f")), t)), t)
    elif kind == "binary_tanh":  # the C++ asks std::is_same<res_T, ap_uint<1>>: the typedef's own text
        name = layer.get_output_variable().type.name
        defines = (project_dir / "firmware" / "defines.h").read_text()
        m = re.search(r"typedef\s+([^;]+?)\s+%s\s*;" % re.escape(name), defines)
        options["uint1"] = bool(m) and m.group(1).replace(" ", "") == "ap_uint<1>"
    return make(kind, in_t, out_t, **options)


def function_name(layer) -> str:
    """The nnet:: function hls4ml's Vivado templates call for the layer."""
    act = str(layer.get_attr("activation") or "linear").lower()
    if layer.class_name == "ReLU":
        return "relu"
    if layer.class_name == "ParametrizedActivation":
        return {"leakyrelu": "leaky_relu", "thresholdedrelu": "thresholded_relu"}.get(act, act)
    return act


def config_struct(project_dir: Path, index) -> str:
    """The body of the layer's `struct <name>_config<index>` in parameters.h."""
    path = project_dir / "firmware" / "parameters.h"
    if not path.is_file():
        raise Unsupported("no firmware/parameters.h")
    m = re.search(r"struct \w+_config%s\b[^{]*\{(.*?)\n\};" % index, path.read_text(), re.S)
    if not m:
        raise Unsupported(f"no config struct {index} in parameters.h")
    return m.group(1)


def _struct_fields(body: str):
    consts = dict(re.findall(r"static (?:const|constexpr) [\w:]+ (\w+) = ([^;]+);", body))
    typedefs = {name: text.strip() for text, name in re.findall(r"typedef ([^;]+?) (\w+);", body)}
    return consts, typedefs


def make(kind: str, in_t: FixedType, out_t: FixedType, stream=False, table_t=None, table_size=None, param=None,
         param_t=None, slope=None, shift=None, uint1=False):
    """fn(raw input) -> raw output of the nnet:: function `kind` (io_stream's version with stream).
    param: raw alpha/theta in param_t (PReLU: one per input value); slope, shift: (raw, type);
    uint1: binary_tanh's result type is ap_uint<1> itself (its own branch in the C++)."""
    if kind == "linear":
        return lambda ins: fp.convert(ins[0][0], ins[0][1], out_t)
    if kind == "relu":
        return lambda ins: fp.convert(relu(ins[0][0]), ins[0][1], out_t)
    if kind in ("relu6", "relu1"):
        if stream:
            raise Unsupported(f"{kind} in io_stream (hls4ml has no stream version)")
        return _relu_max(6 if kind == "relu6" else 1, out_t)
    if kind in CENTRED:
        return _centred(kind, in_t, out_t, table_t, table_size)
    if kind in NEGATIVE:
        return _negative(kind, in_t, out_t, table_t, table_size, param, param_t, stream)
    if kind == "leaky_relu":
        _fits_product(in_t, param_t)
        return _unary(lambda x: np.where(x > 0, fp.convert(x, in_t, out_t),
                                         fp.cast(x * param, in_t.frac + param_t.frac, out_t)))
    if kind == "thresholded_relu":
        return _unary(lambda x: np.where(_greater(x, in_t.frac, param, param_t.frac), fp.convert(x, in_t, out_t), 0))
    if kind == "prelu":
        _fits_product(in_t, param_t)

        def run(ins):
            x = ins[0][0]
            flat = x.reshape(len(x), -1)
            if flat.shape[1] != param.size:
                raise Unsupported(f"{flat.shape[1]} inputs for {param.size} PReLU alphas")
            out = np.where(flat > 0, fp.convert(flat, in_t, out_t),
                           fp.cast(flat * param, in_t.frac + param_t.frac, out_t))
            return out.reshape(x.shape)
        return run
    if kind in ("hard_sigmoid", "hard_tanh"):
        return _hard(kind == "hard_tanh", in_t, out_t, slope, shift)
    if kind == "binary_tanh":
        plus, minus = (_from_int(1, out_t), 0) if uint1 else (_from_int(1, out_t), _from_int(-1, out_t))
        return _unary(lambda x: np.where(x >= 0, plus, minus))
    if kind == "ternary_tanh":
        return _ternary(in_t, out_t, stream)
    raise Unsupported(f"activation {kind}")


def _unary(fn):
    return lambda ins: fn(ins[0][0])


def relu(raw: np.ndarray) -> np.ndarray:
    from . import kernels

    flat = np.ascontiguousarray(raw).reshape(-1)
    out = np.empty_like(flat)
    kernels.relu(flat, out)
    return out.reshape(raw.shape)


def _from_int(value: int, t: FixedType) -> np.int64:
    """A C++ int constant assigned to type t."""
    return np.int64(fp.convert(np.array([value], np.int64), INT, t)[0])


def _greater(raw, frac: int, other, other_frac: int):
    """raw * 2**-frac > other * 2**-other_frac, exactly."""
    common = max(frac, other_frac, 0)
    return (np.asarray(raw) << (common - frac)) > (np.asarray(other, dtype=np.int64) << (common - other_frac))


def _fits_product(a: FixedType, b: FixedType):
    if a.width + b.width > 62:
        raise Unsupported(f"products of {a} and {b} wider than 62 bits")


def _relu_max(top: int, out_t: FixedType):
    top_out = _from_int(top, out_t)

    def run(ins):
        x, t = ins[0]
        out = np.where(x < 0, 0, fp.convert(x, t, out_t))
        return np.where(_greater(x, t.frac, top, 0), top_out, out)
    return run


# ------------------------------------------------------------------ the table index

def _trunc_div(num: np.ndarray, den: int) -> np.ndarray:
    """C's integer division: the quotient truncated towards zero."""
    q = np.abs(num) // abs(den)
    return np.where((num < 0) != (den < 0), -q, q)


def _check_index_range(t: FixedType, mul: int, div: int, offset: int = 0):
    """The index arithmetic below is exact in int64 and never wraps the C++ int for t's values."""
    peak = max(-t.min_raw, t.max_raw)
    if peak * mul << max(-t.frac, 0) >= 2 ** 62 or (peak * mul >> max(t.frac, 0)) // abs(div) + offset >= 2 ** 31:
        raise Unsupported(f"inputs of {t} overflow the C++ int table index")


def _scaled_int(raw: np.ndarray, t: FixedType, mul: int, div: int) -> np.ndarray:
    """`int(x * mul / div)` for x of type t: ap_fixed's product is exact, its division by an int
    truncates the raw quotient towards zero, and the conversion to int truncates the rest."""
    n = np.asarray(raw, dtype=np.int64) * mul
    if t.frac < 0:
        return _trunc_div(n, div) << -t.frac
    # two truncations towards zero make one: trunc(trunc(n / div) / 2**frac) = trunc(n / (div * 2**frac))
    den = abs(div) << t.frac
    if den & (den - 1) == 0:  # a power of two (the usual table sizes): a shift, rounded up below zero
        k = den.bit_length() - 1
        q = (n + ((n >> 63) & (den - 1))) >> k
        return -q if div < 0 else q
    return _trunc_div(n, -den if div < 0 else den)


def _centred(kind, in_t, out_t, table_t, size):
    span, centre = CENTRED[kind]
    offset = centre * size // span  # unsigned C++ arithmetic, as written
    _check_index_range(in_t, size, span, offset)
    table = fp.convert(_table(kind, size, table_t), table_t, out_t)  # (res_T) table[index]

    def run(ins):
        raw, t = ins[0]
        index = np.clip(_scaled_int(raw, t, size, span) + offset, 0, size - 1)
        return table[index]
    return run


def _negative(kind, in_t, out_t, table_t, size, param, param_t, stream):
    _check_index_range(in_t, size, 8)
    table = _table(kind, size, table_t)
    if kind == "elu":
        _fits_product(param_t, table_t)
        negative = fp.cast(table * param, table_t.frac + param_t.frac, out_t)  # alpha * elu_table[index]
        positive = lambda x: fp.convert(x, in_t, out_t)  # noqa: E731
    else:
        negative = fp.convert(table, table_t, out_t)
        if stream:  # lambda cast to the input's own type
            lam, lam_t = fp.from_float(SELU_LAMBDA, in_t), in_t
        else:  # nnet_activation.h's `static const ap_ufixed<16, 1> lambda`
            lam_t = FixedType(16, 1, False)
            lam = fp.from_float(SELU_LAMBDA, lam_t)
        _fits_product(in_t, lam_t)
        positive = lambda x: fp.cast(x * lam, in_t.frac + lam_t.frac, out_t)  # noqa: E731

    def run(ins):
        raw, t = ins[0]
        index = np.minimum(_scaled_int(raw, t, size, -8), size - 1)  # only negative inputs use it: index >= 0
        return np.where(raw >= 0, positive(raw), negative[np.where(raw >= 0, 0, index)])
    return run


# ------------------------------------------------------------------ tables, as nnet_activation.h fills them

def _libm(name: str, double=False):
    libm = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
    f = getattr(libm, name)
    c = ctypes.c_double if double else ctypes.c_float
    f.restype, f.argtypes = c, [c]
    dtype = np.float64 if double else np.float32
    return lambda x: np.array([f(float(v)) for v in np.asarray(x, dtype)], dtype=dtype)


def table_floats(kind: str, size: int) -> np.ndarray:
    """The values nnet_activation.h's init_<kind>_table assigns to table_t, in the C++'s float
    type (float32, or float64 where the expression is double)."""
    n = np.float64(np.float32(size))
    i = np.arange(size, dtype=np.float64)
    if kind in CENTRED:
        # float in_val = 2 * 8.0 * (ii - float(N_TABLE) / 2.0) / float(N_TABLE): double, then float
        span = np.float64(CENTRED[kind][0])
        x = (span * (i - n / 2.0) / n).astype(np.float32)
        if kind == "sigmoid":  # 1.0 / (1 + std::exp(-input)): float sum, double quotient, float result
            s = np.float32(1) + _libm("expf")(-x)
            return (1.0 / s.astype(np.float64)).astype(np.float32)
        if kind == "softplus":  # std::log(std::exp(input) + 1.): double log of a float exp
            return _libm("log", double=True)(_libm("expf")(x).astype(np.float64) + 1.0).astype(np.float32)
        if kind == "softsign":  # input / (std::abs(input) + 1.)
            x64 = x.astype(np.float64)
            return (x64 / (np.abs(x64) + 1.0)).astype(np.float32)
        return _libm("tanhf")(x)  # tanh(float): <math.h>'s float overload
    if kind in NEGATIVE:
        x = (-8.0 * i / n).astype(np.float32)  # float in_val = -8.0 * ii / float(N_TABLE)
        e = _libm("expf")(x).astype(np.float64) - 1.0  # std::exp(input) - 1.
        if kind == "selu":
            e = SELU_LAMBDA * (SELU_ALPHA * e)
        return e.astype(np.float32)
    raise Unsupported(f"no table for {kind}")


@functools.lru_cache(maxsize=64)
def _table(kind: str, size: int, table_t: FixedType) -> np.ndarray:
    if size < 1:
        raise Unsupported(f"a table of {size} entries")
    return fp.from_float(table_floats(kind, size), table_t)


# ------------------------------------------------------------------ hard_sigmoid, hard_tanh, ternary_tanh

def _plus_type(a: FixedType, b: FixedType) -> FixedType:
    """The type ap_fixed gives a + b (its RType::plus: every bit of both, one more integer bit)."""
    integer = max(a.integer + (b.signed and not a.signed), b.integer + (a.signed and not b.signed)) + 1
    return FixedType(integer + max(a.frac, b.frac), integer, a.signed or b.signed)


def _hard(tanh: bool, in_t: FixedType, out_t: FixedType, slope, shift):
    (slope_raw, slope_t), (shift_raw, shift_t) = slope, shift
    prod_t = FixedType(slope_t.width + in_t.width, slope_t.integer + in_t.integer, slope_t.signed or in_t.signed)
    sum_t = _plus_type(prod_t, shift_t)  # `auto datareg = slope * data + shift`: exact
    if sum_t.width > 60:
        raise Unsupported(f"hard activation sums of {sum_t}")
    frac = sum_t.frac
    one = fp.overflow(np.int64(1) << frac, sum_t) if frac >= 0 else None  # `datareg = 1` in datareg's type
    if one is None:
        raise Unsupported(f"hard activation sums of {sum_t}")

    def run(ins):
        x, t = ins[0]
        s = (x * slope_raw << (frac - t.frac - slope_t.frac)) + (np.int64(shift_raw) << (frac - shift_t.frac))
        s = np.where(s > (np.int64(1) << frac), one, np.where(s < 0, 0, s))
        if tanh:  # 2 * sigmoid - 1: exact
            return fp.cast(2 * s - (np.int64(1) << frac), frac, out_t)
        return fp.cast(s, frac, out_t)
    return run


def _ternary(in_t: FixedType, out_t: FixedType, stream: bool):
    plus, zero, minus = _from_int(1, out_t), _from_int(0, out_t), _from_int(-1, out_t)

    def run(ins):
        x, t = ins[0]
        if not stream:  # datareg = 2 * data[ii], assigned to data_T
            x = fp.overflow(x << 1, t)
        above = _greater(x, t.frac, 1, 0)
        at_or_below = ~_greater(x, t.frac, -1, 0)
        return np.where(above, plus, np.where(at_or_below, minus, zero))
    return run


# ------------------------------------------------------------------ softmax: legacy and argmax

def activ_config_defaults(project_dir: Path):
    """(table_size, table_t) of nnet::activ_config in the project's nnet_activation.h: the softmax
    config inherits them, and the legacy softmax reads them."""
    path = project_dir / "firmware" / "nnet_utils" / "nnet_activation.h"
    m = re.search(r"struct activ_config \{(.*?)\n\};", path.read_text(), re.S) if path.is_file() else None
    if not m:
        raise Unsupported("no nnet::activ_config in the project's nnet_activation.h")
    consts, typedefs = _struct_fields(m.group(1))
    return int(consts["table_size"]), fp.cpp_type(typedefs["table_t"].replace(" ", ""))


def softmax_other(implementation: str, consts: dict, in_t: FixedType, out_t: FixedType, project_dir: Path):
    """softmax_legacy and softmax_argmax over each sample's values."""
    if implementation == "argmax":
        one = _from_int(1, out_t)

        def argmax(ins):
            x = ins[0][0].reshape(len(ins[0][0]), -1)
            out = np.zeros_like(x)
            out[np.arange(len(x)), np.argmax(x, axis=1)] = one  # the first of equal maxima, as `>` keeps it
            return out
        return argmax
    if implementation != "legacy":
        raise Unsupported(f"softmax implementation {implementation or '?'}")
    base_size, table_t = activ_config_defaults(project_dir)
    stream = consts.get("io_type", "") == "nnet::io_stream"
    # io_stream's version sizes both tables by the inherited table_size, io_parallel's by its own
    exp_size = base_size if stream else int(consts["exp_table_size"])
    inv_size = base_size if stream else int(consts["inv_table_size"])
    diff_t = FixedType(in_t.width + 1, in_t.integer + 1, True)  # data[j] - data[i]: exact
    _check_index_range(diff_t, exp_size, 16, 8 * exp_size // 16)
    _check_index_range(table_t, inv_size, 64)
    exp_table = fp.from_float(_legacy_exp_floats(exp_size), table_t)
    inv_table = fp.convert(fp.from_float(_legacy_inv_floats(inv_size), table_t), table_t, out_t)
    one = _from_int(1, table_t)

    def legacy(ins):
        raw, t = ins[0]
        x = raw.reshape(len(raw), -1)
        diff = x[:, None, :] - x[:, :, None]  # [n, i, j] = data[j] - data[i]
        index = np.clip(_scaled_int(diff, t, exp_size, 16) + 8 * exp_size // 16, 0, exp_size - 1)
        terms = exp_table[index]
        n = x.shape[1]
        terms[:, np.arange(n), np.arange(n)] = one  # exp_diff_res = 1 when i == j
        sums = np.zeros(terms.shape[:2], np.int64)
        for j in range(n):  # exp_res[i] += exp_diff_res, in the C++'s order (table_t may saturate)
            sums = fp.overflow(sums + terms[:, :, j], table_t)
        inv_index = np.clip(_scaled_int(sums, table_t, inv_size, 64), 0, inv_size - 1)
        return inv_table[inv_index].reshape(raw.shape)
    return legacy


def _legacy_exp_floats(size: int) -> np.ndarray:
    n = np.float64(np.float32(size))
    x = (16.0 * (np.arange(size, dtype=np.float64) - n / 2.0) / n).astype(np.float32)
    return _libm("expf")(x)


def _legacy_inv_floats(size: int) -> np.ndarray:
    # float in_val = 64.0 * ii / float(N_TABLE); table = 1.0 / in_val, a double, or 0
    x = (64.0 * np.arange(size, dtype=np.float64) / np.float64(np.float32(size))).astype(np.float32).astype(np.float64)
    with np.errstate(divide="ignore"):
        return np.where(x > 0, 1.0 / x, 0.0)
