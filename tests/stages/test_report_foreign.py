"""`hlsflow report --out DIR` on a folder hlsflow did not write: Vivado HLS reports laid out by hand
or a plain hls4ml project synthesised elsewhere. Real reports (tests/standin_xilinx/fixtures and
tests/report_fixtures/wild, copied into tmp_path) are read where they are; nothing in the folder is
converted, changed or removed, and only report.json, report.md and utilisation.png are added.
Run as a user would: the `hlsflow` program from a folder outside the checkout."""

import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import TESTS_DIR, error_lines, run_hlsflow

WILD = TESTS_DIR / "report_fixtures" / "wild"
REPORT_FILES = {"report.json", "report.md", "utilisation.png", "layers.png"}

# hls4ml writes its config with yaml.dump: the model is tagged, which yaml.safe_load refuses.
HLS4ML_CONFIG = """Backend: Vivado
ClockPeriod: 5
HLSConfig:
  Model:
    Precision: ap_fixed<16,6>
    ReuseFactor: 1
    Strategy: Latency
IOType: io_stream
KerasModel: !keras_model 'hls4ml_prj/keras_model.keras'
OutputDir: hls4ml_prj
Part: xc7z020clg400-1
ProjectName: myproject
Stamp: 7E9dF3a1
Version: 1.0.0
WriterConfig:
  Namespace: null
  WriteTar: false
  WriteWeightsTxt: true
"""


def hlsflow(*args, cwd):
    """The `hlsflow` program (this checkout's code) run natively from `cwd`."""
    return run_hlsflow(*args, cwd=cwd)


def contents(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def xml_figures(xml: Path) -> dict:
    """Latency and DSPs read straight from the fixture's XML, not through hlsflow."""
    root = ET.parse(xml).getroot()
    latency = root.find("PerformanceEstimates/SummaryOfOverallLatency")
    resources = root.find("AreaEstimates/Resources")
    dsp = resources.find("DSP48E") if resources.find("DSP48E") is not None else resources.find("DSP")
    return {"best": int(latency.find("Best-caseLatency").text), "worst": int(latency.find("Worst-caseLatency").text),
            "dsp": int(dsp.text)}


def hls4ml_project(root: Path, vivado_fixtures_dir: Path) -> Path:
    """A plain hls4ml project synthesised elsewhere (hls4ml_config.yml, firmware/, build_prj.tcl,
    Vivado HLS 2020.1's real reports), with a sub-function's report beside the top's as Vivado writes."""
    src = vivado_fixtures_dir / "vivado_hls_2020.1"
    prj = root / "hls4ml_prj"
    report_dir = prj / "myproject_prj" / "solution1" / "syn" / "report"
    report_dir.mkdir(parents=True)
    (prj / "hls4ml_config.yml").write_text(HLS4ML_CONFIG)
    (prj / "build_prj.tcl").write_text('open_project myproject_prj\nset_top myproject\ncsynth_design\n')
    (prj / "firmware").mkdir()
    (prj / "firmware" / "myproject.cpp").write_text("void myproject() {}\n")
    shutil.copy(src / "vivado_hls.app", prj / "myproject_prj")
    for ext in ("xml", "rpt"):
        shutil.copy(src / f"myproject_csynth.{ext}", report_dir)
    shutil.copy(vivado_fixtures_dir / "vivado_hls_2018.2" / "myproject_csynth.xml", report_dir / "dense_csynth.xml")
    shutil.copy(src / "vivado_synth.rpt", prj)
    (prj / "vivado_hls.log").write_text("INFO: [HLS 200-10] Running vivado_hls\n")
    return prj


@pytest.fixture
def user(tmp_path) -> Path:
    """The folder the user stands in: no hls4ml_config.yml, outside the checkout."""
    folder = tmp_path / "user"
    folder.mkdir()
    return folder


def test_hls4ml_project_synthesised_elsewhere(user, vivado_fixtures_dir):
    import json

    prj = hls4ml_project(user, vivado_fixtures_dir)
    before = contents(prj)
    expected = xml_figures(prj / "myproject_prj/solution1/syn/report/myproject_csynth.xml")

    for run in (1, 2):  # the second run replaces its own earlier report
        proc = hlsflow("report", "--out", "hls4ml_prj", cwd=user)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert "# Synthesis report: myproject" in proc.stdout
        after = contents(prj)
        assert {rel: after[rel] for rel in before} == before  # every file of theirs byte-identical
        assert set(after) - set(before) == REPORT_FILES  # no manifest, no firmware, no project written

    report = json.loads((prj / "report.json").read_text())
    assert report["project"] == "myproject" and report["tool_version"] == "2020.1"
    assert report["csynth_xml"] == "myproject_prj/solution1/syn/report/myproject_csynth.xml"
    assert report["latency"]["best_cycles"] == expected["best"] == 10
    assert report["latency"]["worst_cycles"] == expected["worst"]
    assert report["resources"]["DSP"]["used"] == expected["dsp"] == 73
    assert report["vivado_synth"]["resources"]["LUT"]["used"] == 1526
    assert report["target_part"] is None and report["produced_by_test_double"] is False
    assert sorted(os.listdir(user)) == ["hls4ml_prj"]  # nothing beside it either


def test_hand_laid_reports_with_a_solution_named_sln1(tmp_path):
    """Wild case 09: Vivado HLS 2018.3, solution folder `sln1`, reported from inside the folder with --part."""
    import json

    case = WILD / "09_hls_accel_sln1"
    out = tmp_path / "lab5"
    report_dir = out / "HLS_accel_prj" / "sln1" / "syn" / "report"
    report_dir.mkdir(parents=True)
    for name in ("HLS_accel_csynth.xml", "HLS_accel_csynth.rpt"):
        shutil.copy(case / name, report_dir)
    shutil.copy(case / "vivado_hls.app", out / "HLS_accel_prj")
    before = contents(out)
    expected = xml_figures(case / "HLS_accel_csynth.xml")

    proc = hlsflow("report", "--out", ".", "--part", "xc7z020clg400-1", cwd=out)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    after = contents(out)
    assert {rel: after[rel] for rel in before} == before and set(after) - set(before) == REPORT_FILES
    report = json.loads((out / "report.json").read_text())
    assert report["project"] == "HLS_accel"
    assert report["csynth_xml"] == "HLS_accel_prj/sln1/syn/report/HLS_accel_csynth.xml"
    assert report["latency"]["worst_cycles"] == expected["worst"]
    assert report["resources"]["DSP"]["used"] == expected["dsp"]
    assert report["target_part"] == "xc7z020clg400-1" and report["available_source"] == "csynth_xml"


def test_refusals_are_one_sentence_and_change_nothing(user, vivado_fixtures_dir):
    prj = hls4ml_project(user, vivado_fixtures_dir)
    (prj / "report.json").write_text('{"mine": "a report of my own"}\n')
    # Two projects and no hls4ml_config.yml to say which: ambiguous.
    two = user / "two"
    for project, case in (("a", "01_hls4ml_keras2hls_reuse2"), ("b", "27_hls4ml_svhn_no_app")):
        report_dir = two / f"{project}_prj" / "solution1" / "syn" / "report"
        report_dir.mkdir(parents=True)
        shutil.copy(WILD / case / "myproject_csynth.xml", report_dir / f"{project}_csynth.xml")
    before = contents(user)

    for out, says in (("hls4ml_prj", f"{prj / 'report.json'} was not written by hlsflow"),
                      ("two", "holds reports of several projects (a, b): pass --config"),
                      ("nowhere", "does not exist")):
        proc = hlsflow("report", "--out", out, cwd=user)
        assert proc.returncode != 0
        assert "Traceback" not in proc.stderr + proc.stdout
        (line,) = error_lines(proc)
        assert says in line, line
        assert contents(user) == before and not (user / "nowhere").exists()


def test_host_mounts_only_the_folder_when_out_is_alone(user, vivado_fixtures_dir):
    """The host side: no config, no model needed; only that folder is mounted (read-write, for the
    report's three files), and a folder with nothing to report fails before any container."""
    from invoke import Parser

    from hlsflow.cli import launcher
    from hlsflow.errors import FlowError
    from hlsflow.cli.tasks import namespace

    def plan(*argv):
        return launcher.mount_plan(namespace, Parser(contexts=namespace.to_contexts()).parse_argv(list(argv)), cwd=user)

    prj = hls4ml_project(user, vivado_fixtures_dir)
    argv, mounts = plan("report", "--out", "hls4ml_prj")
    assert argv == ["report", "--out", str(prj)]
    assert mounts.volumes() == {str(prj): {"bind": str(prj), "mode": "rw"}}
    (user / "empty").mkdir()
    with pytest.raises(FlowError, match="holds no Vivado HLS report"):
        plan("report", "--out", "empty")
