"""What a run is made from: the hashes of its inputs (the model's files, the effective config,
a project tree), the environment it runs in, and the command line that started it. Hashed into
each record's key, so that a record is current only while all of these are as they were."""

import functools
import hashlib
import json
import os
import platform
import shlex
import stat
import sys
from pathlib import Path

from . import __version__
from .files import sha256
from .loading import model_files
from .versions import gpp, package_version

# Written by convert but not part of the HLS project: hls4ml's chatter may name temporary paths.
NOT_IN_TREE = ("hlsflow_convert.log",)


def digest(value) -> str:
    """sha256 of a JSON-able value in canonical form (sorted keys, no spaces)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def model_hashes(cfg) -> dict:
    """{file name: sha256} of the model's files. Names, not paths: the same model in another
    folder is the same input."""
    return {f.name: sha256(f, cache=True) for f in model_files(cfg.keras_model)}


def design_inputs(cfg) -> dict:
    """What the HLS project is a function of: the model's bytes, the hls4ml settings (but not where
    they are written), and the versions of the code that writes it."""
    settings = cfg.hls4ml_kwargs()
    settings.pop("output_dir")
    # The files' hashes alone, in order (model, then the weights of a JSON model): the same model
    # under another name is the same design.
    return {"model": list(model_hashes(cfg).values()), "hls4ml_settings": settings, "hls4ml": package_version("hls4ml"),
            "hlsflow": __version__}


def lib_stamp(cfg) -> str:
    """hls4ml's 8-character stamp, derived from the design instead of drawn at random: the same
    design gets the same project, and each design its own emulation library name."""
    return digest(design_inputs(cfg))[:8]


def effective_config(cfg) -> dict:
    """The configuration as the flow applied it, after flags."""
    return {"ProjectName": cfg.project_name, "Part": cfg.part, "Backend": cfg.backend, "IOType": cfg.io_type,
            "ClockPeriod": cfg.clock_period, "HLSConfig": cfg.hls_config, "Flow": cfg.flow}


def design_sources(cfg) -> dict:
    """Where the model and config came from, with their hashes, for the manifest's inputs."""
    effective = effective_config(cfg)
    return {"model": {"path": str(cfg.keras_model), "sha256": model_hashes(cfg)},
            "config": {"path": str(cfg.source) if cfg.source else None,
                       "sha256": sha256(cfg.source) if cfg.source else None,
                       "effective": effective, "effective_sha256": digest(effective)}}


def _is_executable(path: Path) -> bool:
    return bool(path.stat().st_mode & stat.S_IXUSR)


def hash_files(root: Path, rels) -> dict:
    """{relative path: sha256} for files under root; executables are marked with a leading "x:"
    so that a lost executable bit counts as a change too."""
    root = Path(root)
    return {rel: ("x:" if _is_executable(root / rel) else "") + sha256(root / rel, cache=True)
            for rel in sorted(rels)}


def tree_hash(files: dict) -> str:
    """One hash for a project tree, from each file's relative path, executable bit and content."""
    return digest({rel: value for rel, value in files.items() if rel not in NOT_IN_TREE})


def run_inputs(cfg, samples=None) -> list:
    """The user's files a run reads (config, model, samples): never inside its output directory,
    which may be replaced whole."""
    return [cfg.source, *model_files(cfg.keras_model), cfg.samples_path(), samples]


# ------------------------------------------------------------------ the environment

@functools.cache
def environment() -> dict:
    """The image and the versions a stage runs with (computed once per process). The image's own
    id is known only to whoever started the container: the launcher passes it in."""
    labels = os.environ.get("HLSFLOW_IMAGE_LABELS")
    try:
        labels = json.loads(labels) if labels else None
    except ValueError:
        labels = None
    return {
        "image": {
            "id": os.environ.get("HLSFLOW_IMAGE_ID"),
            "revision": os.environ.get("HLSFLOW_REVISION"),
            "labels": labels,
        },
        "versions": {
            "Python": platform.python_version(),
            "TensorFlow": package_version("tensorflow-cpu", "tensorflow"),
            "numpy": package_version("numpy"),
            "hls4ml": package_version("hls4ml"),
            "g++": gpp(),
        },
    }


_command = None


def remember_command(text: str) -> None:
    global _command
    _command = text


def command_line() -> str:
    """The command as the user typed it (cli/program.py remembers it; the launcher passes the host's into
    the container)."""
    return _command or shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])
