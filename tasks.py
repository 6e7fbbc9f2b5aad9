"""invoke tasks: each a few lines calling the hlsflow package.

On the host, flow tasks run inside the toolchain image (one container per invocation);
inside the image (or with HLSFLOW_NATIVE=1 in a virtualenv) they run directly.
"""

from invoke import task

from hlsflow.cli import SHARED_HELP, flow_task, host_task, load


@task(help=SHARED_HELP)
@flow_task
def convert(c, config=None, model=None, out=None, part=None, io_type=None, reuse_factor=None, precision=None,
            clock=None, force=False):
    """Keras model + config -> hls4ml model -> HLS project on disk (with preflight and graph PNG)."""
    from hlsflow import convert as stage

    stage.convert(load(config=config, model=model, out=out, part=part, io_type=io_type,
                       reuse_factor=reuse_factor, precision=precision, clock=clock), force=force)


@task(help=SHARED_HELP)
@flow_task
def check(c, config=None, model=None, out=None, part=None, io_type=None, reuse_factor=None, precision=None,
          clock=None, strict=False):
    """Preflight alone: ReuseFactors, known emulation aborts, DSP/BRAM estimates against the part."""
    from hlsflow import convert as stage
    from hlsflow.errors import FlowError

    result = stage.check_only(load(config=config, model=model, out=out, part=part, io_type=io_type,
                                   reuse_factor=reuse_factor, precision=precision, clock=clock))
    if result.errors or (strict and not result.fits):
        raise FlowError(f"Preflight found {len(result.errors)} error(s) and the design "
                        f"{'fits' if result.fits else 'does not fit'} (estimate): fix what it lists above.", exit_code=1)


@task(help={**SHARED_HELP, "samples": ".npy/.npz with X (and y)", "min-agreement": "fail below this top-1 "
            "agreement (0-1)", "max-samples": "emulate at most this many", "workers": "processes (default: all cores)"})
@flow_task
def csim(c, config=None, model=None, out=None, part=None, io_type=None, reuse_factor=None, precision=None,
         clock=None, samples=None, min_agreement=None, max_samples=None, workers=None):
    """Bit-accurate C emulation of the HLS project (g++, not Vivado) compared with Keras."""
    from hlsflow import emulate

    emulate.csim(load(config=config, model=model, out=out, part=part, io_type=io_type, reuse_factor=reuse_factor,
                      precision=precision, clock=clock), samples=samples,
                 min_agreement=float(min_agreement) if min_agreement is not None else None,
                 max_samples=int(max_samples) if max_samples else None, workers=int(workers) if workers else None)


@task(help={**SHARED_HELP, "vivado": "Vivado 2018.2 install dir or vivado_hls binary", "csim": "also run "
            "Vivado's C simulation", "export": "export_design (IP)", "vsynth": "Vivado logic synthesis",
            "timeout": "seconds before synthesis is stopped", "force": "run even if up to date"})
@flow_task
def synth(c, config=None, model=None, out=None, part=None, io_type=None, reuse_factor=None, precision=None,
          clock=None, vivado=None, csim=False, export=False, vsynth=False, timeout=None, force=False):
    """Vivado HLS C synthesis (cosimulation off) of the converted project."""
    from hlsflow import synthesize

    synthesize.synth(load(config=config, model=model, out=out, part=part, io_type=io_type,
                          reuse_factor=reuse_factor, precision=precision, clock=clock),
                     vivado=vivado, csim=csim or None, export=export or None, vsynth=vsynth or None,
                     timeout=timeout, force=force)


@task(help=SHARED_HELP)
@flow_task
def report(c, config=None, model=None, out=None, part=None, io_type=None, reuse_factor=None, precision=None,
           clock=None):
    """Resources, latency and timing from Vivado's reports -> report.json, report.md, utilisation.png."""
    from hlsflow import report as stage

    cfg = load(config=config, model=model, out=out, part=part, io_type=io_type, reuse_factor=reuse_factor,
               precision=precision, clock=clock)
    stage.write_report(cfg.output_dir, cfg.project_name, cfg.part)


@task(help={**SHARED_HELP, "samples": ".npy/.npz with X (and y)", "min-agreement": "fail below this agreement",
            "vivado": "Vivado 2018.2 install dir"})
@flow_task
def flow(c, config=None, model=None, out=None, part=None, io_type=None, reuse_factor=None, precision=None,
         clock=None, samples=None, min_agreement=None, vivado=None):
    """convert, csim, synth (skipped with one line when no Vivado is found), report."""
    from hlsflow import flow as stage

    stage.run(load(config=config, model=model, out=out, part=part, io_type=io_type, reuse_factor=reuse_factor,
                   precision=precision, clock=clock), samples=samples,
              min_agreement=float(min_agreement) if min_agreement is not None else None, vivado=vivado)


@task(help={"epochs": "training epochs", "cifar": "CIFAR-10 tarball or folder (else synthetic data)"})
@flow_task
def train_model(c, epochs=6, cifar=None):
    """Train the reference Mini-ResNet and write models/model_2_15.keras with its samples."""
    from hlsflow import train

    train.train_model("models/model_2_15.keras", "models/samples_2_15.npz", epochs=int(epochs), cifar=cifar)


@task
@flow_task
def versions(c):
    """Python, TensorFlow, numpy, hls4ml, g++, image revision and the Vivado in sight."""
    from hlsflow import versions as stage

    stage.main()


@task(help={"tag": "image tag (default hlsflow:<version>-<git describe>)", "no-cache": "rebuild every layer"})
@host_task
def build_image(c, tag=None, no_cache=False):
    """Build the toolchain image (debootstrapped base and host wheelhouse when no registry is reachable)."""
    from hlsflow import image

    image.build_image(tag=tag, no_cache=no_cache)


@task(help={"path": "tarball to write (default build/hlsflow-<tag>.tar.gz)"})
@host_task
def save_image(c, path=None):
    """Write the image as a compressed tarball with a .sha256 beside it, to hand on."""
    from hlsflow import image

    image.save_image(path)


@task(help={"path": "tarball written by save-image"})
@host_task
def load_image(c, path):
    """Load an image tarball after checking its sha256."""
    from hlsflow import image

    image.load_image(path)


@task
@host_task
def lock(c):
    """Regenerate docker/requirements.lock (hash-checked) from docker/requirements.in."""
    from hlsflow import image

    image.lock()


@task
@host_task
def shell(c):
    """An interactive shell in the toolchain image, with the repository and Xilinx tree mounted."""
    from hlsflow import dispatch

    dispatch.open_shell()


@task(help={"host-only": "only the Docker image tests", "flow-only": "only the flow tests (inside the image)"})
@host_task
def test(c, host_only=False, flow_only=False):
    """All tests: flow tests inside the image, image tests against the Docker engine."""
    from hlsflow import testing

    testing.run_all(host=not flow_only, flow=not host_only)


@task(help={**SHARED_HELP, "samples": ".npy/.npz with X", "max-samples": "profile on at most this many",
            "png": "where to draw the profile (default <out>/precision_profile.png)"})
@flow_task
def profile(c, config=None, model=None, out=None, part=None, io_type=None, reuse_factor=None, precision=None,
            clock=None, samples=None, max_samples=50, png=None):
    """Per-layer Keras ranges against the fixed-point types, with hls4ml's trace error: table and PNG."""
    from hlsflow import profile as stage

    stage.profile(load(config=config, model=model, out=out, part=part, io_type=io_type, reuse_factor=reuse_factor,
                       precision=precision, clock=clock), samples=samples, max_samples=int(max_samples), png=png)


@task(help={**SHARED_HELP, "samples": ".npy/.npz with X (and y)", "max-samples": "emulate at most this many",
            "write": "where to write the improved config (default <config>.tuned.yml)"})
@flow_task
def tune_precision(c, config=None, model=None, out=None, part=None, io_type=None, reuse_factor=None, precision=None,
                   clock=None, samples=None, max_samples=None, write=None):
    """Widen the types that overflow, emulate before and after, write the improved config."""
    from hlsflow import profile as stage

    stage.tune(load(config=config, model=model, out=out, part=part, io_type=io_type, reuse_factor=reuse_factor,
                    precision=precision, clock=clock), samples=samples,
               max_samples=int(max_samples) if max_samples else None, write=write)


@task(help={"cold": "also time a no-cache image build", "skip-image": "skip the image and dispatch figures"})
@host_task
def bench(c, cold=False, skip_image=False):
    """Benchmarks side by side with the baselines; writes bench/results/<date>.md."""
    from bench import run

    run.main(cold=cold, skip_image=skip_image)
