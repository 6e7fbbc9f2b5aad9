"""The user's samples: which file they are in, reading and checking them, and their items' shape
against the model's input as its saved architecture says it. Imports nothing heavy at first, so
the host side checks sample files before any container starts."""

import os
from pathlib import Path

from .errors import FlowError


def _model_config(path: Path):
    """The model's architecture as Keras saved it (a .keras zip's config.json, an .h5's
    model_config, a .json file), or None when it cannot be read."""
    import json
    import zipfile

    try:
        if path.suffix == ".json":
            return json.loads(path.read_text())
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                return json.loads(archive.read("config.json"))
        import h5py

        with h5py.File(path, "r") as handle:
            text = handle.attrs.get("model_config")
        return json.loads(text) if text is not None else None
    except (OSError, KeyError, ValueError):
        return None


def input_shape(path):
    """The shape of one input item, read from the model's saved architecture without TensorFlow
    (a single-input model's InputLayer, or a Sequential model's first layer); None when the file
    does not say it plainly (then the model's own loader checks the samples)."""
    config = _model_config(Path(path))
    body = config.get("config") if isinstance(config, dict) else None
    layers = body.get("layers") if isinstance(body, dict) else None
    if not isinstance(layers, list) or not layers:
        return None
    named = body.get("input_layers")
    if config.get("class_name") == "Sequential":
        first = layers[0]
    elif isinstance(named, list) and len(named) == 1 and isinstance(named[0], list) and named[0]:
        first = next((layer for layer in layers if isinstance(layer, dict)
                      and (layer.get("name") or (layer.get("config") or {}).get("name")) == named[0][0]), None)
    else:
        return None
    settings = first.get("config") if isinstance(first, dict) else None
    shape = (settings or {}).get("batch_input_shape") or (settings or {}).get("batch_shape")
    if not isinstance(shape, list) or len(shape) < 2 or not all(isinstance(d, int) and d > 0 for d in shape[1:]):
        return None
    return tuple(shape[1:])


def check_samples_fit(model_path, samples) -> None:
    """The samples read (read_samples) and their items' shape checked against the model's input, as
    far as the model file says it without TensorFlow: before anything is converted or written."""
    x, _ = read_samples(samples)
    expected = input_shape(model_path)
    if expected is not None and tuple(x.shape[1:]) != expected:
        raise FlowError(f"Samples in {samples} have shape {tuple(x.shape[1:])} per item but the model takes "
                        f"{expected}: give samples that match the model input.")


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


def read_samples(path):
    """(X, y or None) as stored in a .npz (X or x, optional y or Y) or a .npy of inputs, checked for what
    every model needs: numbers, real and finite (also as float32, what the model computes in), at
    least one sample, and numeric labels, one per sample. FlowError names the first problem.
    Needs no model: csim and flow run it before anything else."""
    import numpy as np

    path = Path(path)
    require_samples_file(path)
    try:
        data = np.load(path, allow_pickle=False)
        if isinstance(data, np.ndarray):
            x, y = data, None
        else:
            with data:
                name = next((n for n in ("X", "x") if n in data.files), None)
                if name is None:
                    raise FlowError(f"{path} has no array named X or x (it holds "
                                    f"{', '.join(data.files) or 'nothing'}): save inputs as X (and labels as y) "
                                    "with np.savez.")
                label = next((n for n in ("y", "Y") if n in data.files), None)
                x, y = data[name], (data[label] if label else None)
    except (OSError, ValueError, EOFError) as exc:
        reason = str(exc).split(".")[0] if "pickle" not in str(exc) else "it holds Python objects"
        raise FlowError(f"{path} is not a readable .npy/.npz file of numbers ({reason}): save samples as numeric "
                        "numpy arrays with np.save or np.savez.") from exc
    fix = "save the model's inputs as a numeric array"
    if x.ndim == 0 or len(x) == 0:
        raise FlowError(f"{path} holds no samples (X has shape {x.shape}): {fix}, one sample per row.")
    if x.dtype.kind not in "biuf":
        what = "complex numbers" if x.dtype.kind == "c" else f"values of type {x.dtype}"
        raise FlowError(f"The samples in {path} are {what}, not real numbers: {fix} (e.g. X.astype('float32')).")
    bad = ~np.isfinite(x.astype(np.float32)).reshape(len(x), -1).all(axis=1)
    if bad.any():
        raise FlowError(f"Sample {int(np.flatnonzero(bad)[0])} of {len(x)} in {path} holds NaN or infinite values "
                        f"(or values beyond float32's range), as do {int(bad.sum())} sample(s) in all: remove or clean "
                        "them before emulating.")
    if y is not None:
        if y.dtype.kind not in "biuf" or y.ndim == 0:
            raise FlowError(f"The labels y in {path} are {y.dtype} values, not numbers: save class indices (or "
                            "one-hot rows) as integers, or leave y out.")
        if len(y) != len(x):
            raise FlowError(f"{path} holds {len(x)} samples but {len(y)} labels: save one label per sample, or "
                            "leave y out.")
        if not np.isfinite(y.astype(np.float64)).all():
            raise FlowError(f"The labels y in {path} hold NaN or infinite values: save class indices, or leave y out.")
    return x, y


def load_samples(path, input_shape, limit=None, labels_as_stored=False):
    """(X as float32, y as class indices or None), checked by read_samples and against the model's
    input shape; `labels_as_stored` keeps y's own shape and values (csim tells classes from targets)."""
    import numpy as np

    x, y = read_samples(path)
    expected = tuple(d for d in input_shape[1:])
    if tuple(x.shape[1:]) != expected:
        raise FlowError(f"Samples in {path} have shape {tuple(x.shape[1:])} per item but the model takes "
                        f"{expected}: give samples that match the model input.")
    if limit:
        x = x[:limit]
        y = y[:limit] if y is not None else None
    if y is not None and y.ndim > 1 and not labels_as_stored:
        y = y.argmax(axis=1)
    return x.astype(np.float32), y
