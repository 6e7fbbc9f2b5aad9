"""`invoke bench`: the toolchain's figures side by side with what users would run instead.

Every comparison is measured in this one run (ratios, not absolute times, are what carry from
machine to machine). Figures that need something absent are printed as "not measured: <reason>".
Writes the table to bench/results/<date>.md as well as printing it.
"""

import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hlsflow import console  # noqa: E402
from hlsflow.errors import FlowError  # noqa: E402

BARE_CONVERT = """
import sys, hls4ml, tensorflow as tf
m = tf.keras.models.load_model(sys.argv[1])
cfg = hls4ml.utils.config_from_keras_model(m, granularity='name', default_precision='ap_fixed<16,6>',
                                           default_reuse_factor=32)
cfg['Model']['Strategy'] = 'Resource'
h = hls4ml.converters.convert_from_keras_model(m, hls_config=cfg, output_dir=sys.argv[2], io_type='io_stream',
                                               part='xc7z010clg400-1', backend='Vivado')
h.write()
"""


def machine() -> str:
    cpu = "unknown CPU"
    try:
        cpu = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text()).group(1).strip()
    except (OSError, AttributeError):
        pass
    mem_kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    return f"{os.cpu_count()} cores, {mem_kb / 1024 ** 2:.0f} GB, {cpu}, {platform.system()} {platform.release()}"


def timed(cmd, env=None, cwd=REPO) -> tuple:
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    return time.monotonic() - start, proc


def invoke_cmd(*args):
    return [sys.executable, "-m", "invoke", *args]


def flow_figures() -> dict:
    """bench/flow_figures.py where the flow runs: inside the image from the host."""
    from hlsflow.cli import launcher
    from hlsflow.image.containers import image_name

    if launcher.in_image():
        proc = subprocess.run([sys.executable, "bench/flow_figures.py"], cwd=REPO, capture_output=True, text=True)
    else:
        proc = subprocess.run(["docker", "run", "--rm", "--init", "--network", "none", "-v", f"{REPO}:{REPO}",
                               "-w", str(REPO), "-e", f"HOST_UID={os.getuid()}", "-e", f"HOST_GID={os.getgid()}",
                               *sum((["-e", f"{k}={v}"] for k, v in os.environ.items() if k.startswith("BENCH_")), []),
                               image_name(), "python", "bench/flow_figures.py"],
                              capture_output=True, text=True)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("BENCH-JSON ")), None)
    if line is None:
        raise FlowError(f"bench/flow_figures.py failed (exit {proc.returncode}): {proc.stderr.strip()[-400:]}")
    return json.loads(line[len("BENCH-JSON "):])


def no_op_rerun() -> dict:
    """`invoke flow` twice on the reference model (synthesis: the stand-in); the second run must
    reuse every stage, as its manifest entries say."""
    out = Path(tempfile.mkdtemp(dir=REPO / "build")) / "prj"
    env = dict(os.environ, XILINX_ROOT=str(REPO / "tests" / "standin_xilinx"), STANDIN_DELAY="0")
    env["VIVADO_DIR"] = str(REPO / "tests" / "standin_xilinx" / "Vivado" / "2018.2")
    full, p1 = timed(invoke_cmd("flow", "--out", str(out)), env)
    before = len(json.loads((out / "manifest.json").read_text())["runs"]) if p1.returncode == 0 else 0
    again, p2 = timed(invoke_cmd("flow", "--out", str(out)), env)
    runs = json.loads((out / "manifest.json").read_text())["runs"][before:] if p2.returncode == 0 else []
    shutil.rmtree(out.parent, ignore_errors=True)
    if p1.returncode or p2.returncode:
        return {"error": (p1.stderr + p2.stderr).strip()[-300:]}
    return {"full_s": full, "noop_s": again, "noop_skipped": bool(runs) and all(r["reused"] for r in runs),
            "stages": [r["stage"] for r in runs]}


def image_figures(cold: bool) -> dict:
    from hlsflow.image import handover, build as image
    from hlsflow.image.containers import docker_client

    client = docker_client()
    figures = {}
    tag = "hlsflow:latest"
    if cold:
        start = time.monotonic()
        image.build_image(no_cache=True)
        figures["cold_build_s"] = time.monotonic() - start
    touch = REPO / "hlsflow" / "_bench_touch.py"
    try:
        touch.write_text(f"# one-line change made by bench/run.py at {time.time()}\n")
        start = time.monotonic()
        image.build_image()
        figures["rebuild_s"] = time.monotonic() - start
    finally:
        touch.unlink(missing_ok=True)
    image.build_image()  # back to the committed code
    start = time.monotonic()
    image.build_image()  # nothing changed: every layer from the cache (tests/image check that, not the time)
    figures["cached_rebuild_s"] = time.monotonic() - start
    figures["image_bytes"] = client.images.get(tag).attrs["Size"]
    tarball = REPO / "build" / "bench" / "hlsflow-bench.tar.gz"
    tarball.parent.mkdir(parents=True, exist_ok=True)
    handover.save_image(tarball)
    figures["tarball_bytes"] = tarball.stat().st_size
    tarball.unlink()
    Path(str(tarball) + ".sha256").unlink(missing_ok=True)
    return figures


def bare_venv() -> Path:
    """A virtualenv with just the locked stack, for the bare-hls4ml baseline (from the wheelhouse)."""
    venv = REPO / "build" / "bench-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        wheels = REPO / "build" / "wheelhouse"
        source = ["--no-index", "--find-links", str(wheels)] if wheels.is_dir() else []
        subprocess.run([str(python), "-m", "pip", "install", "-q", *source, "--require-hashes", "-r",
                        str(REPO / "docker" / "requirements.lock")], check=True)
    return python


def dispatch_overhead() -> dict:
    out = Path(tempfile.mkdtemp(dir=REPO / "build"))
    model = REPO / "models" / "model_2_15.keras"
    ours, p = timed(invoke_cmd("convert", "--force", "--out", str(out / "ours")))
    if p.returncode:
        return {"error": p.stderr.strip()[-300:]}
    python = bare_venv()
    bare, p2 = timed([str(python), "-c", BARE_CONVERT, str(model), str(out / "bare")],
                     env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    shutil.rmtree(out, ignore_errors=True)
    if p2.returncode:
        return {"error": p2.stderr.strip()[-300:]}
    return {"ours_s": ours, "bare_s": bare}


def _fmt_s(v):
    return f"{v:.1f} s"


def _verdict(ok):
    return "goal met" if ok else "goal MISSED"


def table(fig: dict) -> str:
    rows = []
    eb = fig.get("flow", {}).get("emulation_build")
    if eb:
        ours, base = eb["ours"], eb["baseline"]
        base_t = _fmt_s(base["seconds"]) if base["completed"] else f"over {base['seconds']:.0f} s (stopped)"
        ratio = base["seconds"] / ours["seconds"]
        rows.append(("Emulation build, reference Mini-ResNet (wall time)", f"{_fmt_s(ours['seconds'])}, io_stream",
                     f"{base_t}, seed io_parallel", f"{'>' if not base['completed'] else ''}{ratio:.0f}x faster",
                     f"<= 15 s and >= 50x: {_verdict(ours['seconds'] <= 15 and ratio >= 50)}"))
        rows.append(("Emulation build, peak memory", f"{ours['peak_mb']:.0f} MB",
                     f"{base['peak_mb']:.0f} MB" if base["peak_mb"] else "not measured: stopped at the limit", "",
                     f"<= 1 GB: {_verdict(ours['peak_mb'] <= 1024)}"))
        rows.append(("Prediction after the build", ours["prediction"], base["prediction"], "", ""))
    tp = fig.get("flow", {}).get("throughput")
    if tp:
        one = tp["workers_1"]
        many_key = max(k for k in tp if k.startswith("workers_"))
        many = tp[many_key]
        speedup = many["images_per_second"] / one["images_per_second"]
        rows.append((f"Emulation throughput ({many_key.split('_')[1]} workers vs 1)",
                     f"{many['images_per_second']:.1f} img/s", f"{one['images_per_second']:.1f} img/s",
                     f"{speedup:.2f}x", f">= 1.8x: {_verdict(speedup >= 1.8)}"))
        check = tp["agreement_check"]
        rows.append((f"Agreement check, {check['images']} images (Keras + emulation)", _fmt_s(check["seconds"]), "",
                     f"agreement {check['top1_agreement']:.1%}", f"< 240 s: {_verdict(check['seconds'] < 240)}"))
    noop = fig.get("noop")
    if noop and "error" not in noop:
        rows.append(("`invoke flow`, nothing changed (synth: stand-in): " + ", ".join(noop["stages"]) + " reused",
                     _fmt_s(noop["noop_s"]), f"{_fmt_s(noop['full_s'])} full run",
                     f"{noop['full_s'] / noop['noop_s']:.1f}x",
                     f"< 3 s, no stage run: {_verdict(noop['noop_s'] < 3 and noop['noop_skipped'])}"))
    elif noop:
        rows.append(("No-op re-run", f"not measured: {noop['error']}", "", "", ""))
    img = fig.get("image")
    if isinstance(img, dict):
        rows.append(("Image size", f"{img['image_bytes'] / 1e9:.2f} GB", "", "",
                     f"<= 1.6 GB: {_verdict(img['image_bytes'] <= 1.6e9)}"))
        rows.append(("Saved tarball (gzip)", f"{img['tarball_bytes'] / 1e6:.0f} MB", "", "",
                     f"<= 600 MB: {_verdict(img['tarball_bytes'] <= 600e6)}"))
        cold = img.get("cold_build_s")
        rows.append(("Rebuild after a one-line code change", _fmt_s(img["rebuild_s"]),
                     _fmt_s(cold) + " no-cache build (base image and wheels on hand)" if cold
                     else "no-cache build not measured: run with --cold",
                     f"{cold / img['rebuild_s']:.0f}x" if cold else "", f"<= 15 s: {_verdict(img['rebuild_s'] <= 15)}"))
        if "cached_rebuild_s" in img:
            rows.append(("Rebuild with nothing changed (every layer cached)", _fmt_s(img["cached_rebuild_s"]), "", "",
                         f"< 120 s: {_verdict(img['cached_rebuild_s'] < 120)}"))
    elif img:
        rows.append(("Image", img, "", "", ""))
    disp = fig.get("dispatch")
    if isinstance(disp, dict) and "error" not in disp:  # a str when skipped (--skip-image) or failed
        ratio = disp["ours_s"] / disp["bare_s"]
        rows.append(("`invoke convert` from the host (container) vs bare hls4ml script", _fmt_s(disp["ours_s"]),
                     _fmt_s(disp["bare_s"]), f"{ratio:.2f}x", f"<= 1.15x: {_verdict(ratio <= 1.15)}"))
    elif disp:
        rows.append(("Host dispatch overhead", disp if isinstance(disp, str) else f"not measured: {disp['error']}",
                     "", "", ""))
    d = fig.get("flow", {}).get("design")
    if d:
        rows.append((f"MACs per image / DSP-bound minimum latency on {d['part']} ({d['dsp']} DSP, {d['clock_ns']} ns)",
                     f"{d['macs']:,} MACs", f"{d['dsp_bound_cycles']:,.0f} cycles = {d['dsp_bound_latency_us']:.0f} us",
                     "", "physical limit: MACs / (DSPs x f)"))
        rows.append(("Preflight estimate for the configured ReuseFactors",
                     f"~{d['estimated_multipliers']:,} multipliers, interval ~{d['estimated_interval_cycles']:,} "
                     f"cycles, latency ~{d['estimated_latency_cycles']:,} cycles",
                     f"{d['dsp']} DSPs available", f"{d['estimated_multipliers'] / d['dsp']:.0f}x the DSPs",
                     "estimates; real figures come only from Vivado"))
    head = ["figure", "ours", "baseline", "ratio", "goal"]
    return console.table(head, rows)


def render(figures: dict) -> str:
    return (f"# Benchmarks, {figures['date']}\n\nMachine: {figures['machine']}\n\n" + table(figures) +
            "\n\nMeasured by `invoke bench` in one run; ratios compare figures taken side by side. "
            "Nothing here is a Vivado result.\n")


def main(cold=False, skip_image=False):
    figures = {"machine": machine(), "date": datetime.date.today().isoformat()}
    console.step("bench: flow figures (emulation build, throughput, design limit)")
    figures["flow"] = flow_figures()
    console.step("bench: no-op re-run")
    figures["noop"] = no_op_rerun()
    if skip_image:
        figures["image"] = "not measured: --skip-image"
        figures["dispatch"] = "not measured: --skip-image"
    else:
        try:
            console.step("bench: image size, tarball, rebuild")
            figures["image"] = image_figures(cold)
            console.step("bench: host dispatch overhead")
            figures["dispatch"] = dispatch_overhead()
        except FlowError as exc:
            figures["image"] = figures["dispatch"] = f"not measured: {exc}"
    results = REPO / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    # The figures first: they took many minutes, and a table that fails to render must not lose them.
    (results / f"{figures['date']}.json").write_text(json.dumps(figures, indent=2) + "\n")
    text = render(figures)
    console.say(text)
    (results / f"{figures['date']}.md").write_text(text)
    return figures


if __name__ == "__main__":
    main(cold="--cold" in sys.argv, skip_image="--skip-image" in sys.argv)
