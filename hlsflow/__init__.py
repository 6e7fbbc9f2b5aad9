"""hlsflow: a reproducible Keras -> hls4ml -> Vivado HLS flow.

The folders are the design:
- cli/       the `hlsflow` program, what a task is (kinds), the tasks, and the host side
             that checks and mounts paths and runs the image (launcher);
- steps.py   every step that keeps a record (stage, command, cache), declared once;
- flow.py    runs the flow's stages in order, each after what it requires;
- stages/    one module per stage or command: its work alone (convert, emulate, synthesize,
             report, plan, profile, starter, preflight);
- emulator/  bit-accurate emulation: the fast engine on exact ap_fixed arithmetic (fastemu,
             with activations, spatial and quantizers), hls4ml's C++ path, the ranges of
             Keras values against the design's types, and the types proposed from them;
- search/    the flow over many designs: sweep (on Dask, cluster.py) and tune-precision;
- state/     an output folder's state by job (manifest, folder, lock, records) and verify;
- image/     the toolchain image: build, wheels, Debian base, SBOM, hand-over, Docker/Podman;
- dev/       working on hlsflow itself: its invoke tasks, the test runner, training.
Below them: inputs.py (what a step is made from), design.py (the one door to hls4ml's converter),
config.py, loading.py, samples.py, vivado_reports.py, fixedtype.py, parts.py, files/console/errors.
Heavy imports (TensorFlow, hls4ml) happen inside functions so that the host side
(invoke + the Docker SDK only) can import this package cheaply.
"""

__version__ = "0.2.0"

# The Python library (library.py), loaded on first use: `import hlsflow` and the command line
# stay free of TensorFlow and hls4ml.
_LIBRARY = ("FlowConfig", "load_config", "convert", "Conversion", "csim", "report", "plan", "emulate",
            "use_fast_emulation", "layer_trace", "profile", "profile_figure", "utilisation_figure", "example_path")


def __getattr__(name):
    if name in _LIBRARY:
        from . import library

        return getattr(library, name)
    raise AttributeError(f"module 'hlsflow' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LIBRARY))
