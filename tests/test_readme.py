"""The README tells the truth: its Python examples run and its test command is CI's."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()


def test_readme_python_examples_run_as_written():
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert blocks
    for block in blocks:
        res = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, timeout=120,
                             cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
        assert res.returncode == 0, res.stderr
        assert "Collected" in res.stdout and "System health:" in res.stdout


def test_ci_runs_exactly_the_readme_test_command():
    command = "python -m pytest --cov=perfmesh --cov=workers --cov-fail-under=95"
    assert f"\n{command}\n" in README
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == command


def test_the_coverage_gate_measures_the_processes_the_tests_start():
    """perfmesh/ and workers/ together, in every process: `python -m workers` subprocesses,
    forked collectors (which leave through os._exit) and processes stopped with SIGTERM."""
    try:
        import tomllib
    except ModuleNotFoundError:     # Python 3.10: the project's tomli dependency
        import tomli as tomllib
    run = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["coverage"]["run"]
    assert "--cov=perfmesh --cov=workers" in (ROOT / ".ci" / "run").read_text()
    assert set(run["source"]) == {"perfmesh", "workers"}
    assert {"subprocess", "fork", "_exit"} <= set(run["patch"])
    assert run["sigterm"] is True and run["parallel"] is True
