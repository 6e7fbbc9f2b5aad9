"""The state of an output directory: what was made from what, and what is stale.

Stages ask this module, never each other's files. `hlsflow.json` marks a complete HLS project
and records the fingerprint of the model and config it was written from; `synth.json` records
the fingerprint and flags a synthesis ran with. A stage's output is current only when the
fingerprint it recorded is the one the inputs give now.
"""

import hashlib
import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from . import __version__
from .errors import FlowError
from .files import read_json, sha256, write_json
from .loading import model_files

PROJECT_STAMP = "hlsflow.json"
SYNTH_STAMP = "synth.json"

MISSING, STALE, CURRENT = "missing", "stale", "current"


def fingerprint(cfg) -> str:
    """What the HLS project is a function of: the model's bytes, the hls4ml settings, the versions.
    Every stage asks whether its inputs are current: the model is hashed once per process."""
    h = hashlib.sha256()
    for f in model_files(cfg.keras_model):
        h.update(sha256(f, cache=True).encode())
    h.update(json.dumps(cfg.hls4ml_kwargs(), sort_keys=True, default=str).encode())
    try:
        hls4ml_version = version("hls4ml")
    except PackageNotFoundError:
        hls4ml_version = "absent"
    h.update(f"hls4ml={hls4ml_version};hlsflow={__version__}".encode())
    return h.hexdigest()


def read_project_stamp(out_dir):
    return read_json(Path(out_dir) / PROJECT_STAMP)


def write_project_stamp(out_dir, stamp: dict) -> None:
    write_json(Path(out_dir) / PROJECT_STAMP, stamp)


def is_flow_output(out_dir) -> bool:
    """A directory this flow (or hls4ml) wrote, which it may therefore replace."""
    out_dir = Path(out_dir)
    return read_project_stamp(out_dir) is not None or (out_dir / "hls4ml_config.yml").exists()


def project_state(cfg) -> tuple:
    """(MISSING | STALE | CURRENT, the project stamp or None)."""
    stamp = read_project_stamp(cfg.output_dir)
    if stamp is None:
        return MISSING, None
    return (CURRENT if stamp.get("fingerprint") == fingerprint(cfg) else STALE), stamp


def require_project(cfg) -> dict:
    """The stamp of a complete, current project, or FlowError saying how to get one."""
    state, stamp = project_state(cfg)
    if state == MISSING:
        raise FlowError(f"No complete HLS project at {cfg.output_dir}: run `hlsflow convert` first.")
    if state == STALE:
        raise FlowError(f"The HLS project at {cfg.output_dir} was written from another model or config: "
                        "run `hlsflow convert` first.")
    return stamp


def csynth_xml_path(out_dir, project_name) -> Path:
    """Where Vivado HLS writes its C synthesis report in an hls4ml project."""
    return Path(out_dir) / f"{project_name}_prj" / "solution1" / "syn" / "report" / f"{project_name}_csynth.xml"


def synth_state(cfg, args=None) -> tuple:
    """(MISSING | STALE | CURRENT, the synthesis record or None). With args, a synthesis run with
    other flags is stale too."""
    record = read_json(Path(cfg.output_dir) / SYNTH_STAMP)
    if record is None or not csynth_xml_path(cfg.output_dir, cfg.project_name).exists():
        return MISSING, None
    state, stamp = project_state(cfg)
    if state != CURRENT or record.get("fingerprint") != stamp.get("fingerprint"):
        return STALE, record
    if args is not None and record.get("args") != args:
        return STALE, record
    return CURRENT, record


def record_synthesis(out_dir, record: dict) -> None:
    write_json(Path(out_dir) / SYNTH_STAMP, record)
