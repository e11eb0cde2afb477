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
from perfmesh.protocol.wire import MAX_FRAME_BYTES

DEFAULT_HOST = "127.0.0.1"
DEFAULT_BASE_PORT = 7700
PORT_OFFSETS = {"ingest": 0, "control": 1, "stream": 2, "api": 3}


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
    text = text.strip()
    host, port = text, default_port
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise ConfigError(f"endpoint {text!r}: missing ']' after an IPv6 address; expected [ADDR]:PORT")
        host, rest = text[1:close], text[close + 1:]
        if rest:
            if not rest.startswith(":"):
                raise ConfigError(f"endpoint {text!r}: expected ':PORT' after ']'")
            port = _port(text, rest[1:])
    elif text.count(":") == 1:
        host, raw = text.split(":")
        port = _port(text, raw)
    if not host:
        raise ConfigError(f"endpoint {text!r}: empty host; expected HOST[:BASE_PORT]")
    return Endpoint(host, port)


def _port(text: str, raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= 65535 - len(PORT_OFFSETS):
        raise ConfigError(f"endpoint {text!r}: port {raw!r} is not a number from 1 to {65535 - len(PORT_OFFSETS)}")
    return int(raw)


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


def is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def endpoint_in_use(exc: BaseException) -> bool:
    return isinstance(exc, zmq.ZMQError) and exc.errno == zmq.EADDRINUSE
