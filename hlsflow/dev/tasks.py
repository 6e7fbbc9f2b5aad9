"""Tasks for working on hlsflow itself, in a checkout: the user tasks plus building and locking
the image, the tests, the benchmarks and training the bundled model. Root tasks.py exposes this
collection to `invoke`."""


from invoke import Collection

from ..cli.kinds import host_task
from ..cli.tasks import USER_TASKS
from ..files import REPO_ROOT as ROOT


@host_task(help={"tag": "image tag (default hlsflow:<version>-<git describe>)", "no-cache": "rebuild every layer",
                 "allow-drift": "accept Debian package versions that differ from docker/debian-packages.lock "
                                "and update the lock",
                 "lane": "reference (default: hlsflow:*) or keras3 (docker/keras3/, hlsflow-keras3:*)"})
def build_image(c, tag=None, no_cache=False, allow_drift=False, lane="reference"):
    """Build the toolchain image (debootstrapped base and host wheelhouse when no registry is reachable)."""
    from ..image import build
    from ..image.lanes import check_lane

    build.build_image(tag=tag, no_cache=no_cache, allow_drift=allow_drift, lane=check_lane(lane))


@host_task(help={"lane": "reference (default) or keras3 (docker/keras3/'s locks)"})
def lock(c, lane="reference"):
    """Regenerate docker/requirements.lock and host-requirements.lock (hash-checked) from their .in files."""
    from ..image import wheels
    from ..image.lanes import check_lane

    wheels.lock(check_lane(lane))


def _ran_in_image(argv: list) -> bool:
    """On the host: runs the checkout's task `argv` in the image and returns True (FlowError if it
    failed there); inside the image: False, and the caller does the work."""
    from ..cli import launcher
    from ..errors import FlowError

    if launcher.in_image():
        return False
    code = launcher.run_checkout_task(argv, ROOT)
    if code:
        raise FlowError(f"{argv[0]} failed in the image (exit {code}): see its output above.", exit_code=code)
    return True


@host_task(help={"host-only": "only the tests against the engine, on the host",
                 "flow-only": "only the flow tests (inside the image)"})
def test(c, host_only=False, flow_only=False):
    """All tests: flow tests inside the image, image and user-side tests against the engine."""
    from . import testing

    testing.run_all(host=not flow_only, flow=not host_only)


@host_task(help={"epochs": "training epochs", "cifar": "CIFAR-10 tarball or folder (else synthetic data)"})
def train_model(c, epochs=6, cifar=None):
    """Train the reference Mini-ResNet and write models/model_2_15.keras with its samples (in the image)."""
    if _ran_in_image(["train-model", "--epochs", str(epochs)] + (["--cifar", str(cifar)] if cifar else [])):
        return
    from . import train  # numpy and TensorFlow: only in the image

    train.train_model(ROOT / "models/model_2_15.keras", ROOT / "models/samples_2_15.npz", epochs=int(epochs),
                      cifar=cifar)


@host_task()
def kernel_signatures(c):
    """Write hlsflow/emulator/kernel_signatures.txt, the kernels the image compiles ahead of time (in the image)."""
    import tempfile

    from . import kernel_signatures

    if _ran_in_image(["kernel-signatures"]):
        return
    with tempfile.TemporaryDirectory() as scratch:
        count = kernel_signatures.record(scratch)
    print(f"{count} kernel signatures written to hlsflow/emulator/kernel_signatures.txt")


@host_task(help={"cold": "also time a no-cache image build", "skip-image": "skip the image and dispatch figures"})
def bench(c, cold=False, skip_image=False):
    """Benchmarks side by side with the baselines; writes bench/results/<date>.md."""
    import sys

    sys.path.insert(0, str(ROOT))
    from bench import run

    run.main(cold=cold, skip_image=skip_image)


DEV_TASKS = (build_image, lock, test, train_model, kernel_signatures, bench)

namespace = Collection(*USER_TASKS, *DEV_TASKS)
