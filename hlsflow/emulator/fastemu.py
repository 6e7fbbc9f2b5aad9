"""The fast engine: the written HLS design's fixed-point arithmetic on whole batches of samples.

hls4ml's C++ emulation runs ap_fixed one operation at a time through hls::stream (about 10
images/s on the reference model). Here each layer is one vectorised step over the batch, with
every intermediate held as exact integers (see fixedpoint.py), so the result is the same bits.

What it is built from:
- the layer graph, types and attributes: hls4ml's ModelGraph of the project's own configuration;
- the weights: the project's firmware/weights/*.txt, read as the C++ reads them (strtod, then
  the weight type's rounding and overflow);
- the softmax tables' sizes and types: the project's firmware/parameters.h and defines.h;
  every other activation (tables, parameters, io_stream's variants) is activations.py's.
Here: the graph, Dense and convolutions, BatchNormalization and merges; softmax is softmax.py's, pooling,
depthwise convolutions and the shape layers are spatial.py's, QKeras's and HGQ's quantizer layers
quantizers.py's, and what each reads of a layer (attributes, types, weights) layerdata.py's.
A layer this engine does not reproduce raises Unsupported naming it; csim then runs the C++ path.
"""

import ctypes
import functools
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import activations, da, fixedpoint as fp, quantizers, softmax, spatial
from .layerdata import attr as _attr, type_of as _type_of, weights as _weights
from ..fixedtype import FixedType
from .fixedpoint import Unsupported

DENSE_LIKE = ("Dense", "Conv1D", "Conv2D", "PointwiseConv1D", "PointwiseConv2D")
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


@functools.cache
def _keep_freed_memory() -> None:
    """glibc returns a freed block above its mmap threshold to the system at once, so each batch's
    activations (megabytes each) came back as fresh pages that fault on first touch: the engine ran
    the reference at 1,759-3,010 images/s instead of 5,736-6,288
    (bench/results/allocator-2026-12-02.md). Here blocks up to glibc's largest threshold (32 MB)
    come from the heap, and up to 512 MB that a batch freed stays for the next; once per process,
    and only in a process that runs the engine."""
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_MMAP_THRESHOLD, 32 * 2**20)
        libc.mallopt(_M_TRIM_THRESHOLD, 512 * 2**20)
    except (OSError, AttributeError):  # not glibc: its allocator is left as it is
        pass


@dataclass
class Step:
    name: str
    cls: str
    inputs: list
    outputs: list
    out_type: FixedType
    run: object  # fn(list of (raw, FixedType)) -> raw
    keras_layer: str = None
    # Without a trace, a step may absorb the step before it (one pass over the data instead of
    # two): `fused` runs on `fused_inputs`, the absorbed step's inputs, and that step is skipped.
    fused: object = None
    fused_inputs: list = None
    skip: bool = False
    absorbed: list = None  # the (name, class) of each step `fused` runs before this one, in order


@dataclass
class Engine:
    steps: list
    input_shape: tuple
    output_name: str

    @property
    def layer_names(self) -> list:
        return [step.name for step in self.steps]

    def run(self, x: np.ndarray, trace: bool = False, spent: dict = None, by_layer: bool = False):
        """Float outputs (N, n_out) as the C++ bridge returns them (float32), and with trace
        every layer's output as floats (the values hls4ml's trace shows). A `spent` dict gathers
        the seconds each layer class takes, or with by_layer each layer (for bench/emulation.py;
        a fused step's seconds include the steps it absorbed, and its key names them all in order:
        "zp+conv+bn+relu", or by class "ZeroPadding2D+Conv2D+BatchNormalization+Activation")."""
        _keep_freed_memory()
        x = np.asarray(x, dtype=np.float32).reshape((len(x),) + self.input_shape)
        values = {}
        traced = {}
        for step in self.steps:
            if step.skip and not trace:
                continue
            start = time.monotonic()
            if step.cls == "Input":
                raw = fp.from_float(x, step.out_type)
            elif step.fused is not None and not trace:
                raw = step.fused([values[name] for name in step.fused_inputs])
            else:
                raw = step.run([values[name] for name in step.inputs])
            if spent is not None:
                key = step.name if by_layer else step.cls
                if step.fused is not None and not trace:
                    key = "+".join([name if by_layer else cls for name, cls in step.absorbed] + [key])
                spent[key] = spent.get(key, 0.0) + time.monotonic() - start
            for out in step.outputs:
                values[out] = (raw, step.out_type)
            if trace:
                traced[step.name] = fp.to_float(raw, step.out_type.frac).reshape(len(x), -1)
        raw, t = values[self.output_name]
        y = fp.to_float(raw, t.frac).astype(np.float32).reshape(len(x), -1)
        return (y, traced) if trace else y


def build(hls_model, project_dir: Path) -> Engine:
    """The engine for a converted ModelGraph and its written project; Unsupported names the layer."""
    project_dir = Path(project_dir)
    types = _defined_types(project_dir)
    steps = []
    layers = {}
    input_shape = None
    twin = None  # the distributed_arithmetic layers' weights, which hls4ml deletes from the graph
    for layer in hls_model.get_layers():
        cls = layer.class_name
        try:
            out_t = fp.hls4ml_type(layer.get_output_variable().type.precision)
            if cls == "Input":
                input_shape = tuple(layer.get_output_variable().shape)
                run = None
            elif da.uses_da(layer):
                twin = da.twin_weights(hls_model) if twin is None else twin
                run = da.layer_fn(layer, cls, out_t, twin)
            else:
                run = _layer_fn(layer, cls, out_t, project_dir, types)
        except Unsupported as exc:
            raise Unsupported(f"layer {layer.name} ({cls}): {exc}") from None
        steps.append(Step(layer.name, cls, list(layer.inputs), list(layer.outputs), out_t, run))
        layers[layer.name] = layer
    if len(hls_model.outputs) != 1 or len(hls_model.inputs) != 1:
        raise Unsupported("the model has more than one input or output")
    _fuse(steps, layers, hls_model.outputs[0], project_dir)
    return Engine(steps, input_shape, hls_model.outputs[0])


def _fuse(steps: list, layers: dict, output_name: str, project_dir: Path) -> None:
    """Pairs run as one pass when no trace is asked: a zero padding folded into the convolution
    after it (the windows are zero outside the input anyway), a ReLU of the same type after a
    BatchNormalization or a merge done in that step's own pass, and a BatchNormalization (with
    its ReLU) in the output pass of the convolution before it. Only where the first step's
    output goes to the second alone."""
    readers = {}
    for step in steps:
        for name in step.inputs:
            readers.setdefault(name, []).append(step)
    for first in steps:
        if len(first.outputs) != 1 or first.outputs[0] == output_name or len(readers.get(first.outputs[0], [])) != 1:
            continue
        second = readers[first.outputs[0]][0]
        if second.inputs != first.outputs:
            continue
        fused = None
        if first.cls in ("ZeroPadding1D", "ZeroPadding2D") and getattr(second.run, "padded", None):
            fused = second.run.padded(_pads(layers[first.name], first.cls), first.out_type, first.run)
        elif (first.cls in ("BatchNormalization", "Merge") and second.cls in activations.CLASSES
              and activations.function_name(layers[second.name]) == "relu" and second.out_type == first.out_type):
            fused = (_batchnorm(layers[first.name], first.out_type, project_dir, relu=True)
                     if first.cls == "BatchNormalization" else _merge(layers[first.name], first.out_type, relu=True))
        if fused is not None:
            first.skip, second.fused, second.fused_inputs = True, fused, first.inputs
            second.absorbed = [(first.name, first.cls)]
    # Then a BatchNormalization into the convolution before it (with the ReLU after it, when the
    # loop above fused that one into it): the three in the convolution's output pass.
    for conv in steps:
        runner = conv.run if conv.fused is None else conv.fused  # a zero padding folded in, or not
        if (conv.skip or not getattr(runner, "with_batchnorm", None)
                or len(conv.outputs) != 1 or conv.outputs[0] == output_name or len(readers.get(conv.outputs[0], [])) != 1):
            continue
        bn = readers[conv.outputs[0]][0]
        if bn.cls != "BatchNormalization" or bn.inputs != conv.outputs or bn.fused is not None:
            continue
        target = readers[bn.outputs[0]][0] if bn.skip else bn  # the ReLU that runs the BatchNormalization
        then = _batchnorm_epilogue(layers[bn.name], conv.out_type, bn.out_type, project_dir, relu=bn.skip)
        if then is None or target.fused_inputs not in (None, bn.inputs):
            continue
        target.fused = runner.with_batchnorm(then, target.fused if bn.skip else bn.run)
        target.fused_inputs = conv.inputs if conv.fused is None else conv.fused_inputs
        target.absorbed = (conv.absorbed or []) + [(conv.name, conv.cls)] + ([(bn.name, bn.cls)] if bn.skip else [])
        conv.skip = True


def _pads(layer, cls) -> tuple:
    """A zero padding's (top, bottom, left, right)."""
    if cls == "ZeroPadding2D":
        return tuple(layer.get_attr(k) for k in ("pad_top", "pad_bottom", "pad_left", "pad_right"))
    return (0, 0, layer.get_attr("pad_left"), layer.get_attr("pad_right"))


def _layer_fn(layer, cls, out_t: FixedType, project_dir: Path, types: dict):
    if cls in ("Clone",):
        return lambda ins: ins[0][0]
    if cls in ("Reshape", "Flatten"):  # to the layer's own shape: a Conv or Pooling after it reads (N, H, W, C)
        shape = tuple(layer.get_output_variable().shape)
        return lambda ins: fp.convert(ins[0][0].reshape((len(ins[0][0]),) + shape), ins[0][1], out_t)
    if cls in ("ZeroPadding1D", "ZeroPadding2D"):
        return _zero_padding(layer, cls, out_t)
    if cls in DENSE_LIKE:
        return _dense_like(layer, cls, out_t, project_dir)
    if cls == "BatchNormalization":
        return _batchnorm(layer, out_t, project_dir)
    if cls in activations.CLASSES:
        return activations.build(layer, out_t, project_dir, types, _weights)
    if cls == "Merge":
        return _merge(layer, out_t)
    if cls in ("GlobalPooling1D", "GlobalPooling2D", "Pooling1D", "Pooling2D"):
        return spatial.pooling(layer, cls, out_t)
    if cls == "Softmax":
        return softmax.layer_fn(layer, out_t, project_dir, types)
    if cls in ("ApplyAlpha", "FixedPointQuantizer"):  # QKeras's alpha scales, HGQ's quantizers
        return quantizers.layer_fn(layer, cls, out_t, project_dir)
    run = spatial.layer_fn(layer, cls, out_t, project_dir)  # depthwise convolutions and the shape layers
    if run is not None:
        return run
    raise Unsupported("no fast implementation of this layer class yet")


def _zero_padding(layer, cls, out_t):
    if cls == "ZeroPadding2D":
        pads = ((0, 0), (layer.get_attr("pad_top"), layer.get_attr("pad_bottom")),
                (layer.get_attr("pad_left"), layer.get_attr("pad_right")), (0, 0))
    else:
        pads = ((0, 0), (layer.get_attr("pad_left"), layer.get_attr("pad_right")), (0, 0))
    if _attr(layer, "data_format", "channels_last") != "channels_last":
        raise Unsupported("channels_first")

    def run(ins):
        raw, t = ins[0]
        return fp.convert(np.pad(raw, pads), t, out_t)
    return run


def _dense_like(layer, cls, out_t: FixedType, project_dir: Path):
    if _attr(layer, "data_format", "channels_last") != "channels_last":
        raise Unsupported("channels_first")
    product = layer.get_attr("product_type")
    if product not in (None, "mult"):
        raise Unsupported(f"product {product}")
    strategy = str(_attr(layer, "strategy", "latency")).lower()
    if strategy not in ("latency", "resource"):
        raise Unsupported(f"strategy {strategy}")
    w, w_t = _weights(layer, "weight", project_dir)
    if layer.get_attr("_weights_transposed"):
        w = np.moveaxis(w, 0, -1)  # hls4ml stores resource-strategy weights output-first
    if "bias" in layer.weights and layer.weights["bias"].data is not None:
        b, b_t = _weights(layer, "bias", project_dir)
    else:
        b, b_t = np.zeros(w.shape[-1], np.int64), FixedType(1, 1)
    acc_t = _type_of(layer, "accum_t")
    bias_acc = fp.convert(b.reshape(-1), b_t, acc_t)  # acc = (accum_t) bias
    n_out = w.shape[-1]
    w2 = w.reshape(-1, n_out)

    if cls == "Dense":
        def run(ins):
            raw, t = ins[0]
            a = raw.reshape(len(raw), -1)
            if a.shape[1] != w2.shape[0]:
                raise Unsupported(f"input of {a.shape[1]} values for {w2.shape[0]} weights rows")
            return fp.mac(a, t, w2, w_t.frac, bias_acc, acc_t, out_t)
        return run

    two_d = cls.endswith("2D")  # a 1-D convolution runs as a 2-D one of height 1
    if two_d:
        kh, sh, out_h = layer.get_attr("filt_height"), layer.get_attr("stride_height"), layer.get_attr("out_height")
        top, bottom = layer.get_attr("pad_top"), layer.get_attr("pad_bottom")
    else:
        kh, sh, out_h, top, bottom = 1, 1, 1, 0, 0
    kw, sw, out_w = layer.get_attr("filt_width"), layer.get_attr("stride_width"), layer.get_attr("out_width")
    left, right = layer.get_attr("pad_left"), layer.get_attr("pad_right")
    if _attr(layer, "dilation", 1) not in (1, None) or layer.get_attr("dilation_height") not in (1, None):
        raise Unsupported("dilation")

    def run(ins):
        raw, t = ins[0]
        x = raw if two_d else raw[:, None]
        n, c = len(x), x.shape[-1]
        res = fp.conv(x, t, w2, w_t.frac, bias_acc, acc_t, out_t, (kh, kw), (sh, sw), (top, left), (out_h, out_w))
        if res is not None:  # windows, products, sums and the cast in one compiled pass
            return res if two_d else res.reshape((n, out_w, n_out))
        if max(-t.min_raw, t.max_raw) < 2 ** 31:  # int32 windows: half the bytes, one compiled pass
            from . import kernels

            cols = np.empty((n * out_h * out_w, kh * kw * c), np.int32)
            kernels.im2col32(np.ascontiguousarray(x), kh, kw, sh, sw, top, left, out_h, out_w, cols)
        else:
            x = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
            win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))  # (n, H', W', c, kh, kw)
            win = win[:, ::sh, ::sw][:, :out_h, :out_w]
            cols = np.ascontiguousarray(win.transpose(0, 1, 2, 4, 5, 3)).reshape(-1, kh * kw * c)
        res = fp.mac(cols, t, w2, w_t.frac, bias_acc, acc_t, out_t)
        return res.reshape((n, out_h, out_w, n_out) if two_d else (n, out_w, n_out))

    def one_pass(ins, pad=None, then=None):
        """fp.conv's single pass over the input (with pad = (pads, pad_t), a zero padding's
        (top, bottom, left, right) and output type folded into the windows; with then, a
        BatchNormalization after it), or None where it does not apply."""
        raw, t = ins[0]
        top_left = (top, left)
        if pad is not None:
            pads, t_pad = pad
            raw, t = fp.convert(raw, t, t_pad), t_pad  # the padding layer's cast (zeros stay zeros)
            top_left = (top + pads[0], left + pads[2])
        if then is not None and then[1].shape != (n_out,):
            return None
        x = raw if two_d else raw[:, None]
        res = fp.conv(x, t, w2, w_t.frac, bias_acc, acc_t, out_t, (kh, kw), (sh, sw), top_left, (out_h, out_w),
                      then=then)
        return res if res is None or two_d else res.reshape((len(x), out_w, n_out))

    def with_batchnorm(conv_run, pad=None):
        def attach(then, after):
            """This convolution and a BatchNormalization after it (then: _batchnorm_epilogue's) in
            one pass; conv_run then `after`, the BatchNormalization's own run, where they cannot be."""
            def fused(ins):
                res = one_pass(ins, pad, then)
                return after([(conv_run(ins), out_t)]) if res is None else res
            return fused
        return attach

    def padded(pads, pad_t: FixedType, pad_run):
        """This convolution of a zero padding's input (pads: top, bottom, left, right; pad_t
        its output type), the padding folded into the windows; pad_run where that cannot be."""
        def fused(ins):
            res = one_pass(ins, (pads, pad_t))
            return run([(pad_run(ins), pad_t)]) if res is None else res
        fused.with_batchnorm = with_batchnorm(fused, (pads, pad_t))
        return fused
    run.padded = padded
    run.with_batchnorm = with_batchnorm(run)
    return run


def _batchnorm_epilogue(layer, in_t: FixedType, out_t: FixedType, project_dir: Path, relu: bool):
    """A BatchNormalization of in_t-typed data as kernels.conv16 runs it in a convolution's output
    pass: (ep, scale, bias), its arithmetic that of _batchnorm's kernel; None where _batchnorm
    would not run that kernel."""
    s, s_t = _weights(layer, "scale", project_dir)
    b, b_t = _weights(layer, "bias", project_dir)
    frac = max(in_t.frac + s_t.frac, b_t.frac)
    codes = fp.elementwise_codes(frac - out_t.frac, out_t)
    if codes is None or frac >= 62 or s.ndim != 1 or b.shape != s.shape:
        return None
    ep = (True, frac - in_t.frac - s_t.frac, frac - b_t.frac, *codes, relu)
    return ep, np.ascontiguousarray(s, dtype=np.int64), np.ascontiguousarray(b, dtype=np.int64)


def _batchnorm(layer, out_t: FixedType, project_dir: Path, relu: bool = False):
    """BatchNormalization, with relu followed by a ReLU of out_t in the same pass."""
    s, s_t = _weights(layer, "scale", project_dir)
    b, b_t = _weights(layer, "bias", project_dir)

    def run(ins):
        raw, t = ins[0]
        frac = max(t.frac + s_t.frac, b_t.frac)  # data * scale + bias, exact
        codes = fp.elementwise_codes(frac - out_t.frac, out_t)
        if codes is None or s.shape != raw.shape[-1:] or frac >= 62:
            total = (raw * s << (frac - t.frac - s_t.frac)) + (b << (frac - b_t.frac))
            res = fp.cast(total, frac, out_t)
            return np.maximum(res, 0) if relu else res
        from . import kernels

        x = np.ascontiguousarray(raw, dtype=np.int64).reshape(-1, s.shape[0])
        out = np.empty(x.shape, np.int64)
        kernels.affine_cast(x, s.astype(np.int64), b.astype(np.int64), frac - t.frac - s_t.frac, frac - b_t.frac,
                            *codes, out, relu)
        return out.reshape(raw.shape)
    return run


def _merge(layer, out_t: FixedType, relu: bool = False):
    """A merge of two inputs, with relu followed by a ReLU of out_t in the same pass."""
    op = str(layer.get_attr("op")).lower()
    if op not in ("add", "subtract", "multiply", "maximum", "minimum"):
        raise Unsupported(f"merge {op}")

    def run(ins):
        (a, ta), (b, tb) = ins
        if op == "multiply":
            res = fp.cast(a * b, ta.frac + tb.frac, out_t)
            return np.maximum(res, 0) if relu else res
        frac = max(ta.frac, tb.frac)
        codes = fp.elementwise_codes(frac - out_t.frac, out_t)
        if codes is not None and a.shape == b.shape and frac < 62:
            from . import kernels

            out = np.empty(a.size, np.int64)
            kernels.merge_cast(np.ascontiguousarray(a, dtype=np.int64).reshape(-1),
                               np.ascontiguousarray(b, dtype=np.int64).reshape(-1),
                               frac - ta.frac, frac - tb.frac, ("add", "subtract", "maximum", "minimum").index(op),
                               *codes, out, relu)
            return out.reshape(a.shape)
        a, b = a << (frac - ta.frac), b << (frac - tb.frac)
        value = {"add": np.add, "subtract": np.subtract, "maximum": np.maximum, "minimum": np.minimum}[op](a, b)
        res = fp.cast(value, frac, out_t)
        return np.maximum(res, 0) if relu else res
    return run


# ------------------------------------------------------------------ the project's own types

def _defined_types(project_dir: Path) -> dict:
    """{name: FixedType} of every `typedef ap_...<...> name;` in the project's defines.h."""
    path = project_dir / "firmware" / "defines.h"
    found = {}
    if path.is_file():
        for text, name in re.findall(r"typedef\s+(ap_u?(?:fixed|int)<[^>]*>)\s+(\w+)\s*;", path.read_text()):
            try:
                found[name] = fp.cpp_type(text)
            except Unsupported:
                pass
    return found
