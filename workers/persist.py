"""The aggregator's writer thread: accepted batches and events go to SQLite off the loop.

The loop thread only appends to a list under a lock; the writer commits what accumulated
every ``flush_interval_s`` in one transaction, compacts once a minute, and flushes what is
left on close. Reads (history queries) use their own read-only connection.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable

from perfmesh.mesh.fleet import Event, Fleet
from perfmesh.store.database import BatchRow, Store
from perfmesh.protocol import kinds

log = logging.getLogger("perfmesh.aggregator")


class Persistence:
    def __init__(self, path: str | Path, raw_window_s: float = 86400.0,
                 rollup_retention_s: float = 30 * 86400.0,
                 flush_interval_s: float = 0.1, compact_interval_s: float = 60.0) -> None:
        self.store = Store(path, raw_window_s=raw_window_s, rollup_retention_s=rollup_retention_s)
        if self.store.repair.repaired:
            log.warning("state file %s was damaged and repaired: %s", path, self.store.repair.lost)
        self.reader = self.store.reader()
        self.flush_interval_s = flush_interval_s
        self.compact_interval_s = compact_interval_s
        self._lock = threading.Lock()
        self._batches: list[BatchRow] = []
        self._calls: list[Callable[[Store], Any]] = []
        self._stop = threading.Event()
        self.written = 0
        self.errors = 0
        self._thread = threading.Thread(target=self._run, name="perfmesh-writer", daemon=True)
        self._thread.start()

    def resume_points(self, lookback: int = 5000) -> list[dict[str, Any]]:
        """Per stored host: registry row, (boot, last seq) and the holes in its last
        ``lookback`` seqs (accepted before a crash but never written, or never backfilled)."""
        out = []
        for h in self.store.hosts():
            last = self.store.last_seq(h["name"])
            if last is None:
                continue
            boot, seq = last
            first = max(1, seq - lookback)
            have = self.store.seqs(h["name"], boot, first, seq)
            lowest = min(have)
            missing, start = [], None
            for n in range(lowest, seq + 1):
                if n not in have and start is None:
                    start = n
                elif n in have and start is not None:
                    missing.append((start, n - 1))
                    start = None
            out.append({**h, "boot": boot, "last_seq": seq, "missing": missing})
        return out

    def resume(self, fleet: Fleet, now: float) -> None:
        """Hosts, their last sequence numbers and outstanding gaps, from the state file, into
        ``fleet`` (down until they speak again)."""
        points = {h["name"]: h for h in self.resume_points()}
        # batches a repair could not salvage are owed again: the agents' spools may still hold them
        registry = {h["name"]: h for h in self.store.hosts()}
        for host, boot, a, b in self.store.repair.lost_batches:
            h = points.get(host)
            if h is None and host in registry:
                h = points[host] = {**registry[host], "boot": boot, "last_seq": b, "missing": []}
            if h is not None and h["boot"] == boot and a <= h["last_seq"]:
                h["last_seq"] = max(h["last_seq"], b)
                h["missing"] = sorted({*h["missing"], (a, b)})
        for h in points.values():
            fleet.resume_host(h["name"], h["boot"], h["last_seq"], h["missing"], h["info"],
                              h["first_seen"], h["last_seen"], now)
            host = fleet.hosts.get(h["name"])
            if host is not None:    # so a gap found on the host's return starts at its last sample
                host.last_ts = self.store.last_ts(h["name"], h["boot"])

    # ------------------------------------------------------------ loop thread
    def save_hosts(self, fleet: Fleet) -> None:
        """The host registry (names, info, first and last seen, boot)."""
        rows = [(h.name, dict(h.info), h.first_seen, h.last_seen, h.boot) for h in fleet.hosts.values()]
        self.call(lambda store: [store.upsert_host(*r) for r in rows])

    def record_events(self, events: list[Event] | tuple, fleet: Fleet) -> None:
        """Violations and gaps are kept; other events live on the stream only."""
        for ev in events:
            if ev.type == kinds.EVENT_VIOLATION:
                record = {**ev.body, "host": ev.host}
                self.call(lambda store, r=record: store.add_violation(r["host"], r))
            elif ev.type == kinds.EVENT_GAP:
                b, host = ev.body, fleet.hosts.get(ev.host)
                boot = host.boot if host is not None else ""
                self.call(lambda store, b=b, h=ev.host, boot=boot: store.add_gap(
                    h, boot, b["first_seq"], b["last_seq"], b.get("start") or 0.0, b.get("end") or 0.0,
                    b.get("reason", "")))

    def put(self, row: BatchRow) -> None:
        with self._lock:
            self._batches.append(row)

    def call(self, fn: Callable[[Store], Any]) -> None:
        """Run ``fn(store)`` on the writer thread (host upserts, violations, gaps)."""
        with self._lock:
            self._calls.append(fn)

    @property
    def pending(self) -> int:
        return len(self._batches)

    # ---------------------------------------------------------- writer thread
    def _run(self) -> None:
        next_compact = time.monotonic() + self.compact_interval_s
        while not self._stop.wait(self.flush_interval_s):
            self._flush()
            if time.monotonic() >= next_compact:
                next_compact = time.monotonic() + self.compact_interval_s
                self._guard(lambda s: s.compact(time.time()))
        self._flush()

    def _flush(self) -> None:
        with self._lock:
            batches, self._batches = self._batches, []
            calls, self._calls = self._calls, []
        if batches:
            if self._guard(lambda s: s.add_batches(batches)):
                self.written += len(batches)
            else:   # one bad row must not cost the others: retry one by one
                for row in batches:
                    if self._guard(lambda s: s.add_batches([row])):
                        self.written += 1
        for fn in calls:
            self._guard(fn)

    def _guard(self, fn: Callable[[Store], Any]) -> bool:
        try:
            fn(self.store)
            return True
        except Exception as exc:  # noqa: BLE001 - the writer outlives any one row
            self.errors += 1
            log.warning("state write failed: %s: %s", exc.__class__.__name__, exc)
            return False

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.reader.close()
        self.store.close()
