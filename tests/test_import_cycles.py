"""No import circle in `workers/`: every module's module-level imports of `workers.*` (those under
`if TYPE_CHECKING:` included, they are a dependency for the type checker and the reader alike) form a
graph without cycles. Imports inside functions are allowed: they are how a module defers a heavy or a
platform-only dependency until it is used."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = "workers"


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _module_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Imports at module level, in module-level `if`/`try`/`with` blocks too, never in a def or class."""
    found: list[ast.Import | ast.ImportFrom] = []
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif isinstance(node, ast.If | ast.Try | ast.With):
            pending.extend(node.body)
            pending.extend(getattr(node, "orelse", []))
            pending.extend(getattr(node, "finalbody", []))
            for handler in getattr(node, "handlers", []):
                pending.extend(handler.body)
    return found


def _targets(node: ast.Import | ast.ImportFrom, modules: set[str], current: str, package: bool) -> set[str]:
    """The modules of the tree an import statement loads (`from a.b import c` is a.b.c when c is one)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:  # relative: resolved against the importing module's package
            parts = current.split(".") if package else current.split(".")[:-1]
            parts = parts[: len(parts) - node.level + 1]
            base = ".".join([*parts, *filter(None, [node.module])])
        names = [
            f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names
        ]
    return {name for name in names if name in modules and name != current}


def import_graph(root: Path = ROOT, package: str = PACKAGE) -> dict[str, set[str]]:
    """Module name -> the modules of `package` it imports at module level, for every .py file under it."""
    paths = {_module_name(path, root): path for path in sorted((root / package).rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        tree = ast.parse(path.read_text(), str(path))
        is_package = path.name == "__init__.py"
        graph[name] = set().union(
            *(_targets(node, set(paths), name, is_package) for node in _module_level_imports(tree))
        )
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import circle, as the modules along it (one report per strongly connected component)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_the_graph_sees_the_engine():
    graph = import_graph()
    assert "workers.engine.training.config" in graph["workers.engine.training.trainer"]
    assert "workers.engine.methods" in graph["workers.engine.training.config"]


def test_a_circle_is_found():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c"]]


def test_type_checking_imports_count_and_function_imports_do_not(tmp_path):
    """The circle the engine had: bank imported the trainer's config for its types, the trainer the bank."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "bank.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.trainer import Config\n"
    )
    (pkg / "trainer.py").write_text("from pkg.bank import Member\n")
    (pkg / "cli.py").write_text("def main():\n    from pkg import app\n")
    (pkg / "app.py").write_text("from . import cli\n")
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg.app"] == {"pkg.cli"} and graph["pkg.cli"] == set()
    assert find_cycles(graph) == [["pkg.bank", "pkg.trainer"]]


def test_workers_have_no_import_circle():
    assert find_cycles(import_graph()) == []
