"""The bench scripts against today's hlsflow, without running them: each module under bench/
imports, and every call it makes into hlsflow (or into another bench module) names something
that exists and binds to its signature. `invoke bench` runs rarely and takes many minutes, so a
renamed or re-signed function would otherwise surface only at its next run. Static: seconds.

Binding alone misses a signature that changed meaning but not arity (build_library(out_dir,
project_name) became build_library(cfg, project)), so where an argument's type is plain from the
script (a literal, a config field, what an annotated hlsflow function returns) it is compared
with the parameter's annotation too."""

import ast
import dataclasses
import importlib
import inspect
import re
import sys
import types
import typing
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

CHECKED = ("hlsflow", "bench")  # the packages whose names are resolved and checked
SCRIPTS = sorted(BENCH.glob("*.py"))
# Scopes of their own: their imports and assignments do not reach the code around them.
SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


def module_name(path: Path) -> str:
    return "bench" if path.stem == "__init__" else f"bench.{path.stem}"


def _checked(module: str) -> bool:
    return module.split(".")[0] in CHECKED


def _own_nodes(scope):
    """The nodes of one scope, without descending into nested scopes (their headers excepted:
    a nested function's name and defaults belong to this scope)."""
    todo = list(scope.body) if isinstance(scope.body, list) else [scope.body]
    while todo:
        node = todo.pop()
        yield node
        if isinstance(node, SCOPES):
            header = [*node.decorator_list] if not isinstance(node, ast.Lambda) else []
            if not isinstance(node, ast.ClassDef):
                header += [*node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)]
            todo.extend(header)
        else:
            todo.extend(ast.iter_child_nodes(node))


def _hints(obj) -> dict:
    try:
        return typing.get_type_hints(obj.__init__ if inspect.isclass(obj) else obj)
    except Exception:  # an annotation that does not evaluate: nothing to compare with
        return {}


def _classes(annotation) -> tuple:
    """The classes an annotation accepts (several for a union), or () when it says nothing plain."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return tuple(c for member in typing.get_args(annotation) for c in _classes(member))
    if origin is not None:
        return (origin,) if inspect.isclass(origin) else ()  # dict[str, int] -> dict
    return (annotation,) if inspect.isclass(annotation) else ()


def _one_class(annotation):
    classes = _classes(annotation)
    return classes[0] if len(classes) == 1 else None


def _fits(arg, accepted) -> bool:
    return issubclass(arg, accepted) or (accepted is float and arg is int)


def _params(scope) -> set:
    if isinstance(scope, (ast.Module, ast.ClassDef)):
        return set()
    a = scope.args
    return {x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg) if x is not None}


@dataclasses.dataclass(frozen=True)
class _Marker:
    index: int  # which argument of the call it stands for


class Checker:
    """Walks one file scope by scope, binding each imported name of a checked package to its
    object, and records what does not resolve or bind as "file:line: problem"."""

    def __init__(self, path: Path, source: str = None):
        self.path = path
        self.tree = ast.parse(source if source is not None else path.read_text(), str(path))
        self.problems = []
        self.calls = 0  # calls checked against a signature: a test that checks nothing proves nothing

    def problem(self, node, text: str) -> None:
        entry = f"{self.path.name}:{node.lineno}: {text}"
        if entry not in self.problems:
            self.problems.append(entry)

    def run(self) -> "Checker":
        self.scope(self.tree, {})
        self.problems.sort(key=lambda p: int(p.split(":")[1]))
        return self

    def imported(self, node) -> dict:
        """Local name -> object for one import of a checked package; absent names are problems."""
        bound = {}
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _checked(alias.name):
                    obj = self.load(node, alias.name)
                    # `import a.b` binds `a`; `import a.b as c` binds the submodule
                    bound[alias.asname or alias.name.split(".")[0]] = (
                        obj if alias.asname else self.load(node, alias.name.split(".")[0]))
        elif node.level == 0 and node.module and _checked(node.module):
            module = self.load(node, node.module)
            for alias in node.names:
                if alias.name == "*" or module is None:
                    continue
                if hasattr(module, alias.name):
                    obj = getattr(module, alias.name)
                else:  # a submodule nothing has imported yet
                    obj = self.load(node, f"{node.module}.{alias.name}", quiet=True)
                    if obj is None:
                        self.problem(node, f"cannot import {alias.name} from {node.module}")
                bound[alias.asname or alias.name] = obj
        return bound

    def load(self, node, name: str, quiet: bool = False):
        try:
            return importlib.import_module(name)
        except ImportError as exc:
            if not quiet:
                self.problem(node, f"cannot import {name}: {exc}")
            return None

    def scope(self, scope, outer: dict, outer_types: dict = None) -> None:
        nodes = list(_own_nodes(scope))
        imports, local, stores, assigns = {}, _params(scope), Counter(), []
        for node in nodes:
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                stores[node.id] += 1
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                assigns.append(node)
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                imports.update(self.imported(node))
            elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
                local.add(node.id)
            elif isinstance(node, SCOPES) and not isinstance(node, ast.Lambda):
                local.add(node.name)
            elif isinstance(node, ast.ExceptHandler) and node.name:
                local.add(node.name)
        # A name a scope assigns is its own for the whole scope: it hides the outer import.
        names = {k: v for k, v in outer.items() if k not in local}
        names.update(imports)
        # A name assigned once in this scope has the type of its value, when that is plain.
        kinds = {k: v for k, v in (outer_types or {}).items() if k not in local}
        for node in sorted(assigns, key=lambda n: n.lineno):
            name = node.targets[0].id
            if stores[name] == 1 and name not in imports:
                kinds[name] = self.typeof(node.value, names, kinds)
        for node in nodes:
            if isinstance(node, ast.Call):
                self.call(node, names, kinds)
            elif isinstance(node, ast.Attribute):
                self.resolve(node, names)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                self.script_path(node)
            if isinstance(node, SCOPES):
                self.scope(node, names, kinds)

    def resolve(self, node, names: dict):
        """The object `a.b.c` names when `a` is a checked import, else None (nothing to check)."""
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node)
            node = node.value
        if not isinstance(node, ast.Name) or names.get(node.id) is None:
            return None
        obj, where = names[node.id], node.id
        for attr in reversed(parts):
            if not hasattr(obj, attr.attr):
                self.problem(attr, f"{where}.{attr.attr} does not exist "
                                   f"({getattr(obj, '__name__', type(obj).__name__)} has no {attr.attr})")
                return None
            obj, where = getattr(obj, attr.attr), f"{where}.{attr.attr}"
        return obj

    def typeof(self, expr, names: dict, kinds: dict):
        """The class of what `expr` evaluates to, where the script makes it plain; else None."""
        if isinstance(expr, ast.Constant):
            return type(expr.value) if expr.value is not None else None
        if isinstance(expr, ast.JoinedStr):
            return str
        if isinstance(expr, ast.Name):
            return kinds.get(expr.id)
        if isinstance(expr, ast.Attribute):  # a field of a dataclass, e.g. cfg.project_name
            owner = self.typeof(expr.value, names, kinds)
            if owner is not None and dataclasses.is_dataclass(owner):
                return _one_class(_hints(owner).get(expr.attr))
            return None
        if isinstance(expr, ast.Call):
            obj = self.resolve(expr.func, names)
            if inspect.isclass(obj):
                return obj
            return _one_class(_hints(obj).get("return")) if callable(obj) else None
        return None

    def call(self, node: ast.Call, names: dict, kinds: dict) -> None:
        obj = self.resolve(node.func, names)
        if obj is None:
            return
        what = ast.unparse(node.func)
        if not callable(obj):
            self.problem(node, f"{what} is called but is a {type(obj).__name__}")
            return
        try:
            signature = inspect.signature(obj)
        except (TypeError, ValueError):  # a builtin without one: existence is all we can check
            return
        self.calls += 1
        # One marker per argument, so that binding says which parameter each one lands on.
        # *args or **kwargs hide how many there are: then only what is named is bound.
        unknown = any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords)
        given = [a for a in node.args if not isinstance(a, ast.Starred)]
        given += [k.value for k in node.keywords if k.arg is not None]
        markers = [_Marker(i) for i in range(len(given))]
        n_pos = sum(not isinstance(a, ast.Starred) for a in node.args)
        named = dict(zip((k.arg for k in node.keywords if k.arg is not None), markers[n_pos:]))
        try:
            bound = (signature.bind_partial if unknown else signature.bind)(*markers[:n_pos], **named)
        except TypeError as exc:
            self.problem(node, f"{ast.unparse(node)} does not fit {what}{signature}: {exc}")
            return
        hints = _hints(obj)
        for param, value in bound.arguments.items():
            if not isinstance(value, _Marker):  # a *args tuple or **kwargs dict
                continue
            accepted = _classes(hints.get(param))
            arg = self.typeof(given[value.index], names, kinds)
            if arg is not None and accepted and not any(_fits(arg, c) for c in accepted):
                self.problem(node, f"{ast.unparse(node)}: {param} gets a {arg.__name__}, but {what}{signature} "
                                   f"takes {' or '.join(c.__name__ for c in accepted)}")

    def script_path(self, node) -> None:
        # One bench script runs another by path (in a container or a child process).
        for rel in re.findall(r"\bbench/\w+\.py\b", node.value):
            if not (REPO / rel).is_file():
                self.problem(node, f"{rel} is run but does not exist")


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_bench_module_imports(path):
    module = importlib.import_module(module_name(path))
    assert Path(module.__file__).resolve() == path.resolve(), f"{module_name(path)} is not this checkout's"


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_bench_calls_fit_hlsflow(path):
    checker = Checker(path).run()
    assert not checker.problems, "\n".join(checker.problems)


def test_bench_calls_are_checked():
    # Guards the checker itself: the scripts call hlsflow in dozens of places.
    assert sum(Checker(p).run().calls for p in SCRIPTS) >= 20


def entry_points() -> list:
    """The files outside bench/ that import it (the `invoke bench` task)."""
    found = []
    for path in sorted([*(REPO / "hlsflow").rglob("*.py"), REPO / "tasks.py"]):
        text = path.read_text()
        if re.search(r"^\s*(from|import) bench\b", text, re.M):
            found.append(path)
    return found


def test_invoke_bench_calls_fit_bench():
    paths = entry_points()
    assert paths, "no task imports bench/: where did `invoke bench` go?"
    for path in paths:
        checker = Checker(path).run()
        assert not checker.problems, "\n".join(checker.problems)
        assert checker.calls, f"{path.name} imports bench but no call into it was checked"


def test_checker_catches_wrong_calls(tmp_path):
    source = (
        "from hlsflow.state import outdir\n"
        "from hlsflow.config import load_config\n"
        "def f(cfg):\n"
        "    outdir.require_project(cfg, 1)\n"           # one argument too many
        "    outdir.no_such_function(cfg)\n"             # gone
        "    load_config(nonsense=1)\n"                  # a keyword it does not take
        "    from hlsflow.emulator import no_such_module\n"
        "def g(outdir):\n"
        "    outdir.anything()\n"                        # a parameter, not the import: not checked
        "def h():\n"
        "    outdir.emulation_library('o', 'p', 's')\n"  # fits
        "    subprocess.run(['python', 'bench/no_such_script.py'])\n")
    problems = Checker(tmp_path / "fake.py", source).run().problems
    assert [p.split(":")[1] for p in problems] == ["4", "5", "6", "7", "12"], "\n".join(problems)


def test_checker_catches_same_arity_wrong_meaning(tmp_path):
    # The call bench/flow_figures.py made after build_library's signature changed.
    source = (
        "from hlsflow.config import load_config\n"
        "from hlsflow.emulator import cpp\n"
        "from hlsflow.state import outdir\n"
        "cfg = load_config(out='x')\n"
        "cpp.build_library(cfg.output_dir, cfg.project_name, None)\n"
        "cpp.build_library(cfg, outdir.require_project(cfg), outdir.Caches(cfg.output_dir))\n"  # fits
        "cpp.run_emulation('lib', f'{cfg.project_name}_float', None, 10, 4)\n"  # fits
        "cpp.run_emulation('lib', 'f', None, '10', 4)\n")
    problems = Checker(tmp_path / "fake.py", source).run().problems
    assert [p.split(":")[1] for p in problems] == ["5", "8"], "\n".join(problems)
    assert "project gets a str" in problems[0] and "n_out gets a str" in problems[1]


def _rows(text: str) -> list:
    """The table's rows as (figure, ours, goal), the header and its rule left out."""
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("|")]
    return [(row[0], row[1], row[4]) for row in cells[2:]]


@pytest.mark.parametrize("skipped", ["not measured: --skip-image", {"error": "no engine"}])
def test_bench_table_renders_what_was_not_measured(skipped):
    # The last step of a run that took many minutes: `invoke bench --skip-image` once failed here.
    from bench import run

    figures = {"machine": "test", "date": "today", "flow": {}, "noop": {"error": "no image"},
               "image": skipped if isinstance(skipped, str) else "not measured: no engine", "dispatch": skipped}
    dispatch = skipped if isinstance(skipped, str) else "not measured: no engine"  # an error becomes a sentence
    assert _rows(run.render(figures)) == [("No-op re-run", "not measured: no image", ""),
                                          ("Image", figures["image"], ""),
                                          ("Host dispatch overhead", dispatch, "")]


def test_bench_table_measures_against_its_goals():
    """Figures on both sides of each image goal: the table's verdicts are its own arithmetic."""
    from bench import run

    def image(size, tarball, rebuild, cached):
        return {"machine": "test", "date": "today", "flow": {}, "image": {
            "image_bytes": size, "tarball_bytes": tarball, "rebuild_s": rebuild, "cached_rebuild_s": cached}}

    met = _rows(run.render(image(1.5e9, 590e6, 14.0, 119.0)))
    missed = _rows(run.render(image(1.7e9, 610e6, 16.0, 121.0)))
    assert met == [("Image size", "1.50 GB", "<= 1.6 GB: goal met"),
                   ("Saved tarball (gzip)", "590 MB", "<= 600 MB: goal met"),
                   ("Rebuild after a one-line code change", "14.0 s", "<= 15 s: goal met"),
                   ("Rebuild with nothing changed (every layer cached)", "119.0 s", "< 120 s: goal met")]
    assert [goal for *_, goal in missed] == ["<= 1.6 GB: goal MISSED", "<= 600 MB: goal MISSED",
                                             "<= 15 s: goal MISSED", "< 120 s: goal MISSED"]
