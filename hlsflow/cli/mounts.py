"""What one container of a flow invocation mounts, from the tasks' declarations (cli/kinds.py):
every path checked on the host first, then mounted at the same path. Inputs (config, model and
weights, samples, --vivado, licence files, the Xilinx tree) are mounted read-only; the output
directory's parent read-write, because the project is staged beside the output and moved into
place.
"""

import os
from pathlib import Path

from ..errors import FlowError
from ..state import folder
from ..toolchain.xilinx import LICENCE_VARS


class Mounts:
    """Host paths to mount at the same path: read-write wins over read-only for one path."""

    def __init__(self):
        self.modes = {}
        self.outputs = []  # output directories, for the sentence a cancelled run ends with
        self.network = None  # "host" when a task talks to a server outside (a Dask scheduler)
        self.env = {}  # what the task needs of the host's environment (SLURM_CONF)
        self.created = []  # folders create_folders made, outermost first (remove_created)

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
        if what == "output directory":
            self.outputs.append(os.path.abspath(path))

    def create_folders(self) -> None:
        for path, mode in self.modes.items():
            if mode == "rw":
                missing = [p for p in (Path(path), *Path(path).parents) if not p.exists()]
                try:
                    Path(path).mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise FlowError(f"Cannot create {path} ({exc.strerror}): choose a writable location.") from exc
                finally:
                    self.created += [str(p) for p in reversed(missing) if p.is_dir()]

    def remove_created(self) -> None:
        """Remove the folders create_folders made that are still empty, innermost first: a run that
        was refused, or wrote nothing there, leaves no folder behind. A folder the run wrote into
        stays, and so do its parents."""
        for path in reversed(self.created):
            try:
                os.rmdir(path)
            except OSError:  # not empty, or gone
                pass
        self.created = []

    def volumes(self) -> dict:
        return {path: {"bind": path, "mode": mode} for path, mode in sorted(self.modes.items())}

    def engine_mounts(self, podman: bool) -> tuple:
        """(mounts, volumes) for the Docker SDK's create: bind mounts through the engine's mount API,
        where a path is a field of its own, ':' and ',' in it included (a volume string,
        "src:dst:mode", breaks on ':'). Podman 4 writes each mount back into a comma-separated option
        string, which breaks on ',' and '"': there such a path goes as a volume string, and one with
        ':' as well is FlowError."""
        from docker.types import Mount

        mounts, volumes = [], {}
        for path, mode in sorted(self.modes.items()):
            if not (podman and any(char in path for char in ',"')):
                mounts.append(Mount(path, path, type="bind", read_only=mode == "ro"))
            elif ":" in path:
                raise FlowError(f"Podman cannot mount {path}: its name holds ':' and ',' (or '\"') together, which "
                                "Podman's API cannot pass on: rename it, or run with Docker.")
            else:
                volumes[path] = {"bind": path, "mode": mode}
        return mounts, volumes


def licence_files() -> list:
    """The files and folders the licence variables name; `port@server` entries are servers. A
    missing one is FlowError naming it: FlexLM would only say much later that no licence was found."""
    found = []
    for var in LICENCE_VARS:
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


def mount_plan(collection, contexts, cwd=None) -> tuple:
    """(argv for `hlsflow` in the container, Mounts) for these task contexts; FlowError for any
    path that is missing on the host. Paths in argv are made absolute: the container's working
    directory is the same path, but nothing of it is mounted unless something in it is used. What
    each path flag names is declared (cli/kinds.py): mounted by its kind, never by its name."""
    from ..config import parse_clock, parse_reuse_factor
    from ..config_files import CONFIG_NAME
    from ..errors import check_flag
    from .kinds import CONFIG_PATHS, PATH_FLAGS, spec_of

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
        # Numbers are checked here as in the container (the same checks): a mistake costs no container.
        for name, kind in spec.checks:
            check_flag(values.get(name), name, kind)
        if spec.uses_config and values.get("reuse_factor") is not None:
            parse_reuse_factor(values["reuse_factor"], "--reuse-factor")
        if spec.uses_config and values.get("clock") is not None:
            parse_clock(values["clock"])
        absolute = _mount_config(spec, values, mounts, cwd) if spec.uses_config else {}
        for name in spec.inputs:
            if name not in absolute and values.get(name) and not (spec.uses_config and name in CONFIG_PATHS):
                absolute[name] = _mount_input(PATH_FLAGS[name], name, values[name], mounts, cwd)
        for name in spec.outputs:
            target = values.get(name)
            beside = dict(spec.beside).get(name)
            if not target and beside and values.get(beside):  # init: the config beside the model
                target = Path(absolute.get(beside, values[beside])).with_name(CONFIG_NAME)
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


def _mount_config(spec, values: dict, mounts: Mounts, cwd: Path) -> dict:
    """Mount what a flow task's config resolves (config, model, output folder, samples); their
    absolute paths for argv."""
    from ..config_files import no_config, only_out, resolve_paths
    from ..loading import model_files
    from ..samples import require_samples_file
    from ..stages.report import foreign_folder, no_report_without_config
    from ..state.manifest import has_manifest

    absolute = {}
    if spec.out_alone and only_out(values.get("out"), values.get("config"), values.get("model"), cwd):
        # --out alone: a folder synthesised elsewhere, read in place; only it is mounted.
        out = Path(os.path.abspath(cwd / str(values["out"])))
        recorded = has_manifest(out)
        if not foreign_folder(out, recorded):
            no_report_without_config(out, recorded)
        mounts.read_write(out)
        return {"out": str(out)}
    samples = values.get("samples") if "samples" in spec.inputs else None
    paths = resolve_paths(values.get("config"), values.get("model"), values.get("out"), samples, cwd)
    if paths.config is None and paths.model is None:
        raise no_config(cwd)
    # A folder synthesised elsewhere is only read (and given the report's files): it needs
    # no model, and is neither replaced nor checked as an output folder of hlsflow's.
    foreign = spec.out_alone and foreign_folder(paths.output_dir, has_manifest(paths.output_dir))
    if paths.config is not None:
        mounts.read_only(paths.config)
        # Passed even when the host found it: the container has no folder to search.
        absolute["config"] = str(paths.config)
    if paths.model is not None and not foreign:
        # Names the host path when it is missing: "Model file ... does not exist: ...".
        for f in model_files(paths.model):
            mounts.read_only(f)
        absolute["model"] = str(paths.model)
    if values.get("out"):
        absolute["out"] = str(paths.output_dir)
    if foreign:
        mounts.read_write(paths.output_dir)
    elif spec.writes_output:
        mounts.writable_parent(paths.output_dir, "output directory")
    if "samples" in spec.inputs and paths.samples is not None:
        require_samples_file(paths.samples)
        mounts.read_only(paths.samples)
        if values.get("samples"):
            absolute["samples"] = str(paths.samples)
    # The container checks it again, with what only it knows (the manifest).
    if spec.writes_output and not foreign:
        inputs = [paths.config, paths.samples, *(model_files(paths.model) if paths.model else [])]
        folder.check_output_path(paths.output_dir, inputs, cwd)
    if spec.writes_beside_config and paths.config is not None and not values.get("write"):
        # Its file (tune's .tuned.yml, plan's .plan.yml) is named where it is written: its folder is the config's.
        mounts.writable_parent(paths.config, "file written beside the config")
    return absolute


def _mount_input(kind: str, name: str, value, mounts: Mounts, cwd: Path) -> str:
    """Check and mount a file a task reads, by what its flag names (kinds.PATH_FLAGS); its
    absolute path (or, for an install, a version) for argv."""
    from ..loading import model_files
    from ..samples import require_samples_file
    from ..stages.synthesize import no_vivado_hls_at
    from ..toolchain.xilinx import install_mounts, version_key
    from .kinds import INSTALL, JOBQUEUE, MODEL, SAMPLES

    if kind == INSTALL and version_key(value) and not (cwd / str(value)).exists():
        return str(value)  # a version under XILINX_ROOT (mounted whole), not a path
    path = Path(os.path.abspath(cwd / str(value)))
    if kind == MODEL:
        for f in model_files(path):
            mounts.read_only(f)
    elif kind == INSTALL:
        if not path.exists():
            raise no_vivado_hls_at(path)
        for folder in install_mounts(path):  # the tool folders of its tree: it reaches beside itself
            mounts.read_only(folder)
    elif kind == SAMPLES:
        require_samples_file(path)
        mounts.read_only(path)
    else:
        if not path.exists():
            raise FlowError(f"The {name} file {path} does not exist: give the path of an existing file.")
        mounts.read_only(path)
    if kind == JOBQUEUE:
        # The batch system's client config and authentication (Slurm: slurm.conf, munge's socket).
        from ..search.cluster import submit_host

        folders, env = submit_host(str(path))
        for folder in folders:
            mounts.read_only(folder)
        mounts.env.update(env)
    return str(path)
