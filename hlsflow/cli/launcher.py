"""The host side of a flow invocation: the paths checked and mounted (mounts.py), run `hlsflow ...`
in one container of the toolchain image (the entrypoint side is docker/entrypoint.sh), watched,
cancelled with the host process, and its orphans removed. Paths stay the host's, so logs and
reports name what the user knows, and files written belong to the host user (the entrypoint drops
to HOST_UID/HOST_GID).
"""

import csv
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

from ..console import warn
from ..errors import FlowError
from ..emulator import accepted
from ..emulator.kernelcache import USER_KERNELS as KERNELS_ENV, numba_cache
from ..image.containers import docker_client, runtime_name
from ..image.fetch import flow_image
from ..state import signing
from ..inputs import command_line
from ..toolchain.xilinx import LICENCE_VARS
from . import warm
from .orphans import remove_orphans, run_labels
from .mounts import Mounts, licence_files, mount_plan

# Flow settings and the Vivado stand-in's test hooks.
FORWARDED_PREFIXES = ("HLSFLOW_", "STANDIN_")
FORWARDED_VARS = ("TF_CPP_MIN_LOG_LEVEL",)
# Signals that cancel a run while its container lives; the exit status is 128 + the signal's
# number, as a shell gives for a process a signal ended.
CANCEL_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# Runs beside the flow in its container, as the host user, with the host process's connection as its
# stdin: when that process is gone (kill -9, its machine's link lost), the engine closes that stdin and
# the flow gets what `docker stop` gives it: SIGTERM (its clean-up: staging folders, the manifest, the
# lock), SIGKILL after STOP_TIMEOUT. An exec of its own rather than a wrapper of the command: an exec's
# stdin stays a pipe while the flow has a terminal, and a terminal's stdin is never closed.
# `kill -1` reaches every process of the user in the container but PID 1 (tini) and the watcher.
STOP_TIMEOUT = 10  # seconds between the container's SIGTERM and its SIGKILL
WATCHER = ["sh", "-c", f"cat >/dev/null; kill -s TERM -- -1; sleep {STOP_TIMEOUT}; kill -s KILL -- -1"]
# The emulation starts a worker per core, TensorFlow and numba a thread pool each, Vivado many
# threads of its own, g++ a few processes: generous for all that, yet a runaway fork ends.
PIDS_LIMIT = 4096


def in_image() -> bool:
    """True inside the image, or when the user chose to run natively in a virtualenv."""
    return "1" in (os.environ.get("HLSFLOW_IN_IMAGE"), os.environ.get("HLSFLOW_NATIVE"))


def container_settings(mounts: Mounts) -> dict:
    """Environment, network and the Vivado/licence mounts shared by every flow container."""
    env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_PREFIXES) or k in FORWARDED_VARS}
    env.update(HOST_UID=str(os.getuid()), HOST_GID=str(os.getgid()))
    # Passed when the user set it (one that is missing is then named in one sentence inside) or when
    # the default is there; the entrypoint looks at the default itself.
    root = os.path.abspath(os.environ.get("XILINX_ROOT") or "/opt/Xilinx")
    if os.environ.get("XILINX_ROOT") or os.path.isdir(root):
        env["XILINX_ROOT"] = root
    if os.path.isdir(root):
        mounts.read_only(root)  # read-only: nothing in the flow may change the install
    if os.environ.get("VIVADO_DIR"):
        env["VIVADO_DIR"] = os.path.abspath(os.environ["VIVADO_DIR"])
        if os.path.isdir(env["VIVADO_DIR"]):
            mounts.read_only(env["VIVADO_DIR"])
    for item in licence_files():
        mounts.read_only(item)
    # The user's signing key (state/signing.py), read-only: records this run makes are theirs.
    try:
        key = signing.ensure_key()
    except OSError as exc:
        raise FlowError(f"hlsflow cannot make its signing key {signing.key_path()} ({exc.strerror}): set "
                        f"{signing.ENV} to the path of a file it may create, readable by you alone.") from exc
    mounts.read_only(key)
    env[signing.ENV] = str(key.absolute())
    trees = accepted.made_folder()  # the C++ trees g++ accepted: a design is checked once, not in each container
    if trees is not None:
        mounts.read_write(trees)
        env[accepted.ENV] = str(trees.absolute())
    network = "none"  # the flow needs no network: keep it reproducible
    for var in LICENCE_VARS:
        if not os.environ.get(var):
            continue
        env[var] = os.environ[var]
        # FlexLM checks a node-locked licence against the host's network interfaces and reaches
        # licence servers over the network: neither works without the host's network.
        network = "host"
    return {"env": env, "network": network}


def launch(collection, contexts) -> int:
    """Run these image tasks as one `hlsflow` invocation in one container; its exit code."""
    from ..image.lanes import lane_image

    argv, mounts = mount_plan(collection, contexts)
    try:
        # The lane (image) the model's Keras needs, read from its file before any container starts.
        return run_in_image(["hlsflow", *argv], mounts, workdir=str(Path.cwd()), image=lane_image(argv))
    finally:
        mounts.remove_created()


def confinement(uid=None) -> dict:
    """What a flow container may do beyond its mounts, for the Docker SDK. Every capability is
    dropped but what the entrypoint's switch to the host user needs (chown of $HOME, setpriv's
    setuid, setgid and setgroups); that switch then leaves the flow with none, and
    no-new-privileges keeps it so (setpriv is no setuid binary: nothing needs them). A host root
    stays root and keeps root's file access (DAC_OVERRIDE, FOWNER): on the host it may write into
    any folder, and the files it writes are its own. For another host user, tini (root, PID 1) keeps
    KILL: without it, forwarding `docker stop`'s SIGTERM to the flow (another user's processes) is
    refused, tini dies of it, and the flow is killed without its clean-up."""
    uid = os.getuid() if uid is None else uid
    caps = ["CHOWN", "SETUID", "SETGID"] + (["DAC_OVERRIDE", "FOWNER"] if uid == 0 else ["KILL"])
    return {"cap_drop": ["ALL"], "cap_add": caps, "security_opt": ["no-new-privileges"], "pids_limit": PIDS_LIMIT}


class _Cancel:
    """The cancelling signals while a container lives, as a signal handler. The first stops the
    container (SIGTERM, SIGKILL after STOP_TIMEOUT; inside, hlsflow takes Ctrl-C's path: staging
    folders go, the manifest says "interrupted", the lock is freed), a second kills it at once.
    Stopped from a thread: the main thread goes on streaming the container's output until it
    ends, then removes it."""

    def __init__(self):
        self.signals = []
        self.container = None  # set once started: a stop before the start would race with it

    def __call__(self, signum, frame) -> None:
        self.signals.append(signum)
        if self.container is not None:
            self.stop(kill=len(self.signals) > 1)

    def started(self, container) -> None:
        self.container = container
        if self.signals:
            self.stop(kill=False)

    def stop(self, kill: bool) -> None:
        def run():
            try:
                self.container.kill() if kill else self.container.stop(timeout=STOP_TIMEOUT)
            except Exception:  # it ended, or is being removed, meanwhile: nothing left to stop
                pass

        threading.Thread(target=run, daemon=True).start()

    def error(self, mounts: Mounts) -> FlowError:
        return cancelled(self.signals[0], mounts, "the container was stopped and removed")


def cancelled(signum: int, mounts: Mounts, what: str) -> FlowError:
    kept = (f"; what had finished in {', '.join(mounts.outputs)} is kept, and the stopped stage runs again "
            "next time") if mounts.outputs else ""
    return FlowError(f"Cancelled ({signal.Signals(signum).name}): {what}{kept}.", exit_code=128 + signum)


def _died(code: int, oom: bool, stats: str):
    """FlowError naming how the container ended, when something outside the flow ended it (the
    flow's own failures exit with small codes and have said why); else None."""
    if oom:
        return FlowError(f"The flow container ran out of memory and was killed (exit status {code}): give the engine "
                         f"more memory (watch it with `{stats}`), or emulate fewer samples with --max-samples.",
                         exit_code=code or 137)
    if code <= 128:
        return None
    try:
        name = signal.Signals(code - 128).name
    except ValueError:
        return None
    if name == "SIGKILL":
        return FlowError(f"The flow container was killed (exit status {code}, SIGKILL) before it finished: if nobody "
                         f"killed it, memory most likely ran out; watch `{stats}`, or emulate fewer samples with "
                         "--max-samples.", exit_code=code)
    return FlowError(f"The flow container was ended by {name} (exit status {code}) before it finished: run it again; "
                     "the stage that was stopped is redone.", exit_code=code)


def _remove(container) -> None:
    """Remove the container; one that is gone, or that the engine is already removing, is fine."""
    import docker

    try:
        container.remove(force=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        if exc.status_code != 409:  # 409: "removal of container ... is already in progress"
            warn(f"Could not remove the flow container {container.short_id} ({exc.explanation or exc}): "
                 f"remove it with `docker rm -f {container.short_id}`.")


def _watch_host(client, container):
    """Start WATCHER in the running container; its connection (keep it open while the container runs),
    or None when the container has already ended or the engine refuses."""
    import docker

    user = f"{os.getuid()}:{os.getgid()}"  # the flow's user, whose processes it may signal
    try:
        exec_id = client.api.exec_create(container.id, WATCHER, stdin=True, stdout=False, stderr=False, user=user)
        return client.api.exec_start(exec_id["Id"], socket=True)
    except docker.errors.APIError:
        return None


KERNELS_DONE = ".compiled"  # in a numba_cache folder: the kernels-only container finished


def user_kernels(client, image_id: str):
    """The folder of kernels compiled for this CPU, to mount read-only; None where the image ships
    kernels for its x86-64 level (kernelcache.py) or no folder can be had. The first time, a
    container that holds no user's file compiles them there (numba's cache index is a pickle: a
    folder any flow container could write would let a model loaded there run code in later ones)."""
    from ..console import step
    from ..emulator.kernelcache import cpu_level

    if cpu_level() is not None:
        return None
    folder = numba_cache(image_id)
    if folder is None or (Path(folder) / KERNELS_DONE).is_file():
        return folder
    step("Compiling the fast engine's kernels for this CPU, once (the image ships them only for x86-64-v3 and v4)")
    mounts = Mounts()
    mounts.read_write(folder)
    binds, volumes = mounts.engine_mounts(podman=runtime_name(client) == "Podman")
    container = client.containers.run(
        image_id, ["python", "-m", "hlsflow.emulator.precompile"], detach=True, network_mode="none",
        environment={"NUMBA_CACHE_DIR": folder, "HOST_UID": str(os.getuid()), "HOST_GID": str(os.getgid())},
        mounts=binds, volumes=volumes, labels=run_labels(), **confinement())
    try:
        code = container.wait()["StatusCode"]
    finally:
        _remove(container)
    if code == 0:
        (Path(folder) / KERNELS_DONE).touch()
    else:
        warn(f"The fast engine's kernels could not be compiled ahead (exit status {code}): each csim compiles "
             "them for itself, which takes longer.")
    return folder


def run_in_image(cmd, mounts: Mounts, workdir: str, image=None, ports=None) -> int:
    """`cmd` in one container of the image; output streams live. SIGINT, SIGTERM or SIGHUP stop
    and remove the container and end in FlowError with status 128 + the signal; a container ended
    from outside (killed, out of memory) is FlowError too. Else the container's exit code. `ports`:
    what the engine publishes, as the Docker SDK takes it (`hlsflow lab`)."""
    import docker

    client = docker_client()
    found = flow_image(client, image)
    image_id = found.id
    settings = container_settings(mounts)
    settings["network"] = mounts.network or settings["network"]
    settings["env"].update(mounts.env)
    kernels = user_kernels(client, image_id)
    if kernels:
        mounts.read_only(kernels)
        settings["env"][KERNELS_ENV] = kernels
    # The container cannot see which image it is: the manifests it writes record what we pass.
    settings["env"].update(HLSFLOW_IMAGE_ID=image_id, HLSFLOW_IMAGE_LABELS=json.dumps(found.labels or {}),
                           HLSFLOW_COMMAND=command_line())
    if warm.wanted(cmd, ports):
        code = _run_warm(client, image_id, cmd, mounts, settings, workdir)
        if code is not None:
            return code
    tty = sys.stdin.isatty() and sys.stdout.isatty()
    binds, volumes = mounts.engine_mounts(podman=runtime_name(client) == "Podman")
    remove_orphans(client)
    cancel = _Cancel()
    # Only around the container's life: before it there is nothing to stop, after it nothing to remove.
    previous = {signum: signal.signal(signum, cancel) for signum in CANCEL_SIGNALS}
    container = watcher = None
    try:
        try:
            # No --init: the image's own tini is PID 1 under Docker and Podman alike.
            container = client.containers.create(
                image_id, cmd, tty=tty, network_mode=settings["network"], environment=settings["env"],
                mounts=binds, volumes=volumes, working_dir=workdir, ports=ports, labels=run_labels(),
                **confinement())
        except docker.errors.APIError as exc:
            raise FlowError(f"{runtime_name(client)} could not create the flow container "
                            f"({exc.explanation or exc}): fix what it names and run again.") from exc
        if cancel.signals:
            raise cancel.error(mounts)
        try:
            # Attach before starting so that not a byte of output is missed.
            stream = client.api.attach(container.id, stream=True, demux=not tty)
            container.start()
        except docker.errors.APIError as exc:
            raise FlowError(f"{runtime_name(client)} could not start the flow container "
                            f"({exc.explanation or exc}): fix what it names and run again.") from exc
        cancel.started(container)
        watcher = _watch_host(client, container)
        for chunk in stream:
            out, err = (chunk, None) if tty else chunk
            _write(sys.stdout, out)
            _write(sys.stderr, err)
        code = container.wait()["StatusCode"]
        if cancel.signals:
            raise cancel.error(mounts)
        container.reload()
        died = _died(code, bool(container.attrs.get("State", {}).get("OOMKilled")),
                     f"{runtime_name(client).lower()} stats")
        if died:
            raise died
        return code
    finally:
        if container is not None:
            _remove(container)
        if watcher is not None:
            watcher.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _run_warm(client, image_id, cmd, mounts: Mounts, settings: dict, workdir: str):
    """`cmd` in a warm container (cli/warm.py); None when none can serve it."""
    podman = runtime_name(client) == "Podman"

    def create(server, name, folder):
        both = Mounts()
        both.modes = {**mounts.modes, os.path.abspath(folder): "rw"}
        binds, volumes = both.engine_mounts(podman=podman)
        env = {k: v for k, v in settings["env"].items() if k not in warm.UNKEYED}
        return client.containers.run(image_id, server, detach=True, name=name, auto_remove=True,
                                     network_mode=settings["network"], environment=env, mounts=binds, volumes=volumes,
                                     working_dir=workdir, labels=warm.labels(folder, socket.gethostname()),
                                     **confinement())

    return warm.run(client, image_id, mounts, settings, workdir, create, cmd[1:],
                    cancel_error=lambda signum: cancelled(signum, mounts, "the command was stopped"),
                    died=lambda code: _died(code, False, f"{runtime_name(client).lower()} stats"))


def run_checkout_task(argv, root: Path, image=None) -> int:
    """`invoke ARGV` in the image on a checkout mounted read-write (development tasks: tests,
    benchmarks, training the reference model)."""
    mounts = Mounts()
    mounts.read_write(root)
    return run_in_image(["invoke", *argv], mounts, workdir=str(root), image=image)


def open_shell(image=None) -> int:
    """An interactive bash in the image with the working directory mounted read-write. Run through
    the engine's own client: a real terminal (raw mode, resizing, Ctrl-C) is what it does well."""
    client = docker_client()
    image_id = flow_image(client, image).id
    cli = "podman" if runtime_name(client) == "Podman" and shutil.which("podman") else "docker"
    if not shutil.which(cli):
        raise FlowError(f"`hlsflow shell` needs the {cli} command-line client: install it.")
    mounts = Mounts()
    mounts.read_write(Path.cwd())
    settings = container_settings(mounts)
    cmd = [cli, "run", "--rm", "-i", "--network", settings["network"], "-w", str(Path.cwd())]
    limits = confinement()
    cmd += ["--cap-drop", "ALL", *(f"--cap-add={cap}" for cap in limits["cap_add"]),
            *(f"--security-opt={opt}" for opt in limits["security_opt"]), f"--pids-limit={limits['pids_limit']}"]
    if sys.stdin.isatty():
        cmd.append("-t")
    for key, value in settings["env"].items():
        cmd += ["-e", f"{key}={value}"]
    for source, mount in mounts.volumes().items():
        cmd += ["--mount", _mount_option(source, mount["bind"], mount["mode"] == "ro")]
    return subprocess.call([*cmd, image_id, "bash"])


def _mount_option(source: str, target: str, read_only: bool) -> str:
    """A bind mount as `--mount` takes it: comma-separated fields, which both docker's and podman's
    command lines read as CSV, so a field holding ',' or '"' is quoted (a `-v` string breaks on ':')."""
    fields = ["type=bind", f"source={source}", f"target={target}", *(["readonly"] if read_only else [])]
    line = io.StringIO()
    csv.writer(line, lineterminator="").writerow(fields)
    return line.getvalue()


def _write(sink, data) -> None:
    if data:
        if hasattr(sink, "buffer"):
            sink.buffer.write(data)
        else:  # a text-only replacement of sys.stdout
            sink.write(data.decode(errors="replace"))
        sink.flush()
