"""Softmax as the written project computes it: hls4ml's exp and inverse tables, their sizes and
types read from the project (its softmax config struct, defines.h), indexed by each value's top
bits; its legacy and argmax implementations are activations.py's."""

import ctypes
import ctypes.util
import re
from pathlib import Path

import numpy as np

from . import activations, fixedpoint as fp
from ..fixedtype import FixedType
from .fixedpoint import Unsupported

def layer_fn(layer, out_t: FixedType, project_dir: Path, types: dict):
    body = activations.config_struct(project_dir, layer.get_attr("index"))
    consts = dict(re.findall(r"static (?:const|constexpr) [\w:]+ (\w+) = ([^;]+);", body))
    typedefs = {name: text.strip() for text, name in re.findall(r"typedef ([^;]+?) (\w+);", body)}
    implementation = consts.get("implementation", "").split("::")[-1]
    if int(consts.get("n_outer", 1)) != 1 or int(consts.get("n_inner", 1)) != 1:
        raise Unsupported("softmax over an inner axis")
    if implementation not in ("stable", "latency"):  # legacy and argmax: activations.py
        in_t = fp.hls4ml_type(layer.get_input_variable().type.precision)
        return activations.softmax_other(implementation, consts, in_t, out_t, project_dir)

    def typed(name):
        text = typedefs.get(name)
        if text is None:
            raise Unsupported(f"no {name} in the softmax config")
        if text in types:
            return types[text]
        return fp.cpp_type(text)

    exp_t, inv_t, acc_t, inv_inp_t = typed("exp_table_t"), typed("inv_table_t"), typed("accum_t"), typed("inv_inp_t")
    exp_size, inv_size = int(consts["exp_table_size"]), int(consts["inv_table_size"])
    exp_scale = np.float32(float(consts.get("exp_scale", "1.0").rstrip("f")))
    stable = implementation == "stable"
    index_t = typed("inp_norm_t") if stable else fp.hls4ml_type(layer.get_input_variable().type.precision)
    exp_table = fp.from_float(_exp_table(index_t, exp_size, exp_scale, negative=stable), exp_t)
    inv_table = fp.from_float(_inv_table(inv_inp_t, inv_size), inv_t)

    def run(ins):
        raw, t = ins[0]
        x = raw.reshape(len(raw), -1)
        if stable:
            d = fp.cast(x.max(axis=1, keepdims=True) - x, t.frac, index_t)  # x_max - x_i in inp_norm_t
        else:
            d = x
        exp_res = fp.convert(exp_table[_table_index(d, index_t, exp_size)], exp_t, acc_t)
        exp_sum = fp.convert(_tree_sum(exp_res, acc_t), acc_t, inv_inp_t)
        inv = inv_table[_table_index(exp_sum, inv_inp_t, inv_size)]
        return fp.cast(exp_res * inv[:, None], acc_t.frac + inv_t.frac, out_t)
    return run


def _index_bits(size: int, t: FixedType) -> int:
    n = int(np.ceil(np.log2(size)))
    if n > t.width:
        raise Unsupported(f"a table of {size} entries indexed by {t}")
    return n


def _table_index(raw, t: FixedType, size: int):
    """The top bits of each value's bit pattern (hls4ml's softmax_idx_from_real_val)."""
    n = _index_bits(size, t)
    return (raw >> (t.width - n)) & ((1 << n) - 1)


def _table_inputs(t: FixedType, size: int) -> np.ndarray:
    """float32 values whose top bits are each index (hls4ml's softmax_real_val_from_idx)."""
    n = _index_bits(size, t)
    raw = np.arange(size, dtype=np.int64) << (t.width - n)
    if t.signed:
        raw = np.where(raw >= (1 << (t.width - 1)), raw - (1 << t.width), raw)
    return fp.to_float(raw, t.frac).astype(np.float32)


def _expf():
    libm = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
    f = libm.expf
    f.restype, f.argtypes = ctypes.c_float, [ctypes.c_float]
    return f


def _exp_table(t: FixedType, size: int, scale: np.float32, negative: bool) -> np.ndarray:
    # std::exp(float) is the C library's expf, called here the same way, value for value
    x = _table_inputs(t, size) * scale
    if negative:
        x = -x
    expf = _expf()
    return np.array([expf(float(v)) for v in x], dtype=np.float32)


def _inv_table(t: FixedType, size: int) -> np.ndarray:
    x = _table_inputs(t, size)
    with np.errstate(divide="ignore"):
        return np.float32(1) / x  # float division, as `1 / x` with a float x


def _tree_sum(values: np.ndarray, t: FixedType) -> np.ndarray:
    """hls4ml's reduce<T, N, Op_add>: an adder tree whose every node is assigned to T."""
    n = values.shape[1]
    if n == 1:
        return values[:, 0]
    if n == 2:
        return fp.overflow(values[:, 0] + values[:, 1], t)
    left = 1 << int(np.floor(np.log2(n - 1)))
    return fp.overflow(_tree_sum(values[:, :left], t) + _tree_sum(values[:, left:], t), t)
