"""Issue 13: escape sequences from peers never reach the operator's terminal, end to end.

An application joins a real aggregator as agent ``evil``: its timing label and the error of its
own strategy hold ``ESC [2J``. ``subscribe``, ``command`` and ``top`` (in tmux) show it escaped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

from .conftest import ROOT

pytestmark = [pytest.mark.multiprocess, pytest.mark.timeout(120)]

EVIL_APP = r'''
import sys, time
from perfmesh import PerformanceManager
m = PerformanceManager(mesh=sys.argv[1], name="evil", mesh_interval=0.1, mesh_state_dir=sys.argv[2])
def boom(config):
    raise RuntimeError("boom\x1b[2J")
m.engine.register_optimization_strategy("boom", boom)
end = time.monotonic() + 90
while time.monotonic() < end:
    with m.performance_context("ctx\x1b[2J"):
        pass
    time.sleep(0.05)
m.close()
'''


@pytest.fixture
def evil(mesh):
    mesh.aggregator()
    script = mesh.tmp / "evil_app.py"
    script.write_text(EVIL_APP)
    proc = subprocess.Popen([sys.executable, str(script), mesh.connect, str(mesh.tmp / "evil-state")], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                            stderr=open(mesh.tmp / "evil.log", "wb"))
    mesh.procs.append(proc)
    deadline = time.monotonic() + 20
    while not any(h["name"] == "evil" for h in mesh.status()["hosts"]):
        assert time.monotonic() < deadline, mesh.logs()
        time.sleep(0.2)
    return mesh


def test_subscribe_shows_a_peer_label_with_an_escape_sequence_escaped(evil):
    """The text stream prints the label value ctx<ESC>[2J as ctx\\x1b[2J; no ESC byte is written."""
    res = evil.cli("subscribe", "--host", "evil", "--type", "metric", "--count", "40", timeout=60)
    assert res.returncode == 0, res.stderr
    assert "\x1b" not in res.stdout
    assert "context_calls{context=ctx\\x1b[2J}" in res.stdout


def test_command_shows_the_agents_error_text_escaped(evil):
    """A strategy that fails with boom<ESC>[2J: `perfmesh command` prints boom\\x1b[2J."""
    res = evil.cli("command", "evil", "boom", "--timeout", "15", timeout=60)
    assert "\x1b" not in res.stdout + res.stderr
    assert "boom\\x1b[2J" in res.stdout, res.stdout + res.stderr


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_top_shows_the_agents_error_text_escaped_on_a_real_terminal(evil, tmp_path):
    """top's host detail lists the failed command with boom\\x1b[2J as visible text; on quit the
    shell's screen comes back as it was."""
    from .test_top import Tmux, top_command
    assert "boom\\x1b[2J" in evil.cli("command", "evil", "boom", "--timeout", "15", timeout=60).stdout
    tmux = Tmux(tmp_path, width=100, height=30)
    try:
        tmux.type("echo MARK-BEFORE; " + top_command(evil.connect))
        tmux.wait_for(lambda s: "evil" in s and "connected" in s, what="evil in top")
        tmux.keys("Enter")
        screen = tmux.wait_for(lambda s: "boom\\x1b[2J" in s, what="the failed command, escaped")
        assert "Recent violations and commands" in screen
        tmux.keys("q")
        screen = tmux.wait_for(lambda s: s.rstrip().endswith("tt$"), what="the shell prompt")
        assert "MARK-BEFORE" in screen
    finally:
        tmux.kill()
