"""The multiply-add kernels in int32 lanes (dot32, conv32, with _mas32's per-product shift) and in
int64 (mac32, mac64 over a row's nonzero inputs), the windows of a convolution (im2col32) and the
depthwise convolution. kernels/__init__.py says why each is shaped as it is."""

import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic

from .casts import _requant

SMALL_IN = 48  # below this many inputs per output, vectorise over the outputs instead


@intrinsic
def _mas32(typingctx, s, a, w, off, sh):
    """s + ((a * w + off) >> sh) with every step in int32 (wrapping; the shift arithmetic and
    below 32). Written as LLVM's own i32 operations: numba types each int32 operation as int64."""
    sig = types.int32(types.int32, types.int32, types.int32, types.int32, types.int32)

    def codegen(context, builder, signature, args):
        s, a, w, off, sh = args
        return builder.add(s, builder.ashr(builder.add(builder.mul(a, w), off), sh))
    return sig, codegen


@njit(inline="always")
def mas32(s, a, w, off, sh):
    """_mas32 under its plain signature, for compiled code elsewhere (bench/emulation.py's ceiling)."""
    return _mas32(s, a, w, off, sh)


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


@njit(cache=True)
def _finish(sums, width, signed, rq, out):
    """int32 sums (m, n_out) wrapped to the accumulator into out, then (rq[0]) cast to the layer's
    output type: rq is (on, shift, rounding, width, signed, overflow), _requant's arguments. A pass
    of its own over a tile in cache: inside the multiply-add loops it made numba compile for a
    minute."""
    for p in range(sums.shape[0]):
        for j in range(sums.shape[1]):
            v = _wrap32(sums[p, j], width, signed)
            out[p, j] = _requant(v, rq[1], rq[2], rq[3], rq[4], rq[5]) if rq[0] else v


@njit(cache=True)
def _dot_rows(a, wt, w_io, bias, sh, off, sums):
    """sums[p, j] = bias[j] + sum_i (a[p, i] * w[i, j] + off) >> sh, all int32, for the rows of a
    (m, n_in). wt is w transposed (n_out, n_in): four outputs by two rows per pass, each a
    contiguous reduction over the inputs. Below SMALL_IN inputs such a reduction is too short for
    the vector lanes, so w_io (n_in, n_out) is used instead, vectorised over the outputs."""
    m, n_in = a.shape
    n_out = wt.shape[0]
    if n_in < SMALL_IN:
        for p in range(m):
            acc = sums[p]
            for j in range(n_out):
                acc[j] = bias[j]
            for i in range(n_in):
                x = a[p, i]
                for j in range(n_out):
                    acc[j] = _mas32(acc[j], x, w_io[i, j], off, sh)
        return
    full = n_out - n_out % 4
    for p in range(0, m, 2):
        p1 = min(p + 1, m - 1)  # an odd last row is computed twice
        x, y = a[p], a[p1]
        for j in range(0, full, 4):
            w0, w1, w2, w3 = wt[j], wt[j + 1], wt[j + 2], wt[j + 3]
            s0, s1, s2, s3 = bias[j], bias[j + 1], bias[j + 2], bias[j + 3]
            t0, t1, t2, t3 = s0, s1, s2, s3
            for i in range(n_in):
                xi, yi = x[i], y[i]
                v0, v1, v2, v3 = w0[i], w1[i], w2[i], w3[i]
                s0 = _mas32(s0, xi, v0, off, sh)
                s1 = _mas32(s1, xi, v1, off, sh)
                s2 = _mas32(s2, xi, v2, off, sh)
                s3 = _mas32(s3, xi, v3, off, sh)
                t0 = _mas32(t0, yi, v0, off, sh)
                t1 = _mas32(t1, yi, v1, off, sh)
                t2 = _mas32(t2, yi, v2, off, sh)
                t3 = _mas32(t3, yi, v3, off, sh)
            sums[p, j], sums[p, j + 1], sums[p, j + 2], sums[p, j + 3] = s0, s1, s2, s3
            sums[p1, j], sums[p1, j + 1], sums[p1, j + 2], sums[p1, j + 3] = t0, t1, t2, t3
        for j in range(full, n_out):
            s = bias[j]
            t = s
            for i in range(n_in):
                s = _mas32(s, x[i], wt[j, i], off, sh)
                t = _mas32(t, y[i], wt[j, i], off, sh)
            sums[p, j], sums[p1, j] = s, t



ROWS = 64  # rows of a per parallel task in dot32


@njit(parallel=True, cache=True)
def dot32(a, wt, w_io, bias, shift, offset, width, signed, rq, out):
    """Products, shifted products and sums all fit int32 (the caller checks |a * w| + offset
    < 2**31); the sum wraps to `width` bits, then rq casts it (_finish). a (n, n_in) int32, wt and
    w_io the weights as (n_out, n_in) and (n_in, n_out) int32, bias int32, out (n, n_out) int64.
    0 <= shift <= 31: a product below 2**31 shifted by 31 or more is 0 or -1 either way."""
    n = a.shape[0]
    sh, off = np.int32(shift), np.int32(offset)
    for b in prange((n + ROWS - 1) // ROWS):
        lo = b * ROWS
        hi = min(lo + ROWS, n)
        sums = np.empty((hi - lo, wt.shape[0]), np.int32)
        _dot_rows(a[lo:hi], wt, w_io, bias, sh, off, sums)
        _finish(sums, width, signed, rq, out[lo:hi])


@njit(parallel=True, cache=True)
def conv32(x, kh, kw, sh, sw, top, left, wt, w_io, bias, shift, offset, width, signed, rq, out):
    """A convolution of x (n, H, W, c), zero outside x, as dot32 on its windows in (row, column,
    channel) order: out (n, out_h, out_w, n_out) int64. The windows of one output row are built
    in a small buffer and used at once (in cache), never written out whole."""
    n, h_in, w_in, c = x.shape
    out_h, out_w = out.shape[1], out.shape[2]
    n_in = kh * kw * c
    shv, off = np.int32(shift), np.int32(offset)
    for q in prange(n * out_h):
        p, r = q // out_h, q % out_h
        cols = np.empty((out_w, n_in), np.int32)
        for o in range(out_w):
            _window(x, p, r, o, kh, kw, sh, sw, top, left, cols[o])
        sums = np.empty((out_w, wt.shape[0]), np.int32)
        _dot_rows(cols, wt, w_io, bias, shv, off, sums)
        _finish(sums, width, signed, rq, out[p, r])


@njit(parallel=True, cache=True)
def im2col32(x, kh, kw, sh, sw, top, left, out_h, out_w, cols):
    """The convolution windows of x (n, H, W, c) as rows of cols (n * out_h * out_w, kh * kw * c),
    int32, in (row, column, channel) order, zero outside x: numpy's pad, window view and copy in
    one parallel pass."""
    n = x.shape[0]
    for q in prange(n * out_h):
        p, r = q // out_h, q % out_h
        for o in range(out_w):
            _window(x, p, r, o, kh, kw, sh, sw, top, left, cols[q * out_w + o])


@njit(cache=True, inline="always")
def _window(x, p, r, o, kh, kw, sh, sw, top, left, row):
    """Image p's window for output (r, o) into row, in (row, column, channel) order, zero outside x
    (the padding folded in)."""
    h_in, w_in, c = x.shape[1], x.shape[2], x.shape[3]
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


@njit(parallel=True, cache=True)
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


@njit(parallel=True, cache=True)
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


@njit(parallel=True, cache=True)
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
