"""Each third-party library stays at its one edge (DESIGN.md): zmq only in workers/, msgpack
only in perfmesh/protocol/wire.py, psutil only in perfmesh/collect/psutil_source.py, pickle nowhere; and
importing the library does not load zmq."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted((ROOT / "perfmesh").rglob("*.py")) + sorted((ROOT / "workers").rglob("*.py"))

# module -> whether a file (path relative to the repo root) may import it.
ALLOWED = {
    "zmq": lambda rel: rel.startswith("workers/"),
    "msgpack": lambda rel: rel == "perfmesh/protocol/wire.py",
    "psutil": lambda rel: rel == "perfmesh/collect/psutil_source.py",
    "pickle": lambda rel: False,
    "cPickle": lambda rel: False,
    "dill": lambda rel: False,
}


def imported_top_level_modules(tree: ast.AST) -> set[str]:
    """Top-level names of every absolute import in a module (relative imports are ours)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__" \
                and node.args and isinstance(node.args[0], ast.Constant):
            names.add(str(node.args[0].value).split(".")[0])
    return names


def imports_by_file() -> dict[str, set[str]]:
    return {path.relative_to(ROOT).as_posix():
            imported_top_level_modules(ast.parse(path.read_text(), filename=str(path)))
            for path in SOURCES}


def test_sources_are_found():
    """The walk sees the library and the workers (an empty walk would pass vacuously)."""
    files = imports_by_file()
    assert "perfmesh/inproc/manager.py" in files and "perfmesh/collect/psutil_source.py" in files
    assert any(rel.startswith("workers/") for rel in files)


@pytest.mark.parametrize("module", sorted(ALLOWED))
def test_third_party_module_is_imported_only_at_its_edge(module):
    """zmq only in workers/, msgpack only in wire.py, psutil only in psutil_source.py,
    pickle (and its kin) nowhere."""
    allowed = ALLOWED[module]
    offenders = [rel for rel, names in imports_by_file().items()
                 if module in names and not allowed(rel)]
    assert offenders == [], f"{module} imported outside its edge in {offenders}"


def test_the_checker_sees_every_import_form():
    """import x, import x.y, from x import y, from x.y import z and __import__('x')."""
    tree = ast.parse("import a\nimport b.c as d\nfrom e import f\nfrom g.h import i\n"
                     "from . import j\n__import__('k.l')\n")
    assert imported_top_level_modules(tree) == {"a", "b", "e", "g", "k"}


def test_importing_perfmesh_loads_no_sockets_or_wire_codec():
    """`import perfmesh` in a fresh interpreter puts neither zmq nor msgpack in sys.modules."""
    code = ("import sys, perfmesh\n"
            "print(sorted(m for m in ('zmq', 'msgpack') if m in sys.modules))\n"
            "print(perfmesh.__version__)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["[]", "0.1.0"]


def test_public_api_is_exported():
    """Everything the issue's examples use is importable from perfmesh."""
    import perfmesh

    for name in ("PerformanceManager", "MetricsCollector", "PerformanceBudget",
                 "OptimizationEngine", "PerformanceUtils", "PerformanceMetric",
                 "PerformanceProfile", "PerformanceContext", "BudgetViolation", "Bottleneck",
                 "OptimizationResult", "PerfmeshError", "ConfigError", "UnknownMetricError",
                 "UnknownStrategyError", "InvalidParameterError", "WireError"):
        assert name in perfmesh.__all__ and hasattr(perfmesh, name), name
    assert issubclass(perfmesh.ConfigError, perfmesh.PerfmeshError)
