"""The Vivado HLS / Vitis HLS stand-in (tests/standin_xilinx, a test double) behaves as its README says:
it executes hls4ml's own build_prj.tcl in tclsh, records the tool commands and copies real reports."""

import contextlib
import importlib.util
import json
import os
import select
import shutil
import signal
import stat
import subprocess
from pathlib import Path

import pytest

import standin_hang
from waiting import wait_for
from hlsflow import vivado_reports
from hlsflow.stages import report

NOTICE = ("vivado_hls STAND-IN (test double from tests/standin_xilinx): not Xilinx Vivado HLS; it runs the Tcl "
          "script with recording commands and lays down real reports copied from its fixtures.")
HLS4ML_ARGS = "reset=0 csim=0 synth=1 cosim=0 validation=0 export=0 vsynth=0 fifo_opt=0"
# hls4ml's templates, read where the package is installed (not imported: that would load TensorFlow).
TEMPLATES = Path(importlib.util.find_spec("hls4ml").origin).parent / "templates"
PROJECT_TCL = """variable project_name
set project_name "net"
variable backend
set backend "vivado"
variable part
set part "xc7z010clg400-1"
variable clock_period
set clock_period 5
variable clock_uncertainty
set clock_uncertainty 12.5%
variable version
set version "1.0.0"
variable maximum_size
set maximum_size 4096
"""


@pytest.fixture
def project_dir(tmp_path):
    """The Tcl of an hls4ml output dir: hls4ml's own build_prj.tcl and vivado_synth.tcl, and a
    project.tcl as hls4ml's writer words it."""
    out = tmp_path / "hls_out"
    out.mkdir()
    (out / "project.tcl").write_text(PROJECT_TCL)
    for name in ("build_prj.tcl", "vivado_synth.tcl"):
        shutil.copy(TEMPLATES / "vivado" / name, out / name)
    return out


def run(exe, cwd, *args, timeout=20, **env):
    environment = {**os.environ, "STANDIN_DELAY": "0", **env}
    return subprocess.run([str(exe), *args], cwd=cwd, env=environment, capture_output=True,
                          text=True, timeout=timeout)


def finished_lines(text):
    return [line for line in text.splitlines() if vivado_reports.parse_finished_line(line)]


def calls(out):
    """(tool, command) of each recorded call, in order."""
    lines = (out / "vivado_hls_standin_calls.log").read_text().splitlines()
    return [(row["tool"], row["command"]) for row in map(json.loads, lines)]


@pytest.mark.parametrize("install, binary, line", [
    ("Vivado/2018.2", "vivado_hls", "Vivado(TM) HLS - High-Level Synthesis from C, C++ and SystemC v2018.2 (64-bit)"),
    ("Vivado/2020.1", "vivado_hls", "Vivado(TM) HLS - High-Level Synthesis from C, C++ and SystemC v2020.1 (64-bit)"),
    ("Vitis_HLS/2024.1", "vitis_hls", "Vitis HLS STAND-IN v2024.1 (64-bit): a test double, not AMD Vitis HLS"),
    ("Vitis_HLS/2024.1", "vitis-run", "Vitis HLS STAND-IN v2024.1 (64-bit): a test double, not AMD Vitis HLS"),
    ("Vivado/2024.1", "vivado", "Vivado STAND-IN v2024.1 (64-bit): a test double, not Xilinx Vivado"),
])
def test_version(standin_xilinx_dir, tmp_path, install, binary, line):
    exe = standin_xilinx_dir / install / "bin" / binary
    result = run(exe, tmp_path, "-version")
    assert result.returncode == 0, result.stderr
    what = {"vivado_hls": "Xilinx Vivado HLS", "vitis_hls": "AMD Vitis HLS", "vitis-run": "AMD vitis-run",
            "vivado": "Xilinx Vivado"}[binary]
    notice = (f"{binary} STAND-IN (test double from tests/standin_xilinx): not {what}; it runs the Tcl script with "
              "recording commands and lays down real reports copied from its fixtures.")
    if binary == "vivado":  # its notice is on stdout: hls4ml's `exec vivado` fails on stderr output
        assert result.stdout.splitlines() == [notice, line]
        assert result.stderr == ""
    else:
        assert result.stderr.splitlines() == [notice]
        assert result.stdout.splitlines() == [line]
    assert list(tmp_path.iterdir()) == []  # -version writes nothing


def test_standin_version_overrides_the_shown_version(standin_vivado_hls, tmp_path):
    faked = run(standin_vivado_hls, tmp_path, "-version", STANDIN_VERSION="2020.1")
    assert "SystemC v2020.1 (64-bit)" in faked.stdout


def test_synth_run(standin_vivado_hls, project_dir, vivado_fixtures_dir):
    result = run(standin_vivado_hls, project_dir, "-f", "build_prj.tcl", HLS4ML_ARGS)
    assert result.returncode == 0, result.stderr
    assert result.stderr == NOTICE + "\n"

    args = (project_dir / "vivado_hls_standin.args").read_text()
    assert args == f"-f build_prj.tcl {HLS4ML_ARGS}\n"

    assert vivado_reports.read_tool_version_from_log(result.stdout) == "2018.2"
    stages = [vivado_reports.parse_finished_line(line)["stage"] for line in finished_lines(result.stdout)]
    assert stages == ["Linking", "Checking Pragmas", "Standard Transforms",
                      "Checking Synthesizability", "Pre-synthesis", "Architecture Synthesis"]
    # The script's own puts are the tool's output too, in order.
    assert result.stdout.index("***** C/RTL SYNTHESIS *****") < result.stdout.index("Finished Linking")
    assert "***** C/RTL SYNTHESIS COMPLETED IN" in result.stdout
    # The logs hold what was printed, under the notice: they say what wrote them.
    assert (project_dir / "vivado_hls.log").read_text() == NOTICE + "\n" + result.stdout
    assert (project_dir / "net_prj/solution1/solution1.log").read_text() == NOTICE + "\n" + result.stdout

    src = vivado_fixtures_dir / "vivado_hls_2018.2"
    reports = project_dir / "net_prj/solution1/syn/report"
    assert (reports / "net_csynth.xml").read_bytes() == (src / "myproject_csynth.xml").read_bytes()
    assert (reports / "net_csynth.rpt").read_bytes() == (src / "myproject_csynth.rpt").read_bytes()
    assert (project_dir / "net_prj/vivado_hls.app").read_bytes() == (
        src / "vivado_hls.app").read_bytes()
    assert not (project_dir / "vivado_synth.rpt").exists()  # vsynth=0

    # hls4ml's script ran, command by command, with project.tcl's values.
    recorded = [json.loads(line) for line in (project_dir / "vivado_hls_standin_calls.log").read_text().splitlines()]
    assert {row["tool"] for row in recorded} == {"vivado_hls"}
    assert [row["command"] for row in recorded] == [
        "open_project", "set_top", "add_files", "add_files", "add_files", "add_files", "open_solution",
        "config_array_partition", "config_compile", "set_part", "config_schedule", "create_clock",
        "set_clock_uncertainty", "csynth_design", "exit"]
    by_name = {row["command"]: row["args"] for row in recorded}
    assert by_name["open_project"] == ["net_prj"] and by_name["set_top"] == ["net"]
    assert by_name["set_part"] == ["xc7z010clg400-1"]
    assert by_name["create_clock"] == ["-period", "5", "-name", "default"]
    assert by_name["set_clock_uncertainty"] == ["12.5%", "default"]
    assert by_name["exit"] == ["0"]

    # What the stand-in leaves is what the report stage reads.
    built = report.build_report(project_dir, "net")
    assert built["latency"]["worst_cycles"] == 21 and built["fits"] is False


def test_the_2020_1_install_copies_its_own_reports(standin_xilinx_dir, project_dir, vivado_fixtures_dir):
    exe = standin_xilinx_dir / "Vivado" / "2020.1" / "bin" / "vivado_hls"
    result = run(exe, project_dir, "-f", "build_prj.tcl", HLS4ML_ARGS.replace("vsynth=0", "vsynth=1"))
    assert result.returncode == 0, result.stderr
    assert vivado_reports.read_tool_version_from_log(result.stdout) == "2020.1"
    src = vivado_fixtures_dir / "vivado_hls_2020.1"
    assert (project_dir / "net_prj/solution1/syn/report/net_csynth.xml").read_bytes() == (
        src / "myproject_csynth.xml").read_bytes()
    assert (project_dir / "vivado_synth.rpt").read_bytes() == (src / "vivado_synth.rpt").read_bytes()


def test_second_run_appends_args_calls_and_solution_log(standin_vivado_hls, project_dir):
    first = run(standin_vivado_hls, project_dir, "-f", "build_prj.tcl", "csim=0 synth=1 cosim=0 validation=0")
    xml = report.csynth_xml_path(project_dir, "net")
    os.utime(xml, ns=(0, 0))
    second = run(standin_vivado_hls, project_dir, "-f", "build_prj.tcl", "csim=1 synth=1 cosim=0 validation=0")
    assert first.returncode == second.returncode == 0, second.stderr
    assert (project_dir / "vivado_hls_standin.args").read_text().splitlines() == [
        "-f build_prj.tcl csim=0 synth=1 cosim=0 validation=0", "-f build_prj.tcl csim=1 synth=1 cosim=0 validation=0"]
    assert (project_dir / "vivado_hls.log").read_text() == NOTICE + "\n" + second.stdout  # fresh per run
    solution_log = (project_dir / "net_prj/solution1/solution1.log").read_text()
    assert solution_log == NOTICE + "\n" + first.stdout + NOTICE + "\n" + second.stdout
    assert xml.stat().st_mtime_ns > 0  # rewritten, as the real tool does: hlsflow tells new reports by mtime
    commands = [command for _, command in calls(project_dir)]
    assert commands.count("exit") == 2 and commands.count("csim_design") == 1
    assert commands.index("csim_design") > commands.index("exit")  # only the second run simulated


def test_vsynth_runs_vivado_on_vivado_synth_tcl(standin_vivado_hls, project_dir, vivado_fixtures_dir):
    result = run(standin_vivado_hls, project_dir, "-f", "build_prj.tcl",
                 HLS4ML_ARGS.replace("vsynth=0", "vsynth=True"))
    assert result.returncode == 0, result.stderr
    assert "***** VIVADO SYNTHESIS COMPLETED IN" in result.stdout
    assert (project_dir / "vivado_synth.rpt").read_bytes() == (
        vivado_fixtures_dir / "vivado_hls_2020.1" / "vivado_synth.rpt").read_bytes()
    assert [c for c in calls(project_dir) if c[0] == "vivado"] == [
        ("vivado", "add_files"), ("vivado", "synth_design"), ("vivado", "opt_design"),
        ("vivado", "report_utilization"), ("vivado", "exit")]
    assert "Vivado STAND-IN" in (project_dir / "vivado.log").read_text()


def test_vsynth_without_csynth_fails_as_hls4ml_says(standin_vivado_hls, project_dir):
    result = run(standin_vivado_hls, project_dir, "-f", "build_prj.tcl", "synth=0 cosim=0 validation=0 vsynth=1")
    assert result.returncode == 1
    assert "ERROR: Cannot find generated Verilog files. Did you run C synthesis?" in result.stdout
    assert not (project_dir / "vivado_synth.rpt").exists()


def test_synth_off_writes_no_csynth_report(standin_vivado_hls, project_dir):
    result = run(standin_vivado_hls, project_dir, "-f", "build_prj.tcl", "csim=1 synth=0 cosim=0 validation=0")
    assert result.returncode == 0, result.stderr
    assert finished_lines(result.stdout) == []
    assert not (project_dir / "net_prj/solution1/syn").exists()
    assert ("vivado_hls", "csim_design") in calls(project_dir)
    assert ("vivado_hls", "csynth_design") not in calls(project_dir)


def test_cosim_is_refused_in_one_line(standin_vivado_hls, project_dir):
    # build_prj.tcl's own defaults (no arguments) include cosim and validation.
    result = run(standin_vivado_hls, project_dir, "-f", "build_prj.tcl")
    assert result.returncode == 1
    errors = [line for line in result.stdout.splitlines() if line.startswith("ERROR:")]
    assert errors == ["ERROR: [STAND-IN] cosim_design is not imitated: the stand-in has no real co-simulation "
                      "output to copy."]
    assert calls(project_dir)[-2:] == [("vivado_hls", "cosim_design"), ("vivado_hls", "exit")]


def test_errors_in_the_script_are_real_tcl_errors(standin_vivado_hls, project_dir):
    script = (project_dir / "build_prj.tcl").read_text()
    (project_dir / "build_prj.tcl").write_text(script.replace("set_top ${project_name}", "set_topp ${project_name}"))
    result = run(standin_vivado_hls, project_dir, "-f", "build_prj.tcl", HLS4ML_ARGS)
    assert result.returncode == 1
    assert 'invalid command name "set_topp"' in result.stderr
    assert "invoked from within" in result.stderr
    assert 'invalid command name "set_topp"' in (project_dir / "vivado_hls.log").read_text()
    assert not (project_dir / "net_prj/solution1").exists()


def test_missing_tcl_script_fails_like_tcl(standin_vivado_hls, tmp_path):
    result = run(standin_vivado_hls, tmp_path, "-f", "build_prj.tcl", "synth=1")
    assert result.returncode == 1
    assert "couldn't read file \"build_prj.tcl\"" in result.stderr
    assert not (tmp_path / "myproject_prj").exists()


def test_mode_fail(standin_vivado_hls, project_dir):
    result = run(standin_vivado_hls, project_dir, "-f", "build_prj.tcl", HLS4ML_ARGS,
                 STANDIN_MODE="fail")
    assert result.returncode == 1
    assert any(line.startswith("ERROR: [HLS") for line in result.stdout.splitlines())
    assert not (project_dir / "net_prj/solution1/syn").exists()
    assert (project_dir / "vivado_hls_standin.args").exists()


def test_mode_noreport(standin_vivado_hls, project_dir):
    result = run(standin_vivado_hls, project_dir, "-f", "build_prj.tcl", HLS4ML_ARGS.replace("vsynth=0", "vsynth=1"),
                 STANDIN_MODE="noreport")
    assert result.returncode == 0, result.stderr
    assert len(finished_lines(result.stdout)) == 6
    assert not report.csynth_xml_path(project_dir, "net").exists()
    assert not (project_dir / "vivado_synth.rpt").exists()


def test_mode_crash(standin_vivado_hls, project_dir):
    result = run(standin_vivado_hls, project_dir, "-f", "build_prj.tcl", HLS4ML_ARGS,
                 STANDIN_MODE="crash")
    assert result.returncode == -signal.SIGSEGV  # a shell shows it as 139
    assert len(finished_lines(result.stdout)) == 3
    assert not report.csynth_xml_path(project_dir, "net").exists()
    assert not list(project_dir.glob("core*"))


def test_unknown_mode_is_refused(standin_vivado_hls, project_dir):
    result = run(standin_vivado_hls, project_dir, "-f", "build_prj.tcl", STANDIN_MODE="slow")
    assert result.returncode == 2
    assert "STANDIN_MODE" in result.stderr


def test_unsupported_invocation_is_refused(standin_xilinx_dir, tmp_path):
    result = run(standin_xilinx_dir / "Vitis_HLS" / "2024.1" / "bin" / "vitis-run", tmp_path, "--mode", "ip")
    assert result.returncode == 2
    assert "ERROR: the stand-in only supports 'vitis-run --version' and 'vitis-run --mode hls --tcl" in result.stderr


def _start(exe, cwd, **env):
    return subprocess.Popen([str(exe), "-f", "build_prj.tcl", HLS4ML_ARGS], cwd=cwd,
                            env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, start_new_session=True)


def test_mode_hang_is_killable_by_process_group(standin_vivado_hls, project_dir):
    proc = _start(standin_vivado_hls, project_dir, STANDIN_MODE="hang")
    try:
        child = standin_hang.wait_hanging(project_dir)
        assert proc.poll() is None
        # The marked child is the stand-in's own, in its process group: killing the group ends both,
        # killing the stand-in alone leaves the child (what the flow's cancellation tests catch).
        assert standin_hang.descendants(proc.pid) == [child]
        assert os.getpgid(child) == proc.pid
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=30) == -signal.SIGTERM
    standin_hang.wait_none_left(project_dir)
    out = proc.stdout.read()
    assert "Version: 2018.2" in out and "***** C/RTL SYNTHESIS *****" in out
    assert f"child {child} (standin-hang {project_dir.resolve()}) waits with it." in out
    proc.stdout.close()


def test_mode_hang_leaves_its_child_when_only_the_stand_in_is_killed(standin_vivado_hls, project_dir):
    """What the cancellation tests rely on: a stop that misses the group leaves a marked child."""
    proc = _start(standin_vivado_hls, project_dir, STANDIN_MODE="hang")
    try:
        child = standin_hang.wait_hanging(project_dir)
        proc.kill()
        proc.wait(timeout=30)
        assert standin_hang.marked(project_dir) == [child]
    finally:
        with contextlib.suppress(ProcessLookupError):  # the group is gone if the child never joined it
            os.killpg(proc.pid, signal.SIGKILL)
        proc.stdout.close()
    standin_hang.wait_none_left(project_dir)


def test_progress_is_streamed_line_by_line(standin_vivado_hls, project_dir):
    """With an hour between progress lines, the first one arrives while the stand-in still runs
    (waits for the next): lines are printed as they come, not all at the end."""
    proc = _start(standin_vivado_hls, project_dir, STANDIN_DELAY="3600")
    out = b""

    def progress():
        nonlocal out
        if select.select([proc.stdout], [], [], 0.2)[0]:
            out += os.read(proc.stdout.fileno(), 65536)  # the raw pipe: no reader's buffer in between
        return finished_lines(out.decode(errors="replace"))

    try:
        lines = wait_for(progress, 60, "the stand-in's first progress line", every=0)
        assert proc.poll() is None
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        proc.stdout.close()
    assert [vivado_reports.parse_finished_line(line)["stage"] for line in lines] == ["Linking"]


@pytest.mark.parametrize("install, home_var, binary", [
    ("Vivado/2018.2", "XILINX_VIVADO", "vivado_hls"),
    ("Vivado/2020.1", "XILINX_VIVADO", "vivado_hls"),
    ("Vitis_HLS/2024.1", "XILINX_HLS", "vitis-run"),
    ("Vivado/2024.1", "XILINX_VIVADO", "vivado"),
])
def test_settings64_puts_the_standin_on_path(standin_xilinx_dir, tmp_path, install, home_var, binary):
    settings = standin_xilinx_dir / install / "settings64.sh"
    assert "test double" in settings.read_text().splitlines()[0].lower()
    result = subprocess.run(
        ["bash", "-c", f'source "{settings}" && echo "${home_var}" && command -v {binary}'],
        cwd=tmp_path, capture_output=True, text=True, timeout=10,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    home, exe = result.stdout.splitlines()
    assert home == str(settings.parent)
    assert exe == str(settings.parent / "bin" / binary)


def test_works_from_a_read_only_tree(standin_xilinx_dir, vivado_fixtures_dir, project_dir,
                                     tmp_path):
    # A copy of the self-contained tree (standin.tcl and its real reports in standin_xilinx/fixtures).
    tree = tmp_path / "ro" / "tests"
    shutil.copytree(standin_xilinx_dir, tree / "standin_xilinx")
    paths = sorted(tree.rglob("*"))
    for path in paths:
        mode = path.stat().st_mode
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    tree.chmod(tree.stat().st_mode & ~stat.S_IWUSR)
    before = {p: p.stat().st_mtime_ns for p in paths}
    try:
        exe = tree / "standin_xilinx" / "Vivado" / "2018.2" / "bin" / "vivado_hls"
        result = run(exe, project_dir, "-f", "build_prj.tcl", HLS4ML_ARGS.replace("vsynth=0", "vsynth=1"))
        assert result.returncode == 0, result.stderr
        assert report.csynth_xml_path(project_dir, "net").is_file()
        assert (project_dir / "vivado_synth.rpt").is_file()
        # Even as root (who may write anyway) nothing in the tree was added or changed.
        assert sorted(tree.rglob("*")) == paths
        assert {p: p.stat().st_mtime_ns for p in paths} == before
    finally:
        for path in [tree, *paths]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
