"""`report` on real report sets of every version (tests/report_fixtures/wild, 2016.4 to 2024.1):
the tool and version the report names, the part's resources from hlsflow/parts.py (checked here
against the AvailableResources the real tools wrote), and latency in cycles and in ns."""

import re
from pathlib import Path

import pytest

from hlsflow.parts import device_of, find_part
from hlsflow.stages.report import build_report, render_markdown

WILD = Path(__file__).resolve().parents[1] / "report_fixtures" / "wild"  # the shared fixtures' copy
ROWS = [line.split("|") for line in (WILD / "INDEX.md").read_text().splitlines()
        if re.match(r"\| \d\d_", line)] if (WILD / "INDEX.md").is_file() else []
CASES = {row[1].strip(): {"tool": row[4].strip(), "top": row[5].strip()} for row in ROWS}


def _xml(case: str):
    found = sorted((WILD / case).rglob(f"{CASES[case]['top']}_csynth.xml"))
    return found[0] if found else None


@pytest.mark.parametrize("case", sorted(CASES))
def test_tool_version_part_and_latency(case):
    xml = _xml(case)
    if xml is None:
        pytest.skip(f"{case} has no csynth.xml (see its INDEX.md row)")
    out = xml.parents[4] if len(xml.parents) > 4 else xml.parent
    report = build_report(out, CASES[case]["top"], None, xml=xml)
    tool, version = re.match(r"(Vivado HLS|Vitis HLS) (\S+)", CASES[case]["tool"]).groups()
    assert (report["tool"], report["tool_version"]) == (tool, version)
    md = render_markdown(report)
    assert f"- Tool: {tool} {version}" in md
    latency = report["latency"]
    if latency["best_cycles"] is not None and report["clock"]["target_ns"]:
        assert latency["best_ns"] == pytest.approx(latency["best_cycles"] * report["clock"]["target_ns"])
        assert f"best {latency['best_cycles']} cycles ({latency['best_ns']} ns)" in md

    # The part's resources: the table's figures are the ones the real tool reported for the device.
    part = find_part(report["part"])
    if part is not None:
        judged = build_report(out, CASES[case]["top"], report["part"], xml=xml)
        assert judged["available_source"] == "csynth_xml"  # Vivado's own figures; the table agrees
        for name, figure in part.resources().items():
            if name in report["resources"]:  # 7-series reports of older releases list no URAM
                assert report["resources"][name]["available"] == figure, (report["part"], name)


def test_every_device_of_the_wild_reports_is_known():
    parts = {}
    for case in CASES:
        xml = _xml(case)
        if xml is not None:
            text = xml.read_text(errors="replace")
            parts[case] = re.search(r"<Part>([^<]+)</Part>", text).group(1)
    unknown = sorted({p for p in parts.values() if find_part(p) is None})
    assert unknown == [], unknown  # xa7a12tcsg325-1q too: an automotive grade of the XC7A12T
    assert device_of("xcvc1902-vsva2197-2MP-e-S") == "xcvc1902" and find_part("xcvc1902-vsva2197-2MP-e-S")
