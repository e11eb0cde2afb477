"""Shared fixtures: real perfmesh processes on random loopback ports."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from tests.waiting import tcp_connected, wait_until

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


def untraced(env: dict[str, str]) -> dict[str, str]:
    """``env`` without coverage's subprocess hook, for a process whose memory or speed a test
    measures (a tracer changes both) or that only generates load for one."""
    return {k: v for k, v in env.items() if k not in ("COVERAGE_PROCESS_CONFIG", "COVERAGE_PROCESS_START")}


@contextlib.contextmanager
def coverage_paused() -> Iterator[None]:
    """Pause this process's coverage tracer, if one runs, while a test builds its inputs with
    third-party code only (a tracer makes hypothesis' generation 2-3x slower, measuring nothing)."""
    try:
        import coverage
        cov = coverage.Coverage.current()
    except ImportError:
        cov = None
    if cov is None:
        yield
        return
    cov.stop()
    try:
        yield
    finally:
        cov.start()


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
        self._ctx = None

    @property
    def ctx(self):
        """The test's own zmq context for in-process api clients (made on first use)."""
        if self._ctx is None:
            import zmq
            self._ctx = zmq.Context()
        return self._ctx

    def spawn(self, *args: str, log: str, traced: bool = True) -> subprocess.Popen:
        """A ``python -m workers ...`` process; ``traced=False`` keeps coverage out of one whose
        memory or speed the test measures."""
        env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_STATE_HOME": str(self.tmp / "xdg-state")}
        out = open(self.tmp / f"{log}.log", "wb")
        proc = subprocess.Popen(perfmesh_cmd(*args), stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                                env=env if traced else untraced(env), start_new_session=True)
        self.procs.append(proc)
        return proc

    def aggregator(self, *extra: str, traced: bool = True) -> subprocess.Popen:
        return self.spawn("aggregator", "--port", str(self.base), "--data", str(self.tmp / "aggregator"),
                          *extra, log="aggregator", traced=traced)

    def agent(self, name: str, *extra: str, interval: str = "0.2", traced: bool = True) -> subprocess.Popen:
        return self.spawn("agent", "--connect", self.connect, "--name", name, "--interval", interval,
                          "--state-dir", str(self.tmp / f"agent-{name}"), *extra, log=f"agent-{name}", traced=traced)

    def cli(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return run_cli(*args, "--connect", self.connect, timeout=timeout)

    def subscribe_bg(self, *args: str) -> subprocess.Popen:
        """A ``perfmesh subscribe --json`` in the background, once it is connected to the stream."""
        proc = subprocess.Popen(perfmesh_cmd("subscribe", "--connect", self.connect, "--json", *args),
                                stdout=subprocess.PIPE, text=True, cwd=ROOT,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        self.procs.append(proc)
        # connected over TCP; its subscription follows in the same ZMTP exchange, long before
        # anything the caller starts next (a process) can publish
        wait_until(tcp_connected(proc.pid, self.base + 2), 15, "the subscriber connected to the stream")
        return proc

    def request(self, body: dict, timeout_s: float = 5.0) -> dict:
        """One api request, in-process (a fresh socket each time: no late reply from an
        aggregator that restarted can answer a later request)."""
        from workers.client import ApiClient, Unreachable
        from workers.transport import Endpoint

        api = ApiClient(Endpoint("127.0.0.1", self.base, None), self.ctx)
        try:
            return json.loads(json.dumps(api.request(body, timeout_s), sort_keys=True))
        except Unreachable as exc:
            raise AssertionError(f"{body.get('op')}: {exc}") from None
        finally:
            api.close()

    def status(self) -> dict:
        """What ``perfmesh status --json`` prints, asked in-process (no interpreter start per
        poll); the CLI's own output is pinned by the tests that run it."""
        return self.request({"op": "status"})

    def history(self, host: str, name: str) -> list[list]:
        """``[timestamp, value, backfilled]`` rows of one series, in-process (for waiting)."""
        return self.request({"op": "history", "host": host, "key": name, "since": 0})["samples"]

    def wait_hosts(self, *names: str, timeout: float = 15.0, collectors: int = 3) -> dict:
        """Until every named host is alive with all collectors running and has sent batches."""
        seen: dict = {}

        def up() -> dict | None:
            seen["status"] = status = self.status()
            hosts = {h["name"]: h for h in status["hosts"]}
            ok = all(n in hosts and hosts[n]["alive"] and hosts[n]["counters"]["batches"] > 3
                     and sum(1 for c in hosts[n]["collectors"] if c["pid"]) == collectors for n in names)
            return status if ok else None
        try:
            return wait_until(up, timeout, f"hosts {names} all up", poll_s=0.1, retry_on=(AssertionError,))
        except AssertionError:
            raise AssertionError(f"hosts {names} not all up within {timeout}s: "
                                 f"{json.dumps(seen.get('status'))[:2000]}\n{self.logs()}") from None

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
        if self._ctx is not None:
            self._ctx.term()
            self._ctx = None


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


@pytest.fixture(scope="module")
def module_mesh(tmp_path_factory):
    """One Mesh for a module's tests that only read from it (stream, status, commands that
    change nothing): its fixture starts the processes once, they stop after the module."""
    m = Mesh(tmp_path_factory.mktemp("mesh"))
    yield m
    m.stop()
