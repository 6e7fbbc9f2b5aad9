"""Fixtures for tests against the real Docker engine: the image built once per session from this
checkout, and helpers that run commands in it. They fail (never skip) without a daemon.

Reusable by flow tests: `built_image` (the image's versioned tag), `run_in_container(cmd, env=...,
user=..., volumes=..., workdir=...)` -> Result(exit_code, stdout, stderr), and `throwaway_repo`
(a directory with a small tasks.py for hlsflow.cli.launcher.run_checkout_task).
"""

import fcntl
import os
import shutil
import subprocess
import textwrap
import time
from collections import namedtuple
from pathlib import Path

import pytest

from hlsflow.image import containers, build as image, handover
from hlsflow.errors import FlowError
from slurm import GRID, LABEL, REPO, LocalSlurm, engine_reason, missing_reason, skip_or_fail

Result = namedtuple("Result", "exit_code stdout stderr")

THROWAWAY_TASKS = '''
import os
import subprocess

from invoke import task


@task
def hello(c):
    """Say where it runs."""
    print(f"hello from {os.getcwd()} as {os.getuid()}:{os.getgid()}")


@task
def touch(c, name):
    """Write a file into the working directory."""
    with open(name, "w") as f:
        f.write("written in the container\\n")


@task
def showenv(c):
    """Print the environment, and which licence paths can be read."""
    for key in sorted(os.environ):
        print(f"{key}={os.environ[key]}")
    for item in os.environ.get("XILINXD_LICENSE_FILE", "").split(":"):
        if os.path.isfile(item):
            print(f"readable licence file {item}")


@task
def vivado(c):
    """Run the Vivado HLS the entrypoint put on PATH."""
    subprocess.run(["vivado_hls", "-version"], check=True)
'''


@pytest.fixture(scope="session")
def docker_client():
    try:
        return containers.docker_client()
    except FlowError as exc:
        pytest.fail(f"tests/image need a running Docker engine: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def built_image(docker_client, tmp_path_factory) -> str:
    """The image built from this checkout (seconds when the layer cache has it, as after
    `make image`); its versioned tag. Built by the first worker, the others wait for its tag."""
    try:
        return once_per_session(tmp_path_factory, "built-image", image.build_image)
    except FlowError as exc:
        pytest.fail(f"building the image failed: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def run_in_container(docker_client, built_image):
    """run(cmd, env=None, user=None, volumes=None, workdir=None) -> Result: one throwaway
    container of the built image, through its entrypoint, without network."""

    def run(cmd, env=None, user=None, volumes=None, workdir=None, timeout=600) -> Result:
        container = docker_client.containers.create(
            built_image, cmd, environment=env or {}, user=user, volumes=volumes or {},
            working_dir=workdir, network_mode="none")
        try:
            container.start()
            code = container.wait(timeout=timeout)["StatusCode"]
            out = container.logs(stdout=True, stderr=False).decode()
            err = container.logs(stdout=False, stderr=True).decode()
        finally:
            container.remove(force=True)
        return Result(code, out, err)

    return run


@pytest.fixture
def throwaway_repo(tmp_path, monkeypatch) -> Path:
    """A world-writable directory holding THROWAWAY_TASKS as tasks.py, made the cwd."""
    (tmp_path / "tasks.py").write_text(textwrap.dedent(THROWAWAY_TASKS))
    tmp_path.chmod(0o777)
    monkeypatch.chdir(tmp_path)
    for var in ("XILINXD_LICENSE_FILE", "LM_LICENSE_FILE", "XILINX_ROOT", "VIVADO_DIR",
                "HLSFLOW_IMAGE"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def once_per_session(tmp_path_factory, name: str, make) -> str:
    """make() -> str in the first pytest-xdist worker that asks; the others wait for it and get its
    result. For what every worker would otherwise repeat (a saved image of 1.6 GB, its load into
    Podman): "session-wide" fixtures are per worker process."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # the workers' common folder
    done = shared / f"{name}.done"
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also when make() fails
        if not done.exists():
            done.write_text(str(make()))
        return done.read_text()


@pytest.fixture(scope="session")
def saved_image(built_image, tmp_path_factory):
    """The built image as a colleague receives it: a tarball from `hlsflow save-image` with its
    .sha256 beside it (written once per test session; Podman and the CI templates load it)."""
    def save():
        folder = tmp_path_factory.mktemp("handover")
        return handover.save_image(folder, tag=built_image)

    return Path(once_per_session(tmp_path_factory, "saved-image", save))


# This sandbox cannot raise the open-files limit, which Podman does for every container by
# default; an empty default_ulimits keeps the engine's own limits (harmless anywhere). Podman's
# default runtime, crun, refuses hosts with hybrid cgroups ("cgroups in hybrid mode not supported"),
# as some CI machines have; runc (installed with Docker) runs on both.
CONTAINERS_CONF = "[containers]\ndefault_ulimits = []\n" + ('[engine]\nruntime = "runc"\n' if shutil.which("runc") else "")


@pytest.fixture
def user_dir(tmp_path):
    """A user's repository outside the checkout: models/ with a model and its samples."""
    assert REPO not in tmp_path.parents
    (tmp_path / "models").mkdir()
    for name in ("tiny_cnn.keras", "tiny_samples.npz"):
        shutil.copy(REPO / "tests" / "data" / name, tmp_path / "models" / name)
    return tmp_path


def require_podman(what: str) -> None:
    """Skip when podman is not installed, except where CI (or HLSFLOW_REQUIRE_PODMAN=1) requires it."""
    if not shutil.which("podman"):
        if os.environ.get("HLSFLOW_REQUIRE_PODMAN") == "1" or os.environ.get("CI"):
            pytest.fail("podman is not installed: `apt-get install podman` (CI requires it)", pytrace=False)
        pytest.skip(f"podman is not installed (`apt-get install podman` to run {what})")


@pytest.fixture(scope="session")
def podman_socket(tmp_path_factory):
    """A `podman system service` of its own (session-wide: loading the image into Podman takes
    minutes, and test_podman.py and test_lab.py share it when they run in one process)."""
    require_podman("these tests")
    yield from podman_service(tmp_path_factory.mktemp("podman"))


def podman_service(root: Path, **env):
    """Generator for a fixture: a `podman system service` with its socket, containers.conf and log in
    `root` (`env`: more of the service's environment); yields the socket's URL, stops it after."""
    conf = root / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    sock = root / "podman.sock"
    service = subprocess.Popen(["podman", "system", "service", "--time=0", f"unix://{sock}"],
                               env={**os.environ, "CONTAINERS_CONF": str(conf), **env}, stdout=subprocess.DEVNULL,
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


@pytest.fixture(scope="session")
def podman_image(podman_socket, built_image, saved_image, docker_client, tmp_path_factory):
    """The built image, saved from Docker with save-image and loaded into Podman with load-image."""
    saved_env = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = podman_socket
    try:
        client = containers.docker_client()
        assert containers.runtime_name(client) == "Podman"
        # Into Podman's storage, which every worker's service reads: loaded once per test session.
        once_per_session(tmp_path_factory, "podman-load", lambda: handover.load_image(saved_image) or "loaded")
        image = containers.get_image(client, "hlsflow:latest")
    finally:
        if saved_env is None:
            os.environ.pop("DOCKER_HOST")
        else:
            os.environ["DOCKER_HOST"] = saved_env
    # The same image, whichever engine holds it.
    assert image.id.split(":")[-1] == docker_client.images.get(built_image).id.split(":")[-1]
    return "hlsflow:latest"


# ---- A real Slurm on this machine (slurm.py), one per test module that asks for it ----

@pytest.fixture(scope="module")
def slurm(tmp_path_factory, request):
    """A Slurm of the test module's own (modules in different workers run side by side), and the
    tag of hlsflow:latest its jobs run (`cluster.image`)."""
    image = f"hlsflow:test-{request.module.__name__.replace('_', '-')}-{os.getpid()}"
    reason = missing_reason() or engine_reason(image)
    if reason:
        skip_or_fail(reason)
    cluster = LocalSlurm(tmp_path_factory.mktemp("slurm"))
    cluster.image = image
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        # A worker whose job was killed outright could outlive it: remove this module's containers.
        ids = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={LABEL}={cluster.root}"],
                             capture_output=True, text=True).stdout.split()
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)
        subprocess.run(["docker", "rmi", image], capture_output=True)


@pytest.fixture(scope="module")
def shared_dir(tmp_path_factory, slurm):
    """A user's folder (the shared file system: the same path on every node) with the digits CNN."""
    root = tmp_path_factory.mktemp("user")
    (root / "models").mkdir()
    for name in ("digits_cnn.keras", "digits_samples.npz"):
        shutil.copy(REPO / "models" / name, root / "models" / name)
    (root / "grid.yml").write_text(GRID)
    return root
