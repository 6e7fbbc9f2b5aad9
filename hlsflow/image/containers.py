"""Which container engine the host side talks to: Docker or Podman, through the Docker API.

Found in this order: DOCKER_HOST when set; Docker's socket; Podman's Docker-compatible socket
(`podman system service`), rootful or the user's own. Podman speaks the same API, so every other
module sees one Docker SDK client whatever the engine.
"""

import os
import re
import shutil
from pathlib import Path

from ..errors import FlowError

REPO = "hlsflow"
DEFAULT_IMAGE = "hlsflow:latest"
KERAS3_REPO = "hlsflow-keras3"  # the keras3 lane's image (image/lanes.py)
# Where docker/Dockerfile puts the SBOM (its HLSFLOW_SBOM).
SBOM_IN_IMAGE = "/usr/share/hlsflow/sbom.cdx.json"
# Labels docker/Dockerfile gives every hlsflow image. The title says it is one, the revision which
# commit it was built from (save-image records it, load-image compares it).
TITLE_LABEL = "org.opencontainers.image.title"
VERSION_LABEL = "org.opencontainers.image.version"
REVISION_LABEL = "org.opencontainers.image.revision"
NO_DAEMON = ("Cannot reach the Docker daemon: start it (e.g. `sudo systemctl start docker`) "
             "or set DOCKER_HOST.")
NO_PODMAN_SERVICE = ("Podman is installed but its Docker-compatible service is not running: start it "
                     "with `podman system service --time=0 &` (or `systemctl --user enable --now "
                     "podman.socket`), or set DOCKER_HOST.")


def candidate_sockets() -> list[str]:
    """Docker's socket, then Podman's (rootful, then this user's)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
    paths = ["/var/run/docker.sock", "/run/podman/podman.sock", f"{runtime}/podman/podman.sock"]
    return [f"unix://{p}" for p in paths if Path(p).exists()]


def _connect(base_url=None):
    """A client whose engine answered, or None."""
    import requests

    import docker  # host-side dependency only, so `import hlsflow` stays cheap

    try:
        client = docker.from_env(timeout=15) if base_url is None else docker.DockerClient(
            base_url=base_url, timeout=15)
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException):
        return None
    # Requests then never time out: a build step or a synthesis can stay silent for many minutes.
    client.api.timeout = None
    return client


def docker_client():
    """A Docker SDK client of the first engine that answers, else FlowError saying what to start."""
    if os.environ.get("DOCKER_HOST"):
        client = _connect()
        if client is None:
            raise FlowError(NO_DAEMON)
        return client
    for url in candidate_sockets():
        client = _connect(url)
        if client is not None:
            return client
    raise FlowError(NO_PODMAN_SERVICE if shutil.which("podman") and not shutil.which("dockerd")
                    else NO_DAEMON)


def runtime_name(client) -> str:
    """'Podman' or 'Docker', from what the engine says of itself."""
    try:
        components = client.version().get("Components") or []
    except Exception:  # an engine that cannot say is treated as Docker
        return "Docker"
    return "Podman" if any("podman" in str(c.get("Name", "")).lower() for c in components) else "Docker"


def image_name(image=None) -> str:
    """The image the flow runs in: an explicit one, else HLSFLOW_IMAGE, else hlsflow:latest."""
    return image_ref(image or os.environ.get("HLSFLOW_IMAGE") or DEFAULT_IMAGE)


# An image reference as Docker and Podman accept it: [host[:port]/]path[:tag][@digest].
_REFERENCE = re.compile(r"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
                        r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?"
                        r"(?:@[A-Za-z][A-Za-z0-9]*:[0-9a-fA-F]{32,})?$")


def image_ref(tag: str) -> str:
    """`latest` -> `hlsflow:latest`; full references pass through; FlowError for what no engine
    would take as an image name."""
    ref = tag if ":" in tag or "/" in tag else f"{REPO}:{tag}"
    if not _REFERENCE.match(ref):
        raise FlowError(f"'{tag}' is not an image name Docker or Podman accept (it comes from HLSFLOW_IMAGE or "
                        "the command line): give e.g. hlsflow:latest, or unset HLSFLOW_IMAGE.")
    return ref


def missing_image_message(ref: str) -> str:
    return (f"Image {ref} not found: load it with `hlsflow load-image FILE`, pull it (set HLSFLOW_IMAGE to "
            "<registry>/hlsflow@sha256:…), or build it in a checkout with `invoke build-image`; `hlsflow --fetch "
            "TASK` does the first that applies.")


def get_image(client, tag: str):
    import docker

    ref = image_ref(tag)
    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        raise FlowError(missing_image_message(ref)) from None


def missing_label(labels) -> str | None:
    """The first of hlsflow's labels that `labels` (an image's) lacks, as it should read; None for an
    hlsflow image. Labels are a guard against the wrong image, not a proof of origin."""
    labels = labels or {}
    if labels.get(TITLE_LABEL) != REPO:
        return f"{TITLE_LABEL}={REPO}"
    return next((name for name in (VERSION_LABEL, REVISION_LABEL) if not labels.get(name)), None)


def image_exists(tag: str = "latest") -> bool:
    import docker

    try:
        docker_client().images.get(image_ref(tag))
        return True
    except docker.errors.ImageNotFound:
        return False


def registry_host(ref: str) -> str | None:
    """The registry a reference names (`ghcr.io`, `127.0.0.1:5000`), as the engines read it; None
    for a local name such as hlsflow:latest (which `docker pull` would look up on Docker Hub)."""
    first, slash, _ = ref.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first
    return None


def image_sbom_bytes(client, image) -> bytes:
    """An image's SBOM file as the build wrote it, copied out of a container that is never started."""
    import io
    import tarfile

    import docker

    container = client.containers.create(image, ["true"], network_mode="none")
    try:
        stream, _ = container.get_archive(SBOM_IN_IMAGE)
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            return tar.extractfile(tar.getmembers()[0]).read()
    except docker.errors.NotFound:
        raise FlowError(f"Image {image} has no SBOM at {SBOM_IN_IMAGE}: it was built before "
                        "SBOMs; rebuild it with `invoke build-image`.") from None
    finally:
        container.remove(force=True)
