"""The compiled multiply-accumulate loops of the fast engine (numba, every core).

Kept apart from fixedpoint.py, which says what the arithmetic is: these only say how to run it
fast. Each product is cast to the accumulator type before it is added, as hls4ml's kernels do,
so no loop here may merge the per-product shifts; the sums wrap, so their order is free.
Where products fit 32 bits (dot32, conv32) every step runs in 32-bit lanes (_mas32: numba would
widen each int32 operation to int64, and a 64-bit shift costs several instructions where AVX2
has none), four outputs by two rows per pass so that each input and weight row is loaded once
per block; convolutions build their windows a tile at a time (one output row, in cache) instead
of writing them all out. Convolutions with a multiple of 16 outputs run conv16 instead: sixteen
outputs of four pixels per pass in vector registers (explicit <16 x i32> values), read from the
input itself or a zero-bordered int32 copy, with a following BatchNormalization (and ReLU) in
its output pass. The wider kernels (mac32, mac64) first gather a row's nonzero inputs
(ReLU outputs are about half zeros) without a branch, then run a clean vector loop over the
outputs. Every array a kernel reads must be C-contiguous: a Fortran-ordered weight matrix made
dot32's forerunner 2.6x slower.

Compiled on first use (seconds) and cached on disk (cache=True), for the CPU's x86-64 level; the
image ships them compiled (kernelcache.py). numba's cache index also records the target CPU and
a hash of this file's content, so a cache for another CPU or another kernels.py is never loaded.
"""

import numpy as np

from . import kernelcache

_CACHE = kernelcache.prepare()  # numba reads its settings when imported: they come first

import numba  # noqa: E402
from llvmlite import ir  # noqa: E402
from numba import njit, prange, types  # noqa: E402
from numba.extending import intrinsic, models, register_model  # noqa: E402

if not numba.config.CACHE_DIR:  # numba imported before this module, with no cache folder set
    numba.config.CACHE_DIR = _CACHE

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


# ------------------------------------------------------------------ 16 outputs in one vector register
# conv16 keeps sixteen int32 sums of one pixel in one LLVM <16 x i32> value (an AVX-512 register,
# or two AVX2 ones): LLVM's own vectoriser only vectorises a loop of 64 or more iterations, which
# the small layers (27 or 16 inputs, 16 outputs) never reach, and keeps its sums in memory.

LANES = 16


class _I32x16(types.Type):
    def __init__(self):
        super().__init__(name="I32x16")


i32x16 = _I32x16()


@register_model(_I32x16)
class _I32x16Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, ir.VectorType(ir.IntType(32), LANES))


def _splat(builder, v):
    vt = ir.VectorType(ir.IntType(32), LANES)
    one = builder.insert_element(ir.Constant(vt, ir.Undefined), v, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(one, ir.Constant(vt, ir.Undefined), ir.Constant(vt, [0] * LANES))


def _lanes_at(context, builder, arrty, arr, idx):
    """A <16 x i32>* at element idx of a 1-D int32 array."""
    data = context.make_array(arrty)(context, builder, value=arr).data
    return builder.bitcast(builder.gep(data, [idx]), ir.VectorType(ir.IntType(32), LANES).as_pointer())


@intrinsic
def _vload(typingctx, arr, idx):
    """arr[idx:idx + 16] (a 1-D int32 array; the caller keeps it in bounds)."""
    def codegen(context, builder, signature, args):
        return builder.load(_lanes_at(context, builder, signature.args[0], args[0], args[1]), align=4)
    return i32x16(arr, types.intp), codegen


@intrinsic
def _at(typingctx, arr, idx):
    """arr[idx] of a 1-D array, unchecked: numba's own indexing handles negative indices with
    a few instructions per element, which cost more than the multiply-adds in conv16's loop."""
    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, value=args[0]).data
        return builder.load(builder.gep(data, [args[1]]))
    return arr.dtype(arr, types.intp), codegen


@intrinsic
def _vstore(typingctx, arr, idx, v):
    """arr[idx:idx + 16] = v."""
    def codegen(context, builder, signature, args):
        builder.store(args[2], _lanes_at(context, builder, signature.args[0], args[0], args[1]), align=4)
        return context.get_dummy_value()
    return types.void(arr, types.intp, i32x16), codegen


@intrinsic
def _vmas(typingctx, s, a, w, off, sh):
    """_mas32 on 16 lanes: s + ((a * w + off) >> sh), one scalar a for every lane."""
    def codegen(context, builder, signature, args):
        s, a, w, off, sh = args
        if a.type.width > 32:  # an int64 input that fits int32 (the caller checks its type)
            a = builder.trunc(a, ir.IntType(32))
        elif a.type.width < 32:
            a = (builder.sext if signature.args[1].signed else builder.zext)(a, ir.IntType(32))
        a = _splat(builder, a)
        return builder.add(s, builder.ashr(builder.add(builder.mul(a, w), _splat(builder, off)), _splat(builder, sh)))
    return i32x16(i32x16, a, i32x16, types.int32, types.int32), codegen


@intrinsic
def _vwrap(typingctx, s, k):
    """Each lane's low 32 - k bits, sign-extended (an int32 sum wrapped to a signed accumulator)."""
    def codegen(context, builder, signature, args):
        kk = _splat(builder, args[1])
        return builder.ashr(builder.shl(args[0], kk), kk)
    return i32x16(i32x16, types.int32), codegen


@njit(inline="always")
def _conv16_row(xf, wp, c, kh, kw, sh, sw, wf, bias, shv, off, k, signed, sums, r, out_w, n_out):
    """_conv16_image, with the rounding offset a constant 0 where it is (hls4ml's default truncating
    accumulators): one vector add less per product. Inlined: as a call of its own it measured
    slower (within this shared machine's noise, but never faster)."""
    if off == 0:
        _conv16_image(xf, wp, c, kh, kw, sh, sw, wf, bias, shv, np.int32(0), k, signed, sums, r, out_w, n_out)
    else:
        _conv16_image(xf, wp, c, kh, kw, sh, sw, wf, bias, shv, off, k, signed, sums, r, out_w, n_out)


@njit(inline="always")
def _conv16_image(xf, wp, c, kh, kw, sh, sw, wf, bias, shv, off, k, signed, sums, r, out_w, n_out):
    """Output row r of one image into sums (out_w * n_out int32, wrapped when signed): xf is the
    image flat (rows of wp pixels of c channels), in bounds for every window; four pixels by
    sixteen outputs per pass, the sums in registers, each weight vector loaded once per pass."""
    for o0 in range(0, out_w, 4):
        o1, o2, o3 = min(o0 + 1, out_w - 1), min(o0 + 2, out_w - 1), min(o0 + 3, out_w - 1)  # repeats at the end
        for j0 in range(0, n_out, LANES):
            b = _vload(bias, j0)
            s0, s1, s2, s3 = b, b, b, b
            for dh in range(kh):
                rb = (r * sh + dh) * wp
                # a window row's columns and channels are contiguous in x and in the weights: one loop
                x0, x1 = (rb + o0 * sw) * c, (rb + o1 * sw) * c
                x2, x3 = (rb + o2 * sw) * c, (rb + o3 * sw) * c
                wb = dh * kw * c * n_out + j0
                for _ in range(kw * c):  # indices stepped, not recomputed: fewer live registers
                    v = _vload(wf, wb)
                    s0 = _vmas(s0, _at(xf, x0), v, off, shv)
                    s1 = _vmas(s1, _at(xf, x1), v, off, shv)
                    s2 = _vmas(s2, _at(xf, x2), v, off, shv)
                    s3 = _vmas(s3, _at(xf, x3), v, off, shv)
                    x0, x1, x2, x3, wb = x0 + 1, x1 + 1, x2 + 1, x3 + 1, wb + n_out
            if signed:
                s0, s1, s2, s3 = _vwrap(s0, k), _vwrap(s1, k), _vwrap(s2, k), _vwrap(s3, k)
            _vstore(sums, o0 * n_out + j0, s0)
            _vstore(sums, o1 * n_out + j0, s1)
            _vstore(sums, o2 * n_out + j0, s2)
            _vstore(sums, o3 * n_out + j0, s3)


@njit(cache=True)
def _cast16(sums, width, signed, rq, orow):
    """_finish16's cast to the output type: a function of its own, compiled once rather than
    inlined into each of conv16's loops (its compilation took seconds each)."""
    mask = (np.int64(1) << width) - 1
    for t in range(orow.shape[0]):
        v = np.int64(sums[t]) if signed else np.int64(sums[t]) & mask
        orow[t] = _requant(v, rq[1], rq[2], rq[3], rq[4], rq[5])


@njit(inline="always")
def _finish16(sums, width, signed, rq, ep, ep_scale, ep_bias, orow):
    """conv16's wrapped int32 sums (out_w * n_out) into orow (int64): cast to the output type
    when rq[0]; with ep[0], a BatchNormalization instead (affine_cast's arithmetic, ep = (on,
    k_scale, k_bias, shift, rounding, width, signed, overflow, relu)), only in hls4ml's default
    modes (fixedpoint.conv checks: no cast before it, TRN and WRAP to a signed type, shift > 0),
    whose branch-free loop the compiler vectorises."""
    mask = (np.int64(1) << width) - 1
    if ep[0]:
        n_out = ep_scale.shape[0]
        k = 64 - ep[5]
        for o in range(orow.shape[0] // n_out):
            for j in range(n_out):
                t = o * n_out + j
                v = np.int64(sums[t]) if signed else np.int64(sums[t]) & mask
                v = ((((v * ep_scale[j]) << ep[1]) + (ep_bias[j] << ep[2])) >> ep[3] << k) >> k  # _requant's TRN, WRAP
                orow[t] = max(v, 0) if ep[8] else v
    elif rq[0]:
        _cast16(sums, width, signed, rq, orow)
    elif signed:  # loops without a branch inside: vectorised
        for t in range(orow.shape[0]):
            orow[t] = sums[t]
    else:
        for t in range(orow.shape[0]):
            orow[t] = np.int64(sums[t]) & mask


NO_EPILOGUE = (False, 0, 0, 0, 0, 1, False, 0, False)


@njit(parallel=True, cache=True)
def conv16(x, kh, kw, sh, sw, top, left, w_io, bias, shift, offset, width, signed, rq, ep, ep_scale, ep_bias, out):
    """conv32's arithmetic for a number of outputs divisible by 16 (w_io (kh * kw * c, n_out) int32,
    bias int32), vectorised over the outputs: no window copies, the zero border (when the
    windows reach outside x) written once per image into an int32 copy. ep: a BatchNormalization
    after it, fused into the output pass (_finish16; NO_EPILOGUE and empty arrays for none)."""
    n, h_in, w_in, c = x.shape
    out_h, out_w, n_out = out.shape[1], out.shape[2], out.shape[3]
    hp = max((out_h - 1) * sh + kh, top + h_in)
    wp = max((out_w - 1) * sw + kw, left + w_in)
    inside = top == 0 and left == 0 and (out_h - 1) * sh + kh <= h_in and (out_w - 1) * sw + kw <= w_in
    shv, off = np.int32(shift), np.int32(offset)
    k = np.int32(32 - width)
    wf = w_io.reshape(-1)
    for p in prange(n):
        sums = np.empty(out_w * n_out, np.int32)
        if inside:  # every window inside x: read it where it is
            xf = x[p].reshape(-1)
            for r in range(out_h):
                _conv16_row(xf, w_in, c, kh, kw, sh, sw, wf, bias, shv, off, k, signed, sums, r, out_w, n_out)
                _finish16(sums, width, signed, rq, ep, ep_scale, ep_bias, out[p, r].reshape(-1))
        else:
            xp = np.zeros(hp * wp * c, np.int32)
            for h in range(h_in):
                for w in range(w_in):
                    base = ((h + top) * wp + w + left) * c
                    for ch in range(c):
                        xp[base + ch] = x[p, h, w, ch]
            for r in range(out_h):
                _conv16_row(xp, wp, c, kh, kw, sh, sw, wf, bias, shv, off, k, signed, sums, r, out_w, n_out)
                _finish16(sums, width, signed, rq, ep, ep_scale, ep_bias, out[p, r].reshape(-1))


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
