"""`hlsflow doctor` on throwaway install trees (tests/toolchain/installs.py): a real ELF that
lost its library, a licence server on a closed port, a missing Y2K22 patch, an unsupported
version; the CLI's table, verdict and exit status."""

import os
import socket
import subprocess
import sys

import pytest
from installs import make_install, xilinx_env

from conftest import REPO_ROOT
from hlsflow.toolchain import doctor, xilinx


@pytest.fixture
def tree(tmp_path, monkeypatch):
    root = tmp_path / "Xilinx"
    xilinx_env(monkeypatch, root)
    return root


def _elf_needing_a_library(folder, tmp_path, keep_library_in=None):
    """bin/unwrapped/lnx64.o/vivado_hls: a real ELF linked against libhlsflowgone.so, which is
    then deleted (or moved into the install's lib/, where its loader would find it)."""
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "gone.cpp").write_text("int gone() { return 7; }\n")
    (src / "main.cpp").write_text("int gone();\nint main() { return gone() == 7 ? 0 : 1; }\n")
    subprocess.run(["g++", "-shared", "-fPIC", "-o", src / "libhlsflowgone.so", src / "gone.cpp"], check=True)
    unwrapped = folder / "bin" / "unwrapped" / "lnx64.o"
    unwrapped.mkdir(parents=True)
    subprocess.run(["g++", "-o", unwrapped / "vivado_hls", src / "main.cpp", f"-L{src}", "-lhlsflowgone"], check=True)
    if keep_library_in:
        keep_library_in.mkdir(parents=True)
        (src / "libhlsflowgone.so").rename(keep_library_in / "libhlsflowgone.so")
    else:
        (src / "libhlsflowgone.so").unlink()


def test_a_missing_library_is_named(tree, tmp_path):
    folder = make_install(tree, "Vivado", "2018.2")
    _elf_needing_a_library(folder, tmp_path)
    check = doctor.check_libraries(xilinx.Install(folder / "bin" / "vivado_hls"))
    assert check.status == doctor.FAIL
    assert "vivado_hls needs libhlsflowgone.so" in check.detail


def test_a_library_the_install_brings_is_not_missing(tree, tmp_path):
    folder = make_install(tree, "Vivado", "2018.2")
    _elf_needing_a_library(folder, tmp_path, keep_library_in=folder / "lib" / "lnx64.o")
    assert doctor.check_libraries(xilinx.Install(folder / "bin" / "vivado_hls")).status == doctor.OK


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_licence_server_is_named(monkeypatch):
    port = _closed_port()
    monkeypatch.setenv("XILINXD_LICENSE_FILE", f"{port}@127.0.0.1")
    monkeypatch.delenv("LM_LICENSE_FILE", raising=False)
    check = doctor.check_licence()
    assert check.status == doctor.FAIL
    assert f"server {port}@127.0.0.1 does not answer within 3 s" in check.detail


def test_a_licence_server_that_answers_and_a_missing_file(monkeypatch, tmp_path):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        monkeypatch.setenv("XILINXD_LICENSE_FILE", f"{port}@127.0.0.1")
        monkeypatch.delenv("LM_LICENSE_FILE", raising=False)
        assert doctor.check_licence().status == doctor.OK
        monkeypatch.setenv("LM_LICENSE_FILE", str(tmp_path / "none.lic"))
        check = doctor.check_licence()
    assert check.status == doctor.FAIL and "none.lic does not exist" in check.detail


def test_y2k22_blocks_only_an_export(tree):
    folder = make_install(tree, "Vivado", "2018.2")
    install = xilinx.Install(folder / "bin" / "vivado_hls")
    assert doctor.check_y2k22(install, "2018.2", export=False).status == doctor.WARN
    failed = doctor.check_y2k22(install, "2018.2", export=True)
    assert failed.status == doctor.FAIL and "AR 76960" in failed.detail
    assert doctor.check_y2k22(install, "2024.1", export=True).status == doctor.NA


def test_a_locale_the_system_lacks(monkeypatch):
    monkeypatch.setenv("LC_ALL", "xx_XX.NOPE")
    assert doctor.check_locale().status == doctor.FAIL


def test_memory_and_disk_against_the_estimate(tmp_path):
    assert doctor.estimated_need(1000) == {"memory_mb": 2048 + 2000, "disk_mb": 1024 + 1000}
    assert doctor.check_disk(tmp_path / "not" / "yet", None).status == doctor.OK
    assert doctor.check_memory(10**9).status == doctor.FAIL  # ~2 PB for a billion multipliers


def _doctor(cwd, *args, env_extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XILINX", "VIVADO"))}
    env.update(env_extra or {}, PYTHONPATH=str(REPO_ROOT))  # this checkout's hlsflow, not the image's copy
    return subprocess.run([sys.executable, "-m", "hlsflow", "doctor", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_ready_install(tree, tmp_path):
    make_install(tree, "Vivado", "2018.2")
    proc = _doctor(tmp_path, env_extra={"XILINX_ROOT": str(tree)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "| installs found" in proc.stdout and "Vivado HLS 2018.2" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1].startswith("VERDICT: ready for synthesis with Vivado HLS")


def test_cli_unsupported_version_exits_1(tree, tmp_path):
    make_install(tree, "Vitis_HLS", "2020.1", ("vitis_hls",))
    proc = _doctor(tmp_path, "--backend", "Vitis", env_extra={"XILINX_ROOT": str(tree)})
    assert proc.returncode == 1
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("VERDICT: synthesis with Vitis HLS") and "Backend Vitis" in last
    assert "unsupported: Vitis HLS 2020.1" in proc.stdout


def test_cli_backend_vivado_with_only_vitis(tree, tmp_path):
    make_install(tree, "Vitis_HLS", "2024.1", ("vitis_hls", "vitis-run"))
    proc = _doctor(tmp_path, env_extra={"XILINX_ROOT": str(tree)})
    assert proc.returncode == 1
    assert "VERDICT: synthesis with Backend Vivado cannot run: Backend Vivado runs vivado_hls" in proc.stdout


def test_cli_export_without_y2k22_patch_and_dead_licence(tree, tmp_path):
    make_install(tree, "Vivado", "2020.1")
    proc = _doctor(tmp_path, "--vivado", "2020.1", "--export",
                   env_extra={"XILINX_ROOT": str(tree), "XILINXD_LICENSE_FILE": f"{_closed_port()}@127.0.0.1"})
    assert proc.returncode == 1
    assert "fix Y2K22 patch, licence first." in proc.stdout.strip().splitlines()[-1]


def test_cli_nothing_mounted(tmp_path):
    proc = _doctor(tmp_path)  # no XILINX_ROOT, and nothing at its default /opt/Xilinx
    assert proc.returncode == 0
    assert "VERDICT: no HLS install found: synthesis will be skipped." in proc.stdout


def test_cli_a_named_xilinx_root_that_is_not_there_is_an_error(tmp_path):
    proc = _doctor(tmp_path, env_extra={"XILINX_ROOT": str(tmp_path / "none")})
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.strip().splitlines()[-1].startswith(f"ERROR: XILINX_ROOT is {tmp_path / 'none'}, which is not")
