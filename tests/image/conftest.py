"""Fixtures for tests against the real Docker engine: the image built once per session from this
checkout, and helpers that run commands in it. They fail (never skip) without a daemon.

Reusable by flow tests: `built_image` (the image's versioned tag), `run_in_container(cmd, env=...,
user=..., volumes=..., workdir=...)` -> Result(exit_code, stdout, stderr), and `throwaway_repo`
(a directory with a small tasks.py for hlsflow.cli.launcher.run_checkout_task).
"""

import textwrap
from collections import namedtuple
from pathlib import Path

import pytest

from hlsflow.image import containers, build as image
from hlsflow.errors import FlowError

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
def built_image(docker_client) -> str:
    """The image built from this checkout (seconds when the layer cache has it, as after
    `make image`); its versioned tag."""
    try:
        return image.build_image()
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


@pytest.fixture(scope="session")
def saved_image(built_image, tmp_path_factory):
    """The built image as a colleague receives it: a tarball from `hlsflow save-image` with its
    .sha256 beside it (written once per session; Podman and the CI templates load it)."""
    from hlsflow.image import handover

    return handover.save_image(tmp_path_factory.mktemp("handover"), tag=built_image)


# Under pytest-xdist's loadgroup, each file runs in one worker (its module fixtures built once),
# and the files that share Podman's service or the image tarball run in the same one.
SHARED_GROUPS = {"test_podman.py": "podman", "test_lab.py": "podman", "test_ci_files.py": "podman"}


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the marks
def pytest_collection_modifyitems(items):
    for item in items:
        if not item.get_closest_marker("xdist_group"):
            name = item.path.name
            item.add_marker(pytest.mark.xdist_group(SHARED_GROUPS.get(name, name)))
