"""QKeras v3 layers for hls4ml 1.3.0's Keras 3 front end (the keras3 lane), through hls4ml's own
registration API: a subclass of hls4ml's KerasV3LayerHandler is entered in its handler registry
for the layers it names (its metaclass does it); hls4ml itself is not changed.

hls4ml 1.3.0 has no Keras 3 handler for QKeras's layers (hls4ml/converters/keras_v3/ handles
Keras's and HGQ2's only), so its dispatcher (converters/keras_v3_to_hls.py,
KerasV3HandlerDispatcher.v2_call) falls back to the Keras 2 QKeras handlers
(converters/keras/qkeras.py) and fails twice on the way:
- it asserts that a layer's `activation` is a Python function, and a QActivation's is a QKeras
  quantizer object ("Activation function for layer ... is not a function");
- the QKerasQuantizer those handlers attach (hls4ml/model/quantizers.py) returns
  `quantizer_fn(data).numpy()`, which a TensorFlow tensor has and a JAX array does not.
The handler here calls the same Keras 2 QKeras handlers, as the fallback does, without the first
and with quantizers that return numpy arrays; a layer's own activation is split into a layer after
it as hls4ml's Keras 2 parser does. What hls4ml then makes of the layers (types,
rounding, saturation) is its own QKeras conversion, unchanged."""

import numpy as np

# QKeras v3's layers (module.class as hls4ml's registry keys them) and their Keras 2 handler in hls4ml.
LAYERS = {"qkeras.qlayers.QDense": "QDense", "qkeras.qlayers.QActivation": "QActivation",
          "qkeras.qconvolutional.QConv1D": "QConv1D", "qkeras.qconvolutional.QConv2D": "QConv2D",
          "qkeras.qnormalization.QBatchNormalization": "QBatchNormalization"}


class _Array(np.ndarray):
    """A numpy array with TensorFlow's `.numpy()`, which hls4ml's QKeras quantizers call."""

    def numpy(self):
        return np.asarray(self)


class _NumpyOut:
    """A QKeras quantizer function whose output is an _Array, whatever Keras's backend returns (JAX here)."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, data):
        return np.asarray(self.fn(data)).view(_Array)


def register() -> None:
    """Enter the handler in hls4ml's registry once (importing hls4ml's Keras 3 front end)."""
    from hls4ml.converters.keras_v3._base import KerasV3LayerHandler, registry
    from hls4ml.model.quantizers import QKerasBinaryQuantizer, QKerasPO2Quantizer, QKerasQuantizer

    if all(name in registry for name in LAYERS):
        return

    class QKerasV3Handler(KerasV3LayerHandler):
        handles = tuple(LAYERS)

        def __call__(self, layer, in_tensors, out_tensors):
            from hls4ml.converters.keras_v2_to_hls import layer_handlers

            name = type(layer).__name__

            class Reader:  # as hls4ml's fallback reads a layer's weights
                def get_weights_data(self, layer_name, var_name):
                    for w in layer.weights:
                        if var_name in w.name:
                            return np.array(w)
                    return None

            found, _ = layer_handlers[LAYERS[f"{type(layer).__module__}.{name}"]](
                {"config": layer.get_config(), "class_name": name}, [t.name for t in in_tensors],
                [list(t.shape) for t in in_tensors], Reader())
            for value in found.values():
                if isinstance(value, (QKerasQuantizer, QKerasBinaryQuantizer, QKerasPO2Quantizer)):
                    value.quantizer_fn = _NumpyOut(value.quantizer_fn)
            found["input_keras_tensor_names"] = [t.name for t in in_tensors]
            found["output_keras_tensor_names"] = [t.name for t in out_tensors]
            act = found.get("activation") if name != "QActivation" else None
            if act in (None, "linear"):
                return (found,)
            # A layer's own activation becomes a layer after it, as hls4ml's Keras 2 parser splits it
            # (keras_v2_to_hls.parse_keras_model): a QKeras quantizer a QActivation, else an Activation.
            quantizer = isinstance(act, dict)
            split = {"class_name": "QActivation" if quantizer else "Activation",
                     "config": {"name": f"{layer.name}_{act['class_name'] if quantizer else act}", "activation": act}}
            act_layer, _ = layer_handlers[split["class_name"]](split, None, [list(out_tensors[0].shape)], Reader())
            between = f"{out_tensors[0].name}_activation"
            found["output_keras_tensor_names"] = [between]
            act_layer["input_keras_tensor_names"] = [between]
            act_layer["output_keras_tensor_names"] = [t.name for t in out_tensors]
            return found, act_layer
