"""tune-precision's wall time, this checkout's code against an image's own code, side by side in one
run (alternating, so a busy machine moves both sides alike). The model is the stand-in of
tests/search/test_cause_advice.py whose gate needs a wider input type and a larger softmax table
(a search of five steps); each run starts from an empty folder with an empty user cache, so no
step is answered from an earlier one. Run on the host, from the checkout:

    .venv-host/bin/python bench/tune_ab.py --baseline-image hlsflow:0.2.0-<sha> [--image hlsflow:latest] [--rounds 2]

Both sides run natively in --image (the baseline with the baseline image's /opt/hlsflow mounted
in its place). Prints a Markdown table; writes nothing outside a temporary folder.
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

ROUND = r"""
set -e
cd "$WORK"
export HLSFLOW_NATIVE=1 XDG_CACHE_HOME="$WORK/cache" TF_CPP_MIN_LOG_LEVEL=2
PYTHONPATH=/repo/tests/search:/repo/tests python - <<'P'
from pathlib import Path
import yaml, test_cause_advice as t
t.both_model(Path("."))
P
PYTHONPATH="$CODE" hlsflow init --model both.keras --samples both.npz > init.out 2>&1
PYTHONPATH=/repo/tests/search:/repo/tests python - <<'P'
from pathlib import Path
import yaml, test_cause_advice as t
config = yaml.safe_load(Path("hls4ml_config.yml").read_text())
Path("mine.yml").write_text(yaml.safe_dump(t.both_user_config(config), sort_keys=False))
P
start=$(date +%s.%N)
PYTHONPATH="$CODE" hlsflow tune-precision --config mine.yml --no-compare-auto > tune.out 2>&1
end=$(date +%s.%N)
python -c "print(round($end - $start, 2))"
tail -1 tune.out
"""


def one(image: str, code: str, mounts: list) -> tuple:
    with tempfile.TemporaryDirectory() as work:
        cmd = ["docker", "run", "--rm", "-v", f"{REPO}:/repo:ro", "-v", f"{work}:{work}", "-e", f"WORK={work}",
               "-e", f"CODE={code}", *mounts, image, "bash", "-c", ROUND]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"a run failed: {proc.stdout[-1500:]}{proc.stderr[-1500:]}")
        seconds, last = proc.stdout.strip().splitlines()[-2:]
        return float(seconds), last


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="hlsflow:latest")
    parser.add_argument("--baseline-image", required=True)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    # The baseline image's own hlsflow, copied out so both sides run in the same image and stack.
    base = tempfile.mkdtemp(prefix="hlsflow-baseline-")
    cid = subprocess.run(["docker", "create", args.baseline_image], capture_output=True, text=True,
                         check=True).stdout.strip()
    try:
        subprocess.run(["docker", "cp", f"{cid}:/opt/hlsflow/hlsflow", base], check=True, capture_output=True)
    finally:
        subprocess.run(["docker", "rm", cid], capture_output=True)
    sides = {"baseline": ("/baseline", ["-v", f"{base}:/baseline:ro"]), "this checkout": ("/repo", [])}
    times = {name: [] for name in sides}
    lines = {}
    for _ in range(args.rounds):
        for name, (code, mounts) in sides.items():
            seconds, last = one(args.image, code, mounts)
            times[name].append(seconds)
            lines[name] = last
    print(f"tune-precision on test_cause_advice's both_model, {args.rounds} runs each, alternating, in {args.image}\n")
    print("| code | runs (s) | median (s) | last line |\n|---|---|---:|---|")
    for name in sides:
        label = f"{name} ({args.baseline_image})" if name == "baseline" else name
        print(f"| {label} | {', '.join(f'{t:.1f}' for t in times[name])} | {statistics.median(times[name]):.1f} "
              f"| {lines[name][:120]} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
