"""hlsflow.stages.report against 40 real report sets from public repositories (tests/report_fixtures/wild,
Vivado HLS 2016.4 to Vitis HLS 2024.1). The expected figures in wild_expected.json were read from
the human-readable .rpt tables and INDEX.md, not computed by hlsflow: see that file's "about"."""

import json
import shutil
from pathlib import Path

import pytest

from conftest import TESTS_DIR
from hlsflow.stages import report

FIXTURES = TESTS_DIR / "report_fixtures"
WILD = FIXTURES / "wild"
EXPECTED = json.loads((FIXTURES / "wild_expected.json").read_text())["cases"]
CASES = sorted(p.name for p in WILD.iterdir() if p.is_dir())


def test_every_case_folder_has_expectations_and_no_more():
    assert len(CASES) == 40
    assert sorted(EXPECTED) == CASES


def lay_out(case: Path, out: Path) -> str:
    """Put a flat case folder's files where the tools write them; returns the project name."""
    (xml,) = case.glob("*_csynth.xml")
    project = xml.name[: -len("_csynth.xml")]
    report_dir = report.csynth_xml_path(out, project).parent
    report_dir.mkdir(parents=True)
    for f in case.iterdir():
        if f.suffix == ".app":
            dest = out / f"{project}_prj"
        elif f.name == "vivado_synth.rpt":
            dest = out
        else:
            dest = report_dir
        shutil.copy(f, dest / f.name)
    return project


def _figures(resources: dict) -> dict:
    return {name: {"used": r["used"], "available": r["available"]} for name, r in resources.items()}


def _types(value):
    """The value with every leaf replaced by its type name: 71252331726766096 == its float, so
    equality alone would not catch a latency that went through a float."""
    if isinstance(value, dict):
        return {k: _types(v) for k, v in value.items()}
    return type(value).__name__


@pytest.mark.parametrize("case", CASES)
def test_wild_report(case, tmp_path):
    out = tmp_path / "out"
    project = lay_out(WILD / case, out)
    r = report.build_report(out, project, part=None)

    got = {
        "tool": r["tool"], "tool_version": r["tool_version"], "part": r["part"], "top": r["top"],
        "clock": r["clock"],
        "latency": {k: r["latency"][k] for k in ("best_cycles", "worst_cycles")},
        "interval": r["interval"],
        "resources": _figures(r["resources"]),
        "fits": r["fits"], "timing_met": r["timing_met"],
    }
    if "vivado_synth" in r:
        vs = r["vivado_synth"]
        got["vivado_synth"] = {"tool_version": vs["tool_version"], "device": vs["device"],
                               "resources": _figures(vs["resources"])}
    expected = {k: v for k, v in EXPECTED[case].items() if k not in ("source", "note")}
    assert got == expected
    assert _types(got) == _types(expected)

    written = report.write_report(out, project)
    # JSON keeps every number exact, latencies above 2**53 included.
    assert json.loads((out / "report.json").read_text()) == written == r
    md = (out / "report.md").read_text()
    assert f"- Tool: {expected['tool']} {expected['tool_version']}" in md
    assert ("timing met" if expected["timing_met"] else "timing NOT met") in md
    assert (out / "utilisation.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
