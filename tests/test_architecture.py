"""The kit's import graph keeps the architecture the README describes.

Read from the source with :mod:`ast` (nothing is imported): every import inside
``conformance/`` goes to its own layer or one below (interface < values < ecosystem <
promises < running < rendering < front ends), no modules import each other in a circle, no module
is an alias or a re-export of another, and an import hidden inside a function states
why on the line before it (start-up cost, a process that must arm before torch loads).
A supervising process never loads torch: the command line's modules import none of it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import REPO_ROOT

PACKAGE = REPO_ROOT / "conformance"

#: Each layer, bottom up: a module may import its own layer and those below it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("interface", ("conformance.bases", "conformance.helpers")),
    ("values", ("conformance.core", "conformance.strategies")),
    ("ecosystem", ("conformance.ecosystem",)),
    ("promises", ("conformance.checks",)),
    ("running", ("conformance.engine",)),
    ("rendering", ("conformance.reports",)),
    ("front ends", ("conformance.frontends", "conformance.__main__")),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> int:
    for rank, (_, prefixes) in enumerate(LAYERS):
        if any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes):
            return rank
    if module == "conformance":  # the package face: lazy names for every layer
        return len(LAYERS)
    raise AssertionError(f"{module} belongs to no layer of {[name for name, _ in LAYERS]}")


def resolve(importer: str, node: ast.ImportFrom | ast.Import) -> Iterator[str]:
    """The kit modules an import statement loads (``from x import y`` may name a module y)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = importer.split(".")
            if not MODULES[importer].name == "__init__.py":
                package = package[:-1]
            package = package[: len(package) - node.level + 1]
            base = ".".join(package + ([base] if base else []))
        names = [f"{base}.{alias.name}" for alias in node.names] + [base]
    for name in names:
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name.startswith("conformance"):
            yield name


def imports(module: str) -> Iterator[tuple[str, ast.AST, bool]]:
    """``(imported module, statement, inside a function)`` for every import of ``module``."""
    tree = ast.parse(MODULES[module].read_text())

    def walk(node: ast.AST, in_function: bool) -> Iterator[tuple[str, ast.AST, bool]]:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                for target in resolve(module, child):
                    if target != module:
                        yield target, child, in_function
            yield from walk(child, nested)

    yield from walk(tree, False)


def test_every_module_belongs_to_a_layer() -> None:
    for module in MODULES:
        layer_of(module)


def test_every_import_goes_down_the_layers() -> None:
    upward = [
        f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
        for module in MODULES
        if module != "conformance"
        for target, _, _ in imports(module)
        if target != "conformance" and layer_of(target) > layer_of(module)
    ]
    assert not upward, "\n".join(upward)


def test_no_module_imports_the_package_face() -> None:
    """``conformance/__init__.py`` resolves public names lazily for users; inside the kit
    every module imports what it uses by its real path."""
    users = [module for module in MODULES for target, _, _ in imports(module) if target == "conformance"]
    assert not users, users


def test_no_import_circles() -> None:
    graph = {module: {target for target, _, _ in imports(module)} for module in MODULES}
    circles = [component for component in strongly_connected(graph) if len(component) > 1]
    assert not circles, circles


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's components of ``graph``."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
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
            found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_alias_or_re_export_modules() -> None:
    """A module is where its code lives: none replaces itself in ``sys.modules`` or only
    hands on another module's names (a package's ``__init__`` holds a docstring)."""
    offenders = []
    for module, path in MODULES.items():
        source = path.read_text()
        if "sys.modules[__name__]" in source:
            offenders.append(f"{module}: replaces itself in sys.modules")
        if path.name == "__init__.py" and module != "conformance":
            body = [node for node in ast.parse(source).body if not _is_docstring(node)]
            if body:
                offenders.append(f"{module}: a package __init__ with code (re-exports?)")
    assert not offenders, offenders


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def test_an_import_inside_a_function_says_why() -> None:
    unexplained = []
    for module, path in MODULES.items():
        lines = path.read_text().splitlines()
        for target, node, in_function in imports(module):
            if not in_function:
                continue
            above = lines[node.lineno - 2].strip() if node.lineno >= 2 else ""
            if not above.startswith("#") and "#" not in lines[node.lineno - 1]:
                unexplained.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno} imports {target}")
    assert not unexplained, "in-function imports without a stated reason:\n" + "\n".join(sorted(set(unexplained)))


@pytest.mark.parametrize(
    "modules",
    [
        ["conformance.frontends.cli", "conformance.engine.loop", "conformance.engine.workers.supervisor"],
        ["conformance.frontends.pytest_plugin"],
    ],
)
def test_a_supervising_process_never_loads_torch(modules: list[str]) -> None:
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules) + "print(sorted({'torch', 'hypothesis'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout
