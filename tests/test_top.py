"""`perfmesh top` driven in tmux (send-keys, capture-pane) against a running mesh."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.multiprocess,
              pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)")]


class Tmux:
    def __init__(self, tmp_path, width: int = 80, height: int = 24) -> None:
        self.name = f"perfmesh-test-{uuid.uuid4().hex[:8]}"
        self.socket = str(tmp_path / "tmux.sock")
        self.run("new-session", "-d", "-s", self.name, "-x", str(width), "-y", str(height), "env PS1='tt$ ' bash --norc --noprofile")
        self.run("set-option", "-t", self.name, "history-limit", "100")

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["tmux", "-S", self.socket, *args], capture_output=True, text=True, timeout=10,
                              env={**os.environ, "TERM": "xterm-256color"})

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", self.name, *keys)

    def type(self, text: str) -> None:
        self.run("send-keys", "-t", self.name, "-l", text)
        self.keys("Enter")

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", self.name).stdout

    def wait_for(self, predicate, timeout: float = 20.0, what: str = "") -> str:
        seen = [""]

        def shown() -> str | None:
            seen[0] = text = self.screen()
            return text if predicate(text) else None
        try:
            return wait_until(shown, timeout, what, poll_s=0.2)
        except AssertionError:
            raise AssertionError(f"screen never showed {what}:\n{seen[0]}") from None

    def kill(self) -> None:
        self.run("kill-server")


@pytest.fixture
def tmux(tmp_path):
    t = Tmux(tmp_path)
    yield t
    t.kill()


def top_command(connect: str) -> str:
    return f"cd {ROOT} && PYTHONPATH={ROOT} {sys.executable} -m workers top --connect {connect}"


def test_top_shows_both_hosts_and_reacts_to_sort_filter_detail_and_quit(mesh, tmux, tmp_path):
    mesh.aggregator()
    mesh.agent("alpha")
    mesh.agent("beta")
    mesh.wait_hosts("alpha", "beta")
    tmux.type(top_command(mesh.connect))
    screen = tmux.wait_for(lambda s: "alpha" in s and "beta" in s and "connected" in s, what="both hosts")
    assert "Traceback" not in screen and "CPU" in screen and "MEM" in screen
    tmux.wait_for(lambda s: all(re.search(rf"{h} .*\d%", s) for h in ("alpha", "beta")), what="CPU values")
    assert all(len(line) <= 80 for line in screen.splitlines())

    tmux.keys("s")
    tmux.wait_for(lambda s: "sort: CPU" in s, what="sort by CPU")
    tmux.keys("s")
    tmux.wait_for(lambda s: "sort: memory" in s, what="sort by memory")

    tmux.keys("/")
    tmux.run("send-keys", "-t", tmux.name, "-l", "bet")
    tmux.keys("Enter")
    screen = tmux.wait_for(lambda s: "filter: bet" in s and "beta" in s and "alpha" not in s, what="filter to beta")

    tmux.keys("Enter")
    # the whole frame drawn (its footer too), not one captured while the terminal is redrawn
    screen = tmux.wait_for(lambda s: "Per CPU" in s and "IFACE" in s and "back" in s, what="beta's detail")
    assert "beta" in screen and "back" in screen
    tmux.keys("Escape")
    tmux.wait_for(lambda s: "Per CPU" not in s and "HOST" in s, what="back to the fleet")

    tmux.keys("q")
    tmux.wait_for(lambda s: s.rstrip().endswith("tt$"), what="the shell prompt")
    # the terminal is restored: canonical mode and echo are back on
    out = tmp_path / "stty.txt"
    tmux.type(f"stty -a > {out}")
    wait_until(lambda: out.exists() and out.read_text(), 5, "stty's output")
    modes = out.read_text().split()
    assert "icanon" in modes and "echo" in modes


def test_top_says_it_is_reconnecting_then_shows_the_mesh_when_it_comes_up(mesh, tmux):
    tmux.type(top_command(mesh.connect) + " 2>&1")
    screen = tmux.wait_for(lambda s: f"reconnecting to {mesh.connect}…" in s, timeout=15,
                           what="a reconnecting status line")
    assert "Traceback" not in screen
    mesh.aggregator()
    mesh.agent("gamma")
    screen = tmux.wait_for(lambda s: "gamma" in s and "● connected" in s, timeout=30, what="gamma once up")
    assert "reconnecting" not in screen


def test_top_exits_cleanly_on_sigterm(mesh, tmux):
    mesh.aggregator()
    tmux.type(top_command(mesh.connect) + "; echo exit=$?")
    tmux.wait_for(lambda s: "perfmesh top" in s and "connected" in s, what="top running")
    pids = subprocess.run(["pgrep", "-f", f"[-]m workers top --connect {mesh.connect}"], capture_output=True,
                          text=True).stdout.split()
    assert pids
    for pid in pids:
        os.kill(int(pid), 15)
    screen = tmux.wait_for(lambda s: "exit=0" in s, timeout=10, what="a clean exit")
    assert "Traceback" not in screen


def test_up_runs_the_same_view_for_a_duration(mesh, tmux):
    """`perfmesh up --duration` starts an aggregator and an agent, shows this host, then stops them all."""
    import socket
    tmux.type(f"cd {ROOT} && PYTHONPATH={ROOT} {sys.executable} -m workers up --port {mesh.base} "
              f"--interval 0.3 --duration 8; echo exit=$?")
    me = socket.gethostname()[:12]
    screen = tmux.wait_for(lambda s: me in s and "● connected" in s and "1 host" in s, what="this host in the view")
    assert "Traceback" not in screen
    tmux.wait_for(lambda s: "exit=0" in s, timeout=20, what="a clean exit")
    assert subprocess.run(["pgrep", "-f", f"[-]m workers (aggregator|agent).*{mesh.base}"]).returncode == 1


def test_top_prints_one_view_when_piped(mesh):
    """Without a terminal, `top --duration`-style runs print the view once instead of a full screen."""
    mesh.aggregator()
    mesh.agent("delta")
    mesh.wait_hosts("delta")
    code = ("import sys; from workers.view import run_top; from workers.transport import parse_endpoint; "
            f"sys.exit(run_top(parse_endpoint({mesh.connect!r}), duration_s=3))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "100", "LINES": "30"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "perfmesh top" in proc.stdout and "delta" in proc.stdout
