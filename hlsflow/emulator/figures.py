"""csim's figures: how the emulated outputs are measured against Keras's. The figure fits the
model's output (choose_metric): top-1 agreement for a classifier, agreement at a threshold for a
binary or multi-label one, the error against Keras for anything else; each share with its 95%
interval (stats.py)."""

import numpy as np

from .. import stats
from ..errors import FlowError

METRICS = ("auto", "top1", "threshold", "error")  # Flow.emulation.metric
PROBABILITY = ("sigmoid", "hard_sigmoid")  # one value in [0, 1]: a binary classifier's, read at 0.5
# Layers that hand their input on unchanged: the output's activation is the one before them.
PASS_THROUGH = ("Dropout", "Flatten", "Reshape", "GaussianNoise", "GaussianDropout", "AlphaDropout")


def output_activation(keras_model) -> str:
    """The activation of the model's output, by name ("softmax", "sigmoid", "linear", ...), looking
    through layers that hand values on unchanged."""
    try:
        layer = keras_model.outputs[0]._keras_history.layer
    except (AttributeError, IndexError):
        layer = keras_model.layers[-1]
    for _ in range(len(keras_model.layers)):
        kind = type(layer).__name__
        if kind not in PASS_THROUGH:
            break
        inbound = getattr(layer, "_inbound_nodes", None) or []
        parents = inbound[0].inbound_layers if inbound else None
        parents = parents if isinstance(parents, (list, tuple)) else [parents]
        if len(parents) != 1 or parents[0] is None:
            break
        layer = parents[0]
    kind = type(layer).__name__
    if kind in ("Softmax", "ReLU", "LeakyReLU", "ELU", "PReLU", "ThresholdedReLU"):
        return kind.lower()
    function = getattr(layer, "activation", None)
    return getattr(function, "__name__", None) or (function if isinstance(function, str) else "linear")


def labels_kind(y, n_out: int):
    """What the labels are: "indices" (a class per sample), "onehot", "binary" (0/1, one output),
    "multilabel" (0/1 per output), or None (targets of a regression, or no labels)."""
    if y is None or not len(y):
        return None
    flat = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    integral = bool(np.all(flat == np.round(flat))) and flat.min() >= 0
    if flat.shape[1] == 1 and integral:
        if n_out == 1:
            return "binary" if flat.max() <= 1 else None
        return "indices" if flat.max() < n_out else None
    if flat.shape[1] == n_out > 1 and integral and flat.max() <= 1:
        return "onehot" if np.all(flat.sum(1) == 1) else "multilabel"
    return None


def choose_metric(setting: str, activation: str, n_out: int, kind) -> str:
    """csim's figure: "top1", "threshold_0.5", "threshold_0" or "error". `setting` is the config's
    metric; "auto" decides from the output's activation and, for a linear output, the labels (logits
    of classes, or a regression's values, look alike)."""
    if setting not in METRICS:
        raise FlowError(f"Flow.emulation.metric '{setting}' is not one of {', '.join(METRICS)}: give auto (csim "
                        "picks the figure from the model's output), top1, threshold or error.")
    probability = activation in PROBABILITY
    if setting == "top1" or setting == "error":
        return setting
    if setting == "threshold":
        return "threshold_0.5" if probability else "threshold_0"
    classes = kind in ("indices", "onehot")
    if n_out > 1 and (activation == "softmax" or (classes and (probability or activation == "linear"))):
        return "top1"
    if probability:
        return "threshold_0.5"  # one output, or one per label (multi-label)
    if activation == "linear" and n_out == 1 and kind == "binary":
        return "threshold_0"  # a binary classifier's logit
    return "error"


def compare(metric: str, y_hls, y_keras, y) -> dict:
    """The figures of `metric` for the emulated outputs against Keras's (samples x values), with
    the labels `y` (as stored) when there are any."""
    n_out = y_keras.shape[1]
    kind = labels_kind(y, n_out)
    agreement = accuracy = keras_accuracy = None
    if metric == "top1":
        hls, keras = y_hls.argmax(1), y_keras.argmax(1)
        agreement = float(np.mean(hls == keras))
        if kind in ("indices", "onehot"):
            labels = np.asarray(y).reshape(len(y), -1).argmax(1) if kind == "onehot" else np.asarray(y).reshape(-1)
            keras_accuracy, accuracy = float(np.mean(keras == labels)), float(np.mean(hls == labels))
    elif metric.startswith("threshold"):
        level = float(metric.split("_")[1])
        hls, keras = y_hls > level, y_keras > level
        agreement = float(np.mean(np.all(hls == keras, axis=1)))  # every label of a sample the same
        if kind in ("binary", "onehot", "multilabel") and np.asarray(y).size == y_keras.size:
            labels = np.asarray(y).reshape(y_keras.shape) > 0.5
            keras_accuracy = float(np.mean(np.all(keras == labels, axis=1)))
            accuracy = float(np.mean(np.all(hls == labels, axis=1)))
    diff = np.abs(y_hls - y_keras)
    # Relative to |Keras|, but never to less than 1% of that output's largest value: an output near 0
    # would make any rounding an enormous relative error.
    scale = np.abs(y_keras).max(axis=0, initial=0.0) * 0.01
    relative = diff / np.maximum(np.abs(y_keras), np.where(scale > 0, scale, 1.0))
    figures = {
        "agreement": agreement,
        "keras_accuracy": keras_accuracy,
        "hls_accuracy": accuracy,
        "max_abs_diff": float(diff.max()) if diff.size else 0.0,
        "mean_abs_diff": float(diff.mean()) if diff.size else 0.0,
        "max_rel_error": float(relative.max()) if diff.size else 0.0,
        "mean_rel_error": float(relative.mean()) if diff.size else 0.0,
    }
    if agreement is not None:
        figures["top1_agreement"] = agreement  # the predicted labels' agreement, under the key tune and sweep read
    figures.update(intervals(figures, len(y_keras)))
    return figures


def intervals(figures: dict, n: int) -> dict:
    """Each share's count of the n samples and its 95% interval (stats.py): {"agreement_count": k,
    "agreement_ci95": [low, high], "hls_accuracy_ci95": ..., "keras_accuracy_ci95": ...}."""
    found = {}
    for key in ("agreement", "keras_accuracy", "hls_accuracy"):
        share = figures.get(key)
        if share is not None and n:
            k = stats.count(share, n)
            found[f"{key}_count"] = k
            found[f"{key}_ci95"] = list(stats.interval(k, n))
    return found
