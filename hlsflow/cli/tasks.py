"""The tasks users run: `hlsflow TASK` (installed), `invoke TASK` in a checkout, or `docker run
IMAGE TASK`. Each task is a few lines calling one stage; kinds.py's decorators give every flow task
the shared flags and declare which of its arguments are paths, so the host side can check and
mount them (mounts.py)."""

from invoke import Collection

from ..errors import FlowError
from .kinds import flow_task, host_task, image_task

SAMPLES_HELP = ".npy/.npz with X (and y)"
MAX_ERROR_HELP = "fail when max |HLS - Keras| is above this (any output, in its own units)"
VIVADO_HELP = "Vivado HLS install dir, its vivado_hls, or a version under XILINX_ROOT (e.g. 2020.1)"
VITIS_HELP = "Vitis HLS install dir, its vitis_hls, or a version under XILINX_ROOT (e.g. 2024.1)"


def _max_error(value):
    from ..errors import check_flag

    return check_flag(value, "max_error", "positive")


@flow_task(help={"force": "convert even if the project is up to date"})
def convert(c, cfg, force=False):
    """Keras model + config -> hls4ml model -> HLS project on disk (with preflight and graph PNG)."""
    from .. import flow

    flow.convert(cfg, force=force)


@flow_task(help={"strict": "fail when the design does not fit the part (estimate)"}, writes_output=False)
def check(c, cfg, strict=False):
    """Preflight alone: ReuseFactors, known emulation aborts, DSP/BRAM estimates against the part."""
    from .. import flow

    flow.check(cfg, strict=strict)


@flow_task(help={"dsp-margin": "fraction of the part's DSPs the multipliers may use (default 0.8)",
                 "bram-margin": "fraction of the part's BRAM_18K the weights may use (default 0.8)",
                 "write": "where to write the planned config (default <config>.plan.yml, or <out>.plan.yml)"},
           outputs=("write",), writes_beside_config=True, checks={"dsp_margin": "share", "bram_margin": "share"})
def plan(c, cfg, dsp_margin=None, bram_margin=None, write=None):
    """A ReuseFactor per layer that fits the part's DSPs and BRAM (estimates) with the shortest interval;
    prints the plan and writes it as a config."""
    from ..stages import plan as stage

    # Default None, not a float: invoke would convert the flag itself, and fail with a traceback on "abc".
    stage.plan(cfg, dsp_margin=dsp_margin, bram_margin=bram_margin, write=write)


@flow_task(help={"samples": SAMPLES_HELP, "min-agreement": "fail below this agreement of the predicted labels (0-1)",
                 "max-error": MAX_ERROR_HELP, "max-samples": "emulate at most this many",
                 "workers": "cores to use (default: all)",
                 "engine": "auto (fast unless a layer needs C++), fast, or cpp (hls4ml's C++ emulation)",
                 "cross-check": "run this many samples through both engines; fail on the first differing bit",
                 "force": "emulate again even if the results are up to date"},
           inputs=("samples",), checks={"min_agreement": "fraction", "max_samples": "count", "workers": "count",
                                        "cross_check": "count", "max_error": "positive"},
           auto_shortflags=False)  # out of letters: invoke offered "--" for --cross-check
def csim(c, cfg, samples=None, min_agreement=None, max_samples=None, workers=None, engine=None, cross_check=None,
         force=False, max_error=None):
    """Bit-accurate emulation of the HLS project (not Vivado) compared with Keras; converts first when
    the project is missing or stale."""
    from .. import flow

    flow.csim(cfg, samples=samples, min_agreement=min_agreement, max_samples=max_samples, workers=workers,
              engine=engine, cross_check=cross_check, force=force, max_error=max_error)


@flow_task(help={"vivado": VIVADO_HELP, "vitis": VITIS_HELP, "csim": "also run the HLS tool's C "
                 "simulation", "export": "export_design (IP)", "vsynth": "Vivado logic synthesis",
                 "timeout": "seconds before synthesis is stopped", "force": "run even if up to date"},
           inputs=("vivado", "vitis"), checks={"timeout": "seconds"})
def synth(c, cfg, vivado=None, vitis=None, csim=False, export=False, vsynth=False, timeout=None, force=False):
    """Vivado/Vitis HLS C synthesis (cosimulation off); converts first when the project is missing or stale."""
    from .. import flow

    flow.synth(cfg, vivado=vitis or vivado, csim=csim or None, export=export or None, vsynth=vsynth or None,
               timeout=timeout, force=force)


@flow_task(help={"vivado": VIVADO_HELP + ", when synthesis must run first", "vitis": VITIS_HELP},
           inputs=("vivado", "vitis"), with_options=True, out_alone=True)
def report(c, cfg, vivado=None, vitis=None, options=None):
    """Resources, latency and timing from Vivado's reports -> report.json, report.md, utilisation.png;
    synthesises first when the results are missing or stale. `--out DIR` alone reports on a project
    synthesised elsewhere (by hand or by hls4ml), changing nothing in it."""
    from .. import flow

    flow.report(cfg, vivado=vitis or vivado, out=options["out"], part=options["part"])


@flow_task(help={"samples": SAMPLES_HELP, "min-agreement": "fail below this agreement", "max-error": MAX_ERROR_HELP,
                 "vivado": VIVADO_HELP, "vitis": VITIS_HELP, "force": "redo every stage even if up to date"},
           inputs=("samples", "vivado", "vitis"), checks={"min_agreement": "fraction", "max_error": "positive"})
def flow(c, cfg, samples=None, min_agreement=None, vivado=None, vitis=None, force=False, max_error=None):
    """convert, csim, synth (skipped with one line when no Vivado is found), report."""
    from ..flow import run

    run(cfg, samples=samples, min_agreement=min_agreement, vivado=vitis or vivado, force=force, max_error=max_error)


@flow_task(help={"grid": "YAML of config keys to lists of values (ReuseFactor may be `plan`)",
                 "out": "the sweep's folder, a point's output directory in it (default <OutputDir>-sweep)",
                 "samples": SAMPLES_HELP, "max-samples": "emulate at most this many per point",
                 "min-agreement": "the agreement the final line's best point needs (default: the config's, else 0.99)",
                 "synth-all": "synthesise points the preflight rules out too",
                 "scheduler": "an existing Dask scheduler, tcp://host:port (default: a local cluster)",
                 "jobqueue": "a dask-jobqueue file (Slurm, HTCondor, PBS): see README",
                 "memory-per-point": "memory budget of one point (worker), e.g. 4GB",
                 "workers": "local workers (default: by cores and memory)",
                 "vivado": "Vivado 2018.2 install dir, as the workers see it",
                 "max-points": "refuse a grid of more points than this (default 500)"},
           inputs=("grid", "samples", "jobqueue"), remote=("vivado",), with_options=True,
           network_flags=("scheduler", "jobqueue"),
           checks={"max_samples": "count", "min_agreement": "fraction", "workers": "count", "max_points": "count"},
           auto_shortflags=False)  # so many flags that invoke would run out of letters (and offer "--")
def sweep(c, cfg, grid=None, samples=None, max_samples=None, min_agreement=None, synth_all=False, scheduler=None,
          jobqueue=None, memory_per_point="4GB", workers=None, vivado=None, max_points=None, options=None):
    """The flow at every point of a grid (convert, csim, synth, report), on Dask: a table, a Pareto chart,
    and the fastest point that fits; finished points are reused."""
    from ..search import sweep as stage

    if not grid:
        raise FlowError("No grid given: pass --grid FILE, a YAML mapping of config keys to lists of values.")
    stage.sweep(cfg, options, grid, samples=samples, max_samples=max_samples, min_agreement=min_agreement,
                synth_all=synth_all, scheduler=scheduler, jobqueue=jobqueue, memory_per_point=memory_per_point,
                workers=workers, vivado=vivado, max_points=max_points)


@flow_task(help={"samples": SAMPLES_HELP, "max-samples": "profile on at most this many (default 50)",
                 "png": "where to draw the profile (default <out>/precision_profile.png)"},
           inputs=("samples",), outputs=("png",), checks={"max_samples": "count"})
def profile(c, cfg, samples=None, max_samples=None, png=None):
    """Per-layer Keras ranges against the fixed-point types, with hls4ml's trace error: table and PNG."""
    from .. import flow

    # Default None, not 50: invoke would convert the flag with int() itself, and fail with a traceback on "²".
    flow.profile(cfg, samples=samples, max_samples=max_samples, png=png)


@flow_task(help={"samples": SAMPLES_HELP, "max-samples": "emulate at most this many",
                 "write": "where to write the tuned config (default <config>.tuned.yml, or <out>/"
                          "hls4ml_config.tuned.yml for a model given without a config)",
                 "target": "top-1 agreement the gate asks for (default 0.99)",
                 "compare-auto": "also measure hls4ml's own type inference ('auto') as a baseline"},
           inputs=("samples",), outputs=("write",), writes_beside_config=True,
           checks={"max_samples": "count", "target": "share"})
def tune_precision(c, cfg, samples=None, max_samples=None, write=None, target=None, compare_auto=True):
    """Fewest added bits (integer where values overflow, fractional where resolution is lost) that meet
    the gate, each step measured by emulation; writes the tuned config."""
    from ..search import tune as stage

    stage.tune(cfg, samples=samples, max_samples=max_samples, write=write,
               target=target, compare_auto=compare_auto)


@image_task(help={"model": "Keras model: .keras, .h5, or .json with weights beside it",
                  "config": "where to write it (default hls4ml_config.yml beside the model)",
                  "samples": SAMPLES_HELP + ", recorded in the config; types are proposed from their ranges",
                  "part": "FPGA part, or a board (`hlsflow parts`)",
                  "io-type": "io_stream or io_parallel", "reuse-factor": "ReuseFactor for every layer",
                  "precision": "e.g. ap_fixed<16,6>", "clock": "clock period in ns",
                  "strategy": "Latency, Resource or distributed_arithmetic (keras3 lane)", "force": "overwrite an existing file"},
            inputs=("model", "samples"), outputs=("config",), beside=(("config", "model"),))
def init(c, model=None, config=None, samples=None, part=None, io_type=None, reuse_factor=None, precision=None,
         clock=None, strategy=None, force=False):
    """Write a starter config for your model: hls4ml's schema with per-layer entries, commented; with
    --samples, types that fit the values the samples reach through the model."""
    from ..stages import starter

    starter.write_starter(model, config=config, samples=samples, part=part, io_type=io_type,
                          reuse_factor=reuse_factor, precision=precision, clock=clock, strategy=strategy,
                          force=force)


@image_task(help={"sbom": "print the image's SBOM (CycloneDX JSON), or with a FILE write it there"},
            outputs=("sbom",), optional=["sbom"])
def versions(c, sbom=None):
    """Python, TensorFlow, numpy, hls4ml, g++, image revision and the Vivado in sight; --sbom: every
    package of the image with its exact version (CycloneDX JSON)."""
    if sbom:
        from ..image import sbom as bom

        bom.write_sbom(sbom)
        return
    from .. import versions as stage

    stage.main()


@image_task(help={"vivado": VIVADO_HELP, "vitis": VITIS_HELP, "backend": "Vivado or Vitis (default: the config's, "
                  "else Vivado)", "config": "flow YAML: its backend, part and design size (for memory and disk)",
                  "export": "check for --export too (the Y2K22 patch)"},
            inputs=("vivado", "vitis", "config"))
def doctor(c, vivado=None, vitis=None, backend=None, config=None, export=False):
    """Check the mounted Xilinx HLS install before synthesis: versions, settings64.sh, -version, missing
    libraries, locale, Y2K22 patch, licence, memory and disk. One table, one verdict; exit 1 when
    something blocks synthesis."""
    from invoke import Exit

    from ..config import BACKENDS, load_config
    from ..config_files import find_config
    from ..toolchain import doctor as stage

    config = config or find_config()  # the folder's own flow config, as the flow tasks find it
    cfg = load_config(path=config, announce=False) if config else None
    backend = backend or (cfg.backend if cfg else "Vivado")
    if backend not in BACKENDS:
        raise FlowError(f"Backend '{backend}' is not one of {', '.join(BACKENDS)}: give e.g. --backend Vitis.")
    code = stage.run(backend, vitis or vivado, cfg, export=export)[2]
    if code:
        raise Exit(code=code)


@host_task(help={"search": "show only boards, parts, devices or families containing this, e.g. zcu, xczu, versal"})
def parts(c, search=None):
    """Boards and devices hlsflow knows, with DSP, BRAM_18K, URAM, LUT and FF from AMD's data sheets; any other
    Xilinx part runs too, its fit judged after synthesis. `--part` takes a part or a board listed here."""
    from .. import parts as table

    table.show(search)


@host_task(help={"a": "an SBOM (`hlsflow versions --sbom FILE`) or a flow's manifest.json",
                 "b": "the other SBOM or manifest.json"}, positional=["a", "b"])
def compare_image(c, a, b):
    """Name every package that differs between two images' SBOMs or manifests; exit 1 when any does."""
    from invoke import Exit

    from ..image import sbom

    code = sbom.compare_files(a, b)
    if code:
        raise Exit(code=code)


@host_task(help={"out": "output directory of a flow run"}, positional=["out"])
def verify(c, out):
    """Recompute the hashes manifest.json records for OUT; exit 1 naming each file that changed."""
    from ..state import verify as stage

    stage.verify(out)


@host_task(help={"path": "tarball to write (default build/hlsflow-<tag>.tar.gz)",
                 "force": "replace an existing tarball and its .sha256"})
def save_image(c, path=None, force=False):
    """Write the image as a compressed tarball with a .sha256 beside it, to hand on."""
    from ..image import handover

    handover.save_image(path, force=force)


@host_task(help={"path": "tarball written by save-image"})
def load_image(c, path):
    """Load an image tarball after checking its sha256 and that it holds the hlsflow image it records."""
    from ..image import handover

    handover.load_image(path)


@host_task(help={"ref": "where to push: registry/name:tag, e.g. ghcr.io/your-lab/hlsflow:0.2.0",
                 "image": "the local image to push (default: $HLSFLOW_IMAGE, else hlsflow:latest)"},
           positional=["ref"])
def push_image(c, ref, image=None):
    """Push the image to a registry with the engine's own login; prints the digest to hand on."""
    from ..image import registry

    registry.push_image(ref, image=image)


@host_task(help={"ref": "registry/name:tag or registry/name@sha256:..., as push-image printed it",
                 "digest": "the sha256:... digest the image must have (the tag must still name it)"},
           positional=["ref"])
def pull_image(c, ref, digest=None):
    """Pull the image by digest with the engine's own login, check it is the hlsflow image the digest names, and
    tag it hlsflow:latest."""
    from ..image import registry

    registry.pull_image(ref, digest=digest)


@host_task()
def shell(c):
    """An interactive shell in the toolchain image, with the working directory and Xilinx tree mounted."""
    from invoke import Exit

    from . import launcher

    code = launcher.open_shell()  # the shell's, or the engine's when it could not start one
    if code:
        raise Exit(code=code)


@host_task(help={"port": "port on 127.0.0.1 to serve JupyterLab at (default 8888)",
                 "no-browser": "do not open a browser; only print the URL",
                 "example": "put the example notebook (hlsflow_example.ipynb) in this folder first"})
def lab(c, port=None, no_browser=False, example=False):
    """JupyterLab in the toolchain image on this folder, at 127.0.0.1 with a token; Ctrl-C stops it."""
    from invoke import Exit

    from . import launcher, lab as server

    # Inside the image (or `docker run IMAGE lab`) it serves; on the host it starts a container that does.
    code = server.serve(port, example) if launcher.in_image() else server.start(port, no_browser, example=example)
    if code:
        raise Exit(code=code)


USER_TASKS = (init, convert, check, plan, csim, synth, report, flow, sweep, verify, profile, tune_precision, versions,
              compare_image, save_image, load_image, push_image, pull_image, shell, doctor, lab, parts)


def collection() -> Collection:
    return Collection(*USER_TASKS)


namespace = collection()
