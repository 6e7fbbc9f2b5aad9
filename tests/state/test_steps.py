"""Every record an output folder's manifest holds is a step declared once in hlsflow/steps.py, with
the inputs it declares: staleness and `hlsflow verify` read that registry, so a record it does not
know would be missed silently. Run as a user runs them (the installed command, from a user's
folder): csim's caches on both engines, the whole flow (synthesis by the stand-in), and profile."""

import json
import shutil
from pathlib import Path

import pytest

from test_safety import hlsflow, starter  # noqa: F401 (starter is a module fixture used below)

STANDIN = Path(__file__).resolve().parents[1] / "standin_xilinx" / "Vivado" / "2018.2"
CONFIG = ("--config", "models/hls4ml_config.yml", "--out", "build/tiny")


@pytest.fixture(scope="module")
def manifest(starter, tmp_path_factory):  # noqa: F811
    """manifest.json after the runs that write every kind of record (fault analysis only follows a
    low figure, so it may be absent)."""
    root = tmp_path_factory.mktemp("steps")
    shutil.copytree(starter, root, dirs_exist_ok=True)
    for args in (("csim", *CONFIG, "--engine", "cpp", "--max-samples", "8"),  # convert, the g++ build, Keras's
                 ("csim", *CONFIG, "--max-samples", "8"),  # the fast engine and g++'s syntax check
                 ("flow", *CONFIG, "--vivado", STANDIN),  # every stage of flow.STAGES, a new one too
                 ("profile", *CONFIG, "--max-samples", "8")):
        proc = hlsflow(*args, cwd=root)
        assert proc.returncode == 0, proc.stderr
    return json.loads((root / "build" / "tiny" / "manifest.json").read_text())


def test_every_record_written_is_a_registered_step_with_its_declared_inputs(manifest):
    from hlsflow import steps

    names = set(manifest["stages"])
    # Every stage and cache (the flow and csim run them all); of the commands, the one run above.
    assert {s.name for s in steps.REGISTRY if s.kind != steps.COMMAND} - names <= {steps.FAULT_ANALYSIS.name}, names
    assert steps.PROFILE.name in names, names
    for name, record in manifest["stages"].items():
        step = steps.named(name)  # LookupError for a record no step declares
        assert set(record["inputs"]) == set(step.inputs), (name, sorted(record["inputs"]), step.inputs)
        assert set(step.outputs) <= set(record["outputs"]), (name, step.outputs, sorted(record["outputs"]))


def test_a_record_of_an_unregistered_name_is_refused_before_it_is_written(tmp_path):
    from hlsflow.state import outdir

    with pytest.raises(LookupError, match="no step named 'made-up'"):
        outdir.Record(tmp_path, "made-up", {"project": "p"})
    assert not any(tmp_path.iterdir())


def test_the_flow_runs_each_declared_stage_once_after_what_it_requires():
    from hlsflow import flow, steps

    order = [work.step for work in flow.STAGES]
    assert sorted(s.name for s in order) == sorted(s.name for s in steps.REGISTRY if s.kind == steps.STAGE)
    for i, step in enumerate(order):
        assert all(required in order[:i] for required in step.requires), step.name
    # What a new run makes stale comes from the declarations: everything after convert, the
    # stages that require or keep a step after any other.
    assert set(steps.downstream("convert")) == {s.name for s in steps.REGISTRY} - {"convert"}
    assert steps.downstream("build-emulation") == ("csim",) and steps.downstream("synth") == ("report",)


def test_the_docs_name_every_registered_step():
    # The stages and commands are tasks in the reference's table; the caches are named where csim's
    # set-up is described: a step added to the registry alone fails here until the docs say it.
    from hlsflow import steps

    docs = Path(__file__).resolve().parents[2] / "docs"
    for step in steps.REGISTRY:
        page = docs / ("emulation.md" if step.kind == steps.CACHE else "reference.md")
        assert f"`{step.name}`" in page.read_text(), f"{page.name} does not name the step `{step.name}`"
