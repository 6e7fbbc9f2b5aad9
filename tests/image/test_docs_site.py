"""The documentation site (mkdocs.yml), as a reader gets it: built with MkDocs `--strict` into a
temporary folder (any warning fails it: a dead link or anchor in a page, a page left out of the
navigation), then every link and anchor inside the built HTML followed, theme's included; the
config reference names every key of hlsflow/config.schema.json, and the tasks page every task.

A host test: MkDocs and its Material theme come from the host lock (.venv-host)."""

import json
import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif("1" in (os.environ.get("HLSFLOW_IN_IMAGE"), os.environ.get("HLSFLOW_NATIVE")),
                                reason="a host test: MkDocs is in the host's tools, not in the image")


class Page(HTMLParser):
    """The ids (anchors) a built page has and the links (href, src) it makes."""

    def __init__(self):
        super().__init__()
        self.ids, self.links = set(), []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("id", "name") if tag == "a" else ("id",):
            if attrs.get(name):
                self.ids.add(attrs[name])
        for name in ("href", "src"):
            if attrs.get(name) is not None:
                self.links.append(attrs[name])


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def dead_links(site: Path) -> list:
    """Every link between the built files that leads to no file, or to no such anchor in it."""
    pages = {path: parse(path) for path in site.rglob("*.html")}
    dead = []
    for path, page in pages.items():
        for link in page.links:
            url = urlsplit(link)
            if url.scheme or url.netloc or link.startswith(("mailto:", "data:", "javascript:")):
                continue  # the outside world: not this site's to check offline
            # An absolute path is the site's own (404.html's links are: it is served at any depth).
            base = site if url.path.startswith("/") else path.parent
            target = (base / unquote(url.path).lstrip("/")).resolve() if url.path else path
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file() or site.resolve() not in [target, *target.parents]:
                dead.append(f"{path.relative_to(site)}: {link} (no such file)")
            elif url.fragment and target.suffix == ".html" and url.fragment not in pages[target].ids:
                dead.append(f"{path.relative_to(site)}: {link} (no such anchor)")
    return dead


def schema_keys(node) -> set:
    """Every key name a config may hold, wherever it sits in the schema."""
    keys = set()
    if isinstance(node, dict):
        keys |= set(node.get("properties", {}))
        for value in node.values():
            keys |= schema_keys(value)
    elif isinstance(node, list):
        for value in node:
            keys |= schema_keys(value)
    return keys


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    into = tmp_path_factory.mktemp("site")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(into)], cwd=REPO,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"}, capture_output=True, text=True, timeout=300)
    warnings = [line for line in proc.stderr.splitlines() if line.startswith(("WARNING", "ERROR"))]
    assert proc.returncode == 0 and not warnings, proc.stderr[-4000:]
    return into


def test_the_site_builds_and_every_link_and_anchor_leads_somewhere(site):
    pages = sorted(p.relative_to(site).as_posix() for p in site.rglob("index.html"))
    # The README as home, every docs/*.md, the pages made at build time, the dated results
    expected = {"index.html", "tasks/index.html", "config/index.html", "benchmarks/index.html",
                *(f"{p.stem}/index.html" for p in (REPO / "docs").glob("*.md")),
                *(f"bench/results/{p.stem}/index.html" for p in (REPO / "bench" / "results").glob("*.md"))}
    assert expected <= set(pages), expected - set(pages)
    links = sum(len(parse(p).links) for p in site.rglob("*.html"))
    assert links > 500, links
    assert dead_links(site) == []


def test_the_config_reference_names_every_key_of_the_schema(site):
    schema = json.loads((REPO / "hlsflow" / "config.schema.json").read_text())
    keys = schema_keys(schema)
    assert {"KerasModel", "HLSConfig", "ReuseFactor", "min_agreement", "recurrent_bias"} <= keys
    page = (site / "config" / "index.html").read_text()
    assert sorted(k for k in keys if f"<code>{k}</code>" not in page) == []


def test_the_tasks_page_names_every_task(site):
    from hlsflow.cli.tasks import USER_TASKS

    page = parse(site / "tasks" / "index.html")
    assert {t.name.replace("_", "-") for t in USER_TASKS} <= page.ids
    assert len(USER_TASKS) >= 20
