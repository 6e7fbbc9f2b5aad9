"""MkDocs hooks of the documentation site (mkdocs.yml): the pages that are made, not written.

- `index.md` is the README (the front door on GitHub is the site's home too);
- `tasks.md` lists every task with its flags, from the tasks' own definitions (hlsflow/cli/tasks.py);
- `config.md` is the config reference, from hlsflow/config.schema.json;
- `bench/results/*.md` are the dated measurements, listed at the end of the benchmarks page.

The Markdown sources link to each other as files of the repository (`../README.md`,
`../bench/results/x.md`, `docs/x.md`), so that they read the same on GitHub; here those links are
turned into links between the site's pages. A link to any other file of the repository is left as
it is, and `mkdocs build --strict` fails on it.
"""

import inspect
import json
import posixpath
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

README = ROOT / "README.md"
SCHEMA = ROOT / "hlsflow" / "config.schema.json"
RESULTS = ROOT / "bench" / "results"


# ------------------------------------------------------------------ pages that are made

def on_files(files, config):
    from mkdocs.structure.files import File

    files.append(File.generated(config, "index.md", abs_src_path=str(README)))
    files.append(File.generated(config, "tasks.md", content=tasks_page()))
    files.append(File.generated(config, "config.md", content=config_page()))
    for path in sorted(RESULTS.glob("*.md")):
        files.append(File.generated(config, f"bench/results/{path.name}", abs_src_path=str(path)))
    return files


def tasks_page() -> str:
    if str(ROOT) not in sys.path:  # this checkout's hlsflow, installed or not (MkDocs loads hooks by path)
        sys.path.insert(0, str(ROOT))
    from hlsflow.cli.tasks import USER_TASKS

    lines = ["# Every task and its flags", "",
             "Made from the tasks' own definitions (`hlsflow/cli/tasks.py`) when the site is built: what "
             "`hlsflow TASK --help` says. `hlsflow TASK`, `invoke TASK` in a checkout and "
             "`docker run ... IMAGE TASK` run the same tasks. What each does at length: "
             "[the reference](reference.md#the-tasks).", ""]
    for task in USER_TASKS:
        name = task.name.replace("_", "-")
        lines += [f"## {name}", "", _text(inspect.cleandoc(task.__doc__ or "")), ""]
        arguments = task.get_arguments()
        if not arguments:
            continue
        lines += ["| flag | default | what it does |", "|---|---|---|"]
        for arg in arguments:
            flag = arg.names[0] if arg.positional else " ".join(
                f"`--{n}`" if len(n) > 1 else f"`-{n}`" for n in arg.names)
            if arg.positional:
                flag = f"`{flag.upper()}` (positional)"
            default = "" if arg.default in (None, False) else f"`{arg.default}`"
            lines.append(f"| {flag} | {default} | {_cell(arg.help or '')} |")
        lines.append("")
    return "\n".join(lines)


def _cell(text: str) -> str:
    return _text(" ".join(text.split())).replace("|", "\\|")


def _text(text: str) -> str:
    """Text as Markdown shows it: `<` outside code spans is not the start of an HTML tag."""
    parts = text.split("`")
    return "`".join(p if i % 2 else p.replace("<", "&lt;") for i, p in enumerate(parts))


def config_page() -> str:
    """One table per mapping of the schema, each key with its type, values and description; a
    mapping reached from several places (a layer's settings, a precision's parts) once."""
    schema = json.loads(SCHEMA.read_text())
    sections = {"top": ([""], None)}  # id -> (the places it is reached at, its table), in order
    queue = [("", "top", schema)]
    while queue:
        path, ident, node = queue.pop(0)
        entries = list(node.get("properties", {}).items())
        if isinstance(node.get("additionalProperties"), dict):
            entries.append((None, node["additionalProperties"]))
        table = ["| key | type | what it is |", "|---|---|---|"]
        for key, sub in entries:
            place = f"{path}.{key or 'NAME'}".strip(".")
            kind, target = _kind(schema, sub), _object(schema, sub)
            if target is not None:
                inner = _ref_name(sub) or place
                if inner in sections or any(inner == queued for _, queued, _ in queue):
                    sections.setdefault(inner, ([], None))[0].append(place)
                else:
                    sections[inner] = ([place], None)
                    queue.append((place, inner, target))
                kind += f" ([its keys](#{_anchor(inner)}))"
            shown = f"`{key}`" if key else "*any name* (a layer's or a layer type's)"
            table.append(f"| {shown} | {kind} | {_cell(_describe(schema, sub))} |")
        places = sections.get(ident, ([path], None))[0]
        sections[ident] = (places, table)
    lines = ["# The config file", "",
             "Made from `hlsflow/config.schema.json` when the site is built: every key a config may hold. "
             "A config is hls4ml's own YAML schema plus hlsflow's `Flow` section. hlsflow checks it against "
             "this schema before anything runs, so an unknown key or a wrong type is one sentence; `hlsflow "
             "init` writes a starter config with a comment on every knob. Relative paths in a config are "
             "relative to the config file.", ""]
    for ident, (places, table) in sections.items():
        title = places[0] or "The top level"
        lines += [f"## {title} {{#{_anchor(ident)}}}", ""]
        if len(places) > 1:
            lines += ["Also at " + ", ".join(f"`{p}`" for p in places[1:]) + ".", ""]
        lines += [*table, ""]
    return "\n".join(lines)


def _resolve(schema, node):
    while "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
    return node


def _ref_name(node):
    return node["$ref"].rsplit("/", 1)[1] if "$ref" in node else None


def _anchor(name: str) -> str:
    return "cfg-" + "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


def _object(schema, node):
    """The mapping (with keys of its own) this value may be, else None."""
    node = _resolve(schema, node)
    if "properties" in node or isinstance(node.get("additionalProperties"), dict):
        return node
    for alternative in node.get("oneOf", []):
        found = _object(schema, alternative)
        if found is not None:
            return found
    return None


def _kind(schema, node) -> str:
    node = _resolve(schema, node)
    if "enum" in node:
        return "one of " + ", ".join(f"`{v}`" for v in node["enum"])
    if "oneOf" in node:
        return " or ".join(_kind(schema, alt) for alt in node["oneOf"])
    kinds = node.get("type", "any")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    words = {"object": "mapping", "null": "null (unset)", "array": "list"}
    text = " or ".join(words.get(k, k) for k in kinds)
    limits = [f"{word} {node[key]}" for key, word in (("minimum", ">="), ("exclusiveMinimum", ">"),
                                                         ("maximum", "<=")) if key in node]
    if "pattern" in node:
        limits.append(f"matching `{node['pattern']}`")
    return f"{text}, {', '.join(limits)}" if limits else text


def _describe(schema, node) -> str:
    """The key's own description, else that of what it refers to (a precision, a ReuseFactor...)."""
    if "description" in node:
        return node["description"]
    resolved = _resolve(schema, node)
    if "description" in resolved:
        return resolved["description"]
    for alternative in resolved.get("oneOf", []):
        text = _describe(schema, alternative)
        if text:
            return text
    return ""


# ------------------------------------------------------------------ links between the pages

def _repo_path(src_uri: str) -> str:
    """The repository file a page of the site comes from."""
    if src_uri == "index.md":
        return "README.md"
    if src_uri.startswith("bench/results/"):
        return src_uri
    return f"docs/{src_uri}"


def _site_path(repo_path: str):
    """The site's page for a repository file, or None when the site has none."""
    if repo_path == "README.md":
        return "index.md"
    if repo_path.startswith("bench/results/") and repo_path.endswith(".md"):
        return repo_path
    if repo_path.startswith("docs/"):
        return repo_path[len("docs/"):]
    return None


def on_page_markdown(markdown, page, config, files):
    here = _repo_path(page.file.src_uri)
    if page.file.src_uri == "benchmarks.md":
        markdown += "\n## Every result\n\n" + "".join(
            f"- [{path.stem}](../bench/results/{path.name})\n" for path in sorted(RESULTS.glob("*.md")))

    def relink(match):
        target = match.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            return match.group(0)
        file, hash_, anchor = target.partition("#")
        site = _site_path(posixpath.normpath(posixpath.join(posixpath.dirname(here), file)))
        if site is None:
            return match.group(0)
        link = posixpath.relpath(site, posixpath.dirname(page.file.src_uri) or ".")
        return f"{match.group(1)}({link}{hash_}{anchor})"

    return re.sub(r"(\]\s?)\(([^)\s]+)\)", relink, markdown)
