"""Vivado/Vitis HLS C synthesis of the written project, run and watched by us.

hls4ml's build() shells out with os.system (Vivado) or a shell (Vitis), has no timeout and, for
Vivado, ignores the exit status; here the tool runs as a child process group with its log
streamed to a file, progress read from its `Finished <stage>` lines, a deadline, and Ctrl-C
stopping the whole group. Which install, which command line and which versions go with which
backend: hlsflow/toolchain/xilinx.py. Cosimulation is never run.
"""

import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path

from .. import console, standin, steps
from ..errors import FlowError, check_flag
from ..files import changed_since, snapshot
from ..parts import family_of
from ..toolchain import doctor, xilinx
from ..vivado_reports import is_stand_in_log, parse_finished_line

RUN_LOG = "vivado_hls_run.log"  # the name kept for every tool: reports and older records look for it
BUILD_OPT = "build_opt.tcl"
no_vivado_hls_at = xilinx.no_install_at  # the launcher names a missing --vivado path with it


def find_vivado_hls(explicit=None):
    """The binary of the first HLS install in sight (any tool, any version), or None: whether
    synthesis can be tried at all; `ready` then says whether the backend can run it."""
    found = xilinx.candidates(explicit)
    return found[0].binary if found else None


def require_install(cfg, explicit=None) -> xilinx.Install:
    found = xilinx.select(cfg.backend, explicit)
    if found is None:
        if cfg.backend == "Vitis":
            raise FlowError("No Vitis HLS found: mount Vitis HLS 2020.2 or later (XILINX_ROOT, default /opt/Xilinx), "
                            "source its settings64.sh, or pass --vitis /opt/Xilinx/Vitis_HLS/2024.1.")
        raise FlowError("No Vivado HLS found: mount Vivado 2018.2 (XILINX_ROOT, default /opt/Xilinx), source its "
                        "settings64.sh, or pass --vivado /opt/Xilinx/Vivado/2018.2.")
    return found


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


def run_tool(argv: list, out_dir: Path, timeout_s: float, tool: str = "vivado_hls", double: bool = False) -> dict:
    """Run an HLS tool's argv in out_dir, streaming its log; returns elapsed time and peak memory.
    `double`: the tool is the test double, and each progress line says so."""
    mark = f" [{standin.NOTE}]" if double else ""
    log_path = out_dir / RUN_LOG
    start = time.monotonic()
    lines: "queue.Queue[str | None]" = queue.Queue()
    proc = subprocess.Popen([str(a) for a in argv], cwd=out_dir, stdout=subprocess.PIPE,
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
                                f"(peak {stage.get('peak_mb') or 0:.0f} MB){mark}")
                elif line.startswith(("ERROR:", "@E ")):
                    console.say(f"  {line.rstrip()}")
        proc.wait()
    except KeyboardInterrupt:
        _stop_group(proc)
        raise FlowError(f"Synthesis interrupted; {tool} and its children were stopped (log: {log_path}).",
                        exit_code=130)
    finally:
        if proc.poll() is None:
            _stop_group(proc)
    elapsed = time.monotonic() - start
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        console.say(_tail(log_path))
        hint = " (SIGKILL often means out of memory)" if name == "SIGKILL" else ""
        raise FlowError(f"{tool} was killed by {name}{hint} after {elapsed:.0f} s: see {log_path}, free memory "
                        "or raise ReuseFactor, and run `hlsflow synth` again.", exit_code=4)
    if proc.returncode != 0:
        console.say(_tail(log_path))
        raise FlowError(f"{tool} exited with status {proc.returncode} after {elapsed:.0f} s: read the errors "
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
    return flags, xilinx.vivado_args(flags)


def made_from(cfg, project: dict, csim=None, export=None, vsynth=None, **flags) -> dict:
    return {"project": project["tree_hash"], "args": _flags(cfg, csim, export, vsynth)[1]}


def _timeout(cfg, timeout) -> float:
    return check_flag(timeout if timeout is not None else cfg.flow["synthesis"].get("timeout_s", 43200), "timeout",
                      "seconds")


def _install(cfg, vivado) -> tuple:
    """(install, version, support level, its sentence) the backend runs, or FlowError naming what
    cannot work."""
    install = require_install(cfg, vivado)
    version = xilinx.tool_version(install)
    level, sentence = xilinx.support(cfg.backend, install, version, family_of(cfg.part))
    if level == "unsupported":
        raise FlowError(sentence)
    return install, version, level, sentence


def precheck(cfg, vivado=None, **_ready_flags) -> None:
    """Before anything runs (convert, emulation; flow.py calls it): a backend/tool pair that cannot
    work is named in one sentence. Nothing in sight is left to `flow`, which then skips synthesis;
    the other flags are `ready`'s to check."""
    if find_vivado_hls(vivado) is not None:
        _install(cfg, vivado)


def ready(cfg, vivado=None, csim=None, export=None, vsynth=None, timeout=None) -> None:
    """A timeout that makes sense, an install the backend can run, and doctor's blocking checks
    for it (libraries, locale, licence server, disk, memory, the Y2K22 patch when exporting)."""
    _timeout(cfg, timeout)
    install, version, level, sentence = _install(cfg, vivado)
    if level == "untested" or (level == "supported" and install.tool == xilinx.VIVADO_HLS):
        console.warn(sentence)  # results may differ from the reference's
    elif level == "supported":
        console.say(sentence)
    export = _flags(cfg, csim, export, vsynth)[0].get("export")
    blocking = doctor.blocking(install, version, cfg, export=export)
    if blocking:
        raise FlowError(f"{blocking[0].detail.rstrip('.')}; `hlsflow doctor` checks the whole install.")


def leaves(cfg) -> list:
    """What the HLS tools write in the project before synthesis records it (exact names: a user's
    own `notes_prj/` or `vivado_notes.log` beside them stays theirs). hls4ml's build_prj.tcl works
    in the project folder; Vivado's JVM adds its journal, logs, .Xil/ and webtalk files."""
    return [f"{cfg.project_name}_prj/", RUN_LOG, "vivado_hls.log", "vitis_hls.log", "vivado.log", "vivado.jou",
            "vivado_synth.rpt", ".Xil/", "usage_statistics_webtalk.html", "usage_statistics_webtalk.xml",
            # The Vivado stand-in's (a test double's) records of its arguments and Tcl calls.
            "vivado_hls_standin.args", "vivado_hls_standin_calls.log"]


def work(cfg, into: Path, project: dict, vivado=None, csim=None, export=None, vsynth=None,
         timeout=None) -> steps.Outcome:
    """The HLS tool in the project; its outputs are the files it wrote or rewrote."""
    flags, args = _flags(cfg, csim, export, vsynth)
    install, version, _, _ = _install(cfg, vivado)
    shown, argv, build_opt = xilinx.command(install, version, flags)
    xml = steps.csynth_xml_path(into, cfg.project_name)
    console.step(f"{install.tool} {version} ({install.binary}){install.double_note} C synthesis of "
                 f"{cfg.project_name} for {cfg.part}")
    quoted = " ".join(f'"{a}"' if " " in a else a for a in shown)
    console.say(f"  {quoted}" + (f" with {BUILD_OPT}: {args}" if build_opt else "") + f"; log: {into / RUN_LOG}")
    before = snapshot(into, steps.bookkeeping)
    original = (into / BUILD_OPT).read_bytes() if build_opt and (into / BUILD_OPT).is_file() else None
    try:
        if build_opt:
            # The Vitis build_prj.tcl reads its flags from here, as hls4ml's build() writes them.
            (into / BUILD_OPT).write_text(build_opt)
        run = run_tool(xilinx.with_settings(install, argv), into, _timeout(cfg, timeout), tool=shown[0],
                       double=install.test_double)
    finally:
        if original is not None:
            # Put back convert's file, so the project stays the one converted (its hash unchanged).
            (into / BUILD_OPT).write_bytes(original)
    made = [rel for rel in changed_since(into, before, steps.bookkeeping) if rel != BUILD_OPT]
    # A report left by an earlier run must not pass for this one's.
    if xml.relative_to(into).as_posix() not in made or not xml.exists():
        console.say(_tail(into / RUN_LOG))
        raise FlowError(f"{shown[0]} finished but wrote no synthesis report at {xml}: read {into / RUN_LOG} "
                        f"for the cause.", exit_code=4)
    stand_in = install.test_double or is_stand_in_log(into / RUN_LOG)  # its results must never pass for Vivado's
    result = {"args": args, "command": " ".join(shown), "tool": install.tool, "vivado_hls": str(install.binary),
              "version": version, "stand_in": stand_in, **run}
    return steps.Outcome(made, result=result, extra={"vivado_version": version, "stand_in": stand_in})


def shown(cfg, record: dict, reused: bool) -> dict:
    result = record.get("result") or {}
    if not reused:
        by = f" by the {standin.NOTE}" if result.get("stand_in") else ""
        console.say(f"Synthesis finished{by} in {result['seconds']:.0f} s (peak {result['peak_mb'] or 0:.0f} MB); "
                    "`hlsflow report` summarises it.")
    return result


WORK = steps.Work(steps.SYNTH, work, made_from=made_from, precheck=precheck, ready=ready, shown=shown, leaves=leaves,
                  current=CURRENT, again=AGAIN)
