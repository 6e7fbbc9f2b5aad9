"""The shape of the package that issue 40 asks for, read from the source: no module over 450 lines
(a module that grows past it is split by job), no import loop, and the emulator and csim's stage
never enter state/ (the runner hands them a records.Caches and records what they return)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "hlsflow"
LIMIT = 450
OVER_ON_PURPOSE: set = set()  # none today; a module named here says in a comment why it is


def _imported(path: Path) -> set:
    """The hlsflow modules a file imports, as dotted names under hlsflow (relative imports resolved)."""
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = ".".join(base + (node.module.split(".") if node.module else []))
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("hlsflow")}


def test_no_module_is_over_450_lines_but_those_named():
    long = {path.relative_to(PACKAGE).as_posix(): len(path.read_text().splitlines())
            for path in PACKAGE.rglob("*.py")}
    over = {name: lines for name, lines in long.items() if lines > LIMIT}
    assert set(over) <= OVER_ON_PURPOSE, f"split these by job: {over}"


def _module_graph() -> dict:
    """{module: the hlsflow modules it imports}, lazy (in-function) imports included: a loop through
    them is a loop all the same, only found later. hlsflow/__init__.py's lazy way to the library
    (`hlsflow.emulate` for a notebook) is the one arrow up that the package keeps on purpose."""
    modules = {".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"): path
               for path in PACKAGE.rglob("*.py")}
    return {name: ({dep for dep in _imported(path) if dep in modules and dep != name}
                   if name != "hlsflow" else set())
            for name, path in modules.items()}


def _loops(graph: dict) -> list:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in graph[node]:
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = set()
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.add(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_loop():
    graph = _module_graph()
    assert len(graph) > 80 and graph["hlsflow.flow"], graph  # the graph was read at all
    assert _loops(graph) == [], "these modules import each other in a loop (lazily or not): " \
        "move what they share down into one of them"


# Who may import state/: the runner (flow.py), `hlsflow verify` (cli/tasks.py), and the host's
# launcher, which checks an output path and makes the user's signing key before any container (and
# so any runner) starts.
STATE_DOORS = {"flow.py", "cli/tasks.py", "cli/launcher.py", "cli/mounts.py"}


def test_state_is_entered_only_by_the_runner_verify_and_the_launcher():
    entering = sorted(path.relative_to(PACKAGE).as_posix() for path in PACKAGE.rglob("*.py")
                      if not path.relative_to(PACKAGE).as_posix().startswith("state/")
                      and any(name.startswith("hlsflow.state") for name in _imported(path)))
    assert "flow.py" in entering, entering  # the check reads imports at all
    assert set(entering) <= STATE_DOORS, f"these enter state/ without the runner (flow.py): " \
        f"{sorted(set(entering) - STATE_DOORS)}"


def test_no_module_is_imported_under_another_modules_name():
    """`from ..image import build as image` reads as the package image/ where build.py is meant."""
    names = {path.stem if path.stem != "__init__" else path.parent.name for path in PACKAGE.rglob("*.py")}
    misleading = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                misleading += [f"{path.relative_to(PACKAGE)}:{node.lineno}: {alias.name} as {alias.asname}"
                               for alias in node.names
                               if alias.asname and alias.asname != alias.name.rpartition(".")[2]
                               and alias.asname in names]
    assert len(names) > 50 and "image" in names and "build" in names, names
    assert misleading == [], misleading


def test_the_emulator_and_csims_stage_never_enter_state():
    files = [*sorted((PACKAGE / "emulator").glob("*.py")), PACKAGE / "stages" / "emulate.py"]
    entering = {path.relative_to(PACKAGE).as_posix(): sorted(name for name in _imported(path)
                                                             if name.startswith("hlsflow.state"))
                for path in files}
    assert not {name: names for name, names in entering.items() if names}, entering
