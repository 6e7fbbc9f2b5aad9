"""The advice of issue 37 measured, before and after: for each model of tests/search/test_cause_advice.py
and tests/search/precision_standins.py and test_published_like.py, a jet-tagging MLP like hls4ml's tutorial
part 1, the bundled models/, and hls4ml's published examples (--published), in an empty folder: `hlsflow init
--samples`, `hlsflow csim` (the first flow's agreement), then `hlsflow tune-precision --no-compare-auto` (its
outcome, agreement, added bits, wall time).
Run inside the image, once per code tree (PYTHONPATH picks the hlsflow the command runs):
  python bench/advice.py --code /path/to/tree --label NAME --out NAME.json [--published DIR]
  python bench/advice.py --table before.json after.json --md bench/results/advice-DATE.md
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
# hls4ml's published examples (github.com/fastmachinelearning/example-models, keras/), never in this
# repository: --published DIR holds each as NAME.keras (Keras's model_from_json and load_weights of its
# json and h5, saved) and NAME.npz (samples); issue 37 measured these three.
PUBLISHED = None
PUBLISHED_NAMES = ("KERAS_conv1d", "KERAS_conv1d_small", "jetTagger_Conv2D_Small", "KERAS_conv2d_model")


def models():
    """(name, make(root) -> (model, samples, io_type))."""
    sys.path[:0] = [str(REPO / "tests"), str(REPO / "tests" / "search")]
    import precision_standins
    from test_cause_advice import _make, both_model, clip_model, jet_mlp

    def made(name, lo, hi):
        def make(root):
            _make(root, name, lo, hi)
            return root / f"{name}.keras", root / f"{name}.npz", "io_parallel"
        return make

    def standin(name):
        def make(root):
            model, samples = precision_standins.MAKERS[name](root)
            return model, samples, precision_standins.IO_TYPE[name]
        return make

    def bundled(model, samples):
        def make(root):
            for path in (model, samples):
                (root / path).write_bytes((REPO / "models" / path).read_bytes())
            return root / model, root / samples, None
        return make

    def like(make_like):  # tests/search/test_published_like.py's stand-ins
        def make(root):
            return (*make_like(root), None)
        return make

    def published(name):  # a json+h5 of hls4ml's example-models made a .keras, with samples, in PUBLISHED
        def make(root):
            for suffix in (".keras", ".npz"):
                (root / f"{name}{suffix}").write_bytes((PUBLISHED / f"{name}{suffix}").read_bytes())
            return root / f"{name}.keras", root / f"{name}.npz", None
        return make

    from test_published_like import conv_like, ties_like

    extra = [(f"fastmachinelearning/example-models keras/{name}.json", published(name)) for name in PUBLISHED_NAMES
             if PUBLISHED is not None and (PUBLISHED / f"{name}.keras").is_file()]
    extra += [("Conv1D of 1024-product sums (test)", like(conv_like)), ("softmax, 1% ties no table resolves (test)",
                                                                         like(ties_like))]
    return extra + [("softmax table (test)", made("table", 0.03, 0.2)),
            ("softmax table, hls4ml's 1024-entry table (test)", made("table", 0.03, 0.2)),
            ("near ties (test)", made("tied", 0.0, 3e-4)),
            ("ReLU(max_value=6) (test)", lambda root: (*clip_model(root), "io_parallel")),
            ("input overflow + hls4ml's table (test)", lambda root: (*both_model(root), "io_parallel")),
            ("Conv1D stand-in", standin("conv")), ("MLP on N(0,1000)", standin("mlp")), ("jet MLP, BN+Dropout", lambda root: (*jet_mlp(root), "io_parallel")),
            ("digits_cnn (bundled)", bundled("digits_cnn.keras", "digits_samples.npz")),
            ("model_2_15 (bundled)", bundled("model_2_15.keras", "samples_2_15.npz")),
            ("qkeras_mlp (bundled)", bundled("qkeras_mlp.keras", "qkeras_mlp_samples.npz")),
            ("qkeras_cnn (bundled)", bundled("qkeras_cnn.keras", "qkeras_cnn_samples.npz")),
            ("hgq_mlp (bundled)", bundled("hgq_mlp.keras", "hgq_mlp_samples.npz"))]


def run(code: Path, only=None) -> list:
    env = {**os.environ, "PYTHONPATH": str(code), "HLSFLOW_NATIVE": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    rows = []
    for name, make in models():
        if only and not any(o in name for o in only):
            continue
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            model, samples, io_type = make(root)
            init = ["hlsflow", "init", "--model", model.name, "--samples", samples.name]
            init += ["--io-type", io_type] if io_type else []
            steps = [subprocess.run(init, cwd=root, env=env, capture_output=True, text=True)]
            if "hls4ml's" in name:  # a user's config with hls4ml's default table, as the tests'
                import yaml

                config = yaml.safe_load((root / "hls4ml_config.yml").read_text())
                for entry in (config["HLSConfig"].get("LayerName") or {}).values():
                    entry.pop("TableSize", None)
                if "input overflow" in name:
                    from test_cause_advice import both_user_config  # on sys.path: models() put it there

                    config = both_user_config(config)
                (root / "hls4ml_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
            steps.append(subprocess.run(["hlsflow", "csim"], cwd=root, env=env, capture_output=True, text=True))
            out = next(root.joinpath("build").iterdir(), None) if root.joinpath("build").is_dir() else None
            csim = json.loads((out / "csim.json").read_text()) if out and (out / "csim.json").is_file() else {}
            start = time.monotonic()
            tuned = subprocess.run(["hlsflow", "tune-precision", "--no-compare-auto"], cwd=root, env=env,
                                   capture_output=True, text=True)
            seconds = time.monotonic() - start
            result = json.loads((out / "tune.json").read_text()) if out and (out / "tune.json").is_file() else {}
            after = result.get("after") or {}
            rows.append({"model": name, "exit": [p.returncode for p in steps] + [tuned.returncode],
                         "first": [csim.get("agreement_count"), csim.get("samples")],
                         "outcome": result.get("outcome"), "cause": (result.get("cause") or {}).get("kind"),
                         "tuned": [after.get("agreeing"), after.get("samples")], "added_bits": after.get("added_bits"),
                         "table_bram": after.get("table_bram", 0), "seconds": round(seconds, 1),
                         "final": (tuned.stdout.strip().splitlines() or [""])[-1][:400],
                         "error": (tuned.stderr.strip().splitlines() or [""])[-1][:300]})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def figure(pair) -> str:
    from hlsflow import stats

    k, n = pair if pair else (None, None)
    return "-" if k is None or not n else stats.figure(k, n)


def table(before: dict, after: dict) -> str:
    lines = ["| model | first flow (before) | first flow (after) | tuned (before) | tuned (after) | added bits "
             "(before / after) | table BRAM_18K (after) | tune s (before / after) | outcome (before / after) | "
             "cause named (after) |", "|" + "---|" * 10]
    old = {r["model"]: r for r in before["rows"]}
    for r in after["rows"]:
        b = old.get(r["model"], {})
        lines.append(f"| {r['model']} | {figure(b.get('first'))} | {figure(r['first'])} | {figure(b.get('tuned'))} | "
                     f"{figure(r['tuned'])} | {b.get('added_bits', '-')} / {r['added_bits']} | {r['table_bram']} | "
                     f"{b.get('seconds', '-')} / {r['seconds']} | {b.get('outcome', '-')} / {r['outcome']} | "
                     f"{r['cause'] or '-'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--code", type=Path)
    parser.add_argument("--label")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--published", type=Path, help="a folder of the published examples (see PUBLISHED)")
    parser.add_argument("--table", nargs=2, type=Path)
    parser.add_argument("--md", type=Path)
    args = parser.parse_args()
    if args.table:
        before, after = (json.loads(p.read_text()) for p in args.table)
        text = table(before, after)
        if args.md:
            args.md.write_text(args.md.read_text() + text if args.md.exists() else text)
        print(text)
        return
    global PUBLISHED
    PUBLISHED = args.published.resolve() if args.published else None
    rows = run(args.code.resolve(), args.only)
    args.out.write_text(json.dumps({"label": args.label, "code": str(args.code), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
