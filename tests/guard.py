"""What every test must do, read from the tests' source (tests/test_guard.py runs it on all of
tests/): check something, and not against the clock.

- A test function (test_* at module level or in a Test* class) must assert: an `assert`, a
  `raise AssertionError`, pytest.raises / pytest.warns / pytest.fail, or a call of a named helper
  that does one of these itself or through another named helper (any function of tests/, its
  conftests and helper modules included, matched by name).
- No `assert` may read the wall clock: time.time / monotonic / perf_counter / process_time, or a
  name computed from them in the same function. Timings belong in bench/; a wait belongs in
  tests/waiting.py's bounded wait_for, which fails on what never came rather than on how long.
"""

import ast
from pathlib import Path

CLOCKS = {"time", "monotonic", "perf_counter", "process_time", "time_ns", "monotonic_ns", "perf_counter_ns"}
PYTEST_CHECKS = {"raises", "warns", "fail", "approx_raises"}


def _is_clock_call(node) -> bool:
    """time.monotonic() and the like (the module `time` or a name imported from it)."""
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    if isinstance(func, ast.Attribute) and func.attr in CLOCKS:
        return isinstance(func.value, ast.Name) and func.value.id == "time"
    return isinstance(func, ast.Name) and func.id in CLOCKS - {"time"}


def _reads(node, tainted: set) -> bool:
    return any(_is_clock_call(n) or (isinstance(n, ast.Name) and n.id in tainted) for n in ast.walk(node))


def _called_names(node) -> set:
    names = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Call):
            if isinstance(n.func, ast.Name):
                names.add(n.func.id)
            elif isinstance(n.func, ast.Attribute):
                names.add(n.func.attr)
    return names


def _checks_directly(node) -> bool:
    for n in ast.walk(node):
        if isinstance(n, ast.Assert):
            return True
        if isinstance(n, ast.Raise) and n.exc is not None:
            target = n.exc.func if isinstance(n.exc, ast.Call) else n.exc
            if isinstance(target, ast.Name) and target.id == "AssertionError":
                return True
        if (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in PYTEST_CHECKS
                and isinstance(n.func.value, ast.Name) and n.func.value.id == "pytest"):
            return True
    return False


def _functions(tree) -> list:
    return [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def checking_helpers(trees) -> set:
    """Names of the functions (over all the given modules) that check, directly or by calling
    another such function by name: a fixed point over the call graph by name."""
    calls, checking = {}, set()
    for tree in trees:
        for fn in _functions(tree):
            calls.setdefault(fn.name, set()).update(_called_names(fn))
            if _checks_directly(fn):
                checking.add(fn.name)
    changed = True
    while changed:
        changed = False
        for name, called in calls.items():
            if name not in checking and called & checking:
                checking.add(name)
                changed = True
    return checking


def _tests(tree) -> list:
    found = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name.startswith("test")]
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef) and n.name.startswith("Test")):
        found += [n for n in cls.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                  and n.name.startswith("test")]
    return found


def _clock_asserts(fn) -> list:
    """Line numbers of the asserts in fn that read the clock, directly or through a name assigned
    (or appended to) from it earlier in fn."""
    tainted, found = set(), []
    for node in ast.walk(fn):
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)) and node.value is not None \
                and _reads(node.value, tainted):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            tainted.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in ("append", "extend", "add") and isinstance(node.func.value, ast.Name)
              and any(_reads(arg, tainted) for arg in node.args)):
            tainted.add(node.func.value.id)
    # ast.walk is breadth-first: a second pass sees every name tainted anywhere in the function
    for node in ast.walk(fn):
        if isinstance(node, ast.Assert) and _reads(node.test, tainted):
            found.append(node.lineno)
    return found


def problems(sources: dict, helpers: dict = None) -> list:
    """["path:line: what"] for the test modules in `sources` ({path: source text}); `helpers`
    ({path: source}) are further modules whose functions count as named helpers."""
    trees = {path: ast.parse(text, str(path)) for path, text in sources.items()}
    extra = [ast.parse(text, str(path)) for path, text in (helpers or {}).items()]
    checking = checking_helpers([*trees.values(), *extra])
    found = []
    for path, tree in trees.items():
        # `from layerwise import layerwise as _layerwise`: a call of the alias is one of the helper
        aliases = {a.asname: a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names
                   if a.asname}
        for fn in _tests(tree):
            called = {aliases.get(name, name) for name in _called_names(fn)}
            if not (_checks_directly(fn) or called & checking):
                found.append(f"{path}:{fn.lineno}: {fn.name} asserts nothing (directly or through a named helper)")
            for line in _clock_asserts(fn):
                found.append(f"{path}:{line}: {fn.name} asserts on wall-clock time (measure in bench/, wait with "
                             "waiting.wait_for)")
    return found


def check_tree(root: Path) -> list:
    """problems() of every test_*.py under root, with every other .py there as a helper."""
    files = sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)
    tests = {p.relative_to(root.parent): p.read_text() for p in files if p.name.startswith("test_")}
    helpers = {p.relative_to(root.parent): p.read_text() for p in files if not p.name.startswith("test_")}
    return problems(tests, helpers)
