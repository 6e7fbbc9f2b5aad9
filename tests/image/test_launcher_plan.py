"""What the host hands to the container: the argv and the mounts launcher.mount_plan makes from a parsed
invocation (the real task collection and invoke's own parser), before any container starts."""

import shutil
from pathlib import Path

import pytest
from invoke.parser import Parser

from hlsflow.cli import program as cli, launcher
from hlsflow.errors import FlowError
from hlsflow.cli.tasks import namespace

DATA = Path(__file__).resolve().parents[1] / "data"


def parse(*argv):
    contexts = list(Parser(contexts=namespace.to_contexts()).parse_argv(list(argv)))
    cli._share_flags(contexts)
    return contexts


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "models").mkdir()
    for name in ("tiny_cnn.keras", "tiny_samples.npz"):
        shutil.copy(DATA / name, tmp_path / "models" / name)
    (tmp_path / "models" / "hls4ml_config.yml").write_text(
        "KerasModel: tiny_cnn.keras\nOutputDir: ../build/tiny\nFlow:\n  emulation: {samples: tiny_samples.npz}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HLSFLOW_CONFIG", raising=False)
    for var in ("XILINXD_LICENSE_FILE", "LM_LICENSE_FILE"):  # no licence server to forward from this machine
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def test_inputs_read_only_output_parent_read_write(project):
    argv, mounts = launcher.mount_plan(namespace, parse("convert", "csim", "--config", "models/hls4ml_config.yml"))
    config = project / "models" / "hls4ml_config.yml"
    assert mounts.modes == {
        str(config): "ro",
        str(project / "models" / "tiny_cnn.keras"): "ro",
        str(project / "models" / "tiny_samples.npz"): "ro",
        str(project / "build"): "rw",  # the output's parent: the project is staged beside it
    }
    assert (project / "build").is_dir() and not (project / "build" / "tiny").exists()
    # Paths reach the container absolute; the shared --config applies to both tasks.
    assert argv[:5] == ["convert", "--config", str(config), "--model", str(project / "models" / "tiny_cnn.keras")]
    assert argv[argv.index("csim") + 1:argv.index("csim") + 3] == ["--config", str(config)]


def test_config_found_in_the_working_directory_is_passed_on(project, monkeypatch):
    monkeypatch.chdir(project / "models")
    argv, _ = launcher.mount_plan(namespace, parse("convert"))
    assert argv[1:3] == ["--config", str(project / "models" / "hls4ml_config.yml")]


def test_init_writes_beside_the_model(project):
    argv, mounts = launcher.mount_plan(namespace, parse("init", "--model", "models/tiny_cnn.keras"))
    assert mounts.modes == {str(project / "models" / "tiny_cnn.keras"): "ro", str(project / "models"): "rw"}
    assert "--config" in argv and argv[argv.index("--config") + 1] == str(project / "models" / "hls4ml_config.yml")


@pytest.mark.parametrize("argv, sentence", [
    (["convert", "--model", "/data/models/my.keras"],
     "Model file /data/models/my.keras does not exist: give the path of a .keras, .h5 or .json model with --model."),
    (["convert", "--config", "nope.yml"], "Config file {p}/nope.yml not found: pass --config with a YAML file"),
    (["csim", "--config", "models/hls4ml_config.yml", "--samples", "x.npz"], "Sample file {p}/x.npz not found"),
    (["synth", "--config", "models/hls4ml_config.yml", "--vivado", "/no/Vivado"], "No vivado_hls at /no/Vivado"),
    (["convert", "--model", "models/tiny_cnn.keras", "--out", "/prj"], "The output directory /prj would sit directly"),
    (["convert"], "No config given and no hls4ml_config.yml in {p}: run `hlsflow init"),
])
def test_missing_paths_are_named_on_the_host(project, argv, sentence):
    with pytest.raises(FlowError) as raised:
        launcher.mount_plan(namespace, parse(*argv))
    assert str(raised.value).startswith(sentence.format(p=project))
    assert not (project / "build").exists(), "nothing is created before every input is checked"


def test_host_tasks_cannot_follow_image_tasks(project):
    with pytest.raises(FlowError, match="`save-image` runs on the host"):
        launcher.mount_plan(namespace, parse("convert", "--config", "models/hls4ml_config.yml", "save-image"))


def test_licence_files_are_checked_on_the_host(project, monkeypatch):
    monkeypatch.setenv("XILINXD_LICENSE_FILE", f"2100@licence-server:{project}/missing.lic")
    with pytest.raises(FlowError) as raised:
        launcher.mount_plan(namespace, parse("convert", "--config", "models/hls4ml_config.yml"))
    assert str(raised.value) == (f"XILINXD_LICENSE_FILE names {project}/missing.lic, which does not exist on this "
                                 "machine: give the licence file or folder, or port@server for a licence server.")
    (project / "missing.lic").write_text("")
    launcher.mount_plan(namespace, parse("convert", "--config", "models/hls4ml_config.yml"))


def test_sweep_mounts_its_grid_and_gets_the_network_only_for_a_scheduler(project):
    (project / "grid.yml").write_text("ReuseFactor: [4, 8]\n")
    argv, mounts = launcher.mount_plan(namespace, parse("sweep", "--config", "models/hls4ml_config.yml", "--grid",
                                                  "grid.yml", "--out", "build/sw"))
    assert mounts.modes[str(project / "grid.yml")] == "ro"
    assert mounts.modes[str(project / "build")] == "rw"  # the sweep's folder is made inside
    assert argv[argv.index("--grid") + 1] == str(project / "grid.yml")
    assert mounts.network is None  # a local cluster talks over the container's loopback
    _, mounts = launcher.mount_plan(namespace, parse("sweep", "--config", "models/hls4ml_config.yml", "--grid", "grid.yml",
                                               "--scheduler", "tcp://10.0.0.5:8786"))
    assert mounts.network == "host"
    with pytest.raises(FlowError, match=r"^The grid file .*nogrid.yml does not exist"):
        launcher.mount_plan(namespace, parse("sweep", "--config", "models/hls4ml_config.yml", "--grid", "nogrid.yml"))


def test_a_version_for_vivado_or_vitis_is_passed_on_not_mounted(project):
    # A version names an install under XILINX_ROOT (mounted whole by container_settings), not a path.
    argv, mounts = launcher.mount_plan(namespace, parse("synth", "--config", "models/hls4ml_config.yml",
                                                        "--vitis", "2024.1"))
    assert argv[argv.index("--vitis") + 1] == "2024.1"
    assert not any("2024.1" in path for path in mounts.modes)
    argv, _ = launcher.mount_plan(namespace, parse("doctor", "--vivado", "2020.1"))
    assert argv[:1] == ["doctor"] and argv[argv.index("--vivado") + 1] == "2020.1"
