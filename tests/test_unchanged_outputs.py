"""What hlsflow prints and writes stays the same when only its speed changes (issue 41): the project
tree hash and csim's figures of two models, and tune-precision's tuned config and figures, against
tests/data/unchanged_outputs.json, which an earlier commit's code wrote. A change meant to alter
them (new advice, another hls4ml) records the file again, saying so in its commit:

    docker run --rm -v "$PWD:$PWD" -w "$PWD" -e PYTHONPATH=$PWD hlsflow:latest \
        python tests/test_unchanged_outputs.py --record     # this checkout's code
    # or an image's own code: drop -e PYTHONPATH=... and add -e PYTHONPATH=/opt/hlsflow:$PWD/tests
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
RECORD = TESTS / "data" / "unchanged_outputs.json"
FIGURES = ("samples", "metric", "outputs", "agreement", "keras_accuracy", "hls_accuracy", "max_abs_diff",
           "mean_abs_diff", "max_rel_error", "mean_rel_error", "agreement_count", "engine")
# The user's own config for the stand-in whose gate needs a wider input and a larger softmax table:
# written out, so that init's advice, which may change, plays no part.
BOTH_CONFIG = """KerasModel: both.keras
OutputDir: build/both
IOType: io_parallel
HLSConfig:
  Model: {Precision: 'ap_fixed<16,6>', ReuseFactor: 1, Strategy: Latency}
Flow:
  emulation: {samples: both.npz}
"""


def outputs(root: Path, run) -> dict:
    """{name: what to compare} from the runs, each `run(*args, cwd=...)` -> CompletedProcess."""
    sys.path.insert(0, str(TESTS / "search"))
    from test_cause_advice import both_model

    repo = TESTS.parent
    for name in ("tiny_cnn.keras", "tiny_samples.npz"):
        shutil.copy(TESTS / "data" / name, root / name)
    for name in ("digits_cnn.keras", "digits_samples.npz"):
        shutil.copy(repo / "models" / name, root / name)
    both_model(root)
    (root / "mine.yml").write_text(BOTH_CONFIG)
    found = {}
    for model, samples in (("tiny_cnn", "tiny_samples"), ("digits_cnn", "digits_samples")):
        proc = run("csim", "--model", f"{model}.keras", "--samples", f"{samples}.npz", "--out", f"build/{model}",
                   "--max-samples", "200", cwd=root)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        out = root / "build" / model
        csim = json.loads((out / "csim.json").read_text())
        found[model] = {"tree_hash": json.loads((out / "manifest.json").read_text())["tree_hash"],
                        "csim": {key: csim.get(key) for key in FIGURES}}
    proc = run("tune-precision", "--config", "mine.yml", "--no-compare-auto", cwd=root)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    tune = json.loads((root / "build" / "both" / "tune.json").read_text())
    found["tune"] = {"outcome": tune["outcome"], "config": (root / "mine.tuned.yml").read_text(),
                     "after": {key: tune["after"].get(key) for key in ("changes", "added_bits", "agreement",
                                                                         "samples", "table_bram")}}
    return found


def test_outputs_are_those_recorded(tmp_path):
    from conftest import run_hlsflow

    recorded = json.loads(RECORD.read_text())
    found = outputs(tmp_path, run_hlsflow)
    for name in ("tiny_cnn", "digits_cnn", "tune"):
        assert found[name] == recorded[name], (name, found[name], recorded[name], recorded["recorded_with"])


def _record() -> None:
    import tempfile

    def run(*args, cwd):
        env = {**os.environ, "HLSFLOW_NATIVE": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
        return subprocess.run(["hlsflow", *args], cwd=cwd, env=env, capture_output=True, text=True)

    with tempfile.TemporaryDirectory() as tmp:
        found = outputs(Path(tmp), run)
    version = subprocess.run(["hlsflow", "--version"], capture_output=True, text=True).stdout.strip()
    found["recorded_with"] = f"{version}; hlsflow from {__import__('hlsflow').__file__}"
    RECORD.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
    print(f"wrote {RECORD}")


if __name__ == "__main__" and sys.argv[1:] == ["--record"]:
    _record()
