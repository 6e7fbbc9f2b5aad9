"""The front door and the documents behind it: the README stays short, and every link in them
leads somewhere (a file of this repository, and a heading in it when the link names one)."""

import re
from pathlib import Path

from conftest import REPO_ROOT

DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set:
    found, fenced = set(), False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            found.add(slug(line.lstrip("#")))
    return found


def test_the_readme_is_a_short_front_door():
    lines = (REPO_ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 220, len(lines)
    assert "make flow" in lines[lines.index("```sh") + 1] and "make test" in lines[lines.index("```sh") + 2]


def test_every_link_leads_somewhere():
    checked, broken = 0, []
    for doc in DOCS:
        for target in LINK.findall(doc.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            file, _, anchor = target.partition("#")
            path = (doc.parent / file).resolve() if file else doc
            checked += 1
            if not path.exists():
                broken.append(f"{doc.name}: {target} (no such file)")
            elif anchor and anchor not in anchors(path):
                broken.append(f"{doc.name}: {target} (no such heading)")
    assert checked >= 10, checked  # the README alone links to every document
    assert not broken, broken
