"""The keras3 lane (issue 42): the host reads which Keras saved a model before any container starts,
runs a Keras 3 model in the keras3 image (Keras 3.15 on JAX) without being asked, and says so; a
Keras 3 model sent to the reference lane, an unknown lane and a missing keras3 image are one
sentence each. Through the installed host `hlsflow`, from a user's folder outside the checkout.

HLSFLOW_IMAGE names an image that does not exist in every run here: what reaches the keras3 lane
cannot have run in the reference image, and what the host refuses never needed one."""

import shutil
import uuid
from pathlib import Path

import pytest

from hlsflow.errors import FlowError
from hlsflow.image import build
from state.test_safety import assert_one_sentence, folder_state
from test_handover_identity import hlsflow

from conftest import once_per_session

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "models"
NO_REFERENCE = f"hlsflow-test-no-such-image:{uuid.uuid4().hex[:12]}"


def assert_flow_bit_exact(folder: Path, env: dict) -> None:
    """flow on the fast engine, then csim --cross-check 300: bit for bit with hls4ml's C++."""
    proc, _ = hlsflow("flow", cwd=folder, **env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "fast engine" in proc.stdout and "top-1 agreement HLS vs Keras" in proc.stdout, proc.stdout[-3000:]

    proc, _ = hlsflow("csim", "--cross-check", "300", cwd=folder, **env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Cross-check: the fast engine and the C++ emulation agree bit for bit on all 300 samples." in proc.stdout, \
        proc.stdout[-3000:]


@pytest.fixture(scope="session")
def keras3_image(docker_client, tmp_path_factory) -> str:
    """The keras3 lane's image built from this checkout (`invoke build-image --lane keras3`): on a warm
    layer cache only the code layers are rebuilt."""
    try:
        return once_per_session(tmp_path_factory, "keras3-image", lambda: build.build_image(lane="keras3"))
    except FlowError as exc:
        pytest.fail(f"building the keras3 image failed: {exc}", pytrace=False)


@pytest.fixture
def user(tmp_path) -> Path:
    """An empty user folder, then the bundled Keras 3 MLP and its samples copied in."""
    for name in ("keras3_mlp.keras", "keras3_mlp_samples.npz"):
        shutil.copy(MODELS / name, tmp_path / name)
    return tmp_path


@pytest.mark.parametrize("name", ["keras3_mlp", "hgq2_mlp"])
def test_keras3_model_runs_in_the_keras3_lane_bit_exact(keras3_image, tmp_path, name):
    """From an empty folder: init --samples, flow, then csim --cross-check. The lane is chosen from the
    file and said in one line; the fast engine is bit for bit hls4ml's C++ emulation on all 300
    samples. A plain Keras 3 MLP and an HGQ2 one (whose quantizers set every type)."""
    for suffix in (".keras", "_samples.npz"):
        shutil.copy(MODELS / f"{name}{suffix}", tmp_path / f"{name}{suffix}")
    user = tmp_path
    env = {"HLSFLOW_IMAGE": NO_REFERENCE, "HLSFLOW_IMAGE_KERAS3": keras3_image}
    proc, _ = hlsflow("init", "--model", f"{name}.keras", "--samples", f"{name}_samples.npz", cwd=user, **env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    said = [line for line in proc.stdout.splitlines() if "lane" in line]
    assert said == [f"hlsflow: {name}.keras was saved by Keras 3.15.1: running it in the keras3 lane "
                    f"(Keras 3.15 on JAX), image {keras3_image}."], proc.stdout
    assert (user / "hls4ml_config.yml").is_file()

    assert_flow_bit_exact(user, env)
    if name == "keras3_mlp":  # a stage that imported TensorFlow itself (for its logger), once
        proc, _ = hlsflow("tune-precision", "--max-samples", "50", cwd=user, **env)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "Baseline, hls4ml's 'auto' types" in proc.stdout, proc.stdout[-3000:]


def test_keras3_model_in_the_reference_lane_is_one_sentence(user):
    before = folder_state(user)
    proc, _ = hlsflow("--lane", "reference", "convert", "--model", "keras3_mlp.keras", cwd=user,
                      HLSFLOW_IMAGE=NO_REFERENCE)
    assert proc.returncode == 2
    assert_one_sentence(proc, "keras3_mlp.keras was saved by Keras 3.15.1", "the reference lane", "--lane keras3")
    assert folder_state(user) == before


def test_unknown_lane_is_one_sentence(user):
    before = folder_state(user)
    proc, _ = hlsflow("--lane", "keras4", "convert", "--model", "keras3_mlp.keras", cwd=user, HLSFLOW_IMAGE=NO_REFERENCE)
    assert proc.returncode == 2
    assert_one_sentence(proc, "There is no lane 'keras4'", "--lane keras3")
    assert folder_state(user) == before


def test_missing_keras3_image_says_how_to_build_it(user):
    missing = f"hlsflow-keras3:test-missing-{uuid.uuid4().hex[:12]}"
    before = folder_state(user)
    proc, _ = hlsflow("convert", "--model", "keras3_mlp.keras", cwd=user, HLSFLOW_IMAGE=NO_REFERENCE,
                      HLSFLOW_IMAGE_KERAS3=missing)
    assert proc.returncode == 2
    assert_one_sentence(proc, f"Image {missing} of the keras3 lane", "invoke build-image --lane keras3")
    assert folder_state(user) == before


def test_keras2_model_stays_in_the_reference_lane(user):
    """A Keras 2.15 model goes to the reference lane's image (here: one that is missing, named)."""
    shutil.copy(MODELS / "qkeras_mlp.keras", user / "k2.keras")
    proc, _ = hlsflow("convert", "--model", "k2.keras", cwd=user, HLSFLOW_IMAGE=NO_REFERENCE,
                      HLSFLOW_IMAGE_KERAS3="hlsflow-keras3:never-asked-for")
    assert proc.returncode == 2
    assert "lane" not in proc.stdout, proc.stdout
    assert_one_sentence(proc, f"Image {NO_REFERENCE} not found")


def test_model_whose_keras_cannot_be_told_goes_to_the_reference_lane_saying_so(tmp_path):
    """A .keras whose metadata.json is far larger than Keras writes (2 MB: not unpacked on the host) is
    not read: one line says so and which lane it runs in (the reference; its image here is missing)."""
    import zipfile

    with zipfile.ZipFile(tmp_path / "big.keras", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("metadata.json", '{"keras_version": "3.15.1", "pad": "' + "a" * (2 << 20) + '"}')
    proc, _ = hlsflow("convert", "--model", "big.keras", cwd=tmp_path, HLSFLOW_IMAGE=NO_REFERENCE,
                      HLSFLOW_IMAGE_KERAS3="hlsflow-keras3:never-asked-for")
    assert proc.returncode == 2
    assert "hlsflow: cannot tell which Keras saved big.keras (its metadata.json is too large to be Keras's): " \
           "running it in the reference lane (TensorFlow 2.15, Keras 2); give --lane keras3 if Keras 3 saved it." \
           in proc.stdout, proc.stdout
    assert_one_sentence(proc, f"Image {NO_REFERENCE} not found")
