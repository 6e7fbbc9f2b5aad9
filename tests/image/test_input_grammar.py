"""Paths a user may type and the engines' mount strings could not carry, and containers that must not
outlive the hlsflow process that started them: the installed `hlsflow` command in a user's folder, a
real Docker engine (and a real Podman, where installed) and the real image.

- A ':' or ',' in a model or output path is mounted through the engine's mount API; a run refused
  after hlsflow created the output's folder leaves no folder behind.
- `kill -9` of hlsflow: the container's watcher (an exec whose stdin is hlsflow's connection) stops
  the flow the way `docker stop` does, and the next run removes the container, naming it.
- A non-root host user's flow gets `docker stop`'s SIGTERM (tini keeps KILL to forward it).

HLSFLOW_TEST_IMAGE (and HLSFLOW_TEST_PODMAN_IMAGE, an image already in Podman's storage) run these
against an image built before, instead of building this checkout's."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from docker.errors import NotFound

import waiting
from hlsflow.cli import launcher, orphans
from state.test_safety import assert_one_sentence, folder_state
from test_cancel import containers_of, finish, start_hlsflow, wait_for
from test_user_project import REPO, run_hlsflow, user_env

STANDIN = REPO / "tests" / "standin_xilinx"


@pytest.fixture(scope="module")
def image(request):
    return os.environ.get("HLSFLOW_TEST_IMAGE") or request.getfixturevalue("built_image")


@pytest.fixture(scope="module")
def podman_flow_image(request, podman_socket):
    return os.environ.get("HLSFLOW_TEST_PODMAN_IMAGE") or request.getfixturevalue("podman_image")


@pytest.fixture
def engine(request, image, docker_client):
    """(environment for hlsflow, the engine's client) for Docker or Podman."""
    if request.param == "docker":
        return {"HLSFLOW_IMAGE": image}, docker_client
    from hlsflow.image import containers

    socket = request.getfixturevalue("podman_socket")
    flow_image = request.getfixturevalue("podman_flow_image")
    saved = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = socket
    try:
        client = containers.docker_client()
    finally:
        if saved is None:
            os.environ.pop("DOCKER_HOST")
        else:
            os.environ["DOCKER_HOST"] = saved
    return {"HLSFLOW_IMAGE": flow_image, "DOCKER_HOST": socket}, client


def odd_folders(root: Path, *names) -> None:
    for name in names:
        (root / name).mkdir()
        (root / name / "tiny_cnn.keras").write_bytes((root / "models" / "tiny_cnn.keras").read_bytes())


def test_colon_and_comma_paths_under_docker(image, user_dir):
    odd_folders(user_dir, "my:models,v2")
    proc = run_hlsflow("convert", "--model", "my:models,v2/tiny_cnn.keras", "--out", "out:put,s/prj", cwd=user_dir,
                       HLSFLOW_IMAGE=image)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (user_dir / "out:put,s" / "prj" / "firmware" / "myproject.cpp").is_file()

    # Refused in the container, after the host created the output's folder for its mount: the
    # folder goes again, as the run created it and nothing was written into it.
    before = folder_state(user_dir)
    refused = run_hlsflow("convert", "--model", "my:models,v2/tiny_cnn.keras", "--out", "new:er,dir/deep/prj",
                          "--precision", "ap_fixd<16,6>", cwd=user_dir, HLSFLOW_IMAGE=image)
    assert refused.returncode == 2, refused.stdout[-2000:] + refused.stderr[-2000:]
    assert_one_sentence(refused, "is not a fixed-point type")
    assert folder_state(user_dir) == before and not (user_dir / "new:er,dir").exists()


def test_colon_and_comma_paths_under_podman(podman_socket, podman_flow_image, user_dir):
    odd_folders(user_dir, "my:models", "both:,")
    # (An output path may hold no '"': hls4ml's build script puts it into a C string.)
    proc = run_hlsflow("convert", "--model", "my:models/tiny_cnn.keras", "--out", "out,puts/prj", cwd=user_dir,
                       DOCKER_HOST=podman_socket, HLSFLOW_IMAGE=podman_flow_image)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (user_dir / "out,puts" / "prj" / "firmware" / "myproject.cpp").is_file()

    # Podman's API can carry neither kind of string for a path with both: refused, nothing left behind.
    before = folder_state(user_dir)
    refused = run_hlsflow("convert", "--model", "both:,/tiny_cnn.keras", "--out", "new/prj", cwd=user_dir,
                          DOCKER_HOST=podman_socket, HLSFLOW_IMAGE=podman_flow_image)
    assert refused.returncode == 2, refused.stdout[-2000:] + refused.stderr[-2000:]
    assert_one_sentence(refused, f"Podman cannot mount {user_dir}/both:,/tiny_cnn.keras")
    assert folder_state(user_dir) == before


@pytest.mark.parametrize("engine", ["docker", "podman"], indirect=True)
def test_kill_9_of_hlsflow_stops_its_container_and_the_next_run_removes_it(engine, user_dir):
    env, client = engine
    # Synthesis with the Vivado stand-in (a test double) told to hang: only a stop ends it.
    proc = start_hlsflow("synth", "--model", "models/tiny_cnn.keras", "--part", "xc7vx690tffg1927-2", "--out",
                         "build/prj", cwd=user_dir, XILINX_ROOT=STANDIN, STANDIN_MODE="hang", **env)
    out = user_dir / "build" / "prj"
    try:
        wait_for("the stand-in's synthesis", lambda: (out / "vivado_hls_standin.args").exists(), proc)
        [container] = wait_for("the flow container", lambda: containers_of(client, user_dir, running=True), proc)
        assert container.labels[orphans.PID_LABEL] == str(proc.pid)
    except BaseException:
        if proc.poll() is None:
            proc.kill()
        raise
    proc.send_signal(signal.SIGKILL)
    finish(proc)

    def stopped():
        try:
            container.reload()
        except NotFound:  # another test's hlsflow run, meanwhile, found it exited and removed it
            return True
        return container.status == "exited"

    waiting.wait_for(stopped, 60, "the flow container to stop after its hlsflow was killed")
    # It stopped as `docker stop` stops it: the flow's clean-up ran.
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["runs"][-1]["status"] == "interrupted", manifest["runs"][-1]
    assert sorted(p.name for p in (user_dir / "build").iterdir()) == ["prj"]  # no staging folder, no lock

    # Any hlsflow run on this host removes it, saying so in one line; another test's run, on the same
    # engine meanwhile, may come first (before or while this one starts), and then says it instead.
    again = run_hlsflow("check", "--model", "models/tiny_cnn.keras", cwd=user_dir, **env)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert containers_of(client, user_dir) == []
    line = (f"WARNING: Removed the flow container {container.short_id} (exited), left by hlsflow process {proc.pid}, "
            "which ended without removing it.")
    said = [text for text in again.stderr.splitlines() if container.short_id in text]
    assert said in ([line], []), again.stderr[-2000:]  # the one line, or nothing when another run removed it


def test_a_non_root_users_flow_gets_sigterm_from_docker_stop(docker_client, image):
    """tini (root, PID 1) forwards `docker stop`'s SIGTERM to the flow, which runs as the host user:
    without KILL, the kernel refuses and tini dies, killing the flow without its clean-up."""
    container = docker_client.containers.create(
        image, ["sh", "-c", "trap 'echo clean-up ran; exit 3' TERM; echo trap set; while :; do sleep 0.1; done"],
        environment={"HOST_UID": "1000", "HOST_GID": "1000"}, network_mode="none", **launcher.confinement(uid=1000))
    try:
        container.start()
        waiting.wait_for(lambda: "trap set" in container.logs().decode(), 60, "the flow's trap")
        container.stop(timeout=launcher.STOP_TIMEOUT)
        assert container.wait()["StatusCode"] == 3, container.logs().decode()
        assert "clean-up ran" in container.logs().decode()
    finally:
        container.remove(force=True)


def test_shell_in_a_folder_named_with_colon_comma_and_quote(image, tmp_path):
    """`hlsflow shell` runs the engine's own command line: its --mount fields are CSV, quoted."""
    folder = tmp_path / 'my:work,"v2"'
    folder.mkdir()
    (folder / "notes.txt").write_text("mine\n")
    proc = subprocess.run([str(Path(sys.executable).parent / "hlsflow"), "shell"], input="cat notes.txt; pwd\n",
                          cwd=folder, env=user_env(HLSFLOW_IMAGE=image), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stdout.splitlines()[-2:] == ["mine", str(folder)]
