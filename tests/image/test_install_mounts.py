"""What the host mounts for a named Xilinx install (issue 38), from launcher.mount_plan and
container_settings, before any container starts: --vivado DIR mounts the Xilinx tree the install
sits in (an install reaches beside itself: the stand-in's Tcl, Vitis HLS's Vivado/ and Vitis/), and
XILINX_ROOT is handed in when the user set it (a missing one is then named inside, in one sentence)."""

from pathlib import Path

from invoke.parser import Parser

from hlsflow.cli import launcher, program as cli
from hlsflow.cli.tasks import namespace

STANDIN = Path(__file__).resolve().parents[1] / "standin_xilinx"


def parse(*argv):
    contexts = list(Parser(contexts=namespace.to_contexts()).parse_argv(list(argv)))
    cli._share_flags(contexts)
    return contexts


def test_vivado_dir_mounts_the_tree_it_sits_in(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("XILINX_ROOT", raising=False)
    for given in (STANDIN / "Vivado" / "2018.2", STANDIN / "Vivado" / "2018.2" / "bin" / "vivado_hls"):
        argv, mounts = launcher.mount_plan(namespace, parse("doctor", "--vivado", str(given)))
        assert mounts.modes == {str(STANDIN): "ro"}, given
        assert argv[argv.index("--vivado") + 1] == str(given)
    # A folder not laid out as Xilinx lays installs out is mounted as it is.
    own = tmp_path / "my_hls"
    own.mkdir()
    _, mounts = launcher.mount_plan(namespace, parse("doctor", "--vivado", str(own)))
    assert mounts.modes == {str(own): "ro"}


def test_xilinx_root_is_handed_in_when_set_even_if_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("HLSFLOW_SIGNING_KEY", str(tmp_path / "key"))
    missing = tmp_path / "nowhere"
    monkeypatch.setenv("XILINX_ROOT", str(missing))
    mounts = launcher.Mounts()
    settings = launcher.container_settings(mounts)
    assert settings["env"]["XILINX_ROOT"] == str(missing) and str(missing) not in mounts.modes
    monkeypatch.delenv("XILINX_ROOT")
    settings = launcher.container_settings(launcher.Mounts())
    assert ("XILINX_ROOT" in settings["env"]) == Path("/opt/Xilinx").is_dir()


def test_an_install_in_the_home_folder_mounts_its_tool_folders_not_the_home(tmp_path, monkeypatch):
    """~/Vivado/2018.2 is laid out as Xilinx lays installs out, in a tree that is the home folder:
    only the tool folders go into the container, never the whole home."""
    home = tmp_path / "home"
    install = home / "Vivado" / "2018.2"
    (install / "bin").mkdir(parents=True)
    (home / "Vitis_HLS").mkdir()
    (home / "thesis").mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("XILINX_ROOT", raising=False)
    _, mounts = launcher.mount_plan(namespace, parse("doctor", "--vivado", str(install)))
    assert mounts.modes == {str(home / "Vitis_HLS"): "ro", str(home / "Vivado"): "ro"}
