"""hlsflow: a reproducible Keras -> hls4ml -> Vivado HLS flow.

One module per stage: config, convert, preflight, emulate, synthesize, report,
plus image (the Docker toolchain image) and dispatch (running tasks inside it).
Heavy imports (TensorFlow, hls4ml) happen inside functions so that the host side
(invoke + the Docker SDK only) can import this package cheaply.
"""

__version__ = "0.1.0"
