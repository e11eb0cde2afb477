"""Shared fixtures: real perfmesh processes on random loopback ports."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_base_port(span: int = 4) -> int:
    """A base port with ``span`` consecutive free loopback ports."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + span >= 65535:
            continue
        socks = []
        try:
            for p in range(base, base + span):
                t = socket.socket()
                socks.append(t)
                t.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for t in socks:
                t.close()
    raise RuntimeError("no free port range")


def perfmesh_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "workers", *args]


def run_cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(perfmesh_cmd(*args), capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


class Mesh:
    """Starts an aggregator and agents as real processes; stops them all at the end."""

    def __init__(self, tmp_path: Path) -> None:
        self.base = free_base_port()
        self.connect = f"127.0.0.1:{self.base}"
        self.procs: list[subprocess.Popen] = []
        self.tmp = tmp_path

    def spawn(self, *args: str, log: str) -> subprocess.Popen:
        out = open(self.tmp / f"{log}.log", "wb")
        proc = subprocess.Popen(perfmesh_cmd(*args), stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                                env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True)
        self.procs.append(proc)
        return proc

    def aggregator(self, *extra: str) -> subprocess.Popen:
        return self.spawn("aggregator", "--port", str(self.base), "--data", str(self.tmp / "aggregator"),
                          *extra, log="aggregator")

    def agent(self, name: str, *extra: str, interval: str = "0.2") -> subprocess.Popen:
        return self.spawn("agent", "--connect", self.connect, "--name", name, "--interval", interval,
                          "--state-dir", str(self.tmp / f"agent-{name}"), *extra, log=f"agent-{name}")

    def cli(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return run_cli(*args, "--connect", self.connect, timeout=timeout)

    def subscribe_bg(self, *args: str) -> subprocess.Popen:
        """A ``perfmesh subscribe --json`` in the background, given a moment to connect."""
        proc = subprocess.Popen(perfmesh_cmd("subscribe", "--connect", self.connect, "--json", *args),
                                stdout=subprocess.PIPE, text=True, cwd=ROOT,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        self.procs.append(proc)
        time.sleep(1.0)
        return proc

    def status(self) -> dict:
        res = self.cli("status", "--json")
        assert res.returncode == 0, res.stderr
        return json.loads(res.stdout)

    def wait_hosts(self, *names: str, timeout: float = 15.0, collectors: int = 3) -> dict:
        """Until every named host is alive with all collectors running and has sent batches."""
        deadline = time.monotonic() + timeout
        status: dict = {}
        while time.monotonic() < deadline:
            status = self.status()
            hosts = {h["name"]: h for h in status["hosts"]}
            if all(n in hosts and hosts[n]["alive"] and hosts[n]["counters"]["batches"] > 3
                   and sum(1 for c in hosts[n]["collectors"] if c["pid"]) == collectors for n in names):
                return status
            time.sleep(0.2)
        raise AssertionError(f"hosts {names} not all up within {timeout}s: {json.dumps(status)[:2000]}\n{self.logs()}")

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in self.tmp.glob("*.log"))

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)


@pytest.fixture(autouse=True)
def isolated_state(tmp_path, monkeypatch):
    """Every process a test starts keeps its default state (aggregator data, agent audit log)
    under the test's own folder, never in the developer's home."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))   # no operator's [client]
    for name in ("PERFMESH_CONFIG", "PERFMESH_CONNECT", "PERFMESH_KEY", "PERFMESH_SERVER_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def mesh(tmp_path):
    m = Mesh(tmp_path)
    yield m
    m.stop()
