"""Handing the image on through a registry (GitLab's, GHCR, Harbor, a lab's own): push-image and
pull-image, and the launcher's pull of an HLSFLOW_IMAGE the engine lacks. Through the engine's own
API, so its own login (`docker login`, `podman login`; the Docker SDK passes Docker's stored
credentials) is used and hlsflow stores none.

What identifies the image is the digest push-image prints: the sha256 of the image's manifest,
which names its config (the labels: title, version, revision) by sha256, which names every layer
(the SBOM file among them) by sha256. A tag can be moved by anyone who may push; a record pushed
beside the image could be replaced just as easily, so none is kept: the engine checks the chain
from the digest down when it pulls, and pull-image then checks that the engine holds the image
under that digest, that it carries hlsflow's labels and an SBOM, and says which revision and SBOM
it got. Given a tag and a digest, the tag must still name that digest: another image pushed under
the tag is refused."""

import hashlib
import re
import sys
import time

from ..console import say, step
from ..errors import FlowError
from .containers import (REPO, REVISION_LABEL, docker_client, image_name, image_ref, image_sbom_bytes,
                         missing_image_message, missing_label, registry_host, runtime_name)

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
# What the engines' progress streams say of a layer that is finished (Docker push and pull, Podman).
LAYER_DONE = ("Pushed", "Layer already exists", "Mounted from", "Pull complete", "Already exists",
              "Download complete")
AUTH_WORDS = ("unauthorized", "authentication required", "no basic auth credentials", "denied", "forbidden")


def split_reference(ref: str) -> tuple[str, str | None, str | None]:
    """(name, tag or None, digest or None) of `[host[:port]/]path[:tag][@digest]`."""
    name, _, digest = ref.partition("@")
    head, slash, last = name.rpartition("/")
    tag = None
    if ":" in last:
        last, tag = last.split(":", 1)
        name = f"{head}{slash}{last}"
    return name, tag, digest or None


def _check_digest(digest: str) -> str:
    if not DIGEST.match(digest):
        raise FlowError(f"'{digest}' is not an image digest: give it as push-image printed it, sha256: and 64 hex "
                        "digits.")
    return digest


def _failed(action: str, ref: str, message: str) -> FlowError:
    """One sentence for what the engine said when a push or pull failed."""
    host = registry_host(ref) or "docker.io"
    lower = message.lower()
    if any(word in lower for word in AUTH_WORDS):
        return FlowError(f"{host} refused to {action} {ref} ({message}): log in with `docker login {host}` (or "
                         f"`podman login {host}`) as someone who may {action} there, and run it again.")
    if "manifest unknown" in lower or "not found" in lower or "does not exist" in lower:
        return FlowError(f"{host} has no image {ref} ({message}): check the name and digest with whoever pushed it.")
    if "verif" in lower or "digest" in lower and ("mismatch" in lower or "did not match" in lower):
        return FlowError(f"{host} sent something else for {ref} than its digest names ({message}): the registry's "
                         "copy is damaged or was altered; ask whoever pushed it to push it again.")
    if "connection refused" in lower or "no such host" in lower or "http response to https" in lower \
            or "timeout" in lower or "dial tcp" in lower:
        return FlowError(f"The engine could not reach {host} ({message}): check the name and that the registry is "
                         "up (a registry without TLS must be listed as insecure in the engine's configuration).")
    return FlowError(f"The engine could not {action} {ref} ({message}): fix what it names and run it again.")


class _Layers:
    """Progress of a push or pull, counted in layers (the engines' byte counts differ): a line
    redrawn on a terminal, else one every 5 s and one at the end."""

    def __init__(self, label: str):
        self.label = label
        self.seen, self.done = set(), set()
        self.start = time.monotonic()
        self.last = 0.0
        self.tty = sys.stderr.isatty()

    def update(self, event: dict) -> None:
        layer = event.get("id") or ""
        if not re.fullmatch(r"[0-9a-f]{12,64}", layer):  # also "id": the reference, in Docker's first line
            return
        self.seen.add(layer)
        if str(event.get("status", "")).startswith(LAYER_DONE):
            self.done.add(layer)
        elapsed = time.monotonic() - self.start
        if self.tty:
            self._write(f"\r{self._line()}")
        elif elapsed - self.last >= 5:
            self.last = elapsed
            self._write(self._line() + "\n")

    def close(self) -> None:
        if self.seen:
            self._write(("\r" if self.tty else "") + self._line() + "\n")

    def _line(self) -> str:
        return f"{self.label}: {len(self.done)}/{len(self.seen)} layers ({time.monotonic() - self.start:.0f}s)"

    @staticmethod
    def _write(text: str) -> None:
        sys.stderr.write(text)
        sys.stderr.flush()


def _stream(start, action: str, ref: str, label: str) -> str | None:
    """Start the push or pull (`start()` -> the engine's progress events) and follow it; FlowError
    for an error it answers or that is among the events. The manifest digest the engine reported,
    if it did."""
    import docker
    import requests

    layers, digest = _Layers(label), None
    try:
        for event in start():
            if event.get("error"):
                raise _failed(action, ref, str(event.get("errorDetail", {}).get("message") or event["error"]))
            layers.update(event)
            found = (event.get("aux") or {}).get("Digest") or \
                next(iter(re.findall(r"\bdigest: (sha256:[0-9a-f]{64})", str(event.get("status", "")), re.I)), None)
            digest = found or digest
    except docker.errors.APIError as exc:
        raise _failed(action, ref, str(exc.explanation or exc)) from exc
    except requests.exceptions.RequestException as exc:
        raise _failed(action, ref, str(exc)) from exc
    finally:
        layers.close()
    return digest


def _local(client, ref: str):
    import docker

    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None
    except docker.errors.APIError as exc:  # Podman answers 500 for some names it cannot parse
        if exc.status_code == 404:
            return None
        raise FlowError(f"The engine could not look up {ref} ({exc.explanation or exc}): check the name.") from exc


def _not_hlsflow(ref: str, labels, advice: str) -> FlowError | None:
    missing = missing_label(labels)
    if missing:
        return FlowError(f"{ref} is not an hlsflow image (it has no {missing} label): {advice}.")
    return None


def _sbom_sha256(client, image_id: str) -> str:
    return hashlib.sha256(image_sbom_bytes(client, image_id)).hexdigest()


def push_image(ref: str, image: str | None = None) -> str:
    """Push the local hlsflow image `image` (default: HLSFLOW_IMAGE, else hlsflow:latest) as `ref`;
    returns `name@digest`, the reference that names exactly the image pushed."""
    source = image_name(image)
    target = image_ref(ref)
    name, tag, digest = split_reference(target)
    if digest:
        raise FlowError(f"{ref} names a digest, which a push cannot choose: give the name and a tag, e.g. "
                        f"{name}:{tag or 'latest'}.")
    if not registry_host(target):
        raise FlowError(f"{ref} names no registry: give the registry's host first, e.g. ghcr.io/your-lab/hlsflow:0.2.0 "
                        "or 127.0.0.1:5000/hlsflow:0.2.0.")
    tag = tag or "latest"
    target = f"{name}:{tag}"
    client = docker_client()
    found = _local(client, source)
    if found is None:
        raise FlowError(missing_image_message(source))
    refused = _not_hlsflow(source, found.labels, "push an image built by `invoke build-image` or loaded with "
                           "`hlsflow load-image`")
    if refused:
        raise refused
    there = _local(client, target)
    if there is not None and there.id != found.id:
        raise FlowError(f"{target} already names another image in this engine ({there.id[7:19]}, not {source}'s "
                        f"{found.id[7:19]}): remove that name with `docker rmi {target}`, or push under another tag.")
    revision = found.labels[REVISION_LABEL]
    sbom = _sbom_sha256(client, found.id)
    client.api.tag(found.id, name, tag)
    step(f"Pushing {source} ({found.id[7:19]}, revision {revision[:12]}) to {target}")
    try:
        digest = _stream(lambda: client.api.push(name, tag=tag, stream=True, decode=True), "push", target, f"push {target}")
    except BaseException:
        if there is None:  # the name was this push's: a failed push leaves the engine's names as they were
            _remove_names(client, [target])
        raise
    if not digest:  # an engine that did not say: the name it now holds for the registry's copy
        digests = [d for d in (client.images.get(found.id).attrs.get("RepoDigests") or [])
                   if split_reference(d)[0] == name]
        if len(digests) != 1:
            raise FlowError(f"{runtime_name(client)} pushed {target} but did not say its digest: look it up with "
                            f"`docker inspect {target}` (RepoDigests) before handing it on.")
        digest = split_reference(digests[0])[2]
    pinned = f"{name}@{digest}"
    say(f"Pushed {target}: image {found.id[7:19]}, revision {revision[:12]}, SBOM sha256 {sbom[:12]}. Hand on the "
        "digest, not the tag (anyone who may push can move a tag); pull it with `hlsflow pull-image` or set:")
    say(f"HLSFLOW_IMAGE={pinned}")
    return pinned


def pull_image(ref: str, digest: str | None = None, tag_latest: bool = True, client=None):
    """Pull `ref` (pinned to `digest` when given, or by the digest it holds) and check it; tag it
    hlsflow:latest unless not `tag_latest`. Returns the image. A refusal puts the names the pull
    gave back as they were."""
    target = image_ref(ref)
    name, tag, pinned = split_reference(target)
    if pinned:
        _check_digest(pinned)
    if digest:
        _check_digest(digest)
        if pinned and pinned != digest:
            raise FlowError(f"{ref} names digest {pinned[:19]}…, and --digest {digest[:19]}…: give only one of them.")
    digest = digest or pinned
    if not registry_host(target):
        raise FlowError(f"{ref} names no registry: give it as push-image printed it, e.g. "
                        "ghcr.io/your-lab/hlsflow@sha256:….")
    client = client or docker_client()
    # With a tag, the tag is pulled (and must still name the digest); else the digest itself.
    wanted = f"{name}:{tag}" if tag or not digest else f"{name}@{digest}"
    before = getattr(_local(client, wanted), "id", None)
    known = _digest_names(client, name)  # a refused pull removes only the names it gave
    step(f"Pulling {wanted} ({runtime_name(client)})")
    remote = digest if wanted.endswith(f"@{digest}") else (tag or "latest")
    got = _stream(lambda: client.api.pull(name, tag=remote, stream=True, decode=True), "pull", wanted, f"pull {name}")
    image = _local(client, wanted)
    if image is None:
        raise FlowError(f"{runtime_name(client)} finished pulling {wanted} but does not hold it: pull it again.")
    digests = sorted(split_reference(d)[2] for d in image.attrs.get("RepoDigests") or [] if split_reference(d)[0] == name)
    try:
        if digest and digest not in digests:
            other = got or (digests[0] if digests else "another digest")
            raise FlowError(f"{wanted} now names {other[:19]}…, not the {digest[:19]}… you asked for: another image "
                            f"was pushed under that tag; ask whoever gave you the digest, or pull {name}@{digest} by "
                            "its digest alone.")
        refused = _not_hlsflow(wanted, image.labels, "ask whoever gave you the name for the reference push-image "
                               "printed")
        if refused:
            raise refused
        sbom = _sbom_sha256(client, image.id)
    except BaseException:
        if before != image.id:
            _put_back(client, wanted, before, image.id, [f"{name}@{d}" for d in digests if f"{name}@{d}" not in known])
        raise
    digest = digest or got or (digests[0] if digests else None)
    if tag_latest:
        client.api.tag(image.id, REPO, "latest")
    also = f"; tagged {REPO}:latest" if tag_latest else ""
    say(f"Pulled {name}@{digest}: image {image.id[7:19]}, revision {image.labels[REVISION_LABEL][:12]}, "
        f"SBOM sha256 {sbom[:12]}{also}")
    if not pinned and digest and wanted != f"{name}@{digest}":
        say(f"A tag can move; this image is HLSFLOW_IMAGE={name}@{digest}")
    return image


def _digest_names(client, name: str) -> set:
    """Every `name@sha256:…` the engine holds now."""
    import docker

    try:
        images = client.images.list(name=name)
    except docker.errors.APIError:
        return set()
    return {d for image in images for d in image.attrs.get("RepoDigests") or [] if split_reference(d)[0] == name}


def _put_back(client, wanted: str, before: str | None, pulled_id: str, pulled: list) -> None:
    """Undo the names a refused pull gave: `pulled` (the registry digests it recorded) go, and
    `wanted` names the image it named before, or nothing. The image pulled goes with its last name."""
    name, tag, _ = split_reference(wanted)
    _remove_names(client, [*pulled, *([wanted] if not (before and tag) else [])])
    if before and tag:
        client.api.tag(before, name, tag)
        image = _local(client, pulled_id)
        if image is not None and not image.tags and not image.attrs.get("RepoDigests"):
            client.api.remove_image(pulled_id)  # nameless now, and no one's but this pull's


def _remove_names(client, refs) -> None:
    """Remove each name; an image goes with its last one."""
    import docker

    for ref in refs:
        try:
            client.api.remove_image(ref)
        except docker.errors.APIError:  # already gone with another name, or in use: nothing to undo
            pass


def pull_for_run(client, ref: str):
    """The launcher's pull of HLSFLOW_IMAGE when the engine lacks it: once, with progress, checked
    as pull-image checks; hlsflow:latest is left as it is."""
    step(f"{ref} is not in this engine yet: pulling it once")
    return pull_image(ref, tag_latest=False, client=client)
