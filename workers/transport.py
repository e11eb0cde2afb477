"""ZeroMQ at the edge: socket construction with explicit limits, endpoints and ports.

Every socket gets an explicit linger, high-water marks, a maximum message size and (for
connection-oriented use) ZMTP heartbeats and a reconnect backoff.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq

from perfmesh.errors import ConfigError
from perfmesh.model.address import DEFAULT_BASE_PORT, DEFAULT_HOST, PORT_OFFSETS, parse_connect
from perfmesh.model.address import is_loopback as is_loopback  # the aggregator, security and the CLI use it
from perfmesh.protocol.wire import MAX_FRAME_BYTES



@dataclass(frozen=True)
class Endpoint:
    """Where the aggregator is, and how to prove who we are to it.

    ``keys`` is a :class:`workers.security.ClientKeys` (CURVE) or None; without keys only a
    loopback address is accepted unless ``insecure``.
    """

    host: str = DEFAULT_HOST
    base_port: int = DEFAULT_BASE_PORT
    keys: Any = field(default=None, compare=False, repr=False)
    insecure: bool = False

    def url(self, role: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp://{host}:{self.base_port + PORT_OFFSETS[role]}"

    def __str__(self) -> str:
        return f"{self.host}:{self.base_port}"


def parse_endpoint(text: str, default_port: int = DEFAULT_BASE_PORT) -> Endpoint:
    """``HOST``, ``HOST:BASE`` or ``[v6]:BASE`` -> Endpoint; a clear error otherwise."""
    return Endpoint(*parse_connect(text, default_port))


def make_socket(ctx: zmq.Context, kind: int, *, hwm: int = 10_000, linger_ms: int = 0,
                heartbeat_ms: int = 1000, max_msg_bytes: int = MAX_FRAME_BYTES + 4096,
                routing_id: bytes | None = None) -> zmq.Socket:
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.LINGER, linger_ms)
    sock.setsockopt(zmq.SNDHWM, hwm)
    sock.setsockopt(zmq.RCVHWM, hwm)
    sock.setsockopt(zmq.MAXMSGSIZE, max_msg_bytes)
    sock.setsockopt(zmq.RECONNECT_IVL, 100)
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, 5000)
    if heartbeat_ms:
        sock.setsockopt(zmq.HEARTBEAT_IVL, heartbeat_ms)
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, heartbeat_ms * 3)
        sock.setsockopt(zmq.HEARTBEAT_TTL, heartbeat_ms * 3)
    if routing_id is not None:
        sock.setsockopt(zmq.ROUTING_ID, routing_id)
    if kind == zmq.ROUTER:
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
    return sock


def bind(sock: zmq.Socket, url: str) -> None:
    try:
        sock.bind(url)
    except zmq.ZMQError as exc:
        raise ConfigError(f"cannot bind {url}: {exc.strerror}") from None


def default_state_dir(role: str) -> Path:
    """Where a process keeps its state unless told: $XDG_STATE_HOME/perfmesh/ROLE
    (~/.local/state/perfmesh/ROLE)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "perfmesh" / role


def endpoint_in_use(exc: BaseException) -> bool:
    return isinstance(exc, zmq.ZMQError) and exc.errno == zmq.EADDRINUSE
