"""Handing the image on: a compressed tarball with its sha256 beside it, and loading one back
after checking it. Works against Docker and Podman alike (both through engine.docker_client).

The `.sha256` file keeps `sha256sum -c`'s line first; a comment line after it (which `sha256sum -c`
skips) records which image the tarball holds: its id (the sha256 of its config), its tag, its
revision and version labels and the sha256 of its SBOM. load-image reads the tarball's own
manifest.json and config before loading anything, refuses an image without hlsflow's labels or
other than the one recorded, loads it under a temporary tag of its own (never under the names the
tarball carries), checks what the engine loaded, and only then tags it hlsflow:latest.

The checksum file travels with the tarball, so the pair proves the copy is whole and consistent,
not who made it: compare the image id load-image prints with the sender's when that matters.
"""

import copy
import gzip
import hashlib
import io
import json
import os
import tarfile
import uuid
import zlib
from pathlib import Path

from ..console import Progress, say, step, warn
from ..errors import FlowError, from_os_error
from ..files import sha256
from .containers import (REPO, REVISION_LABEL, VERSION_LABEL, docker_client, get_image, image_ref, image_sbom_bytes,
                         missing_label)

DEFAULT_DIR = Path("build")
# The comment line of the .sha256 file that records the image's identity.
IDENTITY_PREFIX = "# hlsflow-identity "
# A docker-save tarball's manifest and image configs are small JSON files (the image's config is
# ~20 kB); its layers are large. Only members up to this size are kept while reading it.
SMALL_MEMBER = 1 << 20
SMALL_TOTAL = 64 << 20


def save_image(path=None, tag: str = "latest", force: bool = False) -> Path:
    """Write the image as `hlsflow-<tag>.tar.gz` (into `path`, a directory, default build/, or
    to `path` itself when it ends in .tar.gz) plus a `.sha256` file next to it. An existing
    tarball or checksum file there is FlowError unless `force`."""
    import docker

    client = docker_client()
    ref = image_ref(tag)
    image = get_image(client, ref)
    out = Path(path) if path else DEFAULT_DIR
    if not out.name.endswith(".tar.gz"):
        out = out / f"{REPO}-{ref.rpartition(':')[2]}.tar.gz"
    sums = out.with_name(out.name + ".sha256")
    for existing in (out, sums):
        if existing.is_dir():
            raise FlowError(f"{existing} is a folder: give --path a file name ending in .tar.gz, or a folder to "
                            "write into.")
        if (existing.exists() or existing.is_symlink()) and not force:
            raise FlowError(f"{existing} already exists: give --path another name, or add --force to replace "
                            f"{out.name} and its .sha256.")
    identity = _identity(client, image, ref)
    step(f"Saving {ref} to {out}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        # A name of our own beside the target, created exclusively: a crash leaves no file that
        # looks complete, and nothing someone else wrote is overwritten.
        partial, partial_sums = _unique(out), None
        raw = open(partial, "xb")
    except OSError as exc:
        raise from_os_error(exc, out.parent) from exc
    try:
        _write_tarball(client, ref, image, raw)
        # The tag could have moved to another image while it was saved: the tarball would then
        # not be the image the checksum file names.
        if get_image(client, ref).id != image.id:
            raise FlowError(f"{ref} was retagged while it was being saved: run save-image again.")
        digest = sha256(partial)
        partial_sums = _unique(sums)
        with open(partial_sums, "x") as f:
            f.write(f"{digest}  {out.name}\n{IDENTITY_PREFIX}{json.dumps(identity, sort_keys=True)}\n")
        os.replace(partial, out)
        os.replace(partial_sums, sums)
    except OSError as exc:
        raise from_os_error(exc, out.parent) from exc
    except docker.errors.APIError as exc:
        raise FlowError(f"The engine could not save {ref} ({exc.explanation or exc}): fix what it names and run "
                        "save-image again.") from exc
    finally:
        # Ours alone (created exclusively); after the renames they are gone already.
        raw.close()
        for leftover in (partial, partial_sums):
            if leftover:
                leftover.unlink(missing_ok=True)
    say(f"Saved {out} ({out.stat().st_size / 1e6:.0f} MB, sha256 {digest[:12]}; image {image.id[7:19]}, "
        f"revision {identity['revision'][:12]})")
    return out


def _identity(client, image, ref: str) -> dict:
    """What the .sha256 file records of the image; FlowError for an image that is not hlsflow's."""
    labels = image.labels or {}
    missing = missing_label(labels)
    if missing:
        raise FlowError(f"{ref} is not an hlsflow image (it has no {missing} label): save an image built by "
                        "`invoke build-image` or loaded with `hlsflow load-image`.")
    return {"image_id": image.id, "tag": ref, "revision": labels[REVISION_LABEL],
            "version": labels[VERSION_LABEL],
            "sbom_sha256": hashlib.sha256(image_sbom_bytes(client, image.id)).hexdigest()}


def _unique(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.partial")


def _write_tarball(client, ref: str, image, raw) -> None:
    """`docker save` of `ref`, gzip'd into the open binary file `raw` (closed after)."""
    progress = Progress(max(1, image.attrs["Size"] >> 20), "docker save (MB)")
    written = 0
    # Streamed chunk by chunk: the image is larger than memory may allow. gzip level 3: the 1.6 GB
    # image in 23 CPU-s and 519 MiB, against 49 CPU-s and 484 MiB at level 6 (measured 2026-12-02).
    with raw, gzip.GzipFile(
            filename="", mode="wb", fileobj=raw, compresslevel=3, mtime=0) as gz:
        for chunk in client.api.get_image(ref, chunk_size=1 << 20):
            gz.write(chunk)
            written += len(chunk)
            progress.advance((written >> 20) - progress.done)
    progress.close()


def load_image(path) -> str:
    """Load a tarball written by save_image after checking it against its .sha256 file and
    checking which image it holds; it is also tagged hlsflow:latest. Returns the image id."""
    path = Path(path)
    sums = path.with_name(path.name + ".sha256")
    if not path.is_file():
        raise FlowError(f"No image tarball at {path}: give the path of a file written by "
                        "`hlsflow save-image`.")
    if not sums.is_file():
        raise FlowError(f"{sums.name} is missing next to {path.name}: copy it along with the "
                        "tarball, it holds the checksum to verify.")
    try:
        expected, recorded = read_checksum_file(sums, path.name)
        step(f"Checking {path.name} against {sums.name}")
        actual = sha256(path)
    except OSError as exc:
        raise FlowError(f"Cannot read {exc.filename or path} ({exc.strerror or exc}): check that you may read "
                        "it, or copy it again.") from exc
    if actual != expected:
        raise FlowError(f"{path.name} does not match the checksum in {sums.name}: the copy is "
                        "damaged or incomplete, copy it again.")
    found = tarball_identity(path)
    check_identity(found, recorded, path.name, sums.name)
    if recorded is None:
        say(f"{sums.name} records no identity (an older save-image wrote it): {path.name} was checked by "
            "its labels only.")
    return _load_checked(path, found, recorded)


def read_checksum_file(sums: Path, tarball: str) -> tuple[str, dict | None]:
    """(the sha256 in lower case, the recorded identity or None for an older file)."""
    again = f"copy it again from where {tarball} came from (`hlsflow save-image` writes both)"
    with open(sums, "rb") as f:
        text = f.read(1 << 16).decode(errors="replace")  # a checksum file is a few hundred bytes
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise FlowError(f"{sums.name} is empty, not a checksum file: {again}.")
    digest = lines[0].split()[0].lstrip("\\")  # sha256sum escapes a line whose name has a backslash
    if len(digest) != 64 or not all(c in "0123456789abcdefABCDEF" for c in digest):
        raise FlowError(f"{sums.name} is not a checksum file (its first line is not a sha256): {again}.")
    recorded = None
    for line in lines[1:]:
        if line.startswith(IDENTITY_PREFIX):
            try:
                recorded = json.loads(line[len(IDENTITY_PREFIX):])
            except json.JSONDecodeError:
                recorded = None
            if not isinstance(recorded, dict) or not isinstance(recorded.get("image_id"), str):
                raise FlowError(f"The identity line of {sums.name} is damaged: {again}.")
    return digest.lower(), recorded


def tarball_identity(path: Path) -> dict:
    """{"image_id", "labels", "repo_tags"} of the one image in a gzip'd docker-save tarball, from its
    manifest.json and image config, read in one pass through the stream: nothing is extracted to
    disk or loaded. FlowError for anything else."""
    kept, total = {}, 0
    try:
        with gzip.open(path, "rb") as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
            for member in tar:
                if member.isreg() and member.size <= SMALL_MEMBER and total + member.size <= SMALL_TOTAL:
                    kept[member.name] = tar.extractfile(member).read()
                    total += member.size
        entries = json.loads(kept["manifest.json"])
        if not (isinstance(entries, list) and len(entries) == 1 and isinstance(entries[0], dict)):
            raise ValueError("its manifest.json does not list exactly one image")
        config_bytes = kept[entries[0]["Config"]]
        config = json.loads(config_bytes)
        labels = (config.get("config") or {}).get("Labels") or {}
        repo_tags = entries[0].get("RepoTags") or []
        if not (isinstance(labels, dict) and isinstance(repo_tags, list)):
            raise ValueError("its manifest or config is malformed")
        labels = {k: v for k, v in labels.items() if isinstance(v, str)}  # what engines take as labels
    except KeyError as exc:
        raise _not_an_image(path, f"it has no {exc.args[0]}") from None
    except (OSError, EOFError, zlib.error, tarfile.TarError, ValueError, TypeError, AttributeError) as exc:
        raise _not_an_image(path, str(exc) or type(exc).__name__) from None
    return {"image_id": "sha256:" + hashlib.sha256(config_bytes).hexdigest(), "labels": labels,
            "repo_tags": [t for t in repo_tags if isinstance(t, str)]}


def _not_an_image(path: Path, why: str) -> FlowError:
    return FlowError(f"{path.name} is not an image tarball written by `hlsflow save-image` ({why}): ask for "
                     "the tarball and .sha256 save-image wrote.")


def check_identity(found: dict, recorded: dict | None, tarball: str, sums: str) -> None:
    """FlowError unless the tarball's image is an hlsflow image and the one `sums` records."""
    short = found["image_id"][7:19]
    missing = missing_label(found["labels"])
    if missing:
        raise FlowError(f"{tarball} holds image {short}, which is not an hlsflow image (it has no {missing} "
                        "label): load only a tarball written by `hlsflow save-image`.")
    if recorded is None:
        return
    revision = found["labels"][REVISION_LABEL]
    if recorded["image_id"] != found["image_id"]:
        raise FlowError(f"{tarball} holds image {short}, not the image {recorded['image_id'][7:19]} that {sums} "
                        "records: copy both files again from the same save-image.")
    if recorded.get("revision") != revision:
        raise FlowError(f"{tarball} holds revision {revision[:12]}, not the revision "
                        f"{str(recorded.get('revision'))[:12]} that {sums} records: copy both files again "
                        "from the same save-image.")


def _load_checked(path: Path, found: dict, recorded: dict | None) -> str:
    """Load under a temporary tag of our own, check the engine's image, then tag it hlsflow:latest
    (and the hlsflow tag it was saved as). On failure only the temporary tag goes again."""
    import docker
    import requests

    client = docker_client()
    # Unique, and says which process made it should one ever be left.
    temporary = f"{REPO}:loading-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    step(f"Loading {path.name}")
    try:
        try:
            # Decompressed here, streamed: Docker would take the gzip as it is, Podman's API would not.
            client.images.load(_retagged_tar(path, temporary))
            image = client.images.get(temporary)
        except (docker.errors.DockerException, requests.exceptions.RequestException, OSError, EOFError,
                zlib.error, tarfile.TarError) as exc:
            raise FlowError(f"The engine could not load {path.name} ({exc}): check that it was written by "
                            "`hlsflow save-image`.") from exc
        if image.id != found["image_id"]:
            raise FlowError(f"The engine loaded {path.name} as image {image.id[7:19]}, not the checked "
                            f"{found['image_id'][7:19]}: nothing was tagged; load it with `docker load` "
                            "and compare the ids yourself.")
        if recorded and recorded.get("sbom_sha256"):
            if hashlib.sha256(image_sbom_bytes(client, image.id)).hexdigest() != recorded["sbom_sha256"]:
                raise FlowError(f"The SBOM in {path.name} is not the one its .sha256 records: copy both files "
                                "again from the same save-image.")
        saved_as = [recorded["tag"]] if recorded and isinstance(recorded.get("tag"), str) else found["repo_tags"]
        # Only names in hlsflow's own repository: a tarball could name any image of the user's.
        targets = dict.fromkeys([f"{REPO}:latest", *(t for t in saved_as if t.startswith(f"{REPO}:"))])
        for target in targets:
            client.api.tag(image.id, REPO, target.partition(":")[2])
    except BaseException:
        _untag(client, temporary)
        raise
    _untag(client, temporary)
    say(f"Loaded {image.id} ({', '.join(targets)}; revision {found['labels'][REVISION_LABEL][:12]})")
    return image.id


def _untag(client, ref: str) -> None:
    """Remove our temporary tag: only a tag where the image has others; where it is the last one,
    the image it named (loaded just now, or an untagged copy of the same bytes) goes too."""
    import docker

    try:
        client.api.remove_image(ref, noprune=True)
    except docker.errors.ImageNotFound:
        pass
    except docker.errors.APIError as exc:
        warn(f"could not remove the temporary tag {ref} ({exc.explanation or exc}): `docker rmi {ref}` removes it.")


def _retagged_tar(path: Path, temporary: str):
    """The tarball's tar, decompressed, in chunks, with manifest.json naming only `temporary`: the
    engine tags whatever names manifest.json lists, and the tarball's own could be any image's."""
    with gzip.open(path, "rb") as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
        for member in tar:
            source = tar.extractfile(member) if member.isreg() else None
            if member.name == "manifest.json":
                # The one image checked, named only `temporary` (the file could have changed since).
                entries = [dict(json.loads(source.read())[0], RepoTags=[temporary])]
                data = json.dumps(entries).encode()
                member = copy.copy(member)  # the reader's own copy keeps the size it read
                member.size = len(data)
                source = io.BytesIO(data)
            yield member.tobuf(tarfile.PAX_FORMAT)
            if source is not None:
                for chunk in iter(lambda: source.read(1 << 20), b""):
                    yield chunk
                yield b"\0" * (-member.size % tarfile.BLOCKSIZE)
    yield b"\0" * (2 * tarfile.BLOCKSIZE)  # the end-of-archive marker
