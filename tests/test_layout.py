"""The layout holds (DESIGN.md, "Layout" in the README): one folder per part, each saying
what it may import; dependencies run one way (workers/ -> perfmesh/, and between the parts
of perfmesh/ along the allowed edges); no import cycle between modules; no wall clock in the
pure parts; no module over 400 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 400

# part -> the parts it may import (errors is the shared root every part may use).
ALLOWED_PARTS = {
    "errors": set(),
    "model": {"errors"},
    "protocol": {"errors", "model"},
    "collect": {"errors", "model"},
    "rules": {"errors", "model", "protocol"},    # protocol: only kinds (event and alert states)
    "optimize": {"errors", "model"},
    "store": {"errors", "model", "protocol"},
    "mesh": {"errors", "model", "protocol", "rules", "optimize"},
    "views": {"errors", "model", "protocol", "rules"},
    "config": {"errors", "model", "protocol", "collect", "rules", "optimize", "mesh"},
    "inproc": {"errors", "model", "collect", "rules", "optimize", "config"},
    "export": {"errors", "model", "protocol"},
}
PURE_PARTS = ("model", "protocol", "rules", "mesh", "export")     # time is passed in
WALL_CLOCK = {"time", "datetime"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_of(path: Path) -> str:
    name = module_name(path)
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, absolute, wherever the import stands (module level,
    inside a function, under TYPE_CHECKING): a lazy import is still an edge."""
    found: set[str] = set()
    package = package_of(path)
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            # `from pkg import module` imports the module too
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def sources() -> list[Path]:
    return sorted((ROOT / "perfmesh").rglob("*.py")) + sorted((ROOT / "workers").rglob("*.py"))


def graph() -> dict[str, set[str]]:
    """module -> the modules of ours it imports (names resolved to modules that exist)."""
    ours = {module_name(p) for p in sources()}
    edges: dict[str, set[str]] = {}
    for path in sources():
        targets = set()
        for name in imports_of(path):
            while name and name not in ours:
                name = name.rpartition(".")[0]
            # a package's __init__ always runs before its submodules: not an edge
            if name and not (module_name(path) + ".").startswith(name + "."):
                targets.add(name)
        edges[module_name(path)] = targets
    return edges


def part_of(module: str) -> str | None:
    bits = module.split(".")
    return bits[1] if bits[0] == "perfmesh" and len(bits) > 1 else None


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_walk_sees_every_part():
    """Every part is a folder of perfmesh/ and the walk finds modules in each (an empty walk
    would pass vacuously)."""
    modules = graph()
    parts = {part_of(m) for m in modules} - {None}
    assert parts == set(ALLOWED_PARTS)
    for part in set(ALLOWED_PARTS) - {"errors"}:
        assert (ROOT / "perfmesh" / part).is_dir(), part


@pytest.mark.parametrize("part", sorted(set(ALLOWED_PARTS) - {"errors"}))
def test_each_part_says_what_it_is_and_what_it_may_import(part):
    """Each part's __init__.py has a docstring with a "May import" line."""
    doc = ast.get_docstring(ast.parse((ROOT / "perfmesh" / part / "__init__.py").read_text()))
    assert doc and "May import" in doc, part


def test_the_library_never_imports_the_processes():
    """No module of perfmesh/ imports workers/ (even lazily)."""
    offenders = {m: sorted(t for t in targets if t.startswith("workers"))
                 for m, targets in graph().items() if m.startswith("perfmesh")}
    assert {m: t for m, t in offenders.items() if t} == {}


def test_parts_import_only_along_allowed_edges():
    """A part imports only the parts its docstring allows (model imports nothing but errors, ...)."""
    wrong = []
    for module, targets in graph().items():
        part = part_of(module)
        if part is None:
            continue
        for target in targets:
            other = part_of(target)
            if other and other != part and other not in ALLOWED_PARTS[part]:
                wrong.append(f"{module} -> {target}")
    assert wrong == []


def test_no_import_cycles():
    """The module graph of perfmesh/ and workers/ (lazy and TYPE_CHECKING imports included) has
    no cycle."""
    assert find_cycle(graph()) is None


def test_the_cycle_finder_finds_cycles():
    """The checker itself: a -> b -> c -> a is found, a tree is not."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_relative_imports_resolve_to_modules():
    """`from ..model import metric` inside perfmesh/rules/x.py is an edge to perfmesh.model.metric."""
    path = ROOT / "perfmesh" / "rules" / "budget.py"
    assert "perfmesh.errors" in imports_of(path)


@pytest.mark.parametrize("part", PURE_PARTS)
def test_pure_parts_do_not_read_the_wall_clock(part):
    """model/, protocol/, rules/ and mesh/ never import time or datetime: now is passed in."""
    offenders = [p.relative_to(ROOT).as_posix() for p in (ROOT / "perfmesh" / part).rglob("*.py")
                 if {name.split(".")[0] for name in imports_of(p)} & WALL_CLOCK]
    assert offenders == []


def test_no_module_is_over_the_line_limit():
    """No Python module in perfmesh/ or workers/ is over 400 lines."""
    long = {p.relative_to(ROOT).as_posix(): n for p in sources()
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}
