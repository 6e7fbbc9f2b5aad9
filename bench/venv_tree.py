"""`python bench/venv_tree.py`: do two builds of one commit give the same /opt/venv?

Builds the image twice with no layer cache, from this checkout's commit on this machine (the same
Debian base and wheelhouse: what a rebuild would use), and computes a tree hash of /opt/venv in
each: every entry's path, type and mode, with a file's sha256 or a symlink's target, sorted. The
two are printed side by side, with whether they match and, when they do not, which files differ.
`--images A B` compares two images already built instead. Writes bench/results/venv-tree-<date>.md.
"""

import datetime
import hashlib
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hlsflow import console  # noqa: E402
from hlsflow.errors import FlowError  # noqa: E402

# Run with the image's own /usr/bin/python3 (never /opt/venv's, which is what is measured): one
# line per entry, "path<TAB>type mode<TAB>sha256 or link target<TAB>pyc kind".
LISTING = r"""
import hashlib, os, stat, sys
root = "/opt/venv"
PYC = {0: "timestamp", 1: "unchecked-hash", 3: "checked-hash"}
for dirpath, dirnames, filenames in os.walk(root):
    dirnames.sort()
    for name in sorted(dirnames + filenames):
        path = os.path.join(dirpath, name)
        st = os.lstat(path)
        mode = oct(stat.S_IMODE(st.st_mode))
        kind = ""
        if stat.S_ISLNK(st.st_mode):
            what, value = "l", os.readlink(path)
        elif stat.S_ISDIR(st.st_mode):
            what, value = "d", ""
        else:
            with open(path, "rb") as f:
                data = f.read()
            what, value = "f", hashlib.sha256(data).hexdigest()
            if name.endswith(".pyc"):
                kind = PYC.get(int.from_bytes(data[4:8], "little"), "other")
        sys.stdout.write(f"{os.path.relpath(path, root)}\t{what} {mode}\t{value}\t{kind}\n")
"""


def git_head() -> str:
    def git(*args):
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()

    return git("rev-parse", "--short", "HEAD") + (" (uncommitted changes)" if git("status", "--porcelain",
                                                                                    "--", "docker") else "")


def build(tag: str) -> tuple[str, float]:
    from hlsflow.image import build as image

    start = time.monotonic()
    ref = image.build_image(tag=tag, no_cache=True)
    return ref, time.monotonic() - start


def listing(image: str) -> dict[str, tuple]:
    """path -> (type and mode, sha256 or link target, pyc kind) of /opt/venv in `image`."""
    from hlsflow.image.containers import docker_client

    client = docker_client()
    out = client.containers.run(image, ["-c", LISTING], entrypoint=["/usr/bin/python3"],
                                network_mode="none", remove=True, stdout=True, stderr=False)
    entries = {}
    for line in out.decode().splitlines():
        path, mode, value, kind = line.split("\t")
        entries[path] = (mode, value, kind)
    return entries


def remove_tags(names) -> None:
    """Drop the tags this script made: a no-cache build shares no layer, so each is a full image
    (hlsflow:latest, which the last build also tagged, keeps it)."""
    from hlsflow.image.containers import docker_client

    client = docker_client()
    for name in names:
        client.images.remove(name)


def tree_hash(entries: dict) -> str:
    digest = hashlib.sha256()
    for path in sorted(entries):
        mode, value, _ = entries[path]
        digest.update(f"{path}\0{mode}\0{value}\n".encode())
    return digest.hexdigest()


def compare(a: dict, b: dict) -> list[tuple]:
    """(path, what differs) for every entry that is not the same in both."""
    rows = []
    for path in sorted(a.keys() | b.keys()):
        if path not in a or path not in b:
            rows.append((path, "only in B" if path not in a else "only in A"))
        elif a[path][0] != b[path][0]:
            rows.append((path, f"mode {a[path][0]} vs {b[path][0]}"))
        elif a[path][1] != b[path][1]:
            kinds = {a[path][2], b[path][2]} - {""}
            rows.append((path, "content" + (f" ({'/'.join(sorted(kinds))} .pyc)" if kinds else "")))
    return rows


def report(names, times, entries) -> tuple[str, bool]:
    a, b = entries
    hashes = [tree_hash(e) for e in entries]
    same = hashes[0] == hashes[1]

    def count(e, pred):
        return f"{sum(1 for v in e.values() if pred(v)):,}"

    rows = [
        ("image", names[0], names[1], ""),
        ("no-cache build", *(f"{t:.0f} s" if t is not None else "not built here" for t in times), ""),
        ("/opt/venv tree hash", hashes[0][:16], hashes[1][:16], "match" if same else "DIFFER"),
        ("files", count(a, lambda v: v[0][0] == "f"), count(b, lambda v: v[0][0] == "f"), ""),
        ("symlinks", count(a, lambda v: v[0][0] == "l"), count(b, lambda v: v[0][0] == "l"), ""),
    ]
    for kind in sorted({v[2] for e in entries for v in e.values()} - {""}):
        rows.append((f".pyc files, {kind}", count(a, lambda v: v[2] == kind), count(b, lambda v: v[2] == kind), ""))
    text = console.table(["figure", "build A", "build B", ""], rows)
    differing = compare(a, b)
    if differing:
        by_package = Counter(p.split("/")[3] if p.startswith("lib/python3.11/site-packages/") and p.count("/") > 3
                             else p for p, _ in differing)
        text += (f"\n\n{len(differing):,} entries differ; by package: "
                 + ", ".join(f"{name} {n}" for name, n in by_package.most_common()) + "\n\n"
                 + console.table(["entry", "difference"], differing[:40])
                 + (f"\n(and {len(differing) - 40:,} more)" if len(differing) > 40 else ""))
    return text, same


def main(argv) -> int:
    date = datetime.date.today().isoformat()
    if argv[:1] == ["--images"] and len(argv) == 3:
        names, times = argv[1:3], [None, None]
        source = "two images given on the command line"
    else:
        names, times = [], []
        for letter in "ab":
            console.step(f"venv-tree: no-cache build {letter.upper()}")
            ref, took = build(f"hlsflow:venv-tree-{letter}")
            names.append(ref)
            times.append(took)
        source = f"two no-cache builds of commit {git_head()} on this machine"
    entries = []
    for name in names:
        console.step(f"venv-tree: hashing /opt/venv of {name}")
        entries.append(listing(name))
    if times[0] is not None:
        remove_tags(names)
    table, same = report(names, times, entries)
    text = (f"# /opt/venv of {source}, {date}\n\n{table}\n\n"
            f"{'The two venvs are byte-identical.' if same else 'The two venvs differ.'} Tree hash: every "
            "entry's path, type and mode, a file's sha256 or a symlink's target, sorted; mtimes left out.\n")
    console.say(text)
    results = REPO / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / f"venv-tree-{date}.md").write_text(text)
    return 0 if same else 1


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except FlowError as exc:
        console.error(str(exc))
        sys.exit(exc.exit_code)
