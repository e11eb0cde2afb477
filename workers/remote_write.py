"""Remote write beside the aggregator loop: every ingested batch, backfilled ones too, goes
to a Prometheus remote-write endpoint (protobuf + snappy, remote write 1.0).

:class:`RemoteWriter` is an aggregator sink. On the loop thread ``on_batch`` only queues the
batch's raw bytes in a :class:`perfmesh.export.sendqueue.SendQueue` (bounded in bytes; when
full the oldest batches are shed and counted). Its own thread takes up to
``max_samples_per_send`` samples, names them as ``/metrics`` does
(:class:`perfmesh.export.remote.SeriesEncoder`), and POSTs them with the spec's headers.
Connection errors, timeouts, 429 and 5xx are retried with exponential backoff (the request is
kept; the queue goes on filling, and shedding, meanwhile); other 4xx answers are permanent:
the request is dropped and its samples counted as rejected. A dead remote never stops the
aggregator. Counters are in :meth:`RemoteWriter.stats` (exported as ``perfmesh_remote_write_*``).

At start, with ``replay_from`` (the aggregator's state file), the writer first queues the
stored batches of the last ``replay_s`` seconds: what was still in its queue when the
aggregator was killed is sent again (at least once; receivers drop exact duplicates).
"""

from __future__ import annotations

import base64
import logging
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from perfmesh.errors import ConfigError
from perfmesh.export.remote import HEADERS, SeriesEncoder, group, write_body
from perfmesh.export.sendqueue import DEFAULT_MAX_BYTES, Backoff, SendQueue
from perfmesh.protocol.batch import BatchSchema, SchemaCache, unpack_values
from perfmesh.store.database import StoreReader
from perfmesh.store.replay import recent_batches

from .loop import RateLimitedLog

log = logging.getLogger("perfmesh.remote_write")
RETRYABLE_STATUS = {408, 429}
BATCH_OVERHEAD_BYTES = 128     # the queue entry beside the values (the schema is shared)


@dataclass(frozen=True)
class RemoteTarget:
    """One remote-write endpoint and how to reach it."""

    url: str
    bearer_token_file: str | None = None
    username: str | None = None
    password_file: str | None = None
    ca_file: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    timeout_s: float = 10.0
    max_queue_bytes: int = DEFAULT_MAX_BYTES
    max_samples_per_send: int = 5000
    min_backoff_s: float = 0.1
    max_backoff_s: float = 10.0

    def __post_init__(self) -> None:
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"remote-write URL {self.url!r} is invalid; expected http(s)://HOST[:PORT]/PATH, "
                              "e.g. http://127.0.0.1:9090/api/v1/write")
        if self.bearer_token_file and self.username:
            raise ConfigError(f"remote write to {self.safe_url}: give a bearer token file or basic auth, not both")
        if (self.username is None) != (self.password_file is None):
            raise ConfigError(f"remote write to {self.safe_url}: basic auth needs both a user and a password file")
        if not 0 < self.timeout_s <= 300:
            raise ConfigError(f"remote-write timeout {self.timeout_s!r} s must be in (0, 300]")
        if type(self.max_samples_per_send) is not int or self.max_samples_per_send < 1:
            raise ConfigError(f"max samples per send {self.max_samples_per_send!r} must be an int >= 1")

    @property
    def safe_url(self) -> str:
        """The URL without credentials (for labels and logs)."""
        p = urllib.parse.urlsplit(self.url)
        netloc = p.hostname or ""
        netloc = f"[{netloc}]" if ":" in netloc else netloc
        netloc += f":{p.port}" if p.port else ""
        return urllib.parse.urlunsplit((p.scheme, netloc, p.path, "", ""))


@dataclass
class RemoteWriteStats:
    """What one writer did since start."""

    url: str
    sent_samples: int = 0
    sent_requests: int = 0
    sent_bytes: int = 0
    shed_samples: int = 0
    rejected_samples: int = 0
    failed_requests: int = 0
    queue_bytes: int = 0
    queue_samples: int = 0
    queue_max_bytes: int = 0
    last_success: float = 0.0
    last_error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Pending:
    body: bytes
    samples: int
    tries: int = 0


class RemoteWriter:
    """The sink: queues every accepted batch and sends it from its own thread."""

    needs_latest = False

    def __init__(self, target: RemoteTarget, replay_from: Path | None = None, replay_s: float = 120.0) -> None:
        self.target = target
        self.replay_from, self.replay_s = replay_from, replay_s
        self.queue = SendQueue(target.max_queue_bytes)
        self.backoff = Backoff(target.min_backoff_s, target.max_backoff_s)
        self.encoder = SeriesEncoder()
        self._stats = RemoteWriteStats(target.safe_url, queue_max_bytes=target.max_queue_bytes)
        self._ssl = ssl.create_default_context(cafile=target.ca_file) if target.ca_file else None
        self._lock = threading.Condition()
        self._stop = False
        self._warn = RateLimitedLog()
        self._thread = threading.Thread(target=self._run, name="perfmesh-remote-write", daemon=True)
        self._thread.start()

    # -- loop thread
    def on_batch(self, host: str, schema: BatchSchema, ts: float, values: bytes, backfilled: bool) -> None:
        with self._lock:
            self.queue.put((host, schema, float(ts), values), len(values) + BATCH_OVERHEAD_BYTES, schema.width)
            self._lock.notify()

    def on_events(self, events: list[Any], now: float) -> None:
        pass

    def on_snapshot(self, snapshot: dict[str, Any], now: float) -> None:
        pass

    def stats(self) -> RemoteWriteStats:
        with self._lock:
            s = RemoteWriteStats(**asdict(self._stats))
            s.shed_samples = self.queue.shed_samples
            s.queue_bytes, s.queue_samples = self.queue.nbytes, self.queue.samples
        return s

    def close(self) -> None:
        with self._lock:
            self._stop = True
            self._lock.notify()
        self._thread.join(self.target.timeout_s + 1.0)

    # -- sender thread
    def _replay(self) -> None:
        """Queue the stored batches of the last replay_s seconds (behind nothing: at start)."""
        if self.replay_from is None or not Path(self.replay_from).exists():
            return
        try:
            reader = StoreReader(self.replay_from)
            try:
                rows = recent_batches(reader, time.time() - self.replay_s)
            finally:
                reader.close()
            schemas = SchemaCache()
            with self._lock:
                for host, raw, ts, values in rows:
                    schema = schemas.get(raw)
                    self.queue.put((host, schema, ts, values), len(values) + BATCH_OVERHEAD_BYTES, schema.width)
            log.info("remote write to %s: replaying %d stored batches of the last %gs",
                     self.target.safe_url, len(rows), self.replay_s)
        except Exception as exc:   # an unreadable store: no replay, never a dead writer
            self._warn.warning("replay", f"remote write to {self.target.safe_url}: no replay from "
                                         f"{self.replay_from}: {type(exc).__name__}: {exc}")

    def _run(self) -> None:
        self._replay()
        pending: _Pending | None = None
        while True:
            with self._lock:
                while not self._stop and (pending is None and not len(self.queue)
                                          or not self.backoff.ready(time.monotonic())):
                    now = time.monotonic()
                    wait = None if self.backoff.ready(now) else self.backoff.next_at - now
                    self._lock.wait(None if wait is None else max(0.0, wait))
                if self._stop:
                    return
                batches = [] if pending is not None else self.queue.take(self.target.max_samples_per_send)
            try:
                if pending is None:
                    pending = self._encode(batches)
                if pending is not None:
                    pending = self._send(pending)
            except Exception as exc:   # never let the thread die: count, back off, go on
                self._failed(f"{type(exc).__name__}: {exc}")
                pending = None

    def _encode(self, batches: list[tuple[str, BatchSchema, float, bytes]]) -> _Pending | None:
        rows = []
        for host, schema, ts, raw in batches:
            rows.extend(self.encoder.rows(host, schema, ts, unpack_values(raw, schema.width)))
        if not rows:
            return None
        return _Pending(write_body(group(rows)), len(rows))

    def _request(self, body: bytes) -> urllib.request.Request:
        t = self.target
        headers = {**HEADERS, "User-Agent": "perfmesh-remote-write/0.1", **dict(t.headers)}
        if t.bearer_token_file:    # read at every request, as Prometheus does (tokens rotate)
            headers["Authorization"] = "Bearer " + Path(t.bearer_token_file).read_text().strip()
        elif t.username is not None and t.password_file:
            secret = f"{t.username}:{Path(t.password_file).read_text().strip()}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(secret).decode()
        return urllib.request.Request(t.url, data=body, headers=headers, method="POST")

    def _send(self, p: _Pending) -> _Pending | None:
        """POST once; returns the request when it is to be retried, else None."""
        p.tries += 1
        retry_after: float | None = None
        try:
            with urllib.request.urlopen(self._request(p.body), timeout=self.target.timeout_s,
                                        context=self._ssl) as resp:
                resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read(300).decode("utf-8", "replace").strip()
            if exc.code in RETRYABLE_STATUS or exc.code >= 500:
                retry_after = _retry_after(exc.headers.get("Retry-After"))
                self._failed(f"HTTP {exc.code} {detail}", retry_after)
                return p
            with self._lock:
                self._stats.rejected_samples += p.samples
                self._stats.last_error = f"HTTP {exc.code} {detail}"
            self._warn.warning("rejected", f"remote write to {self.target.safe_url}: HTTP {exc.code}, "
                                           f"{p.samples} samples dropped: {detail}")
            self.backoff.success()
            return None
        except (OSError, ValueError) as exc:   # refused, reset, timeout, TLS, unreadable token file
            self._failed(f"{type(exc).__name__}: {exc}")
            return p
        with self._lock:
            s = self._stats
            s.sent_samples += p.samples
            s.sent_requests += 1
            s.sent_bytes += len(p.body)
            s.last_success = time.time()
            self.backoff.success()
        return None

    def _failed(self, error: str, retry_after: float | None = None) -> None:
        with self._lock:
            self._stats.failed_requests += 1
            self._stats.last_error = error
            wait = self.backoff.failure(time.monotonic(), retry_after) - time.monotonic()
        self._warn.warning("failed", f"remote write to {self.target.safe_url} failed ({error}); "
                                     f"retrying in {wait:.1f}s")


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:      # an HTTP date: use our own backoff
        return None
