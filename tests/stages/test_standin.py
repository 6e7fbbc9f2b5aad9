"""The Vivado HLS stand-in (tests/standin_xilinx) behaves as its README says."""

import os
import shutil
import signal
import stat
import subprocess
import time

import pytest

from hlsflow import vivado_reports
from hlsflow.stages import report

NOTICE = ("vivado_hls STAND-IN (test double from tests/standin_xilinx): not Xilinx Vivado HLS; "
          "it records its arguments and copies real 2018.2 reports.")
HLS4ML_ARGS = "reset=0 csim=0 synth=1 cosim=0 validation=0 export=0 vsynth=0 fifo_opt=0"


@pytest.fixture
def project_dir(tmp_path):
    """A directory shaped like an hls4ml output dir, as far as the stand-in looks."""
    out = tmp_path / "hls_out"
    out.mkdir()
    (out / "project.tcl").write_text('variable project_name\nset project_name "net"\n'
                                     'variable part\nset part "xc7z010clg400-1"\n')
    (out / "build_prj.tcl").write_text("# hls4ml's build script would be here\n")
    return out


def run(exe, cwd, *args, timeout=10, **env):
    environment = {**os.environ, "STANDIN_DELAY": "0", **env}
    return subprocess.run([str(exe), *args], cwd=cwd, env=environment, capture_output=True,
                          text=True, timeout=timeout)


def finished_lines(text):
    return [line for line in text.splitlines() if vivado_reports.parse_finished_line(line)]


def test_version(standin_vivado_hls, tmp_path):
    result = run(standin_vivado_hls, tmp_path, "-version")
    assert result.returncode == 0
    assert result.stderr.splitlines()[0] == NOTICE
    assert result.stdout.splitlines()[0] == (
        "Vivado(TM) HLS - High-Level Synthesis from C, C++ and SystemC v2018.2 (64-bit)")
    faked = run(standin_vivado_hls, tmp_path, "-version", STANDIN_VERSION="2020.1")
    assert "SystemC v2020.1 (64-bit)" in faked.stdout
    assert list(tmp_path.iterdir()) == []  # -version writes nothing


def test_synth_run(standin_vivado_hls, project_dir, vivado_fixtures_dir):
    result = run(standin_vivado_hls, project_dir, "-f", "build_prj.tcl", HLS4ML_ARGS)
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith(NOTICE)

    args = (project_dir / "vivado_hls_standin.args").read_text()
    assert args == f"-f build_prj.tcl {HLS4ML_ARGS}\n"

    assert vivado_reports.read_tool_version_from_log(result.stdout) == "2018.2"
    stages = [vivado_reports.parse_finished_line(line)["stage"] for line in finished_lines(result.stdout)]
    assert stages == ["Linking", "Checking Pragmas", "Standard Transforms",
                      "Checking Synthesizability", "Pre-synthesis", "Architecture Synthesis"]
    assert (project_dir / "vivado_hls.log").read_text() == result.stdout
    assert (project_dir / "net_prj/solution1/solution1.log").read_text() == result.stdout

    src = vivado_fixtures_dir / "vivado_hls_2018.2"
    reports = project_dir / "net_prj/solution1/syn/report"
    assert (reports / "net_csynth.xml").read_bytes() == (src / "myproject_csynth.xml").read_bytes()
    assert (reports / "net_csynth.rpt").read_bytes() == (src / "myproject_csynth.rpt").read_bytes()
    assert (project_dir / "net_prj/vivado_hls.app").read_bytes() == (
        src / "vivado_hls.app").read_bytes()
    assert not (project_dir / "vivado_synth.rpt").exists()  # vsynth=0

    # What the stand-in leaves is what the report stage reads.
    built = report.build_report(project_dir, "net")
    assert built["latency"]["worst_cycles"] == 21 and built["fits"] is False


def test_second_run_appends_args_and_solution_log(standin_vivado_hls, project_dir):
    first = run(standin_vivado_hls, project_dir, "-f", "build_prj.tcl", "synth=1")
    second = run(standin_vivado_hls, project_dir, "-f", "build_prj.tcl", "synth=1 vsynth=1")
    assert first.returncode == second.returncode == 0
    assert (project_dir / "vivado_hls_standin.args").read_text().splitlines() == [
        "-f build_prj.tcl synth=1", "-f build_prj.tcl synth=1 vsynth=1"]
    assert (project_dir / "vivado_hls.log").read_text() == second.stdout  # fresh per run
    solution_log = (project_dir / "net_prj/solution1/solution1.log").read_text()
    assert solution_log == first.stdout + second.stdout


def test_vsynth_copies_the_utilisation_report(standin_vivado_hls, project_dir,
                                              vivado_fixtures_dir):
    result = run(standin_vivado_hls, project_dir, "-f", "build_prj.tcl",
                 HLS4ML_ARGS.replace("vsynth=0", "vsynth=True"))
    assert result.returncode == 0
    assert (project_dir / "vivado_synth.rpt").read_bytes() == (
        vivado_fixtures_dir / "vivado_hls_2020.1" / "vivado_synth.rpt").read_bytes()


def test_synth_off_writes_no_csynth_report(standin_vivado_hls, project_dir):
    result = run(standin_vivado_hls, project_dir, "-f", "build_prj.tcl", "csim=1 synth=0")
    assert result.returncode == 0
    assert finished_lines(result.stdout) == []
    assert not (project_dir / "net_prj/solution1/syn").exists()


def test_project_name_defaults_to_myproject(standin_vivado_hls, project_dir):
    (project_dir / "project.tcl").unlink()
    assert run(standin_vivado_hls, project_dir, "-f", "build_prj.tcl").returncode == 0
    assert report.csynth_xml_path(project_dir, "myproject").is_file()


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
    result = run(standin_vivado_hls, project_dir, "-f", "build_prj.tcl", HLS4ML_ARGS,
                 STANDIN_MODE="noreport")
    assert result.returncode == 0
    assert len(finished_lines(result.stdout)) == 6
    assert not report.csynth_xml_path(project_dir, "net").exists()


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


def _start(exe, cwd, **env):
    return subprocess.Popen([str(exe), "-f", "build_prj.tcl", HLS4ML_ARGS], cwd=cwd,
                            env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, start_new_session=True)


def test_mode_hang_is_killable_by_process_group(standin_vivado_hls, project_dir):
    proc = _start(standin_vivado_hls, project_dir, STANDIN_MODE="hang")
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=0.5)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=5) == -signal.SIGTERM
    assert "Version: 2018.2" in proc.stdout.read()
    proc.stdout.close()


def test_progress_is_streamed_line_by_line(standin_vivado_hls, project_dir):
    proc = _start(standin_vivado_hls, project_dir, STANDIN_DELAY="0.1")
    arrivals = []
    try:
        for line in proc.stdout:
            if vivado_reports.parse_finished_line(line):
                arrivals.append(time.monotonic())
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=5)
        proc.stdout.close()
    assert len(arrivals) == 6
    # Five 0.1 s pauses between six lines: they arrive spread out, not all at the end.
    assert arrivals[-1] - arrivals[0] >= 0.45


def test_settings64_puts_the_standin_on_path(standin_xilinx_dir, tmp_path):
    settings = standin_xilinx_dir / "Vivado" / "2018.2" / "settings64.sh"
    assert "test double" in settings.read_text().splitlines()[0].lower()
    result = subprocess.run(
        ["bash", "-c", f'source "{settings}" && echo "$XILINX_VIVADO" && command -v vivado_hls'],
        cwd=tmp_path, capture_output=True, text=True, timeout=10,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    home, exe = result.stdout.splitlines()
    assert home == str(settings.parent)
    assert exe == str(settings.parent / "bin" / "vivado_hls")


def test_works_from_a_read_only_tree(standin_xilinx_dir, vivado_fixtures_dir, project_dir,
                                     tmp_path):
    # A copy of the self-contained tree (its real reports in standin_xilinx/fixtures).
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
        result = run(exe, project_dir, "-f", "build_prj.tcl", HLS4ML_ARGS)
        assert result.returncode == 0, result.stderr
        assert report.csynth_xml_path(project_dir, "net").is_file()
        # Even as root (who may write anyway) nothing in the tree was added or changed.
        assert sorted(tree.rglob("*")) == paths
        assert {p: p.stat().st_mtime_ns for p in paths} == before
    finally:
        for path in [tree, *paths]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
