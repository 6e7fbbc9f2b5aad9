"""The compiled multiply-accumulate loops of the fast engine (numba, every core).

Kept apart from fixedpoint.py, which says what the arithmetic is: these only say how to run it
fast. Each product is cast to the accumulator type before it is added, as hls4ml's kernels do,
so no loop here may merge the per-product shifts; the sums wrap, so their order is free.
Where products fit 32 bits (dot32) each output is one contiguous reduction over its inputs.
The wider kernels (mac32, mac64) first gather a row's nonzero inputs (ReLU outputs are about
half zeros) without a branch, then run a clean vector loop over the outputs. Every array a
kernel reads must be C-contiguous: a Fortran-ordered weight matrix made dot32's forerunner 2.6x
slower. Compiled on first use, a second or two per kernel.
"""

import numpy as np
from numba import njit, prange


@njit(inline="always")
def _wrap32(v, width, signed):
    """An int32 sum brought to the accumulator's width (ap_fixed's AP_WRAP), as int64."""
    if signed:
        k = np.int32(32 - width)
        return np.int64(np.int32(np.int32(v << k) >> k))
    return np.int64(v) & ((np.int64(1) << width) - 1)


@njit(inline="always")
def _nonzero(row, vals, idx):
    """The nonzero entries of row into vals/idx, branch-free; returns how many."""
    k = 0
    for i in range(row.shape[0]):
        vals[k] = row[i]
        idx[k] = i
        k += row[i] != 0
    return k


@njit(inline="always")
def _start_row(row, bias):
    """A row's int32 accumulators set to the bias, and its gathered nonzero inputs."""
    acc = bias.astype(np.int32)
    vals = np.empty(row.shape[0], np.int32)
    idx = np.empty(row.shape[0], np.int64)
    return acc, vals, idx, _nonzero(row, vals, idx)


@njit(parallel=True, cache=False)
def dot32(a, wt, bias, shift, offset, width, signed, out):
    """Products, shifted products and sums all fit int32; the sum wraps to `width` bits here.
    wt is the weights transposed, (n_out, n_in), so each output is one contiguous reduction that
    LLVM vectorises over the inputs; with every product this cheap, that beats skipping the zeros
    (1.6x on the reference model's layers, bench/results). shift <= 31: a product below 2**31
    shifted by 31 or more is 0 or -1 either way, and `& 31` keeps the shift in 32-bit lanes."""
    n, n_in = a.shape
    n_out = wt.shape[0]
    sh, off = np.int32(shift) & 31, np.int32(offset)
    for p in prange(n):
        for j in range(n_out):
            s = np.int32(bias[j])
            for i in range(n_in):
                s = np.int32(s + (np.int32(np.int32(a[p, i] * wt[j, i]) + off) >> sh))
            out[p, j] = _wrap32(s, width, signed)


@njit(parallel=True, cache=False)
def im2col32(x, kh, kw, sh, sw, top, left, out_h, out_w, cols):
    """The convolution windows of x (n, H, W, c) as rows of cols (n * out_h * out_w, kh * kw * c),
    int32, in (row, column, channel) order, zero outside x: numpy's pad, window view and copy in
    one parallel pass."""
    n, h_in, w_in, c = x.shape
    for q in prange(n * out_h):
        p, r = q // out_h, q % out_h
        for o in range(out_w):
            row = cols[q * out_w + o]
            k = 0
            for dh in range(kh):
                h = r * sh + dh - top
                for dw in range(kw):
                    w = o * sw + dw - left
                    if 0 <= h < h_in and 0 <= w < w_in:
                        for ch in range(c):
                            row[k + ch] = x[p, h, w, ch]
                    else:
                        for ch in range(c):
                            row[k + ch] = 0
                    k += c


@njit(parallel=True, cache=False)
def mac32(a, w, bias, shift, offset, out):
    """int32 data and sums, 64-bit products: the sums wrap mod 2**32, which the caller's wrap absorbs."""
    n = a.shape[0]
    n_out = w.shape[1]
    for p in prange(n):
        acc, vals, idx, k = _start_row(a[p], bias)
        for t in range(k):
            ai, i = np.int64(vals[t]), idx[t]
            for j in range(n_out):
                acc[j] += np.int32((ai * np.int64(w[i, j]) + offset) >> shift)
        for j in range(n_out):
            out[p, j] = acc[j]


@njit(parallel=True, cache=False)
def mac64(a, w, bias, shift, offset, out):
    n, n_in = a.shape
    n_out = w.shape[1]
    for p in prange(n):
        acc = bias.copy()
        vals = np.empty(n_in, np.int64)
        idx = np.empty(n_in, np.int64)
        k = _nonzero(a[p], vals, idx)
        for t in range(k):
            ai, i = vals[t], idx[t]
            for j in range(n_out):
                acc[j] += (ai * np.int64(w[i, j]) + offset) >> shift
        out[p, :] = acc


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


@njit(parallel=True, cache=False)
def affine_cast(x, scale, bias, k_scale, k_bias, shift, rounding, width, signed, ovf, out):
    """BatchNormalization: ((x * scale) << k_scale) + (bias << k_bias) per channel (the last axis
    of the 2-D x), exact in int64, then cast: one pass instead of numpy's eight."""
    m, c = x.shape
    for p in prange(m):
        for j in range(c):
            v = ((x[p, j] * scale[j]) << k_scale) + (bias[j] << k_bias)
            out[p, j] = _requant(v, shift, rounding, width, signed, ovf)


@njit(parallel=True, cache=False)
def relu(x, out):
    """max(x, 0) over a 1-D array on every core (numpy's maximum runs on one)."""
    for p in prange(x.shape[0]):
        out[p] = max(x[p], 0)


@njit(parallel=True, cache=False)
def merge_cast(a, b, k_a, k_b, op, shift, rounding, width, signed, ovf, out):
    """Merge of two equally shaped 1-D arrays aligned to one fraction: op 0 add, 1 subtract, 2 maximum,
    3 minimum; then cast."""
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
        out[p] = _requant(r, shift, rounding, width, signed, ovf)


@njit(parallel=True, cache=False)
def depthwise(x, w, bias, kh, kw, sh, sw, top, left, lshift, rshift, offset, out):
    """DepthwiseConv (spatial.py): out[p, r, o, ch] = bias[ch] + sum over the window of
    ((x * w) << lshift + offset) >> rshift, zero outside x (n, H, W, c); w is (kh * kw, c). The
    sums wrap in int64, whose wrap-around the caller's accumulator wrap absorbs."""
    n, h_in, w_in, c = x.shape
    out_h, out_w = out.shape[1], out.shape[2]
    for q in prange(n * out_h):
        p, r = q // out_h, q % out_h
        for o in range(out_w):
            for ch in range(c):
                out[p, r, o, ch] = bias[ch]
            for dh in range(kh):
                hh = r * sh + dh - top
                if hh < 0 or hh >= h_in:
                    continue
                for dw in range(kw):
                    ww = o * sw + dw - left
                    if ww < 0 or ww >= w_in:
                        continue
                    k = dh * kw + dw
                    for ch in range(c):
                        out[p, r, o, ch] += (((x[p, hh, ww, ch] * w[k, ch]) << lshift) + offset) >> rshift
