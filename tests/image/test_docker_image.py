"""The toolchain image against the real Docker engine: build and cache, contents, the entrypoint's
user and Vivado handling, running tasks from the host (launcher.py), and handing the image on."""

import json
import os
import re
import subprocess
import sys

import pytest

from hlsflow.image import containers, handover, build as image
from hlsflow.cli import launcher
from hlsflow.errors import FlowError


# First in this file: the session's tarball (saved_image) is made here, early, for the CI and
# Podman tests in other workers that wait for it.
def test_save_then_load_gives_same_image(docker_client, built_image, saved_image):
    """saved_image is handover.save_image's tarball (written once per session, for the CI and
    Podman tests too)."""
    assert saved_image.name == f"hlsflow-{built_image.split(':', 1)[1]}.tar.gz"
    assert saved_image.with_name(saved_image.name + ".sha256").read_text().split()[1] == saved_image.name
    assert handover.load_image(saved_image) == docker_client.images.get(built_image).id


def test_build_tags_and_labels(docker_client, built_image):
    built = docker_client.images.get(built_image)
    assert built.id == docker_client.images.get("hlsflow:latest").id
    labels = built.labels
    assert labels["io.hlsflow.tensorflow.version"] == "2.15.0"
    assert labels["io.hlsflow.numpy.version"] == "1.25.0"
    assert labels["org.opencontainers.image.version"] == image.__version__
    assert labels["org.opencontainers.image.source"] == "hlsflow"  # the project, never a machine's path
    # The image's own init first: no --init needed under Docker or Podman.
    assert built.attrs["Config"]["Entrypoint"] == ["/usr/bin/tini", "-g", "--", "/usr/local/bin/hlsflow-entrypoint"]


def test_rebuild_reuses_every_layer(docker_client, built_image, capsys):
    # Every step from the cache; how long that takes is bench/run.py's figure, not a test's.
    again = image.build_image()
    out = capsys.readouterr().out
    assert again == built_image
    assert docker_client.images.get(again).id == docker_client.images.get(built_image).id
    cached = re.search(r"(\d+) of (\d+) steps came from the layer cache", out)
    assert cached and cached.group(1) == cached.group(2) and int(cached.group(2)) > 0, out


def test_versions_report(run_in_container):
    result = run_in_container(["versions"])
    assert result.exit_code == 0, result.stderr
    assert re.search(r"\| TensorFlow +\| 2\.15\.0 +\|", result.stdout), result.stdout
    assert re.search(r"\| numpy +\| 1\.25\.0 +\|", result.stdout), result.stdout
    assert re.search(r"\| image revision +\| \S+", result.stdout)
    assert "| Vivado " in result.stdout and "| none" in result.stdout


def test_hlsflow_in_the_image_from_any_directory(run_in_container):
    for cmd in (["hlsflow", "--list"], ["--list"], ["csim", "--help"]):
        result = run_in_container(cmd, workdir="/tmp")
        assert result.exit_code == 0, (cmd, result.stderr)
        assert "Bit-accurate emulation of the HLS project" in result.stdout, cmd
    version = run_in_container(["hlsflow", "--version"], workdir="/tmp")
    assert version.stdout.splitlines()[0] == f"hlsflow {image.__version__}"


def test_image_alone_prints_usage_and_versions(run_in_container):
    result = run_in_container([])
    assert result.exit_code == 0, result.stderr
    assert "Usage: hlsflow" in result.stdout and "init" in result.stdout
    assert re.search(r"\| TensorFlow +\| 2\.15\.0 +\|", result.stdout), result.stdout


def test_tini_is_pid_1(run_in_container):
    result = run_in_container(["cat", "/proc/1/cmdline"])
    assert result.stdout.split("\0")[0] == "/usr/bin/tini", result.stdout


def test_checkout_task_in_the_image(built_image, throwaway_repo, capfd):
    assert launcher.run_checkout_task(["--list"], throwaway_repo, image=built_image) == 0
    assert "hello" in capfd.readouterr().out
    assert launcher.run_checkout_task(["hello"], throwaway_repo, image=built_image) == 0
    # The repository is mounted at its own path and is the working directory.
    assert f"hello from {throwaway_repo} as {os.getuid()}:{os.getgid()}" in capfd.readouterr().out


def test_files_belong_to_host_uid(tmp_path, run_in_container):
    tmp_path.chmod(0o777)
    volumes = {str(tmp_path): {"bind": "/w", "mode": "rw"}}
    result = run_in_container(["touch", "/w/out"], env={"HOST_UID": "1234", "HOST_GID": "1234"},
                              volumes=volumes)
    assert result.exit_code == 0, result.stderr
    assert (os.stat(tmp_path / "out").st_uid, os.stat(tmp_path / "out").st_gid) == (1234, 1234)


def test_files_belong_to_owner_of_working_dir(tmp_path, run_in_container):
    # `docker run -v $PWD:/w -w /w IMAGE ...` without HOST_UID: the directory's owner writes.
    os.chown(tmp_path, 4321, 4322)
    volumes = {str(tmp_path): {"bind": "/w", "mode": "rw"}}
    result = run_in_container(["touch", "out"], volumes=volumes, workdir="/w")
    assert result.exit_code == 0, result.stderr
    assert (os.stat(tmp_path / "out").st_uid, os.stat(tmp_path / "out").st_gid) == (4321, 4322)


def test_checkout_task_passes_host_uid(built_image, throwaway_repo):
    """A host user of uid 1234 and gid 4321, for real: the launcher runs in a child process whose real
    ids (what os.getuid() and os.getgid() report) are those. Its effective ids stay root's (the
    tests run as root, as in CI), so that it can still load a Python installed in root's home."""
    code = ("import os, sys\nos.setresgid(4321, 0, 0)\nos.setresuid(1234, 0, 0)\n"
            "from hlsflow.cli import launcher\n"
            "sys.exit(launcher.run_checkout_task(['touch', '--name', 'made-here'], sys.argv[1], image=sys.argv[2]))")
    proc = subprocess.run([sys.executable, "-c", code, str(throwaway_repo), built_image], cwd=throwaway_repo,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    made = os.stat(throwaway_repo / "made-here")
    assert (made.st_uid, made.st_gid) == (1234, 4321)


def test_standin_vivado_found(built_image, run_in_container, throwaway_repo, standin_xilinx_dir,
                             monkeypatch, capfd):
    vivado_dir = standin_xilinx_dir / "Vivado" / "2018.2"
    assert (vivado_dir / "settings64.sh").is_file(), "the Vivado stand-in is missing"
    # What the entrypoint found is said only under `hlsflow --verbose` (HLSFLOW_VERBOSE=1).
    assert run_in_container(["true"]).stderr == ""
    result = run_in_container(["true"], env={"HLSFLOW_VERBOSE": "1"})
    assert result.stderr.splitlines() == [
        "hlsflow: no Vivado mounted at /opt/Xilinx/Vivado/2018.2; synthesis will be skipped"]

    monkeypatch.setenv("XILINX_ROOT", str(standin_xilinx_dir))
    assert launcher.run_checkout_task(["vivado"], throwaway_repo, image=built_image) == 0
    err = capfd.readouterr().err
    assert "STAND-IN" in err and "hlsflow:" not in err, err  # sourced, on PATH, and not said
    monkeypatch.setenv("HLSFLOW_VERBOSE", "1")
    assert launcher.run_checkout_task(["vivado"], throwaway_repo, image=built_image) == 0
    err = capfd.readouterr().err
    found = [line for line in err.splitlines() if line.startswith("hlsflow:")]
    assert found == [f"hlsflow: Vivado found at {vivado_dir} "
                     f"(vivado_hls {vivado_dir}/bin/vivado_hls)"], err


def test_licence_reaches_container_only_when_set(built_image, throwaway_repo, tmp_path_factory,
                                                 monkeypatch, capfd):
    assert launcher.run_checkout_task(["showenv"], throwaway_repo, image=built_image) == 0
    assert "LICENSE" not in capfd.readouterr().out

    licence = tmp_path_factory.mktemp("licence") / "node.lic"  # outside the mounted repo
    licence.write_text("not a real licence\n")
    monkeypatch.setenv("XILINXD_LICENSE_FILE", str(licence))
    monkeypatch.setenv("LM_LICENSE_FILE", "2100@licence-server")
    assert launcher.run_checkout_task(["showenv"], throwaway_repo, image=built_image) == 0
    out = capfd.readouterr().out
    assert f"XILINXD_LICENSE_FILE={licence}" in out
    assert "LM_LICENSE_FILE=2100@licence-server" in out
    assert f"readable licence file {licence}" in out


def test_no_licence_or_xilinx_in_image(docker_client, built_image, run_in_container):
    history = docker_client.api.history(built_image)
    config = docker_client.api.inspect_image(built_image)["Config"]
    text = json.dumps([h["CreatedBy"] for h in history] + [config["Env"], config["Labels"]])
    for needle in ("LICENSE_FILE", ".lic", "Xilinx"):
        assert needle not in text, f"{needle!r} appears in the image's history or config"
    found = run_in_container(["find", "/", "-xdev", "(", "-iname", "*.lic", "-o", "-name",
                              "Xilinx", ")", "-print"])
    assert found.exit_code == 0 and found.stdout == "", found.stdout


def test_load_rejects_damaged_tarball(tmp_path):
    damaged = tmp_path / "hlsflow-x.tar.gz"
    damaged.write_bytes(b"not an image")
    (tmp_path / "hlsflow-x.tar.gz.sha256").write_text("0" * 64 + "  hlsflow-x.tar.gz\n")
    with pytest.raises(FlowError, match="does not match the checksum"):
        handover.load_image(damaged)


def test_missing_image_is_one_sentence(docker_client, throwaway_repo):
    assert not containers.image_exists("no-such-tag")
    with pytest.raises(FlowError) as raised:
        launcher.run_checkout_task(["--list"], throwaway_repo, image="hlsflow:no-such-tag")
    assert str(raised.value) == (
        "Image hlsflow:no-such-tag not found: load it with `hlsflow load-image FILE`, pull it (set HLSFLOW_IMAGE to "
        "<registry>/hlsflow@sha256:…), or build it in a checkout with `invoke build-image`; `hlsflow --fetch TASK` "
        "does the first that applies.")


def test_no_daemon_is_one_sentence(monkeypatch, throwaway_repo):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    for call in (containers.docker_client, lambda: launcher.run_checkout_task(["--list"], throwaway_repo)):
        with pytest.raises(FlowError) as raised:
            call()
        assert str(raised.value) == ("Cannot reach the Docker daemon: start it (e.g. `sudo systemctl start docker`) "
                                     "or set DOCKER_HOST.")
