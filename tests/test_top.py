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


PEER_STRINGS_SCRIPT = '''
from rich.console import Console
from perfmesh.views.dashboard import FleetModel
from perfmesh.views.top import TopState
from workers.transport import Endpoint
from workers.view import render
BAD = "\\x1b[2J"
m = FleetModel()
m.apply_event({"type": "metric", "host": "h1", "name": "cpu_percent", "value": 5.0, "unit": "%",
               "timestamp": 1.0, "labels": {}})
m.apply_event({"type": "metric", "host": "h1", "name": "disk_read_bytes_per_s", "value": 5.0, "unit": "B/s",
               "timestamp": 1.0, "labels": {"device": "sd" + BAD + "[red]x[/red]"}})
m.apply_event({"type": "host", "host": "h1", "state": "up", "info": {"cpu_count": "4" + BAD}})
m.apply_event({"type": "command", "host": "h1", "strategy": "gc", "status": "failed", "error": "e" + BAD,
               "timestamp": 2.0})
m.apply_event({"type": "bottleneck", "host": "h1", "kind": "cpu", "description": "d" + BAD + "[bold]b[/bold]"})
state = TopState()
state.detail_host = "h1"
print("BEFORE-MARK")
Console(width=100, height=40).print(render(m, state, Endpoint("127.0.0.1", 1), 100, 40))
print("AFTER-MARK")
'''


def test_top_shows_escape_sequences_and_markup_from_peers_as_text(tmux, tmp_path):
    """Host info, a disk label, a command error and a bottleneck holding ESC [2J and rich markup
    print as visible text on a real terminal: the screen is not cleared, no markup is applied."""
    script = tmp_path / "peer_strings.py"
    script.write_text(PEER_STRINGS_SCRIPT)
    tmux.run("resize-window", "-t", tmux.name, "-x", "100", "-y", "40")
    tmux.type(f"cd {ROOT} && PYTHONPATH={ROOT} {sys.executable} {script}")
    screen = tmux.wait_for(lambda s: "AFTER-MARK" in s or "Traceback" in s, what="the rendered view")
    assert "Traceback" not in screen
    assert "BEFORE-MARK" in screen                     # ESC [2J would have cleared it
    assert "4\\x1b[2J CPUs" in screen
    assert "sd\\x1b[2J[red]x[/red]" in screen
    assert "failed: e\\x1b[2J" in screen
    assert "bottleneck: d\\x1b[2J[bold]b[/bold]" in screen


def test_top_help_direct_sort_keys_reverse_pause_and_down_hosts_after_live_ones(mesh, tmux):
    """A state folder with 20 old hosts (down after a restart): the 2 live ones come first; `?`
    shows the help, `M` sorts by memory, `r` reverses, `p` pauses."""
    import signal
    from tests.recordings import batches
    from tests.test_record_replay import FakeAgent
    from tests.waiting import wait_until
    first = mesh.aggregator()
    agent = FakeAgent(mesh.base)
    old = [f"old{i:02d}" for i in range(20)]
    streams = {h: batches(h, seconds=10_000, breach=(0, 0)) for h in old}
    def sent_and_stored() -> bool:
        for stream in streams.values():
            agent.send(next(stream))
        return sum(h["name"] in old and h["counters"]["batches"] > 2 for h in mesh.status()["hosts"]) == 20
    wait_until(sent_and_stored, 20, "20 old hosts stored")
    agent.close()
    first.send_signal(signal.SIGTERM)
    assert first.wait(15) == 0
    mesh.aggregator()                                   # same state folder: the old hosts come back down
    mesh.agent("zlive1")
    mesh.agent("zlive2")
    mesh.wait_hosts("zlive1", "zlive2", timeout=30)
    tmux.type(top_command(mesh.connect))
    screen = tmux.wait_for(lambda s: "zlive1" in s and "zlive2" in s and "20 down" in s, what="the live hosts")
    rows = [line for line in screen.splitlines() if re.search(r"zlive|old\d\d", line)]
    assert [("zlive" in r) for r in rows[:2]] == [True, True] and "(down)" in rows[2], screen

    tmux.keys("?")
    screen = tmux.wait_for(lambda s: "perfmesh top: keys" in s, what="the help")
    assert "sort by memory" in screen and "reverse the sort order" in screen and "pause" in screen
    tmux.keys("x")                                      # any key closes it
    tmux.wait_for(lambda s: "perfmesh top: keys" not in s and "HOST" in s, what="the fleet again")
    tmux.keys("M")
    tmux.wait_for(lambda s: "sort: memory" in s, what="sort by memory")
    tmux.keys("r")
    screen = tmux.wait_for(lambda s: "sort: memory (reversed)" in s, what="reversed")
    rows = [line for line in screen.splitlines() if re.search(r"zlive|old\d\d", line)]
    assert all("zlive" in r for r in rows[:2]), screen       # still before the down hosts
    tmux.keys("p")
    tmux.wait_for(lambda s: "PAUSED" in s, what="paused")
    tmux.keys("p")
    tmux.wait_for(lambda s: "PAUSED" not in s and "zlive1" in s, what="resumed")
    tmux.keys("q")


def test_top_host_detail_shows_the_alert_log_from_the_store(mesh, tmux, tmp_path):
    from tests.recordings import write_recording
    mesh.aggregator("--replay", str(write_recording(tmp_path / "demo.rec", seconds=10, breach=(2, 7))),
                    "--budget", "cpu_percent=50")
    tmux.type(top_command(mesh.connect))
    tmux.wait_for(lambda s: "web01" in s and "connected" in s, what="web01")
    tmux.keys("Enter")
    screen = tmux.wait_for(lambda s: "Alert log" in s and re.search(r"\d+ +\d\d:\d\d:\d\d +cpu_percent +critical", s),
                           timeout=30, what="the alert log in web01's detail")
    assert "Traceback" not in screen
    tmux.keys("q")
