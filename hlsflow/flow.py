"""The whole flow on one model: convert, emulate, synthesise (when Vivado is there), report."""

from . import console, convert, emulate, report, synthesize


def run(cfg, samples=None, min_agreement=None, vivado=None) -> dict:
    results = {"convert": convert.convert(cfg)}
    results["csim"] = emulate.csim(cfg, samples=samples, min_agreement=min_agreement)
    if synthesize.find_vivado_hls(vivado) is None:
        console.step("Synthesis skipped: no Vivado HLS found (mount Vivado 2018.2 or pass --vivado); "
                     "convert and emulation are complete.")
        return results
    results["synth"] = synthesize.synth(cfg, vivado=vivado)
    results["report"] = report.write_report(cfg.output_dir, cfg.project_name, cfg.part)
    return results
