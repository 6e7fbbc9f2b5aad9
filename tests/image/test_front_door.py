"""What a newcomer meets first, as they meet it: the README's install lines run verbatim in fresh
environments, `hlsflow --help`, the first run without the image (the ways to get it, and
`--fetch`), and no Vivado line from tasks that do not synthesise."""

import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from test_handover_identity import assert_one_sentence, folder_state, hlsflow

REPO = Path(__file__).resolve().parents[2]


def install_block() -> tuple[list[str], str]:
    """The commands of the README's install block (its first `sh` block after "Install the command"),
    and the alternative its comment names ("or, in a virtualenv: …")."""
    text = (REPO / "README.md").read_text()
    block = re.search(r"Install the command once.*?```sh\n(.*?)```", text, re.S).group(1)
    commands = [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]
    return commands, re.search(r"# or, in a virtualenv: (.+)$", block, re.M).group(1).strip()


@pytest.fixture(scope="module")
def checkout_copy(tmp_path_factory) -> Path:
    """The folder a user stands in: `hlsflow/`, a copy of this checkout (what git ls-files has)."""
    root = tmp_path_factory.mktemp("newcomer")
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.splitlines()
    for name in files:
        if (REPO / name).is_file() and not name.startswith("build/"):
            (root / "hlsflow" / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / "hlsflow" / name)
    return root


def test_readme_install_lines_work_verbatim(checkout_copy):
    """`cd hlsflow`, `pipx install .`, `hlsflow --version`, as the README says them, in a shell of a
    user with nothing installed (pipx makes the fresh virtualenv); then the alternative it names,
    `pip install .` in a fresh virtualenv."""
    if not shutil.which("pipx"):
        pytest.fail("pipx is not installed: `apt-get install pipx` (.ci/run does)", pytrace=False)
    lines, alternative = install_block()
    assert lines[1] == "pipx install ."  # the line the issue found broken was `pipx install ./hlsflow`
    home = checkout_copy / "home"
    env = {"HOME": str(home), "PATH": f"{home}/.local/bin:/usr/local/bin:/usr/bin:/bin",
           "PIPX_HOME": str(home / "pipx"), "PIPX_BIN_DIR": str(home / ".local" / "bin"), "LANG": "C.UTF-8"}
    env.update({k: v for k, v in os.environ.items() if k.startswith(("PIP_", "DOCKER_"))})
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", "\n".join(lines)], cwd=checkout_copy, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert re.search(r"^hlsflow \d+\.\d+\.\d+$", proc.stdout, re.M), proc.stdout
    assert "image: hlsflow:latest" in proc.stdout

    venv = checkout_copy / "fresh-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", f". {venv}/bin/activate && {alternative} && hlsflow --version"],
                          cwd=checkout_copy / "hlsflow", env={**env, "PATH": "/usr/bin:/bin"}, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "image: hlsflow:latest" in proc.stdout


def test_help_lists_every_task_in_full(tmp_path):
    from hlsflow.cli.tasks import USER_TASKS

    proc, _ = hlsflow("--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())
    for task in USER_TASKS:
        summary = " ".join((task.__doc__ or "").strip().split("\n\n")[0].split())
        assert f"{task.name.replace('_', '-')} {summary}" in text, task.name
    for invoke_flag in ("--prompt-for-sudo-password", "--write-pyc", "--complete", "Core options"):
        assert invoke_flag not in proc.stdout
    assert "--fetch" in proc.stdout and "--verbose" in proc.stdout


def test_tasks_that_do_not_synthesise_say_nothing_of_vivado(built_image, user_dir):
    env = {"HLSFLOW_IMAGE": built_image}
    runs = [hlsflow("init", "--model", "models/tiny_cnn.keras", cwd=user_dir, **env)[0],
            hlsflow("convert", "--config", "models/hls4ml_config.yml", cwd=user_dir, **env)[0],
            hlsflow("doctor", cwd=user_dir, **env)[0],
            hlsflow("report", "--config", "models/hls4ml_config.yml", cwd=user_dir, **env)[0],
            hlsflow("verify", "models/build/tiny_cnn", cwd=user_dir, **env)[0]]
    assert runs[1].returncode == 0 and runs[4].returncode == 0, runs[1].stderr + runs[4].stderr
    for proc in runs:
        assert "hlsflow: " not in proc.stderr and "no Vivado mounted" not in proc.stdout + proc.stderr, proc.args
    verbose, _ = hlsflow("--verbose", "versions", cwd=user_dir, **env)
    assert verbose.returncode == 0, verbose.stderr
    assert "hlsflow: no Vivado mounted at /opt/Xilinx/Vivado/2018.2; synthesis will be skipped" in verbose.stderr


def test_first_run_without_the_image(built_image, saved_image, docker_client, user_dir):
    """The image missing: one line for each way to get it and one sentence; `--fetch` with
    HLSFLOW_IMAGE_TARBALL loads the tarball (load-image's checks) and runs the task."""
    missing = f"hlsflow:first-run-{uuid.uuid4().hex[:12]}"
    before = folder_state(user_dir)
    proc, _ = hlsflow("versions", cwd=user_dir, HLSFLOW_IMAGE=missing)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert_one_sentence(proc, f"Image {missing} not found", "`hlsflow --fetch TASK` does the first that applies")
    assert "HLSFLOW_IMAGE=ghcr.io/your-lab/hlsflow@sha256:" in proc.stderr
    assert "hlsflow load-image FILE.tar.gz" in proc.stderr
    assert f"invoke build-image   in {REPO}" in proc.stderr  # this command runs from a checkout
    assert folder_state(user_dir) == before

    latest = docker_client.images.get("hlsflow:latest").id
    try:
        proc, _ = hlsflow("--fetch", "versions", cwd=user_dir, HLSFLOW_IMAGE=missing, HLSFLOW_IMAGE_TARBALL=str(saved_image))
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert f"--fetch: loading {saved_image}" in proc.stdout and "image revision" in proc.stdout
        assert docker_client.images.get(missing).id == docker_client.images.get(built_image).id
    finally:
        subprocess.run(["docker", "rmi", missing], capture_output=True)
        subprocess.run(["docker", "tag", latest, "hlsflow:latest"], capture_output=True)
