"""Which install a backend runs, with which command line, and which pairs are refused
(hlsflow/toolchain/xilinx.py), on throwaway install trees (tests/toolchain/installs.py)."""

import subprocess

import pytest
from installs import make_install, xilinx_env

from hlsflow.errors import FlowError
from hlsflow.toolchain import xilinx

FLAGS = {"csim": False, "export": True, "vsynth": False}


@pytest.fixture
def tree(tmp_path, monkeypatch):
    root = tmp_path / "Xilinx"
    xilinx_env(monkeypatch, root)
    return root


def test_installs_are_found_by_version_and_the_reference_comes_first(tree):
    make_install(tree, "Vivado", "2020.1")
    make_install(tree, "Vivado", "2018.2")
    make_install(tree, "Vitis_HLS", "2024.1", ("vitis_hls", "vitis-run"))
    make_install(tree, "Vivado", "2024.1", ())  # Vivado alone, no HLS: not an install of ours
    found = [(i.tool, i.folder_version) for i in xilinx.discover()]
    assert found == [("Vivado HLS", "2018.2"), ("Vivado HLS", "2020.1"), ("Vitis HLS", "2024.1")]
    assert xilinx.select("Vivado").folder_version == "2018.2"
    assert xilinx.select("Vitis").folder_version == "2024.1"
    assert xilinx.select("Vivado", "2020.1").folder_version == "2020.1"
    assert xilinx.tool_version(xilinx.select("Vivado", "2020.1")) == "2020.1"


def test_a_version_not_mounted_is_named(tree):
    make_install(tree, "Vivado", "2018.2")
    with pytest.raises(FlowError, match=r"No HLS 2019\.2 under .*found: Vivado HLS 2018\.2"):
        xilinx.select("Vivado", "2019.2")


def test_backend_vivado_on_vitis_only_is_refused_in_one_sentence(tree):
    make_install(tree, "Vitis_HLS", "2024.1", ("vitis_hls", "vitis-run"))
    with pytest.raises(FlowError) as err:
        xilinx.select("Vivado")
    text = str(err.value)
    assert "vivado_hls" in text and "Vitis HLS 2024.1" in text and "Backend: Vitis" in text
    assert text.count(". ") == 0 and text.endswith(".")


def test_backend_vitis_on_a_vivado_hls_install_is_refused(tree):
    make_install(tree, "Vivado", "2018.2")
    with pytest.raises(FlowError, match=r"Backend Vitis needs Vitis HLS 2020\.2 or later.*Vivado HLS 2018\.2"):
        xilinx.select("Vitis")


@pytest.mark.parametrize("kind, version, binaries, backend, level", [
    ("Vivado", "2018.2", ("vivado_hls",), "Vivado", "reference"),
    ("Vivado", "2019.2", ("vivado_hls",), "Vivado", "supported"),
    ("Vivado", "2020.1", ("vivado_hls",), "Vivado", "supported"),
    ("Vivado", "2017.4", ("vivado_hls",), "Vivado", "untested"),
    ("Vitis_HLS", "2020.1", ("vitis_hls",), "Vitis", "unsupported"),
    ("Vitis_HLS", "2020.2", ("vitis_hls",), "Vitis", "supported"),
    ("Vitis_HLS", "2022.2", ("vitis_hls",), "Vitis", "supported"),
    ("Vitis_HLS", "2023.1", ("vitis_hls",), "Vitis", "unsupported"),  # no vitis-run anywhere
    ("Vitis_HLS", "2023.1", ("vitis_hls", "vitis-run"), "Vitis", "supported"),
    ("Vitis_HLS", "2025.1", ("vitis_hls", "vitis-run"), "Vitis", "untested"),
    ("Vitis_HLS", "2024.1", ("vitis_hls", "vitis-run"), "Vivado", "unsupported"),
])
def test_support_levels(tree, kind, version, binaries, backend, level):
    install = xilinx.Install(make_install(tree, kind, version, binaries) / "bin" / binaries[0])
    assert xilinx.support(backend, install, version)[0] == level


def test_versal_needs_vitis(tree):
    vivado = xilinx.Install(make_install(tree, "Vivado", "2020.1") / "bin" / "vivado_hls")
    level, sentence = xilinx.support("Vivado", vivado, "2020.1", "versal")
    assert level == "unsupported" and "Versal parts need Vitis HLS" in sentence


def test_command_lines_per_version(tree):
    vivado = xilinx.Install(make_install(tree, "Vivado", "2018.2") / "bin" / "vivado_hls")
    shown, argv, opt = xilinx.command(vivado, "2018.2", FLAGS)
    assert shown == ["vivado_hls", "-f", "build_prj.tcl",
                     "reset=0 csim=0 synth=1 cosim=0 validation=0 export=1 vsynth=0 fifo_opt=0"]
    assert argv[0] == vivado.binary and opt is None

    old = xilinx.Install(make_install(tree, "Vitis_HLS", "2022.2", ("vitis_hls",)) / "bin" / "vitis_hls")
    shown, argv, opt = xilinx.command(old, "2022.2", FLAGS)
    assert shown == ["vitis_hls", "-f", "build_prj.tcl"] and "cosim      0" in opt

    new_root = make_install(tree, "Vitis_HLS", "2024.1", ("vitis_hls", "vitis-run"))
    new = xilinx.Install(new_root / "bin" / "vitis_hls")
    shown, argv, opt = xilinx.command(new, "2024.1", FLAGS)
    assert shown == ["vitis-run", "--tcl", "build_prj.tcl", "--mode", "hls"]
    assert argv[0] == new_root / "bin" / "vitis-run"


def test_vitis_run_of_the_vitis_install_beside_vitis_hls(tree):
    hls = make_install(tree, "Vitis_HLS", "2023.2", ("vitis_hls",))
    make_install(tree, "Vitis", "2023.2", ("vitis-run",))
    assert xilinx.Install(hls / "bin" / "vitis_hls").vitis_run() == tree / "Vitis" / "2023.2" / "bin" / "vitis-run"


def test_build_opt_is_read_by_a_real_tcl_interpreter():
    script = xilinx.build_opt_tcl({"csim": True, "vsynth": True}) + 'puts "$opt(csim) $opt(cosim) $opt(vsynth) $opt(synth)"\n'
    out = subprocess.run(["tclsh"], input=script, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["1", "0", "1", "1"]


def test_y2k22_range_and_patch_file(tree):
    folder = make_install(tree, "Vivado", "2019.1")
    install = xilinx.Install(folder / "bin" / "vivado_hls")
    assert xilinx.y2k22_needed("2019.1") and xilinx.y2k22_needed("2021.2")
    assert not xilinx.y2k22_needed("2022.1") and not xilinx.y2k22_needed("2024.1")
    assert "AR 76960" in xilinx.y2k22_problem(install, "2019.1")
    (folder / xilinx.Y2K22_PATCH_FILE).parent.mkdir(parents=True)
    (folder / xilinx.Y2K22_PATCH_FILE).write_text("# patch\n")
    assert xilinx.y2k22_problem(install, "2019.1") is None
