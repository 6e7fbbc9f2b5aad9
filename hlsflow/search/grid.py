"""A sweep's grid: the YAML file of config keys to lists of values, its points, and the spec of each
point that a worker runs (search/sweep.py)."""

import itertools
import math
import re
from pathlib import Path

from ..errors import FlowError
from ..inputs import command_line
from ..stages.plan import PLANNED

# Grid keys, as in the config file, with the load_config flag each one sets.
# Precision sets the default and the per-layer types that were the default: init's per-layer types stay.
KEYS = {"ReuseFactor": "reuse_factor", "Precision": "default_precision", "IOType": "io_type", "Strategy": "strategy",
        "Part": "part", "ClockPeriod": "clock"}
# Also accepted: the command-line spellings.
ALIASES = {**{k.lower(): k for k in KEYS}, "reuse_factor": "ReuseFactor", "reuse-factor": "ReuseFactor",
           "io_type": "IOType", "io-type": "IOType", "clock": "ClockPeriod"}
PREFIX = {"ReuseFactor": "rf", "ClockPeriod": "clk"}  # in point names: rf4, clk5
PLAN = "plan"
# Points a grid may have unless --max-points says more: each is a whole flow (minutes with synthesis),
# and a grid's product grows faster than one notices (1000 x 1000 values are a million flows).
MAX_POINTS = 500


def read_grid(path, max_points: int = MAX_POINTS) -> list:
    """The points of a grid file: a list of {config key: value}, in the file's order. A grid of no
    key, or of more than max_points points (counted before any is made), is FlowError."""
    from ..config_files import read_raw

    path = Path(path)
    if not path.is_file():
        raise FlowError(f"The grid file {path} does not exist: give --grid a YAML file of config keys to lists of "
                        "values.")
    raw = read_raw(path)
    if set(raw) == {"grid"} and isinstance(raw["grid"], dict):
        raw = raw["grid"]
    axes = {}
    for key, values in raw.items():
        name = key if key in KEYS else ALIASES.get(str(key).lower())
        if name is None:
            raise FlowError(f"{key}: unknown key in the grid {path}; use {', '.join(KEYS)}.")
        if name in axes:
            raise FlowError(f"{key} in the grid {path} repeats {name}: give each key once, with a list of values.")
        values = values if isinstance(values, list) else [values]
        if not values:
            raise FlowError(f"{key} in the grid {path} has no values: give at least one.")
        if name != "ReuseFactor" and PLAN in values:
            raise FlowError(f"{key} in the grid {path} is 'plan', which only ReuseFactor can be.")
        axes[name] = values
    if not axes:  # itertools.product of nothing is one point, the config itself
        raise FlowError(f"The grid {path} names no config key: give each key to sweep with a list of values, e.g. "
                        "ReuseFactor: [4, 16].")
    count = math.prod(len(values) for values in axes.values())
    if count > max_points:
        raise FlowError(f"The grid {path} has {count:,} points, more than --max-points {max_points}: give fewer "
                        f"values, or pass --max-points {count} if you mean to run every one.")
    return [dict(zip(axes, combo)) for combo in itertools.product(*axes.values())]


def _slug(value) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", str(value)).strip("-") or "x"


def point_name(values: dict) -> str:
    return "_".join(PREFIX.get(k, "") + _slug(v) for k, v in values.items()) or "base"


def make_specs(grid_points: list, options: dict, sweep_dir: Path, max_samples=None, synth_all=False,
               vivado=None) -> list:
    """One spec per point: a plain dict a worker can run (run_point) anywhere the paths are."""
    specs, seen = [], {}
    for values in grid_points:
        name = point_name(values)
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:  # values that differ only in punctuation
            name = f"{name}-{seen[name]}"
        opts = {k: v for k, v in options.items() if v is not None}
        opts["out"] = str(sweep_dir / name)
        plan = str(values.get("ReuseFactor")).lower() == PLAN
        for key, value in values.items():
            if not (key == "ReuseFactor" and plan):
                opts[KEYS[key]] = str(value)
        specs.append({"name": name, "values": values, "options": opts, "plan": plan,
                      "plan_file": str(sweep_dir / f"{name}{PLANNED}"), "log": str(sweep_dir / f"{name}.log"),
                      "max_samples": max_samples, "synth_all": bool(synth_all), "vivado": vivado,
                      "command": command_line()})
    return specs
