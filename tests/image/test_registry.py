"""Handing the image on through a registry, as teams do: Debian's `docker-registry` (the
distribution registry 2.8) started here on 127.0.0.1, with htpasswd auth and without, the engine's
own login (`docker login` into a DOCKER_CONFIG of the test's own), and the installed `hlsflow`
from a user's folder. The real image is pushed once; the flows after it pull it by digest. Images
other than the real one are tiny ones made here under unique names and removed again.

Needs Debian's docker-registry and apache2-utils (htpasswd); .ci/run installs them."""

import io
import json
import os
import re
import shutil
import socket
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from conftest import podman_service, require_podman
from hlsflow import __version__
from test_handover_identity import LABELS, SBOM, assert_one_sentence, engine_tags, folder_state, hlsflow

DATA = Path(__file__).resolve().parents[1] / "data"
USER, PASSWORD = "alice", "hand-on-" + uuid.uuid4().hex[:8]
TAG = f"test-{uuid.uuid4().hex[:8]}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Registry:
    """One `docker-registry serve` on 127.0.0.1 at a free port, over `storage` (shared by the
    registries of this module: what one holds, a push to the other finds already there)."""

    def __init__(self, root: Path, storage: Path, htpasswd: Path | None):
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        root.mkdir()
        auth = f"auth:\n  htpasswd: {{realm: hlsflow-test, path: {htpasswd}}}\n" if htpasswd else ""
        (root / "config.yml").write_text(
            f"version: 0.1\nlog: {{level: warn}}\nstorage:\n  filesystem: {{rootdirectory: {storage}}}\n"
            f"http:\n  addr: {self.host}\n  secret: {uuid.uuid4().hex}\n{auth}")
        self.log = root / "registry.log"
        self.process = subprocess.Popen(["docker-registry", "serve", str(root / "config.yml")],
                                        stdout=subprocess.DEVNULL, stderr=open(self.log, "w"))
        for _ in range(100):
            if self.answers() or self.process.poll() is not None:
                break
            time.sleep(0.1)
        if not self.answers():
            self.stop()
            pytest.fail(f"docker-registry did not start: {self.log.read_text()[-2000:]}", pytrace=False)

    def answers(self) -> bool:
        try:
            urllib.request.urlopen(f"http://{self.host}/v2/", timeout=2)
            return True
        except urllib.error.HTTPError:  # 401 from the one with auth: it answers
            return True
        except OSError:
            return False

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture(scope="module")
def registries(tmp_path_factory):
    """(with auth, without auth, DOCKER_CONFIG folder logged in to the first)."""
    missing = [tool for tool in ("docker-registry", "htpasswd") if not shutil.which(tool)]
    if missing:
        pytest.fail(f"{' and '.join(missing)} missing: `apt-get install docker-registry apache2-utils` (.ci/run "
                    "does).", pytrace=False)
    root = tmp_path_factory.mktemp("registry")
    htpasswd = root / "htpasswd"
    subprocess.run(["htpasswd", "-Bbc", str(htpasswd), USER, PASSWORD], check=True, capture_output=True)
    guarded = Registry(root / "auth", root / "storage", htpasswd)
    open_ = Registry(root / "open", root / "storage", None)
    config = root / "docker-config"
    config.mkdir()
    # The engine's own login, as a user does it: hlsflow reads no password.
    subprocess.run(["docker", "--config", str(config), "login", "--username", USER, "--password-stdin",
                    guarded.host], input=PASSWORD, text=True, check=True, capture_output=True)
    yield guarded, open_, config
    guarded.stop()
    open_.stop()


def untag(*refs) -> None:
    """Remove these names; an image with other names (the session's built image) stays."""
    for ref in refs:
        subprocess.run(["docker", "rmi", ref], capture_output=True)


def image_id(ref: str, host=None) -> str | None:
    env = {**os.environ, **({"DOCKER_HOST": host} if host else {})}
    proc = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", ref], capture_output=True, text=True,
                          env=env)
    return proc.stdout.strip() if proc.returncode == 0 else None


def hlsflow_latest() -> str:
    return image_id("hlsflow:latest")


@pytest.fixture(scope="module")
def pushed(registries, built_image):
    """The real image, pushed once by `hlsflow push-image` to the registry with auth: its digest
    reference, as push-image hands it on."""
    guarded, _, config = registries
    target = f"{guarded.host}/hlsflow:{TAG}"
    folder = Path(guarded.log).parent
    proc, _ = hlsflow("push-image", target, "--image", built_image, cwd=folder, DOCKER_CONFIG=str(config))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith(f"HLSFLOW_IMAGE={guarded.host}/hlsflow@sha256:"), proc.stdout
    assert f"push {target}: " in proc.stderr and " layers (" in proc.stderr  # progress, in layers
    pinned = last.partition("=")[2]
    yield pinned
    untag(target, pinned)


def tree_hash(out: Path) -> str:
    return json.loads((out / "manifest.json").read_text())["tree_hash"]


def tiny_hlsflow_image(folder: Path) -> tuple[str, str]:
    """(name, id): two small files with hlsflow's labels and an SBOM, under a unique name."""
    name = f"hlsflow-test-registry:{uuid.uuid4().hex[:12]}"
    layer = folder / f"{uuid.uuid4().hex}.tar"
    with tarfile.open(layer, "w") as tar:
        for path, data in {"hello": name.encode(), "usr/share/hlsflow/sbom.cdx.json": SBOM}.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    changes = [arg for key, value in LABELS.items() for arg in ("--change", f"LABEL {key}={value}")]
    made = subprocess.run(["docker", "import", *changes, str(layer), name], capture_output=True, text=True,
                          check=True).stdout.strip()
    return name, made


def test_flow_pulls_the_pushed_image_once_by_digest(registries, pushed, built_image, user_dir, tmp_path_factory):
    """push-image, the local names gone, then HLSFLOW_IMAGE=<registry>/hlsflow@sha256:… and `hlsflow flow`:
    the launcher pulls it once, with progress, and the project is the one the image itself makes."""
    _, _, config = registries
    untag(pushed, pushed.replace(f"@{pushed.partition('@')[2]}", f":{TAG}"))
    assert image_id(pushed) is None  # this engine no longer holds the image under that name
    env = {"DOCKER_CONFIG": str(config), "HLSFLOW_IMAGE": pushed}
    first, _ = hlsflow("flow", "--model", "models/tiny_cnn.keras", "--samples", "models/tiny_samples.npz",
                       "--out", "pulled", cwd=user_dir, **env)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert first.stdout.count("is not in this engine yet: pulling it once") == 1
    assert f"Pulled {pushed}: image " in first.stdout
    # The engine still has the layers (the session's image keeps its other names): none is
    # downloaded here; the Podman test below shows the layer progress of a real download.
    assert f"Pulling {pushed} (Docker)" in first.stdout
    assert image_id(pushed) == image_id(built_image)
    again, _ = hlsflow("convert", "--model", "models/tiny_cnn.keras", "--out", "again", cwd=user_dir, **env)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "pulling" not in again.stdout.lower()  # once: the engine holds it now
    elsewhere = tmp_path_factory.mktemp("local-image")
    shutil.copytree(user_dir / "models", elsewhere / "models")
    local, _ = hlsflow("convert", "--model", "models/tiny_cnn.keras", "--out", "local", cwd=elsewhere,
                       HLSFLOW_IMAGE=built_image)
    assert local.returncode == 0, local.stdout[-3000:] + local.stderr[-3000:]
    assert tree_hash(user_dir / "pulled") == tree_hash(user_dir / "again") == tree_hash(elsewhere / "local")
    manifest = json.loads((user_dir / "pulled" / "manifest.json").read_text())
    assert manifest["image"]["id"] == image_id(built_image)


def test_another_image_pushed_under_the_tag_is_refused(registries, pushed, built_image, user_dir, tmp_path):
    """Someone pushes another image (hlsflow's labels, the same SBOM) under the tag: a user holding the
    digest gets one sentence, from pull-image and from the launcher, and the engine's names stay."""
    guarded, _, config = registries
    name, other = tiny_hlsflow_image(tmp_path)
    target = f"{guarded.host}/hlsflow:{TAG}"
    digest = pushed.partition("@")[2]
    latest = hlsflow_latest()
    try:
        untag(target)  # the built image's name there: push-image would refuse to move it
        moved, _ = hlsflow("push-image", target, "--image", name, cwd=tmp_path, DOCKER_CONFIG=str(config))
        assert moved.returncode == 0, moved.stdout[-2000:] + moved.stderr[-2000:]
        untag(target, pushed)
        before = folder_state(user_dir)
        proc, _ = hlsflow("pull-image", target, "--digest", digest, cwd=user_dir, DOCKER_CONFIG=str(config))
        assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert_one_sentence(proc, f"{target} now names", f"not the {digest[:19]}… you asked for",
                            "another image was pushed under that tag")
        assert image_id(target) is None and image_id(pushed) is None and hlsflow_latest() == latest
        flow, _ = hlsflow("convert", "--model", "models/tiny_cnn.keras", cwd=user_dir, DOCKER_CONFIG=str(config),
                          HLSFLOW_IMAGE=f"{target}@{digest}")
        assert flow.returncode == 2, flow.stdout[-2000:] + flow.stderr[-2000:]
        assert_one_sentence(flow, f"{target} now names", "another image was pushed under that tag")
        assert folder_state(user_dir) == before and image_id(target) is None
        # The digest alone still names exactly the image pushed.
        exact, _ = hlsflow("pull-image", pushed, cwd=user_dir, DOCKER_CONFIG=str(config))
        assert exact.returncode == 0, exact.stdout[-2000:] + exact.stderr[-2000:]
        assert image_id(pushed) == image_id(built_image) != other
    finally:
        untag(target)
        subprocess.run(["docker", "rmi", "-f", other], capture_output=True)
        if hlsflow_latest() != latest:  # pull-image tagged it: as it was, for the other tests
            subprocess.run(["docker", "tag", latest, "hlsflow:latest"], capture_output=True)


def test_push_without_login_is_one_sentence(registries, tmp_path):
    guarded, _, _ = registries
    name, made = tiny_hlsflow_image(tmp_path)
    target = f"{guarded.host}/hlsflow:nologin-{TAG}"
    nobody = tmp_path / "not-logged-in"
    nobody.mkdir()
    try:
        proc, _ = hlsflow("push-image", target, "--image", name, cwd=tmp_path, DOCKER_CONFIG=str(nobody))
        left = image_id(target)
    finally:
        subprocess.run(["docker", "rmi", "-f", made], capture_output=True)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert_one_sentence(proc, f"{guarded.host} refused to push {target}", f"`docker login {guarded.host}`")
    assert left is None  # the name the push made is gone again


def test_pull_of_a_foreign_image_is_refused(registries, tmp_path):
    """An image without hlsflow's labels, in the registry without auth: refused, and not kept."""
    _, open_, _ = registries
    layer = tmp_path / "foreign.tar"
    with tarfile.open(layer, "w") as tar:
        info = tarfile.TarInfo("hello")
        data = uuid.uuid4().hex.encode()
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    target = f"{open_.host}/hlsflow:foreign-{TAG}"
    made = subprocess.run(["docker", "import", str(layer), target], capture_output=True, text=True,
                          check=True).stdout.strip()
    try:
        subprocess.run(["docker", "push", target], check=True, capture_output=True)
        untag(target)
        latest = hlsflow_latest()
        proc, _ = hlsflow("pull-image", target, cwd=tmp_path)
        assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert_one_sentence(proc, f"{target} is not an hlsflow image", "org.opencontainers.image.title=hlsflow")
        assert image_id(target) is None and image_id(made) is None and hlsflow_latest() == latest
    finally:
        subprocess.run(["docker", "rmi", "-f", made], capture_output=True)


def test_registry_without_auth(registries, pushed, built_image, tmp_path):
    """push-image and pull-image with no login at all; the layers are already in the shared
    storage, so the push sends only the manifest: the same digest."""
    _, open_, _ = registries
    target = f"{open_.host}/hlsflow:{TAG}"
    nobody = tmp_path / "no-login"
    nobody.mkdir()
    latest = hlsflow_latest()
    try:
        push, _ = hlsflow("push-image", target, "--image", built_image, cwd=tmp_path, DOCKER_CONFIG=str(nobody))
        assert push.returncode == 0, push.stdout[-2000:] + push.stderr[-2000:]
        pinned = push.stdout.strip().splitlines()[-1].partition("=")[2]
        assert pinned.partition("@")[2] == pushed.partition("@")[2]
        pull, _ = hlsflow("pull-image", target, cwd=tmp_path, DOCKER_CONFIG=str(nobody))
        assert pull.returncode == 0, pull.stdout[-2000:] + pull.stderr[-2000:]
        assert f"Pulled {pinned}: image {image_id(built_image)[7:19]}" in pull.stdout
        assert f"this image is HLSFLOW_IMAGE={pinned}" in pull.stdout  # a tag moves: the digest is handed on
        assert hlsflow_latest() == image_id(built_image)
    finally:
        untag(target, f"{open_.host}/hlsflow@{pushed.partition('@')[2]}")
        if hlsflow_latest() != latest:
            subprocess.run(["docker", "tag", latest, "hlsflow:latest"], capture_output=True)


@pytest.fixture
def podman_for_registry(registries, tmp_path):
    """A `podman system service` of this test's own that knows the registry with auth as one
    without TLS (Podman, unlike Docker, does not assume that of 127.0.0.1), on a storage of its
    own: a fresh runner's engine. Podman's shared storage may hold the image under this digest
    from an earlier run (an untag keeps the digest), and then nothing would be pulled."""
    require_podman("this test")
    guarded, _, _ = registries
    (tmp_path / "registries.conf").write_text(f'[[registry]]\nlocation = "{guarded.host}"\ninsecure = true\n')
    storage = tmp_path / "storage.conf"
    storage.write_text(f'[storage]\ndriver = "overlay"\ngraphroot = "{tmp_path / "graph"}"\n'
                       f'runroot = "{tmp_path / "run"}"\n')
    env = {"CONTAINERS_REGISTRIES_CONF": str(tmp_path / "registries.conf"), "CONTAINERS_STORAGE_CONF": str(storage)}
    try:
        yield from podman_service(tmp_path, **env)
    finally:
        subprocess.run(["podman", "rmi", "--all", "--force"], capture_output=True, env={**os.environ, **env})
        shutil.rmtree(tmp_path / "graph", ignore_errors=True)


def test_flow_under_podman_pulls_by_digest(registries, pushed, built_image, podman_for_registry, user_dir):
    _, _, config = registries
    env = {"DOCKER_CONFIG": str(config), "HLSFLOW_IMAGE": pushed, "DOCKER_HOST": podman_for_registry}
    flow, _ = hlsflow("flow", "--model", "models/tiny_cnn.keras", "--samples", "models/tiny_samples.npz",
                      "--out", "podman", cwd=user_dir, **env)
    assert flow.returncode == 0, flow.stdout[-3000:] + flow.stderr[-3000:]
    assert flow.stdout.count("is not in this engine yet: pulling it once") == 1
    assert f"Pulling {pushed} (Podman)" in flow.stdout and f"Pulled {pushed}: image " in flow.stdout
    assert f"pull {pushed.partition('@')[0]}: " in flow.stderr and " layers (" in flow.stderr
    local, _ = hlsflow("convert", "--model", "models/tiny_cnn.keras", "--out", "docker", cwd=user_dir,
                       HLSFLOW_IMAGE=built_image)
    assert local.returncode == 0, local.stdout[-3000:] + local.stderr[-3000:]
    assert tree_hash(user_dir / "podman") == tree_hash(user_dir / "docker")
    manifest = json.loads((user_dir / "podman" / "manifest.json").read_text())
    assert manifest["image"]["id"].split(":")[-1] == image_id(built_image).split(":")[-1]


# ---- The CI files against the registry, run for real by gitlab-ci-local ----

def gitlab_repo(root: Path, precision: str = "ap_fixed<16,6>") -> Path:
    """A user's repository: a model, its samples, a config, and our GitLab template, committed."""
    from test_ci_files import git_repo

    root.mkdir()
    for name in ("tiny_cnn.keras", "tiny_samples.npz"):
        shutil.copy(DATA / name, root / name)
    shutil.copy(Path(__file__).resolve().parents[2] / "examples" / "ci" / "gitlab-ci.yml", root / ".gitlab-ci.yml")
    (root / "hls4ml_config.yml").write_text(
        "KerasModel: tiny_cnn.keras\nOutputDir: build/tiny_cnn\nIOType: io_stream\n"
        f"HLSConfig:\n  Model: {{Precision: '{precision}', ReuseFactor: 1, Strategy: Latency}}\n"
        "Flow:\n  emulation: {samples: tiny_samples.npz}\n")
    git_repo(root)
    return root


def gitlab_job(root: Path, job: str, docker_config: Path, **variables):
    """gitlab-ci-local running `job` with DOCKER_CONFIG set for the job's docker commands."""
    from test_ci_files import gitlab_ci_local

    cmd = [gitlab_ci_local()] + sum((["--variable", f"{k}={v}"] for k, v in variables.items()), []) + [job]
    return subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=1800,
                          env={**os.environ, "DOCKER_CONFIG": str(docker_config)})


def test_gitlab_template_pulls_from_the_registry_and_gates(registries, pushed, built_image, tmp_path):
    """examples/ci/gitlab-ci.yml as a user's project runs it: the image on the project's registry
    ($CI_REGISTRY, logged in with the job's own credentials: the runner itself is logged in
    nowhere), pinned by digest; green at 100% agreement, and failed at 98.4% with the gate at 99%,
    the outputs kept as artifacts both times."""
    guarded, _, _ = registries
    nowhere = tmp_path / "runner-docker-config"
    nowhere.mkdir()
    untag(pushed, f"{guarded.host}/hlsflow:{TAG}")  # the job has to pull it
    registry = {"HLSFLOW_IMAGE": pushed, "CI_REGISTRY": guarded.host, "CI_REGISTRY_USER": USER,
                "CI_REGISTRY_PASSWORD": PASSWORD}
    green = gitlab_job(gitlab_repo(tmp_path / "green"), "hlsflow", nowhere, **registry)
    assert green.returncode == 0, green.stdout[-4000:] + green.stderr[-3000:]
    assert "PASS  hlsflow" in green.stdout and "Login Succeeded" in green.stdout
    assert f"Digest: {pushed.partition('@')[2]}" in green.stdout  # pulled, by that digest
    assert f"Running image {image_id(built_image)}" in green.stdout
    assert list(nowhere.iterdir()) == []  # the job's token went into a config of its own, removed again
    artifacts = tmp_path / "green" / ".gitlab-ci-local" / "artifacts" / "hlsflow" / "build" / "tiny_cnn"
    assert json.loads((artifacts / "csim.json").read_text())["top1_agreement"] == 1.0

    gated = gitlab_job(gitlab_repo(tmp_path / "gated", precision="ap_fixed<12,5>"), "hlsflow", nowhere, **registry)
    assert gated.returncode != 0, gated.stdout[-4000:]
    assert "FAIL  hlsflow" in gated.stdout
    assert re.search(r"Emulation agrees with Keras on 98\.4% \[[^]]*\] \(\d+ of \d+\) of top-1 labels, below the "
                     r"required 99\.0%", gated.stdout), gated.stdout[-3000:]
    artifacts = tmp_path / "gated" / ".gitlab-ci-local" / "artifacts" / "hlsflow" / "build" / "tiny_cnn"
    assert json.loads((artifacts / "csim.json").read_text())["top1_agreement"] == pytest.approx(63 / 64)


def short_sha(repo: Path) -> str:
    """The commit's 7-hex prefix: in CI_COMMIT_SHORT_SHA (8) and in `git describe --always` (7 or more)."""
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                          check=True).stdout.strip()[:7]


def test_our_gitlab_push_image_job(registries, built_image, docker_client, tmp_path):
    """This repository's own `push-image` job on a copy of the working tree: it builds its own
    pipeline's tag and pushes it to $CI_REGISTRY_IMAGE with the job's credentials; image.env (a
    dotenv report for later jobs) holds the digest, and pull-image takes it."""
    from test_ci_files import REPO, git_repo

    guarded, _, _ = registries
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.splitlines()
    copy = tmp_path / "repo"
    for name in files:
        if (REPO / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, copy / name)
    git_repo(copy)
    nowhere = tmp_path / "runner-docker-config"
    nowhere.mkdir()
    latest, pinned = hlsflow_latest(), None
    try:
        proc = gitlab_job(copy, "push-image", nowhere, HLSFLOW_WHEELHOUSE=REPO / "build" / "wheelhouse",
                          CI_REGISTRY=guarded.host, CI_REGISTRY_IMAGE=f"{guarded.host}/ours",
                          CI_REGISTRY_USER=USER, CI_REGISTRY_PASSWORD=PASSWORD)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-3000:]
        assert "PASS  push-image" in proc.stdout
        line = (copy / ".gitlab-ci-local" / "artifacts" / "push-image" / "image.env").read_text().strip()
        assert line.startswith(f"HLSFLOW_IMAGE={guarded.host}/ours/hlsflow@sha256:"), line
        pinned = line.partition("=")[2]
        # The pipeline's own tag went with the job (its after_script).
        assert not [t for t in engine_tags() if t.startswith("hlsflow:ci-") and short_sha(copy) in t]
        pull, _ = hlsflow("pull-image", pinned, cwd=tmp_path, DOCKER_CONFIG=str(registries[2]))
        assert pull.returncode == 0, pull.stdout[-2000:] + pull.stderr[-2000:]
        assert f"Pulled {pinned}: image " in pull.stdout
    finally:
        # The job's build is the copy's own (another revision): its names go, hlsflow:latest goes back.
        subprocess.run(["docker", "tag", latest, "hlsflow:latest"], capture_output=True)
        made = [t for t in engine_tags() if t.startswith((f"{guarded.host}/ours/", f"hlsflow:{__version__}-",
                                                          "hlsflow:ci-")) and short_sha(copy) in t]
        untag(*made, *([pinned] if pinned else []))
