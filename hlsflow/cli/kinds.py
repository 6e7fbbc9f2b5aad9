"""What a task is, for the command line and the host side alike.

- `flow_task`: runs in the image and takes the shared flags, handed a loaded FlowConfig;
- `image_task`: runs in the image, with flags of its own;
- `host_task`: runs where it is started.
Each records which of its arguments are paths (TaskSpec), for mounts.py's checks and mounts;
what each path flag names (PATH_FLAGS) and which flags name no file (VALUE_FLAGS) is declared here
once, so the host mounts from declarations, never from a flag's name.
"""

import inspect
from dataclasses import dataclass

import invoke

from ..errors import check_flag

# Flags every flow task takes. Given on any task of one invocation, they apply to all of it,
# so `hlsflow convert csim --model m.keras` converts and emulates the same model.
SHARED_FLAGS = ("config", "model", "out", "part", "io_type", "reuse_factor", "precision", "clock")

# What a path flag names, for the host: each kind is checked and mounted its own way.
FILE = "file"  # a file: read-only when read, its folder read-write when written
MODEL = "model"  # a Keras model and the weights beside it, read-only
SAMPLES = "samples"  # a samples file, checked as one, read-only
INSTALL = "install"  # a Xilinx install (its tool folders, read-only), or a version under XILINX_ROOT
JOBQUEUE = "jobqueue"  # a Dask jobqueue config, and the batch system's client files it needs
FOLDER = "folder"  # an output folder: its parent read-write (staged beside it)
# Every path flag of the tasks that run in the image: one meaning per flag name.
PATH_FLAGS = {"config": FILE, "model": MODEL, "out": FOLDER, "samples": SAMPLES, "vivado": INSTALL, "vitis": INSTALL,
              "grid": FILE, "jobqueue": JOBQUEUE, "write": FILE, "png": FILE, "sbom": FILE}
# The path flags a flow config resolves (config.resolve_paths): mounted with the config, not one by one.
CONFIG_PATHS = ("config", "model", "out", "samples")
# The flags of those tasks that name no file: handed to the container as given.
VALUE_FLAGS = frozenset({
    "part", "io_type", "reuse_factor", "precision", "clock", "force", "strict", "dsp_margin", "bram_margin",
    "min_agreement", "max_error", "max_samples", "workers", "engine", "cross_check", "csim", "export", "vsynth",
    "timeout", "synth_all", "scheduler", "memory_per_point", "max_points", "target", "compare_auto", "strategy",
    "backend"})

SHARED_HELP = {
    "config": "flow YAML (default: $HLSFLOW_CONFIG, else ./hls4ml_config.yml)",
    "model": "Keras model: .keras, .h5, or .json with weights beside it",
    "out": "output directory of the HLS project",
    "part": "FPGA part, e.g. xc7z010clg400-1",
    "io-type": "io_stream or io_parallel",
    "reuse-factor": "ReuseFactor for every layer",
    "precision": "precision for weights, biases and results, e.g. ap_fixed<16,6>",
    "clock": "clock period in ns",
}


@dataclass(frozen=True)
class TaskSpec:
    """Where a task runs and what its path arguments are, for the host's checks and mounts."""
    where: str  # "image" or "host"
    network_flags: tuple = ()  # arguments that, given, need the host's network (a Dask scheduler)
    uses_config: bool = False  # reads a flow config (and the model, output dir it names)
    writes_output: bool = True  # writes into the output directory
    inputs: tuple = ()  # arguments naming files it reads
    outputs: tuple = ()  # arguments naming files it writes
    writes_beside_config: bool = False  # a file of its own beside the config (named where it is written)
    beside: tuple = ()  # (output, input): the output, not given, goes beside that input (config.CONFIG_NAME)
    remote: tuple = ()  # path flags that name a path as other machines see it (a sweep's workers): not mounted
    out_alone: bool = False  # --out alone will do: no config or model (report on a folder synthesised elsewhere)
    checks: tuple = ()  # (flag, kind) of its numeric flags (errors.FLAG_KINDS): checked on the host too


def spec_of(task) -> TaskSpec:
    return getattr(task.body, "hlsflow_spec", None) or TaskSpec(where="host")


def flow_task(help=None, inputs=(), outputs=(), writes_beside_config=False, writes_output=True,
              with_options=False, network_flags=(), checks=None, out_alone=False, remote=(), **task_options):
    """A task on one model: `fn(c, cfg, **own)` gets the FlowConfig of the shared flags (and, with
    `with_options`, the flags themselves as `options=`: a sweep loads one config per point from them).
    `checks` maps flags to their kind (errors.FLAG_KINDS); they reach `fn` checked and converted,
    before the config is loaded. `out_alone`: with only --out (no config found, no model) `fn`
    gets cfg=None."""

    def decorate(fn):
        params = list(inspect.signature(fn).parameters.values())
        own = [p for p in params[2:] if not (with_options and p.name == "options")]  # after (c, cfg)
        shared = [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None)
                  for name in SHARED_FLAGS]

        def body(c, **kwargs):
            from ..config import load_config
            from ..config_files import only_out

            for name, kind in (checks or {}).items():
                kwargs[name] = check_flag(kwargs.get(name), name, kind)
            options = {name: kwargs.pop(name, None) for name in SHARED_FLAGS}
            options["path"] = options.pop("config")
            if "samples" in kwargs:
                options["samples"] = kwargs["samples"]
            cfg = None if out_alone and only_out(options["out"], options["path"], options["model"]) \
                else load_config(**options)
            return fn(c, cfg, options=options, **kwargs) if with_options else fn(c, cfg, **kwargs)

        body.__name__, body.__doc__, body.__module__ = fn.__name__, fn.__doc__, fn.__module__
        body.__signature__ = inspect.Signature([params[0], *shared, *own])
        body.hlsflow_spec = TaskSpec(where="image", uses_config=True, writes_output=writes_output,
                                     inputs=tuple(inputs), outputs=tuple(outputs),
                                     writes_beside_config=writes_beside_config, network_flags=tuple(network_flags),
                                     out_alone=out_alone, checks=tuple((checks or {}).items()), remote=tuple(remote))
        return invoke.task(help={**SHARED_HELP, **(help or {})}, **task_options)(body)

    return decorate


def image_task(help=None, inputs=(), outputs=(), beside=(), **task_options):
    """A task that runs in the image with its own flags (no flow config). An output flag may be
    `optional` (invoke's flag with an optional value): given bare, nothing is mounted for it."""

    def decorate(fn):
        fn.hlsflow_spec = TaskSpec(where="image", writes_output=False, inputs=tuple(inputs),
                                   outputs=tuple(outputs), beside=tuple(beside))
        return invoke.task(help=help or {}, **task_options)(fn)

    return decorate


def host_task(help=None, **task_options):
    """A task that runs where it is started (the image, handing it on, development)."""

    def decorate(fn):
        fn.hlsflow_spec = TaskSpec(where="host")
        return invoke.task(help=help or {}, **task_options)(fn)

    return decorate
