"""Loading the user's model: which files a model is made of, and reading it with Keras after
refusing any code it holds (the samples are samples.py's). The file-level helpers import nothing
heavy, so the host side uses them to check and mount paths before any container starts."""

import contextlib
import json
import os
from pathlib import Path

from .errors import FlowError
# search/tune.py's names, until it imports them from samples.py
from .samples import load_samples, read_samples, resolve_samples  # noqa: F401

MODEL_SUFFIXES = (".keras", ".h5", ".json")


def weights_beside(path: Path):
    """The weights file of a JSON architecture, if one of the usual names is beside it."""
    for weights in (path.with_suffix(".h5"), path.with_suffix(".weights.h5"),
                    path.with_name(path.stem + "_weights.h5")):
        if weights.is_file():
            return weights
    return None


def model_files(path) -> list:
    """The files a model consists of: one .keras/.h5, or a .json architecture plus its weights."""
    path = Path(path)
    if not path.exists():
        raise FlowError(f"Model file {path} does not exist: give the path of a .keras, .h5 or .json model with --model.")
    if path.is_dir():
        raise FlowError(f"{path} is a directory, not a model file: give the path of a .keras, .h5 or .json model.")
    if path.suffix == ".json":
        weights = weights_beside(path)
        if weights is None:
            raise FlowError(f"No weights found for {path}: save them beside it as {path.with_suffix('.h5').name}.")
        return [path, weights]
    return [path]


def load_keras_model(path):
    """The user's model, read by Keras only after hlsflow has read its architecture and found
    nothing in it that would run or import code: a model someone hands a user is data."""
    from .console import verbose

    files = model_files(path)
    if not verbose():
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    tf = _runtime()

    if not verbose():
        # Keras's "triggered tf.function retracing" notices (five lines each, once a process has
        # predicted on a few models or batch shapes) say nothing a user can act on.
        tf.get_logger().setLevel("ERROR")

    with _saved_model(path, files[0], tf) as (config, saved):
        refuse_code(path, config)  # before Keras deserialises anything
        unknown = unknown_layers(config, tf)
        objects, missing = _keras3_packages(config) if isinstance(tf, _Keras3) else _quantized_objects(unknown)
        try:
            with tf.keras.utils.custom_object_scope(objects), _safe_mode():
                if files[0].suffix == ".json":
                    model = tf.keras.models.model_from_json(saved)
                    model.load_weights(str(files[1]))
                else:  # the .keras archive's path, or the .h5 file hlsflow has open and has read
                    model = tf.keras.models.load_model(saved, compile=False, safe_mode=True)
        except Exception as exc:  # Keras raises many types for a bad file; all mean the same to the user.
            text = " ".join(str(exc).split())
            sentence = _unknown_layers_sentence(path, unknown, missing)
            if sentence:
                raise FlowError(sentence) from exc
            reason = _first_sentence(text) or type(exc).__name__
            raise FlowError(_not_a_model(path, tf, reason)) from exc
    return model


def _not_a_model(path, tf, reason: str) -> str:
    return (f"{path} is not a Keras model {getattr(tf, 'WHO', 'TensorFlow')} {tf.__version__} can load ({reason}): "
            "give a .keras, .h5 or .json file saved by Keras.")


def keras3_lane() -> bool:
    """Whether this is the keras3 lane (Keras 3 on JAX, docker/keras3/): it has no TensorFlow."""
    import importlib.util

    return importlib.util.find_spec("tensorflow") is None


def keras_module():
    """Keras as the flow uses it: tf.keras in the reference lane (Keras 2.15), Keras 3 itself in the
    keras3 lane."""
    if keras3_lane():
        import keras

        return keras
    import tensorflow as tf

    return tf.keras


class _Keras3:
    """What load_keras_model takes from TensorFlow (`tf.keras`, `tf.__version__`, its logger),
    from Keras 3 alone, for the keras3 lane."""

    WHO = "Keras"

    def __init__(self):
        import logging

        import keras

        self.keras, self.__version__ = keras, keras.__version__
        self.get_logger = lambda: logging.getLogger("keras")


def _runtime():
    if keras3_lane():
        return _Keras3()
    import tensorflow as tf

    return tf


@contextlib.contextmanager
def _saved_model(path, file: Path, tf):
    """(the architecture as Keras saved it, what Keras is then given to read): a .json's text, a
    .keras archive's path (its config.json), an .h5's open file (its model_config attribute). The
    format is told as Keras tells it (a .keras file that is HDF5 is read as HDF5, as Keras reads it)."""
    import zipfile

    import h5py

    handle = None
    try:
        if file.suffix == ".json":
            saved = file.read_text()
            config = json.loads(saved)
        elif file.suffix == ".keras" and zipfile.is_zipfile(file):
            with zipfile.ZipFile(file) as archive:
                names = archive.namelist()
                config = json.loads(archive.read("config.json"))
            _refuse_other_lane(path, file, tf)
            extra = sorted(set(names) - KERAS_ARCHIVE)
            if extra or "model.weights.h5" not in names:
                # Keras 2.15 unpickles a model.weights.npz and unpacks any further files to a folder.
                what = f"holds {extra[0]}" if extra else "has no model.weights.h5"
                raise FlowError(f"{path} {what}, which a model Keras saves as .keras does not: save the model "
                                "again with model.save('name.keras').")
            saved = str(file)
        elif h5py.is_hdf5(file):
            saved = handle = h5py.File(file, "r")
            text = handle.attrs.get("model_config")
            if text is None:
                raise FlowError(_not_a_model(path, tf, "it holds no architecture, e.g. weights only"))
            config = json.loads(text.decode("utf-8") if hasattr(text, "decode") else text)
        else:
            raise FlowError(_not_a_model(path, tf, "it is neither a .keras archive nor an HDF5 file"))
    except (OSError, KeyError, ValueError, TypeError, zipfile.BadZipFile) as exc:
        if handle is not None:
            handle.close()
        raise FlowError(_not_a_model(path, tf, _first_sentence(" ".join(str(exc).split())) or
                                     type(exc).__name__)) from exc
    except FlowError:
        if handle is not None:
            handle.close()
        raise
    try:
        yield config, saved
    finally:
        if handle is not None:
            handle.close()


def _refuse_other_lane(path, file: Path, tf) -> None:
    """FlowError, naming the lane to use, for a model saved by a Keras of the other major version."""
    from .image.lanes import saved_by

    version, _ = saved_by(file)
    major = version.split(".", 1)[0] if version else ""
    if major.isdigit() and (int(major) >= 3) != isinstance(tf, _Keras3):
        lane = "keras3" if int(major) >= 3 else "reference"
        raise FlowError(f"{path} was saved by Keras {version}, which this lane's {getattr(tf, 'WHO', 'TensorFlow')} "
                        f"{tf.__version__} does not read: run it in the {lane} lane (hlsflow --lane {lane}, or "
                        "no --lane on the host).")


# The files of a .keras archive Keras 2.15 writes for a model without assets.
KERAS_ARCHIVE = {"config.json", "metadata.json", "model.weights.h5"}

# Python packages whose classes and functions a saved config may name by `module` (Keras imports the
# module to find them): Keras's own, and the quantization-aware libraries hlsflow's image has.
KNOWN_PACKAGES = ("keras", "qkeras", "HGQ")
# The keras3 lane's: HGQ2 is the package `hgq` (QKeras v3 keeps the name qkeras).
KERAS3_PACKAGES = ("keras", "qkeras", "hgq")

# Keras layers that call a TensorFlow function the config names, with arguments it gives, while the
# model is built. hls4ml converts none of them: they are refused before anything is built.
TF_OP_LAYERS = ("TFOpLambda", "SlicingOpLambda", "ClassMethod", "InstanceMethod", "InstanceProperty")


def refuse_code(path, config) -> None:
    """FlowError when the saved architecture holds Python code Keras would run or a module it would
    import: a Lambda layer, a lambda saved as bytecode anywhere (an activation, a wrapper's function),
    an object from a Python module outside Keras, QKeras and HGQ, or a TensorFlow-op layer. Every
    layer is looked at, those of nested models and wrappers too."""
    found = list(_saved_objects(config))
    for node, where in found:
        inner = node.get("config")
        if _class(node) == "Lambda":
            raise FlowError(f"{path} has a Lambda layer '{where}' (Python code inside the model), which hlsflow "
                            "does not run and hls4ml cannot convert: replace it with built-in Keras layers and save "
                            "the model again.")
        if node.get("class_name") == "__lambda__" or any(
                str(key).endswith("_type") and value == "lambda"
                for part in (node, inner) if isinstance(part, dict) for key, value in part.items()):
            raise FlowError(f"{path} holds a Python lambda (code saved as bytecode) in layer '{where}', which "
                            "hlsflow does not run: use a built-in Keras function or layer there and save the model "
                            "again.")
    for node, where in found:
        module = node.get("module")
        if module is None or module == "" or _known_module(node, module):
            continue
        inner = node.get("config")
        if isinstance(inner, dict) and "name" in inner:  # a layer (or a model)
            # A known class name from another module (HGQ2's QDense in the reference lane) has no
            # sentence of its own there: it is named with its module.
            raise FlowError(_unknown_layers_sentence(path, [str(node.get("class_name"))], {}) or
                            f"{path} has the layer {node.get('class_name')} of the Python module {module} in '{where}', "
                            "which hlsflow does not import here: rebuild the model from built-in Keras layers, or run "
                            "it in the lane whose image has that module.")
        name = inner if node.get("class_name") == "function" else node.get("class_name")
        raise FlowError(f"{path} names {name} from the Python module {module} in layer '{where}', which hlsflow "
                        "does not import or call: use Keras's own objects there and save the model again.")
    from .design import unconvertible

    sentence = unconvertible((where.rsplit("/", 1)[-1], _class(node)) for node, where in found
                             if _class(node) in TF_OP_LAYERS)
    if sentence:
        raise FlowError(sentence)


def _known_module(node: dict, module) -> bool:
    """Whether Keras, finding `node` by its module, imports only Keras, QKeras or HGQ (a Keras
    built-in function is saved as of `builtins`, whose own functions, exec and open among them,
    Keras would hand out too)."""
    if not isinstance(module, str):
        return False
    if module == "builtins":
        import builtins

        names = (node.get("class_name"), node.get("registered_name"), node.get("config"))
        return not any(isinstance(n, str) and n in vars(builtins) for n in names)
    return module.split(".")[0] in (KERAS3_PACKAGES if keras3_lane() else KNOWN_PACKAGES)


def _class(node: dict) -> str:
    """A saved object's class name, without the module path Keras also accepts there ('core.Lambda')."""
    return str(node.get("class_name")).rsplit(".", 1)[-1]


def _saved_objects(node, where=()):
    """(object, the layer it is in, as 'outer/inner') for every Keras object (a dict with a
    class_name) anywhere in a saved config, depth first."""
    if isinstance(node, dict):
        if "class_name" in node:
            inner = node.get("config")
            name = inner.get("name") if isinstance(inner, dict) else None
            where = (*where, name) if isinstance(name, str) else where
            yield node, "/".join(where[1:] or where)  # the outermost is the model itself
        for value in node.values():
            yield from _saved_objects(value, where)
    elif isinstance(node, list):
        for value in node:
            yield from _saved_objects(value, where)


def _safe_mode():
    """Keras's own refusal of lambdas, for the .h5 loader too (it does not take safe_mode): a second
    guard behind refuse_code."""
    try:
        from keras.src.saving.serialization_lib import SafeModeScope
    except ImportError:  # another Keras: refuse_code alone
        return contextlib.nullcontext()
    return SafeModeScope(True)


# Layers of the quantization-aware libraries hls4ml users train with, to name the package a model
# needs (Keras's own error for them is "'str' object is not callable" or "Unknown layer").
QKERAS_LAYERS = {"QDense", "QConv1D", "QConv2D", "QConv2DTranspose", "QActivation", "QAdaptiveActivation",
                 "QBatchNormalization", "QConv2DBatchnorm", "QDepthwiseConv2DBatchnorm", "QDenseBatchnorm",
                 "QDepthwiseConv2D", "QSeparableConv1D", "QSeparableConv2D", "QAveragePooling2D",
                 "QGlobalAveragePooling2D", "QSimpleRNN", "QLSTM", "QGRU", "QBidirectional"}
HGQ_LAYERS = {"FixedPointQuantizer", "HQuantize", "HDense", "HConv1D", "HConv2D", "HActivation", "HAdd",
              "HBatchNormalization", "HDenseBatchNorm", "HConv2DBatchNorm", "HConv1DBatchNorm", "PReshape",
              "PFlatten", "PConcatenate", "PDropout", "PMaxPooling1D", "PMaxPooling2D", "PAveragePooling1D",
              "PAveragePooling2D", "Signature", "UnaryLUT"}


# Keras's own layer classes that tf.keras.layers does not list (a TensorFlow op used as a layer).
KERAS_INTERNAL = {"TFOpLambda", "SlicingOpLambda", "Functional", "Sequential", "Model"}


def unknown_layers(config, tf) -> list:
    """Class names of the saved model's top-level layers that are not Keras's own, in order, once each."""
    layers = (config.get("config") or {}).get("layers") if isinstance(config, dict) else None
    names = []
    for layer in layers if isinstance(layers, list) else []:
        name = layer.get("class_name") if isinstance(layer, dict) else None
        if isinstance(name, str) and not hasattr(tf.keras.layers, name) and name not in KERAS_INTERNAL \
                and name not in names:
            names.append(name)
    return names


def _quantized_objects(names: list):
    """(custom objects, {package: why it cannot be imported}) for a model whose layers `names` (not
    Keras's own) include QKeras's or HGQ's. QKeras's layers and quantizers are passed to Keras by
    name; HGQ's register themselves with Keras when it is imported. Nothing is imported for other
    models: they load where neither package is installed."""
    objects, missing = {}, {}
    if any(n in QKERAS_LAYERS for n in names):
        try:
            from qkeras.utils import _add_supported_quantized_objects
        except ImportError as exc:
            missing["QKeras"] = str(exc)
        else:
            _add_supported_quantized_objects(objects)
    if any(n in HGQ_LAYERS for n in names):
        try:
            import HGQ  # noqa: F401
        except ImportError as exc:
            missing["HGQ"] = str(exc)
    return objects, missing


def _keras3_packages(config):
    """({}, {package: why it cannot be imported}) in the keras3 lane: Keras 3 finds a class outside
    Keras only when its package has registered it, so the packages of KERAS3_PACKAGES the saved config
    names by module (HGQ2's `hgq`, QKeras v3's `qkeras`) are imported first; nothing else is."""
    import importlib

    roots = {node["module"].split(".")[0] for node, _ in _saved_objects(config) if isinstance(node.get("module"), str)}
    missing = {}
    for package, name in (("qkeras", "QKeras"), ("hgq", "HGQ")):
        if package in roots:
            try:
                importlib.import_module(package)
            except ImportError as exc:
                missing[name] = str(exc)
    if "qkeras" in roots and "QKeras" not in missing:
        from . import qkeras3

        qkeras3.register()  # hls4ml 1.3.0 has no Keras 3 handler of its own for QKeras's layers
    return {}, missing


def _unknown_layers_sentence(path, names: list, missing: dict) -> str:
    """Why a model with layers `names` (not Keras's own) did not load, or "" when none of them is to blame."""
    for package, known in (("QKeras", QKERAS_LAYERS), ("HGQ", HGQ_LAYERS)):
        found = [n for n in names if n in known]
        if found and package in missing:
            return (f"{path} is a {package} model (it uses {', '.join(found)}), and {package} cannot be imported here "
                    f"({missing[package]}): run it in hlsflow's image, which has {package}.")
    loaded = {n for package, known in (("QKeras", QKERAS_LAYERS), ("HGQ", HGQ_LAYERS)) for n in known
              if package not in missing}
    names = [n for n in names if n not in loaded]
    if not names:
        return ""
    return (f"{path} uses the custom layer{'s' if len(names) > 1 else ''} {', '.join(names)}, which Keras cannot "
            "load without its code and hls4ml cannot convert: rebuild the model from built-in Keras layers.")


def _first_sentence(text: str, limit: int = 200) -> str:
    """The first sentence of an error text, cut at a word (never mid-word) when it is long."""
    sentence = text.split(". ")[0].rstrip(".")
    if len(sentence) <= limit:
        return sentence
    return sentence[:limit].rsplit(" ", 1)[0] + " ..."
