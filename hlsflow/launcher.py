"""The host side of a flow invocation: check every path on the host, mount each into one container
of the toolchain image at the same path, and run `hlsflow ...` there (the entrypoint side is
docker/entrypoint.sh).

Inputs (config, model and weights, samples, --vivado, licence files, the Xilinx tree) are mounted
read-only; the output directory's parent read-write, because the project is staged beside the
output and moved into place. Paths stay the host's, so logs and reports name what the user knows,
and files written belong to the host user (the entrypoint drops to HOST_UID/HOST_GID).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from . import outdir
from .console import warn
from .engine import docker_client, engine_name, get_image, image_name
from .errors import FlowError

LICENSE_VARS = ("XILINXD_LICENSE_FILE", "LM_LICENSE_FILE")
# Flow settings and the Vivado stand-in's test hooks.
FORWARDED_PREFIXES = ("HLSFLOW_", "STANDIN_")
FORWARDED_VARS = ("TF_CPP_MIN_LOG_LEVEL",)


def in_image() -> bool:
    """True inside the image, or when the user chose to run natively in a virtualenv."""
    return "1" in (os.environ.get("HLSFLOW_IN_IMAGE"), os.environ.get("HLSFLOW_NATIVE"))


class Mounts:
    """Host paths to mount at the same path: read-write wins over read-only for one path."""

    def __init__(self):
        self.modes = {}
        self.network = None  # "host" when a task talks to a server outside (a Dask scheduler)

    def read_only(self, path) -> None:
        path = os.path.abspath(path)
        self.modes.setdefault(path, "ro")

    def read_write(self, path) -> None:
        self.modes[os.path.abspath(path)] = "rw"

    def writable_parent(self, path, what: str) -> None:
        """Mount the folder that will hold `path` read-write; it is created (as the user) by
        create_folders, once every input has been checked."""
        parent = Path(os.path.abspath(path)).parent
        if parent == Path(parent.anchor):
            raise FlowError(f"The {what} {path} would sit directly in {parent}: choose a path inside a folder, "
                            "e.g. ./build/out.")
        existing = next(p for p in (parent, *parent.parents) if p.exists())
        if not existing.is_dir() or not os.access(existing, os.W_OK):
            raise FlowError(f"Cannot write the {what} {path}: {existing} is not a writable folder; choose "
                            "another location.")
        self.read_write(parent)

    def create_folders(self) -> None:
        for path, mode in self.modes.items():
            if mode == "rw":
                try:
                    Path(path).mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise FlowError(f"Cannot create {path} ({exc.strerror}): choose a writable location.") from exc

    def volumes(self) -> dict:
        return {path: {"bind": path, "mode": mode} for path, mode in sorted(self.modes.items())}


def licence_files() -> list:
    """The files and folders the licence variables name; `port@server` entries are servers. A
    missing one is FlowError naming it: FlexLM would only say much later that no licence was found."""
    found = []
    for var in LICENSE_VARS:
        for item in filter(None, os.environ.get(var, "").split(":")):
            if "@" in item:
                continue
            if not os.path.exists(item):
                raise FlowError(f"{var} names {item}, which does not exist on this machine: give the licence file "
                                "or folder, or port@server for a licence server.")
            found.append(os.path.abspath(item))
    return found


def _args(ctx) -> dict:
    return {arg.name: arg for arg in ctx.args.values()}


def plan(collection, contexts, cwd=None) -> tuple:
    """(argv for `hlsflow` in the container, Mounts) for these task contexts; FlowError for any
    path that is missing on the host. Paths in argv are made absolute: the container's working
    directory is the same path, but nothing of it is mounted unless something in it is used."""
    from .cli import spec_of
    from .config import CONFIG_NAME, no_config, resolve_paths
    from .loading import model_files, require_samples_file
    from .synthesize import no_vivado_hls_at

    cwd = Path(cwd or Path.cwd())
    mounts = Mounts()
    argv = []
    licence_files()
    for ctx in contexts:
        spec = spec_of(collection[ctx.name])
        args = _args(ctx)
        if spec.where != "image":
            raise FlowError(f"`{ctx.name}` runs on the host, not in the image: run it in an invocation of its own.")
        values = {name: arg.value for name, arg in args.items()}
        absolute = {}
        if spec.uses_config:
            samples = values.get("samples") if "samples" in spec.inputs else None
            paths = resolve_paths(values.get("config"), values.get("model"), values.get("out"), samples, cwd)
            if paths.config is None and paths.model is None:
                raise no_config(cwd)
            if paths.config is not None:
                mounts.read_only(paths.config)
                # Passed even when the host found it: the container has no folder to search.
                absolute["config"] = str(paths.config)
            if paths.model is not None:
                # Names the host path when it is missing: "Model file ... does not exist: ...".
                for f in model_files(paths.model):
                    mounts.read_only(f)
                absolute["model"] = str(paths.model)
            if values.get("out"):
                absolute["out"] = str(paths.output_dir)
            if spec.writes_output:
                mounts.writable_parent(paths.output_dir, "output directory")
            if "samples" in spec.inputs and paths.samples is not None:
                require_samples_file(paths.samples)
                mounts.read_only(paths.samples)
                if values.get("samples"):
                    absolute["samples"] = str(paths.samples)
            if spec.writes_beside_config and paths.config is not None and not values.get("write"):
                mounts.writable_parent(paths.config.with_name(paths.config.stem + ".tuned.yml"), "config written beside it")
        for name in spec.inputs:
            if name in absolute or not values.get(name) or name == "samples" and spec.uses_config:
                continue
            path = Path(os.path.abspath(cwd / str(values[name])))
            if name == "model":
                for f in model_files(path):
                    mounts.read_only(f)
            elif name == "vivado":
                if not path.exists():
                    raise no_vivado_hls_at(path)
                mounts.read_only(path)
            elif name == "samples":
                require_samples_file(path)
                mounts.read_only(path)
            else:
                if not path.exists():
                    raise FlowError(f"The {name} file {path} does not exist: give the path of an existing file.")
                mounts.read_only(path)
            absolute[name] = str(path)
        for name in spec.outputs:
            target = values.get(name)
            if name == "config" and not target and values.get("model"):  # init: beside the model
                target = Path(absolute.get("model", values["model"])).with_name(CONFIG_NAME)
            if target and target is not True:  # True: an optional-value flag given bare (stdout)
                path = Path(os.path.abspath(cwd / str(target)))
                mounts.writable_parent(path, name)
                absolute[name] = str(path)
        if any(values.get(name) for name in spec.network_flags):
            mounts.network = "host"
        argv.append(ctx.name)
        for name, arg in args.items():
            value = absolute.get(name, arg.value if arg.got_value else None)
            if value is None or value is False:
                continue
            flag = "--" + arg.names[0]
            argv += [flag] if value is True else [flag, str(value)]
    mounts.create_folders()
    return argv, mounts


def container_settings(mounts: Mounts) -> dict:
    """Environment, network and the Vivado/licence mounts shared by every flow container."""
    env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_PREFIXES) or k in FORWARDED_VARS}
    env.update(HOST_UID=str(os.getuid()), HOST_GID=str(os.getgid()))
    # Passed even when absent, so that the entrypoint's one line names the place looked at.
    env["XILINX_ROOT"] = os.path.abspath(os.environ.get("XILINX_ROOT", "/opt/Xilinx"))
    if os.path.isdir(env["XILINX_ROOT"]):
        mounts.read_only(env["XILINX_ROOT"])  # read-only: nothing in the flow may change the install
    if os.environ.get("VIVADO_DIR"):
        env["VIVADO_DIR"] = os.path.abspath(os.environ["VIVADO_DIR"])
        if os.path.isdir(env["VIVADO_DIR"]):
            mounts.read_only(env["VIVADO_DIR"])
    for item in licence_files():
        mounts.read_only(item)
    network = "none"  # the flow needs no network: keep it reproducible
    for var in LICENSE_VARS:
        if not os.environ.get(var):
            continue
        env[var] = os.environ[var]
        # FlexLM checks a node-locked licence against the host's network interfaces and reaches
        # licence servers over the network: neither works without the host's network.
        network = "host"
    return {"env": env, "network": network}


def launch(collection, contexts) -> int:
    """Run these image tasks as one `hlsflow` invocation in one container; its exit code."""
    argv, mounts = plan(collection, contexts)
    return run_in_image(["hlsflow", *argv], mounts, workdir=str(Path.cwd()))


def run_in_image(cmd, mounts: Mounts, workdir: str, image=None) -> int:
    """`cmd` in one container of the image; output streams live, Ctrl-C stops the container.
    Returns the container's exit code."""
    import docker

    client = docker_client()
    found = get_image(client, image_name(image))
    image_id = found.id
    settings = container_settings(mounts)
    settings["network"] = mounts.network or settings["network"]
    # The container cannot see which image it is: the manifests it writes record what we pass.
    settings["env"].update(HLSFLOW_IMAGE_ID=image_id, HLSFLOW_IMAGE_LABELS=json.dumps(found.labels or {}),
                           HLSFLOW_COMMAND=outdir.command_line())
    tty = sys.stdin.isatty() and sys.stdout.isatty()
    try:
        # No --init: the image's own tini is PID 1 under Docker and Podman alike.
        container = client.containers.create(
            image_id, cmd, tty=tty, network_mode=settings["network"], environment=settings["env"],
            volumes=mounts.volumes(), working_dir=workdir)
    except docker.errors.APIError as exc:
        raise FlowError(f"{engine_name(client)} could not create the flow container "
                        f"({exc.explanation or exc}): fix what it names and run again.") from exc
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
    image_id = get_image(client, image_name(image)).id
    cli = "podman" if engine_name(client) == "Podman" and shutil.which("podman") else "docker"
    if not shutil.which(cli):
        raise FlowError(f"`hlsflow shell` needs the {cli} command-line client: install it.")
    mounts = Mounts()
    mounts.read_write(Path.cwd())
    settings = container_settings(mounts)
    cmd = [cli, "run", "--rm", "-i", "--network", settings["network"], "-w", str(Path.cwd())]
    if sys.stdin.isatty():
        cmd.append("-t")
    for key, value in settings["env"].items():
        cmd += ["-e", f"{key}={value}"]
    for source, mount in mounts.volumes().items():
        cmd += ["-v", f"{source}:{mount['bind']}:{mount['mode']}"]
    return subprocess.call([*cmd, image_id, "bash"])


def _write(sink, data) -> None:
    if data:
        if hasattr(sink, "buffer"):
            sink.buffer.write(data)
        else:  # a text-only replacement of sys.stdout
            sink.write(data.decode(errors="replace"))
        sink.flush()
