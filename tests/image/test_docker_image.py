"""The toolchain image against the real Docker engine: build and cache, contents, the entrypoint's
user and Vivado handling, dispatch from the host, and handing the image on."""

import json
import os
import re
import time

import pytest

from hlsflow import dispatch, image
from hlsflow.errors import FlowError


def test_build_tags_and_labels(docker_client, built_image):
    built = docker_client.images.get(built_image)
    assert built.id == docker_client.images.get("hlsflow:latest").id
    labels = built.labels
    assert labels["io.hlsflow.tensorflow.version"] == "2.15.0"
    assert labels["io.hlsflow.numpy.version"] == "1.25.0"
    assert labels["org.opencontainers.image.version"] == image.__version__
    assert built.attrs["Config"]["Entrypoint"] == ["/usr/local/bin/hlsflow-entrypoint"]


def test_rebuild_reuses_every_layer(docker_client, built_image, capsys):
    started = time.monotonic()
    again = image.build_image()
    took = time.monotonic() - started
    out = capsys.readouterr().out
    assert again == built_image
    assert docker_client.images.get(again).id == docker_client.images.get(built_image).id
    cached = re.search(r"(\d+) of (\d+) steps came from the layer cache", out)
    assert cached and cached.group(1) == cached.group(2), out
    assert took < 120, f"a fully cached rebuild took {took:.0f}s"


def test_versions_report(run_in_container):
    result = run_in_container(["versions"])
    assert result.exit_code == 0, result.stderr
    assert re.search(r"\| TensorFlow +\| 2\.15\.0 +\|", result.stdout), result.stdout
    assert re.search(r"\| numpy +\| 1\.25\.0 +\|", result.stdout), result.stdout
    assert re.search(r"\| image revision +\| \S+", result.stdout)
    assert "| Vivado " in result.stdout and "| none" in result.stdout


def test_invoke_list_in_the_image(run_in_container):
    result = run_in_container(["invoke", "--list"])
    assert result.exit_code == 0, result.stderr
    assert "flow" in result.stdout


def test_invoke_through_dispatch(built_image, throwaway_repo, capfd):
    assert dispatch.run_in_image(["--list"], image=built_image) == 0
    assert "hello" in capfd.readouterr().out
    assert dispatch.run_in_image(["hello"], image=built_image) == 0
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


def test_dispatch_passes_host_uid(built_image, throwaway_repo, monkeypatch):
    monkeypatch.setattr(dispatch.os, "getuid", lambda: 1234)
    monkeypatch.setattr(dispatch.os, "getgid", lambda: 1234)
    assert dispatch.run_in_image(["touch", "--name", "made-here"], image=built_image) == 0
    assert os.stat(throwaway_repo / "made-here").st_uid == 1234


def test_standin_vivado_found(built_image, run_in_container, throwaway_repo, standin_xilinx_dir,
                             monkeypatch, capfd):
    vivado_dir = standin_xilinx_dir / "Vivado" / "2018.2"
    assert (vivado_dir / "settings64.sh").is_file(), "the Vivado stand-in is missing"
    result = run_in_container(["true"])
    assert result.stderr.splitlines() == [
        "hlsflow: no Vivado mounted at /opt/Xilinx/Vivado/2018.2; synthesis will be skipped"]

    monkeypatch.setenv("XILINX_ROOT", str(standin_xilinx_dir))
    assert dispatch.run_in_image(["vivado"], image=built_image) == 0
    err = capfd.readouterr().err
    found = [line for line in err.splitlines() if line.startswith("hlsflow:")]
    assert found == [f"hlsflow: Vivado found at {vivado_dir} "
                     f"(vivado_hls {vivado_dir}/bin/vivado_hls)"], err
    assert "STAND-IN" in err


def test_licence_reaches_container_only_when_set(built_image, throwaway_repo, tmp_path_factory,
                                                 monkeypatch, capfd):
    assert dispatch.run_in_image(["showenv"], image=built_image) == 0
    assert "LICENSE" not in capfd.readouterr().out

    licence = tmp_path_factory.mktemp("licence") / "node.lic"  # outside the mounted repo
    licence.write_text("not a real licence\n")
    monkeypatch.setenv("XILINXD_LICENSE_FILE", str(licence))
    monkeypatch.setenv("LM_LICENSE_FILE", "2100@licence-server")
    assert dispatch.run_in_image(["showenv"], image=built_image) == 0
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


def test_save_then_load_gives_same_image(docker_client, built_image, tmp_path):
    saved = image.save_image(tmp_path, tag=built_image)
    assert saved.name == f"hlsflow-{built_image.split(':', 1)[1]}.tar.gz"
    assert (tmp_path / (saved.name + ".sha256")).read_text().split()[1] == saved.name
    assert image.load_image(saved) == docker_client.images.get(built_image).id


def test_load_rejects_damaged_tarball(tmp_path):
    damaged = tmp_path / "hlsflow-x.tar.gz"
    damaged.write_bytes(b"not an image")
    (tmp_path / "hlsflow-x.tar.gz.sha256").write_text("0" * 64 + "  hlsflow-x.tar.gz\n")
    with pytest.raises(FlowError, match="does not match the checksum"):
        image.load_image(damaged)


def test_missing_image_is_one_sentence(docker_client, throwaway_repo):
    assert not image.image_exists("no-such-tag")
    with pytest.raises(FlowError) as raised:
        dispatch.run_in_image(["--list"], image="hlsflow:no-such-tag")
    assert str(raised.value) == ("Image hlsflow:no-such-tag not found: run `invoke build-image` "
                                 "(or `invoke load-image FILE`).")


def test_no_daemon_is_one_sentence(monkeypatch, throwaway_repo):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    for call in (image.docker_client, lambda: dispatch.run_in_image(["--list"])):
        with pytest.raises(FlowError) as raised:
            call()
        assert str(raised.value) == image.NO_DAEMON
