"""hlsflow: a reproducible Keras -> hls4ml -> Vivado HLS flow.

One module per stage (config, convert, preflight, emulate, synthesize, report, profile, starter)
and flow.py, which runs what each stage needs first; outdir.py owns an output directory's state;
loading.py loads models and samples. The command line is cli.py and tasks.py; the host side is
launcher.py (checks and mounts paths, runs the image) and engine.py (Docker or Podman); the image
itself is image.py, wheels.py, debian_base.py and handover.py.
Heavy imports (TensorFlow, hls4ml) happen inside functions so that the host side
(invoke + the Docker SDK only) can import this package cheaply.
"""

__version__ = "0.2.0"
