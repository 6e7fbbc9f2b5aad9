"""hlsflow in Python: the flow's stages as functions, for notebooks and scripts.

Each function runs the same stage code as the command of the same name (flow.py and stages/), so
an output folder written here is the one `hlsflow` would write, with its manifest: a later
`hlsflow csim` on it reuses what is current. Besides the commands:

- `emulate(hls_model, x)`: bit-exact outputs of any converted hls4ml ModelGraph from hlsflow's fast
  engine (emulator/fastemu.py), falling back to hls4ml's C++ emulation with a warning naming the
  layer the fast engine lacks; `use_fast_emulation(hls_model)` makes that model's own
  `predict` run on it;
- `layer_trace` and `profile` as pandas DataFrames, `profile_figure` and `utilisation_figure` as
  matplotlib figures that display inline in a notebook.

Every failure you can cause is a FlowError with one sentence that says what to do.
Needs the toolchain (TensorFlow, hls4ml, g++): run it in the image, e.g. in `hlsflow lab`.
"""

import contextlib
import functools
import io
import shutil
import tempfile
import warnings
import weakref
from pathlib import Path
from typing import NamedTuple

try:
    import numpy as np
except ModuleNotFoundError:  # the host's `hlsflow` command has only invoke, the Docker SDK and PyYAML
    raise ImportError("hlsflow's Python library needs the toolchain (numpy, TensorFlow, hls4ml): use it in "
                      "hlsflow's image, e.g. in a notebook of `hlsflow lab`.") from None

from . import flow
from .config import FlowConfig, load_config as _load_config
from .errors import FlowError

__all__ = ["FlowConfig", "load_config", "convert", "Conversion", "csim", "report", "plan", "emulate",
           "use_fast_emulation", "layer_trace", "profile", "profile_figure", "utilisation_figure", "example_path"]


def example_path(name: str = "") -> Path:
    """A file of the bundled example beside the hlsflow package (in the image: /opt/hlsflow), e.g.
    `example_path("project/hls4ml_config.yml")` (the reference Mini-ResNet's config) or
    `example_path("models/digits_cnn.json")`."""
    root = Path(__file__).resolve().parent.parent
    path = root / name
    if not path.exists():
        raise FlowError(f"{path} is not here: the bundled example comes with a checkout of hlsflow or its image "
                        "(/opt/hlsflow); give the path of your own file instead.")
    return path


def load_config(path=None, model=None, out=None, **overrides) -> FlowConfig:
    """The effective flow configuration, as the commands read it: the YAML file at `path` (hls4ml's
    schema plus hlsflow's Flow section; relative paths in it are relative to the file), or
    hlsflow's defaults for `model` alone. `out` and the keyword overrides (part, io_type,
    reuse_factor, precision, clock, samples, strategy) are the command-line flags of the same
    names; relative ones are relative to the current folder."""
    return _load_config(path, model=model, out=out, announce=False, **overrides)


def _config(cfg) -> FlowConfig:
    return cfg if isinstance(cfg, FlowConfig) else load_config(cfg)


class Conversion(NamedTuple):
    """What `convert` returns: unpack it as `hls_model, project, keras_model, record = ...`."""
    hls_model: object  # hls4ml ModelGraph of the design, with an OutputDir of its own (see convert)
    project: Path  # the written HLS project: cfg.output_dir, as `hlsflow convert` writes it
    keras_model: object  # the Keras model it was converted from
    record: dict  # the convert stage's record: layer table, preflight, tree hash


def convert(cfg, force=False) -> Conversion:
    """`hlsflow convert`: write the HLS project of `cfg` (a FlowConfig or a config file's path) into
    its output folder, or reuse it when model and config are unchanged (`force` rewrites it). Returns
    a Conversion with the design's hls4ml ModelGraph. The ModelGraph has a scratch OutputDir of its
    own (removed with it), so `hls_model.compile()` or `write()` never change the folder hlsflow
    manages and whose manifest records what is in it."""
    from .design import convert_model
    from .loading import load_keras_model

    cfg = _config(cfg)
    record = flow.convert(cfg, force=force)
    keras_model = load_keras_model(cfg.keras_model)
    scratch = Path(tempfile.mkdtemp(prefix=f"hlsflow-{cfg.project_name}-"))
    hls_model, _ = convert_model(keras_model, cfg, scratch / "prj")
    weakref.finalize(hls_model, shutil.rmtree, scratch, True)
    return Conversion(hls_model, cfg.output_dir, keras_model, record)


def csim(cfg, samples=None, max_samples=None, engine=None, force=False) -> dict:
    """`hlsflow csim`: bit-accurate emulation of the written project compared with Keras, converting
    first when the project is missing or stale. Returns the figures written to csim.json (agreement,
    accuracies, errors, images/s, engine). `samples`: a .npy/.npz file (else the config's);
    `engine`: "auto" (default), "fast" or "cpp"."""
    return flow.csim(_config(cfg), samples=samples, max_samples=max_samples, engine=engine, force=force)


def report(target, part=None, force=False) -> dict:
    """`hlsflow report`: report.json's content for a synthesised design, also written as report.json,
    report.md and utilisation.png. `target`: a FlowConfig (its output folder, synthesised first when
    Vivado is there and the synthesis is not current), or the path of a folder synthesised outside
    hlsflow (read where it is; `part` to judge the fit against)."""
    if isinstance(target, FlowConfig):
        return flow.report(target, force=force)
    return flow.report(None, out=str(target), part=part, force=force)


def plan(cfg, write=None, dsp_margin=None, bram_margin=None) -> dict:
    """`hlsflow plan`: a ReuseFactor per layer that fits the part (estimates), written as a config
    (beside cfg's file, or at `write`); returns the plan's figures and the config's path."""
    from .stages import plan as stage

    return stage.plan(_config(cfg), dsp_margin=dsp_margin, bram_margin=bram_margin, write=write)


# ------------------------------------------------------------------ the fast engine

_ENGINES = weakref.WeakKeyDictionary()  # ModelGraph -> Engine, or the Unsupported text


def _engine(hls_model):
    """The fast engine of this ModelGraph, built once, or the text naming the layer it lacks. It
    reads the weights and tables from a written project, so the design is written once into a
    temporary folder (the model's own OutputDir is left alone)."""
    from .emulator import fastemu
    from .emulator.fixedpoint import Unsupported

    if hls_model in _ENGINES:
        return _ENGINES[hls_model]
    config = hls_model.config.config
    saved = config["OutputDir"]
    with tempfile.TemporaryDirectory() as tmp:
        config["OutputDir"] = tmp
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                hls_model.write()
            engine = fastemu.build(hls_model, Path(tmp))
        except Unsupported as exc:
            engine = str(exc)
        finally:
            config["OutputDir"] = saved
    _ENGINES[hls_model] = engine
    return engine


def _as_batch(hls_model, x) -> np.ndarray:
    """x as float32 samples of the model's input shape (one sample may come without its batch axis)."""
    shape = tuple(hls_model.get_input_variables()[0].shape)
    x = np.asarray(x, dtype=np.float32)
    size = int(np.prod(shape))
    if x.size % size:
        raise FlowError(f"emulate got an array of {x.size} values for inputs of shape {shape}: give samples of "
                        "that shape, e.g. x[:10] of the array the model was trained on.")
    return x.reshape((x.size // size,) + shape)


def emulate(hls_model, x) -> np.ndarray:
    """The bit-exact outputs (samples x values, float32) of a converted hls4ml ModelGraph on `x`: the
    bits hls4ml's C++ emulation (`hls_model.compile(); hls_model.predict(x)`) gives, from hlsflow's
    fast engine. Inputs are taken as float32, as the C++ `_float` entry point does. Where a layer
    has no fast implementation, a warning names it and hls4ml's C++ emulation runs instead (it
    compiles the model with g++ on first use)."""
    from .emulator import engines

    if len(hls_model.get_input_variables()) != 1 or len(hls_model.get_output_variables()) != 1:
        raise FlowError("emulate takes models with one input and one output: run hls_model.predict on this one.")
    x = _as_batch(hls_model, x)
    engine = _engine(hls_model)
    if isinstance(engine, str):
        warnings.warn(f"hlsflow's fast engine lacks {engine}; emulating with hls4ml's C++ emulation instead "
                      "(about 30 times slower).", stacklevel=2)
        if hls_model._top_function_lib is None:
            with contextlib.redirect_stdout(io.StringIO()):
                hls_model.compile()
        y = type(hls_model).predict(hls_model, np.ascontiguousarray(x))  # the class's: never the hook
        return np.asarray(y, dtype=np.float32).reshape(len(x), -1)
    with contextlib.redirect_stderr(io.StringIO()):  # the command line's progress bar
        return engines.run_fast(engine, x, workers=1)


def _fast_predict(hls_model, x, *args, **kwargs):
    # hls4ml's predict returns one sample's outputs without the batch axis
    y = emulate(hls_model, x)
    return y[0] if len(y) == 1 else y


def use_fast_emulation(hls_model, on: bool = True):
    """Make `hls_model.predict(x)` return `emulate(hls_model, x)` (the same bits, about 30 times faster,
    no g++ build); `on=False` gives it hls4ml's C++ predict back. Only this ModelGraph changes: the
    backend object (which hls4ml's predict would also ask) is shared by every model, so the method is
    set on the model itself. Returns the model."""
    if on:
        hls_model.predict = functools.partial(_fast_predict, hls_model)
    else:
        vars(hls_model).pop("predict", None)
    return hls_model


# ------------------------------------------------------------------ tables and figures

def layer_trace(hls_model, x, keras_model=None):
    """Every layer's bit-exact outputs on `x` from the fast engine, as a DataFrame indexed by layer:
    class, type, min, max, mean, and with `keras_model` the max and mean |HLS - Keras| of the layers
    Keras computes too. The outputs themselves (samples x values) are in `.attrs["values"]`."""
    import pandas as pd

    x = _as_batch(hls_model, x)
    engine = _engine(hls_model)
    if isinstance(engine, str):
        raise FlowError(f"The fast engine lacks {engine}, so it cannot trace this model: use hls4ml's "
                        "hls_model.trace(x) (after setting Trace on the layers).")
    _, trace = engine.run(x, trace=True)
    keras = {}
    if keras_model is not None:
        from .emulator import ranges

        keras = {name: np.asarray(v).reshape(len(x), -1) for name, v in ranges.keras_layer_outputs(keras_model, x).items()}
    layers = {layer.name: layer for layer in hls_model.get_layers()}
    rows = []
    for name, values in trace.items():
        layer = layers[name]
        row = {"layer": name, "class": layer.class_name, "type": str(layer.get_output_variable().type.precision),
               "min": float(values.min()), "max": float(values.max()), "mean": float(values.mean())}
        if keras_model is not None:
            ref = keras.get(name)
            same = ref is not None and ref.shape == values.shape
            diff = np.abs(values - ref) if same else None
            row["max_abs_diff"] = float(diff.max()) if same else None
            row["mean_abs_diff"] = float(diff.mean()) if same else None
        rows.append(row)
    table = pd.DataFrame(rows).set_index("layer")
    table.attrs["values"] = trace
    return table


def profile(cfg, samples=None, max_samples=50):
    """`hlsflow profile`: for every layer's types, the Keras value range against what the type holds,
    overflow, the share below its resolution, and the trace error against Keras; a DataFrame of one
    row per (layer, type), as profile.json holds (also written, with precision_profile.png)."""
    import pandas as pd

    result = flow.profile(_config(cfg), samples=samples, max_samples=max_samples)
    table = pd.DataFrame(result["findings"])
    return table.drop(columns=["fixed"], errors="ignore")


def _inline(fig):
    """The figure, shown as a PNG when it is a notebook cell's value (no pyplot state involved)."""
    def png():
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100)
        return buffer.getvalue()
    fig._repr_png_ = png
    return fig


def profile_figure(table, title: str = "model"):
    """The precision profile (each type's values, log2 |value|, against its type's span, red where it overflows) of a
    `profile` DataFrame, as a matplotlib Figure; the same drawing as precision_profile.png."""
    from .stages import profile as stage

    return _inline(stage.profile_figure(list(table.itertuples(index=False)), title))


def utilisation_figure(report_dict: dict):
    """The resources a `report` uses against the part, as a matplotlib Figure (utilisation.png)."""
    from .stages import report_figures

    return _inline(report_figures.utilisation_figure(report_dict))
