"""Handing the image on: a compressed tarball with its sha256 beside it, and loading one back
after checking it. Works against Docker and Podman alike (both through engine.docker_client)."""

import gzip
import os
from pathlib import Path

from ..console import Progress, say, step
from ..errors import FlowError
from ..files import sha256
from .containers import REPO, docker_client, get_image, image_ref

DEFAULT_DIR = Path("build")


def save_image(path=None, tag: str = "latest") -> Path:
    """Write the image as `hlsflow-<tag>.tar.gz` (into `path`, a directory, default build/, or
    to `path` itself when it ends in .tar.gz) plus a `.sha256` file next to it."""
    client = docker_client()
    ref = image_ref(tag)
    image = get_image(client, ref)
    out = Path(path) if path else DEFAULT_DIR
    if not out.name.endswith(".tar.gz"):
        out = out / f"{REPO}-{ref.rpartition(':')[2]}.tar.gz"
    out.parent.mkdir(parents=True, exist_ok=True)
    step(f"Saving {ref} to {out}")
    partial = out.with_name(out.name + ".partial")
    progress = Progress(max(1, image.attrs["Size"] >> 20), "docker save (MB)")
    written = 0
    # Streamed chunk by chunk: the image is larger than memory may allow. gzip level 3: the 1.6 GB
    # image in 23 CPU-s and 519 MiB, against 49 CPU-s and 484 MiB at level 6 (measured 2026-12-02).
    with open(partial, "wb") as raw, gzip.GzipFile(
            filename="", mode="wb", fileobj=raw, compresslevel=3, mtime=0) as gz:
        for chunk in client.api.get_image(ref, chunk_size=1 << 20):
            gz.write(chunk)
            written += len(chunk)
            progress.advance((written >> 20) - progress.done)
    progress.close()
    os.replace(partial, out)
    digest = sha256(out)
    out.with_name(out.name + ".sha256").write_text(f"{digest}  {out.name}\n")
    say(f"Saved {out} ({out.stat().st_size / 1e6:.0f} MB, sha256 {digest[:12]})")
    return out


def load_image(path) -> str:
    """Load a tarball written by save_image after checking it against its .sha256 file; it is
    also tagged hlsflow:latest. Returns the image id."""
    path = Path(path)
    sums = path.with_name(path.name + ".sha256")
    if not path.is_file():
        raise FlowError(f"No image tarball at {path}: give the path of a file written by "
                        "`hlsflow save-image`.")
    if not sums.is_file():
        raise FlowError(f"{sums.name} is missing next to {path.name}: copy it along with the "
                        "tarball, it holds the checksum to verify.")
    import docker

    expected = sums.read_text().split()[0]
    step(f"Checking {path.name} against {sums.name}")
    if sha256(path) != expected:
        raise FlowError(f"{path.name} does not match the checksum in {sums.name}: the copy is "
                        "damaged or incomplete, copy it again.")
    client = docker_client()
    step(f"Loading {path.name}")
    try:
        # Decompressed here, streamed: Docker would take the gzip as it is, Podman's API would not.
        with gzip.open(path, "rb") as f:
            image = client.images.load(f)[0]
    except (docker.errors.APIError, IndexError, OSError, EOFError) as exc:
        raise FlowError(f"Docker could not load {path.name} ({exc}): check that it was written "
                        "by `hlsflow save-image`.") from exc
    image.tag(REPO, "latest")
    image.reload()
    say(f"Loaded {image.id} ({', '.join(sorted(image.tags))})")
    return image.id


