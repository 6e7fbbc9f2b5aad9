"""The same flow under Podman: a real `podman system service` (its Docker-compatible socket), the
image handed over as a colleague receives it (save-image from Docker, load-image into Podman), and
`hlsflow flow` through it, giving the same csim.json figures as under Docker.

Podman needs to be installed (Debian: `apt-get install podman`); CI (HLSFLOW_REQUIRE_PODMAN=1)
fails without it, elsewhere these tests are skipped with that reason."""

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from hlsflow.image import containers, handover
from test_user_project import csim_figures, run_hlsflow

# This sandbox cannot raise the open-files limit, which Podman does for every container by
# default; an empty default_ulimits keeps the engine's own limits (harmless anywhere). Podman's
# default runtime, crun, refuses hosts with hybrid cgroups ("cgroups in hybrid mode not supported"),
# as some CI machines have; runc (installed with Docker) runs on both.
CONTAINERS_CONF = "[containers]\ndefault_ulimits = []\n" + ('[engine]\nruntime = "runc"\n' if shutil.which("runc") else "")


@pytest.fixture(scope="module")
def podman_socket(tmp_path_factory):
    if not shutil.which("podman"):
        if os.environ.get("HLSFLOW_REQUIRE_PODMAN") == "1" or os.environ.get("CI"):
            pytest.fail("podman is not installed: `apt-get install podman` (CI requires it)", pytrace=False)
        pytest.skip("podman is not installed (`apt-get install podman` to run these tests)")
    root = tmp_path_factory.mktemp("podman")
    conf = root / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    sock = root / "podman.sock"
    service = subprocess.Popen(["podman", "system", "service", "--time=0", f"unix://{sock}"],
                               env={**os.environ, "CONTAINERS_CONF": str(conf)}, stdout=subprocess.DEVNULL,
                               stderr=open(root / "service.log", "w"))
    deadline = time.monotonic() + 30
    while not sock.exists() and time.monotonic() < deadline and service.poll() is None:
        time.sleep(0.2)
    if not sock.exists():
        service.kill()
        pytest.fail(f"podman system service did not start: {(root / 'service.log').read_text()[-1000:]}")
    yield f"unix://{sock}"
    service.terminate()
    try:
        service.wait(timeout=20)
    except subprocess.TimeoutExpired:
        service.kill()


@pytest.fixture(scope="module")
def podman_image(podman_socket, built_image, saved_image, docker_client):
    """The built image, saved from Docker with save-image and loaded into Podman with load-image."""
    saved_env = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = podman_socket
    try:
        client = containers.docker_client()
        assert containers.runtime_name(client) == "Podman"
        handover.load_image(saved_image)
        image = containers.get_image(client, "hlsflow:latest")
    finally:
        if saved_env is None:
            os.environ.pop("DOCKER_HOST")
        else:
            os.environ["DOCKER_HOST"] = saved_env
    # The same image, whichever engine holds it.
    assert image.id.split(":")[-1] == docker_client.images.get(built_image).id.split(":")[-1]
    return "hlsflow:latest"


@pytest.fixture
def user_dir(tmp_path):
    data = Path(__file__).resolve().parents[1] / "data"
    (tmp_path / "models").mkdir()
    for name in ("tiny_cnn.keras", "tiny_samples.npz"):
        shutil.copy(data / name, tmp_path / "models" / name)
    return tmp_path


def test_flow_under_podman_matches_docker(podman_socket, podman_image, built_image, user_dir):
    under_docker = run_hlsflow("flow", "--model", "models/tiny_cnn.keras", "--samples", "models/tiny_samples.npz",
                           "--out", "docker-out", cwd=user_dir, HLSFLOW_IMAGE=built_image)
    assert under_docker.returncode == 0, under_docker.stdout[-2000:] + under_docker.stderr[-2000:]
    under_podman = run_hlsflow("flow", "--model", "models/tiny_cnn.keras", "--samples", "models/tiny_samples.npz",
                           "--out", "podman-out", cwd=user_dir, DOCKER_HOST=podman_socket,
                           HLSFLOW_IMAGE=podman_image)
    assert under_podman.returncode == 0, under_podman.stdout[-3000:] + under_podman.stderr[-3000:]
    assert "Synthesis skipped: no Vivado HLS found" in under_podman.stdout
    docker_figures = csim_figures(user_dir / "docker-out")
    assert csim_figures(user_dir / "podman-out") == docker_figures
    assert docker_figures["samples"] == 64
    # The HLS projects are the same C++ and weights, whichever engine wrote them.
    for name in ("firmware/myproject.cpp", "firmware/parameters.h", "firmware/defines.h"):
        assert (user_dir / "podman-out" / name).read_text() == (user_dir / "docker-out" / name).read_text()


def test_podman_mistake_is_one_sentence(podman_socket, podman_image, user_dir):
    proc = run_hlsflow("convert", "--model", "models/tiny_cnn.keras", "--part", "xc7z999", cwd=user_dir,
                   DOCKER_HOST=podman_socket, HLSFLOW_IMAGE=podman_image)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1 and errors[0].startswith("ERROR: Unknown part 'xc7z999'")
