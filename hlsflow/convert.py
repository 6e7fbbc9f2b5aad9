"""Keras model + flow config -> hls4ml ModelGraph -> HLS project on disk.

The project is written into a staging directory beside the output and moved into place only
when complete, so a failure never leaves a half-written project that looks finished and the
previous good one survives. The project is a function of the design alone: the same model and
config give the same bytes in any folder, on any machine (see _neutralise). What marks a complete
project, and whether it is current, is outdir.py's business.
"""

import contextlib
import io
import os
import re
import shutil
import tempfile
from pathlib import Path

from . import console, outdir, preflight
from .errors import FlowError
from .loading import load_keras_model, model_files


def check_layers_supported(keras_model) -> None:
    from hls4ml.converters.keras_v2_to_hls import get_supported_keras_layers

    supported = set(get_supported_keras_layers()) | {"InputLayer"}
    for layer in keras_model.layers:
        cls = layer.__class__.__name__
        if cls not in supported:
            raise FlowError(f"Layer '{layer.name}' ({cls}) cannot be converted by hls4ml: replace it with a "
                            "supported layer or remove it from the model.")


def check_layer_names(keras_model, hls_model, cfg) -> None:
    """Every LayerName entry of the config names a layer hls4ml makes of this model: a Keras layer,
    the activation hls4ml splits off one (`<layer>_<activation>`), or a layer of the converted
    graph (hls4ml inserts some). hls4ml ignores the others, so a typo would silently leave that
    layer at the model's defaults."""
    import difflib

    from .config import config_is_for

    if cfg.source is not None and not config_is_for(cfg):
        return  # another model's config, used with --model: its entries are not about this model
    known = {layer.name for layer in hls_model.get_layers()}
    for layer in keras_model.layers:
        known.add(layer.name)
        activation = layer.get_config().get("activation")
        if isinstance(activation, dict):  # a QKeras quantizer
            activation = activation.get("class_name")
        if isinstance(activation, str):
            known.add(f"{layer.name}_{activation}")
    for name in cfg.hls_config.get("LayerName") or {}:
        if name not in known:
            close = difflib.get_close_matches(str(name), sorted(known), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            where = cfg.source or "the config"
            raise FlowError(f"LayerName '{name}' in {where} names no layer of {cfg.keras_model.name}, so hls4ml would "
                            f"ignore its settings: {hint}fix the name, or remove the entry.")


def convert_model(keras_model, cfg, output_dir):
    """hls4ml's conversion with its chatter captured; returns (ModelGraph, captured text)."""
    import hls4ml

    check_layers_supported(keras_model)
    kwargs = cfg.hls4ml_kwargs()
    kwargs["output_dir"] = str(output_dir)
    captured = io.StringIO()
    try:
        with contextlib.redirect_stdout(captured):
            hls_model = hls4ml.converters.convert_from_keras_model(keras_model, **kwargs)
    except Exception as exc:
        console.say(captured.getvalue()[-2000:])
        raise FlowError(f"hls4ml could not convert {cfg.keras_model.name} ({exc}): check the layer and "
                        "precision settings named above.") from exc
    check_layer_names(keras_model, hls_model, cfg)
    return hls_model, captured.getvalue()


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


def _check_writable(out: Path) -> None:
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        probe = out.parent / f".hlsflow-write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise outdir.cannot_write(out, exc) from exc
    outdir.check_owned(out)  # replaced whole below: only when every file in it is hlsflow's


def _plot(hls_model, to_file: Path) -> bool:
    import hls4ml

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            hls4ml.utils.plot_model(hls_model, to_file=str(to_file), show_shapes=True, show_precision=True)
        return to_file.exists()
    except Exception as exc:  # pydot/graphviz missing: the project is still good without a picture.
        console.warn(f"Model graph not drawn ({exc}); install graphviz to get {to_file.name}.")
        return False


def _swap_into_place(staging: Path, out: Path) -> None:
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    (staging / outdir.STAGING_MARK).unlink()
    if out.exists():
        os.replace(out, old)
        (old / outdir.STAGING_MARK).touch()  # a run killed now leaves it for the next one to remove
    os.replace(staging, out)
    shutil.rmtree(old, ignore_errors=True)


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
    leftovers = [rel for rel in outdir.all_files(staging) if rel not in outdir.NOT_IN_TREE
                 and str(staging).encode() in (staging / rel).read_bytes()]
    if leftovers:
        raise FlowError(f"hls4ml wrote the path of the output directory into {leftovers[0]}: this hlsflow does not "
                        "support this hls4ml version; use the pinned one.")


def convert(cfg, force: bool = False) -> dict:
    """Convert and write the project; returns the convert record (layer table, preflight, tree hash)."""
    out = cfg.output_dir
    stage = outdir.project_stage(cfg)
    state, why = stage.state()
    if state == outdir.CURRENT and not force:
        console.step(f"Up to date: {out} (model and config unchanged; --force rebuilds it)")
        stage.reuse()
        return stage.record()
    _check_writable(out)
    stamp = outdir.lib_stamp(cfg)
    with stage.running():
        console.step(f"Loading {cfg.keras_model}")
        keras_model = load_keras_model(cfg.keras_model)
        # A name of its own: in a container every run may have the same pid.
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
        try:
            umask = os.umask(0)
            os.umask(umask)
            staging.chmod(0o777 & ~umask)  # mkdtemp's 0700 would hide the project from the user's group
            (staging / outdir.STAGING_MARK).touch()
            console.step(f"Converting with hls4ml ({cfg.io_type}, {cfg.backend}, part {cfg.part}, "
                         f"clock {cfg.clock_period} ns)")
            hls_model, chatter = convert_model(keras_model, cfg, staging)
            rows = layer_rows(hls_model, cfg)
            print_layer_table(rows)
            check = preflight.run(hls_model, cfg)
            preflight.print_report(check)
            console.step(f"Writing the HLS project to {out}")
            with contextlib.redirect_stdout(io.StringIO()) as write_chatter:
                hls_model.write()
            (staging / "hlsflow_convert.log").write_text(chatter + write_chatter.getvalue())
            _neutralise(staging, cfg, stamp, hls_model.config.get_config_value("Stamp"))
            graph = _plot(hls_model, staging / "model_graph.png")
            result = {
                "project_name": cfg.project_name,
                "part": cfg.part,
                "io_type": cfg.io_type,
                "clock_period": cfg.clock_period,
                "layers": rows,
                "preflight": check.as_dict(),
                "model_graph": "model_graph.png" if graph else None,
            }
            record = stage.done(outdir.all_files(staging), result=result, write_to=staging,
                                extra={"stamp": stamp}, sources=outdir.design_sources(cfg))
            _swap_into_place(staging, out)
        finally:
            if (staging / outdir.STAGING_MARK).is_file():  # still ours: not swapped into place
                shutil.rmtree(staging, ignore_errors=True)
    console.say(f"HLS project written to {out}" + (f"; model graph in {out / 'model_graph.png'}" if graph else ""))
    console.say(f"Project tree sha256: {record['tree_hash']}")
    return record


def check_only(cfg):
    """Preflight alone (`hlsflow check`): convert in memory, write nothing."""
    keras_model = load_keras_model(cfg.keras_model)
    with tempfile.TemporaryDirectory() as tmp:
        hls_model, _ = convert_model(keras_model, cfg, Path(tmp) / "prj")
        result = preflight.run(hls_model, cfg)
    preflight.print_report(result)
    return result
