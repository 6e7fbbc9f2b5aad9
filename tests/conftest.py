"""Shared fixtures: the real Vivado outputs in tests/fixtures and the Vivado stand-in."""

import shutil
import sys
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
# Import hlsflow from this checkout, installed or not.
if str(TESTS_DIR.parent) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR.parent))


@pytest.fixture
def vivado_fixtures_dir() -> Path:
    """tests/fixtures: real Vivado HLS output (read-only data, see its README)."""
    return TESTS_DIR / "fixtures"


@pytest.fixture
def standin_xilinx_dir() -> Path:
    """tests/standin_xilinx: the fake Xilinx install tree (a test double)."""
    return TESTS_DIR / "standin_xilinx"


@pytest.fixture
def standin_vivado_hls(standin_xilinx_dir) -> Path:
    """The stand-in vivado_hls executable."""
    return standin_xilinx_dir / "Vivado" / "2018.2" / "bin" / "vivado_hls"


@pytest.fixture
def hls_output_from_fixtures(tmp_path, vivado_fixtures_dir):
    """Factory: make_output(version="2018.2", project="myproject", vsynth=False) -> an
    hls4ml output dir under tmp_path holding that fixture set's real reports where
    Vivado HLS writes them (vsynth=True adds vivado_synth.rpt, which only 2020.1 has)."""

    def make_output(version="2018.2", project="myproject", vsynth=False) -> Path:
        src = vivado_fixtures_dir / f"vivado_hls_{version}"
        out = tmp_path / f"out_{version}_{project}"
        solution = out / f"{project}_prj" / "solution1"
        (solution / "syn" / "report").mkdir(parents=True)
        shutil.copy(src / "vivado_hls.app", out / f"{project}_prj" / "vivado_hls.app")
        for ext in ("xml", "rpt"):
            shutil.copy(src / f"myproject_csynth.{ext}",
                        solution / "syn" / "report" / f"{project}_csynth.{ext}")
        if (src / "solution1.log").exists():
            shutil.copy(src / "solution1.log", solution / "solution1.log")
        if vsynth:
            shutil.copy(src / "vivado_synth.rpt", out / "vivado_synth.rpt")
        return out

    return make_output
