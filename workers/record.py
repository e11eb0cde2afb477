"""``perfmesh record``: the aggregator's stream (metric batches and events) into a recording.

A SUB socket on the stream, one poll loop: every frame is decoded and validated as untrusted
(like any subscriber), then written through :class:`perfmesh.store.recording.RecordingWriter`.
Records reach the OS every ``flush_s`` (a crash of this process loses at most that much) and
the disk at exit. Stops on SIGTERM/SIGINT or after ``duration_s``.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import zmq

from perfmesh.errors import WireError
from perfmesh.protocol import kinds
from perfmesh.protocol import wire
from perfmesh.protocol.batch import SchemaCache, check_body
from perfmesh.store.recording import RecordingInfo, RecordingWriter

from .client import subscription_prefixes
from .loop import Loop, RateLimitedLog
from .security import HandshakeWatch, secure_client
from .transport import Endpoint, make_socket

log = logging.getLogger("perfmesh.record")


@dataclass(frozen=True)
class RecordConfig:
    endpoint: Endpoint
    out: Path
    hosts: tuple[str, ...] = ()
    duration_s: float | None = None
    flush_s: float = 0.2


class Recorder:
    def __init__(self, config: RecordConfig, ctx: zmq.Context | None = None) -> None:
        self.config = config
        self.ctx = ctx or zmq.Context.instance()
        self.sock = make_socket(self.ctx, zmq.SUB, hwm=100_000, heartbeat_ms=1000)
        try:
            secure_client(config.endpoint, self.sock)
            self.writer = RecordingWriter(config.out, RecordingInfo(time.time(), str(config.endpoint),
                                                                    config.hosts))
        except Exception:
            self.sock.close(0)
            raise
        self.handshakes = HandshakeWatch([(self.sock, config.endpoint.url("stream"))])
        self.sock.connect(config.endpoint.url("stream"))
        prefixes = ([p for h in config.hosts for p in subscription_prefixes(list(kinds.EVENT_TYPES), h, None, [])]
                    or subscription_prefixes(list(kinds.EVENT_TYPES), None, None, []))
        for p in prefixes:
            self.sock.setsockopt(zmq.SUBSCRIBE, p)
        self.schemas = SchemaCache()
        self.bad_frames = 0
        self.failed: OSError | None = None
        self.warn = RateLimitedLog()
        self.loop: Loop | None = None

    def _disk_failed(self, exc: OSError) -> None:
        """A write error may have left half a record: stop here, so the file stays readable up to it."""
        self.failed = exc
        log.error("cannot write %s: %s; recording stopped", self.config.out, exc.strerror or exc)
        if self.loop is not None:
            self.loop.stop()

    def on_stream(self) -> None:
        try:
            self._drain()
        except OSError as exc:
            self._disk_failed(exc)

    def _drain(self) -> None:
        now = time.time()
        for _ in range(2000):
            try:
                frames = self.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                self._record(frames, now)
            except WireError as exc:
                self.bad_frames += 1
                self.warn.warning(exc.reason, f"skipped a bad stream frame: {exc}")

    def _record(self, frames: list[bytes], now: float) -> None:
        if len(frames) != 2:
            raise WireError("frame_count", f"expected [topic, envelope], got {len(frames)} frames")
        env = wire.decode(frames[1])
        if env.kind == kinds.METRICS:
            schema_raw, _, _ = check_body(env.body)
            self.schemas.get(schema_raw)       # validates the schema once per distinct blob
            self.writer.write_batch(now, env)
        elif env.kind == kinds.EVENT and isinstance(env.body, dict):
            self.writer.write_event(now, env.body)
        else:
            raise WireError("bad_kind", f"the stream carries metrics and events, got {env.kind!r}")

    def on_timer(self) -> None:
        try:
            self.writer.flush()
        except OSError as exc:
            self._disk_failed(exc)
        note = self.handshakes.poll(time.monotonic())
        if note:
            log.warning("%s", note)

    def run(self, loop: Loop | None = None) -> int:
        loop = self.loop = loop or Loop(poll_ms=200)
        loop.install_signal_handlers()
        loop.on_readable(self.sock, self.on_stream)
        loop.every(self.config.flush_s, self.on_timer)
        if self.config.duration_s is not None:
            loop.every(self.config.duration_s, loop.stop, first_in_s=self.config.duration_s)
        try:
            loop.run()
        finally:
            loop.close()
            self.close()
        return 1 if self.failed else 0

    def close(self) -> None:
        try:
            self.writer.close()
        except OSError as exc:
            if self.failed is None:
                self._disk_failed(exc)
        self.handshakes.close()
        self.sock.close(0)


def main(config: RecordConfig, err=sys.stderr) -> int:
    logging.basicConfig(level=logging.INFO, stream=err, format="%(asctime)s record %(levelname)s %(message)s")
    recorder = Recorder(config)
    what = ", ".join(config.hosts) or "every host"
    err.write(f"perfmesh record: recording the stream of {config.endpoint} ({what}) to {config.out}\n")
    err.flush()
    code = recorder.run()
    c = recorder.writer.counters
    err.write(f"perfmesh record: wrote {c.batches} batches, {c.events} events, {c.schemas} schemas "
              f"({c.bytes} bytes) to {config.out}"
              f"{f'; skipped {recorder.bad_frames} bad frames' if recorder.bad_frames else ''}\n")
    return code
