"""An application joins the mesh: an Agent with no collector processes, on a daemon thread.

``PerformanceManager(mesh="HOST[:BASE]", name=...)`` starts one :class:`AppAgent`. It runs a
normal :class:`workers.agent.Agent` (sequence numbers, spool, backfill, heartbeats, commands
through the application's own ``OptimizationEngine``) with ``kinds=()`` on a thread of its
own with its own :class:`workers.loop.Loop` (no signal handlers: those belong to the
application). In place of collector processes, a timer on the same loop calls ``source(now)``
every ``interval_s`` and publishes the metrics it returns as one batch of category
``application`` on an inproc PUB socket connected to the agent's local SUB socket, so they
travel exactly like a collector's batches.

Strategies the application registers after joining are announced to the aggregator on the
next tick (the agent registers again when its list of strategies changes).

:meth:`AppAgent.stop` (also at interpreter exit) stops the loop, closes every socket and
joins the thread; it returns within about a poll interval (0.1 s).
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import threading
import time
from pathlib import Path
from typing import Callable, Sequence

import zmq

from perfmesh.protocol import wire
from perfmesh.protocol.batch import BatchEncoder
from perfmesh.errors import ConfigError
from perfmesh.model.address import HOST_NAME_RULE, is_host_name
from perfmesh.model.metric import PerformanceMetric
from perfmesh.optimize.engine import OptimizationEngine
from perfmesh.protocol import kinds

from .agent import Agent, AgentConfig
from .loop import Loop
from .security import ClientKeys, secure_client
from .transport import default_state_dir, make_socket, parse_endpoint

log = logging.getLogger("perfmesh.app")
CATEGORY = "application"
_ids = itertools.count()

Source = Callable[[float], Sequence[PerformanceMetric]]


def app_endpoint(address: str, keys: tuple[str | os.PathLike, str | os.PathLike] | None = None,
                 insecure: bool = False):
    """``HOST[:BASE]`` and optional (secret key file, server public key file) -> Endpoint."""
    if type(address) is not str:
        raise ConfigError(f"mesh address {address!r:.80} is invalid; expected 'HOST[:BASE_PORT]'")
    endpoint = parse_endpoint(address)
    if keys is not None:
        if not isinstance(keys, (tuple, list)) or len(keys) != 2:
            raise ConfigError(f"mesh_keys {keys!r:.120} is invalid; expected (SECRET_KEY_FILE, SERVER_PUBLIC_KEY_FILE)")
        endpoint = type(endpoint)(endpoint.host, endpoint.base_port, ClientKeys.load(*keys), insecure)
    elif insecure:
        endpoint = type(endpoint)(endpoint.host, endpoint.base_port, None, True)
    else:
        secure_client(endpoint)     # refuses a remote aggregator without keys, before any socket
    return endpoint


class _AppLoop(Loop):
    """The agent's loop; closes the publisher before the agent closes (and terms) the context."""

    def __init__(self, on_exit: Callable[[], None]) -> None:
        super().__init__()
        self._on_exit = on_exit

    def run(self) -> None:
        try:
            super().run()
        finally:
            self._on_exit()


class AppAgent:
    """One application's membership in the mesh (see the module docstring)."""

    def __init__(self, address: str, name: str, engine: OptimizationEngine, source: Source, *,
                 keys: tuple[str | os.PathLike, str | os.PathLike] | None = None,
                 insecure: bool = False, interval_s: float = 1.0, heartbeat_s: float = 1.0,
                 state_dir: str | os.PathLike | None = None) -> None:
        if not is_host_name(name):
            raise ConfigError(f"mesh name {name!r:.80} is invalid; expected {HOST_NAME_RULE}")
        self.config = AgentConfig(
            endpoint=app_endpoint(address, keys, insecure), name=name, interval_s=interval_s,
            heartbeat_s=heartbeat_s, kinds=(),
            state_dir=Path(state_dir) if state_dir is not None else default_state_dir(f"app-{name}"),
            local_url=f"inproc://perfmesh-app-{os.getpid()}-{next(_ids)}")
        self.engine = engine
        self.source = source
        self.agent: Agent | None = None
        self.batches_published = 0
        self._loop: _AppLoop | None = None
        self._pub: zmq.Socket | None = None
        self._encoder = BatchEncoder()
        self._strategies: list[str] = []
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"perfmesh-app-{name}", daemon=True)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def start(self, timeout_s: float = 10.0) -> "AppAgent":
        """Start the thread; raises what the agent's construction raised (bad keys, ...)."""
        self._thread.start()
        if not self._ready.wait(timeout_s):
            self.stop()
            raise ConfigError(f"the mesh agent {self.name!r} did not start within {timeout_s}s")
        if self._error is not None:
            self._thread.join(timeout_s)
            raise self._error
        atexit.register(self.stop)
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Leave the mesh: stop the loop, close the sockets, join the thread (idempotent)."""
        atexit.unregister(self.stop)
        self._stopping.set()        # seen by the loop's timer even if it has not started yet
        loop = self._loop
        if loop is not None:
            loop.stop()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    # ------------------------------------------------------------ the thread
    def _run(self) -> None:
        try:
            agent = self.agent = Agent(self.config, self.engine)
            self._pub = make_socket(agent.ctx, zmq.PUB, hwm=100, heartbeat_ms=0)
            self._pub.connect(agent.local_url)
            self._loop = _AppLoop(self._close_publisher)
            self._loop.every(self.config.interval_s, self.publish, first_in_s=self.config.interval_s)
            self._loop.every(0.1, self._check_stop)
            self._strategies = agent.strategies()
        except BaseException as exc:  # noqa: BLE001 - handed to start() in the caller's thread
            self._error = exc
            if self._pub is not None:
                self._pub.close(0)
            if self.agent is not None:
                self.agent.close()
            self._ready.set()
            return
        self._ready.set()
        agent.run(self._loop)

    def _check_stop(self) -> None:
        if self._stopping.is_set():
            self._loop.stop()

    def _close_publisher(self) -> None:
        if self._pub is not None:
            self._pub.close(0)
            self._pub = None

    def publish(self) -> None:
        """One tick: the application's metrics as one batch; re-register on new strategies."""
        agent = self.agent
        strategies = agent.strategies()
        if strategies != self._strategies:
            self._strategies = strategies
            agent.register()
        now = time.time()
        metrics = list(self.source(now))
        if not metrics or self._pub is None:
            return
        body = self._encoder.encode(CATEGORY, now, metrics)
        try:
            self._pub.send_multipart([wire.topic(kinds.BATCH, CATEGORY), wire.pack(body)], zmq.NOBLOCK)
            self.batches_published += 1
        except zmq.Again:  # pragma: no cover - inproc with a 100-message buffer
            log.warning("mesh agent %s: local queue full; batch dropped", self.name)
