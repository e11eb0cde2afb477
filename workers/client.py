"""Operator and subscriber clients: api requests with deadlines, and the stream."""

from __future__ import annotations

import time
import uuid
from typing import Any, Iterator

import zmq

from perfmesh.protocol import wire
from perfmesh.protocol.batch import SchemaCache, batch_metrics, decode_batch
from perfmesh.errors import PerfmeshError, WireError
from perfmesh.protocol import kinds

from .security import HandshakeWatch, secure_client
from .transport import Endpoint, make_socket


class Unreachable(PerfmeshError):
    """The aggregator did not answer in time."""


class ApiClient:
    def __init__(self, endpoint: Endpoint, ctx: zmq.Context | None = None, name: str = "operator") -> None:
        self.endpoint = endpoint
        self.name = name
        self.ctx = ctx or zmq.Context.instance()
        self.sock = make_socket(self.ctx, zmq.DEALER, heartbeat_ms=0)
        secure_client(endpoint, self.sock)
        self.monitor = self.sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL)
        self.sock.connect(endpoint.url("api"))
        self.boot = uuid.uuid4().hex

    def request(self, body: dict[str, Any], timeout_s: float = 3.0) -> dict[str, Any]:
        self.sock.send(wire.encode(kinds.REQUEST, self.name, self.boot, 0, time.time(), body))
        deadline = time.monotonic() + timeout_s
        while True:
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0 or not self.sock.poll(remaining_ms):
                if self.monitor.poll(0):
                    if self.endpoint.keys is None:
                        raise Unreachable(f"the aggregator at {self.endpoint} requires CURVE keys: give --key "
                                          "SECRET_FILE --server-key PUBLIC_FILE")
                    raise Unreachable(f"the aggregator at {self.endpoint} refused our key "
                                      "(not in its operators/ or subscribers/ allowlist, or a wrong --server-key)")
                raise Unreachable(f"no answer from the aggregator at {self.endpoint} within {timeout_s:g}s "
                                  f"(is `perfmesh aggregator` running there?)")
            env = wire.decode(self.sock.recv())
            if env.kind == kinds.REPLY and isinstance(env.body, dict):
                if "id" in body and env.body.get("id") not in (None, body["id"]):
                    continue   # a late answer to an earlier request
                return env.body

    def status(self, timeout_s: float = 3.0) -> dict[str, Any]:
        return self.request({"op": kinds.OP_STATUS}, timeout_s)

    def history(self, host: str, key: str, since: float, timeout_s: float = 5.0) -> list:
        return self.request({"op": kinds.OP_HISTORY, "host": host, "key": key, "since": since}, timeout_s)["samples"]

    def command(self, host: str, strategy: str, params: dict[str, Any], timeout_s: float = 10.0,
                cmd_id: str | None = None) -> dict[str, Any]:
        body = {"op": kinds.OP_COMMAND, "id": cmd_id or uuid.uuid4().hex, "host": host, "strategy": strategy,
                "params": params, "timeout_s": timeout_s, "operator": self.name}
        return self.request(body, timeout_s + 3.0)

    def alerts(self, host: str | None = None, since: float = 0.0, active: bool = False,
               before: int | None = None, limit: int = 100, timeout_s: float = 5.0) -> dict[str, Any]:
        """One page of the alert log: ``{"alerts": [...], "next": cursor or None}``."""
        body: dict[str, Any] = {"op": kinds.OP_ALERTS, "since": since, "active": active, "limit": limit}
        if host is not None:
            body["host"] = host
        if before is not None:
            body["before"] = before
        return self.request(body, timeout_s)

    def ack(self, alert_id: int, operator: str | None = None, timeout_s: float = 5.0) -> dict[str, Any]:
        """Acknowledge an alert of the log (``operator`` counts only when security is off)."""
        return self.request({"op": kinds.OP_ACK, "id": alert_id, "operator": operator or self.name}, timeout_s)

    def command_many(self, hosts: list[str], strategy: str, params: dict[str, Any],
                     timeout_s: float = 10.0) -> dict[str, dict[str, Any]]:
        """One command per host, all in flight together; each host's answer (a timeout for
        those the aggregator did not answer in time)."""
        pending: dict[str, str] = {}
        for host in hosts:
            cmd_id = uuid.uuid4().hex
            pending[cmd_id] = host
            self.sock.send(wire.encode(kinds.REQUEST, self.name, self.boot, 0, time.time(), {
                "op": kinds.OP_COMMAND, "id": cmd_id, "host": host, "strategy": strategy, "params": params,
                "timeout_s": timeout_s, "operator": self.name}))
        answers: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + timeout_s + 3.0
        while pending:
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0 or not self.sock.poll(remaining_ms):
                break
            env = wire.decode(self.sock.recv())
            if env.kind != kinds.REPLY or not isinstance(env.body, dict):
                continue
            cmd_id = env.body.get("id")
            if cmd_id is None:      # a request the aggregator could not read: answered in order
                cmd_id = next(iter(pending))
            if cmd_id in pending:
                answers[pending.pop(cmd_id)] = env.body
        for host in pending.values():
            answers[host] = {"status": kinds.STATUS_TIMEOUT,
                             "error": f"no answer from the aggregator at {self.endpoint} within {timeout_s:g}s"}
        return answers

    def close(self) -> None:
        self.sock.disable_monitor()
        self.monitor.close(0)
        self.sock.close(0)


def subscription_prefixes(types: list[str], host: str | None, category: str | None,
                          hosts: list[str]) -> list[bytes]:
    """Topic prefixes for the filters; ``hosts`` is used when only a category is given."""
    out = []
    for t in types or list(kinds.EVENT_TYPES):
        if host:
            out.append(wire.topic(t, host, category) if category else wire.topic(t, host))
        elif category:
            out.extend(wire.topic(t, h, category) for h in hosts)
        else:
            out.append(wire.topic(t))
    return out


class Subscriber:
    """Yields stream events as dicts; metric batches are expanded to one event per metric."""

    def __init__(self, endpoint: Endpoint, types: list[str] | None = None, host: str | None = None,
                 category: str | None = None, ctx: zmq.Context | None = None, hosts: list[str] | None = None) -> None:
        self.ctx = ctx or zmq.Context.instance()
        self.types, self.host, self.category = list(types or kinds.EVENT_TYPES), host, category
        self.sock = make_socket(self.ctx, zmq.SUB, hwm=100_000, heartbeat_ms=1000)
        secure_client(endpoint, self.sock)
        self.handshakes = HandshakeWatch([(self.sock, endpoint.url("stream"))])
        self.sock.connect(endpoint.url("stream"))
        self.known_hosts: set[str] = set()
        self.cache = SchemaCache()
        self.bad_frames = 0
        if category and not host:
            # learn hosts as they appear, so a category filter stays a topic prefix
            self.sock.setsockopt(zmq.SUBSCRIBE, wire.topic(kinds.EVENT_HOST))
            self.add_hosts(hosts or [])
        else:
            for p in subscription_prefixes(self.types, host, category, []):
                self.sock.setsockopt(zmq.SUBSCRIBE, p)

    def add_hosts(self, hosts: list[str]) -> None:
        new = [h for h in hosts if h not in self.known_hosts]
        self.known_hosts.update(new)
        for p in subscription_prefixes(self.types, None, self.category, new):
            self.sock.setsockopt(zmq.SUBSCRIBE, p)

    def events(self, timeout_s: float | None = None) -> Iterator[dict[str, Any]]:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            wait_ms = 200 if deadline is None else int((deadline - time.monotonic()) * 1000)
            if wait_ms <= 0:
                return
            if not self.sock.poll(min(wait_ms, 200)):
                self.handshakes.poll(time.monotonic())
                continue
            topic, frame = self.sock.recv_multipart()[:2]
            try:
                yield from self._expand(topic, frame)
            except WireError:
                self.bad_frames += 1

    def _expand(self, topic: bytes, frame: bytes) -> Iterator[dict[str, Any]]:
        env = wire.decode(frame)
        if env.kind == kinds.METRICS:
            schema, ts, values = decode_batch(env.body, self.cache)
            for m in batch_metrics(schema, ts, values):
                yield {"type": kinds.EVENT_METRIC, "host": env.host, **m}
        elif env.kind == kinds.EVENT and isinstance(env.body, dict):
            body = env.body
            if body.get("type") == kinds.EVENT_HOST and self.category and not self.host:
                self.add_hosts([str(body.get("host"))])
                if kinds.EVENT_HOST not in self.types or not topic.endswith(f"{self.category}/".encode()):
                    return
            yield body

    def close(self) -> None:
        self.handshakes.close()
        self.sock.close(0)
