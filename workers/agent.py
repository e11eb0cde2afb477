"""The host agent: supervises collectors, forwards their batches, runs commands.

A thin loop around :class:`perfmesh.mesh.agent_core.AgentCore`, which decides what to send;
this shell owns the sockets, the command thread, the audit file, the spool and the collectors.
"""

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

from perfmesh.config.settings import AGENT_DEFAULTS
from perfmesh.config.validation import AGENT_KINDS
from perfmesh.protocol import kinds, wire
from perfmesh.store.audit import AuditLog
from perfmesh.errors import PerfmeshError
from perfmesh.mesh.agent_core import (Action, AgentCore, AgentPolicy, Audit, Forward, HostFacts, Resend, Run,
                                      Send, outcome_body, refused_body)
from perfmesh.optimize.engine import OptimizationEngine
from perfmesh.store.spool import Spool

from .loop import Loop, RateLimitedLog
from .sdnotify import Notifier
from .supervisor import Supervisor
from .security import HandshakeWatch, secure_client
from .transport import Endpoint, default_state_dir, make_socket

log = logging.getLogger("perfmesh.agent")
SPOOL_SECONDS = 600
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
    labels: tuple[tuple[str, str], ...] = ()   # --label KEY=VALUE: what group:VALUE targets


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
                body = outcome_body(cmd_id, self.engine.apply_optimization(strategy, params).to_dict())
            except PerfmeshError as exc:
                body = refused_body(cmd_id, str(exc))
            self.queue.append(body)
            wake = self.ctx.socket(zmq.PUSH)
            wake.setsockopt(zmq.LINGER, 1000)
            wake.connect(self.url)
            wake.send(b"")
            wake.close()


class Agent:
    """The shell around :class:`AgentCore`: sockets, the command thread, audit, spool, collectors."""

    def __init__(self, config: AgentConfig, engine: OptimizationEngine | None = None) -> None:
        self.config = config
        self.engine = engine or OptimizationEngine()
        capacity = math.ceil(config.spool_seconds / config.interval_s) * BATCHES_PER_TICK
        self.spool = Spool(capacity, config.spool_dir)
        for note in self.spool.repairs:
            log.warning("spool repaired: %s", note)
        self.ctx = zmq.Context()
        self.tmpdir = tempfile.mkdtemp(prefix="perfmesh-agent-")
        self.local_url = config.local_url or f"ipc://{self.tmpdir}/collectors"
        self.supervisor = Supervisor(list(config.kinds), self.local_url, config.interval_s)
        policy = AgentPolicy(config.name, config.interval_s, config.heartbeat_s, config.commands,
                             config.allow, str(config.endpoint), config.labels)
        self.core = AgentCore(policy, self.spool.boot, uuid.uuid4().hex, self.spool.last_seq,
                              _host_facts(), self.engine, self.supervisor.info, time.monotonic())
        self.boot = self.core.boot           # same stream id across restarts with a spool dir
        self.wake_url = f"inproc://wake-{self.boot}"
        self.state_dir = Path(config.state_dir or default_state_dir(f"agent-{config.name}"))
        self.audit = AuditLog(self.state_dir / "audit.log")
        self.core.restore(self.audit.entries())
        self.warn = RateLimitedLog()

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

    # -------------------------------------------------------------- actions
    def strategies(self) -> list[str]:
        return self.core.strategies()

    def register(self) -> None:
        self.perform([self.core.registration()])

    def perform(self, actions: list[Action]) -> None:
        """Carry out the core's actions in order."""
        for action in actions:
            if isinstance(action, Forward):
                self.spool.append(action.seq, action.frame)
                self.pub.send_multipart([wire.topic(kinds.EVENT_METRIC, self.config.name), action.frame])
            elif isinstance(action, Send):
                self._send_control(action.kind, action.body)
            elif isinstance(action, Resend):
                try:
                    self.control.send(action.frame, zmq.NOBLOCK)
                except zmq.Again:
                    self.warn.warning("backfill_full", "control queue full while backfilling; the aggregator will ask again")
                    return
                self.core.resent()
            elif isinstance(action, Run):
                self.runner.submit(action.cmd_id, action.strategy, action.params)
            elif isinstance(action, Audit):
                self.audit.append(action.entry)
            elif action.limit_key is not None:
                self.warn.warning(action.limit_key, action.text)
            else:
                log.warning(action.text)

    def _send_control(self, kind: str, body: Any) -> None:
        try:
            self.control.send(wire.encode(kind, self.config.name, self.boot, 0, time.time(), body),
                              zmq.NOBLOCK)
        except zmq.Again:
            self.warn.warning("control_full", "control queue to the aggregator is full; message dropped")

    # ------------------------------------------------------------- handlers
    def on_local(self) -> None:
        for _ in range(100):
            try:
                frames = self.local.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.perform(self.core.on_local(frames[-1], time.time()))

    def on_control(self) -> None:
        for _ in range(100):
            try:
                frame = self.control.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.perform(self.core.on_control(frame, time.time(), time.monotonic(), self.spool))

    def on_wake(self) -> None:
        while True:
            try:
                self.wake.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
        while self.runner.queue:
            self.perform(self.core.finished(self.runner.queue.popleft(), time.time()))

    def on_heartbeat(self) -> None:
        self.perform(self.core.heartbeat(time.monotonic()))

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
        # embedded in an application, the agent is not the service systemd watches
        notifier = Notifier() if threading.current_thread() is threading.main_thread() else Notifier({})
        loop.notify_ready(notifier, f"sampling every {self.config.interval_s:g}s, sending to {self.config.endpoint}")
        try:
            loop.run()
        finally:
            notifier.stopping()
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


def _host_facts() -> HostFacts:
    return HostFacts(os.cpu_count() or 1, _memory_total_bytes(), platform.platform(), platform.python_version())


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
