"""ap_fixed arithmetic on whole arrays, exactly as Xilinx's ap_types do it.

A fixed-point array is an int64 array of raw values: the value is raw * 2**-frac. Casting
between types is a shift with the target's rounding mode, then its overflow mode. The
multiply-accumulate of Dense and Conv layers runs in numba kernels (integer arithmetic, every
core) or, when no product loses bits, as a float64 matrix product that is exact below 2**53.
"""

import numpy as np

from .. import fixedtype
from ..fixedtype import FixedType, NotFixedPoint

# The modes this engine reproduces: all of hls4ml's, numbered for the kernels in this order.
ROUNDING = fixedtype.ROUNDING
OVERFLOW = fixedtype.OVERFLOW
EXACT_FLOAT = 2 ** 53  # float64 holds every integer below this exactly


class Unsupported(Exception):
    """A type or operation the fast path does not reproduce (the C++ path then runs instead)."""


def hls4ml_type(precision) -> FixedType:
    """The type of an hls4ml precision object, if this engine reproduces it; else Unsupported."""
    try:
        return _reproducible(fixedtype.from_hls4ml(precision), precision)
    except NotFixedPoint as exc:
        raise Unsupported(f"type {precision}: {exc}") from None


def cpp_type(text: str) -> FixedType:
    """The type of C++ text such as 'ap_fixed<18,8,AP_RND,AP_SAT>', if this engine reproduces it; else Unsupported."""
    try:
        return _reproducible(fixedtype.parse(text), f"'{text}'")
    except NotFixedPoint as exc:
        raise Unsupported(f"type '{text}': {exc}") from None


def _reproducible(t: FixedType, source) -> FixedType:
    if t.saturation_bits:
        raise Unsupported(f"type {source}: saturation bits")
    if t.rounding not in ROUNDING or t.overflow not in OVERFLOW:  # should fixedtype learn more modes
        raise Unsupported(f"type {source}: modes {t.rounding}, {t.overflow}")
    if t.width > 62:  # raw values and their shifts must fit int64
        raise Unsupported(f"type {source}: wider than 62 bits")
    return t


def shift_round(raw: np.ndarray, shift: int, rounding: str) -> np.ndarray:
    """raw * 2**-shift rounded to an integer by the mode (shift <= 0 is exact)."""
    raw = np.asarray(raw, dtype=np.int64)
    if shift <= 0:
        return raw << -shift
    half = np.int64(1) << (shift - 1)
    if rounding == "TRN":  # towards minus infinity
        return raw >> shift
    if rounding == "RND":  # half up
        return (raw + half) >> shift
    if rounding == "RND_MIN_INF":  # half down
        return (raw + half - 1) >> shift
    if rounding == "RND_CONV":  # half to even
        q = raw >> shift
        r = raw - (q << shift)
        return q + ((r > half) | ((r == half) & (q & 1).astype(bool)))
    mag, neg = np.abs(raw), raw < 0
    if rounding == "TRN_ZERO":
        q = mag >> shift
    elif rounding == "RND_ZERO":  # half towards zero
        q = (mag + half - 1) >> shift
    elif rounding == "RND_INF":  # half away from zero
        q = (mag + half) >> shift
    else:
        raise Unsupported(f"rounding mode {rounding}")
    return np.where(neg, -q, q)


def overflow(raw: np.ndarray, t: FixedType) -> np.ndarray:
    """raw brought into t's range by its overflow mode."""
    if t.overflow == "WRAP":
        if t.signed:  # keep the low `width` bits and sign-extend: two shifts
            return (np.asarray(raw, dtype=np.int64) << (64 - t.width)) >> (64 - t.width)
        return raw & np.int64((1 << t.width) - 1)
    lo, hi = t.min_raw, t.max_raw
    if t.overflow == "SAT_SYM" and t.signed:
        lo = -hi
    if t.overflow == "SAT_ZERO":
        return np.where((raw < lo) | (raw > hi), 0, raw)
    return np.clip(raw, lo, hi)


def fits(src: FixedType, t: FixedType) -> bool:
    """Whether every value of src, cast to t, is already in t's range (no overflow step needed)."""
    if src.signed and not t.signed:
        return False
    if t.overflow == "SAT_SYM" and t.signed:
        return False  # the most negative value becomes -max even when it is in range
    if src.frac > t.frac and t.rounding != "TRN":
        return False  # rounding up may step past the largest value
    return src.integer - src.signed <= t.integer - t.signed


def cast(raw: np.ndarray, frac: int, t: FixedType) -> np.ndarray:
    """A value of `frac` fractional bits assigned to type t (ap_fixed's operator=)."""
    return overflow(shift_round(raw, frac - t.frac, t.rounding), t)


def convert(raw: np.ndarray, src: FixedType, t: FixedType) -> np.ndarray:
    """A value of type src assigned to type t: a cast that skips what cannot change a value."""
    if src == t:
        return raw
    rounded = shift_round(raw, src.frac - t.frac, t.rounding)
    return rounded if fits(src, t) else overflow(rounded, t)


def from_float(x, t: FixedType) -> np.ndarray:
    """Floats (float32 or float64) assigned to type t: the exact value, rounded and overflowed by t's modes.
    A large array (the engine's input) in the usual modes runs in one compiled pass instead of numpy's six."""
    if (isinstance(x, np.ndarray) and x.size >= 4096 and x.dtype in (np.float32, np.float64)
            and t.rounding in ("TRN", "RND", "RND_CONV")):
        from . import kernels

        out, bad = np.empty(x.size, np.int64), np.zeros(1, np.int64)
        kernels.from_float(np.ascontiguousarray(x).reshape(-1), 2.0 ** t.frac, ROUNDING.index(t.rounding), t.width,
                           t.signed, OVERFLOW.index(t.overflow), out, bad)
        if not bad[0]:
            return out.reshape(x.shape)
    return from_float_numpy(x, t)


def from_float_numpy(x, t: FixedType) -> np.ndarray:
    """from_float in numpy, for any size and mode."""
    v = np.asarray(x, dtype=np.float64) * (2.0 ** t.frac)  # a power of two: exact
    if t.rounding == "TRN":
        q = np.floor(v)
    elif t.rounding == "RND":
        q = np.floor(v + 0.5)
    elif t.rounding == "RND_MIN_INF":
        q = np.ceil(v - 0.5)
    elif t.rounding == "RND_CONV":
        q = np.rint(v)
    elif t.rounding == "TRN_ZERO":
        q = np.trunc(v)
    elif t.rounding == "RND_ZERO":
        q = np.sign(v) * np.ceil(np.abs(v) - 0.5)
    elif t.rounding == "RND_INF":
        q = np.sign(v) * np.floor(np.abs(v) + 0.5)
    else:
        raise Unsupported(f"rounding mode {t.rounding}")
    if t.overflow != "WRAP":  # infinities and huge values saturate before the integer conversion
        q = np.clip(np.nan_to_num(q, posinf=2.0 ** 62, neginf=-2.0 ** 62), -2.0 ** 62, 2.0 ** 62)
    elif not np.all(np.isfinite(q)) or np.any(np.abs(q) >= 2.0 ** 62):
        raise Unsupported("a float too large to wrap")
    return overflow(q.astype(np.int64), t)


def to_float(raw: np.ndarray, frac: int) -> np.ndarray:
    return np.asarray(raw, dtype=np.float64) * (2.0 ** -frac)


# ------------------------------------------------------------------ multiply-accumulate

def _mac_plan(a_t: FixedType, w: np.ndarray, w_frac: int, n_in: int, acc: FixedType) -> dict:
    """How bias + sum_i cast<acc>(a_i * w_i) is computed exactly: the shift and rounding offset of
    each product, and which kernel may run it, from the types and the weights alone."""
    a_max = max(-a_t.min_raw, a_t.max_raw)  # from the type: no pass over the data
    w_max = int(np.abs(w).max(initial=0))
    peak = a_max * w_max  # Python ints: no overflow
    if acc.overflow != "WRAP":
        raise Unsupported(f"accumulator {acc}: saturation makes the sum depend on its order")
    shift = a_t.frac + w_frac - acc.frac
    if shift > 0 and acc.rounding not in ("TRN", "RND", "RND_MIN_INF"):
        raise Unsupported(f"accumulator {acc}: rounding mode {acc.rounding} on products")
    offset = 0 if shift <= 0 or acc.rounding == "TRN" else (1 << (shift - 1)) - (acc.rounding == "RND_MIN_INF")
    narrow = acc.width <= 32 and a_max < 2 ** 31 and w_max < 2 ** 31
    # Products of 62 bits and more wrap in int64, and the sums wrap in acc anyway: acc's bits of
    # floor((product + offset) / 2**shift) depend only on the product's low shift + acc.width bits,
    # which int64's wrap-around keeps while that is at most 64. Beyond, Python's integers.
    exact = peak + offset >= 2 ** 62 and max(shift, 0) + acc.width > 64
    return {"shift": shift, "offset": offset, "narrow": narrow, "float": shift <= 0 and peak * n_in < EXACT_FLOAT,
            "dot32": narrow and peak + offset < 2 ** 31, "exact": exact}  # dot32: products, sums in int32 lanes


def _requant(src: FixedType, t: FixedType) -> tuple:
    """The kernels' (on, shift, rounding, width, signed, overflow) cast of src to t, fused into
    dot32's pass; off where the types are equal or the int64 shifts would not be exact."""
    codes = None if t is None or t == src else elementwise_codes(src.frac - t.frac, t)
    return (False, 0, 0, 1, False, 0) if codes is None else (True, *codes)


def _weights32(w: np.ndarray) -> tuple:
    """w (n_in, n_out) as dot32 reads it: transposed and as is, both C-contiguous int32."""
    return np.ascontiguousarray(w.T, dtype=np.int32), np.ascontiguousarray(w, dtype=np.int32)


def mac(a: np.ndarray, a_t: FixedType, w: np.ndarray, w_frac: int, bias: np.ndarray,
        acc: FixedType, out_t: FixedType = None) -> np.ndarray:
    """acc-typed sums bias + sum_i cast<acc>(a[:, i] * w[i, :]), as hls4ml's dense kernels compute
    them: each product is cast to the accumulator type, then added with wrap-around; with out_t,
    the sums then assigned to out_t (convert(..., acc, out_t), in the same pass where it can).
    a: (N, n_in) raw, w: (n_in, n_out) raw, bias: (n_out,) raw already in acc's fraction."""
    plan = _mac_plan(a_t, w, w_frac, a.shape[1], acc)
    shift, offset = plan["shift"], plan["offset"]
    if plan["exact"]:
        return _assign(_mac_python(a, w, bias, shift, offset, acc), acc, out_t)
    if plan["float"]:
        # No product loses a bit: one exact float64 matrix product (BLAS, every core).
        sums = (a.astype(np.float64) @ w.astype(np.float64)).astype(np.int64)
        return _assign(overflow((sums << -shift) + bias, acc), acc, out_t)
    out = np.empty((a.shape[0], w.shape[1]), dtype=np.int64)
    from . import kernels

    # shift < 0 only when the float path's bound failed: the products are exact, their sum is
    # shifted into acc's fraction and the bias, already in it, is added after the shift.
    start = bias if shift >= 0 else np.zeros_like(bias)
    if plan["dot32"]:  # products fit 32 bits too: every step in 32-bit lanes, acc's wrap inside
        rq = _requant(acc, out_t) if shift >= 0 else _requant(acc, None)
        kernels.dot32(np.ascontiguousarray(a, dtype=np.int32), *_weights32(w), start.astype(np.int32),
                      min(max(shift, 0), 31), offset, acc.width, acc.signed, rq, out)
        if shift >= 0:
            return out if rq[0] else _assign(out, acc, out_t)
    elif plan["narrow"]:  # 32-bit storage and sums (products 64-bit): sums wrap mod 2**32, which acc's wrap absorbs
        kernels.mac32(a.astype(np.int32, copy=False), np.ascontiguousarray(w, dtype=np.int32), start.astype(np.int32), max(shift, 0),
                      offset, out)
    else:
        kernels.mac64(a, np.ascontiguousarray(w), start, max(shift, 0), offset, out)
    if shift < 0:
        out = (out << -shift) + bias
    return _assign(overflow(out, acc), acc, out_t)


def _mac_python(a: np.ndarray, w: np.ndarray, bias: np.ndarray, shift: int, offset: int, acc: FixedType) -> np.ndarray:
    """mac()'s sums in Python's integers, for products too wide for int64's wrap-around to keep
    the bits acc needs: slow (an object array, one output at a time) and exact at any width."""
    a_obj, w_obj = a.astype(object), w.astype(object)
    if shift > 0:
        sums = np.empty((len(a), w.shape[1]), dtype=object)
        for j in range(w.shape[1]):
            sums[:, j] = ((a_obj * w_obj[:, j] + offset) >> shift).sum(axis=1)
    else:
        sums = (a_obj @ w_obj) << -shift
    modulus = 1 << acc.width
    sums = (sums + bias.astype(object)) % modulus  # acc's wrap-around; Python's % is never negative
    if acc.signed:
        sums = np.where(sums >= modulus >> 1, sums - modulus, sums)
    return sums.astype(np.int64)


def _assign(raw: np.ndarray, acc: FixedType, out_t: FixedType) -> np.ndarray:
    return raw if out_t is None else convert(raw, acc, out_t)


def conv(x: np.ndarray, x_t: FixedType, w: np.ndarray, w_frac: int, bias: np.ndarray, acc: FixedType,
         out_t: FixedType, kernel: tuple, strides: tuple, top_left: tuple, out_hw: tuple, then: tuple = None):
    """A 2-D convolution, channels last: mac() on the windows of x (n, H, W, c), zero outside x,
    in (row, column, channel) order, w (kh * kw * c, n_out); the outputs (n, out_h, out_w, n_out)
    assigned to out_t. One compiled pass that never writes the windows out; None where dot32 does
    not apply (the caller then builds the windows and calls mac()). `then`: a BatchNormalization
    of the outputs in the same pass, (ep, scale, bias) as kernels.conv16 takes them; None where
    that cannot be (the caller then runs the two apart)."""
    plan = _mac_plan(x_t, w, w_frac, w.shape[0], acc)
    if not plan["dot32"] or plan["float"] or plan["shift"] < 0:
        return None
    from . import kernels

    rq = _requant(acc, out_t)
    whole = w.shape[1] % kernels.LANES == 0  # whole vectors of outputs: conv16
    # conv16 runs a BatchNormalization in hls4ml's default modes only (TRN, WRAP, signed), on
    # outputs that need no cast of their own: a general one there made its compilation take 30 s
    if then is not None and not (whole and out_t == acc and then[0][3] > 0 and then[0][4] == ROUNDING.index("TRN")
                                 and then[0][7] == OVERFLOW.index("WRAP") and then[0][6]):
        return None
    out = np.empty((len(x), *out_hw, w.shape[1]), np.int64)
    if whole:
        ep, ep_scale, ep_bias = then or (kernels.NO_EPILOGUE, np.zeros(0, np.int64), np.zeros(0, np.int64))
        kernels.conv16(np.ascontiguousarray(x), *kernel, *strides, *top_left, _weights32(w)[1], bias.astype(np.int32),
                       min(plan["shift"], 31), plan["offset"], acc.width, acc.signed, rq, ep, ep_scale, ep_bias, out)
        return out if rq[0] or then is not None else _assign(out, acc, out_t)
    kernels.conv32(np.ascontiguousarray(x), *kernel, *strides, *top_left, *_weights32(w), bias.astype(np.int32),
                   min(plan["shift"], 31), plan["offset"], acc.width, acc.signed, rq, out)
    return out if rq[0] else _assign(out, acc, out_t)


def elementwise_codes(shift: int, t: FixedType):
    """The (shift, rounding, width, signed, overflow) arguments of kernels' elementwise casts to t,
    or None where their int64 shifts would not be exact (the caller then uses numpy)."""
    if not -63 < shift < 63 or t.width >= 63:
        return None
    return shift, ROUNDING.index(t.rounding), t.width, t.signed, OVERFLOW.index(t.overflow)
