"""The host agent: supervises collectors, forwards their batches, runs commands."""

from __future__ import annotations

import logging
import math
import os
import platform
import shutil
import socket
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import zmq

from perfmesh.protocol import wire
from perfmesh.store.audit import AuditLog
from perfmesh.errors import InvalidParameterError, PerfmeshError, UnknownStrategyError, WireError
from perfmesh.config.settings import AGENT_DEFAULTS
from perfmesh.config.validation import AGENT_KINDS
from perfmesh.mesh.commands import MAX_DONE
from perfmesh.model.lru import BoundedLRU
from perfmesh.optimize.engine import OptimizationEngine
from perfmesh.store.spool import Spool
from perfmesh.protocol import kinds

from .loop import Loop, RateLimitedLog
from .supervisor import Supervisor
from .security import HandshakeWatch, secure_client
from .transport import Endpoint, default_state_dir, make_socket

log = logging.getLogger("perfmesh.agent")
SPOOL_SECONDS = 600
MAX_BACKFILL = 5000           # batches answered per request; the aggregator asks again for more
BATCHES_PER_TICK = 4          # cpu, memory, disk, network


@dataclass
class AgentConfig:
    endpoint: Endpoint = field(default_factory=Endpoint)
    name: str = field(default_factory=socket.gethostname)
    interval_s: float = AGENT_DEFAULTS["interval_s"]
    heartbeat_s: float = AGENT_DEFAULTS["heartbeat_s"]
    kinds: tuple[str, ...] = AGENT_KINDS
    commands: bool = True
    allow: tuple[str, ...] | None = None       # None: every registered strategy
    state_dir: Path | None = None              # None: default_state_dir("agent-NAME")
    spool_dir: Path | None = None              # None: the spool lives in memory only
    spool_seconds: float = SPOOL_SECONDS
    local_url: str | None = None               # None: ipc in a temp dir (collector processes)


class CommandRunner:
    """Runs one command at a time on a worker thread; wakes the loop through inproc."""

    def __init__(self, ctx: zmq.Context, engine: OptimizationEngine, url: str) -> None:
        self.engine = engine
        self.url = url
        self.ctx = ctx
        self.queue: deque = deque()
        self.busy = threading.Lock()

    def submit(self, cmd_id: str, strategy: str, params: dict[str, Any]) -> None:
        threading.Thread(target=self._run, args=(cmd_id, strategy, params), daemon=True).start()

    def _run(self, cmd_id: str, strategy: str, params: dict[str, Any]) -> None:
        with self.busy:
            try:
                result = self.engine.apply_optimization(strategy, params).to_dict()
                body = {"id": cmd_id, "status": kinds.STATUS_SUCCESS if result.get("success") else kinds.STATUS_FAILED,
                        "result": result, "error": result.get("error")}
            except PerfmeshError as exc:
                body = {"id": cmd_id, "status": kinds.STATUS_REFUSED, "result": None, "error": str(exc)}
            self.queue.append(body)
            wake = self.ctx.socket(zmq.PUSH)
            wake.setsockopt(zmq.LINGER, 1000)
            wake.connect(self.url)
            wake.send(b"")
            wake.close()


class Agent:
    def __init__(self, config: AgentConfig, engine: OptimizationEngine | None = None) -> None:
        self.config = config
        self.engine = engine or OptimizationEngine()
        capacity = math.ceil(config.spool_seconds / config.interval_s) * BATCHES_PER_TICK
        self.spool = Spool(capacity, config.spool_dir)
        for note in self.spool.repairs:
            log.warning("spool repaired: %s", note)
        self.boot = self.spool.boot          # same stream id across restarts with a spool dir
        self.incarnation = uuid.uuid4().hex  # this process: tells the aggregator we restarted
        self.seq = self.spool.last_seq
        self.ctx = zmq.Context()
        self.tmpdir = tempfile.mkdtemp(prefix="perfmesh-agent-")
        self.local_url = config.local_url or f"ipc://{self.tmpdir}/collectors"
        self.wake_url = f"inproc://wake-{self.boot}"
        self.state_dir = Path(config.state_dir or default_state_dir(f"agent-{config.name}"))
        self.audit = AuditLog(self.state_dir / "audit.log")
        self.done: BoundedLRU[str, dict] = BoundedLRU(MAX_DONE)
        for entry in self.audit.entries():      # replays stay replays across restarts
            if entry.get("event") == "result" and isinstance(entry.get("result"), dict):
                self._remember(entry["result"])
        self.last_from_aggregator = time.monotonic()
        self.aggregator_alive = True
        self.warn = RateLimitedLog()
        self.counters = {"batches_forwarded": 0, "bad_local_frames": 0, "bad_control_frames": 0,
                         "commands_run": 0, "commands_refused": 0, "batches_backfilled": 0}

        self.local = make_socket(self.ctx, zmq.SUB, heartbeat_ms=0)
        self.local.setsockopt(zmq.SUBSCRIBE, b"")
        self.local.bind(self.local_url)
        self.wake = make_socket(self.ctx, zmq.PULL, heartbeat_ms=0)
        self.wake.bind(self.wake_url)
        self.pub = make_socket(self.ctx, zmq.PUB, hwm=1000)   # the spool, not the socket, holds history
        # no queue for a peer that is away: what it missed comes back from the spool, marked
        # backfilled, rather than late from the socket as if it were live
        self.pub.setsockopt(zmq.IMMEDIATE, 1)
        self.control = make_socket(self.ctx, zmq.DEALER, hwm=capacity + 1000,
                                   routing_id=f"{config.name}/{self.boot}".encode())
        secure_client(config.endpoint, self.pub, self.control)
        self.handshakes = HandshakeWatch([(self.pub, config.endpoint.url("ingest")),
                                          (self.control, config.endpoint.url("control"))])
        self.pub.connect(config.endpoint.url("ingest"))
        self.control.connect(config.endpoint.url("control"))
        self.runner = CommandRunner(self.ctx, self.engine, self.wake_url)
        self.supervisor = Supervisor(list(config.kinds), self.local_url, config.interval_s)

    # -------------------------------------------------------------- helpers
    def strategies(self) -> list[str]:
        if not self.config.commands:
            return []
        names = self.engine.strategies()
        if self.config.allow is not None:
            names = [n for n in names if n in self.config.allow]
        return sorted(names)

    def _send_control(self, kind: str, body: Any) -> None:
        try:
            self.control.send(wire.encode(kind, self.config.name, self.boot, 0, time.time(), body),
                              zmq.NOBLOCK)
        except zmq.Again:
            self.warn.warning("control_full", "control queue to the aggregator is full; message dropped")

    def register(self) -> None:
        self._send_control(kinds.REGISTER, {
            "cpu_count": os.cpu_count() or 1,
            "memory_total_bytes": _memory_total_bytes(),
            "platform": platform.platform(), "python": platform.python_version(),
            "interval_s": self.config.interval_s, "strategies": self.strategies(),
            "commands": self.config.commands, "collectors": self.supervisor.info(),
            "incarnation": self.incarnation})

    # ------------------------------------------------------------- handlers
    def on_local(self) -> None:
        for _ in range(100):
            try:
                frames = self.local.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                body = wire.unpack(frames[-1])
            except WireError as exc:
                self.counters["bad_local_frames"] += 1
                self.warn.warning("local", f"bad frame from a collector: {exc}")
                continue
            self.seq += 1
            frame = wire.encode(kinds.METRICS, self.config.name, self.boot, self.seq, time.time(), body)
            self.spool.append(self.seq, frame)
            self.pub.send_multipart([wire.topic(kinds.EVENT_METRIC, self.config.name), frame])
            self.counters["batches_forwarded"] += 1

    def on_control(self) -> None:
        for _ in range(100):
            try:
                frame = self.control.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.last_from_aggregator = time.monotonic()
            if not self.aggregator_alive:
                self.aggregator_alive = True
                log.warning("aggregator is back; registering again")
                self.register()
            try:
                env = wire.decode(frame)
                if env.kind == kinds.COMMAND:
                    self.on_command(env.body)
                elif env.kind == kinds.BACKFILL:
                    self.on_backfill(env.body)
                elif env.kind == kinds.REPLY and isinstance(env.body, dict) and env.body.get("register"):
                    self.register()
                elif env.kind not in (kinds.HEARTBEAT, kinds.REPLY, kinds.BACKFILL):
                    raise WireError("bad_kind", f"the aggregator sends commands, heartbeats and replies, "
                                                f"not {env.kind!r}")
            except WireError as exc:
                self.counters["bad_control_frames"] += 1
                self.warn.warning("control", f"bad frame from the aggregator: {exc}")

    def on_backfill(self, body: Any) -> None:
        """Resend what the aggregator missed, in order; say which part is gone."""
        if not isinstance(body, dict) or not all(type(body.get(k)) is int for k in ("first", "last")):
            raise WireError("bad_body", "a backfill body must be a map with integer first and last")
        first, last = body["first"], min(body["last"], self.seq)
        if body.get("boot") != self.boot:
            missing = [(first, last)]
        else:
            found, missing = self.spool.get_range(first, min(last, first + MAX_BACKFILL - 1))
            for _, frame in found:
                try:
                    self.control.send(frame, zmq.NOBLOCK)
                except zmq.Again:
                    self.warn.warning("backfill_full", "control queue full while backfilling; the aggregator will ask again")
                    return
            self.counters["batches_backfilled"] += len(found)
        for a, b in missing:
            self._send_control(kinds.REPLY, {"backfill_missing": [a, b], "boot": body.get("boot")})

    def on_command(self, body: Any) -> None:
        if not isinstance(body, dict) or type(body.get("id")) is not str or len(body["id"]) > 128:
            raise WireError("bad_body", "a command body must be a map with a string id of at most 128 characters")
        cmd_id = body["id"]
        self.audit.append({"time": time.time(), "event": "command", "id": cmd_id,
                           "strategy": body.get("strategy"), "params": body.get("params")})
        if cmd_id in self.done:
            self.audit.append({"time": time.time(), "event": "replay", "id": cmd_id})
            self._send_control(kinds.RESULT, {**self.done[cmd_id], "replayed": True})
            return
        refusal = self._refusal(body)
        if refusal is not None:
            self.counters["commands_refused"] += 1
            self._finish({"id": cmd_id, "status": kinds.STATUS_REFUSED, "result": None, "error": refusal})
            return
        self.counters["commands_run"] += 1
        self.runner.submit(cmd_id, body["strategy"], body.get("params") or {})   # validated: a map or none

    def _refusal(self, body: dict) -> str | None:
        strategy, params = body.get("strategy"), body.get("params")
        if not self.config.commands:
            return f"remote commands are disabled on host {self.config.name!r}"
        if type(strategy) is not str:
            return f"strategy must be a string, got {strategy!r:.40}"
        expires = body.get("expires")
        if type(expires) not in (int, float) or not math.isfinite(expires) or expires < time.time():
            return f"command expired or without a finite expiry (expires {expires!r:.40})"
        if strategy not in self.strategies():
            return (f"unknown strategy {strategy!r} on host {self.config.name!r}; "
                    f"available: {', '.join(self.strategies()) or 'none'}")
        try:
            self.engine.validate(strategy, params if params is not None else {})
        except (UnknownStrategyError, InvalidParameterError) as exc:
            return str(exc)
        return None

    def on_wake(self) -> None:
        while True:
            try:
                self.wake.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
        while self.runner.queue:
            self._finish(self.runner.queue.popleft())

    def _remember(self, body: dict) -> None:
        self.done[body["id"]] = body

    def _finish(self, body: dict) -> None:
        self._remember(body)
        self.audit.append({"time": time.time(), "event": "result", "id": body["id"],
                           "outcome": body.get("status"), "result": body})
        self._send_control(kinds.RESULT, body)

    def on_heartbeat(self) -> None:
        if time.monotonic() - self.last_from_aggregator > 3 * self.config.heartbeat_s:
            if self.aggregator_alive:
                log.warning("no word from the aggregator at %s for %.0fs", self.config.endpoint,
                            3 * self.config.heartbeat_s)
            self.aggregator_alive = False
        self._send_control(kinds.HEARTBEAT, {"collectors": self.supervisor.info(),
                                         "seq": self.seq, "counters": dict(self.counters)})

    # ------------------------------------------------------------------ run
    def run(self, loop: Loop | None = None) -> None:
        loop = loop or Loop()
        if threading.current_thread() is threading.main_thread():   # embedded: the app owns signals
            loop.install_signal_handlers()
        loop.on_readable(self.local, self.on_local)
        loop.on_readable(self.control, self.on_control)
        loop.on_readable(self.wake, self.on_wake)
        loop.every(0.5, self._supervise)
        loop.every(self.config.heartbeat_s, self.on_heartbeat, first_in_s=self.config.heartbeat_s)
        self.supervisor.poll()
        self.register()
        try:
            loop.run()
        finally:
            loop.close()
            self.close()

    def _supervise(self) -> None:
        for note in self.supervisor.poll():
            log.warning(note)
        note = self.handshakes.poll(time.monotonic())
        if note:
            log.warning(note)

    def close(self) -> None:
        self.supervisor.stop()
        self.handshakes.close()
        for sock in (self.local, self.wake, self.pub, self.control):
            sock.close(0)
        self.audit.close()
        self.spool.close()
        self.ctx.term()
        shutil.rmtree(self.tmpdir, ignore_errors=True)


def _memory_total_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        return 0


def main(config: AgentConfig) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s agent %(levelname)s %(message)s")
    Agent(config).run()
    return 0
