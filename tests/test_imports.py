"""No import cycles among citus's modules: imports point down the floors.

The graph is read from the source with :mod:`ast`, without importing anything.
Each module under ``src/citus`` is a node (a package is its ``__init__.py``).
Each ``import`` or ``from ... import`` of a citus module is an edge, wherever it
stands:

- at module level;
- inside a function: a deferred import still makes the lower module know the
  upper one, and it is how a cycle hides (``exceptions`` once built responses
  with a function-level ``from .wrappers.response import Response``);
- under ``if TYPE_CHECKING:``: a type is knowledge too (``globals`` once
  imported ``API`` from ``app`` for ``current_app``'s type).

``from pkg import name`` is an edge to the submodule ``pkg.name`` when there is
one, else to ``pkg`` itself. One kind of import is not an edge: a module's
import of a package that encloses it (``from .. import __version__``, or
``from . import EXIT_RELOAD`` in a package's own module). Python has run that
package's ``__init__`` before the module itself, so the import only reads names
and never starts loading anything. Imports made from strings
(``importlib.import_module``, the lazy public names of ``citus/__init__.py``)
are not seen.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


@dataclass(frozen=True)
class Edge:
    """``source`` imports ``target`` at ``path:line``."""

    source: str
    target: str
    where: str


def module_names(src: Path, package: str) -> dict[str, Path]:
    """Every module of ``package`` under ``src``, by dotted name."""
    names = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _enclosing(name: str, path: Path) -> str:
    """The package that relative imports in module ``name`` start from."""
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """``name``, or the nearest enclosing module that exists."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_edges(src: Path, package: str) -> list[Edge]:
    """Every import of one of ``package``'s modules by another, as the module
    docstring counts them."""
    modules = module_names(src, package)
    edges = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            targets: list[str | None] = []
            if isinstance(node, ast.Import):
                targets = [_known(alias.name, modules) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = _enclosing(name, path).split(".")
                    base = base[: len(base) - node.level + 1]
                    origin = ".".join(base + ([node.module] if node.module else []))
                else:
                    origin = node.module or ""
                for alias in node.names:
                    sub = f"{origin}.{alias.name}"
                    targets.append(sub if sub in modules else _known(origin, modules))
            for target in targets:
                if target is None or target == name:
                    continue
                if name.startswith(target + "."):
                    continue  # a package that encloses the module: see above
                where = f"{path.relative_to(src).as_posix()}:{node.lineno}"
                edges.append(Edge(name, target, where))
    return edges


def find_cycles(edges: list[Edge]) -> list[list[Edge]]:
    """One cycle (as its edges, in order) per strongly connected group of
    modules; none when the graph has no cycle."""
    graph: dict[str, list[Edge]] = {}
    for edge in edges:
        graph.setdefault(edge.source, []).append(edge)
        graph.setdefault(edge.target, [])
    # Tarjan's algorithm, iteratively: each group of modules that reach each
    # other is a strongly connected component.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, position = work.pop()
            if position == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            targets = graph[node]
            if position < len(targets):
                work.append((node, position + 1))
                target = targets[position].target
                if target not in index:
                    work.append((target, 0))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            if low[node] == index[node]:
                group = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(group)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return [_cycle_in(group, graph) for group in groups]


def _cycle_in(group: set[str], graph: dict[str, list[Edge]]) -> list[Edge]:
    """A shortest cycle through the first module of ``group``."""
    start = min(group)
    paths: dict[str, list[Edge]] = {start: []}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for edge in graph[node]:
            if edge.target == start:
                return [*paths[node], edge]
            if edge.target in group and edge.target not in paths:
                paths[edge.target] = [*paths[node], edge]
                queue.append(edge.target)
    raise AssertionError(f"no cycle through {start} in {sorted(group)}")


def describe(cycle: list[Edge]) -> str:
    """``a -> b (file:line) -> a (file:line)``."""
    text = cycle[0].source
    for edge in cycle:
        text += f" -> {edge.target} ({edge.where})"
    return text


def test_citus_has_no_import_cycles() -> None:
    edges = import_edges(SRC, "citus")
    assert len({edge.source for edge in edges}) > 20  # the walk saw the package
    cycles = find_cycles(edges)
    assert not cycles, (
        "Import cycles among citus's modules (imports must point down the floors,"
        " STYLE.md 'Our own house'; move the name that lives in the wrong room):\n"
        + "\n".join(describe(cycle) for cycle in cycles)
    )


def test_the_check_sees_every_kind_of_import(tmp_path: Path) -> None:
    """A cycle made by a function-level import, one made by a type-only import,
    and a long one are all found; imports of an enclosing package are not
    edges."""
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "from .a import A\n__version__ = '1'\n",
        "a.py": "def f():\n    from .b import B\n",
        "b.py": "from . import a\nfrom . import __version__\n",
        "c.py": ("import typing as t\nif t.TYPE_CHECKING:\n    from .d import D\n"),
        "d.py": "from .c import C\n",
        "sub/__init__.py": "from .. import e\n",
        "sub/leaf.py": "from . import x\nfrom .. import __version__\n",
        "e.py": "import pkg.f\n",
        "f.py": "from pkg.sub import leaf\n",
        "g.py": "from .sub.leaf import y\n",
    }
    for name, text in files.items():
        (package / name).write_text(text)
    cycles = find_cycles(import_edges(tmp_path, "pkg"))
    found = sorted(sorted({edge.source for edge in cycle}) for cycle in cycles)
    assert found == [["pkg.a", "pkg.b"], ["pkg.c", "pkg.d"]]
    shown = [describe(cycle) for cycle in cycles]
    assert "pkg.a -> pkg.b (pkg/a.py:2) -> pkg.a (pkg/b.py:1)" in shown

    # e -> f -> sub.leaf is no cycle; a module that imports e from sub makes one.
    (package / "sub" / "leaf.py").write_text("from ..e import E\n")
    cycles = find_cycles(import_edges(tmp_path, "pkg"))
    found = sorted(sorted({edge.source for edge in cycle}) for cycle in cycles)
    assert ["pkg.e", "pkg.f", "pkg.sub.leaf"] in found
