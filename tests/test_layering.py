"""One way down: weights_io <- kerasnets <- training, read from the source (lazy imports included).

Every `import` and `from ... import` statement of every module, at module level
or inside a function, is an arrow. An arrow may point to the module's own
package or one below it, never above; and no chain of arrows between our
modules may come back to where it started.
"""

from __future__ import annotations

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LEVELS = {"weights_io": 0, "kerasnets": 1, "training": 2}
MAX_LINES = 600


def _modules():
    """{dotted module name: path} for every .py file of the three packages."""
    found = {}
    for package in LEVELS:
        for folder, _, files in os.walk(os.path.join(ROOT, package)):
            for file in files:
                if file.endswith(".py"):
                    path = os.path.join(folder, file)
                    parts = os.path.relpath(path, ROOT)[:-3].split(os.sep)
                    if parts[-1] == "__init__":
                        parts = parts[:-1]
                    found[".".join(parts)] = path
    return found


def _imports(name, path, modules):
    """(line, imported module) for each import statement of ours in the file, resolved to a known module."""
    with open(path, encoding="utf8") as f:
        tree = ast.parse(f.read(), path)
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import sub` names a submodule when pkg.sub is one of ours.
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target.split(".")[0] in LEVELS:
                yield node.lineno, target


def _graph():
    modules = _modules()
    return modules, {name: sorted(set(_imports(name, path, modules))) for name, path in modules.items()}


def test_no_upward_import():
    _, graph = _graph()
    upward = [f"{name}:{line} imports {target}" for name, edges in graph.items() for line, target in edges
              if LEVELS[target.split(".")[0]] > LEVELS[name.split(".")[0]]]
    assert not upward, "imports that climb (weights_io <- kerasnets <- training):\n" + "\n".join(upward)


def _cycle(graph):
    """One cycle of module arrows (a package importing its own submodules is not an arrow back), or None."""
    def arrows(name):
        for _, target in graph[name]:
            if target != name and not (target.startswith(name + ".") or name.startswith(target + ".")):
                yield target

    state, stack = {}, []

    def visit(name):
        state[name] = "open"
        stack.append(name)
        for target in arrows(name):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        stack.pop()
        state[name] = "done"
        return None

    for name in sorted(graph):
        if name not in state:
            found = visit(name)
            if found:
                return found
    return None


def test_no_import_cycle():
    _, graph = _graph()
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_checks_can_fail():
    """The checker sees a lazy upward import and a two-module circle when they are there."""
    graph = {"kerasnets.a": [(3, "training.fit")], "training.fit": []}
    assert LEVELS["training"] > LEVELS["kerasnets"] and graph["kerasnets.a"]
    assert _cycle({"kerasnets.a": [(1, "kerasnets.b")], "kerasnets.b": [(9, "kerasnets.a")]}) == [
        "kerasnets.a", "kerasnets.b", "kerasnets.a"]
    modules = {"kerasnets": "", "kerasnets.cli": "", "training": "", "training.fit": ""}
    source = "def f():\n    from training import fit\n"
    path = os.path.join(ROOT, "tests", "_layering_probe.py")
    try:
        with open(path, "w") as f:
            f.write(source)
        assert list(_imports("kerasnets.cli", path, modules)) == [(2, "training.fit")]
    finally:
        os.remove(path)


@pytest.mark.parametrize("package", sorted(LEVELS))
def test_no_module_over_600_lines(package):
    modules, _ = _graph()
    long = {}
    for name, path in modules.items():
        if name.split(".")[0] == package:
            with open(path, encoding="utf8") as f:
                lines = sum(1 for _ in f)
            if lines > MAX_LINES:
                long[name] = lines
    assert not long, f"modules over {MAX_LINES} lines (split by concern): {long}"
