"""Run flow tasks inside the hlsflow image when they are started on the host.

One container per call, with the repository mounted at its own path: paths in logs and reports
are the host's, and files written there belong to the host user (the entrypoint drops to
HOST_UID/HOST_GID).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from .console import warn
from .errors import FlowError
from .image import docker_client, get_image

LICENSE_VARS = ("XILINXD_LICENSE_FILE", "LM_LICENSE_FILE")
# Flow settings and the Vivado stand-in's test hooks.
FORWARDED_PREFIXES = ("HLSFLOW_", "STANDIN_")


def in_image() -> bool:
    """True inside the image, or when the user chose to run natively in a venv."""
    return "1" in (os.environ.get("HLSFLOW_IN_IMAGE"), os.environ.get("HLSFLOW_NATIVE"))


def repo_root() -> Path:
    """The directory holding tasks.py, found upwards from the cwd as invoke does; else the
    checkout this package lives in."""
    cwd = Path.cwd().resolve()
    for folder in (cwd, *cwd.parents):
        if (folder / "tasks.py").is_file():
            return folder
    return Path(__file__).resolve().parent.parent


def run_in_image(argv: list[str], image: str | None = None) -> int:
    """`invoke <argv...>` in one container of the image; output streams live, Ctrl-C stops
    the container. Returns the container's exit code."""
    import docker

    client = docker_client()
    image = get_image(client, _image_name(image)).id
    spec = _container_spec()
    tty = sys.stdin.isatty()
    try:
        container = client.containers.create(
            image, ["invoke", *argv], init=True, tty=tty, network_mode=spec["network"],
            environment=spec["env"], volumes=spec["volumes"], working_dir=spec["workdir"])
    except docker.errors.APIError as exc:
        raise FlowError(f"Docker could not create the flow container ({exc.explanation or exc})"
                        ": fix what it names and run again.") from exc
    try:
        # Attach before starting so that not a byte of output is missed.
        stream = client.api.attach(container.id, stream=True, demux=not tty)
        container.start()
        try:
            for chunk in stream:
                out, err = (chunk, None) if tty else chunk
                _write(sys.stdout, out)
                _write(sys.stderr, err)
        except KeyboardInterrupt:
            warn("Interrupted: stopping the container.")
            container.stop(timeout=10)
        return container.wait()["StatusCode"]
    finally:
        container.remove(force=True)


def open_shell(image: str | None = None) -> int:
    """An interactive bash in the image, set up like run_in_image. Run through the docker CLI:
    a real terminal (raw mode, resizing, Ctrl-C inside the shell) is what it does well."""
    client = docker_client()
    image = get_image(client, _image_name(image)).id
    if not shutil.which("docker"):
        raise FlowError("`invoke shell` needs the docker command-line client: install it "
                        "(e.g. `sudo apt-get install docker.io`).")
    spec = _container_spec()
    cmd = ["docker", "run", "--rm", "-i", "--init", "--network", spec["network"],
           "-w", spec["workdir"]]
    if sys.stdin.isatty():
        cmd.append("-t")
    for key, value in spec["env"].items():
        cmd += ["-e", f"{key}={value}"]
    for source, mount in spec["volumes"].items():
        cmd += ["-v", f"{source}:{mount['bind']}:{mount['mode']}"]
    return subprocess.call([*cmd, image, "bash"])


def _write(sink, data: bytes | None) -> None:
    if data:
        if hasattr(sink, "buffer"):
            sink.buffer.write(data)
        else:  # a text-only replacement of sys.stdout
            sink.write(data.decode(errors="replace"))
        sink.flush()


def _image_name(image: str | None) -> str:
    return image or os.environ.get("HLSFLOW_IMAGE") or "hlsflow:latest"


def _container_spec() -> dict:
    """Mounts, environment, working directory and network for a flow container."""
    root = repo_root()
    cwd = Path.cwd().resolve()
    volumes = {str(root): {"bind": str(root), "mode": "rw"}}
    env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_PREFIXES)}
    env.update(HOST_UID=str(os.getuid()), HOST_GID=str(os.getgid()))

    def mount_ro(path: str) -> None:
        if not any(path == m or path.startswith(m.rstrip("/") + "/") for m in volumes):
            volumes[path] = {"bind": path, "mode": "ro"}

    # Passed even when absent, so that the entrypoint's one line names the place looked at.
    env["XILINX_ROOT"] = os.path.abspath(os.environ.get("XILINX_ROOT", "/opt/Xilinx"))
    if os.path.isdir(env["XILINX_ROOT"]):
        # Read-only: nothing in the flow may change the installation.
        volumes[env["XILINX_ROOT"]] = {"bind": env["XILINX_ROOT"], "mode": "ro"}
    if os.environ.get("VIVADO_DIR"):
        env["VIVADO_DIR"] = os.path.abspath(os.environ["VIVADO_DIR"])
        if os.path.isdir(env["VIVADO_DIR"]):
            mount_ro(env["VIVADO_DIR"])

    network = "none"  # the flow needs no network: keep it reproducible
    for var in LICENSE_VARS:
        if not os.environ.get(var):
            continue
        env[var] = os.environ[var]
        for item in env[var].split(":"):
            if os.path.exists(item):
                mount_ro(os.path.abspath(item))
        # FlexLM checks a node-locked licence against the host's network interfaces and
        # reaches licence servers over the network: neither works without the host's network.
        network = "host"
    return {"volumes": volumes, "env": env, "network": network,
            "workdir": str(cwd if cwd == root or root in cwd.parents else root)}
