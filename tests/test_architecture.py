"""Import contract of graftimg (issue 9): one-way layers and no import cycle.

The layers, lowest first (docs/architecture.md explains them)::

    base → io → preprocess → segment → measure → register → longitudinal → report → pipeline → cli

A module may import its own package and any package of a lower layer, never one above it.
``phantom`` and ``validation`` generate test data with known truth: they stand beside the line,
may use only the layers listed in :data:`GENERATORS` (so their truth never depends on the
methods it checks), and only ``cli`` (and ``validation`` for ``phantom``) may import them.

Every import counts, also one inside a function; one under ``if TYPE_CHECKING:`` does not (it
never runs).
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "graftimg"

#: Top-level modules of the package that form the base layer.
BASE = {
    "__init__",
    "_version",
    "arrays",
    "errors",
    "flags",
    "modes",
    "morphology",
    "provenance",
    "spacing",
}

#: Layers, lowest first; a name is a subpackage of graftimg (``base``: the modules of BASE).
LAYERS = [
    "base",
    "io",
    "preprocess",
    "segment",
    "measure",
    "register",
    "longitudinal",
    "report",
    "pipeline",
    "cli",
]

#: Test-data generators beside the layers: what each may import.
GENERATORS = {
    "phantom": {"base", "io"},
    "validation": {"base", "io", "preprocess", "phantom"},
}

#: Who may import each generator.
GENERATOR_USERS = {"phantom": {"cli", "validation"}, "validation": {"cli"}}


def modules(root: Path) -> dict[str, Path]:
    """Dotted name of every module below ``root`` (a package folder) → its file."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = (root.name, *path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node except the bodies of ``if TYPE_CHECKING:`` blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                stack.extend(child.orelse)
                continue
            stack.append(child)


def imports(name: str, path: Path, known: set[str]) -> list[tuple[str, int]]:
    """``(imported module, line)`` of each runtime import of the package by module ``name``."""
    top = name.split(".")[0]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in _runtime_nodes(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                found.append((sub if sub in known else source, node.lineno))
    return [(target, line) for target, line in found if target.split(".")[0] == top]


def layer_of(module: str) -> str:
    """Layer name of a dotted module: its subpackage, or ``base`` for a top-level module."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in BASE:
        return "base"
    return parts[1]


def violations(root: Path = ROOT) -> list[str]:
    """Every import that breaks the layer contract, as ``module:line -> target (why)``."""
    known = modules(root)
    rank = {layer: i for i, layer in enumerate(LAYERS)}
    out = []
    for name, path in known.items():
        mine = layer_of(name)
        for target, line in imports(name, path, set(known)):
            theirs = layer_of(target)
            where = f"{name}:{line} -> {target}"
            if theirs == mine:
                continue
            if mine in GENERATORS:
                if theirs not in GENERATORS[mine]:
                    out.append(f"{where} ({mine} may import only {sorted(GENERATORS[mine])})")
            elif theirs in GENERATORS:
                if mine not in GENERATOR_USERS[theirs]:
                    out.append(f"{where} (only {sorted(GENERATOR_USERS[theirs])} use {theirs})")
            elif mine not in rank or theirs not in rank:
                out.append(f"{where} (package not in the layer list: add it to LAYERS)")
            elif rank[theirs] > rank[mine]:
                out.append(f"{where} (upward: {mine} sits below {theirs})")
    return out


def cycles(root: Path = ROOT) -> list[list[str]]:
    """Strongly connected groups of more than one module (or a module importing itself)."""
    known = modules(root)
    graph = {
        name: sorted({t for t, _ in imports(name, path, set(known)) if t in known})
        for name, path in known.items()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1 or v in graph[v]:
                found.append(sorted(group))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_every_package_has_a_layer():
    packages = {layer_of(name) for name in modules(ROOT)}
    assert packages <= set(LAYERS) | set(GENERATORS), packages - set(LAYERS) - set(GENERATORS)


def test_no_package_imports_one_above_it():
    found = violations()
    assert not found, "imports against the layers (docs/architecture.md):\n" + "\n".join(found)


def test_no_import_cycle():
    found = cycles()
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(group) for group in found)


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / "graftimg" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root / "graftimg"


def test_contract_catches_upward_lazy_and_generator_imports(tmp_path):
    root = _tree(
        tmp_path,
        {
            "__init__.py": "",
            "errors.py": "",
            "segment/__init__.py": "",
            "segment/graft.py": """
                from typing import TYPE_CHECKING
                from graftimg.errors import x
                from ..measure import graft as _g
                if TYPE_CHECKING:
                    from graftimg.pipeline import session
            """,
            "measure/__init__.py": "",
            "measure/graft.py": """
                def f():
                    from graftimg.segment.graft import y
                    from graftimg.phantom import spec
            """,
            "pipeline/__init__.py": "",
            "pipeline/session.py": "",
            "phantom/__init__.py": "",
            "phantom/spec.py": "import graftimg.segment.graft\n",
        },
    )
    found = violations(root)
    assert any(v.startswith("graftimg.segment.graft:4 -> graftimg.measure.graft") for v in found)
    assert any("graftimg.measure.graft:4 -> graftimg.phantom.spec" in v for v in found)
    assert any("graftimg.phantom.spec:1 -> graftimg.segment.graft" in v for v in found)
    assert not any("pipeline" in v for v in found)  # a TYPE_CHECKING import never runs
    assert len(found) == 3
    loop = ["graftimg.measure.graft", "graftimg.phantom.spec", "graftimg.segment.graft"]
    assert cycles(root) == [loop]


@pytest.mark.parametrize("rel", ["cli/main.py", "pipeline/session.py", "segment/graft/segment.py"])
def test_modules_resolve(rel):
    # the contract reads real files: each of these imports something it must see
    name = "graftimg." + rel.removesuffix(".py").replace("/", ".")
    known = modules(ROOT)
    assert known[name] == ROOT / rel
    assert imports(name, known[name], set(known))
