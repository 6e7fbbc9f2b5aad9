"""A model and a config as hls4ml's ModelGraph: the one door to hls4ml's converter.

Every stage that needs hls4ml's view of a design comes here: convert writes the graph it gets
into a project; csim, plan, profile and tune ask for one in memory (`in_memory`), in a folder
that is gone when they are done. hls4ml's chatter is captured, its failures are one sentence,
and what hls4ml would silently ignore (a LayerName that names no layer) is refused first.
"""

import contextlib
import copy
import io
import re
import tempfile
from pathlib import Path

from . import console
from .errors import FlowError


def unconvertible(layers) -> str:
    """The sentence that refuses the first of `layers` ((name, Keras class name) pairs) hls4ml
    cannot convert, or "" when it converts them all. The one check: flow and init refuse a loaded
    model's layers with it, and the loader a saved TensorFlow-op layer before it is ever built."""
    from hls4ml.converters.keras_v2_to_hls import get_supported_keras_layers

    # hls4ml 1.3.0 removes Dropout itself (its Keras converter's skip_layers): no reason to refuse it.
    supported = set(get_supported_keras_layers()) | {"InputLayer", "Dropout"}
    for name, cls in layers:
        if cls not in supported:
            return (f"Layer '{name}' ({cls}) cannot be converted by hls4ml: replace it with a supported layer or "
                    "remove it from the model.")
    return ""


def check_layers_supported(keras_model) -> None:
    sentence = unconvertible((layer.name, layer.__class__.__name__) for layer in _all_layers(keras_model))
    if sentence:
        raise FlowError(sentence)


def _all_layers(keras_model):
    """The model's layers, and those of the models nested in it (hls4ml converts them in line)."""
    for layer in keras_model.layers:
        yield layer
        if isinstance(getattr(layer, "layers", None), list):
            yield from _all_layers(layer)


# hls4ml writes layer names into the C++ it generates (an input's variable, comments): a name with
# quotes, brackets, slashes or a newline there would be code that g++ compiles and csim loads.
SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}")


def check_layer_names_are_safe(keras_model) -> None:
    for layer in keras_model.layers:
        if not SAFE_NAME.fullmatch(str(layer.name)):
            raise FlowError(f"Layer name {str(layer.name)[:80]!r} has characters hls4ml would write into C++ code "
                            "as they are: rename the layer in Keras (letters, digits, _ . -) and save the model again.")


def check_layer_names(keras_model, hls_model, cfg) -> None:
    """Every LayerName entry of the config names a layer hls4ml makes of this model: a Keras layer,
    the activation hls4ml splits off one (`<layer>_<activation>`), or a layer of the converted
    graph (hls4ml inserts some). hls4ml ignores the others, so a typo would silently leave that
    layer at the model's defaults."""
    import difflib

    from .config_files import config_is_for

    if cfg.source is not None and not config_is_for(cfg):
        return  # another model's config, used with --model: its entries are not about this model
    known = {layer.name for layer in hls_model.get_layers()}
    for layer in keras_model.layers:
        known.add(layer.name)
        activation = layer.get_config().get("activation")
        if isinstance(activation, dict):  # a QKeras quantizer
            activation = activation.get("class_name")
        if isinstance(activation, str):
            known.add(f"{layer.name}_{activation}")
    for name in cfg.hls_config.get("LayerName") or {}:
        if name not in known and name in _named_by_hls4ml(keras_model):
            continue  # a layer hls4ml makes and then removes again (an HGQ quantizer fused into a DA layer)
        if name not in known:
            close = difflib.get_close_matches(str(name), sorted(known), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            where = cfg.source or "the config"
            raise FlowError(f"LayerName '{name}' in {where} names no layer of {cfg.keras_model.name}, so hls4ml would "
                            f"ignore its settings: {hint}fix the name, or remove the entry.")


def check_strategy_available(cfg) -> None:
    """distributed_arithmetic needs da4ml, which needs numpy 2: the keras3 lane has it, the reference
    lane (numpy 1.25) cannot; hls4ml would fail deep in its optimizer instead."""
    import importlib.util

    hls = cfg.hls_config
    asked = [hls.get("Model", {}).get("Strategy")] + [layer.get("Strategy") for layer in
                                                       (hls.get("LayerName") or {}).values() if isinstance(layer, dict)]
    if any(str(s).lower() == "distributed_arithmetic" for s in asked) and importlib.util.find_spec("da4ml") is None:
        raise FlowError("Strategy distributed_arithmetic needs da4ml, which needs numpy 2 and is only in the keras3 "
                        "lane: run a Keras 3 model with --lane keras3, or use Latency or Resource here.")


def latency_twin(hls_model):
    """hls_model's own Keras model and configuration converted again with Latency wherever
    distributed_arithmetic is asked: the same layers with the float weights hls4ml deletes from a DA
    layer once its adder graph is generated (the fast engine reads them, emulator/da.py)."""
    import hls4ml

    config = hls_model.config.config
    hls_config = copy.deepcopy(config["HLSConfig"])
    for entry in [hls_config.get("Model", {})] + list((hls_config.get("LayerName") or {}).values()):
        if isinstance(entry, dict) and str(entry.get("Strategy", "")).lower() in ("distributed_arithmetic", "da"):
            entry["Strategy"] = "Latency"
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        return hls4ml.converters.convert_from_keras_model(
            config["KerasModel"], hls_config=hls_config, output_dir=f"{tmp}/prj", backend=config["Backend"],
            io_type=config["IOType"], part=config["Part"], clock_period=config["ClockPeriod"])


def _named_by_hls4ml(keras_model) -> set:
    """The layer names hls4ml's own config for this model has (asked only when a name is not found)."""
    import hls4ml

    with contextlib.redirect_stdout(io.StringIO()):
        made = hls4ml.utils.config_from_keras_model(keras_model, granularity="name", backend="Vivado")
    return set(made.get("LayerName") or {})


def convert_model(keras_model, cfg, output_dir):
    """hls4ml's conversion with its chatter captured; returns (ModelGraph, captured text)."""
    import hls4ml

    check_layers_supported(keras_model)
    check_layer_names_are_safe(keras_model)
    check_strategy_available(cfg)
    kwargs = cfg.hls4ml_kwargs()
    kwargs["output_dir"] = str(output_dir)
    captured = io.StringIO()
    try:
        with contextlib.redirect_stdout(captured):
            hls_model = hls4ml.converters.convert_from_keras_model(keras_model, **kwargs)
    except Exception as exc:
        console.say(captured.getvalue()[-2000:])
        clash = _attribute_named_layers(keras_model)
        if clash:
            raise FlowError(f"hls4ml could not convert {cfg.keras_model.name} ({exc}): layer '{clash[0]}' has the name "
                            "of one of hls4ml's layer attributes, which hls4ml 1.3.0 overwrites with the layer's "
                            "output: rename that layer in Keras (e.g. to "
                            f"'{clash[0]}_layer') and save the model again.") from exc
        raise FlowError(f"hls4ml could not convert {cfg.keras_model.name} ({exc}): check the layer and "
                        "precision settings named above.") from exc
    check_layer_names(keras_model, hls_model, cfg)
    return hls_model, captured.getvalue()


def _attribute_named_layers(keras_model) -> list:
    """Layers named like an attribute hls4ml keeps beside the layer's output variable (a Permute
    named 'perm'): hls4ml stores the output under the layer's name, so the attribute is lost."""
    import inspect

    import hls4ml.model.layers as hls_layers

    attributes = {"perm", "dims", "op", "data_format", "precision", "strategy", "reuse_factor", "implementation"}
    for _, cls in inspect.getmembers(hls_layers, inspect.isclass):
        attributes |= {attr.name for attr in getattr(cls, "_expected_attributes", [])}
    return [layer.name for layer in keras_model.layers if layer.name in attributes]


@contextlib.contextmanager
def in_memory(keras_model, cfg):
    """The design's ModelGraph, converted into a temporary folder that goes when the block ends:
    hls4ml's converter always writes somewhere, and nothing of it may land in the output folder."""
    with tempfile.TemporaryDirectory() as tmp:
        hls_model, _ = convert_model(keras_model, cfg, Path(tmp) / "prj")
        yield hls_model
