"""Loading the user's model and samples: which files a model is made of, reading it with Keras,
and reading sample arrays. The file-level helpers import nothing heavy, so the host side uses
them to check and mount paths before any container starts."""

import os
from pathlib import Path

from .errors import FlowError

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
    files = model_files(path)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    try:
        if files[0].suffix == ".json":
            model = tf.keras.models.model_from_json(files[0].read_text())
            model.load_weights(str(files[1]))
        else:
            model = tf.keras.models.load_model(str(files[0]), compile=False)
    except Exception as exc:  # Keras raises many types for a bad file; all mean the same to the user.
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise FlowError(f"{path} is not a Keras model TensorFlow {tf.__version__} can load ({reason}): "
                        "give a .keras, .h5 or .json file saved by Keras.") from exc
    return model


def resolve_samples(cfg, samples=None) -> Path:
    """The sample file given on the command line (relative to where the user stands, as every flag
    is), else the config's, else FlowError."""
    path = os.path.abspath(samples) if samples else cfg.samples_path()
    if path is None:
        raise FlowError("No samples given: pass --samples FILE (.npy/.npz with X and optional y) or set "
                        "Flow.emulation.samples in the config.")
    return Path(path)


def require_samples_file(path) -> None:
    path = Path(path)
    if not path.is_file():
        raise FlowError(f"Sample file {path} not found: pass --samples with a .npy or .npz holding X (and y), or fix "
                        "Flow: emulation: samples in the config.")


def load_samples(path, input_shape, limit=None):
    """(X, y or None) from a .npz with X (and optional y) or a .npy of inputs."""
    import numpy as np

    path = Path(path)
    require_samples_file(path)
    try:
        data = np.load(path, allow_pickle=False)
        if isinstance(data, np.ndarray):
            x, y = data, None
        else:
            if "X" not in data:
                raise FlowError(f"{path} has no array named X: save inputs as X (and labels as y) with np.savez.")
            x, y = data["X"], (data["y"] if "y" in data else None)
    except (OSError, ValueError) as exc:
        raise FlowError(f"{path} is not a readable .npy/.npz file ({exc}): save samples with numpy.") from exc
    expected = tuple(d for d in input_shape[1:])
    if tuple(x.shape[1:]) != expected:
        raise FlowError(f"Samples in {path} have shape {tuple(x.shape[1:])} per item but the model takes "
                        f"{expected}: give samples that match the model input.")
    if limit:
        x = x[:limit]
        y = y[:limit] if y is not None else None
    if y is not None and y.ndim > 1:
        y = y.argmax(axis=1)
    return x.astype(np.float32), y
