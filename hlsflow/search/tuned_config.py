"""What tune-precision writes and compares with: the tuned config (the user's with the changed
types, into an OutputDir of its own), the changes in words, and hls4ml's own 'auto' types as a baseline."""

import contextlib
import copy
import os
from pathlib import Path

from ..config import config_is_for
from ..design import in_memory
from ..emulator import propose

def _auto_changes(findings) -> dict:
    """hls4ml's own type inference ('auto') for every result and accumulator it can infer (not the
    input, whose type hls4ml cannot infer)."""
    changes = {}
    for f in findings:
        if f.kind in ("result", "accum") and f.layer_class != "Input":
            changes.setdefault(f.layer, {})[f.kind] = "auto"
    return changes


AUTO_CONVERT_SECONDS = 60  # an in-memory conversion takes seconds; hls4ml 1.3 never ends on some graphs


class _Expired(BaseException):
    """Raised by _time_limit; a BaseException, so that no `except Exception` on the way swallows it."""


@contextlib.contextmanager
def _time_limit(seconds: int):
    """_Expired after `seconds` (SIGALRM: main thread only; elsewhere no limit)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise _Expired

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _auto_bits(cfg, keras_model, findings, changes) -> int:
    """Bits hls4ml's inferred types add over the user's, read from its converted graph."""
    trial = propose.with_changes(cfg, changes, cfg.output_dir)
    widths = {}
    with in_memory(keras_model, trial) as hls_model:
        for layer in hls_model.get_layers():
            for key, named in layer.types.items():
                widths[(layer.name, key[:-2])] = getattr(named.precision, "width", None)
    return sum(widths[(f.layer, f.kind)] - f.fixed.width for f in findings
               if f.kind in changes.get(f.layer, {}) and widths.get((f.layer, f.kind)) is not None)


def _config_yaml(cfg, changes: dict, target: Path) -> str:
    """The user's config with the changed precisions; without a config file of this model's (none,
    or one written for another model, used with --model), the effective one."""
    import yaml

    if cfg.source is not None and config_is_for(cfg):
        raw = yaml.safe_load(Path(cfg.source).read_text())
        origin = Path(cfg.source).name
    else:
        hls = copy.deepcopy(cfg.hls_config)
        if cfg.source is not None:  # another model's config: its LayerName entries name that model's layers
            hls.pop("LayerName", None)
        raw = {"KerasModel": str(cfg.keras_model), "OutputDir": str(cfg.output_dir),
               "ProjectName": cfg.project_name, "Part": cfg.part, "Backend": cfg.backend, "IOType": cfg.io_type,
               "ClockPeriod": cfg.clock_period, "HLSConfig": hls}
        origin = (f"hlsflow's defaults for {cfg.keras_model.name}" if cfg.source is None else
                  f"{Path(cfg.source).name} (written for another model: its settings, not its layers) for "
                  f"{cfg.keras_model.name}")
    layers = raw.setdefault("HLSConfig", {}).setdefault("LayerName", {})
    for layer, kinds in changes.items():
        entry = layers.setdefault(layer, {})
        if propose.TABLE_SIZE in kinds:
            entry[propose.TABLE_SIZE] = int(kinds[propose.TABLE_SIZE])
        for kind in propose.LAYER_TYPE_KEYS:  # hls4ml's own keys for table types (see propose)
            if kind in kinds:
                entry[f"{kind}_t"] = kinds[kind]
        types = {kind: value for kind, value in kinds.items()
                 if kind != propose.TABLE_SIZE and kind not in propose.LAYER_TYPE_KEYS}
        if not types:
            continue
        prec = entry.setdefault("Precision", {})
        if not isinstance(prec, dict):
            prec = entry["Precision"] = {"result": prec}
        prec.update(types)
    beside = cfg.source is not None and config_is_for(cfg) and \
        target.resolve().parent == Path(cfg.source).resolve().parent
    if not beside:  # the file's relative paths would break elsewhere
        raw["KerasModel"] = str(cfg.keras_model)
        if cfg.flow["emulation"].get("samples"):
            raw.setdefault("Flow", {}).setdefault("emulation", {})["samples"] = cfg.flow["emulation"]["samples"]
    # Its own output folder: adopting the tuned config must not replace the project it was compared with.
    tuned = cfg.output_dir.with_name(cfg.output_dir.name + "-tuned")
    raw["OutputDir"] = os.path.relpath(tuned, target.resolve().parent) if beside else str(tuned)
    lines = [f"# Tuned by `hlsflow tune-precision` from {origin}; changed precisions:"]
    lines += [f"#   {layer} {kind}: {value}" for layer, kinds in changes.items() for kind, value in kinds.items()]
    return "\n".join(lines) + "\n" + yaml.safe_dump(raw, sort_keys=False, default_flow_style=None, width=120)


def _changes_text(changes: dict, most: int = 8) -> str:
    """"prob TableSize 8192, fc result ap_fixed<20,8>, ...": what a config changes."""
    items = [f"{layer} {kind} {value}" for layer, kinds in changes.items() for kind, value in kinds.items()]
    more = f", and {len(items) - most} more" if len(items) > most else ""
    return ", ".join(items[:most]) + more
