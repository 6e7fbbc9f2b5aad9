"""The stages and what each needs first. A stage asked for on an output directory that is missing
or stale (model or config changed) runs the stages it depends on, one line each; what is current
is reused. The stages themselves (convert, emulate, synthesize, report) never call each other:
this module and outdir.py (what is current) are where they meet."""

from . import console, outdir
from . import convert as convert_stage
from . import emulate, report as report_stage, synthesize
from .errors import FlowError


def convert(cfg, force=False) -> dict:
    return convert_stage.convert(cfg, force=force)


def check(cfg, strict=False):
    result = convert_stage.check_only(cfg)
    if result.errors or (strict and not result.fits):
        raise FlowError(f"Preflight found {len(result.errors)} error(s) and the design "
                        f"{'fits' if result.fits else 'does not fit'} (estimate): fix what it lists above.",
                        exit_code=1)
    return result


def _ensure_project(cfg, stage: str) -> None:
    state, _ = outdir.project_state(cfg)
    if state == outdir.CURRENT:
        return
    why = (f"there is no HLS project at {cfg.output_dir}" if state == outdir.MISSING else
           f"the HLS project at {cfg.output_dir} is stale (model or config changed)")
    console.step(f"{stage}: {why}; converting first")
    convert_stage.convert(cfg)


def csim(cfg, **options) -> dict:
    _ensure_project(cfg, "csim")
    return emulate.csim(cfg, **options)


def synth(cfg, **options) -> dict:
    _ensure_project(cfg, "synth")
    return synthesize.synth(cfg, **options)


def report(cfg, vivado=None) -> dict:
    _ensure_project(cfg, "report")
    state, _ = outdir.synth_state(cfg)
    xml = outdir.csynth_xml_path(cfg.output_dir, cfg.project_name)
    if state == outdir.MISSING and xml.exists():
        # Synthesised outside hlsflow (by hand, or by an older run): report what is there.
        console.step(f"report: {xml.name} has no record of the synthesis that wrote it; reporting it as it is")
    elif state != outdir.CURRENT:
        why = "no synthesis results" if state == outdir.MISSING else "the synthesis results are stale"
        console.step(f"report: {why} in {cfg.output_dir}; synthesising first")
        synthesize.synth(cfg, vivado=vivado)
    return report_stage.write_report(cfg.output_dir, cfg.project_name, cfg.part)


def run(cfg, samples=None, min_agreement=None, vivado=None) -> dict:
    """The whole flow: convert, csim, synth (when Vivado is there), report."""
    results = {"convert": convert_stage.convert(cfg)}
    results["csim"] = emulate.csim(cfg, samples=samples, min_agreement=min_agreement)
    if synthesize.find_vivado_hls(vivado) is None:
        console.step("Synthesis skipped: no Vivado HLS found (mount Vivado 2018.2 or pass --vivado); "
                     "convert and emulation are complete.")
        return results
    results["synth"] = synthesize.synth(cfg, vivado=vivado)
    results["report"] = report_stage.write_report(cfg.output_dir, cfg.project_name, cfg.part)
    return results
