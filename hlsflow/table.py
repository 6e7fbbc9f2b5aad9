"""The stages of the flow, listed once: what each is called, where its work is, and whose results
it is made from. `flow` runs them in this order and runs what a stage requires first; the manifest
(state/outdir.py) marks a stage's results stale when what it requires runs again; `sweep` asks
each of them whether a point is current. Modules are named, not imported, so that this table
stands below everything that reads it.

A stage module defines
    work(cfg, into, project, **flags) -> Outcome  the work alone, writing into `into`; `project` is
                                                the convert record (None for convert itself)
and may define
    made_from(cfg, project, **flags) -> dict    what its results are a function of, the manifest's
                                                key (default: the project alone)
    ready(cfg, **flags)                         checks that must pass before it runs (not when reused)
    shown(cfg, record, reused) -> dict          what a finished or reused run prints and returns
    CURRENT, AGAIN                              the lines said when it is reused, or runs again

Adding a stage: a module with its `work` and a row here.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    name: str
    module: str  # hlsflow.stages.<module>
    requires: tuple = ()  # stages whose results this one is made from
    staged: bool = False  # written whole into a staging folder, then swapped into place (the project)
    steps: tuple = ()  # records this stage keeps of cached steps of its own work, which it is made from too


STAGES = (
    Row("convert", "convert", staged=True),
    Row("csim", "emulate", requires=("convert",), steps=("build-emulation",)),
    Row("synth", "synthesize", requires=("convert",)),
    Row("report", "report", requires=("synth",)),
)
# Runs that record their results in the output folder without being stages of the flow.
OTHER_RECORDS = ("build-emulation", "check-cpp", "profile", "tune-precision", "fast-engine", "keras-reference",
                 "fault-analysis")


def row(name: str) -> Row:
    return next(r for r in STAGES if r.name == name)


def downstream(name: str) -> tuple:
    """The records made from `name`'s results, which a new run of it makes stale. The project is
    everything's ground: convert replaces the folder, and all made from the old project goes."""
    if name == STAGES[0].name:
        return tuple(r.name for r in STAGES[1:]) + OTHER_RECORDS
    return tuple(r.name for r in STAGES if name in r.requires or name in r.steps)
