"""The fast engine's depthwise convolutions and shape layers, as hls4ml 1.3.0's C++ computes them.

hls4ml splits a SeparableConv into `<name>_depthwise` (a DepthwiseConv without bias) and
`<name>_pointwise` (a Conv, then PointwiseConv, that fastemu's _dense_like runs), so a separable
convolution needs nothing of its own here. What the C++ does, and so what this module does:
- DepthwiseConv: each channel's window products (input * weight) are each assigned to accum_t,
  added to the bias assigned to accum_t, and the sum assigned to the result type; a saturating
  accumulator adds in the C++ kernel's order (Latency: kernel positions in turn; Resource: its
  reuse loop's). The C++ has no Resource strategy for it in io_parallel and no depth multiplier
  but 1 (it asserts, so its emulation aborts): those are refused in one sentence.
- Resize (UpSampling, nearest): io_parallel picks source pixels with a 16-bit fixed-point ratio,
  io_stream repeats each pixel; Concatenate, Cropping, Transpose (Permute), Repack: values moved,
  each assigned to the result type.
- Pooling with padding (io_parallel only: the stream version asserts, refused here): a padded
  cell is the type's MSB pattern for Max and 0 for Average, whose divisor is the number of cells
  in the image unless count_pad.
"""

import numpy as np

from . import fixedpoint as fp
from ..errors import FlowError
from ..fixedtype import FixedType
from .fixedpoint import Unsupported
from .layerdata import type_of, weights

DEPTHWISE = ("DepthwiseConv1D", "DepthwiseConv2D")


def layer_fn(layer, cls, out_t: FixedType, project_dir):
    """The run function of a layer this module reproduces, or None when it is not one of them."""
    if cls in DEPTHWISE:
        return _depthwise(layer, cls, out_t, project_dir)
    if cls == "Resize":
        return _resize(layer, out_t)
    if cls == "Concatenate":
        return _concatenate(layer, out_t)
    if cls in ("Cropping1D", "Cropping2D"):
        return _cropping(layer, cls, out_t)
    if cls == "Transpose":
        perm = (0,) + tuple(int(p) + 1 for p in layer.get_attr("perm"))
        return lambda ins: fp.convert(np.transpose(_shaped(ins[0][0], layer), perm), ins[0][1], out_t)
    if cls == "Repack":  # io_stream's Reshape: the same values in other packets
        shape = tuple(layer.get_output_variable().shape)
        return lambda ins: fp.convert(ins[0][0].reshape((len(ins[0][0]),) + shape), ins[0][1], out_t)
    return None


def _io_type(layer) -> str:
    return str(layer.model.config.get_config_value("IOType"))


def _shaped(raw, layer, index=0):
    """raw (N, ...) in the shape of the layer's input variable (fastemu's layers may hand it flat)."""
    return raw.reshape((len(raw),) + tuple(layer.get_input_variable(layer.inputs[index]).shape))


def _channels_last(layer):
    if (layer.get_attr("data_format") or "channels_last") != "channels_last":
        raise Unsupported("channels_first")


# ------------------------------------------------------------------ depthwise convolution

def _depthwise(layer, cls, out_t: FixedType, project_dir):

    _channels_last(layer)
    strategy = str(layer.get_attr("strategy") or "latency").lower()
    # What hls4ml's C++ asserts against aborts its emulation too, and Vivado drops the layer: no engine
    # can run it, so the sentence says what to change.
    if strategy == "resource" and _io_type(layer) == "io_parallel":
        keras_name = layer.name[:-len("_depthwise")] if layer.name.endswith("_depthwise") else layer.name
        raise FlowError(f"Layer {layer.name} ({cls}) cannot use the Resource strategy in io_parallel: hls4ml 1.3.0 "
                        f"has no such implementation (its C++ asserts). Set Strategy: Latency for {keras_name} in "
                        "HLSConfig > LayerName, or use IOType: io_stream.")
    if (layer.get_attr("depth_multiplier") or 1) != 1:
        raise FlowError(f"Layer {layer.name} ({cls}) has depth_multiplier {layer.get_attr('depth_multiplier')}, "
                        "which hls4ml 1.3.0 does not implement (its C++ asserts): use depth_multiplier=1.")
    if strategy not in ("latency", "resource"):
        raise Unsupported(f"strategy {strategy}")
    if layer.get_attr("product_type") not in (None, "mult"):
        raise Unsupported(f"product {layer.get_attr('product_type')}")
    for key in ("dilation", "dilation_width", "dilation_height"):
        if layer.get_attr(key) not in (1, None):
            raise Unsupported("dilation")
    acc_t = type_of(layer, "accum_t")
    w, w_t = weights(layer, "weight", project_dir)
    if layer.get_attr("_weights_transposed"):
        w = np.moveaxis(w, 0, -1)  # (1, kh, kw, c) back to (kh, kw, c, 1): the same order for one filter
    two_d = cls.endswith("2D")
    if two_d:
        kh, sh, out_h = layer.get_attr("filt_height"), layer.get_attr("stride_height"), layer.get_attr("out_height")
        top = layer.get_attr("pad_top")
    else:
        kh, sh, out_h, top = 1, 1, 1, 0
    kw, sw, out_w = layer.get_attr("filt_width"), layer.get_attr("stride_width"), layer.get_attr("out_width")
    left = layer.get_attr("pad_left")
    n_chan = layer.get_attr("n_chan")
    w = w.reshape(kh * kw, n_chan)
    w64 = np.ascontiguousarray(w, dtype=np.int64)
    if "bias" in layer.weights and layer.weights["bias"].data is not None:
        b, b_t = weights(layer, "bias", project_dir)
        bias_acc = fp.convert(b.reshape(-1), b_t, acc_t)  # acc = (accum_t) bias
    else:
        bias_acc = np.zeros(n_chan, np.int64)
    bias64 = np.ascontiguousarray(bias_acc, dtype=np.int64)
    order = None
    if acc_t.overflow != "WRAP":  # a saturating sum depends on its order: the C++ kernel's, step by step
        order = np.tile(np.arange(kh * kw)[:, None], (1, n_chan))  # latency: kernel positions in turn
        if strategy == "resource":  # ReuseLoop ir, MultLoop im: flat index ir + im * rf, of k * n_chan + c
            rf = min(int(layer.get_attr("reuse_factor") or 1), kh * kw * n_chan)
            flat = np.arange(kh * kw * n_chan).reshape(kh * kw, n_chan)
            order = np.argsort(flat % rf * (kh * kw * n_chan) + flat // rf, axis=0, kind="stable")

    def run(ins):
        raw, t = ins[0]
        x = _shaped(raw, layer)
        x = x if two_d else x[:, None]
        shift = t.frac + w_t.frac - acc_t.frac
        peak = max(-t.min_raw, t.max_raw) * int(np.abs(w).max(initial=0))
        if peak >= 2 ** 62 or (order is not None and peak << max(-shift, 0) >= 2 ** 62):
            raise Unsupported("products wider than 62 bits")
        n = len(x)
        if order is None and (shift <= 0 or acc_t.rounding in ("TRN", "RND", "RND_MIN_INF")):
            from . import kernels  # one compiled pass, no window copies

            half = 0 if shift <= 0 or acc_t.rounding == "TRN" else 1 << (shift - 1)
            offset = half - (half > 0 and acc_t.rounding == "RND_MIN_INF")  # as fp.shift_round's modes
            acc = np.empty((n, out_h, out_w, n_chan), np.int64)
            kernels.depthwise(np.ascontiguousarray(x, dtype=np.int64), w64, bias64, kh, kw, sh, sw, top, left,
                              max(-shift, 0), max(shift, 0), offset, acc)
            res = fp.convert(fp.overflow(acc, acc_t), acc_t, out_t)
            return res if two_d else res[:, 0]
        cols = _windows(x, t, kh, kw, sh, sw, top, left, out_h, out_w).reshape(-1, kh * kw, n_chan)
        # every product assigned to accum_t on its own (rounding included), then the sums wrap: int64's
        # own wrap-around is a multiple of accum_t's, so a product shifted left past 64 bits is harmless
        products = fp.shift_round(cols.astype(np.int64) * w, shift, acc_t.rounding)
        if order is None:
            acc = fp.overflow(products.sum(axis=1) + bias_acc, acc_t)
        else:  # mult = (accum_t) product; acc = (accum_t) bias; acc += mult, saturating at every step
            products = fp.overflow(products, acc_t)
            acc = np.broadcast_to(bias_acc, (len(products), n_chan))
            for step in order:
                acc = fp.overflow(acc + products[:, step, np.arange(n_chan)], acc_t)
        res = fp.convert(acc, acc_t, out_t)
        return res.reshape((n, out_h, out_w, n_chan) if two_d else (n, out_w, n_chan))
    return run


def _windows(x, t: FixedType, kh, kw, sh, sw, top, left, out_h, out_w):
    """The convolution windows of x (n, H, W, c) as rows (n * out_h * out_w, kh * kw * c), zero outside x."""
    n, h, w_in, c = x.shape
    if max(-t.min_raw, t.max_raw) < 2 ** 31:  # as fastemu's convolutions: one compiled pass
        from . import kernels

        cols = np.empty((n * out_h * out_w, kh * kw * c), np.int32)
        kernels.im2col32(np.ascontiguousarray(x), kh, kw, sh, sw, top, left, out_h, out_w, cols)
        return cols
    bottom = max((out_h - 1) * sh + kh - h - top, 0)
    right = max((out_w - 1) * sw + kw - w_in - left, 0)
    x = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))[:, ::sh, ::sw][:, :out_h, :out_w]
    return np.ascontiguousarray(win.transpose(0, 1, 2, 4, 5, 3)).reshape(-1, kh * kw * c)


# ------------------------------------------------------------------ shape layers

def _resize(layer, out_t: FixedType):
    algorithm = str(layer.get_attr("algorithm") or "nearest")
    if algorithm != "nearest":
        raise Unsupported(f"resize {algorithm} (hls4ml 1.3.0's Vivado C++ has nearest only)")
    _channels_last(layer)
    in_h, in_w = layer.get_attr("in_height") or 1, layer.get_attr("in_width")
    new_h, new_w = layer.get_attr("out_height") or 1, layer.get_attr("out_width")
    if _io_type(layer) == "io_stream":
        if new_h % in_h or new_w % in_w:
            raise Unsupported("a resize by a fraction in io_stream (hls4ml's C++ asserts)")
        rows = np.arange(new_h) // (new_h // in_h)
        cols = np.arange(new_w) // (new_w // in_w)
    else:  # resize_nearest: source = (i * ((in << 16) / new + 1)) >> 16, in C++'s integers
        rows = (np.arange(new_h) * ((in_h << 16) // new_h + 1)) >> 16
        cols = (np.arange(new_w) * ((in_w << 16) // new_w + 1)) >> 16
    out_shape = tuple(layer.get_output_variable().shape)

    def run(ins):
        raw, t = ins[0]
        x = raw.reshape(len(raw), in_h, in_w, -1)
        return fp.convert(x[:, rows][:, :, cols], t, out_t).reshape((len(raw),) + out_shape)
    return run


def _concatenate(layer, out_t: FixedType):
    axis = int(layer.get_attr("axis"))  # Keras's axis, batch included, as the C++ reads it

    def run(ins):
        parts = [fp.convert(_shaped(raw, layer, i), t, out_t) for i, (raw, t) in enumerate(ins)]
        if not -parts[0].ndim < axis < parts[0].ndim:
            raise Unsupported(f"concatenation axis {axis}")
        return np.concatenate(parts, axis=axis)
    return run


def _cropping(layer, cls, out_t: FixedType):
    _channels_last(layer)
    left, out_w = layer.get_attr("crop_left"), layer.get_attr("out_width")
    if cls == "Cropping1D":
        return lambda ins: fp.convert(_shaped(ins[0][0], layer)[:, left:left + out_w], ins[0][1], out_t)
    top, out_h = layer.get_attr("crop_top"), layer.get_attr("out_height")
    return lambda ins: fp.convert(_shaped(ins[0][0], layer)[:, top:top + out_h, left:left + out_w], ins[0][1], out_t)


# ------------------------------------------------------------------ pooling with padding

def padded_pooling(layer, cls, out_t: FixedType, op: str, acc_t: FixedType):
    """Pooling1D/2D with padding (Keras's padding='same'), as pooling1d_cl and pooling2d_cl compute it."""

    if _io_type(layer) != "io_parallel":
        raise FlowError(f"Layer {layer.name} ({cls}) pools with padding, which hls4ml 1.3.0 does not implement in "
                        "io_stream (its C++ asserts): use padding='valid' in the model, or IOType: io_parallel.")
    _channels_last(layer)
    two_d = cls.endswith("2D")
    get = layer.get_attr
    ph, sh, top, bottom = (get("pool_height"), get("stride_height"), get("pad_top"), get("pad_bottom")) if two_d \
        else (1, 1, 0, 0)
    pw, sw, left, right = get("pool_width"), get("stride_width"), get("pad_left"), get("pad_right")
    out_h, out_w = (get("out_height") if two_d else 1), get("out_width")
    count_pad = bool(get("count_pad"))

    def windows(x):
        win = np.lib.stride_tricks.sliding_window_view(x, (ph, pw), axis=(1, 2))[:, ::sh, ::sw][:, :out_h, :out_w]
        return win.reshape(win.shape[:4] + (ph * pw,))

    def run(ins):
        raw, t = ins[0]
        x = _shaped(raw, layer)
        x = x if two_d else x[:, None]
        pads = ((0, 0), (top, bottom), (left, right), (0, 0))
        if op == "Max":  # pad_val<Max>: the type's top bit set, the most negative value (or, unsigned, 2**(w-1))
            fill = t.min_raw if t.signed else 1 << (t.width - 1)
            res = _pool(windows(np.pad(x, pads, constant_values=fill)), t, op, acc_t, out_t, ph * pw, axis=-1)
        else:
            if count_pad:
                count = ph * pw
            else:  # the cells of each window inside the image
                inside = np.pad(np.ones((1,) + x.shape[1:3] + (1,), np.int64), pads)
                count = windows(inside).sum(axis=-1)
            res = _pool(windows(np.pad(x, pads)), t, op, acc_t, out_t, count, axis=-1)
        return res if two_d else res[:, 0]
    return run


def pooling(layer, cls, out_t: FixedType):
    op = str(layer.get_attr("pool_op"))
    if op not in ("Max", "Average"):
        raise Unsupported(f"pooling {op}")
    acc_t = type_of(layer, "accum_t")
    if op == "Average" and acc_t.overflow != "WRAP":
        raise Unsupported(f"accumulator {acc_t} saturates: the sum depends on its order")
    two_d = cls.endswith("2D")
    if cls.startswith("Global"):
        def run(ins):
            raw, t = ins[0]
            flat = raw.reshape(len(raw), -1, raw.shape[-1])
            return _pool(flat, t, op, acc_t, out_t, flat.shape[1], axis=1)
        return run
    pads = [layer.get_attr(k) for k in (("pad_top", "pad_bottom", "pad_left", "pad_right") if two_d
                                         else ("pad_left", "pad_right"))]
    if any(pads):
        return padded_pooling(layer, cls, out_t, op, acc_t)
    ph = layer.get_attr("pool_height") if two_d else 1
    pw = layer.get_attr("pool_width")
    sh = layer.get_attr("stride_height") if two_d else 1
    sw = layer.get_attr("stride_width")
    out_h = layer.get_attr("out_height") if two_d else 1
    out_w = layer.get_attr("out_width")

    def run(ins):
        raw, t = ins[0]
        x = raw if two_d else raw[:, None]
        win = np.lib.stride_tricks.sliding_window_view(x, (ph, pw), axis=(1, 2))[:, ::sh, ::sw][:, :out_h, :out_w]
        win = win.reshape(win.shape[:4] + (ph * pw,))
        res = _pool(win, t, op, acc_t, out_t, ph * pw, axis=-1)
        return res if two_d else res[:, 0]
    return run


def _pool(x, t: FixedType, op: str, acc_t: FixedType, out_t: FixedType, count: int, axis: int):
    if op == "Max":  # the largest input, then through the accumulator type to the result
        return fp.convert(fp.convert(x.max(axis=axis), t, acc_t), acc_t, out_t)
    total = fp.overflow(fp.convert(x, t, acc_t).sum(axis=axis), acc_t)
    # accum / (unsigned) count: ap_fixed division keeps the dividend's fraction, truncating towards zero
    quotient = np.where(total < 0, -((-total) // count), total // count)
    return fp.cast(fp.overflow(quotient, acc_t), acc_t.frac, out_t)
