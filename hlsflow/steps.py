"""Every run that keeps a record in an output folder's manifest, declared once: the flow's stages,
the commands that record their results beside them, and the caches csim keeps of its own work.

A `Step` is a declaration, not code: its name (the record's key in manifest.json), its kind, the
steps whose results it is made from, the keys of what it is made from (hashed into its record),
and the files it declares. `REGISTRY` lists them all; a record of a name not registered here is
refused (state/records.py), so staleness (`downstream`), `hlsflow verify` and the flow can never
miss one. A stage's work is a `Work` in its own module (stages/*.py), the flow's order is
flow.STAGES: this module stands below everything that reads it.

Adding a step: one declaration here, and its function (for a stage, a `Work` in flow.STAGES; for
a command, a function of flow.py's that hands its work to flow.record_command).
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

STAGE, COMMAND, CACHE = "stage", "command", "cache"
# csim's set-up, kept between runs (the fast engine, Keras's predictions): each file is the output
# of a record of its own in the manifest, keyed by what it is made from, and goes with the project.
CACHE_DIR = "csim_cache"
# The files of an output folder that are hlsflow's own, never a step's output: the manifest (and
# its temporary copies while it is rewritten), and the mark of a folder being staged.
MANIFEST = "manifest.json"
STAGING_MARK = ".hlsflow-staging"


def bookkeeping(rel: str) -> bool:
    """Whether a path (relative to an output folder) is one of the folder's own files above."""
    return rel in (MANIFEST, STAGING_MARK) or (rel.startswith(f".{MANIFEST}.") and rel.endswith(".tmp"))


@dataclass(frozen=True)
class Step:
    name: str  # the record's key in manifest.json, and what the user types for a stage
    kind: str  # STAGE, COMMAND or CACHE
    says: str  # what it records, for the reader and the docs
    requires: tuple = ()  # the steps whose results it is made from: they run first (stages), and it goes
    # stale when they run again
    keeps: tuple = ()  # caches of its own work that it is made from too: it goes stale when they run again
    inputs: tuple = ()  # the keys of what its record says it is made from
    outputs: tuple = ()  # the files it declares, where they are fixed (a stage's may depend on the design)
    staged: bool = False  # written whole into a staging folder, then swapped into place (the project)


CONVERT = Step("convert", STAGE, "the HLS project hls4ml writes", staged=True,
               inputs=("model", "hls4ml_settings", "hls4ml", "hlsflow"))
BUILD_EMULATION = Step("build-emulation", CACHE, "the g++ build of the C++ emulation library", requires=(CONVERT,),
                       inputs=("project", "g++"), outputs=("emulation_build.log",))
CHECK_CPP = Step("check-cpp", CACHE, "g++'s syntax check of the written C++", requires=(CONVERT,),
                 inputs=("project", "g++"), outputs=("cpp_check.log",))
FAST_ENGINE = Step("fast-engine", CACHE, "the fast engine built from the project", requires=(CONVERT,),
                   inputs=("project", "design", "engine", "Python", "numpy"), outputs=(f"{CACHE_DIR}/fast_engine.pkl",))
KERAS_REFERENCE = Step("keras-reference", CACHE, "Keras's outputs on the samples",
                       inputs=("model", "samples", "max_samples", "TensorFlow"),
                       outputs=(f"{CACHE_DIR}/keras_reference.npy",))
FAULT_ANALYSIS = Step("fault-analysis", CACHE, "which types are at fault when the figure is low", requires=(CONVERT,),
                      inputs=("project", "design", "samples", "max_samples", "code", "TensorFlow"))
CSIM = Step("csim", STAGE, "the bit-accurate emulation's figures", requires=(CONVERT,), keeps=(BUILD_EMULATION,),
            inputs=("project", "samples", "max_samples", "g++", "engine", "metric", "cpp_checked"),
            outputs=("csim.json",))
SYNTH = Step("synth", STAGE, "the HLS tool's C synthesis", requires=(CONVERT,), inputs=("project", "args"))
REPORT = Step("report", STAGE, "the report of the synthesis", requires=(SYNTH,),
              inputs=("csynth_xml", "part", "vivado_synth_rpt"),
              outputs=("report.md", "utilisation.png", "layers.png", "report.json"))
PROFILE = Step("profile", COMMAND, "the value ranges of each layer", inputs=("design", "samples", "max_samples"),
               outputs=("profile.json",))
TUNE = Step("tune-precision", COMMAND, "the precision search and its tuned config",
            inputs=("design", "samples", "max_samples", "target"), outputs=("tune.json",))

def emulation_library(out_dir, project_name: str, stamp: str) -> Path:
    """BUILD_EMULATION's library, as hls4ml's build_lib.sh names it: by the project's stamp."""
    return Path(out_dir) / "firmware" / f"{project_name}-{stamp}.so"


def csynth_xml_path(out_dir, project_name) -> Path:
    """Where Vivado HLS writes SYNTH's C synthesis report in an hls4ml project (REPORT reads it)."""
    return Path(out_dir) / f"{project_name}_prj" / "solution1" / "syn" / "report" / f"{project_name}_csynth.xml"


# Every Step declared above, in their order: declaring one registers it, with no list to keep beside it.
REGISTRY = tuple(value for value in dict(globals()).values() if isinstance(value, Step))


def named(step) -> Step:
    """The registered step of that record name (or that Step); LookupError for one not in REGISTRY."""
    for registered in REGISTRY:
        if step in (registered, registered.name):
            return registered
    raise LookupError(f"no step named {getattr(step, 'name', step)!r} is registered in hlsflow/steps.py")


def downstream(name: str) -> tuple:
    """The records made from `name`'s results, which a new run of it makes stale. The project is
    everything's ground: convert replaces the folder, and all made from the old project goes."""
    if name == CONVERT.name:
        return tuple(s.name for s in REGISTRY if s is not CONVERT)
    return tuple(s.name for s in REGISTRY if s.kind == STAGE and name in {r.name for r in s.requires + s.keeps})


@dataclass
class Outcome:
    """What a step's work made, for the runner to record: its files (relative to the folder it wrote
    into), its result, fields of the record beside the result, the user's files it read (`sources`)."""
    outputs: list
    result: dict = None
    extra: dict = None
    sources: dict = None


@dataclass(frozen=True)
class Work:
    """What a stage of the flow does, beside its declaration: the functions flow.py's runner calls.

    work(cfg, into, project, **flags) -> Outcome  the work alone, writing into `into`; `project` is
                                                the convert record (None for convert itself)
    made_from(cfg, project, **flags) -> dict    what its results are a function of, the record's key
                                                (default: the project alone)
    precheck(cfg, **flags)                      what can be judged before anything runs, even what it requires
    ready(cfg, **flags)                         checks that must pass before it runs (not when reused)
    shown(cfg, record, reused) -> result        what a finished or reused run prints and returns
    leaves(cfg) -> list                         what its tools may write before it records them
    caches                                      work(..., caches=) gets the records of its own caches
    current, again                              the lines said when it is reused, or runs again (None:
                                                its own lines say so)
    """
    step: Step
    work: Callable
    made_from: Optional[Callable] = None
    precheck: Optional[Callable] = None
    ready: Optional[Callable] = None
    shown: Optional[Callable] = None
    leaves: Optional[Callable] = None
    current: Optional[str] = None
    again: Optional[str] = None
    caches: bool = False  # its work keeps caches of its own: the runner hands it a state.records.Caches

    @property
    def name(self) -> str:
        return self.step.name

    def inputs(self, cfg, project, flags: dict) -> dict:
        # Without its own, a stage is made from the project alone.
        return self.made_from(cfg, project, **flags) if self.made_from else {"project": project["tree_hash"]}

    def current_line(self, cfg) -> str:
        return self.current.format(out=cfg.output_dir, cfg=cfg) if self.current else None
