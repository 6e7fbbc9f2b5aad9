"""The warm side of `HLSFLOW_WARM` (cli/warm.py is the host's): one process in a flow container that
has imported TensorFlow, hls4ml and hlsflow once, and runs each `hlsflow` command the host sends it
in a child forked from it. The child gets the host's own stdin, stdout and stderr (passed over the
socket), its working directory and command line, and is the same program a cold container runs:
the child calls cli/program.py's main() as the entrypoint's `hlsflow` does.

Nothing but imports happens before a fork (no TensorFlow op, no thread pool, no numba kernel run), so
a child starts as a fresh process would after its imports. The server exits after IDLE seconds with
no command running; `docker stop` ends its children first (each gets SIGTERM, as in a cold container).

Protocol, one JSON object a line: the host sends {"argv", "env", "cwd"} with its three descriptors,
then {"signal": N} for a cancel; the server answers {"exit": CODE} (128 + N for a child a signal
ended). {"retire": true} asks a server to end now if it has no other connection (a host making
room for another folder's container): it answers {"retired": true or false}. A host that goes away
(its connection closes) has its command stopped: SIGTERM, SIGKILL STOP_TIMEOUT seconds later, as a
cold container's watcher does.
"""

import json
import os
import select
import signal
import socket
import sys
import time

STOP_TIMEOUT = 10  # as launcher.STOP_TIMEOUT: SIGTERM, then SIGKILL this much later
READY = b"ready\n"  # the greeting of a server that has finished its imports


def preload() -> None:
    """What every flow command imports, imported once. TensorFlow is imported as load_keras_model
    imports it when --verbose is off (the host never sends a verbose command here)."""
    import importlib

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for name in ("hlsflow.flow", "hlsflow.cli.program", "hlsflow.cli.tasks", "hlsflow.stages.plan"):
        importlib.import_module(name)
    importlib.import_module("hlsflow.loading")._runtime()  # TensorFlow, or Keras 3 in its lane
    importlib.import_module("hls4ml")


def _child(conn_fd: int, fds: list, request: dict, listener: socket.socket, others: list) -> None:
    """In the forked child: become the host's command, run it, exit with its code. Never returns."""
    code = 1
    try:
        os.setpgid(0, 0)  # its own process group: a cancel reaches it and whatever it started
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        listener.close()
        for sock in others:
            sock.close()
        os.close(conn_fd)
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        # Buffered as a fresh process's: by line when the host's stdout is a terminal.
        sys.stdout.reconfigure(line_buffering=os.isatty(1))
        sys.argv = ["hlsflow", *request["argv"]]
        from .program import main

        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException as exc:  # a bug of this module's: say it where the user looks
        try:
            os.write(2, f"hlsflow: the warm container could not run the command ({exc!r}); run it with "
                        "HLSFLOW_WARM=0.\n".encode())
        except OSError:
            pass
    finally:
        try:
            import atexit

            atexit._run_exitfuncs()  # what a fresh process runs at its exit (temporary folders, pools)
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


class _Run:
    """One connection: the request as it arrives, then its child."""

    def __init__(self, conn):
        self.conn, self.buffer, self.pid, self.kill_at, self.fds = conn, b"", None, None, []

    def send(self, message: dict) -> None:
        if self.conn is None:  # the host went away: nobody to tell
            return
        try:
            self.conn.sendall(json.dumps(message).encode() + b"\n")
        except OSError:
            pass

    def signal(self, signum: int) -> None:
        if self.pid is not None:
            try:
                os.killpg(self.pid, signum)
            except (ProcessLookupError, PermissionError):
                pass


def serve(path: str, idle: float) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        os.unlink(path)  # left by a server that was killed
    except FileNotFoundError:
        pass
    listener.bind(path)
    os.chmod(path, 0o600)
    listener.listen(16)
    runs, last, stopping = [], time.monotonic(), []
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda *_: stopping.append(1))
    try:
        while not stopping:
            talking = {run.conn: run for run in runs if run.conn is not None}
            ready, _, _ = select.select([listener, *talking], [], [], 0.2)
            for sock in ready:
                if stopping:
                    break
                if sock is listener:
                    conn, _ = listener.accept()
                    conn.sendall(READY)
                    runs.append(_Run(conn))
                else:
                    try:
                        _read(talking[sock], runs, listener, stopping, path)
                    except (OSError, ValueError, KeyError):  # a broken request ends its connection only
                        talking[sock].conn = None
                        sock.close()
            now = time.monotonic()
            for run in list(runs):
                if run.pid is None:
                    if run.conn is None:
                        runs.remove(run)
                    continue
                if run.kill_at is not None and now > run.kill_at:
                    run.signal(signal.SIGKILL)
                    run.kill_at = None
                done, status = os.waitpid(run.pid, os.WNOHANG)
                if done:
                    code = os.waitstatus_to_exitcode(status)
                    run.send({"exit": 128 - code if code < 0 else code})
                    if run.conn is not None:
                        run.conn.close()
                    runs.remove(run)
                    last = now
            if not runs and now - last > idle:
                break
    finally:
        _stop_all(runs)
        try:
            os.unlink(path)
        except OSError:
            pass


def _read(run: _Run, runs: list, listener, stopping: list, path: str) -> None:
    """What the host sent on one connection: the request (then the child is forked), a signal, or a
    request to retire."""
    sock = run.conn
    if run.pid is None:
        data, fds, _, _ = socket.recv_fds(sock, 1 << 16, 3)
        run.fds += fds  # they come with the request's first bytes, which may not be the whole line
    else:
        data = sock.recv(1 << 16)
    if not data:  # the host is gone: stop its command as a cold container's watcher would
        run.signal(signal.SIGTERM)
        run.kill_at = time.monotonic() + STOP_TIMEOUT
        sock.close()
        run.conn = None
        for fd in run.fds:
            os.close(fd)
        run.fds = []
        return
    run.buffer += data
    while b"\n" in run.buffer:
        line, run.buffer = run.buffer.split(b"\n", 1)
        message = json.loads(line)
        if "argv" in message and run.pid is None and len(run.fds) == 3:
            others = [r.conn for r in runs if r.conn is not None and r is not run]
            pid = os.fork()
            if pid == 0:
                _child(sock.fileno(), run.fds, message, listener, others)
            os.setpgid(pid, pid)  # here too: a cancel that arrives before the child ran reaches it
            run.pid = pid
            for fd in run.fds:
                os.close(fd)
            run.fds = []
        elif "signal" in message:
            run.signal(int(message["signal"]))
        elif message.get("retire"):
            # Any other connection is a command on its way: a server with one does not retire.
            busy = any(r is not run and (r.pid is not None or r.conn is not None) for r in runs)
            if not busy:
                os.unlink(path)  # no new command reaches it from now on
                stopping.append(1)
            run.send({"retired": not busy})


def _stop_all(runs: list) -> None:
    """`docker stop` or the idle end with commands running: SIGTERM each, SIGKILL what outlives STOP_TIMEOUT."""
    for run in runs:
        run.signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for run in runs:
        while run.pid is not None and not os.waitpid(run.pid, os.WNOHANG)[0]:
            if time.monotonic() > deadline:
                run.signal(signal.SIGKILL)
                os.waitpid(run.pid, 0)
                break
            time.sleep(0.1)


def main() -> None:
    path, idle = sys.argv[1], float(sys.argv[2])
    preload()
    serve(path, idle)


if __name__ == "__main__":
    main()
