"""The command line: the `hlsflow` program. Tasks get their kind from kinds.py; this module
imports them only by the collection's name, when the program runs.

- `Executor` serves `hlsflow` and `invoke` in a checkout alike (invoke.yaml names it): flags
  shared by the flow tasks apply to every task of one invocation, a FlowError becomes one
  sentence and an exit code, and on the host the image tasks go to one container.
"""

import os
import shlex
import signal
import sys

import invoke

from .. import __version__, console
from ..errors import FlowError, check_text, from_os_error
from ..inputs import remember_command
from .kinds import SHARED_FLAGS, spec_of

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


def _check_text(contexts) -> None:
    """A control character in any flag (a newline pasted into --out) is named here, before anything
    runs or any container starts: it would only fail much later, in the HLS project's C++ or Tcl."""
    for ctx in contexts:
        for arg in ctx.args.values():
            if isinstance(arg.value, str):
                check_text(arg.value, f"The argument {arg.name}" if arg.positional else "--" + arg.names[0])


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
        remember_command(os.environ.pop("HLSFLOW_COMMAND", None) or shlex.join([program, *sys.argv[1:]]))
        try:
            _check_text(contexts)
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


# `hlsflow --fetch` and `--verbose`, handed to what runs next (in the image too: HLSFLOW_ variables
# are forwarded) through the environment.
OWN_FLAGS = {"fetch": ("HLSFLOW_FETCH", "without the image: load $HLSFLOW_IMAGE_TARBALL, else build it in this "
                                        "checkout, then run the task"),
             "verbose": ("HLSFLOW_VERBOSE", "show TensorFlow's, Dask's and the image entrypoint's own log lines")}


# `hlsflow --lane NAME`: the image lane (hlsflow/image/lanes.py), handed on as HLSFLOW_LANE.
LANE_HELP = "run in this image lane: reference (TensorFlow 2.15, Keras 2) or keras3; default: the model's Keras"


def _parse_error(exc: invoke.exceptions.ParseError) -> FlowError:
    """invoke's parse error ("No idea what '--bogus' is!") as hlsflow's one sentence, exit 2."""
    import re

    text = str(exc)
    unknown = re.fullmatch(r"No idea what '(.*)' is!", text)
    missing = re.match(r"Flag <Argument: ([\w-]+)", text)
    if unknown:
        said = f"hlsflow has no task or flag '{unknown.group(1)}'"
    elif missing and "needed value" in text:
        said = f"--{missing.group(1).replace('_', '-')} needs a value"
    else:
        said = text.rstrip("!.")
    return FlowError(f"{said}: `hlsflow --help` lists the tasks, `hlsflow TASK --help` a task's flags.", exit_code=2)


class Program(invoke.Program):
    def parse_core(self, argv):
        try:
            super().parse_core(argv)
        except invoke.exceptions.ParseError as exc:
            _fail(_parse_error(exc))

    def parse_tasks(self):
        try:
            super().parse_tasks()
        except invoke.exceptions.ParseError as exc:
            _fail(_parse_error(exc))

    def core_args(self):
        return super().core_args() + [invoke.Argument(names=(name,), kind=bool, default=False, help=text)
                                      for name, (_, text) in OWN_FLAGS.items()] + [
            invoke.Argument(names=("lane",), kind=str, default=None, help=LANE_HELP)]

    def execute(self) -> None:
        for name, (var, _) in OWN_FLAGS.items():
            if self.args[name].value:
                os.environ[var] = "1"
        if self.args["lane"].value:
            from ..image.lanes import LANE_ENV, check_lane

            try:
                os.environ[LANE_ENV] = check_lane(self.args["lane"].value)
            except FlowError as exc:
                _fail(exc)
        super().execute()

    def print_help(self) -> None:
        """hlsflow's own help: its tasks with their whole summaries, and its own flags (invoke's
        core flags still work, unlisted)."""
        import shutil
        import textwrap

        from .tasks import USER_TASKS

        width = max(80, min(shutil.get_terminal_size().columns, 120))
        names = [t.name.replace("_", "-") for t in USER_TASKS]
        pad = max(map(len, names)) + 4
        console.say("Usage: hlsflow [--fetch] [--verbose] [--lane NAME] TASK [--flags] [TASK [--flags]] ...")
        console.say("       hlsflow TASK --help     the flags of one task")
        console.say("")
        console.say("The hls4ml flow (Keras model -> HLS project -> bit-accurate emulation -> Vivado HLS -> report),")
        console.say("run in the toolchain image. Tasks:")
        console.say("")
        for name, task in zip(names, USER_TASKS):
            summary = " ".join((task.__doc__ or "").strip().split("\n\n")[0].split())
            console.say(textwrap.fill(summary, width, initial_indent=f"  {name.ljust(pad - 2)}",
                                      subsequent_indent=" " * pad))
        console.say("")
        console.say("Flags:")
        for name, (_, text) in OWN_FLAGS.items():
            console.say(textwrap.fill(text, width, initial_indent=f"  --{name.ljust(pad - 4)}",
                                      subsequent_indent=" " * pad))
        console.say(textwrap.fill(LANE_HELP, width, initial_indent=f"  {'--lane NAME'.ljust(pad - 2)}",
                                  subsequent_indent=" " * pad))
        console.say(textwrap.fill("show the version and the image it uses", width,
                                  initial_indent=f"  {'-V, --version'.ljust(pad - 2)}", subsequent_indent=" " * pad))
        console.say(textwrap.fill("this help", width, initial_indent=f"  {'-h, --help'.ljust(pad - 2)}",
                                  subsequent_indent=" " * pad))

    def print_version(self) -> None:
        from . import launcher

        console.say(f"hlsflow {__version__}")
        if launcher.in_image():
            console.say(f"running inside the toolchain image (revision {os.environ.get('HLSFLOW_REVISION', '?')})")
        else:
            from ..image.containers import image_name

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
