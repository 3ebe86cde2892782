"""The layout's rules, read from the source: no import cycle (imports inside functions and under
TYPE_CHECKING count), SQL only in the store, a small package root, and every module on the
architecture page's map."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from helpers import REPO

PACKAGE = REPO / "facer_cli"
# A statement's first words inside a string literal: what the store alone may say.
SQL_STATEMENT = re.compile(
    r"""["'](\s*)(SELECT |INSERT (OR [A-Z]+ )?INTO |UPDATE [a-z_]+ SET |DELETE FROM |CREATE (TABLE|INDEX|TRIGGER) |PRAGMA )"""
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported_modules(name: str, path: Path) -> set[str]:
    """facer_cli modules that `name` imports anywhere in its source (`from pkg import mod` names mod)."""
    found: set[str] = set()
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in MODULES)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                if f"{source}.{alias.name}" in MODULES:
                    found.add(f"{source}.{alias.name}")
                elif source in MODULES:
                    found.add(source)
    found.discard(name)
    return found


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for target in edges:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph[target]))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        cycles.append(sorted(component))
    return cycles


def test_no_module_imports_itself_through_others():
    graph = {name: imported_modules(name, path) for name, path in MODULES.items()}
    assert import_cycles(graph) == []


def test_the_cycle_finder_sees_imports_inside_functions_and_type_checking_blocks(tmp_path):
    path = tmp_path / "probe.py"
    path.write_text(
        "if TYPE_CHECKING:\n    from facer_cli.engine import reports\n"
        "def f():\n    from facer_cli.interrupts import install\n    import facer_cli.errors\n"
    )
    found = imported_modules("facer_cli.probe", path)
    assert found == {"facer_cli.engine.reports", "facer_cli.interrupts", "facer_cli.errors"}
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_sql_statements_stand_only_in_the_store():
    outside = [
        f"{path.relative_to(REPO)}:{number}"
        for path in PACKAGE.rglob("*.py")
        if "store" not in path.relative_to(PACKAGE).parts[:1]
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if SQL_STATEMENT.search(line)
    ]
    assert outside == []


def test_the_package_root_keeps_only_its_front_door():
    root_modules = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert len(root_modules) <= 10, root_modules


def test_every_module_is_on_the_architecture_page_and_every_one_named_there_exists():
    page = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    module_map = page[page.index("## Module map") :]
    named = set(re.findall(r"^- `([a-z_/]+)`:", module_map, re.M))
    named |= {heading.rstrip("/") for heading in re.findall(r"^### `([a-z_/]+)`$", module_map, re.M)}
    in_tree = {
        path.parent.relative_to(PACKAGE).as_posix()
        if path.name == "__init__.py" and path.parent != PACKAGE
        else path.relative_to(PACKAGE).with_suffix("").as_posix()
        for path in PACKAGE.rglob("*.py")
    }
    assert named == in_tree
