"""What the fast engine reads of one hls4ml layer: its attributes, its types, and its weights as
the project's C++ reads them. Below every module that builds a layer's arithmetic (fastemu,
spatial, activations, quantizers), so none of them imports another for these."""

from pathlib import Path

import numpy as np

from . import fixedpoint as fp
from ..fixedtype import FixedType
from .fixedpoint import Unsupported


def attr(layer, name, default=None):
    value = layer.get_attr(name)
    return default if value is None else value


def type_of(layer, name: str) -> FixedType:
    t = layer.get_attr(name)
    if t is None:
        raise Unsupported(f"no {name}")
    return fp.hls4ml_type(t.precision)


def weights(layer, key: str, project_dir: Path):
    """(raw array in hls4ml's layout, its FixedType): the project's weights file read as the C++ reads it."""
    var = layer.weights[key]
    t = fp.hls4ml_type(var.type.precision)
    path = project_dir / "firmware" / "weights" / f"{var.name}.txt"
    if path.is_file():
        text = path.read_text().strip()
        values = np.array([float(v) for v in text.split(",")], dtype=np.float64) if text else np.zeros(0)
    else:  # weights written into headers only (write_weights_txt off): the same formatted numbers
        values = np.array([float(v) for v in var], dtype=np.float64)
    if values.size != var.data.size:
        raise Unsupported(f"{path.name} holds {values.size} values, the layer has {var.data.size}")
    if any(word in type(var).__name__ for word in ("Compressed", "Exponent")):
        raise Unsupported(f"{type(var).__name__} weights")
    return fp.from_float(values, t).reshape(var.data.shape), t
