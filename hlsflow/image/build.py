"""Building the hlsflow toolchain image (docker/Dockerfile) from a checkout.

Nothing inside the build needs the network: the wheels come from the host's hash-checked
wheelhouse (wheels.py) and the Debian base is pinned or bootstrapped here (debian_base.py). The
Debian packages of every build are checked against docker/debian-packages.lock before the image
is tagged, from the SBOM the build puts into the image (sbom.py).
Builds go through the Docker SDK's classic builder, whose layer cache makes an unchanged rebuild
take seconds. Handing the image on is handover.py; finding Docker or Podman is containers.py.
"""

import concurrent.futures
import contextlib
import fnmatch
import functools
import json
import os
import re
import subprocess
import tarfile
import tempfile
import time
from collections import deque
from pathlib import Path

from .. import __version__
from ..console import error, say, step
from ..errors import FlowError
from ..files import REPO_ROOT as ROOT
from .containers import KERAS3_REPO, REPO, docker_client, image_ref, image_sbom_bytes
from .debian_base import base_image, check_debian_packages
from .sbom import packages_of
from .wheels import (BUILD_LOCK, KERAS3_DIR, KERAS3_LOCKS, KERAS3_WHEELHOUSE, LOCK, NODEPS_LOCK, SBOM_LOCK,
                     download_wheels, lock_versions)

DOCKER_DIR = ROOT / "docker"
BUILD_DIR = ROOT / "build"
# What of the repository goes into /opt/hlsflow (minus what .dockerignore leaves out). Not tests/
# (8 MB): they run from a checkout (`invoke test` is a checkout task), which they mount.
CODE = ("tasks.py", "invoke.yaml", "pyproject.toml", "hlsflow", "project", "models", "examples")


def build_image(tag: str | None = None, no_cache: bool = False, allow_drift: bool = False,
                lane: str = "reference") -> str:
    """Build the image and tag it `hlsflow:<version>-<git describe>` (or `tag`) and
    `hlsflow:latest`; returns the first tag. Debian packages at other versions than
    docker/debian-packages.lock are FlowError, unless `allow_drift` (which updates the lock).
    lane="keras3": docker/keras3/Dockerfile with its own locks and wheelhouse, on the same base,
    tagged `hlsflow-keras3:<version>-<git describe>` and `hlsflow-keras3:latest`."""
    keras3 = lane == "keras3"
    repo = KERAS3_REPO if keras3 else REPO
    client = docker_client()
    BUILD_DIR.mkdir(parents=True, exist_ok=True)  # the build context is spooled here
    ref = image_ref(tag or f"{repo}:{__version__}-{_describe()}")
    if keras3:
        lock, nodeps_lock, sbom_lock = KERAS3_LOCKS
        fetch = functools.partial(download_wheels, (*KERAS3_LOCKS, BUILD_LOCK), wheelhouse=KERAS3_WHEELHOUSE)
    else:
        lock, nodeps_lock, sbom_lock = LOCK, NODEPS_LOCK, SBOM_LOCK
        fetch = download_wheels
    # The wheels (the host's pip) and the Debian base (pulled, or debootstrapped from the mirror) need
    # nothing of each other: fetched side by side, a build on a new machine waits for the longer alone.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        wheels = pool.submit(fetch)
        base = base_image(client, allow_drift=allow_drift)
        wheels = wheels.result()
    pins = lock_versions(lock)
    buildargs = {
        "BASE_IMAGE": base,
        "VERSION": __version__,
        "REVISION": _git("rev-parse", "HEAD") or "unknown",
        # The commit's time, not the build's: an unchanged rebuild must stay fully cached.
        "CREATED": _git("log", "-1", "--format=%cI") or "unknown",
        # The project, not where this checkout was cloned from: a remote can be a build
        # machine's path, and pyproject.toml declares no repository URL.
        "SOURCE": REPO,
        "HLSFLOW_REVISION": ref.split(":", 1)[1],
        "TENSORFLOW_VERSION": pins.get("tensorflow-cpu", "unknown"),
        "NUMPY_VERSION": pins.get("numpy", "unknown"),
        "HLS4ML_VERSION": pins.get("hls4ml", "unknown"),
    }
    if keras3:
        del buildargs["TENSORFLOW_VERSION"]
        buildargs["KERAS_VERSION"] = pins.get("keras", "unknown")
    step(f"Building {ref} on {base}")
    started = time.monotonic()
    with _build_context(wheels[lock] + wheels[nodeps_lock], wheels[sbom_lock], wheels[BUILD_LOCK],
                        KERAS3_DIR if keras3 else None) as context:
        # Our own base already has every system package: prove the build needs no network.
        network = "none" if base.startswith("hlsflow-base:") else None
        image_id = _run_build(client, context, buildargs, no_cache, network,
                              "docker/keras3/Dockerfile" if keras3 else "docker/Dockerfile")
    # Before tagging: a build that drifted leaves hlsflow:latest as it was.
    debian = {k: v for k, v in image_sbom_packages(client, image_id).items() if k.startswith("deb/")}
    check_debian_packages(debian, f"the image just built ({image_id[7:19]})", allow_drift)
    for name in (ref, f"{repo}:latest"):
        name_repo, _, name_tag = name.rpartition(":")
        client.api.tag(image_id, name_repo, name_tag)
    size = client.images.get(image_id).attrs["Size"] / 1e9
    say(f"Built {ref} and {repo}:latest ({image_id[7:19]}, {size:.2f} GB) "
        f"in {time.monotonic() - started:.0f}s")
    return ref



def image_sbom_packages(client, image) -> dict[str, str]:
    """The package set of an image's SBOM."""
    return packages_of(json.loads(image_sbom_bytes(client, image)), f"the SBOM of image {image}")


# --- build ---------------------------------------------------------------------------------

@contextlib.contextmanager
def _build_context(wheels: list[Path], sbom_wheels: list[Path], tool_wheels: list[Path], lane_dir: Path | None = None):
    """The build context as a tar file under build/: docker/, wheelhouse/ (the lock's wheels),
    sbom-wheelhouse/ (the SBOM generator's), tools-wheelhouse/ (uv's) and src/ (the project code);
    with `lane_dir` (docker/keras3), its files too. Owners are normalised: the layer cache keys on them."""
    with tempfile.TemporaryFile(dir=BUILD_DIR) as file:
        with tarfile.open(fileobj=file, mode="w") as tar:
            for path in sorted(p for p in DOCKER_DIR.iterdir() if p.is_file()):
                tar.add(path, f"docker/{path.name}", filter=_root_owned)
            for path in sorted(p for p in lane_dir.iterdir() if p.is_file()) if lane_dir else ():
                tar.add(path, f"docker/{lane_dir.name}/{path.name}", filter=_root_owned)
            for folder, whls in (("wheelhouse", wheels), ("sbom-wheelhouse", sbom_wheels),
                                 ("tools-wheelhouse", tool_wheels)):
                for whl in whls:
                    tar.add(whl, f"{folder}/{whl.name}", filter=_root_owned)
            for path in _code_files():
                tar.add(path, f"src/{path.relative_to(ROOT)}", recursive=False,
                        filter=_root_owned)
        file.seek(0)
        yield file


def _root_owned(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def _code_files():
    ignore = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
              if line.strip() and not line.startswith("#")]

    def ignored(path: Path) -> bool:
        rel = str(path.relative_to(ROOT))
        return any(fnmatch.fnmatch(path.name, p) or fnmatch.fnmatch(rel, p) for p in ignore)

    for top in CODE:
        top = ROOT / top
        if top.is_file() and not ignored(top):
            yield top
        elif top.is_dir() and not ignored(top):
            for dirpath, dirnames, filenames in os.walk(top):
                here = Path(dirpath)
                dirnames[:] = sorted(d for d in dirnames if not ignored(here / d))
                yield from (here / f for f in sorted(filenames) if not ignored(here / f))


def _run_build(client, context, buildargs, no_cache, network, dockerfile="docker/Dockerfile") -> str:
    """Run the build, printing each step, pip/apt errors and a cache summary; returns the id."""
    import docker

    current, tail = "", deque(maxlen=25)
    steps = cached = uncacheable = 0
    before_from = True
    image_id = None
    try:
        for chunk in client.api.build(
                fileobj=context, custom_context=True, dockerfile=dockerfile,
                buildargs=buildargs, nocache=no_cache, pull=False, rm=True, forcerm=True,
                network_mode=network, decode=True):
            if "error" in chunk:
                tail.append(chunk["error"].strip())
                error(f"{current}\n" + "\n".join(tail))
                failed = re.sub(r"^Step (\d+/\d+) : ", r"step \1 (", " ".join(current.split()))[:70]
                raise FlowError(f"The image build failed at {failed}…): fix the cause shown "
                                "above and run `invoke build-image` again.")
            image_id = chunk.get("aux", {}).get("ID", image_id)
            for line in chunk.get("stream", "").splitlines():
                if line.startswith("Step "):
                    current = line
                    tail.clear()
                    steps += 1
                    # FROM, and ARG before the first FROM, have nothing to cache.
                    if " : FROM " in line or (before_from and " : ARG " in line):
                        uncacheable += 1
                    before_from = before_from and " : FROM " not in line
                    say(line if len(line) <= 110 else line[:107] + "...")
                elif "Using cache" in line:
                    cached += 1
                elif line.strip() and not line.startswith("Removing intermediate"):
                    tail.append(line)
                    if re.match(r"\s*(E:|ERROR|error:|Successfully installed)", line):
                        say("    " + (line.strip() if len(line) <= 150 else line[:147] + "..."))
    except docker.errors.APIError as exc:
        raise FlowError(f"Docker refused the build ({exc.explanation or exc}): fix the "
                        "cause and run `invoke build-image` again.") from exc
    if not image_id:
        raise FlowError("The image build ended without an image id: run `invoke build-image` "
                        "again and report it if it persists.")
    say(f"{cached} of {steps - uncacheable} steps came from the layer cache")
    return image_id


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def _describe() -> str:
    described = _git("describe", "--always", "--dirty") or "nogit"
    return re.sub(r"[^A-Za-z0-9_.-]", "-", described)
