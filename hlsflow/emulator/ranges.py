"""Keras values against the design's fixed-point types: which types overflow or lose resolution.

For every hls4ml layer, the Keras value range of each type it has (output, accumulator,
BatchNormalization's scale and bias, activation and softmax tables, weights) against what that
type can hold. From Keras values and hls4ml's graph alone: no g++, no emulation. csim uses it to
name the layers at fault, `hlsflow profile` to draw every type, `tune-precision` to pick the
types it widens; so it imports none of them.
"""

from dataclasses import dataclass

import numpy as np

from .. import fixedtype
from ..fixedtype import FixedType
from ..design import in_memory

# Layers whose accumulator holds a sum we can bound from Keras values.
ACCUM_FROM_OUTPUT = ("Conv1D", "Conv2D", "PointwiseConv1D", "PointwiseConv2D", "Dense")
ACCUM_POOLING = ("GlobalPooling2D", "GlobalPooling1D", "Pooling2D", "Pooling1D")
RESOLUTION_SHARE = 0.05  # above this share of non-zero values below the resolution, a type loses resolution
# Types the tuner may change: what the data flows through, not the trained weights.
TUNABLE = ("result", "accum", "table", "exp_table", "inv_table", "inv_inp")
BN_TUNABLE = ("scale", "bias")  # BatchNormalization's own scale and bias are data-path types too
TABLE_ACTIVATIONS = ("sigmoid", "tanh", "softsign", "softplus", "elu", "selu")
KIND_WORDS = {"accum": "accumulator", "result": "output", "exp_table": "softmax exp table",
              "inv_table": "softmax 1/sum table", "table": "activation table", "inv_inp": "softmax sum (1/sum table's input)"}
QUANTILES = (5, 25, 50, 75, 95)  # of log2 |value|: the profile picture's box and whiskers, as hls4ml's numerical()


@dataclass
class Finding:
    layer: str
    kind: str  # the hls4ml type without _t: "result", "accum", "scale", "exp_table", ...
    keras_min: float
    keras_max: float
    type_name: str
    type_min: float
    type_max: float
    resolution: float
    overflow: bool
    underflow_share: float  # share of non-zero values smaller than the resolution
    fixed: FixedType = None  # the type itself, for widening it
    trace_max_err: float = None
    trace_mean_err: float = None
    keras_layer: str = None  # the Keras layer the values come from
    layer_class: str = None  # hls4ml's class of the layer
    modes: str = ""  # rounding/saturation modes of the type, kept when it is widened
    log2_quantiles: list = None  # QUANTILES of log2 |value| over the non-zero values, for the picture
    terms: int = None  # an accumulator's products per output (a Dense's or Conv's inputs times its kernel)

    @property
    def loses_resolution(self) -> bool:
        return self.underflow_share > RESOLUTION_SHARE

    @property
    def verdict(self) -> str:
        if self.overflow:
            return "OVERFLOW"
        if self.loses_resolution:
            return "loses resolution"
        return "ok"

    @property
    def tunable(self) -> bool:
        return self.kind in TUNABLE or (self.layer_class == "BatchNormalization" and self.kind in BN_TUNABLE)


def fixed_type(precision) -> FixedType:
    """The FixedType of an hls4ml precision object (fixed-point or integer)."""
    return fixedtype.from_hls4ml(precision)


def _modes(precision) -> str:
    """',AP_RND,AP_SAT' for a type with non-default modes (hls4ml's softmax tables saturate)."""
    parts = []
    for attr, default in (("rounding_mode", "TRN"), ("saturation_mode", "WRAP")):
        mode = getattr(precision, attr, None)
        name = getattr(mode, "name", None) or (str(mode) if mode is not None else None)
        if name and name.upper() != default:
            parts.append(name.upper())
    if parts and len(parts) == 1 and parts[0] in ("SAT", "SAT_SYM", "SAT_ZERO"):
        parts.insert(0, "TRN")  # the saturation mode needs the rounding mode before it
    return "".join(f",AP_{p}" for p in parts)


def type_text(t: FixedType, modes: str = "") -> str:
    """The type as a config precision, with the modes of the type it widens (`Finding.modes`)."""
    return f"ap_{'' if t.signed else 'u'}fixed<{t.width},{t.integer}{modes}>"


def keras_layer_outputs(keras_model, x) -> dict:
    """Every Keras layer's output, as hls4ml's profiling names them: a layer with a built-in
    activation gives its pre-activation output under its own name and the activated one under
    NAME_ACTIVATION, as hls4ml splits it. Recurrent layers keep their activations inside (hls4ml
    does not split them, and Keras will not let them be unset), so they give their output alone."""
    from ..loading import keras_module

    keras = keras_module()
    layers = [layer for layer in keras_model.layers
              if not isinstance(layer, (keras.layers.InputLayer, keras.layers.Dropout))]
    outputs, names = {}, []
    for layer in layers:
        name, activation = layer.name, getattr(layer, "activation", None)
        label = getattr(activation, "__name__", None) or type(activation).__name__
        if activation is not None and type(layer).__name__ not in ("Activation", "QActivation") and label != "linear":
            try:
                layer.activation = None
            except AttributeError:  # an LSTM's or GRU's activation is its cell's, read-only
                pass
            else:
                try:
                    outputs[name] = _outputs_of(keras_model, [layer], x)[0]
                finally:
                    layer.activation = activation
                name = f"{layer.name}_{label}"
        names.append(name)
    outputs.update(zip(names, _outputs_of(keras_model, layers, x)))
    return outputs


def _outputs_of(keras_model, layers, x) -> list:
    """The outputs of `layers` on x, each as a numpy array."""
    from ..loading import keras_module

    probe = keras_module().Model(keras_model.inputs, [layer.output for layer in layers])
    values = probe.predict(x, batch_size=64, verbose=0)
    return [np.asarray(v) for v in (values if isinstance(values, list) else [values])]


def _accumulator_values(layer, keras_out, keras_model):
    """The values a layer's accumulator holds, as far as Keras can tell us, or None."""
    cls = layer.class_name
    if cls in ACCUM_FROM_OUTPUT:
        bias = layer.get_weights("bias") if "bias" in layer.weights else None
        if bias is not None and np.shape(keras_out)[-1:] != np.shape(bias.data)[-1:]:
            return None  # these values are not this layer's own sums
        return keras_out - (bias.data if bias is not None else 0.0)  # the sum before the bias is added
    if cls in ACCUM_POOLING and str(layer.get_attr("pool_op", "Average")) == "Max":
        return keras_out  # hls4ml takes the max in the accumulator type too
    if cls in ACCUM_POOLING and str(layer.get_attr("pool_op", "Average")) == "Average":
        shape = layer.get_input_variable().shape
        n = int(np.prod(shape[:-1])) if cls.startswith("Global") else \
            int(layer.get_attr("pool_height", 1)) * int(layer.get_attr("pool_width", 1))
        return keras_out * n  # hls4ml sums the window, then divides
    return None


def _softmax_tables(layer, z):
    """What hls4ml's softmax tables hold for inputs z: exp and 1/sum (of z - max in 'stable')."""
    z = np.asarray(z, dtype=np.float64).reshape(len(z), -1)
    if str(layer.get_attr("implementation", "stable")).lower() == "stable":
        z = z - z.max(axis=1, keepdims=True)
    e = np.exp(np.clip(z, -50, 50))
    total = e.sum(axis=1)
    # accum_t holds each exp and the adder tree's sums, inv_inp_t the sum the 1/sum table is indexed by
    return {"exp_table": e, "inv_table": 1.0 / total, "accum": np.concatenate([e.reshape(-1), total]),
            "inv_inp": total}


def _finding(layer, kind, values, precision, source) -> Finding:
    t = fixed_type(precision)
    values = np.asarray(values, dtype=np.float64)
    lo, hi = float(values.min()), float(values.max())
    nonzero = np.abs(values[values != 0])
    share = float(np.mean(nonzero < t.resolution)) if nonzero.size else 0.0
    quantiles = [float(q) for q in np.percentile(np.log2(nonzero), QUANTILES)] if nonzero.size else None
    return Finding(layer.name, kind, lo, hi, type_text(t, _modes(precision)), t.min_value, t.max_value,
                   t.resolution, overflow=hi > t.max_value or lo < t.min_value, underflow_share=share, fixed=t,
                   keras_layer=source, layer_class=layer.class_name, modes=_modes(precision),
                   log2_quantiles=quantiles)


def range_findings(hls_model, keras_model, keras_outs, x=None, values=None) -> list:
    """A finding for every fixed-point type of every hls4ml layer whose values Keras tells us:
    the input, results, accumulators, weights and biases (BatchNormalization's scale and bias),
    activation tables and softmax's exp/inv tables. A layer hls4ml inserted (padding, clones,
    reshapes) carries the values of the layer it reads from. `values`, when given, is filled with
    each layer's output values."""
    findings, sources = [], {}
    values = {} if values is None else values
    for layer in hls_model.get_layers():
        name = layer.name
        if layer.class_name == "Input":
            out, source = x, f"{name} (model input)"
        elif name in keras_outs:
            out, source = keras_outs[name], name
        elif name.endswith("_pointwise") and name[:-len("_pointwise")] in keras_outs:
            # The second half of a SeparableConv hls4ml split: the Keras layer's own output.
            out, source = keras_outs[name[:-len("_pointwise")]], name[:-len("_pointwise")]
        else:
            node = layer.get_input_node()
            out = values.get(node.name) if node is not None else None
            source = f"{sources.get(node.name, '?')} (layer inserted by hls4ml)" if node is not None else None
            if any(w.data is not None for w in layer.weights.values()):
                out = None  # it computes, not hands values on (a separable conv's depthwise half): unknown
        if out is None:
            continue
        values[name], sources[name] = out, source.split(" (")[0]
        for type_key, named in layer.types.items():
            kind = type_key[:-2] if type_key.endswith("_t") else type_key
            precision = named.precision
            try:
                fixed_type(precision)
            except fixedtype.NotFixedPoint:  # e.g. ApplyAlpha's power-of-two scale (an exponent type)
                continue
            vals = None
            if kind == "result":
                vals = out
            elif kind in ("exp_table", "inv_table", "inv_inp", "accum") and layer.class_name == "Softmax":
                node = layer.get_input_node()
                if node is not None and node.name in values:
                    vals = _softmax_tables(layer, values[node.name])[kind]
            elif kind == "accum":
                vals = _accumulator_values(layer, out, keras_model)
            elif kind == "table" and str(layer.get_attr("activation", "")).lower() in TABLE_ACTIVATIONS:
                vals = out  # only these activations look their output up in a table
            elif kind in layer.weights:
                vals = getattr(layer.weights[kind], "data", None)
            if vals is None or np.size(vals) == 0:
                continue
            try:
                f = _finding(layer, kind, vals, precision, source)
            except fixedtype.NotFixedPoint:
                continue  # a QKeras power-of-two (exponent) type: no fixed-point range to check
            if kind == "accum" and getattr(layer.weights.get("weight"), "data", None) is not None:
                # hls4ml casts each product to accum_t (truncating) before adding: the bias grows with their count
                f.terms = int(np.prod(np.shape(layer.weights["weight"].data)[:-1]))
            if layer.class_name == "Softmax" and kind == "result":
                f.underflow_share = 0.0  # tiny probabilities rounding to 0 do not change the label
            if kind == "exp_table" or (layer.class_name == "Softmax" and kind in ("accum", "inv_inp")):
                f.underflow_share = 0.0  # exp of far-below-max inputs rounding to 0 is what softmax does
            findings.append(f)
    return findings


SOFTMAX_TABLE_TYPES = ("exp_table", "inv_table", "inv_inp", "accum")  # hls4ml 1.3.0's Precision keys of a softmax


@dataclass
class TableSetting:
    """A layer that looks values up in tables: its sizes, implementation and table types, as the
    config sets them (LayerName: TableSize, Implementation, Precision)."""
    layer: str
    activation: str  # softmax, sigmoid, tanh, ...
    implementation: str  # a softmax's (stable, latency, legacy, argmax); "" otherwise
    table_size: int
    types: dict  # {Precision key: (FixedType, modes)}
    input_type: FixedType = None
    input_layer: str = None
    tied_share: float = None  # a softmax's samples whose top two inputs share a table entry (profile's)

    @property
    def step(self) -> float:
        """The input step between two table entries: a softmax's stable exp table is indexed by the
        top log2(size) bits of x_max - x in a type of its input's integer bits less the sign
        (hls4ml's inp_norm_t); sigmoid-style tables by data * size / 16, tanh's by / 8."""
        if self.activation == "softmax":
            if self.input_type is None or self.implementation not in ("stable", "latency"):
                return None
            integer = self.input_type.integer - int(self.input_type.signed)
            span = 2.0 ** integer if self.implementation == "stable" else 2.0 ** self.input_type.integer
            return span / self.table_size
        span = 8.0 if self.activation == "tanh" else 16.0
        return span / self.table_size

    def describe(self) -> str:
        kinds = ", ".join(f"{k} {type_text(t, m)}" for k, (t, m) in self.types.items())
        what = f"{self.activation} ({self.implementation})" if self.implementation else self.activation
        step = f", input step {self.step:.3g}" if self.step else ""
        return f"{self.layer} {what}: TableSize {self.table_size}{step}; {kinds}"


def table_settings(hls_model) -> list:
    """A TableSetting for every softmax and table-based activation (sigmoid, tanh, ...) of the design."""
    found = []
    for layer in hls_model.get_layers():
        activation = str(layer.get_attr("activation", "") or "").lower()
        if layer.class_name == "Softmax":  # (a Dense's activation attribute names the softmax hls4ml splits off)
            keys, implementation = SOFTMAX_TABLE_TYPES, str(layer.get_attr("implementation", "stable")).lower()
        elif layer.class_name == "Activation" and activation in TABLE_ACTIVATIONS:
            keys, implementation = ("table",), ""
        else:
            continue
        types = {}
        for key in keys:
            named = layer.types.get(f"{key}_t")
            if named is None:
                continue
            try:
                types[key] = (fixed_type(named.precision), _modes(named.precision))
            except fixedtype.NotFixedPoint:
                continue
        node = layer.get_input_node()
        try:
            in_t = fixed_type(layer.get_input_variable().type.precision)
        except fixedtype.NotFixedPoint:
            in_t = None
        found.append(TableSetting(layer.name, "softmax" if keys is SOFTMAX_TABLE_TYPES else activation,
                                  implementation, int(layer.get_attr("table_size", 1024) or 1024), types, in_t,
                                  node.name if node is not None else None))
    return found


def findings_for(cfg, keras_model, x) -> list:
    """Every type's finding from Keras values alone (hls4ml's conversion in memory, no g++)."""
    with in_memory(keras_model, cfg) as hls_model:
        return range_findings(hls_model, keras_model, keras_layer_outputs(keras_model, x), x)


def at_fault(findings) -> list:
    """The data-path types that overflow or lose resolution, overflow first."""
    return sorted((f for f in findings if f.tunable and f.verdict != "ok"), key=lambda f: not f.overflow)


def quick_check(cfg, keras_model, x) -> list:
    """The data-path types at fault from Keras values alone (no g++): what `csim` names when
    agreement or accuracy is low."""
    return at_fault(findings_for(cfg, keras_model, x))


def describe(f: Finding) -> str:
    """One line: the layer and type at fault, and what Keras needs of it."""
    what = KIND_WORDS.get(f.kind, f.kind)
    source = "" if not f.keras_layer or f.keras_layer == f.layer else f" (from Keras {f.keras_layer})"
    if f.overflow:
        return (f"{f.layer} {what}{source}: Keras reaches [{f.keras_min:.3g}, {f.keras_max:.3g}] but {f.type_name} "
                f"holds [{f.type_min:.3g}, {f.type_max:.4g}]")
    return (f"{f.layer} {what}{source}: {f.underflow_share:.0%} of Keras values are below the resolution "
            f"{f.resolution:.2g} of {f.type_name}")
