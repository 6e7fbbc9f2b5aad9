"""Keras model + flow config -> hls4ml ModelGraph -> HLS project on disk.

The project is written into a staging directory beside the output (the runner's, as steps.py
says of convert) and moved into place only when complete, so a failure never leaves a
half-written project that looks finished and the previous good one survives. The project is a function of the design alone: the same model and
config give the same bytes in any folder, on any machine (see _neutralise). What marks a complete
project, and whether it is current, is state/records.py's business.
"""

import contextlib
import io
import re
import shutil
from pathlib import Path

from .. import console, steps
from ..files import all_files
from ..design import convert_model
from ..errors import FlowError
from ..inputs import NOT_IN_TREE, design_inputs, design_sources, lib_stamp
from ..loading import load_keras_model, model_files
from .. import preflight


def layer_rows(hls_model, cfg) -> list:
    rows = []
    for layer in hls_model.get_layers():
        var = layer.get_output_variable()
        has_weights = "weight" in layer.weights
        rows.append({
            "name": layer.name,
            "type": layer.class_name,
            "output_shape": list(var.shape),
            "precision": str(var.type.precision),
            "reuse_requested": cfg.requested_reuse_factor(layer.name) if has_weights else None,
            "reuse_used": int(layer.get_attr("reuse_factor")) if has_weights else None,
        })
    return rows


def print_layer_table(rows) -> None:
    console.say(console.table(
        ["layer", "type", "output shape", "result precision", "RF requested", "RF used"],
        [(r["name"], r["type"], "x".join(map(str, r["output_shape"])), r["precision"],
          r["reuse_requested"] or "", r["reuse_used"] or "") for r in rows],
    ))


def _plot(hls_model, to_file: Path) -> bool:
    import hls4ml

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            hls4ml.utils.plot_model(hls_model, to_file=str(to_file), show_shapes=True, show_precision=True)
        return to_file.exists()
    except Exception as exc:  # pydot/graphviz missing: the project is still good without a picture.
        console.warn(f"Model graph not drawn ({exc}); install graphviz to get {to_file.name}.")
        return False


def _neutralise(staging: Path, cfg, stamp: str, random_stamp: str) -> None:
    """Make the written project a function of the design alone: hls4ml's random stamp becomes
    one derived from the inputs, absolute paths become relative ones, and its re-saved copy of
    the model (a zip with fresh timestamps) becomes a byte copy of the user's file(s)."""
    files = model_files(cfg.keras_model)
    copy_name = f"keras_model{files[0].suffix}"
    replacements = {
        "build_lib.sh": [(rf"^LIB_STAMP={random_stamp}$", f"LIB_STAMP={stamp}")],
        # Quoted: YAML would read a stamp of digits only as a number.
        "hls4ml_config.yml": [(rf"^Stamp: '?{random_stamp}'?$", f"Stamp: '{stamp}'"),
                              (r"^OutputDir: .*$", "OutputDir: ."),
                              (r"^KerasModel: !keras_model .*$", f"KerasModel: !keras_model {copy_name}")],
    }
    for name, subs in replacements.items():
        path = staging / name
        text = path.read_text()
        for pattern, replacement in subs:
            text, count = re.subn(pattern, replacement, text, flags=re.M)
            if count != 1:  # hls4ml changed what it writes: better stop than ship a random project
                raise FlowError(f"hls4ml wrote {name} in an unexpected form (no line matching {pattern!r}): this "
                                "hlsflow does not support this hls4ml version; use the pinned one.")
        path.write_text(text)
    (staging / "keras_model.keras").unlink(missing_ok=True)
    shutil.copyfile(files[0], staging / copy_name)
    for extra in files[1:]:  # the weights of a JSON model
        shutil.copyfile(extra, staging / f"keras_model{''.join(extra.suffixes)}")
    leftovers = [rel for rel in all_files(staging, steps.bookkeeping) if rel not in NOT_IN_TREE
                 and str(staging).encode() in (staging / rel).read_bytes()]
    if leftovers:
        raise FlowError(f"hls4ml wrote the path of the output directory into {leftovers[0]}: this hlsflow does not "
                        "support this hls4ml version; use the pinned one.")


CURRENT = "Up to date: {out} (model and config unchanged; --force rebuilds it)"
AGAIN = None  # the project's own line says it is written again


def made_from(cfg, project=None) -> dict:
    return design_inputs(cfg)


def work(cfg, into: Path, project=None) -> steps.Outcome:
    """Convert and write the project into `into` (the runner's staging folder)."""
    out = cfg.output_dir
    console.step(f"Loading {cfg.keras_model}")
    keras_model = load_keras_model(cfg.keras_model)
    console.step(f"Converting with hls4ml ({cfg.io_type}, {cfg.backend}, part {cfg.part}, "
                 f"clock {cfg.clock_period} ns)")
    hls_model, chatter = convert_model(keras_model, cfg, into)
    rows = layer_rows(hls_model, cfg)
    print_layer_table(rows)
    check = preflight.run(hls_model, cfg)
    preflight.print_report(check)
    console.step(f"Writing the HLS project to {out}")
    with contextlib.redirect_stdout(io.StringIO()) as write_chatter:
        hls_model.write()
    (into / "hlsflow_convert.log").write_text(chatter + write_chatter.getvalue())
    stamp = lib_stamp(cfg)
    _neutralise(into, cfg, stamp, hls_model.config.get_config_value("Stamp"))
    graph = _plot(hls_model, into / "model_graph.png")
    result = {
        "project_name": cfg.project_name,
        "part": cfg.part,
        "io_type": cfg.io_type,
        "clock_period": cfg.clock_period,
        "layers": rows,
        "preflight": check.as_dict(),
        "model_graph": "model_graph.png" if graph else None,
    }
    return steps.Outcome(all_files(into, steps.bookkeeping), result=result, extra={"stamp": stamp},
                         sources=design_sources(cfg))


def shown(cfg, record: dict, reused: bool) -> dict:
    """The convert record (layer table, preflight, tree hash)."""
    if not reused:
        out = cfg.output_dir
        graph = record["result"]["model_graph"]
        console.say(f"HLS project written to {out}" + (f"; model graph in {out / graph}" if graph else ""))
        console.say(f"Project tree sha256: {record['tree_hash']}")
    return record


WORK = steps.Work(steps.CONVERT, work, made_from=made_from, shown=shown, current=CURRENT, again=AGAIN)
