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
    command = "python -m pytest --cov=perfmesh --cov-fail-under=95"
    assert f"\n{command}\n" in README
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == command
