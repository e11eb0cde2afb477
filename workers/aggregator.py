"""The aggregator process: binds ingest, control, stream and api sockets around a Fleet."""

from __future__ import annotations

import logging
import sys
import time
import uuid
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Protocol

import zmq

from perfmesh.config.settings import AGGREGATOR_DEFAULTS
from perfmesh.model.metric import CATEGORIES
from perfmesh.protocol import kinds, wire
from perfmesh.store.audit import AuditLog
from perfmesh.errors import ConfigError, WireError
from perfmesh.mesh import admission
from perfmesh.mesh.admission import AGENT_ROLES, API_ROLES
from perfmesh.mesh.fleet import Event, Fleet, FleetConfig

from .loop import Loop, RateLimitedLog
from .operators import OperatorDesk
from .persist import Persistence
from .security import Authenticator, check_libzmq, load_secret, make_server
from .sdnotify import Notifier
from .transport import Endpoint, bind, default_state_dir, is_loopback, make_socket

log = logging.getLogger("perfmesh.aggregator")
NAME = "aggregator"
SOCKET_DOMAINS = {"ingest": "agents", "control": "agents", "api": "api", "stream": "stream"}
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
    snapshot_interval_s: float = AGGREGATOR_DEFAULTS["snapshot_interval_s"]
    keys_dir: Path | None = None
    insecure: bool = False
    data_dir: Path = field(default_factory=lambda: default_state_dir("aggregator"))
    raw_window_s: float = 86400.0
    rollup_retention_s: float = 30 * 86400.0


class Aggregator:
    def __init__(self, config: AggregatorConfig, sinks: list[Sink] | None = None) -> None:
        self.config = config
        self.sinks: list[Sink] = list(sinks or [])
        self.batch_sinks = [s for s in self.sinks if hasattr(s, "on_batch")]   # remote write
        self.fleet = Fleet(config.fleet)
        self.metric_topics: dict[tuple[str, str], bytes] = {}   # (host, category) -> stream topic
        self.boot = uuid.uuid4().hex
        self.stream_seq = 0
        self.warn = RateLimitedLog()
        self.loop: Loop | None = None
        self.ctx = zmq.Context()
        self.auth: Authenticator | None = None
        self.server_keys = None
        self.sockets: list[zmq.Socket] = []
        self._stream_bound = True
        self.audit = AuditLog(Path(config.data_dir) / "audit.log")
        self.persist: Persistence | None = None
        try:
            self.persist = Persistence(Path(config.data_dir) / "perfmesh.db", config.raw_window_s,
                                       config.rollup_retention_s)
            self._resume()
            self._secure(config)
            self.ingest = self._socket(zmq.SUB, "ingest", hwm=1_000_000)
            self.ingest.setsockopt(zmq.SUBSCRIBE, b"")
            self.control = self._socket(zmq.ROUTER, "control", hwm=100_000)
            self.stream = self._socket(zmq.XPUB, "stream", hwm=config.stream_hwm)
            self.api = self._socket(zmq.ROUTER, "api", hwm=10_000)
            self.desk = OperatorDesk(self.fleet, self.persist, self.audit, self.warn,
                                     lambda route, body: self._reply(self.api, route, "reply", body),
                                     self._send_command, config.fleet.command_timeout_s)
        except Exception:
            self.close()
            raise

    def _resume(self) -> None:
        """Hosts, their last sequence numbers and outstanding gaps from the state file."""
        self.persist.resume(self.fleet, time.time())
        if self.fleet.hosts:
            log.info("resumed %d hosts from %s", len(self.fleet.hosts), self.persist.store.path)

    def _persist_hosts(self) -> None:
        if self.persist is not None:
            self.persist.save_hosts(self.fleet)

    def _secure(self, config: AggregatorConfig) -> None:
        """CURVE + ZAP when a keys folder is given; otherwise loopback only unless --insecure."""
        if config.keys_dir is None:
            if not is_loopback(config.endpoint.host) and not config.insecure:
                raise ConfigError(
                    f"refusing to bind {config.endpoint.host} without encryption: give --keys DIR "
                    "(see `perfmesh keys new`) or --insecure to accept anyone on the network")
            return
        check_libzmq()
        self.server_keys = load_secret(Path(config.keys_dir) / "aggregator.key_secret")
        self.auth = Authenticator(self.ctx, config.keys_dir)
        self.auth.start()

    def _socket(self, kind: int, role: str, hwm: int) -> zmq.Socket:
        sock = make_socket(self.ctx, kind, hwm=hwm)
        if self.server_keys is not None:
            make_server(sock, self.server_keys, SOCKET_DOMAINS[role])
        self.sockets.append(sock)
        bind(sock, self.config.endpoint.url(role))
        return sock

    def _identity(self, frame: zmq.Frame, roles: tuple[str, ...]) -> tuple[str, str] | None:
        """(role, name) of an authenticated sender; ('', '') when security is off; None if refused."""
        if self.auth is None:
            return ("", "")
        return self.auth.user(frame.get("User-Id"), roles)

    def on_reload_keys(self) -> None:
        """Pick up key changes; a removed subscriber/operator key is cut off by rebinding the stream."""
        if self.auth is None:
            return
        lost = self.auth.reload()
        if lost & {"subscribers", "operators"}:
            old = self.stream
            if self.loop is not None:
                self.loop.forget(old)
            self.sockets.remove(old)
            old.close(0)
            self.stream = make_socket(self.ctx, zmq.XPUB, hwm=self.config.stream_hwm)
            make_server(self.stream, self.server_keys, SOCKET_DOMAINS["stream"])
            self.sockets.append(self.stream)
            if self.loop is not None:
                self.loop.on_readable(self.stream, self.on_stream)
            self._stream_bound = False
            log.info("stream socket rebound: a subscriber key was removed")
        if not self._stream_bound:
            self._bind_stream()

    def _bind_stream(self, wait_s: float = 1.0) -> None:
        """Bind the new stream socket; the old one's listener closes asynchronously, so the
        port may be busy for a moment. Until bound, the stream just drops (retried each second)."""
        url = self.config.endpoint.url("stream")
        deadline = time.monotonic() + wait_s
        while True:
            try:
                self.stream.bind(url)
            except zmq.ZMQError as exc:
                if exc.errno == zmq.EADDRINUSE and time.monotonic() < deadline:
                    time.sleep(0.01)
                    continue
                self.warn.warning("stream_bind", f"cannot bind the stream at {url} yet: {exc}; retrying")
                return
            self._stream_bound = True
            return

    # --------------------------------------------------------------- output
    def publish(self, events: list[Event] | tuple) -> None:
        if not events:
            return
        for sink in self.sinks:
            sink.on_events(list(events), time.time())
        self.persist.record_events(events, self.fleet)
        for ev in events:
            self.stream_seq += 1
            body = {**ev.to_dict(), "category": ev.category}
            frame = wire.encode(kinds.EVENT, NAME, self.boot, self.stream_seq, time.time(), body)
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
        secure = self.auth is not None
        now = time.time()
        for _ in range(INGEST_BURST):
            try:
                frames = recv(zmq.NOBLOCK, copy=not secure)
            except zmq.Again:
                break
            if len(frames) != 2:
                fleet.count_bad("frame_count")
                continue
            who = self._identity(frames[1], AGENT_ROLES) if secure else None
            frame = frames[1].bytes if secure else frames[1]
            host = None
            try:
                env = wire.decode(frame)
                if secure:
                    admission.check_agent(who, env)
                host = env.host
                admission.check_ingest(env)
                self._accept(env, frame, now)
            except WireError as exc:
                fleet.count_bad(exc.reason, host)
                self.warn.warning(exc.reason, f"dropped a bad ingest frame: {exc}")
        self._request_backfill()

    def _accept(self, env: wire.Envelope, frame: bytes, now: float) -> None:
        """A validated metric batch: history, budgets, the stream (live ones), the store."""
        schema, events, backfilled = self.fleet.ingest(env, now)
        if schema is not None:
            if not backfilled:
                key = (env.host, schema.category)
                topic = self.metric_topics.get(key)
                if topic is None:
                    if len(self.metric_topics) >= len(CATEGORIES) * self.fleet.config.max_hosts:
                        self.metric_topics.clear()
                    topic = self.metric_topics[key] = wire.topic(kinds.EVENT_METRIC, *key)
                self._send_stream(topic, frame)
            body = env.body
            self.persist.put((env.host, env.boot, env.seq, schema.raw, body["ts"], body["values"], backfilled))
            for sink in self.batch_sinks:   # every accepted batch, backfilled ones too
                sink.on_batch(env.host, schema, body["ts"], body["values"], backfilled)
        if events:
            self.publish(events)

    def _request_backfill(self) -> None:
        requests, self.fleet.backfill_requests = self.fleet.backfill_requests, []
        for request in requests:
            host_name, boot, first, last = request
            host = self.fleet.hosts.get(host_name)
            if host is None:
                continue
            if host.route is None:      # not registered yet (we just restarted): ask once it is
                if len(self.fleet.backfill_requests) < 10_000:
                    self.fleet.backfill_requests.append(request)
                continue
            self._reply(self.control, host.route, "backfill", {"boot": boot, "first": first, "last": last})

    def _routed(self, sock: zmq.Socket, roles: tuple[str, ...], burst: int = 1000):
        """Yields up to ``burst`` waiting [route, frame] messages with the sender's (role, name)
        (None when its key is not allowed); frames of the wrong shape are counted and skipped."""
        secure = self.auth is not None
        for _ in range(burst):
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK, copy=not secure)
            except zmq.Again:
                return
            if len(frames) != 2:
                self.fleet.count_bad("frame_count")
                continue
            who = self._identity(frames[1], roles) if secure else ("", "")
            if secure:
                frames = [f.bytes for f in frames]
            yield frames[0], frames[1], who

    # -------------------------------------------------------------- control
    def on_control(self) -> None:
        for route, frame, who in self._routed(self.control, AGENT_ROLES):
            host = None
            now = time.time()
            try:
                env = wire.decode(frame)
                if self.auth is not None:
                    admission.check_agent(who, env)
                host = env.host
                admission.check_control(env)
                self._control_message(route, env, frame, now)
            except WireError as exc:
                self.fleet.count_bad(exc.reason, host)
                self.warn.warning("control", f"dropped a bad control frame: {exc}")
        self._request_backfill()

    def _control_message(self, route: bytes, env: wire.Envelope, frame: bytes, now: float) -> None:
        if env.kind == kinds.REGISTER:
            self.publish(self.fleet.register(env, route, now))
            self._persist_hosts()
            self._reply(self.control, route, "heartbeat", {"registered": True})
        elif env.kind == kinds.HEARTBEAT:
            events, must_register = self.fleet.heartbeat(env, route, now)
            self.publish(events)
            self._reply(self.control, route, "reply" if must_register else "heartbeat",
                        {"register": True} if must_register else {})
        elif env.kind == kinds.METRICS:        # backfill answers come over the reliable channel
            self._accept(env, frame, now)
        elif env.kind == kinds.REPLY:
            gone = admission.backfill_missing(env.body)
            self.publish(self.fleet.backfill_unavailable(env.host, gone.boot, gone.first, gone.last, now))
        else:   # a result: checked kinds only get here
            cmd, result, events = self.fleet.command_result(env, now)
            if cmd is not None:
                self.desk.answered(cmd, result, now)
            self.publish(events)

    # ------------------------------------------------------------------ api
    def on_api(self) -> None:
        for route, frame, who in self._routed(self.api, API_ROLES):
            self.desk.on_frame(route, frame, who, time.time())

    def _send_command(self, cmd) -> None:
        route = self.fleet.hosts[cmd.host].route
        self._reply(self.control, route, "command", cmd.to_wire())

    # ---------------------------------------------------------------- ticks
    def on_tick(self) -> None:
        events, to_send, answers = self.fleet.tick(time.time())
        self.publish(events)
        for cmd in to_send:
            self.desk.sent(cmd, time.time())
        self._request_backfill()
        for cmd, result in answers:
            self.desk.answered(cmd, result, time.time())

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
        loop = self.loop = loop or Loop()
        loop.install_signal_handlers()
        loop.on_readable(self.ingest, self.on_ingest)
        loop.on_readable(self.control, self.on_control)
        loop.on_readable(self.api, self.on_api)
        loop.on_readable(self.stream, self.on_stream)
        loop.every(0.25, self.on_tick)
        loop.every(1.0, self.on_reload_keys)
        loop.every(10.0, self._persist_hosts)
        loop.every(self.config.snapshot_interval_s, self.on_snapshot)
        notifier = Notifier()          # sockets bound and keys loaded (in __init__): ready
        ep = self.config.endpoint
        loop.notify_ready(notifier, f"listening on {ep.host} ports {ep.base_port}-{ep.base_port + 3}")
        try:
            loop.run()
        finally:
            notifier.stopping()
            loop.close()
            self.close()

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
        for sock in self.sockets:
            sock.close(0)
        if self.auth is not None:
            self.auth.stop()
        if self.persist is not None:
            self._persist_hosts()
            self.persist.close()
        self.audit.close()
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
