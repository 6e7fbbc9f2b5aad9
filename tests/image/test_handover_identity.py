"""Handing the image on proves which image it carries, and replaces nothing silently: the installed
`hlsflow save-image`/`load-image` from a user's folder against the real engine, and HLSFLOW_IMAGE
naming an image that is not hlsflow's. Foreign and altered images are tiny ones this module makes
with `docker import` under unique names and removes again; the real image is only the session's
tarball (conftest.saved_image), never saved again here."""

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import pytest

from hlsflow.errors import FlowError
from hlsflow.image import handover
from state.test_safety import assert_one_sentence, folder_state

LABELS = {"org.opencontainers.image.title": "hlsflow", "org.opencontainers.image.version": "0.0.0",
          "org.opencontainers.image.revision": "0123456789abcdef0123456789abcdef01234567"}
SBOM = b'{"bomFormat": "CycloneDX", "specVersion": "1.5", "components": []}\n'


def hlsflow(*args, cwd, **env):
    """The installed `hlsflow` command as a user runs it on the host (its pid names its temporary tag)."""
    script = Path(sys.executable).parent / "hlsflow"
    environ = {k: v for k, v in os.environ.items() if k not in ("HLSFLOW_NATIVE", "HLSFLOW_IN_IMAGE", "HLSFLOW_IMAGE")}
    environ.update(env)
    proc = subprocess.Popen([str(script), *map(str, args)], cwd=cwd, env=environ, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=600)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), proc.pid


def engine_tags() -> dict:
    """{name: image id} of every tagged image on the engine."""
    out = subprocess.run(["docker", "image", "ls", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"],
                         capture_output=True, text=True, check=True).stdout
    return dict(line.split() for line in out.splitlines() if not line.startswith("<none>"))


def image_present(image_id: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", image_id], capture_output=True).returncode == 0


def tiny_image(folder: Path, labels: dict, sbom: bool) -> tuple[str, str]:
    """(name, id) of an image of two small files made with `docker import` under a unique name."""
    name = f"hlsflow-test-handover:{uuid.uuid4().hex[:12]}"
    layer = folder / f"{name.partition(':')[2]}.tar"
    with tarfile.open(layer, "w") as tar:
        files = {"hello": name.encode()}  # a unique file: a unique image id
        if sbom:
            files["usr/share/hlsflow/sbom.cdx.json"] = SBOM
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    changes = [arg for key, value in labels.items() for arg in ("--change", f"LABEL {key}={value}")]
    image_id = subprocess.run(["docker", "import", *changes, str(layer), name], capture_output=True, text=True,
                              check=True).stdout.strip()
    return name, image_id


def remove_image(image_id: str) -> None:
    subprocess.run(["docker", "rmi", "-f", image_id], capture_output=True)


def write_sidecar(tarball: Path, digest: str, identity: dict | None) -> None:
    line = "" if identity is None else f"{handover.IDENTITY_PREFIX}{json.dumps(identity)}\n"
    tarball.with_name(tarball.name + ".sha256").write_text(f"{digest}  {tarball.name}\n{line}")


def identity_of(tarball: Path) -> dict:
    lines = tarball.with_name(tarball.name + ".sha256").read_text().splitlines()
    return json.loads(lines[1][len(handover.IDENTITY_PREFIX):])


@pytest.fixture
def latest_kept(docker_client):
    """A list for the ids of the test's own images: should the code under test be broken and move
    hlsflow:latest onto one of them, it is put back afterwards, for the other tests, and the
    images (unique to this module) go again."""
    before = docker_client.images.get("hlsflow:latest").id
    made = []
    yield made
    if engine_tags().get("hlsflow:latest") in made:
        docker_client.images.get(before).tag("hlsflow", "latest")
    for image_id in made:
        remove_image(image_id)


@pytest.fixture(scope="module")
def foreign_tarball(tmp_path_factory):
    """(tarball, image id): a tiny image without hlsflow's labels, saved and gzip'd, its manifest.json
    naming it hlsflow:latest as a prank would, and the image removed from the engine again."""
    folder = tmp_path_factory.mktemp("foreign")
    name, image_id = tiny_image(folder, {}, sbom=False)
    try:
        plain = folder / "plain.tar"
        subprocess.run(["docker", "save", "-o", str(plain), name], check=True, capture_output=True)
    finally:
        remove_image(image_id)
    tarball = folder / "hlsflow-latest.tar.gz"
    with tarfile.open(plain) as source, gzip.open(tarball, "wb") as gz, tarfile.open(fileobj=gz, mode="w") as out:
        for member in source.getmembers():
            data = source.extractfile(member).read() if member.isreg() else None
            if member.name == "manifest.json":
                manifest = json.loads(data)
                manifest[0]["RepoTags"] = ["hlsflow:latest"]
                data = json.dumps(manifest).encode()
                member.size = len(data)
            out.addfile(member, io.BytesIO(data) if data is not None else None)
    assert not image_present(image_id)
    return tarball, image_id


@pytest.fixture(scope="module")
def labelled_tarball(tmp_path_factory):
    """(tarball, image id): a tiny image with hlsflow's labels and an SBOM, saved by save_image
    (so its .sha256 records its identity), then removed from the engine."""
    folder = tmp_path_factory.mktemp("labelled")
    name, image_id = tiny_image(folder, LABELS, sbom=True)
    try:
        tarball = handover.save_image(folder / "saved", tag=name)
    finally:
        remove_image(image_id)
    assert identity_of(tarball)["image_id"] == image_id
    return tarball, image_id


def user_copy(tarball: Path, folder: Path) -> Path:
    """The tarball in a user's folder (a hard link: the same bytes, no copy), without its .sha256."""
    folder.mkdir(exist_ok=True)
    target = folder / tarball.name
    os.link(tarball, target)
    return target


@pytest.mark.parametrize("existing", ["backup.tar.gz", "backup.tar.gz.sha256"])
def test_save_image_onto_an_existing_file_is_refused(tmp_path, docker_client, existing):
    (tmp_path / existing).write_bytes(b"someone's own file\n")
    (tmp_path / "notes.txt").write_text("untouched\n")
    before = folder_state(tmp_path)
    proc, _ = hlsflow("save-image", "--path", "backup.tar.gz", cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert_one_sentence(proc, f"{existing} already exists", "--force")
    assert folder_state(tmp_path) == before  # byte for byte, and nothing added


def test_save_image_with_force_replaces_the_pair(tmp_path, docker_client):
    """--force replaces the tarball and its .sha256 (a tiny image, in-process: the command saves
    hlsflow:latest, 1.6 GB), and leaves no partial file behind."""
    name, image_id = tiny_image(tmp_path, LABELS, sbom=True)
    try:
        old = tmp_path / "backup.tar.gz"
        old.write_bytes(b"an older tarball\n")
        old.with_name(old.name + ".sha256").write_text(f"{'0' * 64}  backup.tar.gz\n")
        with pytest.raises(FlowError, match="already exists"):
            handover.save_image(old, tag=name)
        assert old.read_bytes() == b"an older tarball\n"
        assert handover.save_image(old, tag=name, force=True) == old
    finally:
        remove_image(image_id)
    digest, recorded = handover.read_checksum_file(old.with_name(old.name + ".sha256"), old.name)
    assert digest == hashlib.sha256(old.read_bytes()).hexdigest()
    assert recorded["image_id"] == image_id and recorded["revision"] == LABELS["org.opencontainers.image.revision"]
    assert recorded["sbom_sha256"] == hashlib.sha256(SBOM).hexdigest()
    assert sorted(p.name for p in tmp_path.iterdir() if "backup" in p.name) == ["backup.tar.gz", "backup.tar.gz.sha256"]
    # sha256sum -c skips the identity line: the CI templates check the file with it.
    check = subprocess.run(["sha256sum", "-c", "--strict", "backup.tar.gz.sha256"], cwd=tmp_path, capture_output=True,
                           text=True)
    assert check.returncode == 0 and check.stdout == "backup.tar.gz: OK\n", check.stdout + check.stderr


@pytest.mark.parametrize("sidecar", ["digest only", "identity of the foreign image"])
def test_load_image_refuses_a_foreign_image_with_a_valid_checksum(foreign_tarball, tmp_path, latest_kept, sidecar):
    tarball, image_id = foreign_tarball
    latest_kept.append(image_id)
    copy = user_copy(tarball, tmp_path / "user")
    write_sidecar(copy, hashlib.sha256(copy.read_bytes()).hexdigest(),
                  None if sidecar == "digest only" else
                  {"image_id": image_id, "tag": "hlsflow:latest", "revision": "x", "version": "x", "sbom_sha256": None})
    before = folder_state(copy.parent)
    proc, pid = hlsflow("load-image", copy.name, cwd=copy.parent)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert_one_sentence(proc, f"holds image {image_id[7:19]}", "not an hlsflow image",
                        "org.opencontainers.image.title=hlsflow")
    # Refused before loading: the image never reached the engine, so no name points at it.
    # (hlsflow:latest is not compared with before_latest: test_ci_files' job test retags it for a
    # while, from another worker.)
    tags = engine_tags()
    assert not image_present(image_id)
    assert tags["hlsflow:latest"] != image_id
    assert not [t for t in tags if t.startswith(f"hlsflow:loading-{pid}-")]
    assert folder_state(copy.parent) == before


@pytest.mark.parametrize("altered", ["revision", "image_id", "sbom_sha256"])
def test_load_image_refuses_an_image_other_than_the_recorded_one(labelled_tarball, tmp_path, latest_kept, altered):
    """The revision and id are compared with the tarball's config before loading; the SBOM with the
    image loaded under the temporary tag, which then goes again with the image it brought."""
    tarball, image_id = labelled_tarball
    latest_kept.append(image_id)
    copy = user_copy(tarball, tmp_path / "user")
    identity = identity_of(tarball)
    identity[altered] = {"revision": "fedcba9876543210fedcba9876543210fedcba98", "sbom_sha256": "1" * 64,
                         "image_id": "sha256:" + "2" * 64}[altered]
    write_sidecar(copy, hashlib.sha256(copy.read_bytes()).hexdigest(), identity)
    before = folder_state(copy.parent)
    proc, pid = hlsflow("load-image", copy.name, cwd=copy.parent)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    words = {"revision": ("holds revision 0123456789ab, not the revision fedcba987654",),
             "image_id": (f"holds image {image_id[7:19]}, not the image 222222222222",),
             "sbom_sha256": ("The SBOM in", "is not the one its .sha256 records")}[altered]
    assert_one_sentence(proc, *words, "copy both files again")
    tags = engine_tags()
    assert not image_present(image_id)  # the SBOM case: loaded under the temporary tag, and gone again
    assert tags["hlsflow:latest"] != image_id
    assert identity_of(tarball)["tag"] not in tags  # the name in the tarball's manifest.json was never applied
    assert not [t for t in tags if t.startswith(f"hlsflow:loading-{pid}-")]
    assert folder_state(copy.parent) == before


def test_load_image_accepts_an_upper_case_digest(saved_image, built_image, docker_client, tmp_path):
    """The session's real tarball with an older, digest-only .sha256 in upper case: loaded (labels
    checked), tagged hlsflow:latest and the tag it was saved as, no temporary tag left."""
    copy = user_copy(saved_image, tmp_path / "user")
    digest = saved_image.with_name(saved_image.name + ".sha256").read_text().split()[0]
    write_sidecar(copy, digest.upper(), None)
    built_id = docker_client.images.get(built_image).id
    proc, pid = hlsflow("load-image", copy.name, cwd=copy.parent)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "records no identity" in proc.stdout and f"Loaded {built_id} (hlsflow:latest, {built_image}" in proc.stdout
    tags = engine_tags()
    assert tags["hlsflow:latest"] == tags[built_image] == built_id
    assert not [t for t in tags if t.startswith(f"hlsflow:loading-{pid}-")]


@pytest.mark.parametrize("content", ["", "\n  \n"])
def test_load_image_with_an_empty_checksum_file_is_one_sentence(labelled_tarball, tmp_path, content):
    copy = user_copy(labelled_tarball[0], tmp_path / "user")
    copy.with_name(copy.name + ".sha256").write_text(content)
    before = folder_state(copy.parent)
    proc, _ = hlsflow("load-image", copy.name, cwd=copy.parent)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert_one_sentence(proc, f"{copy.name}.sha256 is empty, not a checksum file", "copy it again")
    assert folder_state(copy.parent) == before


def test_hlsflow_image_naming_a_foreign_image_is_one_sentence(tmp_path, docker_client):
    name, image_id = tiny_image(tmp_path, {}, sbom=False)
    user = tmp_path / "user"
    user.mkdir()
    (user / "notes.txt").write_text("untouched\n")
    try:
        proc, _ = hlsflow("versions", cwd=user, HLSFLOW_IMAGE=name)
        containers = subprocess.run(["docker", "ps", "-aq", "--filter", f"ancestor={image_id}"], capture_output=True,
                                    text=True, check=True).stdout
    finally:
        remove_image(image_id)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert_one_sentence(proc, f"HLSFLOW_IMAGE names {name}", "org.opencontainers.image.title=hlsflow label")
    assert containers == ""  # refused before any container was made
    assert folder_state(user) == {"notes.txt": hashlib.sha256(b"untouched\n").hexdigest()}
