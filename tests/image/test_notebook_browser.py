"""The example notebook as a user runs it: `hlsflow lab --example` (the installed command, the image
built from this checkout, a user's empty folder outside it), JupyterLab opened in headless Chromium
(Debian's, driven by Playwright: no browser of Playwright's own), Run > Run All Cells clicked in
the menu bar, and every cell's output read from the page once the kernel is idle: no error, every
code cell run, and the checks the notebook prints are true. Then Ctrl-C, and no container is left.

A host test. Without chromium it is skipped, except where a browser is required (CI, or
HLSFLOW_REQUIRE_BROWSER=1): there it fails. HLSFLOW_NOTEBOOK_SCREENSHOT=PATH keeps a screenshot.
"""

import json
import os
import re
import signal
from pathlib import Path

import pytest

from test_cancel import containers_of
from test_lab import api, chromium, free_port, output, start_lab, wait_for_url, without_upstream_races
from waiting import wait_for

pytestmark = pytest.mark.skipif("1" in (os.environ.get("HLSFLOW_IN_IMAGE"), os.environ.get("HLSFLOW_NATIVE")),
                                reason="a host test: it starts the image's containers and a browser")

NOTEBOOK = "hlsflow_example.ipynb"
RUN_BOUND = 300  # seconds for Run All: about a minute on a quiet 2-core machine, the g++ build included


def cells(page) -> list:
    """(prompt, output text, error outputs) of every code cell, as the page shows them. The text
    is the DOM's (textContent): cells scrolled out of view are skipped by the browser's painting
    (content-visibility), not left out of the page."""
    return page.evaluate("""() => [...document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell')].map(cell => {
        const prompt = cell.querySelector('.jp-InputArea-prompt');
        const outputs = [...cell.querySelectorAll('.jp-OutputArea-output')];
        return [prompt ? prompt.textContent.trim() : '',
                outputs.map(o => o.textContent).join('\\n'),
                // an error output: IPython's traceback, in the stderr renderer streams also use
                outputs.filter(o => o.getAttribute('data-mime-type') === 'application/vnd.jupyter.stderr'
                                    && /Traceback|^\\s*-{20,}/m.test(o.textContent)).map(o => o.textContent)];
    })""")


def kernel_idle(port, token) -> bool:
    code, kernels = api(port, token, "GET", "/api/kernels")
    if code == 500:  # jupyter_server answers so while a kernel starts (its last_activity still None)
        return False
    assert code == 200, kernels
    assert all(k["execution_state"] not in ("dead", "restarting") for k in kernels), kernels
    return len(kernels) == 1 and kernels[0]["execution_state"] == "idle"


def finished(page, port, token):
    """Every cell as the page shows it once all ran: each prompt numbered (a queued or running cell
    shows [*]) and the kernel idle; None before. An error output fails at once (Run All stops there)."""
    shown = cells(page)
    errors = [e for _, _, found in shown for e in found]
    assert not errors, errors[0][-3000:]
    if all(re.fullmatch(r"\[\d+\]:", p) for p, _, _ in shown) and kernel_idle(port, token):
        return shown
    return None


def test_run_all_in_the_browser(docker_client, built_image, tmp_path):
    from playwright.sync_api import sync_playwright

    browser_path = chromium()
    folder = tmp_path / "project"
    folder.mkdir()
    proc = start_lab(folder, "--example", "--no-browser", "--port", str(free_port()), HLSFLOW_IMAGE=built_image)
    try:
        url, port, token = wait_for_url(lambda: output(proc), proc)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=browser_path, args=["--no-sandbox", "--disable-gpu"])
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                # On a busy machine the page may miss its theme's stylesheet and say so in a dialog
                # over the page: it is dismissed (the look, not the notebook); any other dialog stays
                # in the way and fails the test.
                theme_error = page.locator('.jp-Dialog[aria-label^="Error Loading Theme"]')
                page.add_locator_handler(theme_error, lambda dialog: dialog.locator(".jp-Dialog-button").first.click())
                page.goto(url.replace("/lab?", f"/lab/tree/{NOTEBOOK}?"), timeout=120_000)
                page.wait_for_selector(".jp-NotebookPanel .jp-CodeCell", timeout=120_000)
                wait_for(lambda: kernel_idle(port, token), 120, "the notebook's kernel, started and idle")
                page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
                page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
                shown = wait_for(lambda: finished(page, port, token), RUN_BOUND,
                                 "Run All to finish (every prompt numbered, the kernel idle)", every=1)
                if os.environ.get("HLSFLOW_NOTEBOOK_SCREENSHOT"):
                    page.screenshot(path=os.environ["HLSFLOW_NOTEBOOK_SCREENSHOT"])
            finally:
                browser.close()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)

    bundled = json.loads((Path(__file__).resolve().parents[2] / "examples" / "notebooks" / "reference.ipynb").read_text())
    assert len(shown) == sum(c["cell_type"] == "code" for c in bundled["cells"]) >= 14, len(shown)
    assert [e for _, _, found in shown for e in found] == []
    text = "\n".join(t for _, t, _ in shown)
    for said in ("(the bundled reference model's config)",
                 "hls4ml's C++ predict equals hlsflow.emulate bit for bit on 10 samples: True",
                 "equals hls4ml's C++ predict above bit for bit: True",
                 "Vivado HLS 2020.1 on xc7z020-clg400-1: another design's real report"):
        assert said in text, (said, text[-3000:])
    assert proc.returncode == 128 + signal.SIGINT, output(proc)[-3000:]
    log = without_upstream_races(proc.logs[1].read_text())
    assert "Traceback" not in log, log[-3000:]
    assert containers_of(docker_client, folder) == []
    # What the notebook wrote, in the folder it ran in: the project and the copied report's figures.
    assert (folder / "build" / "notebook" / "manifest.json").is_file()
    assert (folder / "synthesised_example" / "report.json").is_file()
