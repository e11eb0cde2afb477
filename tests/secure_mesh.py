"""Helpers for the security and fuzz tests: keys per role, CURVE clients, a fake aggregator.

Run as ``python -m tests.secure_mesh CONNECT NAME SECRET SERVER_PUBLIC STATE_DIR`` it is an
application that embeds the agent with strategies of its own (string parameters, a
schema-less one), each run recorded in ``STATE_DIR/ran.log``.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import zmq

from perfmesh.protocol import wire
from tests.waiting import wait_until
from workers.client import ApiClient
from workers.security import ROLES, ClientKeys, load_secret, new_keypair
from workers.transport import Endpoint


class Keys:
    """An aggregator's ``--keys`` folder and client key pairs filed under a role."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "keys"
        self.clients = root / "client-keys"
        new_keypair("aggregator", self.dir)
        for role in ROLES:
            (self.dir / role).mkdir()
        self.server_public = self.dir / "aggregator.key"
        self.server_secret = self.dir / "aggregator.key_secret"

    def add(self, role: str, name: str) -> Path:
        """A new key pair allowed for ``role``; returns its secret file."""
        public, secret = new_keypair(name, self.clients / role)
        shutil.copy(public, self.dir / role / f"{name}.key")
        return secret

    def stray(self, name: str) -> Path:
        """A key pair no allowlist knows."""
        return new_keypair(name, self.clients / "stray")[1]

    def remove(self, role: str, name: str) -> None:
        (self.dir / role / f"{name}.key").unlink()

    def args(self, secret: Path) -> list[str]:
        return ["--key", str(secret), "--server-key", str(self.server_public)]

    def client(self, secret: Path) -> ClientKeys:
        return ClientKeys.load(secret, self.server_public)

    def endpoint(self, base: int, secret: Path) -> Endpoint:
        return Endpoint("127.0.0.1", base, self.client(secret))

    def wait_allowed(self, base: int, secret: Path, role: str, timeout_s: float = 10.0) -> None:
        """Until the aggregator on ``base`` accepts this key's CURVE handshake (it reloads its
        allowlists every second): on the control port for agents, on the api port otherwise."""
        url = f"tcp://127.0.0.1:{base + (1 if role == 'agents' else 3)}"
        ctx = zmq.Context()

        def accepted() -> bool:
            sock = curve(ctx.socket(zmq.DEALER), self, secret)
            sock.linger = 0
            try:
                return wait_handshake(sock, url, timeout_s=2.0)
            finally:
                sock.close(0)
        try:
            wait_until(accepted, timeout_s, f"the aggregator accepting {role} key {secret.stem}", poll_s=0.1)
        finally:
            ctx.term()


def curve(sock: zmq.Socket, keys: Keys, secret: Path) -> zmq.Socket:
    keys.client(secret).apply(sock)
    return sock


def wait_handshake(sock: zmq.Socket, url: str, timeout_s: float = 5.0) -> bool:
    """Connect ``sock`` to ``url``; True once the ZMTP (CURVE) handshake succeeded."""
    mon = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_AUTH
                                  | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
    sock.connect(url)
    ok = False
    try:
        if mon.poll(int(timeout_s * 1000)):
            from zmq.utils.monitor import recv_monitor_message
            ok = recv_monitor_message(mon)["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED
    finally:
        sock.disable_monitor()
        mon.close(0)
    return ok


class Operator:
    """An in-process api client with a key (the CLI's ApiClient)."""

    def __init__(self, keys: Keys, base: int, secret: Path) -> None:
        self.ctx = zmq.Context()
        self.api = ApiClient(keys.endpoint(base, secret), self.ctx, name=secret.stem)

    def __enter__(self) -> "Operator":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def status(self, timeout_s: float = 3.0) -> dict[str, Any]:
        return self.api.status(timeout_s)

    def command(self, host: str, strategy: str, params: dict | None = None, *, cmd_id: str | None = None,
                timeout_s: float = 10.0) -> dict[str, Any]:
        return self.api.command(host, strategy, params or {}, timeout_s, cmd_id)

    def hosts(self) -> dict[str, dict]:
        return {h["name"]: h for h in self.status()["hosts"]}

    def wait_hosts(self, *names: str, timeout_s: float = 15.0, logs: str = "") -> dict[str, dict]:
        seen: dict[str, dict] = {}

        def up() -> dict[str, dict] | None:
            seen.clear()
            seen.update(self.hosts())
            return seen if all(n in seen and seen[n]["alive"] and seen[n]["registered"]
                               and seen[n]["counters"]["batches"] > 3 for n in names) else None
        try:   # the aggregator may still be starting: Unreachable counts as "not yet"
            return dict(wait_until(up, timeout_s, f"hosts {names} up", poll_s=0.1, retry_on=(Exception,)))
        except AssertionError:
            raise AssertionError(f"hosts {names} not up within {timeout_s}s: {json.dumps(seen)[:1500]}\n{logs}") from None

    def close(self) -> None:
        self.api.close()
        self.ctx.term()


def audit(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def metric_frame(host: str, seq: int, name: str, value: float = 1.0, boot: str = "b00t") -> bytes:
    """A well-formed metric batch envelope with one series."""
    from perfmesh.protocol.batch import make_body
    schema = wire.pack(["application", [[name, "", {}]]])
    return wire.encode("metrics", host, boot, seq, time.time(), make_body(schema, time.time(), [value]))


class FakeAggregator:
    """Binds the ingest SUB and control ROUTER on ``base`` (CURVE server with the aggregator's
    key, no ZAP: any client key is accepted) and speaks to agents by hand."""

    def __init__(self, base: int, keys: Keys | None) -> None:
        self.ctx = zmq.Context()
        self.boot = "fake-aggregator"
        self.ingest = self.ctx.socket(zmq.SUB)
        self.ingest.setsockopt(zmq.SUBSCRIBE, b"")
        self.control = self.ctx.socket(zmq.ROUTER)
        self.control.setsockopt(zmq.ROUTER_MANDATORY, 1)
        for s in (self.ingest, self.control):
            s.linger = 0
            s.sndhwm = 0
            s.rcvhwm = 0
            if keys is not None:
                server = load_secret(keys.server_secret)
                s.curve_secretkey, s.curve_publickey, s.curve_server = server.secret, server.public, True
        self.ingest.bind(f"tcp://127.0.0.1:{base}")
        self.control.bind(f"tcp://127.0.0.1:{base + 1}")
        self.routes: dict[str, bytes] = {}
        self.inbox: list[wire.Envelope] = []

    def _pump(self, timeout_ms: int) -> wire.Envelope | None:
        if not self.control.poll(timeout_ms):
            return None
        route, frame = self.control.recv_multipart()
        env = wire.decode(frame)
        self.routes[env.host] = route
        if env.kind in ("register", "heartbeat"):   # keep the agent content: it hears from us
            self.control.send_multipart([route, wire.encode("heartbeat", "aggregator", self.boot, 0, time.time(), {})])
        return env

    def expect(self, kind: str, host: str | None = None, timeout_s: float = 10.0, where=None) -> wire.Envelope:
        """The next control message of ``kind`` (from ``host``) that satisfies ``where``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            env = self._pump(100)
            if env is None:
                continue
            self.inbox.append(env)
            del self.inbox[:-200]
            if env.kind == kind and (host is None or env.host == host) and (where is None or where(env.body)):
                return env
        raise AssertionError(f"no {kind} from {host} within {timeout_s}s; last seen: "
                             f"{[(e.kind, e.host) for e in self.inbox[-10:]]}")

    def send(self, host: str, *frames: bytes) -> None:
        self.control.send_multipart([self.routes[host], *frames])

    def command(self, host: str, body: dict) -> None:
        self.send(host, wire.encode("command", "aggregator", self.boot, 0, time.time(), body))

    def result(self, host: str, cmd_id: str, timeout_s: float = 10.0) -> dict:
        return self.expect("result", host, timeout_s, where=lambda b: isinstance(b, dict) and b.get("id") == cmd_id).body

    def metrics(self, timeout_s: float) -> list[wire.Envelope]:
        """Metric envelopes that arrive on ingest within ``timeout_s`` (control is kept pumped)."""
        out = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            while self.ingest.poll(0):
                out.append(wire.decode(self.ingest.recv_multipart()[-1]))
            self._pump(50)
        return out

    def close(self) -> None:
        self.ingest.close(0)
        self.control.close(0)
        self.ctx.term()


# ------------------------------------------------------------ an embedding application
def _embedded_agent(connect: str, name: str, secret: str, server_public: str, state_dir: str) -> int:
    from perfmesh.optimize.engine import OptimizationEngine
    from perfmesh.model.params import Param
    from workers.agent import Agent, AgentConfig
    from workers.security import ClientKeys
    from workers.transport import parse_endpoint

    ran = Path(state_dir) / "ran.log"
    Path(state_dir).mkdir(parents=True, exist_ok=True)

    def record(config: dict) -> dict:
        with open(ran, "a") as f:
            f.write(json.dumps(config, sort_keys=True) + "\n")
        return {"cleared": True}

    engine = OptimizationEngine()
    engine.register_optimization_strategy("clear_cache", record, schema={
        "name": Param(str, required=True, max_len=32, description="cache to clear")})
    engine.register_optimization_strategy("flush", record)   # no schema: free params, screened
    ep = parse_endpoint(connect)
    config = AgentConfig(endpoint=Endpoint(ep.host, ep.base_port, ClientKeys.load(secret, server_public)),
                         name=name, interval_s=0.2, state_dir=Path(state_dir))
    Agent(config, engine).run()
    return 0


if __name__ == "__main__":
    sys.exit(_embedded_agent(*sys.argv[1:6]))
