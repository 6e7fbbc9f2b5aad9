"""Where the flow config is and what paths it names: the file used when --config is not given,
reading it unvalidated, and every path it and the flags name resolved (flags against the current
directory, file entries against the file). Light: the host runs it before any container starts;
config.py validates the rest."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from .errors import FlowError, check_text


def resolve_against(base: Path, value) -> Path:
    """An absolute path, `..` folded but symlinks kept: the host mounts the path as written, and
    the container must find it under the same name."""
    return Path(os.path.abspath(Path(base) / Path(str(value)).expanduser()))


CONFIG_NAME = "hls4ml_config.yml"


def checkout_config(start: Path):
    """project/hls4ml_config.yml of the hlsflow checkout holding `start`, if it is in one."""
    for folder in (start, *start.parents):
        candidate = folder / "project" / CONFIG_NAME
        if (folder / "tasks.py").is_file() and (folder / "hlsflow" / "__init__.py").is_file() \
                and candidate.is_file():
            return candidate
    return None


def find_config(cwd=None):
    """The config used when --config is not given: $HLSFLOW_CONFIG, else hls4ml_config.yml in
    the working directory, else the reference config when working in an hlsflow checkout."""
    cwd = Path(cwd or Path.cwd())
    if os.environ.get("HLSFLOW_CONFIG"):
        return resolve_against(cwd, os.environ["HLSFLOW_CONFIG"])
    if (cwd / CONFIG_NAME).is_file():
        return cwd / CONFIG_NAME
    return checkout_config(cwd.resolve())


def config_is_for(cfg) -> bool:
    """Whether the config file names the model in use (not another one given with --model): only
    then are its LayerName entries about this model's layers."""
    named = (yaml.safe_load(Path(cfg.source).read_text()) or {}).get("KerasModel")
    return bool(named) and (Path(cfg.source).parent / str(named)).resolve() == Path(cfg.keras_model).resolve()


def no_config(cwd) -> FlowError:
    return FlowError(f"No config given and no {CONFIG_NAME} in {cwd}: run `hlsflow init --model MODEL` to "
                     "write one, or pass --config FILE or --model MODEL.")


def only_out(out, config=None, model=None, cwd=None) -> bool:
    """Whether --out is all there is: no --config, no --model, no config to find. A
    hls4ml_config.yml in that output folder itself is hls4ml's record of the project, not a flow config."""
    if not out or config or model:
        return False
    cwd = Path(cwd or Path.cwd())
    found = find_config(cwd)
    return found is None or Path(found).resolve().parent == resolve_against(cwd, out).resolve()


def read_raw(path: Path) -> dict:
    """The config file's mapping, unvalidated, or FlowError for a missing or unreadable file."""
    if not path.is_file():
        raise FlowError(f"Config file {path} not found: pass --config with a YAML file written by "
                        "`hlsflow init` (or like project/hls4ml_config.yml).")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise FlowError(f"Config file {path} is not valid YAML ({str(exc).splitlines()[0]}): fix the syntax.") from exc
    if not isinstance(raw, dict):
        raise FlowError(f"Config file {path} does not hold a mapping: start from `hlsflow init`.")
    return raw


@dataclass
class ConfigPaths:
    """Every file a config and the flags name, resolved: what the host checks and mounts."""
    config: Path | None
    model: Path | None
    output_dir: Path
    samples: Path | None


def resolve_paths(config=None, model=None, out=None, samples=None, cwd=None) -> ConfigPaths:
    """Resolve paths the way load_config does (flags against cwd, file entries against the file),
    without validating anything else. Light: the host runs it before any container starts."""
    cwd = Path(cwd or Path.cwd())
    path = resolve_against(cwd, config) if config else find_config(cwd)
    raw = read_raw(path) if path else {}
    base = path.parent if path else cwd
    keras_model = resolve_against(cwd, model) if model else (
        resolve_against(base, raw["KerasModel"]) if isinstance(raw.get("KerasModel"), str) else None)
    if out:
        output_dir = resolve_against(cwd, out)
    elif isinstance(raw.get("OutputDir"), str):
        output_dir = resolve_against(base, raw["OutputDir"])
    else:
        output_dir = resolve_against(base, f"build/{keras_model.stem}" if keras_model else "my-hls-test")
    # Unvalidated here: a malformed Flow section is the container's schema check to report.
    emulation = raw["Flow"].get("emulation") if isinstance(raw.get("Flow"), dict) else None
    sample_entry = emulation.get("samples") if isinstance(emulation, dict) else None
    sample_path = resolve_against(cwd, samples) if samples else (
        resolve_against(base, sample_entry) if isinstance(sample_entry, str) else None)
    # The flags were checked by name (cli/program.py); what the config or the folder adds, here.
    for what, resolved in (("The config file", path), ("The model", keras_model), ("The output directory", output_dir),
                           ("The sample file", sample_path)):
        check_text(resolved, what)
    return ConfigPaths(path, keras_model, output_dir, sample_path)
