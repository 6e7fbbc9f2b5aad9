"""The distributed_arithmetic strategy (hls4ml 1.3.0 with da4ml, the keras3 lane) on the fast engine.

hls4ml writes such a Dense layer as an adder graph da4ml builds from the layer's float weights and
bias (backends/vivado/passes/distributed_arithmetic.py). Its arithmetic, which this module computes:
- each input element is first assigned to the type written at the top of the generated function
  (an HGQ quantizer before the layer is fused in there, a type per element, or `= 0` when it has
  no bits); without such lines the input is used as it is;
- products and sums are exact: no weight type, no accumulator type (hls4ml's documentation);
- the exact sum plus bias is assigned to the layer's result type (its rounding and overflow).
hls4ml deletes the layer's weights from the graph once the code is generated, so they are read
from a twin conversion of the same model and configuration with Latency in place of
distributed_arithmetic, where the same float data stays on the layer. Convolutions in this
strategy are not reproduced here (Unsupported: the C++ path runs them).
"""

import re

import numpy as np

from . import fixedpoint as fp, quantizers
from ..fixedtype import FixedType
from .fixedpoint import Unsupported

STRATEGY = "distributed_arithmetic"
_INPUT = re.compile(r"(ap_u?fixed<[^>]*>)\s+model_inp_q_(\d+)\s*=\s*(?:model_inp\[(\d+)\]|0)\s*;")
MAX_FRAC = 60  # fractional bits looked for in a float weight; a float32 has at most 149


def uses_da(layer) -> bool:
    return str(layer.get_attr("strategy") or "").lower() == STRATEGY


def twin_weights(hls_model) -> dict:
    """{layer name: (weight, bias or None)} as float64 arrays, from the same model converted with
    every distributed_arithmetic strategy replaced by Latency."""
    from ..design import latency_twin

    if "KerasModel" not in hls_model.config.config:
        raise Unsupported("distributed_arithmetic: the ModelGraph does not hold its Keras model")
    twin = latency_twin(hls_model)
    found = {}
    for layer in twin.get_layers():
        if "weight" in layer.weights:
            bias = layer.weights["bias"].data if "bias" in layer.weights else None
            found[layer.name] = (np.asarray(layer.weights["weight"].data, np.float64),
                                 None if bias is None else np.asarray(bias, np.float64).ravel())
    return found


def _exact(values: np.ndarray, what: str) -> tuple:
    """(integers, fractional bits): values = integers * 2**-frac exactly, with the fewest bits."""
    for frac in range(MAX_FRAC + 1):
        scaled = values * 2.0 ** frac
        if np.all(scaled == np.round(scaled)) and np.all(np.abs(scaled) < 2.0 ** 52):
            return scaled.astype(np.int64), frac
    raise Unsupported(f"distributed_arithmetic: the {what} are not on a grid of at most {MAX_FRAC} fractional bits")


def _input_types(layer, n_in: int):
    """The type each input element is assigned to in the generated code (None: set to 0), or None
    when the code assigns none (the input is used as it is)."""
    source = layer.get_attr("da_codegen")
    code = getattr(source, "code", source)
    if not isinstance(code, str):
        raise Unsupported("distributed_arithmetic: no generated code on the layer")
    found = _INPUT.findall(code)
    if not found:
        return None
    types = [None] * n_in
    for text, index, src in found:
        i = int(index)
        if i >= n_in or (src and int(src) != i):
            raise Unsupported(f"distributed_arithmetic: input element {i} of {n_in}")
        types[i] = fp.cpp_type(text) if src else None
    if len(found) != n_in:
        raise Unsupported(f"distributed_arithmetic: the code assigns {len(found)} of {n_in} inputs")
    return types


def layer_fn(layer, cls, out_t: FixedType, twin: dict):
    if cls != "Dense":
        raise Unsupported(f"distributed_arithmetic {cls}")
    if layer.name not in twin:
        raise Unsupported("distributed_arithmetic: no weights for the layer in the twin conversion")
    w, b = twin[layer.name]
    w = w.reshape(-1, w.shape[-1])
    n_in, n_out = w.shape
    w_int, w_frac = _exact(w, "weights")
    b_int, b_frac = _exact(b, "biases") if b is not None else (np.zeros(n_out, np.int64), 0)
    types = _input_types(layer, n_in)
    groups = quantizers.by_type(types) if types is not None else None

    def run(ins):
        raw, t = ins[0]
        a = raw.reshape(len(raw), -1)
        if a.shape[1] != n_in:
            raise Unsupported(f"input of {a.shape[1]} values for {n_in} weight rows")
        frac = t.frac
        if groups is not None:  # each element in its own type, then all in the finest fraction
            frac = max([each.frac for each, _ in groups if each is not None], default=0)
            q = np.zeros(a.shape, np.int64)
            for each, idx in groups:
                if each is not None:
                    q[:, idx] = fp.convert(a[:, idx], t, each) << (frac - each.frac)
            a = q
        # Exact in int64 only while the largest sum fits: else the C++ path.
        bound = float(np.abs(a).max(initial=0)) * float(np.abs(w_int).sum(axis=0).max(initial=0))
        total_frac = max(frac + w_frac, b_frac)
        bound = bound * 2.0 ** (total_frac - frac - w_frac) + float(np.abs(b_int).max(initial=0)) * 2.0 ** (
            total_frac - b_frac)
        if bound >= 2.0 ** 62:
            raise Unsupported("distributed_arithmetic: sums wider than 62 bits")
        sums = (a @ w_int) << (total_frac - frac - w_frac)
        sums += b_int << (total_frac - b_frac)
        return fp.convert(sums, FixedType(63, 63 - total_frac), out_t)
    return run
