"""The command line: the `hlsflow` program and what keeps tasks thin.

- Decorators give tasks their kind: `flow_task` (runs in the image and takes the shared flags,
  handed a loaded FlowConfig), `image_task` (runs in the image, own flags), `host_task` (runs
  where started). They record which arguments are paths, for launcher.py.
- `Executor` serves `hlsflow` and `invoke` in a checkout alike (invoke.yaml names it): flags
  shared by the flow tasks apply to every task of one invocation, a FlowError becomes one
  sentence and an exit code, and on the host the image tasks go to one container.
"""

import inspect
import os
import shlex
import signal
import sys
from dataclasses import dataclass

import invoke

from . import __version__, console, outdir
from .errors import FlowError, check_flag, from_os_error

# Flags every flow task takes. Given on any task of one invocation, they apply to all of it,
# so `hlsflow convert csim --model m.keras` converts and emulates the same model.
SHARED_FLAGS = ("config", "model", "out", "part", "io_type", "reuse_factor", "precision", "clock")

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
    writes_beside_config: bool = False
    out_alone: bool = False  # --out alone will do: no config or model (report on a folder synthesised elsewhere)


def spec_of(task) -> TaskSpec:
    return getattr(task.body, "hlsflow_spec", None) or TaskSpec(where="host")


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where Ctrl-C raises KeyboardInterrupt: every clean-up that Ctrl-C
    runs (finally blocks, a stage recorded as interrupted, the output's lock freed) runs for them."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _interrupt(signum, frame):
    # Once: `docker stop`'s SIGTERM reaches every process of the group, and a second signal must
    # not cut the first one's clean-up short.
    for other in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(other, signal.SIG_IGN)
    raise Interrupted(signum)


def _fail(exc: FlowError):
    console.error(str(exc))
    raise invoke.Exit(code=exc.exit_code)


def flow_task(help=None, inputs=(), outputs=(), writes_beside_config=False, writes_output=True,
              with_options=False, network_flags=(), checks=None, out_alone=False, **task_options):
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
            from .config import load_config, only_out

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
                                     out_alone=out_alone)
        return invoke.task(help={**SHARED_HELP, **(help or {})}, **task_options)(body)

    return decorate


def image_task(help=None, inputs=(), outputs=(), **task_options):
    """A task that runs in the image with its own flags (no flow config). An output flag may be
    `optional` (invoke's flag with an optional value): given bare, nothing is mounted for it."""

    def decorate(fn):
        fn.hlsflow_spec = TaskSpec(where="image", writes_output=False, inputs=tuple(inputs),
                                   outputs=tuple(outputs))
        return invoke.task(help=help or {}, **task_options)(fn)

    return decorate


def host_task(help=None, **task_options):
    """A task that runs where it is started (the image, handing it on, development)."""

    def decorate(fn):
        fn.hlsflow_spec = TaskSpec(where="host")
        return invoke.task(help=help or {}, **task_options)(fn)

    return decorate


def _share_flags(contexts) -> None:
    """Copy shared flags given on one task to every other task of the invocation that takes them."""
    given = {}
    for ctx in contexts:
        for arg in ctx.args.values():
            if arg.name in SHARED_FLAGS and arg.got_value:
                given.setdefault(arg.name, arg.value)
    for ctx in contexts:
        for arg in ctx.args.values():
            if arg.name in given and not arg.got_value:
                arg.value = given[arg.name]


class Executor(invoke.Executor):
    def execute(self, *tasks):
        from . import launcher

        contexts = [t for t in tasks if hasattr(t, "args")]
        # Manifests record the command as typed: the host's, handed into the container by the
        # launcher. Taken out of the environment so that commands run by this one record their own.
        argv0 = os.path.abspath(sys.argv[0])  # python -m X runs X/__main__.py: call it X
        program = os.path.basename(os.path.dirname(argv0) if argv0.endswith("__main__.py") else argv0)
        outdir.remember_command(os.environ.pop("HLSFLOW_COMMAND", None) or shlex.join([program, *sys.argv[1:]]))
        try:
            _share_flags(contexts)
            if contexts and not launcher.in_image():
                specs = [spec_of(self.collection[ctx.name]) for ctx in contexts]
                first = next((i for i, s in enumerate(specs) if s.where == "image"), None)
                if first is not None:
                    # Host tasks before the first image task run here; the rest go to one container.
                    results = super().execute(*contexts[:first]) if first else {}
                    code = launcher.launch(self.collection, contexts[first:])
                    if code:
                        raise invoke.Exit(code=code)
                    return results
            return super().execute(*tasks)
        except FlowError as exc:
            _fail(exc)
        except KeyboardInterrupt as exc:
            signum = getattr(exc, "signum", signal.SIGINT)
            # Under the host's launcher (which passes the image's id) the host says it, last.
            if not (launcher.in_image() and os.environ.get("HLSFLOW_IMAGE_ID")):
                console.error(f"Interrupted ({signal.Signals(signum).name}) before it finished: run it again to "
                              "redo what did not finish.")
            raise invoke.Exit(code=128 + signum) from None
        except OSError as exc:  # a full disk, a folder that went away: what the system said, and where
            _fail(from_os_error(exc))


class Program(invoke.Program):
    def print_version(self) -> None:
        from . import launcher

        console.say(f"hlsflow {__version__}")
        if launcher.in_image():
            console.say(f"running inside the toolchain image (revision {os.environ.get('HLSFLOW_REVISION', '?')})")
        else:
            from .engine import image_name

            try:
                console.say(f"image: {image_name()} (set HLSFLOW_IMAGE to use another)")
            except FlowError as exc:
                _fail(exc)


def main() -> None:
    from . import launcher

    if launcher.in_image():
        # `docker stop` sends SIGTERM (tini, PID 1, passes it on), a closed terminal SIGHUP: both
        # take Ctrl-C's path. On the host, launcher.run_in_image handles them while a container runs.
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, _interrupt)
    from .tasks import namespace

    Program(namespace=namespace, version=__version__, name="hlsflow", binary="hlsflow",
            executor_class=Executor).run()
