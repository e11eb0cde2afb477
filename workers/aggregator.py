"""The aggregator process: binds ingest, control, stream and api sockets around a Fleet."""

from __future__ import annotations

import logging
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

import zmq

from perfmesh import wire
from perfmesh.errors import WireError
from perfmesh.fleet import Event, Fleet, FleetConfig

from .loop import Loop, RateLimitedLog
from .transport import Endpoint, bind, make_socket

log = logging.getLogger("perfmesh.aggregator")
NAME = "aggregator"
INGEST_BURST = 2000


class Sink(Protocol):
    """Something that watches the aggregator from beside the loop (exporter, alert delivery).

    Sinks are called on the loop thread and must return at once: hand work to a thread of
    their own. ``on_snapshot`` gets a fresh status dict (shared by all sinks: read it, never mutate it) (with each host's latest
    values when ``needs_latest``) once per snapshot interval.
    """

    needs_latest: bool

    def on_events(self, events: list[Event], now: float) -> None: ...
    def on_snapshot(self, snapshot: dict[str, Any], now: float) -> None: ...
    def close(self) -> None: ...


@dataclass
class AggregatorConfig:
    endpoint: Endpoint = field(default_factory=Endpoint)
    fleet: FleetConfig = field(default_factory=FleetConfig)
    stream_hwm: int = 100_000
    snapshot_interval_s: float = 1.0


class Aggregator:
    def __init__(self, config: AggregatorConfig, sinks: list[Sink] | None = None) -> None:
        self.config = config
        self.sinks: list[Sink] = list(sinks or [])
        self.fleet = Fleet(config.fleet)
        self.boot = uuid.uuid4().hex
        self.stream_seq = 0
        self.warn = RateLimitedLog()
        self.ctx = zmq.Context()
        ep = config.endpoint
        self.ingest = make_socket(self.ctx, zmq.SUB, hwm=1_000_000)
        self.ingest.setsockopt(zmq.SUBSCRIBE, b"")
        self.control = make_socket(self.ctx, zmq.ROUTER, hwm=100_000)
        self.stream = make_socket(self.ctx, zmq.XPUB, hwm=config.stream_hwm)
        self.api = make_socket(self.ctx, zmq.ROUTER, hwm=10_000)
        self.sockets = [self.ingest, self.control, self.stream, self.api]
        try:
            for sock, role in zip(self.sockets, ("ingest", "control", "stream", "api")):
                bind(sock, ep.url(role))
        except Exception:
            self.close()
            raise

    # --------------------------------------------------------------- output
    def publish(self, events: list[Event] | tuple) -> None:
        if not events:
            return
        for sink in self.sinks:
            sink.on_events(list(events), time.time())
        for ev in events:
            self.stream_seq += 1
            body = {**ev.to_dict(), "category": ev.category}
            frame = wire.encode("event", NAME, self.boot, self.stream_seq, time.time(), body)
            self._send_stream(wire.topic(ev.type, ev.host, ev.category), frame)

    def _send_stream(self, topic: bytes, frame: bytes) -> None:
        try:
            self.stream.send_multipart([topic, frame], zmq.NOBLOCK)
        except zmq.Again:   # XPUB drops for slow subscribers; never block ingest
            pass

    def _reply(self, sock: zmq.Socket, route: bytes, kind: str, body: Any, host: str = NAME) -> None:
        try:
            sock.send_multipart([route, wire.encode(kind, host, self.boot, 0, time.time(), body)], zmq.NOBLOCK)
        except zmq.ZMQError as exc:   # peer gone (ROUTER_MANDATORY) or full
            self.warn.warning("reply", f"cannot answer {route!r:.60}: {exc}")

    # --------------------------------------------------------------- ingest
    def on_ingest(self) -> None:
        fleet, recv = self.fleet, self.ingest.recv_multipart
        now = time.time()
        for _ in range(INGEST_BURST):
            try:
                frames = recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames) != 2:
                fleet.count_bad("frame_count")
                continue
            frame = frames[1]
            host = None
            try:
                env = wire.decode(frame)
                host = env.host
                if env.kind != "metrics":
                    raise WireError("bad_kind", f"ingest accepts metrics only, got {env.kind!r}")
                schema, events = fleet.ingest(env, now)
            except WireError as exc:
                fleet.count_bad(exc.reason, host)
                self.warn.warning(exc.reason, f"dropped a bad ingest frame: {exc}")
                continue
            if schema is not None:
                topic = schema.extra.get(("topic", host))
                if topic is None:
                    topic = schema.extra[("topic", host)] = wire.topic("metric", host, schema.category)
                self._send_stream(topic, frame)
            if events:
                self.publish(events)

    # -------------------------------------------------------------- control
    def on_control(self) -> None:
        for _ in range(1000):
            try:
                frames = self.control.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames) != 2:
                self.fleet.count_bad("frame_count")
                continue
            route, frame = frames
            host = None
            now = time.time()
            try:
                env = wire.decode(frame)
                host = env.host
                self._control_message(route, env, now)
            except WireError as exc:
                self.fleet.count_bad(exc.reason, host)
                self.warn.warning("control", f"dropped a bad control frame: {exc}")

    def _control_message(self, route: bytes, env: wire.Envelope, now: float) -> None:
        if env.kind == "register":
            self.publish(self.fleet.register(env, route, now))
            self._reply(self.control, route, "heartbeat", {"registered": True})
        elif env.kind == "heartbeat":
            events, must_register = self.fleet.heartbeat(env, route, now)
            self.publish(events)
            self._reply(self.control, route, "reply" if must_register else "heartbeat",
                        {"register": True} if must_register else {})
        elif env.kind == "result":
            cmd, result, events = self.fleet.command_result(env, now)
            if cmd is not None and cmd.origin is not None:
                self._reply(self.api, cmd.origin, "reply", result)
            self.publish(events)
        else:
            raise WireError("bad_kind", f"control accepts register, heartbeat and result, got {env.kind!r}")

    # ------------------------------------------------------------------ api
    def on_api(self) -> None:
        for _ in range(1000):
            try:
                frames = self.api.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames) != 2:
                self.fleet.count_bad("frame_count")
                continue
            route, frame = frames
            try:
                env = wire.decode(frame)
                if env.kind != "request" or not isinstance(env.body, dict):
                    raise WireError("bad_kind", "api accepts request maps only")
                self._request(route, env.body, time.time())
            except WireError as exc:
                self.fleet.count_bad(exc.reason)
                self._reply(self.api, route, "reply", {"status": "error", "error": str(exc)})

    def _request(self, route: bytes, body: dict, now: float) -> None:
        op = body.get("op")
        if op == "status":
            self._reply(self.api, route, "reply", {"status": "ok", **self.fleet.status(now)})
        elif op == "history":
            host, key, since = body.get("host"), body.get("key"), body.get("since", 0.0)
            if type(host) is not str or type(key) is not str or not isinstance(since, (int, float)):
                raise WireError("bad_body", "history needs host (str), key (str), since (number)")
            samples = self.fleet.history(host, key, float(since))
            self._reply(self.api, route, "reply", {"status": "ok", "samples": samples})
        elif op == "command":
            self._command(route, body, now)
        else:
            raise WireError("bad_op", f"unknown api op {op!r:.40}; expected status, history or command")

    def _command(self, route: bytes, body: dict, now: float) -> None:
        cmd_id, host, strategy = body.get("id"), body.get("host"), body.get("strategy")
        timeout_s = body.get("timeout_s", self.config.fleet.command_timeout_s)
        if not all(type(v) is str for v in (cmd_id, host, strategy)) or \
                not isinstance(timeout_s, (int, float)) or not 0 < timeout_s <= 3600:
            raise WireError("bad_body", "command needs id, host, strategy (strings) and 0 < timeout_s <= 3600")
        cmd, reply = self.fleet.start_command(cmd_id, host, strategy, body.get("params", {}),
                                              route, now, float(timeout_s), body.get("operator", ""))
        if reply is not None:
            self._reply(self.api, route, "reply", reply)
            return
        self._send_command(cmd)

    def _send_command(self, cmd) -> None:
        route = self.fleet.hosts[cmd.host].route
        self._reply(self.control, route, "command", cmd.to_wire())

    # ---------------------------------------------------------------- ticks
    def on_tick(self) -> None:
        events, to_send, answers = self.fleet.tick(time.time())
        self.publish(events)
        for cmd in to_send:
            self._send_command(cmd)
        for cmd, result in answers:
            if cmd.origin is not None:
                self._reply(self.api, cmd.origin, "reply", result)

    def on_snapshot(self) -> None:
        if not self.sinks:
            return
        now = time.time()
        snapshot = self.fleet.status(now)
        if any(s.needs_latest for s in self.sinks):
            snapshot["latest"] = {name: h.history.latest() for name, h in self.fleet.hosts.items()}
        for sink in self.sinks:
            sink.on_snapshot(snapshot, now)

    def on_stream(self) -> None:
        # subscription messages from XPUB: nothing to do but drain them
        for _ in range(1000):
            try:
                self.stream.recv(zmq.NOBLOCK)
            except zmq.Again:
                return

    def run(self, loop: Loop | None = None) -> None:
        loop = loop or Loop()
        loop.install_signal_handlers()
        loop.on_readable(self.ingest, self.on_ingest)
        loop.on_readable(self.control, self.on_control)
        loop.on_readable(self.api, self.on_api)
        loop.on_readable(self.stream, self.on_stream)
        loop.every(0.25, self.on_tick)
        loop.every(self.config.snapshot_interval_s, self.on_snapshot)
        try:
            loop.run()
        finally:
            self.close()

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
        for sock in self.sockets:
            sock.close(0)
        self.ctx.term()


def main(config: AggregatorConfig, sinks: list[Sink] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s aggregator %(levelname)s %(message)s")
    try:
        agg = Aggregator(config, sinks)
    except BaseException:
        for sink in sinks or ():
            sink.close()
        raise
    log.info("listening on %s (ingest, control, stream, api: ports %d-%d)", config.endpoint.host,
             config.endpoint.base_port, config.endpoint.base_port + 3)
    agg.run()
    return 0
