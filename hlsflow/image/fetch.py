"""Getting the image a command runs in (flow_image): the local one, a registry's pulled on first
use, or, on the first run without it, as FINN's run-docker.sh does it: what can get the image is
said in one line each; with `hlsflow --fetch` the first that applies is done, and the command goes
on. A registry image (HLSFLOW_IMAGE=ghcr.io/…@sha256:…) needs neither: the launcher pulls it
(registry.pull_for_run)."""

import os

from ..console import detail, step
from ..errors import FlowError
from ..files import REPO_ROOT
from .containers import (DEFAULT_IMAGE, REPO, image_name, missing_image_message, missing_label,
                         registry_host)
from .registry import pull_for_run

FETCH_ENV = "HLSFLOW_FETCH"  # set by `hlsflow --fetch`
TARBALL_ENV = "HLSFLOW_IMAGE_TARBALL"  # a save-image tarball to load (the CI templates' name too)


def checkout() -> str | None:
    """The hlsflow checkout this command runs from (an editable install), where `invoke build-image`
    can build the image; None for an installed copy."""
    return str(REPO_ROOT) if (REPO_ROOT / "docker" / "Dockerfile").is_file() and (REPO_ROOT / "tasks.py").is_file() \
        else None


def missing(client, ref: str):
    """The image `ref` after --fetch got it; else the ways to get it, one line each, and FlowError."""
    tarball, source = os.environ.get(TARBALL_ENV), checkout()
    if os.environ.get(FETCH_ENV) != "1":
        detail(f"hlsflow: the image {ref} is not in this engine yet. Any of these gets it (`hlsflow --fetch TASK` "
               "does the first that applies, then the task):")
        detail("  HLSFLOW_IMAGE=ghcr.io/your-lab/hlsflow@sha256:…   a registry's, as push-image printed it: pulled on "
               "first use")
        detail(f"  hlsflow load-image {tarball or 'FILE.tar.gz'}" + ("   (HLSFLOW_IMAGE_TARBALL: --fetch loads it)"
                                                                   if tarball else "   a tarball save-image wrote; "
                                                                   "or set HLSFLOW_IMAGE_TARBALL to it"))
        if source:
            detail(f"  invoke build-image   in {source} (--fetch builds it: minutes, from the locks)")
        raise FlowError(missing_image_message(ref))
    if tarball:
        from .handover import load_image

        step(f"--fetch: loading {tarball} ({TARBALL_ENV})")
        image_id = load_image(tarball)
    elif source:
        from .build import build_image

        step(f"--fetch: building the image in {source}")
        image_id = client.images.get(build_image()).id
    else:
        raise FlowError(f"--fetch found nothing to get {ref} from: set HLSFLOW_IMAGE to a registry's image "
                        f"(ghcr.io/your-lab/hlsflow@sha256:…) or {TARBALL_ENV} to a tarball save-image wrote.")
    # What was loaded or built is tagged hlsflow:latest; another name of hlsflow's own asked for is
    # given to it too. A name elsewhere is the user's to give.
    if ref != DEFAULT_IMAGE:
        if not ref.startswith(f"{REPO}:"):
            raise FlowError(f"--fetch got image {image_id[7:19]} (tagged {DEFAULT_IMAGE}), but HLSFLOW_IMAGE names "
                            f"{ref}: unset HLSFLOW_IMAGE, or tag it with `docker tag {DEFAULT_IMAGE} {ref}`.")
        client.api.tag(image_id, REPO, ref.partition(":")[2])
    return client.images.get(ref)


def flow_image(client, image=None):
    """The image the flow runs in (image_name), refused unless it carries hlsflow's labels: another
    image would end in the engine's "executable file not found" instead of a sentence."""
    import docker

    ref = image_name(image)
    try:
        found = client.images.get(ref)
    except docker.errors.ImageNotFound:
        # A registry's image (HLSFLOW_IMAGE=ghcr.io/lab/hlsflow@sha256:…) is pulled the first time;
        # else the ways to get it are said (or, with --fetch, the first is taken).
        if registry_host(ref):
            found = pull_for_run(client, ref)
        else:
            found = missing(client, ref)
    lacking = missing_label(found.labels)
    if lacking:
        if not image and os.environ.get("HLSFLOW_IMAGE"):
            raise FlowError(f"HLSFLOW_IMAGE names {ref}, which is not an hlsflow image (it has no {lacking} "
                            "label): set HLSFLOW_IMAGE to an hlsflow image such as hlsflow:latest, or unset it.")
        raise FlowError(f"Image {ref} is not an hlsflow image (it has no {lacking} label): load one with "
                        "`hlsflow load-image FILE`, or build it in a checkout with `invoke build-image`.")
    return found
