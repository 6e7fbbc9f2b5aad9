"""hlsflow.stages.report against real Vivado HLS output (tests/standin_xilinx/fixtures, copied into tmp_path)."""

import json

import pytest

from hlsflow import vivado_reports
from hlsflow.stages import report
from hlsflow.errors import FlowError


def csynth_xml(out, project="myproject"):
    return report.csynth_xml_path(out, project)


def edit_copy(path, old, new):
    """Change a copied fixture in place (the originals in tests/standin_xilinx/fixtures stay untouched)."""
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


def test_csynth_xml_path_is_the_vivado_hls_layout(tmp_path):
    assert report.csynth_xml_path(tmp_path, "net") == (
        tmp_path / "net_prj" / "solution1" / "syn" / "report" / "net_csynth.xml")


def test_2018_2_figures(hls_output_from_fixtures):
    out = hls_output_from_fixtures("2018.2")
    r = report.build_report(out, "myproject")

    assert r["produced_by_test_double"] is False  # real Vivado output, no stand-in log
    assert r["tool_version"] == "2018.2"
    assert r["part"] == "xc7vx690tffg1927-2"
    assert r["top"] == "myproject"
    assert r["clock"] == {"target_ns": 4.12, "uncertainty_ns": 0.51, "estimated_ns": 3.582}
    assert r["latency"] == {"best_cycles": 21, "worst_cycles": 21,
                            "best_ns": 86.52, "worst_ns": 86.52}
    assert r["interval"] == {"min": 1, "max": 1}
    assert r["resources"] == {
        "DSP": {"used": 1, "available": 3600, "percent": 0.03},
        "BRAM_18K": {"used": 0, "available": 2940, "percent": 0.0},
        "LUT": {"used": 2070828, "available": 433200, "percent": 478.03},
        "FF": {"used": 1105961, "available": 866400, "percent": 127.65},
    }
    assert "URAM" not in r["resources"]  # 7-series: no URAM entry in the XML
    assert r["fits"] is False
    assert r["timing_met"] is True  # 3.582 ns within the 4.12 - 0.51 ns budget
    assert r["available_source"] == "csynth_xml"
    assert r["target_part"] is None
    assert "vivado_synth" not in r


def test_2020_1_figures_with_vivado_synth(hls_output_from_fixtures):
    out = hls_output_from_fixtures("2020.1", vsynth=True)
    r = report.build_report(out, "myproject")

    assert r["tool_version"] == "2020.1"
    assert r["part"] == "xc7z020-clg400-1"
    assert r["clock"]["target_ns"] == 5.0
    assert r["clock"]["estimated_ns"] == 4.049
    assert r["latency"]["best_cycles"] == 10 and r["latency"]["worst_cycles"] == 10
    assert r["latency"]["best_ns"] == 50.0
    assert r["interval"] == {"min": 8, "max": 8}
    res = r["resources"]
    assert res["DSP"] == {"used": 73, "available": 220, "percent": 33.18}
    assert res["LUT"]["used"] == 2532 and res["FF"]["used"] == 7969
    assert res["URAM"] == {"used": 0, "available": 0, "percent": None}
    assert r["fits"] is True

    vs = r["vivado_synth"]
    assert vs["tool_version"] == "2020.1"
    assert vs["device"] == "7z020clg400-1"
    assert vs["resources"] == {
        "LUT": {"used": 1526, "available": 53200, "percent": 2.87},
        "FF": {"used": 2428, "available": 106400, "percent": 2.28},
        "DSP": {"used": 66, "available": 220, "percent": 30.0},
        "BRAM_18K": {"used": 0, "available": 280, "percent": 0.0},
    }


def test_best_and_worst_latency_are_read_separately(hls_output_from_fixtures):
    out = hls_output_from_fixtures("2018.2")
    edit_copy(csynth_xml(out), "<Best-caseLatency>21<", "<Best-caseLatency>7<")
    latency = vivado_reports.parse_csynth_xml(csynth_xml(out))["latency"]
    assert latency == {"best_cycles": 7, "worst_cycles": 21,
                       "best_ns": 28.84, "worst_ns": 86.52}


def test_undef_latency_is_none_and_still_reported(hls_output_from_fixtures):
    out = hls_output_from_fixtures("2018.2")
    edit_copy(csynth_xml(out), "<Best-caseLatency>21<", "<Best-caseLatency>undef<")
    edit_copy(csynth_xml(out), "<Worst-caseLatency>21<", "<Worst-caseLatency>-<")
    edit_copy(csynth_xml(out), "<Interval-max>1<", "<Interval-max>undef<")

    r = report.write_report(out, "myproject")
    assert r["latency"] == {"best_cycles": None, "worst_cycles": None,
                            "best_ns": None, "worst_ns": None}
    assert r["interval"] == {"min": 1, "max": None}
    saved = json.loads((out / "report.json").read_text())
    assert saved["latency"]["worst_cycles"] is None
    assert "best n/a cycles" in (out / "report.md").read_text()


def test_dsp_tag_of_newer_releases_maps_to_dsp(hls_output_from_fixtures):
    out = hls_output_from_fixtures("2020.1")
    edit_copy(csynth_xml(out), "<DSP48E>73</DSP48E>", "<DSP>73</DSP>")
    edit_copy(csynth_xml(out), "<DSP48E>220</DSP48E>", "<DSP>220</DSP>")
    assert vivado_reports.parse_csynth_xml(csynth_xml(out))["resources"]["DSP"] == {
        "used": 73, "available": 220, "percent": 33.18}


def test_a_configured_part_that_differs_is_stated_not_substituted(hls_output_from_fixtures, capsys):
    out = hls_output_from_fixtures("2020.1")
    r = report.build_report(out, "myproject", part="xc7z010clg400-1")

    assert r["available_source"] == "csynth_xml"
    assert r["part"] == "xc7z020-clg400-1"
    assert r["target_part"] == "xc7z010clg400-1"
    # The Z020 the report was synthesised for (its own AvailableResources), not the Z010.
    assert r["resources"]["DSP"] == {"used": 73, "available": 220, "percent": 33.18}
    assert r["resources"]["LUT"]["available"] == 53200
    assert "xc7z010clg400-1" in capsys.readouterr().err  # different part: warned
    assert "the configured part is xc7z010clg400-1" in report.render_markdown(r)


def test_fit_is_judged_against_the_part_of_the_report(hls_output_from_fixtures):
    out = hls_output_from_fixtures("2020.1")
    edit_copy(csynth_xml(out), "<DSP48E>73</DSP48E>", "<DSP48E>100</DSP48E>")
    assert report.build_report(out, "myproject")["fits"] is True  # 100 of 220
    r = report.build_report(out, "myproject", part="xc7z010clg400-1")
    assert r["fits"] is True  # still 100 of the Z020's 220, not of the Z010's 80
    assert r["resources"]["DSP"]["percent"] == 45.45


def test_same_part_spelled_differently_is_not_a_mismatch(hls_output_from_fixtures, capsys):
    out = hls_output_from_fixtures("2020.1")
    r = report.build_report(out, "myproject", part="xc7z020clg400-1")
    assert r["resources"]["DSP"]["available"] == 220
    assert capsys.readouterr().err == ""


def test_a_figure_the_report_lacks_comes_from_the_parts_table(hls_output_from_fixtures):
    out = hls_output_from_fixtures("2018.2")
    edit_copy(csynth_xml(out), "<LUT>433200</LUT>", "")
    r = report.build_report(out, "myproject", part="xc9000-nosuch-1")
    assert r["available_source"] == "parts_table"
    assert r["resources"]["LUT"]["available"] == 433200  # the VX690T's, from hlsflow/parts.py
    assert r["resources"]["DSP"]["available"] == 3600


def _strings(value, key=None):
    """(key, text) of every string in a report, however deep."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, k)
    elif isinstance(value, str):
        yield key, value


def test_write_report_files(hls_output_from_fixtures, capsys):
    out = hls_output_from_fixtures("2018.2")
    returned = report.write_report(out, "myproject", part="xc7vx690tffg1927-2")

    saved = json.loads((out / "report.json").read_text())
    assert saved == returned
    assert saved["latency"]["best_cycles"] == 21 and type(saved["latency"]["best_cycles"]) is int
    assert type(saved["clock"]["estimated_ns"]) is float
    assert type(saved["resources"]["LUT"]["used"]) is int
    numeric = [(k, s) for k, s in _strings(saved)
               if k != "tool_version" and s.replace(".", "", 1).isdigit()]
    assert numeric == [], f"numbers stored as strings: {numeric}"

    md = (out / "report.md").read_text()
    for expected in ("Vivado HLS 2018.2", "xc7vx690tffg1927-2", "estimated 3.582 ns",
                     "timing met", "21 cycles (86.52 ns)", "| LUT ", "2070828", "478.03%",
                     "does NOT fit", "estimates from the C synthesis report"):
        assert expected in md, expected
    assert md in capsys.readouterr().out  # the summary is printed too

    assert (out / "utilisation.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert not list(out.glob(".*.tmp"))


def test_timing_verdict_uses_target_minus_uncertainty(hls_output_from_fixtures):
    out = hls_output_from_fixtures("2018.2")
    # 3.9 ns is under the 4.12 ns target but over the 3.61 ns budget HLS schedules for.
    edit_copy(csynth_xml(out), "<EstimatedClockPeriod>3.582<", "<EstimatedClockPeriod>3.9<")
    r = report.build_report(out, "myproject")
    assert report.timing_met(r["clock"]) is False and r["timing_met"] is False
    assert "timing NOT met" in report.render_markdown(r)


def test_missing_xml_raises_and_leaves_old_report(tmp_path):
    (tmp_path / "report.json").write_text('{"old": true}\n')
    with pytest.raises(FlowError) as err:
        report.write_report(tmp_path, "myproject")
    message = str(err.value)
    assert "No synthesis report at" in message and "hlsflow synth" in message
    assert "vivado_hls.log" in message
    assert (tmp_path / "report.json").read_text() == '{"old": true}\n'
    assert not (tmp_path / "report.md").exists()
    assert not (tmp_path / "utilisation.png").exists()


def test_truncated_xml_raises(hls_output_from_fixtures):
    out = hls_output_from_fixtures("2018.2")
    xml = csynth_xml(out)
    xml.write_text(xml.read_text()[:600])
    with pytest.raises(FlowError, match="unreadable"):
        report.build_report(out, "myproject")


def test_xml_that_is_not_a_csynth_report_raises(hls_output_from_fixtures):
    out = hls_output_from_fixtures("2018.2")
    csynth_xml(out).write_text("<profile><ReportVersion><Version>2018.2</Version>"
                               "</ReportVersion></profile>")
    with pytest.raises(FlowError, match="not a complete Vivado HLS csynth report"):
        report.build_report(out, "myproject")


def test_report_files_are_replaced_not_rewritten(hls_output_from_fixtures):
    out = hls_output_from_fixtures("2018.2")
    report.write_report(out, "myproject")
    handles = {name: open(out / name, "rb") for name in ("report.json", "report.md")}
    try:
        edit_copy(csynth_xml(out), "<LUT>2070828</LUT>", "<LUT>1</LUT>")
        report.write_report(out, "myproject")
        # A reader that opened the old file still reads it whole: it was swapped, not truncated.
        assert b"2070828" in handles["report.json"].read()
        assert b"2070828" in handles["report.md"].read()
    finally:
        for handle in handles.values():
            handle.close()
    assert b"2070828" not in (out / "report.json").read_bytes()


def test_failed_rendering_leaves_previous_files(hls_output_from_fixtures, monkeypatch):
    out = hls_output_from_fixtures("2018.2")
    report.write_report(out, "myproject")
    before = {name: (out / name).read_bytes()
              for name in ("report.json", "report.md", "utilisation.png")}

    edit_copy(csynth_xml(out), "<LUT>2070828</LUT>", "<LUT>1</LUT>")

    def broken(_report):
        raise RuntimeError("plot failed")

    monkeypatch.setattr(report, "render_utilisation_png", broken)
    with pytest.raises(RuntimeError):
        report.write_report(out, "myproject")
    assert {name: (out / name).read_bytes() for name in before} == before
    assert not list(out.glob(".*.tmp"))


def test_vivado_synth_bram_counts_ramb36_as_two(tmp_path, vivado_fixtures_dir):
    rpt = tmp_path / "vivado_synth.rpt"
    rpt.write_text((vivado_fixtures_dir / "vivado_hls_2020.1" / "vivado_synth.rpt").read_text())
    edit_copy(rpt, "|   RAMB36/FIFO* |    0 |", "|   RAMB36/FIFO* |    3 |")
    edit_copy(rpt, "|   RAMB18       |    0 |", "|   RAMB18       |    2 |")
    bram = vivado_reports.parse_vivado_synth_rpt(rpt)["resources"]["BRAM_18K"]
    assert bram == {"used": 8, "available": 280, "percent": 2.86}


def test_vivado_synth_rpt_that_is_not_a_utilisation_report(tmp_path):
    rpt = tmp_path / "vivado_synth.rpt"
    rpt.write_text("ERROR: [Synth 8-439] module 'myproject' not found\n")
    with pytest.raises(FlowError):
        vivado_reports.parse_vivado_synth_rpt(rpt)
    with pytest.raises(FlowError):
        vivado_reports.parse_vivado_synth_rpt(tmp_path / "absent.rpt")


def test_finished_lines_of_the_real_log(vivado_fixtures_dir):
    lines = (vivado_fixtures_dir / "vivado_hls_2018.2" / "solution1.log").read_text().splitlines()
    found = [f for f in map(vivado_reports.parse_finished_line, lines) if f]

    assert found[0] == {"stage": "Linking", "elapsed_s": 50, "peak_mb": 456.137}
    assert [f["stage"] for f in found] == [
        "Linking", "Checking Pragmas", "Standard Transforms", "Checking Synthesizability",
        "Pre-synthesis", "Architecture Synthesis"]
    assert found[-1] == {"stage": "Architecture Synthesis", "elapsed_s": 887,
                         "peak_mb": 2200.047}
    assert vivado_reports.parse_finished_line(
        "INFO: [HLS 200-10] Starting hardware synthesis ...") is None


def test_tool_version_from_log(vivado_fixtures_dir):
    text = (vivado_fixtures_dir / "vivado_hls_2018.2" / "solution1.log").read_text()
    # The log holds a 2016.4 run and then a 2018.2 run: the latest run counts.
    assert vivado_reports.read_tool_version_from_log(text) == "2018.2"
    assert vivado_reports.read_tool_version_from_log(text.split("Version: 2018.2")[0]) == "2016.4"
    assert vivado_reports.read_tool_version_from_log("INFO: nothing here\n") is None
