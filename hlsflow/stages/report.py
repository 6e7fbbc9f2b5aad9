"""The report stage: Vivado HLS's results (read by vivado_reports.py) against the part, written
as report.json, report.md, utilisation.png and layers.png (per layer).
A folder synthesised outside hlsflow (no manifest of ours; any solution folder name) is read
where it is and left as it was, but for these four files (report_foreign).
matplotlib is imported only when the plot is drawn, so the host side stays light.
"""

import hashlib
import re
from pathlib import Path

from .. import console, steps
from ..errors import FlowError
from ..files import read_json, sha256, write_atomically, write_json
from ..parts import find_part
from .report_figures import render_layers_png, render_utilisation_png
from ..steps import csynth_xml_path
from ..vivado_reports import (LAYER_RESOURCES, head_text, is_stand_in_log, parse_csynth_xml, parse_instances,
                              parse_vivado_synth_rpt, percent)

# --------------------------------------------------------------------- the report

def _same_part(a: str, b: str) -> bool:
    # Vivado writes "xc7z020-clg400-1" where users write "xc7z020clg400-1".
    return a.lower().replace("-", "") == b.lower().replace("-", "")


def build_report(out_dir, project_name, part=None, xml=None, rerun=None) -> dict:
    """The content of report.json: the csynth figures, the fit verdict and vivado_synth. `xml`: the
    csynth.xml when it is not where hls4ml's flow puts it (a solution folder named otherwise)."""
    out_dir = Path(out_dir)
    xml = Path(xml) if xml else csynth_xml_path(out_dir, project_name)
    report = parse_csynth_xml(xml, log_path=out_dir / "vivado_hls.log", rerun=rerun)
    report = {"project": project_name, "csynth_xml": str(xml.relative_to(out_dir)), **report}

    # A report is judged against the part it was synthesised for, with Vivado's own figures for it;
    # the configured part (kept as target_part) only earns a warning when it is another one.
    report["target_part"] = part
    if part and report["part"] and not _same_part(part, report["part"]):
        console.warn(f"The synthesis report is for {report['part']}, not the configured part {part}: fit is "
                     f"judged against {report['part']}, the part it was synthesised for.")
    known = find_part(report["part"]) if report["part"] else None
    filled = []
    for name, entry in report["resources"].items():
        figure = known.resources().get(name) if known else None
        if entry["available"] is None and figure is not None:  # a figure the report lacks
            entry["available"], entry["percent"] = figure, percent(entry["used"], figure)
            filled.append(name)
    report["available_source"] = "parts_table" if filled else "csynth_xml"

    figures = [(r["used"], r["available"]) for r in report["resources"].values()]
    # None when a figure is unreadable: neither "fits" nor "does not fit" would be honest.
    report["fits"] = None if any(None in pair for pair in figures) else all(
        used <= available for used, available in figures)
    report["timing_met"] = timing_met(report["clock"])

    # Each instance of the top (for hls4ml, a layer): latency, II and resources.
    layers, source = parse_instances(xml)
    report["layers"] = layers
    report["layers_source"] = str((xml.parent / source).relative_to(out_dir)) if source else None

    rpt = out_dir / "vivado_synth.rpt"
    if rpt.is_file():
        report["vivado_synth"] = parse_vivado_synth_rpt(rpt)
    # The test double announces itself in the log: its reports must never pass for this design's.
    report["produced_by_test_double"] = any(
        is_stand_in_log(out_dir / name) for name in ("vivado_hls_run.log", "vivado_hls.log"))
    return report


def _fmt(value, unit=""):
    return "n/a" if value is None else f"{value}{unit}"


def timing_met(clock: dict):
    """Vivado HLS schedules against target - uncertainty, so that is the budget to meet."""
    if None in (clock["target_ns"], clock["estimated_ns"]):
        return None
    budget = clock["target_ns"] - (clock["uncertainty_ns"] or 0.0)
    return clock["estimated_ns"] <= budget + 1e-9


def _resource_table(resources: dict) -> str:
    rows = [(name, _fmt(r["used"]), _fmt(r["available"]), _fmt(r["percent"], "%"))
            for name, r in resources.items()]
    return console.table(["Resource", "Used", "Available", "Used %"], rows)


def render_markdown(report: dict) -> str:
    clock, latency, interval = report["clock"], report["latency"], report["interval"]
    verdict = {True: "met", False: "NOT met", None: "unknown"}[report["timing_met"]]
    budget = (None if clock["target_ns"] is None
              else round(clock["target_ns"] - (clock["uncertainty_ns"] or 0.0), 3))
    judged_on = report["part"] or "the part of the report"
    part_line = report["part"] or "n/a"
    if report["target_part"] and not _same_part(report["target_part"], part_line):
        part_line += (f" (the configured part is {report['target_part']}; this report was synthesised for "
                      f"{part_line}, and is judged against it)")

    lines = [
        f"# Synthesis report: {report['project']}",
        "",
        *([f"**These reports were laid down by the {report['tool']} stand-in (a test double), not by a "
           "Xilinx tool for this design.**", ""]
          if report.get("produced_by_test_double") else []),
        f"The figures below are {report['tool']} estimates from the C synthesis report "
        f"(`{report['csynth_xml']}`), not post-implementation results.",
        "",
        f"- Tool: {report['tool']} {_fmt(report['tool_version'])}",
        f"- Part: {part_line}",
        f"- Top function: {_fmt(report['top'])}",
        f"- Clock: target {_fmt(clock['target_ns'], ' ns')}, estimated "
        f"{_fmt(clock['estimated_ns'], ' ns')}, uncertainty {_fmt(clock['uncertainty_ns'], ' ns')}"
        f": timing {verdict} (budget = target - uncertainty = {_fmt(budget, ' ns')})",
        f"- Latency: best {_fmt(latency['best_cycles'])} cycles ({_fmt(latency['best_ns'], ' ns')}), "
        f"worst {_fmt(latency['worst_cycles'])} cycles ({_fmt(latency['worst_ns'], ' ns')})",
        f"- Interval: min {_fmt(interval['min'])}, max {_fmt(interval['max'])} cycles",
        "",
        _resource_table(report["resources"]),
        "",
    ]
    source = ("the synthesis report, and hlsflow/parts.py where it lists none"
              if report["available_source"] == "parts_table" else "the synthesis report")
    if report["fits"] is None:
        lines.append(f"Fit on {judged_on}: unknown (a resource figure is unreadable).")
    else:
        over = [n for n, r in report["resources"].items() if r["used"] > r["available"]]
        lines.append(f"Fit on {judged_on}: " + ("fits" if report["fits"] else
                     "does NOT fit (over: " + ", ".join(over) + ")")
                     + f"; available resources from {source}.")

    lines += ["", *_layer_lines(report)]

    synth = report.get("vivado_synth")
    if synth:
        lines += [
            "",
            "## After Vivado logic synthesis (vivado_synth.rpt)",
            "",
            f"Vivado {_fmt(synth['tool_version'])}, device {_fmt(synth['device'])}. "
            "BRAM_18K counts RAMB18 + 2 x RAMB36.",
            "",
            _resource_table(synth["resources"]),
        ]
    return "\n".join(lines) + "\n"


def _span(low, high) -> str:
    if low is None and high is None:
        return "n/a"
    return _fmt(low) if low == high else f"{_fmt(low)}-{_fmt(high)}"


def _layer_lines(report: dict) -> list:
    """The per-layer section of report.md: each instance of the top with latency, II and resources."""
    layers = report.get("layers") or []
    if not layers:
        return ["## Per layer", "", f"The synthesis report lists no instance of {_fmt(report['top'])}: no per-layer "
                "figures (a design with everything inlined, or Vivado HLS output without its csynth.rpt)."]
    rows = [(layer["instance"], _fmt(layer["module"]), _span(layer["latency_min"], layer["latency_max"]),
             _span(layer["interval_min"], layer["interval_max"]),
             *(_fmt(layer["resources"][name]) for name in LAYER_RESOURCES)) for layer in layers]
    return ["## Per layer", "",
            f"Each instance of {_fmt(report['top'])} (for hls4ml, a layer), from `{report['layers_source']}`: "
            f"latency and initiation interval (II) in cycles, {report['tool']} estimates. `layers.png` draws them.", "",
            console.table(["Instance", "Module", "Latency", "II", *LAYER_RESOURCES], rows)]


def write_report(out_dir, project_name, part=None, xml=None, foreign=False) -> dict:
    """Write report.json, report.md, utilisation.png and layers.png into out_dir; print the summary. `foreign`:
    out_dir is not hlsflow's, so a report file name that holds someone else's file is refused,
    and report.json records the hashes of the other two so a later run knows them as its own."""
    out_dir = Path(out_dir)
    rerun = "re-run the synthesis of that project, or give --out the folder of another" if foreign else None
    report = build_report(out_dir, project_name, part, xml=xml, rerun=rerun)
    # Render everything before writing anything; report.json goes last, as it marks completion.
    markdown = render_markdown(report)
    png = render_utilisation_png(report)
    layers_png = render_layers_png(report)
    if foreign:
        taken = not_our_report_file(out_dir)
        if taken:
            raise FlowError(f"{out_dir / taken} was not written by hlsflow and is never overwritten: move it "
                            "aside, or copy the project to another folder and report there.")
        report["report_files"] = {"report.md": hashlib.sha256(markdown.encode()).hexdigest(),
                                  "utilisation.png": hashlib.sha256(png).hexdigest(),
                                  "layers.png": hashlib.sha256(layers_png).hexdigest()}
    write_atomically(out_dir / "report.md", markdown)
    write_atomically(out_dir / "utilisation.png", png)
    write_atomically(out_dir / "layers.png", layers_png)
    write_json(out_dir / "report.json", report)
    console.say(markdown)
    return report


REPORT_FILES = steps.REPORT.outputs


CURRENT = "Report up to date: {out}/report.md (synthesis results and part unchanged)"
AGAIN = None


def made_from(cfg, project=None, **flags) -> dict:
    """The synthesis reports and the part (the C synthesis XML must exist)."""
    xml = csynth_xml_path(cfg.output_dir, cfg.project_name)
    if not xml.is_file():
        raise FlowError(f"No synthesis report at {xml}: run `hlsflow synth` first.")
    rpt = cfg.output_dir / "vivado_synth.rpt"
    return {"csynth_xml": sha256(xml), "part": cfg.part, "vivado_synth_rpt": sha256(rpt) if rpt.is_file() else None}


def work(cfg, into: Path, project=None) -> steps.Outcome:
    result = write_report(into, cfg.project_name, cfg.part)
    return steps.Outcome(list(REPORT_FILES), result={"fits": result["fits"], "timing_met": result["timing_met"]},
                          extra={"stand_in": result["produced_by_test_double"]})


def shown(cfg, record: dict, reused: bool) -> dict:
    """The whole report (report.json); a reused one is printed again."""
    if reused:
        console.say((cfg.output_dir / "report.md").read_text())
    return read_json(cfg.output_dir / "report.json")


WORK = steps.Work(steps.REPORT, work, made_from=made_from, shown=shown, current=CURRENT, again=AGAIN)


# ------------------------------------------- a project synthesised outside hlsflow

HLS4ML_CONFIG = "hls4ml_config.yml"
# What every report.json of ours holds: a file by that name without these is someone else's.
_REPORT_KEYS = {"project", "csynth_xml", "tool", "tool_version", "part", "clock", "latency", "interval",
                "resources", "fits", "timing_met"}


def foreign_folder(out_dir, recorded: bool) -> bool:
    """An existing folder without hlsflow's manifest (`recorded`: it has one) that holds Vivado HLS
    reports or an hls4ml project: written by hand or by plain hls4ml, so it is read, never converted
    or synthesised into."""
    out = Path(out_dir)
    if not out.is_dir() or recorded:
        return False
    return (out / HLS4ML_CONFIG).is_file() or bool(find_csynth_reports(out))


def _top_of(prj: Path) -> str:
    """The top function of a Vivado/Vitis HLS project folder: its .app says (hls4ml's galapagos
    wrapper sits in myproject_prj), else hls4ml's naming, <top>_prj."""
    for app in ("vivado_hls.app", "hls.app"):
        found = re.search(r'\btop="([^"]+)"', head_text(prj / app))
        if found:
            return found.group(1)
    return prj.name[: -len("_prj")]


def find_csynth_reports(out_dir) -> dict:
    """{top function: its csynth.xml} for each <project>_prj/<solution>/syn/report/ in out_dir.
    Vivado HLS also writes a <function>_csynth.xml per sub-function there: the top's is the one."""
    found = {}
    for prj in sorted(p for p in Path(out_dir).glob("*_prj") if p.is_dir()):
        top = _top_of(prj)
        xmls = []
        for report_dir in sorted(prj.glob("*/syn/report")):
            named = report_dir / f"{top}_csynth.xml"
            others = sorted(report_dir.glob("*_csynth.xml"))
            if named.is_file():
                xmls.append(named)
            elif len(others) == 1:
                xmls.append(others[0])
        if xmls:
            # hls4ml synthesises into solution1; of other solutions, the latest run is the one to read.
            pick = next((x for x in xmls if x.parts[-4] == "solution1"), None) or max(
                xmls, key=lambda x: x.stat().st_mtime)
            found[pick.name[: -len("_csynth.xml")]] = pick
    return found


def _hls4ml_project_name(out_dir):
    """ProjectName from the hls4ml_config.yml hls4ml writes into its projects, or None. It tags the
    model (!keras_model), which a safe loader refuses: unknown tags are read as None."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("", lambda loader, suffix, node: None)
    try:
        data = yaml.load((Path(out_dir) / HLS4ML_CONFIG).read_text(errors="replace"), Loader=Loader)
    except (OSError, yaml.YAMLError):
        return None
    name = data.get("ProjectName") if isinstance(data, dict) else None
    return str(name) if name else None


def foreign_project(out_dir, project=None) -> tuple:
    """(project name, csynth.xml) of a folder synthesised outside hlsflow: the project its
    hls4ml_config.yml names, else the configured one, else the only one there."""
    out = Path(out_dir)
    found = find_csynth_reports(out)
    own = _hls4ml_project_name(out)
    for name in (own, project):
        if name and name in found:
            return name, found[name]
    if own:
        raise FlowError(f"{out / HLS4ML_CONFIG} names project {own} but {out} holds no synthesis report of it "
                        f"({own}_prj/<solution>/syn/report/{own}_csynth.xml): synthesise it first, e.g. "
                        "`vivado_hls -f build_prj.tcl` there.")
    if len(found) == 1:
        return next(iter(found.items()))
    if not found:
        raise FlowError(f"{out} holds no Vivado HLS report (<project>_prj/<solution>/syn/report/"
                        "<project>_csynth.xml): give --out the folder of a synthesised project.")
    raise FlowError(f"{out} holds reports of several projects ({', '.join(sorted(found))}): pass --config "
                    "with ProjectName set to the one to report.")


def _is_png_by_matplotlib(path: Path) -> bool:
    head = _head_bytes(path)
    return head.startswith(b"\x89PNG") and b"Matplotlib" in head


def _head_bytes(path: Path, size: int = 4096) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(size)
    except OSError:
        return b""


def not_our_report_file(out_dir):
    """The first of report.json, report.md, utilisation.png, layers.png in out_dir that holds a file hlsflow did
    not write (so must not be replaced), or None. Ours: a report.json of our structure, and the
    files whose hashes it records; an earlier report that records none is judged by content."""
    out = Path(out_dir)
    paths = {name: out / name for name in REPORT_FILES}
    for path in paths.values():
        if path.is_symlink() or (path.exists() and not path.is_file()):
            return path.name
    earlier = None
    if paths["report.json"].exists():
        earlier = read_json(paths["report.json"])
        if not (isinstance(earlier, dict) and _REPORT_KEYS <= set(earlier)):
            return "report.json"
    recorded = (earlier or {}).get("report_files")
    for name in ("report.md", "utilisation.png", "layers.png"):
        path = paths[name]
        if not path.exists():
            continue
        if isinstance(recorded, dict):
            ours = recorded.get(name) == sha256(path)
        elif name == "report.md":
            ours = head_text(path).startswith("# Synthesis report: ") and "from the C synthesis report" in head_text(path)
        else:
            ours = earlier is not None and _is_png_by_matplotlib(path)
        if not ours:
            return name
    return None


def report_foreign(out_dir, project=None, part=None) -> dict:
    """The report of a folder synthesised outside hlsflow: its reports are read where they are and
    nothing in it is changed; only report.json, report.md, utilisation.png and layers.png are written."""
    out = Path(out_dir)
    name, xml = foreign_project(out, project)
    console.step(f"report: {out} was not written by hlsflow; reporting {xml.relative_to(out)} as it is "
                 "(nothing converted or synthesised)")
    return write_report(out, name, part, xml=xml, foreign=True)


def no_report_without_config(out_dir, recorded: bool) -> None:
    """The one sentence for `hlsflow report --out DIR` alone on a folder that is not one to read
    (`recorded`: it has hlsflow's manifest)."""
    out = Path(out_dir)
    if not out.is_dir():
        raise FlowError(f"The output folder {out} does not exist: give --out the folder of a synthesised HLS "
                        "project.")
    if recorded:
        raise FlowError(f"{out} is an output folder of hlsflow: pass the --config (or --model) it was made with, "
                        "so that the report knows whether its synthesis is current.")
    foreign_project(out)  # names what is missing
