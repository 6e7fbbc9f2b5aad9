"""Flow containers whose hlsflow process ended without removing them (killed outright, a machine
that lost power): each carries labels naming its host process, so a later run can tell and remove it."""

import os
import socket
from pathlib import Path

from ..console import warn

# Every flow container carries these labels: which hlsflow process on which host it belongs to, so that
# a later run can tell one whose process was killed outright (remove_orphans).
RUN_LABEL = "org.hlsflow.run"
HOST_LABEL, PID_LABEL, START_LABEL, PIDNS_LABEL = (f"org.hlsflow.{key}" for key in
                                                   ("host", "host-pid", "host-start", "host-pidns"))


def _process_start(pid: int) -> str:
    """When process `pid` started (clock ticks since boot, /proc/PID/stat's 22nd field), which tells a
    process from a later one given the same pid; "" where that cannot be read."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def run_labels() -> dict:
    """The labels of a flow container started by this process (RUN_LABEL...)."""
    return {RUN_LABEL: "1", HOST_LABEL: socket.gethostname(), PID_LABEL: str(os.getpid()),
            START_LABEL: _process_start(os.getpid()), PIDNS_LABEL: _pid_namespace()}


def _process_gone(labels: dict) -> bool:
    """True when the hlsflow process these labels name has ended: no process has its pid, or a later
    one does. Only for a process of this host and pid namespace; any doubt counts as alive."""
    if labels.get(PIDNS_LABEL, "") != _pid_namespace() or not (labels.get(PID_LABEL) or "").isdecimal():
        return False
    pid = int(labels[PID_LABEL])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):  # another user's: alive
        pass
    start = _process_start(pid)
    return bool(start and labels.get(START_LABEL) and start != labels[START_LABEL])


def remove_orphans(client) -> None:
    """Remove the flow containers of this host whose hlsflow process has ended without removing them
    (it was killed outright, or the machine lost power), one line for each."""
    import docker

    try:
        found = client.api.containers(all=True, filters={"label": [f"{RUN_LABEL}=1",
                                                                    f"{HOST_LABEL}={socket.gethostname()}"]})
    except docker.errors.APIError:  # an engine that cannot filter so: nothing is removed
        return
    for info in found:
        labels = info.get("Labels") or {}
        if not _process_gone(labels):
            continue
        short = info["Id"][:12]
        try:
            client.api.remove_container(info["Id"], force=True)
        except docker.errors.NotFound:
            continue
        except docker.errors.APIError as exc:
            if exc.status_code == 409:  # "removal … already in progress": another run is removing it
                continue
            warn(f"Could not remove the flow container {short} of the ended hlsflow process {labels[PID_LABEL]} "
                 f"({exc.explanation or exc}): remove it with `docker rm -f {short}`.")
            continue
        warn(f"Removed the flow container {short} ({info.get('State', 'state unknown')}), left by hlsflow process "
             f"{labels[PID_LABEL]}, which ended without removing it.")
