"""Image lanes: the reference image (TensorFlow 2.15, Keras 2: hlsflow:latest) and the keras3 lane
(Keras 3.15 on JAX, HGQ2, QKeras v3, da4ml, numpy 2: hlsflow-keras3:latest, docker/keras3/).

The host reads which Keras saved the model before any container starts, from the file alone (a
.keras archive's metadata.json, an .h5 file's keras_version attribute, a .json architecture's
keras_version key), and runs a Keras 3 model in the keras3 lane. `hlsflow --lane NAME` (or
HLSFLOW_LANE) chooses a lane; HLSFLOW_IMAGE and HLSFLOW_IMAGE_KERAS3 name each lane's image.
Nothing here imports TensorFlow or Keras: the host has neither.
"""

import json
import os
import zipfile
from pathlib import Path

from ..console import say
from ..errors import FlowError
from .containers import KERAS3_REPO, docker_client, image_ref, registry_host

REFERENCE, KERAS3 = "reference", "keras3"
LANES = (REFERENCE, KERAS3)
LANE_ENV = "HLSFLOW_LANE"  # set by `hlsflow --lane NAME`
KERAS3_IMAGE_ENV = "HLSFLOW_IMAGE_KERAS3"
KERAS3_IMAGE = f"{KERAS3_REPO}:latest"
METADATA_LIMIT = 1 << 20
WHAT = {REFERENCE: "the reference lane (TensorFlow 2.15, Keras 2)", KERAS3: "the keras3 lane (Keras 3.15 on JAX)"}


def check_lane(lane) -> str:
    lane = str(lane).strip().lower()
    if lane not in LANES:
        raise FlowError(f"There is no lane '{lane}': give --lane reference (TensorFlow 2.15, Keras 2) or "
                        "--lane keras3 (Keras 3).")
    return lane


def saved_by(path) -> tuple[str | None, str]:
    """(the Keras version that saved the model file `path`, or None when the file does not say or
    cannot be read here; why it is None, for the one line that says so)."""
    path = Path(path)
    try:
        if path.suffix == ".json":
            config = json.loads(path.read_text())
            version = config.get("keras_version") if isinstance(config, dict) else None
            return _text(version), "its JSON has no keras_version"
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                # Keras writes a few hundred bytes; a handed file's huge one is not unpacked into memory.
                if archive.getinfo("metadata.json").file_size > METADATA_LIMIT:
                    return None, "its metadata.json is too large to be Keras's"
                metadata = json.loads(archive.read("metadata.json"))
            return _text(metadata.get("keras_version") if isinstance(metadata, dict) else None), \
                "its metadata.json has no keras_version"
        with open(path, "rb") as file:
            if file.read(8) != b"\x89HDF\r\n\x1a\n":
                return None, "it is neither a .keras archive nor an HDF5 file"
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        return None, f"it could not be read ({type(exc).__name__})"
    try:
        import h5py  # in the host's venv when it was installed with it; not required there
    except ImportError:
        return None, "h5py is not installed on this host to read its HDF5 header"
    try:
        with h5py.File(path, "r") as handle:
            return _text(handle.attrs.get("keras_version")), "its HDF5 header has no keras_version"
    except (OSError, ValueError) as exc:
        return None, f"its HDF5 header could not be read ({type(exc).__name__})"


def _text(value) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value if isinstance(value, str) and value.strip() else None


def _major(version: str) -> int | None:
    head = version.strip().split(".", 1)[0]
    return int(head) if head.isdigit() else None


def models_in(argv: list, cwd=None) -> list[Path]:
    """The model files the container will load, from its argv as launcher.mount_plan made it
    (absolute paths): each --model, else the model each existing --config names."""
    from ..config_files import resolve_paths

    flags = {}
    for flag, value in zip(argv, argv[1:]):
        flags.setdefault(flag, []).append(value)
    models = [Path(m) for m in flags.get("--model", [])]
    if not models:
        for config in flags.get("--config", []):
            if Path(config).is_file():
                found = resolve_paths(config, None, None, None, cwd).model
                if found is not None:
                    models.append(found)
    return models


def lane_image(argv: list, cwd=None) -> str | None:
    """The image to run `hlsflow ARGV` in: None for the reference lane (launcher's HLSFLOW_IMAGE or
    hlsflow:latest), else the keras3 lane's. A Keras 3 model chooses the keras3 lane, said in one
    line; --lane (HLSFLOW_LANE) overrides, and a Keras 3 model in the reference lane is FlowError."""
    asked = os.environ.get(LANE_ENV)
    lane = check_lane(asked) if asked else None
    keras3 = []
    for model in models_in(argv, cwd):
        version, why = saved_by(model)
        if version is not None and (_major(version) or 0) >= 3:
            keras3.append((model, version))
        elif version is None and lane is None and model.suffix != ".json":
            say(f"hlsflow: cannot tell which Keras saved {model.name} ({why}): running it in {WHAT[REFERENCE]}; "
                "give --lane keras3 if Keras 3 saved it.")
    if lane == REFERENCE and keras3:
        model, version = keras3[0]
        raise FlowError(f"{model} was saved by Keras {version}, which {WHAT[REFERENCE]} cannot read: run it in the "
                        "keras3 lane (--lane keras3, or no --lane).")
    if lane is None and keras3:
        lane = KERAS3
        model, version = keras3[0]
        say(f"hlsflow: {model.name} was saved by Keras {version}: running it in {WHAT[KERAS3]}, image "
            f"{keras3_image()}.")
    if lane != KERAS3:
        return None
    ref = keras3_image()
    if not registry_host(ref):  # a registry's image is pulled on first use (fetch.flow_image)
        import docker

        try:
            docker_client().images.get(ref)
        except docker.errors.ImageNotFound:
            raise missing_keras3_image(ref) from None
    return ref


def keras3_image() -> str:
    return image_ref(os.environ.get(KERAS3_IMAGE_ENV) or KERAS3_IMAGE)


def missing_keras3_image(ref: str) -> FlowError:
    return FlowError(f"Image {ref} of the keras3 lane (for Keras 3 models) not found: build it in a checkout with "
                     f"`invoke build-image --lane keras3`, load it with `hlsflow load-image FILE`, or set "
                     f"{KERAS3_IMAGE_ENV} to one.")
