"""The package layering of issue 13, checked on every run so it cannot rot: collectors at the bottom,
alerts and dashboards above it, monitor on top; no package imports one above it (imports inside
functions count), and only the CLI's command dispatch defers imports of the project's own modules."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("collectors", "alerts", "dashboards", "monitor")
ALLOWED = {
    "collectors": {"collectors"},
    "alerts": {"alerts", "collectors"},
    "dashboards": {"dashboards", "alerts", "collectors"},
    "monitor": {"monitor", "dashboards", "alerts", "collectors"},
}
# `vecmon --version` and each command load only what they run (tests/test_footprint.py).
DEFERRING = {"monitor/entry.py", "monitor/cli.py", "monitor/demo.py"}


def own_imports(tree: ast.AST) -> list[tuple[str, int, bool]]:
    """(package imported, line, inside a function) for every import of one of the project's packages."""
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                names = [child.module]
            for name in names:
                top = name.split(".")[0]
                if top in PACKAGES:
                    found.append((top, child.lineno, nested))
            visit(child, nested)

    visit(tree, False)
    return found


def modules():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield package, path.relative_to(ROOT).as_posix(), ast.parse(path.read_text(), str(path))


def test_no_package_imports_one_above_it():
    upward = [f"{name}:{line} imports {imported}"
              for package, name, tree in modules()
              for imported, line, _ in own_imports(tree) if imported not in ALLOWED[package]]
    assert upward == []


def test_only_the_command_dispatch_defers_imports_of_the_projects_modules():
    deferred = [f"{name}:{line}" for _, name, tree in modules() if name not in DEFERRING
                for _, line, in_function in own_imports(tree) if in_function]
    assert deferred == []


def test_no_import_guards_for_the_projects_modules():
    guarded = []
    for _, name, tree in modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Try) and any(own_imports(ast.Module(body=node.body, type_ignores=[]))):
                caught = {ast.unparse(h.type) for h in node.handlers if h.type is not None}
                if caught & {"ImportError", "ModuleNotFoundError"}:
                    guarded.append(f"{name}:{node.lineno}")
    assert guarded == []
