"""Warm containers (`HLSFLOW_WARM=SECONDS`): the host command hands each flow command to a container
that has imported TensorFlow and hls4ml already (cli/warmserver.py), started by the first command and
ended after SECONDS with no command, instead of a container of its own. The same program runs, with
the host's own stdin, stdout and stderr, in the same mounts, image and environment.

A warm container serves only commands that would get exactly its container: its key is the image's
id, every mount with the identity (device, inode) of the path mounted, the working directory, the
environment and the user. A rebuilt image, an edited config saved as a new file, a removed and
remade output folder, another folder: each is another key, so another container; the old one ends
when idle. Commands run side by side in one warm container as they would in two cold ones: each in
its own process, under the same locks.

On by default at a terminal (DEFAULT_IDLE seconds, said in one line when one starts); for CI
(CI=true) and scripts (no terminal) only when HLSFLOW_WARM is set, so a job leaves no container
behind. Not used for --verbose (TensorFlow was imported quiet), `hlsflow lab` (ports) or the
development tasks of a checkout (their code is the checkout's, which may change under a server).
"""

import hashlib
import json
import os
import signal
import socket
import stat
import sys
import time
from pathlib import Path

from .. import console
from ..console import warn
from ..errors import FlowError

ENV = "HLSFLOW_WARM"
LABEL = "org.hlsflow.warm"
START_TIMEOUT = 120  # seconds for a new warm container to import TensorFlow and hls4ml
PER_COMMAND = ("HLSFLOW_COMMAND",)  # sent with each command, not part of the container
# A container's idle time and the count kept are the host's choice: another HLSFLOW_WARM finds it too.
UNKEYED = (*PER_COMMAND, ENV, "HLSFLOW_WARM_MAX")
DEFAULT_IDLE = 600  # seconds, at a terminal when HLSFLOW_WARM is not set
# At most this many warm containers of one user at once (about 230 MB each): starting another first
# asks the oldest idle ones to end. HLSFLOW_WARM_MAX sets it.
MAX_ENV, DEFAULT_MAX = "HLSFLOW_WARM_MAX", 4
USER_LABEL, SOCKET_LABEL = f"{LABEL}-user", f"{LABEL}-socket"


def interactive() -> bool:
    """A person at a terminal, not CI or a script: where a warm container is kept unless told otherwise."""
    return sys.stdin.isatty() and sys.stdout.isatty() and os.environ.get("CI", "").lower() not in ("true", "1")


def idle_seconds():
    """The idle time a warm container lives: HLSFLOW_WARM's, else DEFAULT_IDLE at a terminal; None when
    warm containers are off (HLSFLOW_WARM=0, and for CI and scripts unless they set it)."""
    value = os.environ.get(ENV, "").strip()
    if value == "":
        return DEFAULT_IDLE if interactive() else None
    if value in ("0", "off", "no", "false"):
        return None
    try:
        seconds = float(value)
    except ValueError:
        raise FlowError(f"{ENV}={value!r} is not a number of seconds: set it to how long a warm container may "
                        "wait for the next command (e.g. 600), or to 0 for none.", exit_code=2) from None
    if not 0 < seconds <= 86400:
        raise FlowError(f"{ENV}={value} is out of range: give 1 to 86400 seconds, or 0 for no warm container.",
                        exit_code=2)
    return seconds


def wanted(cmd, ports) -> bool:
    return (idle_seconds() is not None and not ports and cmd[:1] == ["hlsflow"]
            and os.environ.get("HLSFLOW_VERBOSE") != "1" and sys.platform.startswith("linux"))


def _identity(path: str) -> list:
    try:
        info = os.stat(path)
    except OSError:
        return [path, None]
    return [path, info.st_dev, info.st_ino, stat.S_IFMT(info.st_mode)]


def key(image_id: str, mounts, settings: dict, workdir: str) -> str:
    env = {k: v for k, v in settings["env"].items() if k not in UNKEYED}
    described = {"image": image_id, "mounts": [[*_identity(path), mode] for path, mode in sorted(mounts.modes.items())],
                 "env": sorted(env.items()), "network": settings["network"], "workdir": _identity(workdir),
                 "user": [os.getuid(), os.getgid()]}
    return hashlib.sha256(json.dumps(described).encode()).hexdigest()


def socket_folder(name: str):
    """This user's folder for warm sockets, readable by them alone; None where there is no safe one (a
    socket path must stay under 108 bytes)."""
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/hlsflow-warm-{os.getuid()}")
    folder = base / "hlsflow-warm" / name[:16] if os.environ.get("XDG_RUNTIME_DIR") else base / name[:16]
    try:
        base.mkdir(mode=0o700, exist_ok=True)
        info = base.lstat()
        if info.st_uid != os.getuid() or not stat.S_ISDIR(info.st_mode) or info.st_mode & 0o077:
            return None  # another user's, or opened to others: not a place for a socket that runs commands
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        return None
    return folder if len(str(folder / "s")) < 100 else None


class _Cancel:
    """Ctrl-C, SIGTERM, SIGHUP while a warm command runs: the first is sent on as SIGTERM (what `docker
    stop` gives a cold container's command: the flow's own clean-up), a second as SIGKILL."""

    def __init__(self, conn):
        self.conn, self.signals = conn, []

    def __call__(self, signum, frame) -> None:
        self.signals.append(signum)
        try:
            sent = signal.SIGKILL if len(self.signals) > 1 else signal.SIGTERM
            self.conn.sendall(json.dumps({"signal": int(sent)}).encode() + b"\n")
        except OSError:
            pass


def _connect(path: Path, deadline: float, container):
    """A connection to the server at `path` once it greets; None when it does not come up (the
    container ended, or the deadline passed)."""
    while time.monotonic() < deadline:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(str(path))
            conn.settimeout(deadline - time.monotonic())
            if conn.recv(6) == b"ready\n":
                conn.settimeout(None)
                return conn
        except OSError:
            pass
        conn.close()
        if container is None:
            return None
        try:
            container.reload()
            if container.status not in ("created", "running"):
                return None
        except Exception:  # removed meanwhile
            return None
        time.sleep(0.05)
    return None


def labels(folder: Path, host: str) -> dict:
    """A warm container's labels: what it is, whose, on which host, and its socket."""
    return {LABEL: "1", USER_LABEL: str(os.getuid()), f"{LABEL}-host": host, SOCKET_LABEL: str(folder / "s")}


def most() -> int:
    value = os.environ.get(MAX_ENV, "").strip()
    if not value:
        return DEFAULT_MAX
    if not value.isdecimal() or int(value) < 1:
        raise FlowError(f"{MAX_ENV}={value!r} is not a count: give how many warm containers you may keep at once "
                        f"(e.g. {DEFAULT_MAX}).", exit_code=2)
    return int(value)


def _retire(path: str) -> None:
    """Ask the server at `path` to end if it has nothing to do; it decides (a busy one stays)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(5)
            conn.connect(path)
            if conn.recv(6) == b"ready\n":
                conn.sendall(b'{"retire": true}\n')
                conn.recv(64)
    except OSError:  # gone already, or not answering: it ends when idle
        pass


def _make_room(client, host: str) -> None:
    """Below `most()` warm containers of this user on this host, by retiring the oldest idle ones."""
    try:
        found = client.containers.list(filters={"label": [f"{LABEL}=1", f"{USER_LABEL}={os.getuid()}",
                                                          f"{LABEL}-host={host}"]})
    except Exception:  # an engine that cannot filter so: nothing is retired
        return
    found.sort(key=lambda c: c.attrs.get("Created", ""))
    for container in found[:max(0, len(found) - most() + 1)]:
        if container.labels.get(SOCKET_LABEL):
            _retire(container.labels[SOCKET_LABEL])


def _started(client, image_id, name, folder: Path, idle, create) -> object:
    """The warm container called `name`, started now unless it runs already; None when it cannot be."""
    import docker

    try:
        return client.containers.get(name)
    except docker.errors.NotFound:
        pass
    _make_room(client, socket.gethostname())
    cmd = ["python", "-m", "hlsflow.cli.warmserver", str(folder / "s"), str(idle)]
    # Said when the default started it (a person at a terminal who did not ask), as a build daemon says it
    # starts: the container outlives this command.
    if not os.environ.get(ENV, "").strip():
        console.detail(f"hlsflow: starting a warm container for commands like this one here (it ends after "
                       f"{idle:g} s without one; {ENV}=0 runs each command in a container of its own)")
    try:
        return create(cmd, name, folder)
    except docker.errors.APIError as exc:
        if exc.status_code == 409:  # another command started it a moment ago
            try:
                return client.containers.get(name)
            except docker.errors.NotFound:
                return None
        warn(f"hlsflow could not start a warm container ({exc.explanation or exc}): this command runs in a "
             "container of its own.")
        return None


def run(client, image_id: str, mounts, settings: dict, workdir: str, create, argv, cancel_error, died):
    """The command `argv` (hlsflow's, without the program name) in this key's warm container; its exit
    code, or None when no warm container can serve it (the caller then runs it cold).
    `create(cmd, name, folder)` starts a detached container as the cold path would, with these mounts and
    the socket's folder."""
    name = "hlsflow-warm-" + key(image_id, mounts, settings, workdir)[:24]
    folder = socket_folder(name[len("hlsflow-warm-"):])
    if folder is None:
        return None
    path = folder / "s"
    conn = _connect(path, time.monotonic() + 1, None) if path.exists() else None
    if conn is None:
        container = _started(client, image_id, name, folder, idle_seconds(), create)
        if container is None:
            return None
        conn = _connect(path, time.monotonic() + START_TIMEOUT, container)
        if conn is None:
            warn(f"The warm container {name} did not answer: this command runs in a container of its own "
                 f"(`docker logs {name}` may say why).")
            try:
                container.remove(force=True)
            except Exception:
                pass
            return None
    request = {"argv": argv, "cwd": workdir, "env": {k: v for k, v in settings["env"].items() if k in PER_COMMAND}}
    cancel = _Cancel(conn)
    previous = {signum: signal.signal(signum, cancel) for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        socket.send_fds(conn, [json.dumps(request).encode() + b"\n"], [0, 1, 2])
        answer = b""
        while b"\n" not in answer:
            try:
                data = conn.recv(4096)
            except InterruptedError:
                continue
            if not data:
                raise FlowError(f"The warm container {name} ended before the command finished: run it again (with "
                                f"{ENV}=0 it runs in a container of its own).", exit_code=1)
            answer += data
        code = json.loads(answer.split(b"\n", 1)[0])["exit"]
        if cancel.signals:
            raise cancel_error(cancel.signals[0])
        failure = died(code)
        if failure:
            raise failure
        return code
    finally:
        conn.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
