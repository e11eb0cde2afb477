"""Serve a recording as if it were live: its batches go to an aggregator's ingest socket, as
agents would send them, re-stamped so the first batch is now and paced at ``speed`` (times
are scaled by it too; at speed 0, as fast as possible, they keep the recorded spacing).

Used by ``perfmesh aggregator --replay FILE`` (a thread beside the loop) and by
``perfmesh replay FILE --to HOST[:BASE]``. Each host keeps its name and sequence numbers under a
fresh boot id, so a file served twice is new data, not duplicates. Recorded events are not
sent: the aggregator computes violations and bottlenecks itself.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

import zmq

from perfmesh.protocol import wire
from perfmesh.protocol import kinds
from perfmesh.store.recording import BatchRecord, RecordingError, RecordingReader

from .security import secure_client
from .transport import Endpoint, make_socket

log = logging.getLogger("perfmesh.replay")


class Feeder:
    def __init__(self, endpoint: Endpoint, path: str, speed: float = 1.0) -> None:
        self.endpoint, self.path, self.speed = endpoint, path, speed
        self.reader = RecordingReader(path)          # a bad file fails here, before anything starts
        self.sent = 0
        self.problem: RecordingError | None = None
        self.stopping = threading.Event()
        self._boots: dict[str, str] = {}

    def _boot(self, recorded: str) -> str:
        boot = self._boots.get(recorded)
        if boot is None:
            boot = self._boots[recorded] = f"{recorded[:40]}-replay-{uuid.uuid4().hex[:12]}"
        return boot

    def run(self, connect_timeout_s: float = 30.0) -> int:
        """Publish every batch; returns how many were sent."""
        ctx = zmq.Context()
        # XPUB: it hears the aggregator's subscription, so nothing is sent into the void
        sock = make_socket(ctx, zmq.XPUB, hwm=1_000_000, heartbeat_ms=0)
        try:
            secure_client(self.endpoint, sock)
            sock.connect(self.endpoint.url("ingest"))
            if not sock.poll(int(connect_timeout_s * 1000)):
                raise RecordingError(self.path, f"no aggregator subscribed at {self.endpoint} within "
                                                f"{connect_timeout_s:g}s; nothing was served")
            sock.recv()
            self._publish(sock)
        finally:
            sock.close(5000)    # what is queued still goes out (within 5 s) before we return
            ctx.term()
        return self.sent

    def _publish(self, sock: zmq.Socket) -> None:
        base = start = first = None
        scale = self.speed if self.speed > 0 else 1.0   # as fast as possible keeps recorded spacing
        try:
            for record in self.reader:
                if self.stopping.is_set():
                    return
                if not isinstance(record, BatchRecord):
                    continue
                if first is None:
                    first, start, base = record.ts, time.monotonic(), time.time()
                elif self.speed > 0:
                    delay = start + (record.ts - first) / self.speed - time.monotonic()
                    if delay > 0 and self.stopping.wait(delay):
                        return
                ts = base + (record.ts - first) / scale
                body = {"schema": record.schema_raw, "ts": ts, "values": record.values_raw}
                sock.send_multipart([wire.topic(kinds.EVENT_METRIC, record.host), wire.encode(
                    kinds.METRICS, record.host, self._boot(record.boot), record.seq, ts, body)])
                self.sent += 1
        except RecordingError as exc:
            self.problem = exc

    def start(self) -> threading.Thread:
        """Run in a daemon thread, logging how it ended."""
        def target() -> None:
            try:
                self.run()
            except RecordingError as exc:
                log.warning("%s", exc)
                return
            note = f"; stopped early: {self.problem}" if self.problem else ""
            log.info("served %d batches from %s%s", self.sent, self.path, note)
        thread = threading.Thread(target=target, name="perfmesh-replay-feed", daemon=True)
        thread.start()
        return thread
