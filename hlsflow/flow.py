"""The flow: its stages (each a `steps.Work` of stages/*.py) run in order, each after what it
requires.

A stage asked for on an output directory that is missing or stale (model or config changed)
runs the stages it requires first, one line each; what is current is reused. `run_stage` is the
one runner: it finds the stage, satisfies what its step requires, and hands the stage's own
functions to the manifest's record/reuse/run/done sequence (state/records.py, Record.run). The
stages never call each other: they meet here. One run at a time works on an output directory.

This is state/'s one door for everything that runs in the image: the stages, the emulator and
the searches (tune-precision, sweeps) claim folders and read records through the functions below,
never through state/ itself (tests/test_shape.py checks it).
"""

from pathlib import Path

from . import console, steps
from .errors import FlowError
from .files import sha256
from .inputs import run_inputs
from .parts import resolve_part
from .samples import check_samples_fit, resolve_samples
from .stages import convert as convert_stage, emulate, report as report_stage, synthesize
from .state import records, signing
from .state.folder import check_output_path, check_owned, check_writable
from .state.lock import claimed, locked
from .state.manifest import has_manifest, stage_record

# The flow's stages, in the order they run: every STAGE step of steps.REGISTRY, once.
STAGES = (convert_stage.WORK, emulate.WORK, synthesize.WORK, report_stage.WORK)


def stage(name: str):
    """The flow's stage (its Work) of that name."""
    return next(s for s in STAGES if s.name == name)


def _stage(name: str, cfg, project, flags: dict) -> tuple:
    """(Work, records.Record) of a stage of this output directory, with these flags."""
    work = stage(name)
    return work, records.Record(cfg.output_dir, work.step, work.inputs(cfg, project, flags),
                                in_place=not work.step.staged, leaves=work.leaves(cfg) if work.leaves else ())


def _project(cfg, why: str):
    """The current project's record, converting first (with one line) when there is none."""
    state, reason = records.project_stage(cfg).state()
    if state != records.CURRENT:
        where = (f"there is no HLS project at {cfg.output_dir}" if state == records.MISSING else
                 f"the HLS project at {cfg.output_dir} is not current ({reason})")
        console.step(f"{why}: {where}; converting first")
        run_stage("convert", cfg)
    return records.require_project(cfg)


def _require(work, cfg, upstream: dict):
    """Run what the stage requires unless its results are intact and made from this project;
    returns the project's record (None for convert itself)."""
    if not work.step.requires:
        return None
    project = _project(cfg, work.name)
    for name in (step.name for step in work.step.requires):
        if name == "convert" or records.made_from(cfg.output_dir, name, project):
            continue
        noun, doing = _WORDS.get(name, (name, f"running {name}"))
        why = f"no {noun} results" if stage_record(cfg.output_dir, name) is None else \
            f"the {noun} results are not current"
        console.step(f"{work.name}: {why} in {cfg.output_dir}; {doing} first")
        run_stage(name, cfg, prechecked=True, **upstream.get(name, {}))  # leaves the project as it is
    return project


_WORDS = {"synth": ("synthesis", "synthesising"), "csim": ("emulation", "emulating")}  # in the lines above


def _prechecks(name: str, cfg, flags: dict, upstream: dict) -> None:
    """Each stage's `precheck` (what can be judged before anything runs, such as a backend and an
    HLS tool that cannot work together), for the stage and what it requires, so the mistake is
    named in one sentence before minutes of converting and emulating."""
    work = stage(name)
    for required in work.step.requires:
        _prechecks(required.name, cfg, upstream.get(required.name, {}), upstream)
    _precheck(work, cfg, flags)


def _precheck(work, cfg, flags: dict) -> None:
    if work.precheck:
        work.precheck(cfg, **flags)


def run_stage(name: str, cfg, force=False, upstream=None, require=True, prechecked=False, **flags) -> dict:
    """One stage on cfg's output directory (locked by the caller): the prechecks, what it requires,
    then its work unless its results are current. `upstream` holds flags for the stages it requires;
    `require=False` takes the results it would require as they are (the project must be current)."""
    if not prechecked:
        _prechecks(name, cfg, flags, upstream or {})
    project = _require(stage(name), cfg, upstream or {}) if require else records.require_project(cfg)
    work, record_of = _stage(name, cfg, project, flags)
    # A stage whose work keeps caches of its own gets their records from here, not from state/ itself.
    caches = {"caches": records.Caches(cfg.output_dir)} if work.caches else {}
    record, reused = record_of.run(
        lambda into: work.work(cfg, into, project, **flags, **caches), force=force, current=work.current_line(cfg),
        again=work.again, ready=lambda: _ready(work, cfg, flags))
    return work.shown(cfg, record, reused) if work.shown else record.get("result")


def _ready(work, cfg, flags: dict) -> None:
    """What must hold before a stage runs (not when reused): a staged stage replaces the output
    folder whole, so only one whose every file is hlsflow's; then the stage's own checks."""
    if work.step.staged:
        check_writable(cfg.output_dir)
    if work.ready:
        work.ready(cfg, **flags)


def is_current(name: str, cfg, **flags) -> bool:
    """Whether the stage's results in cfg's output directory are current for these flags."""
    if name == "convert":
        return records.project_stage(cfg).state()[0] == records.CURRENT
    project = records.require_project(cfg)
    try:
        record_of = _stage(name, cfg, project, flags)[1]
    except FlowError:  # what it is made from is not there (a report without synthesis)
        return False
    return record_of.state()[0] == records.CURRENT


def _locked(cfg, samples=None):
    """The output directory, checked, locked and proved hlsflow's, after the model is known to
    exist: a missing model is the mistake to name, whatever else is wrong."""
    return claimed(cfg.output_dir, run_inputs(cfg, samples))


# ------------------------------------------------------------------ the commands

def convert(cfg, force=False) -> dict:
    with _locked(cfg):
        return run_stage("convert", cfg, force=force)


def check(cfg, strict=False):
    """`hlsflow check`: the preflight of the design converted in memory; nothing is written."""
    from . import preflight
    from .design import in_memory
    from .loading import load_keras_model

    keras_model = load_keras_model(cfg.keras_model)
    with in_memory(keras_model, cfg) as hls_model:
        result = preflight.run(hls_model, cfg)
    preflight.print_report(result)
    # With --strict, a design that does not fit fails; one whose fit cannot be judged (a device not
    # in the table) does not: its verdict says so, and synthesis judges it.
    if result.errors or (strict and result.fits is False):
        fit = {True: "fits", False: "does not fit", None: "cannot be judged for fit"}[result.fits]
        raise FlowError(f"Preflight found {len(result.errors)} error(s) and the design {fit} (estimate): fix what "
                        "it lists above.", exit_code=1)
    return result


def _csim_checked(cfg, options: dict) -> dict:
    """csim's flags and samples checked before a missing project is converted, so nothing is
    written for a bad one; a cross-check is asked for now, so never answered from an earlier run."""
    options["engine"], options["cross_check"] = emulate.csim_flags(options.get("engine"), options.get("cross_check"))
    check_samples_fit(cfg.keras_model, resolve_samples(cfg, options.get("samples")))
    return options


def csim(cfg, min_agreement=None, max_error=None, force=False, **options) -> dict:
    options = _csim_checked(cfg, options)
    with _locked(cfg, options.get("samples")):
        result = run_stage("csim", cfg, force=force or bool(options["cross_check"]), **options)
    emulate.gate(cfg, result, min_agreement, max_error)
    return result


def profile(cfg, samples=None, max_samples=None, png=None) -> dict:
    """`hlsflow profile`, recorded in the output folder as a stage's run is, beside the flow's."""
    from .stages import profile as command
    from .inputs import design_inputs, digest

    samples = resolve_samples(cfg, samples)
    max_samples = command.DEFAULT_SAMPLES if max_samples is None else max_samples
    inputs = {"design": digest(design_inputs(cfg)), "samples": sha256(samples, cache=True), "max_samples": max_samples}
    found = {}

    def work(into):
        found["profile"], outcome = command.work(cfg, samples, max_samples, png)
        return outcome

    record_command(steps.PROFILE, cfg, inputs, work, samples, make=True)
    return found["profile"]


def record_command(step, cfg, inputs: dict, work, samples=None, make=False) -> dict:
    """A command's run (profile, tune-precision) recorded in cfg's output folder as a stage's is:
    the folder claimed (made first, with `make`), then `work(into) -> Outcome` recorded from its
    start, so a run that fails or is killed stays recorded as such. Returns the record."""
    with _locked(cfg, samples):
        if make:
            cfg.output_dir.mkdir(parents=True, exist_ok=True)
        return records.Record(cfg.output_dir, step, inputs).run(work, force=True)[0]


def _named_install_is_there(vivado) -> None:
    """An install named (--vivado, XILINX_ROOT, ...) that is not there: one sentence before the
    output folder is even claimed."""
    from .toolchain import xilinx

    xilinx.candidates(vivado)


def synth(cfg, force=False, **options) -> dict:
    _named_install_is_there(options.get("vivado"))
    with _locked(cfg):
        return run_stage("synth", cfg, force=force, **options)


def report(cfg, vivado=None, out=None, part=None, force=False) -> dict:
    """`cfg` is None when only --out was given (then `out` and `part` are the flags)."""
    out_dir = cfg.output_dir if cfg is not None else Path(out).absolute()
    recorded = has_manifest(out_dir)
    if report_stage.foreign_folder(out_dir, recorded):
        # Synthesised outside hlsflow (by hand or by plain hls4ml): read where it is, never
        # converted or synthesised into; not locked, as only the report's own files are written.
        return report_stage.report_foreign(out_dir, project=cfg.project_name if cfg else None,
                                           part=cfg.part if cfg else (resolve_part(part) if part else None))
    if cfg is None:
        report_stage.no_report_without_config(out_dir, recorded)
    upstream = {"synth": {"vivado": vivado}}
    with _locked(cfg):
        _prechecks("report", cfg, {}, upstream)
        _project(cfg, "report")
        xml = steps.csynth_xml_path(cfg.output_dir, cfg.project_name)
        if stage_record(cfg.output_dir, "synth") is None and xml.exists():
            # Synthesised outside hlsflow (by hand, or by an older version): report what is there.
            console.step(f"report: {xml.name} has no record of the synthesis that wrote it; reporting it as it is")
            return run_stage("report", cfg, force=force, require=False, prechecked=True)
        return run_stage("report", cfg, force=force, upstream=upstream, prechecked=True)


def run(cfg, samples=None, min_agreement=None, vivado=None, force=False, max_error=None) -> dict:
    """The whole flow, its stages in order: convert, csim, synth (when Vivado is there),
    report; `force` redoes each."""
    check_samples_fit(cfg.keras_model, resolve_samples(cfg, samples))  # named before minutes of conversion
    _named_install_is_there(vivado)
    flags = {"csim": {"samples": samples}, "synth": {"vivado": vivado}}
    results = {}
    with _locked(cfg, samples):
        for work in STAGES:
            _precheck(work, cfg, flags.get(work.name, {}))
        for work in STAGES:
            if work.name == "synth" and synthesize.find_vivado_hls(vivado) is None and \
                    not records.made_from(cfg.output_dir, "synth", records.require_project(cfg)):
                console.step("Synthesis skipped: no Vivado HLS found (mount Vivado 2018.2 or pass --vivado); "
                             "convert and emulation are complete.")
                return results
            results[work.name] = run_stage(work.name, cfg, force=force, prechecked=True, **flags.get(work.name, {}))
            if work.name == "csim":
                emulate.gate(cfg, results["csim"], min_agreement, max_error)
    return results


# ------------------------------------------------------------------ for the searches (tune, sweep)

def check_claimable(cfg, samples=None) -> None:
    """What claiming cfg's output folder would refuse (a path hlsflow may not write, a folder
    holding a file it did not write), said before a search of minutes."""
    check_output_path(cfg.output_dir, run_inputs(cfg, samples))
    check_owned(cfg.output_dir)


def check_folder(path, inputs=(), what="output directory") -> None:
    """A folder of a command's own (a sweep's) that hlsflow may write at all (state/folder.py)."""
    check_output_path(path, inputs, what=what)


def lock(path):
    """One hlsflow run at a time on a folder (a sweep's), also across containers."""
    return locked(path)


def record_of(out_dir, name: str):
    """A step's record in an output folder's manifest, or None."""
    return stage_record(out_dir, name)


def signing_key() -> signing.Secret:
    """This user's key to sign records with, as handed to the sweep's workers."""
    return signing.Secret(signing.current_key())


def sign_as(key: signing.Secret) -> None:
    """Sign (and check) records with the sweep's user's key in this process (a sweep's worker)."""
    signing.use(key.value)
