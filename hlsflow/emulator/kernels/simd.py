"""conv16: convolutions with a multiple of 16 outputs, sixteen int32 sums in one LLVM vector."""

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic, models, register_model

from .casts import _requant

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
