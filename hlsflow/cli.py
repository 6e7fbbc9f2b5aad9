"""What tasks.py needs to stay thin: decorators that dispatch into the image and turn a
FlowError into one sentence and an exit code, and the flow options shared by every task."""

import argparse
import functools
import sys

from . import console, dispatch
from .errors import FlowError

# Flags every flow task takes. Given on any task of one invocation, they apply to all of it,
# so `invoke convert csim --model m.keras` converts and emulates the same model.
SHARED_FLAGS = ("config", "model", "out", "part", "io_type", "reuse_factor", "precision", "clock")

SHARED_HELP = {
    "config": "flow YAML (default project/hls4ml_config.yml)",
    "model": "Keras model: .keras, .h5, or .json with weights beside it",
    "out": "output directory of the HLS project",
    "part": "FPGA part, e.g. xc7z010clg400-1",
    "io-type": "io_stream or io_parallel",
    "reuse-factor": "ReuseFactor for every layer",
    "precision": "precision for weights, biases and results, e.g. ap_fixed<16,6>",
    "clock": "clock period in ns",
}


def _flags_on_command_line() -> dict:
    parser = argparse.ArgumentParser(add_help=False)
    for name in SHARED_FLAGS:
        parser.add_argument("--" + name.replace("_", "-"), dest=name)
    known, _ = parser.parse_known_args(sys.argv[1:])
    return {k: v for k, v in vars(known).items() if v is not None}


def load(**given):
    """The FlowConfig for this invocation: explicit task arguments, else flags given to any task."""
    from .config import load_config

    options = _flags_on_command_line()
    options.update({k: v for k, v in given.items() if v is not None})
    options["path"] = options.pop("config", None)
    return load_config(**options)


def _fail(exc: FlowError):
    console.error(str(exc))
    sys.exit(exc.exit_code)


def _own_argv(task_name: str) -> list:
    """This invocation's arguments from this task on (earlier tasks already ran on the host)."""
    argv = sys.argv[1:]
    names = {task_name, task_name.replace("_", "-")}
    for i, arg in enumerate(argv):
        if arg in names:
            return argv[i:]
    return argv


def flow_task(fn):
    """A task that runs inside the toolchain image. On the host, the first such task hands the
    rest of the invocation to one container and exits with its status."""

    @functools.wraps(fn)
    def wrapper(c, *args, **kwargs):
        if not dispatch.in_image():
            try:
                sys.exit(dispatch.run_in_image(_own_argv(fn.__name__)))
            except FlowError as exc:
                _fail(exc)
        try:
            return fn(c, *args, **kwargs)
        except FlowError as exc:
            _fail(exc)

    return wrapper


def host_task(fn):
    """A task that runs where it is started (image building, handing the image on)."""

    @functools.wraps(fn)
    def wrapper(c, *args, **kwargs):
        try:
            return fn(c, *args, **kwargs)
        except FlowError as exc:
            _fail(exc)

    return wrapper
