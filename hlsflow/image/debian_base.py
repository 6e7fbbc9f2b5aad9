"""The Debian bookworm base of the image: the digest-pinned one from a registry when it can be had,
else one bootstrapped here with debootstrap (an air-gapped lab, or this project's CI machine).

docker/debian-packages.lock records the exact version of every Debian package the image had when
it was last accepted. Neither debootstrap nor a Debian mirror can be asked for old versions
(deb.debian.org keeps one per package and suite; a point release replaces it), so each build is
checked against the lock instead: different versions fail the build, naming the packages, unless
`invoke build-image --allow-drift` accepts them into the lock.
"""

import hashlib
import os
import re
import shutil
import subprocess
from collections import deque
from pathlib import Path

from ..console import error, say, step
from ..errors import FlowError
from ..files import REPO_ROOT as ROOT
from .sbom import compare

DOCKER_DIR = ROOT / "docker"
BUILD_DIR = ROOT / "build"
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEBIAN_LOCK = DOCKER_DIR / "debian-packages.lock"
LOCK_HEADER = """\
# The Debian packages of the hlsflow image with their exact versions (name=version), as
# `invoke build-image --allow-drift` last accepted them. Every build is checked against this file:
# other versions (a fresh debootstrap after a Debian point release) fail the build.
"""


def base_image(client, allow_drift: bool = False) -> str:
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
    return _bootstrap_base(client, allow_drift)


def _dockerfile_base() -> str:
    match = re.search(r"^ARG BASE_IMAGE=(\S+)", (DOCKER_DIR / "Dockerfile").read_text(), re.M)
    return match.group(1)


def _system_packages() -> list[str]:
    text = (DOCKER_DIR / "system-packages.txt").read_text()
    return [word for line in text.splitlines() for word in line.split("#", 1)[0].split()]


def read_debian_lock(lock: Path = DEBIAN_LOCK) -> dict[str, str] | None:
    """{"deb/<name>": version} from the lock; None when there is no lock."""
    try:
        text = lock.read_text()
    except FileNotFoundError:
        return None
    packages = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("=")
            packages[f"deb/{name.strip()}"] = version.strip()
    return packages


def write_debian_lock(packages: dict[str, str], lock: Path = DEBIAN_LOCK) -> None:
    lines = [f"{key.split('/', 1)[1]}={version}" for key, version in sorted(packages.items())]
    lock.write_text(LOCK_HEADER + "\n".join(lines) + "\n")


def check_debian_packages(found: dict[str, str], what: str, allow_drift: bool,
                          lock: Path = DEBIAN_LOCK) -> None:
    """`found` ({"deb/<name>": version}) against the lock: FlowError naming every package that
    differs, or with `allow_drift` the lock rewritten to `found`."""
    locked = read_debian_lock(lock)
    diff = compare(locked or {}, found)
    if locked is not None and not diff:
        return
    if allow_drift:
        write_debian_lock(found, lock)
        change = f"{diff.summary()}: {diff.names()}" if locked is not None else "written"
        say(f"{lock.name} updated to {what} ({change}); commit it.")
        return
    if locked is None:
        raise FlowError(f"{lock} is missing: run `invoke build-image --allow-drift` once to record "
                        "the Debian packages of the image, and commit it.")
    raise FlowError(f"The Debian packages of {what} differ from {lock.name} ({diff.names()}): run "
                    "`invoke build-image --allow-drift` to accept them (and commit the lock), or "
                    "build from a base that has the locked versions.")


def _rootfs_packages(rootfs: Path) -> dict[str, str]:
    """{"deb/<name>": version} of the packages installed in a bootstrapped tree."""
    fields = "${db:Status-Abbrev}\t${Package}\t${Version}\n"
    listing = subprocess.run(["chroot", str(rootfs), "dpkg-query", "-W", "-f", fields],
                             capture_output=True, text=True, check=True,
                             env={"PATH": BASE_PATH, "LC_ALL": "C"}).stdout
    return {f"deb/{name}": version for status, name, version in
            (line.split("\t") for line in listing.splitlines()) if status.strip() == "ii"}


def _bootstrap_base(client, allow_drift: bool = False) -> str:
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
    if not allow_drift:
        # The same check the finished image gets, minutes earlier; a drifted base is not kept.
        try:
            check_debian_packages(_rootfs_packages(rootfs), "the newly bootstrapped base", False)
        except FlowError:
            _remove_tree(work)
            raise
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

