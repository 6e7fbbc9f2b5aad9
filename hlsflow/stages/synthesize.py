"""Vivado HLS C synthesis of the written project, run and watched by us.

hls4ml's build() shells out with os.system, ignores the exit status and has no timeout; here
vivado_hls runs as a child process group with its log streamed to a file, progress read from
its `Finished <stage>` lines, a deadline, and Ctrl-C stopping the whole group. Cosimulation
is never run.
"""

import functools
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

from .. import console
from ..errors import FlowError
from ..state import outdir
from ..vivado_reports import is_stand_in_log, parse_finished_line

EXPECTED_VERSION = "2018.2"
RUN_LOG = "vivado_hls_run.log"
# Xilinx AR 76960: without this file from the Y2K22 patch, export_design fails since 2022.
Y2K22_PATCH_FILE = Path("common/scripts/automg_patch_20220104.tcl")


def no_vivado_hls_at(path) -> FlowError:
    return FlowError(f"No vivado_hls at {path}: pass --vivado the Vivado 2018.2 install directory (the one holding "
                     "settings64.sh) or the vivado_hls binary.")


def find_vivado_hls(explicit=None):
    """Path of vivado_hls from --vivado, XILINX_VIVADO / VIVADO_DIR, or PATH; None if absent."""
    candidates = []
    if explicit:
        p = Path(explicit)
        candidates += [p] if p.is_file() else [p / "bin" / "vivado_hls"]
    for var in ("XILINX_VIVADO", "VIVADO_DIR"):
        if os.environ.get(var):
            candidates.append(Path(os.environ[var]) / "bin" / "vivado_hls")
    on_path = shutil.which("vivado_hls")
    if on_path:
        candidates.append(Path(on_path))
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return c.resolve()
    if explicit:
        raise no_vivado_hls_at(explicit)
    return None


def require_vivado_hls(explicit=None) -> Path:
    found = find_vivado_hls(explicit)
    if found is None:
        raise FlowError("No Vivado HLS found: mount Vivado 2018.2 (XILINX_ROOT, default /opt/Xilinx), source its "
                        "settings64.sh, or pass --vivado /opt/Xilinx/Vivado/2018.2.")
    return found


@functools.lru_cache(maxsize=None)  # asked before the run and in it: a few seconds each time
def vivado_version(vivado_hls: Path) -> str:
    try:
        out = subprocess.run([str(vivado_hls), "-version"], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FlowError(f"{vivado_hls} -version did not answer ({exc}): check the Vivado install and its "
                        "system libraries (libtinfo5, a valid locale).") from exc
    m = re.search(r"\bv(\d{4}\.\d)", out.stdout + out.stderr)
    return m.group(1) if m else "unknown"


def check_y2k22_patch(vivado_hls: Path) -> None:
    install = vivado_hls.parent.parent
    candidates = [install / Y2K22_PATCH_FILE, install.parent.parent / "Vivado_HLS" / install.name / Y2K22_PATCH_FILE]
    if not any(c.exists() for c in candidates):
        raise FlowError(f"export_design in Vivado HLS {EXPECTED_VERSION} fails since 2022 without Xilinx's Y2K22 "
                        f"patch, and {install} does not have it: apply AR 76960 (y2k22_patch) to the host install, "
                        "or run without --export.")


def synth_args(flags: dict) -> str:
    """The argument string hls4ml's build_prj.tcl reads; cosim is always 0."""
    values = {"reset": 0, "csim": int(flags.get("csim", False)), "synth": 1, "cosim": 0, "validation": 0,
              "export": int(flags.get("export", False)), "vsynth": int(flags.get("vsynth", False)), "fifo_opt": 0}
    return " ".join(f"{k}={v}" for k, v in values.items())


def _stop_group(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def run_vivado_hls(vivado_hls: Path, out_dir: Path, args: str, timeout_s: float) -> dict:
    """Run vivado_hls in out_dir, streaming its log; returns elapsed time and peak memory."""
    log_path = out_dir / RUN_LOG
    start = time.monotonic()
    lines: "queue.Queue[str | None]" = queue.Queue()
    proc = subprocess.Popen([str(vivado_hls), "-f", "build_prj.tcl", args], cwd=out_dir, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, errors="replace",
                            start_new_session=True)

    def pump():
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    peak_mb = 0.0
    stages = []
    try:
        with open(log_path, "w") as log:
            while True:
                remaining = timeout_s - (time.monotonic() - start)
                if remaining <= 0:
                    _stop_group(proc)
                    raise FlowError(f"Synthesis passed its {timeout_s:.0f} s timeout and was stopped (log: {log_path}): "
                                    "raise --timeout, or raise ReuseFactor to make the design smaller.", exit_code=4)
                try:
                    line = lines.get(timeout=min(remaining, 1.0))
                except queue.Empty:
                    continue
                if line is None:
                    break
                log.write(line)
                log.flush()
                stage = parse_finished_line(line)
                if stage:
                    peak_mb = max(peak_mb, stage.get("peak_mb") or 0.0)
                    stages.append(stage)
                    console.say(f"  [{time.monotonic() - start:7.1f}s] finished {stage['stage']} "
                                f"(peak {stage.get('peak_mb') or 0:.0f} MB)")
                elif line.startswith(("ERROR:", "@E ")):
                    console.say(f"  {line.rstrip()}")
        proc.wait()
    except KeyboardInterrupt:
        _stop_group(proc)
        raise FlowError(f"Synthesis interrupted; vivado_hls and its children were stopped (log: {log_path}).",
                        exit_code=130)
    finally:
        if proc.poll() is None:
            _stop_group(proc)
    elapsed = time.monotonic() - start
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        console.say(_tail(log_path))
        hint = " (SIGKILL often means out of memory)" if name == "SIGKILL" else ""
        raise FlowError(f"vivado_hls was killed by {name}{hint} after {elapsed:.0f} s: see {log_path}, free memory "
                        "or raise ReuseFactor, and run `hlsflow synth` again.", exit_code=4)
    if proc.returncode != 0:
        console.say(_tail(log_path))
        raise FlowError(f"vivado_hls exited with status {proc.returncode} after {elapsed:.0f} s: read the errors "
                        f"above and {log_path}.", exit_code=4)
    return {"seconds": round(elapsed, 1), "peak_mb": peak_mb or None, "stages": stages}


CURRENT = ("Synthesis up to date: {out}/{cfg.project_name}_prj/solution1/syn/report/{cfg.project_name}_csynth.xml "
           "(project and flags unchanged; --force runs it again)")
AGAIN = "Synthesis runs again"


def _flags(cfg, csim=None, export=None, vsynth=None) -> tuple:
    """(the effective flags: the config's, overridden by the command's; vivado_hls's arguments)."""
    flags = dict(cfg.flow["synthesis"])
    for key, value in (("csim", csim), ("export", export), ("vsynth", vsynth)):
        if value is not None:
            flags[key] = bool(value)
    return flags, synth_args(flags)


def made_from(cfg, project: dict, csim=None, export=None, vsynth=None, **flags) -> dict:
    return {"project": project["tree_hash"], "args": _flags(cfg, csim, export, vsynth)[1]}


def _timeout(cfg, timeout) -> float:
    timeout_s = float(timeout if timeout is not None else cfg.flow["synthesis"].get("timeout_s", 43200))
    if not timeout_s > 0:
        raise FlowError(f"Timeout '{timeout}' is not a positive number of seconds: give e.g. --timeout 3600.")
    return timeout_s


def ready(cfg, vivado=None, csim=None, export=None, vsynth=None, timeout=None) -> None:
    """A timeout that makes sense, a Vivado HLS to run, and its Y2K22 patch when exporting."""
    _timeout(cfg, timeout)
    vivado_hls = require_vivado_hls(vivado)
    version = vivado_version(vivado_hls)
    if version != EXPECTED_VERSION:
        console.warn(f"Vivado HLS {version} found at {vivado_hls}; this flow is validated with {EXPECTED_VERSION}, "
                     "so results may differ.")
    if _flags(cfg, csim, export, vsynth)[0].get("export") and version == EXPECTED_VERSION:
        check_y2k22_patch(vivado_hls)


def work(cfg, into: Path, project: dict, vivado=None, csim=None, export=None, vsynth=None,
         timeout=None) -> outdir.Outcome:
    """vivado_hls in the project; its outputs are the files it wrote or rewrote."""
    args = _flags(cfg, csim, export, vsynth)[1]
    vivado_hls = require_vivado_hls(vivado)
    version = vivado_version(vivado_hls)
    xml = outdir.csynth_xml_path(into, cfg.project_name)
    console.step(f"Vivado HLS {version} ({vivado_hls}) C synthesis of {cfg.project_name} for {cfg.part}")
    console.say(f"  vivado_hls -f build_prj.tcl \"{args}\"; log: {into / RUN_LOG}")
    before = outdir.snapshot(into)
    run = run_vivado_hls(vivado_hls, into, args, _timeout(cfg, timeout))
    made = outdir.changed_since(into, before)
    # A report left by an earlier run must not pass for this one's.
    if xml.relative_to(into).as_posix() not in made or not xml.exists():
        console.say(_tail(into / RUN_LOG))
        raise FlowError(f"vivado_hls finished but wrote no synthesis report at {xml}: read {into / RUN_LOG} "
                        f"for the cause.", exit_code=4)
    stand_in = is_stand_in_log(into / RUN_LOG)  # its results must never pass for Vivado's
    result = {"args": args, "vivado_hls": str(vivado_hls), "version": version, "stand_in": stand_in, **run}
    return outdir.Outcome(made, result=result, extra={"vivado_version": version, "stand_in": stand_in})


def shown(cfg, record: dict, reused: bool) -> dict:
    result = record.get("result") or {}
    if not reused:
        console.say(f"Synthesis finished in {result['seconds']:.0f} s (peak {result['peak_mb'] or 0:.0f} MB); "
                    "`hlsflow report` summarises it.")
    return result
