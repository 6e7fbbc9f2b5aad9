"""The hlsflow toolchain image (docker/Dockerfile): build, save, load and lock it from the host.

Nothing inside the build needs the network: the wheels are downloaded here, on the host, and
hash-checked against docker/requirements.lock, and when the pinned Debian base cannot be had
from a registry, one is bootstrapped with debootstrap and imported. Builds go through the
Docker SDK's classic builder, whose layer cache makes an unchanged rebuild take seconds.
"""

import contextlib
import fnmatch
import gzip
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import deque
from pathlib import Path

from . import __version__
from .console import Progress, error, say, step
from .errors import FlowError

ROOT = Path(__file__).resolve().parent.parent
DOCKER_DIR = ROOT / "docker"
BUILD_DIR = ROOT / "build"
WHEELHOUSE = BUILD_DIR / "wheelhouse"
LOCK = DOCKER_DIR / "requirements.lock"
REPO = "hlsflow"
# What of the repository goes into /opt/hlsflow (minus what .dockerignore leaves out).
CODE = ("tasks.py", "hlsflow", "project", "models", "tests")
# The format of the lock files follows pip-compile's version.
PIP_TOOLS = "pip-tools==7.6.2"
# Glibc 2.36 (bookworm) runs every manylinux wheel up to 2_36; pip needs each tag spelled out.
PLATFORMS = [f"manylinux_2_{v}_x86_64" for v in range(36, 16, -1)] + [
    "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NO_DAEMON = ("Cannot reach the Docker daemon: start it (e.g. `sudo systemctl start docker`) "
             "or set DOCKER_HOST.")


def docker_client():
    """A Docker SDK client whose daemon answered. Its requests then never time out: a build
    step or a synthesis run can stay silent for many minutes."""
    import docker  # host-side dependency only, so `import hlsflow` stays cheap
    import requests

    try:
        client = docker.from_env(timeout=15)
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise FlowError(NO_DAEMON) from exc
    client.api.timeout = None
    return client


def image_ref(tag: str) -> str:
    """`latest` -> `hlsflow:latest`; full references pass through."""
    return tag if ":" in tag or "/" in tag else f"{REPO}:{tag}"


def missing_image_message(ref: str) -> str:
    return f"Image {ref} not found: run `invoke build-image` (or `invoke load-image FILE`)."


def get_image(client, tag: str):
    import docker

    try:
        return client.images.get(image_ref(tag))
    except docker.errors.ImageNotFound:
        raise FlowError(missing_image_message(image_ref(tag))) from None


def image_exists(tag: str = "latest") -> bool:
    import docker

    try:
        docker_client().images.get(image_ref(tag))
        return True
    except docker.errors.ImageNotFound:
        return False


def build_image(tag: str | None = None, no_cache: bool = False) -> str:
    """Build the image and tag it `hlsflow:<version>-<git describe>` (or `tag`) and
    `hlsflow:latest`; returns the first tag."""
    client = docker_client()
    ref = image_ref(tag or f"{__version__}-{_describe()}")
    wheels = download_wheels()
    base = _base_image(client)
    pins = _lock_versions()
    buildargs = {
        "BASE_IMAGE": base,
        "VERSION": __version__,
        "REVISION": _git("rev-parse", "HEAD") or "unknown",
        # The commit's time, not the build's: an unchanged rebuild must stay fully cached.
        "CREATED": _git("log", "-1", "--format=%cI") or "unknown",
        "SOURCE": _source_url(),
        "HLSFLOW_REVISION": ref.split(":", 1)[1],
        "TENSORFLOW_VERSION": pins.get("tensorflow-cpu", "unknown"),
        "NUMPY_VERSION": pins.get("numpy", "unknown"),
        "HLS4ML_VERSION": pins.get("hls4ml", "unknown"),
    }
    step(f"Building {ref} on {base}")
    started = time.monotonic()
    with _build_context(wheels) as context:
        # Our own base already has every system package: prove the build needs no network.
        network = "none" if base.startswith("hlsflow-base:") else None
        image_id = _run_build(client, context, buildargs, no_cache, network)
    for name in (ref, f"{REPO}:latest"):
        repo, _, name_tag = name.rpartition(":")
        client.api.tag(image_id, repo, name_tag)
    size = client.images.get(image_id).attrs["Size"] / 1e9
    say(f"Built {ref} and {REPO}:latest ({image_id[7:19]}, {size:.2f} GB) "
        f"in {time.monotonic() - started:.0f}s")
    return ref


def save_image(path=None, tag: str = "latest") -> Path:
    """Write the image as `hlsflow-<tag>.tar.gz` (into `path`, a directory, default build/, or
    to `path` itself when it ends in .tar.gz) plus a `.sha256` file next to it."""
    client = docker_client()
    ref = image_ref(tag)
    image = get_image(client, ref)
    out = Path(path) if path else BUILD_DIR
    if not out.name.endswith(".tar.gz"):
        out = out / f"{REPO}-{ref.rpartition(':')[2]}.tar.gz"
    out.parent.mkdir(parents=True, exist_ok=True)
    step(f"Saving {ref} to {out}")
    partial = out.with_name(out.name + ".partial")
    progress = Progress(max(1, image.attrs["Size"] >> 20), "docker save (MB)")
    written = 0
    # Streamed chunk by chunk: the image is larger than memory may allow.
    with open(partial, "wb") as raw, gzip.GzipFile(
            filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0) as gz:
        for chunk in client.api.get_image(ref, chunk_size=1 << 20):
            gz.write(chunk)
            written += len(chunk)
            progress.advance((written >> 20) - progress.done)
    progress.close()
    os.replace(partial, out)
    digest = _sha256(out)
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
                        "`invoke save-image`.")
    if not sums.is_file():
        raise FlowError(f"{sums.name} is missing next to {path.name}: copy it along with the "
                        "tarball, it holds the checksum to verify.")
    import docker

    expected = sums.read_text().split()[0]
    step(f"Checking {path.name} against {sums.name}")
    if _sha256(path) != expected:
        raise FlowError(f"{path.name} does not match the checksum in {sums.name}: the copy is "
                        "damaged or incomplete, copy it again.")
    client = docker_client()
    step(f"Loading {path.name}")
    try:
        with open(path, "rb") as f:
            image = client.images.load(f)[0]
    except (docker.errors.APIError, IndexError) as exc:
        raise FlowError(f"Docker could not load {path.name} ({exc}): check that it was written "
                        "by `invoke save-image`.") from exc
    image.tag(REPO, "latest")
    image.reload()
    say(f"Loaded {image.id} ({', '.join(sorted(image.tags))})")
    return image.id


def lock() -> None:
    """Regenerate docker/requirements.lock and docker/host-requirements.lock from their .in
    files with pip-compile, installed into build/lock-venv when missing."""
    if sys.version_info[:2] != (3, 11):
        raise FlowError("`invoke lock` must run under Python 3.11, the image's Python, or the "
                        "lock would pin for another version: run it with a 3.11 interpreter.")
    venv = BUILD_DIR / "lock-venv"
    pip_compile = venv / "bin" / "pip-compile"
    if not pip_compile.exists():
        step(f"Installing {PIP_TOOLS} into {venv.relative_to(ROOT)}")
        _check_call([sys.executable, "-m", "venv", str(venv)], "creating build/lock-venv")
        _check_call([str(venv / "bin" / "pip"), "install", "--quiet", PIP_TOOLS],
                    f"installing {PIP_TOOLS}")
    for name in ("requirements", "host-requirements"):
        step(f"Locking docker/{name}.in")
        # No index or find-links lines: the locks must not carry this machine's pip settings.
        _check_call([str(pip_compile), "--quiet", "--generate-hashes", "--strip-extras",
                     "--no-header", "--allow-unsafe", "--no-emit-index-url",
                     "--no-emit-find-links", "--output-file", f"docker/{name}.lock",
                     f"docker/{name}.in"], f"pip-compile of docker/{name}.in", cwd=ROOT)


# --- wheels -------------------------------------------------------------------------------

def download_wheels() -> list[Path]:
    """The lock's wheels, in build/wheelhouse: those already there are kept, the missing ones
    downloaded by the host's pip with every hash checked, stale ones (not in the lock) removed."""
    entries = _lock_entries()
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    have, missing = _scan_wheelhouse(entries)
    if missing:
        _pip_download(missing)
        have, missing = _scan_wheelhouse(entries)
        if missing:
            raise FlowError(f"pip left {len(missing)} wheels of docker/requirements.lock "
                            "undownloaded: check that each pinned version has a Linux x86_64 "
                            "cp311 wheel, then run again.")
    return sorted(have)


def _lock_entries() -> dict[str, tuple[str, set[str]]]:
    """name -> (its requirement line with hashes, its sha256 hashes); option lines dropped."""
    entries = {}
    for line in LOCK.read_text().replace("\\\n", " ").splitlines():
        line = line.split("#", 1)[0].strip()
        match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==", line)
        if match:
            hashes = set(re.findall(r"--hash=sha256:([0-9a-f]{64})", line))
            entries[match.group(1).lower()] = (line, hashes)
    return entries


def _lock_versions() -> dict[str, str]:
    return {name: line.split("==", 1)[1].split()[0]
            for name, (line, _) in _lock_entries().items()}


def _scan_wheelhouse(entries):
    """(wheels matching a lock hash, requirement lines with no wheel yet)."""
    wanted = {h: name for name, (_, hashes) in entries.items() for h in hashes}
    have, found = [], set()
    for whl in WHEELHOUSE.glob("*.whl"):
        name = wanted.get(_sha256(whl, cache=True))
        if name is None:
            whl.unlink()  # from an older lock: it would only bloat the build context
        else:
            have.append(whl)
            found.add(name)
    return have, [line for name, (line, _) in entries.items() if name not in found]


def _pip_download(requirements: list[str]) -> None:
    step(f"Downloading {len(requirements)} wheels into {WHEELHOUSE.relative_to(ROOT)}")
    with tempfile.NamedTemporaryFile("w", suffix=".txt", dir=BUILD_DIR) as reqs:
        reqs.write("\n".join(requirements) + "\n")
        reqs.flush()
        # The image's platform, whatever the host's Python: cp311 on manylinux x86_64.
        cmd = [sys.executable, "-m", "pip", "download", "--require-hashes", "--no-deps",
               "--only-binary=:all:", "--progress-bar", "off", "--dest", str(WHEELHOUSE),
               "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
               *(f"--platform={p}" for p in PLATFORMS), "-r", reqs.name]
        progress = Progress(len(requirements), "wheels")
        tail = deque(maxlen=20)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:
            tail.append(line.rstrip())
            if line.startswith(("Collecting ", "Processing ")):  # one per wheel
                progress.advance()
        progress.close()
    if proc.wait() != 0:
        error("pip download failed; its last lines:\n" + "\n".join(tail))
        raise FlowError("Downloading the image's wheels failed: check that this machine can "
                        "reach PyPI (or your pip index settings) and run again.")


_hash_cache: dict[tuple, str] = {}


def _sha256(path: Path, cache: bool = False) -> str:
    """sha256 of a file, streamed; with cache=True remembered per (path, size, mtime) so that
    rescanning a large wheelhouse within one process costs nothing."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if cache and key in _hash_cache:
        return _hash_cache[key]
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    _hash_cache[key] = digest.hexdigest()
    return _hash_cache[key]


# --- base image ---------------------------------------------------------------------------

def _base_image(client) -> str:
    """The Dockerfile's pinned BASE_IMAGE (or $HLSFLOW_BASE_IMAGE) if present or pullable, else
    our own debootstrapped bookworm."""
    import docker

    wanted = os.environ.get("HLSFLOW_BASE_IMAGE") or _dockerfile_base()
    # `name:tag@digest` -> `name@digest`: with a digest, the tag is only a comment.
    name, at, digest = wanted.partition("@")
    if at and ":" in name.rsplit("/", 1)[-1]:
        name = name.rsplit(":", 1)[0]
    ref = name + at + digest
    try:
        client.images.get(ref)
        return ref
    except docker.errors.ImageNotFound:
        pass
    try:
        step(f"Pulling {ref}")
        client.images.pull(ref)
        return ref
    except docker.errors.APIError as exc:
        say(f"    cannot pull it: {exc.explanation or exc}")
    return _bootstrap_base(client)


def _dockerfile_base() -> str:
    match = re.search(r"^ARG BASE_IMAGE=(\S+)", (DOCKER_DIR / "Dockerfile").read_text(), re.M)
    return match.group(1)


def _system_packages() -> list[str]:
    text = (DOCKER_DIR / "system-packages.txt").read_text()
    return [word for line in text.splitlines() for word in line.split("#", 1)[0].split()]


def _bootstrap_base(client) -> str:
    """debootstrap bookworm with every system package, put it through the Dockerfile's own
    install-system-packages.sh (locale, time zone, trimming), import it as
    hlsflow-base:bookworm-<hash of package list and script> and reuse that from then on."""
    import docker

    packages = _system_packages()
    script = DOCKER_DIR / "install-system-packages.sh"
    recipe = "\n".join(sorted(packages)).encode() + script.read_bytes()
    tag = "bookworm-" + hashlib.sha256(recipe).hexdigest()[:12]
    ref = f"hlsflow-base:{tag}"
    try:
        client.images.get(ref)
        say(f"    using {ref}, bootstrapped earlier")
        return ref
    except docker.errors.ImageNotFound:
        pass
    if not shutil.which("debootstrap"):
        raise FlowError("The Debian base image can neither be found nor pulled and debootstrap "
                        "is missing: install it (`sudo apt-get install debootstrap`) or `docker "
                        "load` the base image.")
    if os.geteuid() != 0:
        raise FlowError("Bootstrapping the Debian base needs root: run `invoke build-image` once "
                        "as root, or make the pinned base image available with `docker load`.")
    work = BUILD_DIR / "base"
    rootfs = work / "rootfs"
    _remove_tree(work)
    rootfs.mkdir(parents=True)
    mirror = _host_debian_mirror()
    step(f"Bootstrapping Debian bookworm from {mirror or 'the default mirror of debootstrap'}")
    _run_logged(["debootstrap", "--variant=minbase", "--include=" + ",".join(packages),
                 "bookworm", str(rootfs)] + ([mirror] if mirror else []),
                "debootstrap", lambda line: not _PER_PACKAGE.match(line), cleanup=work)
    for name in ("install-system-packages.sh", "system-packages.txt"):
        shutil.copy(DOCKER_DIR / name, rootfs / "tmp" / name)
    _run_logged(["chroot", str(rootfs), "/bin/sh", "/tmp/install-system-packages.sh",
                 "/tmp/system-packages.txt"], "install-system-packages.sh in the new rootfs",
                lambda line: True, cleanup=work, env={"PATH": BASE_PATH, "LC_ALL": "C"})
    _trim_rootfs(rootfs)
    archive = work / "rootfs.tar"
    subprocess.run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(archive), "."],
                   check=True)
    step(f"Importing it as {ref}")
    client.api.import_image_from_file(str(archive), repository="hlsflow-base", tag=tag,
                                      changes=[f"ENV PATH={BASE_PATH}", 'CMD ["bash"]'])
    _remove_tree(work)
    return ref


# debootstrap's per-package lines; its phase lines end in "...".
_PER_PACKAGE = re.compile(r"I: (Retrieving|Validating|Extracting|Unpacking|Configuring) [^.]+$")


def _run_logged(cmd, what: str, show, cleanup: Path, env=None) -> None:
    """Run a bootstrap command, echoing the lines `show` picks; on failure print its last
    lines, remove `cleanup` and raise."""
    tail = deque(maxlen=30)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)
    for line in proc.stdout:
        tail.append(line.rstrip())
        if show(line.strip()):
            say("    " + line.rstrip())
    if proc.wait() != 0:
        _remove_tree(cleanup)
        error(f"{what} failed; its last lines:\n" + "\n".join(tail))
        raise FlowError("Bootstrapping the Debian base failed: check the mirror and network "
                        "shown above (or make the pinned base image available) and run again.")


def _host_debian_mirror() -> str | None:
    """The mirror the host's apt uses for bookworm main, if it names one."""
    apt = Path("/etc/apt")
    for path in [apt / "sources.list", *sorted((apt / "sources.list.d").glob("*.list")),
                 *sorted((apt / "sources.list.d").glob("*.sources"))]:
        try:
            text = path.read_text()
        except OSError:
            continue
        if path.suffix == ".sources":  # deb822 stanzas
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(re.findall(r"^([A-Za-z-]+):[ \t]*(.*)$", stanza, re.M))
                if ("deb" in fields.get("Types", "").split()
                        and "bookworm" in fields.get("Suites", "").split()
                        and "main" in fields.get("Components", "").split()
                        and fields.get("Enabled", "yes").lower() != "no"):
                    return fields["URIs"].split()[0]
        else:
            for line in text.splitlines():
                match = re.match(r"\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+bookworm\s+.*\bmain\b", line)
                if match:
                    return match.group(1)
    return None


def _trim_rootfs(rootfs: Path) -> None:
    """Drop what the install script leaves to a base image: logs, the copied script, and the
    host's hostname and resolver (Docker provides both at run time)."""
    for pattern in ("var/log/*", "var/cache/debconf/*-old", "tmp/*", "etc/hostname",
                    "etc/resolv.conf"):
        for path in rootfs.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


def _remove_tree(path: Path) -> None:
    """rm -rf, after unmounting anything a failed debootstrap left mounted (/proc, /sys)."""
    prefix = str(path.resolve()) + "/"
    try:
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        mounts = []
    for mount in sorted((m for m in mounts if m.startswith(prefix)), reverse=True):
        subprocess.run(["umount", "-l", mount], check=False)
    shutil.rmtree(path, ignore_errors=True)


# --- build ---------------------------------------------------------------------------------

@contextlib.contextmanager
def _build_context(wheels: list[Path]):
    """The build context as a tar file under build/: docker/, wheelhouse/ (the lock's wheels)
    and src/ (the project code). Owners are normalised: the layer cache keys on them."""
    with tempfile.TemporaryFile(dir=BUILD_DIR) as file:
        with tarfile.open(fileobj=file, mode="w") as tar:
            for path in sorted(p for p in DOCKER_DIR.iterdir() if p.is_file()):
                tar.add(path, f"docker/{path.name}", filter=_root_owned)
            for whl in wheels:
                tar.add(whl, f"wheelhouse/{whl.name}", filter=_root_owned)
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


def _run_build(client, context, buildargs, no_cache, network) -> str:
    """Run the build, printing each step, pip/apt errors and a cache summary; returns the id."""
    import docker

    current, tail = "", deque(maxlen=25)
    steps = cached = uncacheable = 0
    before_from = True
    image_id = None
    try:
        for chunk in client.api.build(
                fileobj=context, custom_context=True, dockerfile="docker/Dockerfile",
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


def _source_url() -> str:
    """The origin remote without any user:token@ part."""
    url = _git("config", "--get", "remote.origin.url")
    return re.sub(r"//[^/@]*@", "//", url) or "unknown"


def _check_call(cmd, what: str, **kwargs) -> None:
    try:
        subprocess.run(cmd, check=True, **kwargs)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise FlowError(f"{what} failed ({exc}): see the output above, fix the cause and run "
                        "`invoke lock` again.") from exc
