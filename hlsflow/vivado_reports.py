"""Reading what Vivado HLS writes, real tool output all (tests/standin_xilinx/fixtures/README.md):
- `<project>_prj/solution1/syn/report/<project>_csynth.xml`: the C synthesis estimates (every
  value is text; latency can be "undef" for unbounded loops);
- `vivado_synth.rpt`: Vivado's report_utilization after logic synthesis (vsynth);
- the solution log, whose `Finished <stage> Time (s): ...` lines show progress, and whose first
  lines say whether the test double wrote it.
Read by the synth stage (progress, the stand-in) and the report stage (figures); apart from both,
as hls4ml keeps its report readers apart from its backends.
"""

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from .errors import FlowError

RESOURCES = ("DSP", "BRAM_18K", "LUT", "FF")

# 2018.2 says DSP48E, later releases may say DSP; URAM exists only on UltraScale+.
_XML_RESOURCE_NAMES = {"DSP48E": "DSP", "DSP": "DSP", "BRAM_18K": "BRAM_18K",
                       "LUT": "LUT", "FF": "FF", "URAM": "URAM"}

_FINISHED_RE = re.compile(
    r"Finished (?P<stage>.+?) Time \(s\): cpu = \S+ ; "
    r"elapsed = (?P<h>\d+):(?P<m>\d+):(?P<s>\d+) \. "
    r"Memory \(MB\): peak = (?P<peak>[\d.]+)"
)
_VERSION_RE = re.compile(r"^Version:\s*(\S+)", re.MULTILINE)


# ---------------------------------------------------------------- C synthesis XML

def _number(text, kind=float):
    """A number from report text, or None for "undef", "-", empty or anything unreadable."""
    if text is None:
        return None
    try:
        return kind(text.strip())
    except ValueError:
        return None


def percent(used, available):
    if used is None or not available:
        return None
    return round(100.0 * used / available, 2)


def _resource(used, available) -> dict:
    return {"used": used, "available": available, "percent": percent(used, available)}


def parse_csynth_xml(path, log_path=None, rerun=None) -> dict:
    """The figures of a Vivado HLS csynth.xml, as numbers (None where the tool wrote none)."""
    path = Path(path)
    rerun = rerun or "run `hlsflow synth` first" + (
        f" (or check the synthesis log at {log_path})" if log_path else "")
    if not path.is_file():
        raise FlowError(f"No synthesis report at {path}: {rerun}.")
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise FlowError(f"The synthesis report {path} is unreadable ({exc}): {rerun}.") from None

    def text(tag):
        node = root.find(tag)
        return None if node is None or node.text is None else node.text.strip()

    required = ("ReportVersion/Version", "UserAssignments/Part",
                "UserAssignments/TargetClockPeriod", "AreaEstimates/Resources")
    missing = [tag for tag in required if root.find(tag) is None]
    if missing:
        raise FlowError(
            f"The synthesis report {path} has no {missing[0]}, so it is not a complete "
            f"Vivado HLS csynth report: {rerun}."
        )

    target = _number(text("UserAssignments/TargetClockPeriod"))
    latency = "PerformanceEstimates/SummaryOfOverallLatency/"
    best = _number(text(latency + "Best-caseLatency"), int)
    worst = _number(text(latency + "Worst-caseLatency"), int)

    def cycles_to_ns(cycles):
        # Rounded to the picosecond so JSON shows 86.52, not 86.52000000000001.
        return None if cycles is None or target is None else round(cycles * target, 3)

    def area(section):
        found = {}
        block = root.find(f"AreaEstimates/{section}")
        for node in [] if block is None else block:
            name = _XML_RESOURCE_NAMES.get(node.tag)
            if name:
                found[name] = _number(node.text, int)
        return found

    used, available = area("Resources"), area("AvailableResources")
    resources = {name: _resource(used.get(name), available.get(name))
                 for name in RESOURCES + ("URAM",) if name in used or name in RESOURCES}

    return {
        # Vitis HLS writes <FlowTarget>, Vivado HLS never does; both have a 2020.1 release.
        "tool": "Vitis HLS" if root.find("UserAssignments/FlowTarget") is not None else "Vivado HLS",
        "tool_version": text("ReportVersion/Version"),
        "part": text("UserAssignments/Part"),
        "top": text("UserAssignments/TopModelName"),
        "clock": {
            "target_ns": target,
            "uncertainty_ns": _number(text("UserAssignments/ClockUncertainty")),
            "estimated_ns": _number(text("PerformanceEstimates/SummaryOfTimingAnalysis/"
                                         "EstimatedClockPeriod")),
        },
        "latency": {
            "best_cycles": best,
            "worst_cycles": worst,
            "best_ns": cycles_to_ns(best),
            "worst_ns": cycles_to_ns(worst),
        },
        "interval": {
            "min": _number(text(latency + "Interval-min"), int),
            "max": _number(text(latency + "Interval-max"), int),
        },
        "resources": resources,
    }


# ------------------------------------------------- per instance (layer) of the top

LAYER_RESOURCES = ("BRAM_18K", "DSP", "FF", "LUT", "URAM")
_RANGE_RE = re.compile(r"^\s*(\d+)\s*(?:~\s*(\d+))?\s*$")


def _span(text):
    """(min, max) of "4", "4 ~ 7"; (None, None) for "undef", "?", "-"."""
    m = _RANGE_RE.match(text or "")
    if not m:
        return None, None
    low = int(m.group(1))
    return low, int(m.group(2)) if m.group(2) else low


def _layer(instance, module, latency, interval, pipeline, resources) -> dict:
    return {"instance": instance, "module": module, "latency_min": latency[0], "latency_max": latency[1],
            "interval_min": interval[0], "interval_max": interval[1], "pipeline": pipeline or None,
            "resources": {name: resources.get(name) for name in LAYER_RESOURCES}}


def _instances_from_xml(path: Path):
    """The top's instances from the combined csynth.xml of Vitis HLS 2020.2 on (RTLDesignHierarchy
    names each instance's module, ModuleInformation holds each module's figures); None when the
    file holds no hierarchy (Vivado HLS writes it as a copy of the top's report)."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError):
        return None
    top = root.find("RTLDesignHierarchy/TopModule")
    if top is None:
        return None
    modules = {m.findtext("Name"): m for m in root.findall("ModuleInformation/Module")}
    layers = []
    for inst in top.findall("InstancesList/Instance"):
        name, module = inst.findtext("InstName"), inst.findtext("ModuleName")
        info = modules.get(module)
        summary = info.find("PerformanceEstimates/SummaryOfOverallLatency") if info is not None else None
        area = info.find("AreaEstimates/Resources") if info is not None else None
        text = (lambda tag: summary.findtext(tag)) if summary is not None else (lambda tag: None)
        best, worst = _number(text("Best-caseLatency"), int), _number(text("Worst-caseLatency"), int)
        resources = {_XML_RESOURCE_NAMES[n.tag]: _number(n.text, int) for n in ([] if area is None else area)
                     if n.tag in _XML_RESOURCE_NAMES}
        layers.append(_layer(name, module, (best, worst), _span(text("PipelineInitiationInterval")),
                             text("PipelineType"), resources))
    return layers


def _rpt_tables(lines) -> dict:
    """{"latency": rows, "utilisation": rows} of the top's "* Instance:" tables in a csynth.rpt, each
    row a {column name: cell} of the header Vivado printed (the latency table's min/max columns
    named latency_min/max and interval_min/max: older releases print no absolute-time pair)."""
    tables, section, current = {}, None, None
    for raw in lines:
        line = raw.strip()
        if line.startswith("== Performance Estimates"):
            section = "latency"
        elif line.startswith("== Utilization Estimates"):
            section = "utilisation"
        elif line.startswith("== "):
            section = None
        if line.startswith("* Instance:") and section and section not in tables:
            current = tables.setdefault(section, {"header": None, "rows": []})
            continue
        if current is None:
            continue
        if not line.startswith(("|", "+")):
            if current["header"] is not None or line:
                current = None if current["header"] is not None else current
            continue
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[:2] == ["Instance", "Module"]:
            header = list(cells)
            pairs = [i for i, c in enumerate(header) if c == "min"]
            if len(pairs) >= 2:  # latency (cycles) first, interval last; an absolute pair between
                for i, name in ((pairs[0], "latency"), (pairs[-1], "interval")):
                    header[i], header[i + 1] = f"{name}_min", f"{name}_max"
            current["header"] = header
        elif current["header"] and len(cells) == len(current["header"]) and cells[0] not in ("", "Total"):
            current["rows"].append(dict(zip(current["header"], cells)))
    return {name: table["rows"] for name, table in tables.items()}


def _instances_from_rpt(path: Path) -> list:
    """The top's instances from the "Instance" tables of its csynth.rpt (latency and resources)."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    tables = _rpt_tables(lines)
    latency = {row["Instance"]: row for row in tables.get("latency", [])}
    usage = {row["Instance"]: row for row in tables.get("utilisation", [])}
    layers = []
    for name in [*latency, *(n for n in usage if n not in latency)]:
        lat, use = latency.get(name, {}), usage.get(name, {})
        resources = {_XML_RESOURCE_NAMES[k]: _number(v, int) for k, v in use.items() if k in _XML_RESOURCE_NAMES}
        layers.append(_layer(name, lat.get("Module") or use.get("Module"),
                             (_number(lat.get("latency_min"), int), _number(lat.get("latency_max"), int)),
                             (_number(lat.get("interval_min"), int), _number(lat.get("interval_max"), int)),
                             lat.get("Type"), resources))
    return layers


def parse_instances(xml_path) -> tuple:
    """(layers, source): each instance of the top function (for hls4ml, a layer) with its latency,
    initiation interval and resources, and the file they come from: the combined csynth.xml beside
    the top's report where Vitis HLS wrote one with the design hierarchy, else the tables of the
    top's csynth.rpt (Vivado HLS keeps the hierarchy there). ([], None) when neither has any."""
    xml_path = Path(xml_path)
    combined = xml_path.parent / "csynth.xml"
    if combined.is_file() and combined.name != xml_path.name:
        layers = _instances_from_xml(combined)
        if layers is not None:
            return layers, combined.name
    rpt = xml_path.with_suffix(".rpt")
    layers = _instances_from_rpt(rpt) if rpt.is_file() else []
    return layers, (rpt.name if layers else None)


# ------------------------------------------------------- Vivado report_utilization

# Row names differ between 7-series ("Slice") and UltraScale ("CLB") devices.
_RPT_ROWS = {"Slice LUTs": "LUT", "CLB LUTs": "LUT", "Slice Registers": "FF",
             "CLB Registers": "FF", "DSPs": "DSP", "RAMB36/FIFO": "RAMB36",
             "RAMB18": "RAMB18", "URAM": "URAM"}


def parse_vivado_synth_rpt(path) -> dict:
    """Post-synthesis utilisation from Vivado's report_utilization text.

    BRAM_18K counts RAMB18 + 2 x RAMB36 (a RAMB36 tile holds two 18 Kb blocks), so it
    compares directly with the BRAM_18K figure of the HLS estimate and our parts table.
    """
    path = Path(path)
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        raise FlowError(f"Cannot read the Vivado utilisation report {path} ({exc}): "
                        "re-run synthesis with vsynth enabled.") from None

    header = {}
    rows = {}
    columns = None
    for line in lines:
        if line.startswith("| Tool Version") or line.startswith("| Device") \
                or line.startswith("| Design "):
            key, _, value = line[1:].partition(":")
            header[key.strip()] = value.strip()
            continue
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == "Site Type":
            # Column positions vary: newer releases add a "Prohibited" column.
            columns = (cells.index("Used"), cells.index("Available")) \
                if "Used" in cells and "Available" in cells else None
            continue
        name = _RPT_ROWS.get(cells[0].rstrip("*").strip())
        if columns and name and name not in rows:
            rows[name] = (_number(cells[columns[0]], int), _number(cells[columns[1]], int))

    if "LUT" not in rows or "FF" not in rows:
        raise FlowError(f"{path} has no LUT/register table, so it is not Vivado "
                        "report_utilization output: re-run synthesis with vsynth enabled.")

    resources = {name: _resource(*rows[name]) for name in ("LUT", "FF", "DSP") if name in rows}
    if "RAMB18" in rows or "RAMB36" in rows:
        used18, avail18 = rows.get("RAMB18", (0, None))
        used36, avail36 = rows.get("RAMB36", (0, None))
        used = (used18 or 0) + 2 * (used36 or 0)
        available = avail18 if avail18 is not None else (
            2 * avail36 if avail36 is not None else None)
        resources["BRAM_18K"] = _resource(used, available)
    if "URAM" in rows:
        resources["URAM"] = _resource(*rows["URAM"])

    # All components: "Vivado v.2019.2.1" is 2019.2.1, not 2019.2.
    version = re.search(r"v\.?(\d{4}(?:\.\d+)+)", header.get("Tool Version", ""))
    return {
        "tool_version": version.group(1) if version else None,
        "device": header.get("Device"),
        "design": header.get("Design"),
        "resources": resources,
    }


# ------------------------------------------------------------------ solution log

def parse_finished_line(line: str):
    """{"stage", "elapsed_s", "peak_mb"} from a `Finished <stage> Time (s): ...` log line."""
    match = _FINISHED_RE.search(line)
    if not match:
        return None
    elapsed = int(match["h"]) * 3600 + int(match["m"]) * 60 + int(match["s"])
    return {"stage": match["stage"], "elapsed_s": elapsed, "peak_mb": float(match["peak"])}


def read_tool_version_from_log(text: str):
    """The version in the last `Version:` banner: a solution log appends one per run."""
    found = _VERSION_RE.findall(text)
    return found[-1] if found else None


def is_stand_in_log(path: Path) -> bool:
    """The vivado_hls test double announces itself first thing in its log."""
    return "STAND-IN" in head_text(path)


def head_text(path: Path, size: int = 4096) -> str:
    try:
        with open(path, errors="replace") as f:
            return f.read(size)
    except OSError:
        return ""
