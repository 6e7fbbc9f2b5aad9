"""The stages and what each needs first. A stage asked for on an output directory that is missing
or stale (model or config changed) runs the stages it depends on, one line each; what is current
is reused. The stages themselves (convert, emulate, synthesize, report) never call each other:
this module and outdir.py (what is current, recorded in manifest.json) are where they meet. One
run at a time works on an output directory."""

from pathlib import Path

from . import console, outdir
from . import convert as convert_stage
from . import emulate, report as report_stage, synthesize
from .errors import FlowError
from .loading import read_samples, resolve_samples


def _locked(cfg, samples=None):
    """The output directory, checked, locked and proved hlsflow's, after the model is known to
    exist: a missing model is the mistake to name, whatever else is wrong."""
    return outdir.claimed(cfg.output_dir, outdir.run_inputs(cfg, samples))


def convert(cfg, force=False) -> dict:
    with _locked(cfg):
        return convert_stage.convert(cfg, force=force)


def check(cfg, strict=False):
    result = convert_stage.check_only(cfg)
    if result.errors or (strict and not result.fits):
        raise FlowError(f"Preflight found {len(result.errors)} error(s) and the design "
                        f"{'fits' if result.fits else 'does not fit'} (estimate): fix what it lists above.",
                        exit_code=1)
    return result


def _ensure_project(cfg, stage: str) -> dict:
    state, why = outdir.project_stage(cfg).state()
    if state != outdir.CURRENT:
        where = (f"there is no HLS project at {cfg.output_dir}" if state == outdir.MISSING else
                 f"the HLS project at {cfg.output_dir} is not current ({why})")
        console.step(f"{stage}: {where}; converting first")
        convert_stage.convert(cfg)
    return outdir.require_project(cfg)


def csim(cfg, **options) -> dict:
    # a bad flag must fail before a missing project is converted, so nothing is written for it
    emulate.csim_flags(options.get("engine"), options.get("cross_check"))
    read_samples(resolve_samples(cfg, options.get("samples")))
    with _locked(cfg, options.get("samples")):
        _ensure_project(cfg, "csim")
        return emulate.csim(cfg, **options)


def synth(cfg, **options) -> dict:
    with _locked(cfg):
        _ensure_project(cfg, "synth")
        return synthesize.synth(cfg, **options)


def report(cfg, vivado=None, out=None, part=None) -> dict:
    """`cfg` is None when only --out was given (then `out` and `part` are the flags)."""
    out_dir = cfg.output_dir if cfg is not None else Path(out).absolute()
    if report_stage.foreign_folder(out_dir):
        # Synthesised outside hlsflow (by hand or by plain hls4ml): read where it is, never
        # converted or synthesised into; not locked, as only the report's own files are written.
        return report_stage.report_foreign(out_dir, project=cfg.project_name if cfg else None,
                                           part=cfg.part if cfg else part)
    if cfg is None:
        report_stage.no_report_without_config(out_dir)
    with _locked(cfg):
        project = _ensure_project(cfg, "report")
        record = outdir.stage_record(cfg.output_dir, "synth")
        xml = outdir.csynth_xml_path(cfg.output_dir, cfg.project_name)
        if record is None and xml.exists():
            # Synthesised outside hlsflow (by hand, or by an older version): report what is there.
            console.step(f"report: {xml.name} has no record of the synthesis that wrote it; reporting it as it is")
        elif not outdir.made_from(cfg.output_dir, "synth", project):
            why = "no synthesis results" if record is None else "the synthesis results are not current"
            console.step(f"report: {why} in {cfg.output_dir}; synthesising first")
            synthesize.synth(cfg, vivado=vivado)
        return report_stage.report(cfg)


def run(cfg, samples=None, min_agreement=None, vivado=None, force=False) -> dict:
    """The whole flow: convert, csim, synth (when Vivado is there), report; `force` redoes each."""
    read_samples(resolve_samples(cfg, samples))  # bad samples are named before minutes of conversion
    with _locked(cfg, samples):
        results = {"convert": convert_stage.convert(cfg, force=force)}
        results["csim"] = emulate.csim(cfg, samples=samples, min_agreement=min_agreement, force=force)
        project = outdir.require_project(cfg)
        if synthesize.find_vivado_hls(vivado) is None and not outdir.made_from(cfg.output_dir, "synth", project):
            console.step("Synthesis skipped: no Vivado HLS found (mount Vivado 2018.2 or pass --vivado); "
                         "convert and emulation are complete.")
            return results
        results["synth"] = synthesize.synth(cfg, vivado=vivado, force=force)
        results["report"] = report_stage.report(cfg, force=force)
        return results
