"""The example notebook (examples/notebooks/reference.ipynb) on a user's own config, in the image
(the bundled model's run is tests/image/test_notebook_browser.py, in a browser):
a folder outside the checkout with a model and the config `hlsflow init` wrote beside it, the
notebook run there top to bottom. Also that it needs nothing the image lacks (the image ships
only hlsflow/image/build.py's CODE folders, no tests/), and that the real report it reads there
is the test fixture's, byte for byte."""

import filecmp
import json
import re
import shutil

from conftest import REPO_ROOT, TESTS_DIR
from state.test_safety import DATA, hlsflow

NOTEBOOK = REPO_ROOT / "examples" / "notebooks" / "reference.ipynb"
SHIPPED_REPORT = REPO_ROOT / "examples" / "reports" / "hls4ml_dense_vivado_hls_2020.1"


def _text(cell) -> str:
    return "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in cell.outputs)


def _has_png(cell) -> bool:
    return any("image/png" in o.get("data", {}) for o in cell.outputs)


def test_the_notebook_runs_on_a_users_config(tmp_path, monkeypatch):
    import nbclient
    import nbformat

    for name in ("tiny_cnn.keras", "tiny_samples.npz"):
        shutil.copy(DATA / name, tmp_path / name)
    made = hlsflow("init", "--model", "tiny_cnn.keras", "--samples", "tiny_samples.npz", cwd=tmp_path)
    assert made.returncode == 0 and (tmp_path / "hls4ml_config.yml").is_file(), made.stderr
    nb = nbformat.read(NOTEBOOK, as_version=4)
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))  # the kernel imports this checkout's hlsflow
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    errors = [(c.source[:60], o.get("ename"), o.get("evalue")) for c in code for o in c.outputs
              if o.output_type == "error"]
    assert not errors
    assert all(c.execution_count for c in code)

    text = {tag: _text(c) for c in code for tag in c.metadata.get("tags", [])}
    said = "\n".join(_text(c) for c in code)
    assert "hls4ml_config.yml (your config in this folder): model tiny_cnn.keras" in said, said[:2000]
    assert "bundled reference" not in said
    # hls4ml's own C++ predict (no hook set yet) against hlsflow.emulate, then the hooked predict against it
    assert "hls4ml's C++ predict equals hlsflow.emulate bit for bit on 10 samples: True" in text["bitexact"]
    assert "equals hls4ml's C++ predict above bit for bit: True" in text["hook"]
    # What it wrote is the user's model's project, where the notebook said; hlsflow.emulate in the
    # notebook and the csim stage measure the same agreement on the same samples.
    out = tmp_path / "build" / "notebook"
    assert str(tmp_path / "tiny_cnn.keras") in (out / "manifest.json").read_text()
    csim = json.loads((out / "csim.json").read_text())
    agreement = re.search(r"top-1 agreement HLS vs Keras: ([\d.]+)% on (\d+) samples", text["agreement"])
    assert agreement, text["agreement"]
    assert (f"{100 * csim['agreement']:.1f}", int(agreement.group(2))) == (agreement.group(1), csim["samples"])
    assert f"'agreement': {csim['agreement']!r}" in text["csim"]
    # The report of the real (another design's) Vivado report, and its figure inline.
    assert "another design's real report" in text["report"] and "not this model's" in text["report"]
    report = json.loads((tmp_path / "synthesised_example" / "report.json").read_text())
    assert report["tool_version"] == "2020.1" and not report["produced_by_test_double"]
    best, worst = report["latency"]["best_cycles"], report["latency"]["worst_cycles"]
    assert f"latency {best}-{worst} cycles" in text["report"]
    report_cell = next(c for c in code if "report" in c.metadata.get("tags", []))
    assert _has_png(report_cell)
    assert sum(_has_png(c) for c in code) >= 3  # the model graph, the profile, the utilisation


def test_a_folder_of_the_reports_name_is_never_written_over(tmp_path, monkeypatch):
    """The notebook's report cell copies the shipped report only where nothing of that name is."""
    import nbclient
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    cell = next(c for c in nb.cells if "report" in c.metadata.get("tags", []))
    mine = tmp_path / "synthesised_example" / "myproject_prj" / "vivado_hls.app"
    mine.parent.mkdir(parents=True)
    mine.write_text("the user's own file")
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    setup = nbformat.v4.new_code_cell("import hlsflow\nfrom pathlib import Path")
    nb.cells = [setup, cell]
    with __import__("contextlib").suppress(nbclient.exceptions.CellExecutionError):
        nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert mine.read_text() == "the user's own file"


def test_the_notebook_needs_only_what_the_image_ships():
    """Every bundled file the notebook names is in a folder the image copies into /opt/hlsflow."""
    from hlsflow.image.build import CODE

    source = "\n".join(cell["source"] for cell in __import__("nbformat").read(NOTEBOOK, as_version=4).cells)
    named = re.findall(r"example_path\(\"([^\"]+)\"\)", source)
    assert len(named) >= 2, named  # the bundled config and the shipped report
    for name in named:
        assert name.split("/")[0] in CODE and (REPO_ROOT / name).exists(), name


def test_the_shipped_report_is_the_real_one():
    """examples/reports holds the fixture's real Vivado files unchanged, where hls4ml's project puts them."""
    fixture = TESTS_DIR / "standin_xilinx" / "fixtures" / "vivado_hls_2020.1"
    report = SHIPPED_REPORT / "myproject_prj" / "solution1" / "syn" / "report"
    pairs = {"vivado_hls.app": SHIPPED_REPORT / "myproject_prj", "myproject_csynth.xml": report,
             "myproject_csynth.rpt": report, "vivado_synth.rpt": SHIPPED_REPORT}
    assert sorted(p.name for p in SHIPPED_REPORT.rglob("*") if p.is_file()) == sorted(pairs)
    for name, folder in pairs.items():
        assert filecmp.cmp(fixture / name, folder / name, shallow=False), name
