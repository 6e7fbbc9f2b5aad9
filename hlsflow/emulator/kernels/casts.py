"""The elementwise kernels: fixedpoint.cast's rounding and overflow on one int64 (_requant, which
every multiply-add kernel ends with), from float, a scale-and-shift (BatchNormalization), ReLU and
the merges (Add, Subtract, Multiply, Average, Maximum, Minimum)."""

import numpy as np
from numba import njit, prange


# Codes for the elementwise kernels: the positions in fixedpoint.ROUNDING and fixedpoint.OVERFLOW.
TRN, TRN_ZERO, RND, RND_ZERO, RND_INF, RND_MIN_INF, RND_CONV = range(7)
WRAP, SAT, SAT_ZERO, SAT_SYM = range(4)


@njit(inline="always")
def _requant(v, shift, rounding, width, signed, ovf):
    """fixedpoint.cast for one int64 value: shift right with the rounding mode, then the overflow mode.
    The caller keeps -63 < shift < 63 and width < 63."""
    if shift <= 0:
        q = v << -shift
    else:
        half = np.int64(1) << (shift - 1)
        if rounding == TRN:
            q = v >> shift
        elif rounding == RND:
            q = (v + half) >> shift
        elif rounding == RND_MIN_INF:
            q = (v + half - 1) >> shift
        elif rounding == RND_CONV:
            q = v >> shift
            r = v - (q << shift)
            if r > half or (r == half and (q & 1) == 1):
                q += 1
        else:
            mag = -v if v < 0 else v
            if rounding == TRN_ZERO:
                q = mag >> shift
            elif rounding == RND_ZERO:
                q = (mag + half - 1) >> shift
            else:  # RND_INF
                q = (mag + half) >> shift
            if v < 0:
                q = -q
    if ovf == WRAP:
        if signed:
            return (q << (64 - width)) >> (64 - width)
        return q & ((np.int64(1) << width) - 1)
    hi = (np.int64(1) << (width - 1)) - 1 if signed else (np.int64(1) << width) - 1
    lo = -hi - 1 if signed else np.int64(0)
    if ovf == SAT_SYM and signed:
        lo = -hi
    if q < lo:
        return np.int64(0) if ovf == SAT_ZERO else lo
    if q > hi:
        return np.int64(0) if ovf == SAT_ZERO else hi
    return q


@njit(parallel=True, cache=True)
def from_float(x, scale, rounding, width, signed, ovf, out, bad):
    """fixedpoint.from_float of a 1-D float array for TRN, RND and RND_CONV: the same float64
    operations (a product by a power of two, then floor, floor(v + 0.5) or rint), then the
    overflow mode; bad[0] set where a value is not finite or 2**62 or more (the caller then
    runs numpy's version, which says what to do with those)."""
    for p in prange(x.shape[0]):
        v = np.float64(x[p]) * scale
        if rounding == TRN:
            q = np.floor(v)
        elif rounding == RND:
            q = np.floor(v + 0.5)
        else:
            q = np.rint(v)
        if not abs(q) < 2.0 ** 62:  # NaN too
            bad[0] = 1
            q = 0.0
        out[p] = _requant(np.int64(q), 0, TRN, width, signed, ovf)


@njit(parallel=True, cache=True)
def affine_cast(x, scale, bias, k_scale, k_bias, shift, rounding, width, signed, ovf, out, relu=False):
    """BatchNormalization: ((x * scale) << k_scale) + (bias << k_bias) per channel (the last axis
    of the 2-D x), exact in int64, then cast: one pass instead of numpy's eight; with relu, a
    ReLU of the same type after it in the same pass."""
    m, c = x.shape
    for p in prange(m):
        for j in range(c):
            v = ((x[p, j] * scale[j]) << k_scale) + (bias[j] << k_bias)
            r = _requant(v, shift, rounding, width, signed, ovf)
            out[p, j] = max(r, 0) if relu else r


@njit(parallel=True, cache=True)
def relu(x, out):
    """max(x, 0) over a 1-D array on every core (numpy's maximum runs on one)."""
    for p in prange(x.shape[0]):
        out[p] = max(x[p], 0)


@njit(parallel=True, cache=True)
def merge_cast(a, b, k_a, k_b, op, shift, rounding, width, signed, ovf, out, relu=False):
    """Merge of two equally shaped 1-D arrays aligned to one fraction: op 0 add, 1 subtract, 2 maximum,
    3 minimum; then cast (and with relu a ReLU of the same type, in the same pass)."""
    if op == 0 and shift >= 0 and rounding == TRN and ovf == WRAP and signed:
        # an Add in hls4ml's default modes: _requant's TRN and WRAP, branch-free, vectorised
        k = 64 - width
        for p in prange(a.shape[0]):
            r = ((((a[p] << k_a) + (b[p] << k_b)) >> shift) << k) >> k
            out[p] = max(r, 0) if relu else r
        return
    for p in prange(a.shape[0]):
        u, v = a[p] << k_a, b[p] << k_b
        if op == 0:
            r = u + v
        elif op == 1:
            r = u - v
        elif op == 2:
            r = max(u, v)
        else:
            r = min(u, v)
        r = _requant(r, shift, rounding, width, signed, ovf)
        out[p] = max(r, 0) if relu else r
