"""Reading the state file: the queries the writer and its readers share, and the read-only
:class:`StoreReader` other threads use (see :mod:`perfmesh.store.database` on threads)."""

from __future__ import annotations

import json
import math
import sqlite3
import struct
import threading
from pathlib import Path
from typing import Any

from ..model.alertquery import AlertQuery
from .alertlog import ACK_KEY, fold, page
from .layout import MAX_ROWID, MIN_ROWID, ROLLUP_S, TABLES, connect

_F64 = struct.Struct("<d")


class Queries:
    """Queries shared by the writer and the readers; ``self._conn`` is the connection."""

    _conn: sqlite3.Connection
    _lock: Any

    def query(self, host: str, key: str, since: float,
              until: float | None = None) -> list[tuple[float, float, bool]]:
        """``(ts, value, backfilled)`` of one series of one host with ``since <= ts <= until``.

        ``key`` is a series key (``cpu_percent``, ``cpu_percent{cpu=0}``; see
        :func:`perfmesh.model.metric.series_key`); every schema holding it counts, so a series keeps
        its history across schema changes. Raw batches give every sample; the part of the
        range older than the raw window has been compacted to per-minute rollups, which give
        one sample per minute: ``ts`` the start of the minute, ``value`` the minute's average,
        ``backfilled`` False. Ordered by ``ts``.
        """
        hi = math.inf if until is None else until
        with self._lock:
            raw = self._conn.execute(
                "SELECT b.ts, substr(b.vals, 8 * k.idx + 1, 8), b.backfilled FROM schema_keys k "
                "JOIN batches b ON b.schema_id = k.schema_id "
                "WHERE k.key = ? AND b.host = ? AND b.ts >= ? AND b.ts <= ? ORDER BY b.ts",
                (key, host, since, hi)).fetchall()
            m_lo = math.ceil(since / ROLLUP_S) if math.isfinite(since) else MIN_ROWID
            m_hi = math.floor(hi / ROLLUP_S) if math.isfinite(hi) else MAX_ROWID
            rolled = self._conn.execute(
                "SELECT minute, sum / count FROM rollups WHERE host = ? AND key = ? "
                "AND minute BETWEEN ? AND ? ORDER BY minute", (host, key, m_lo, m_hi)).fetchall()
        unpack = _F64.unpack
        out = [(float(m * ROLLUP_S), v, False) for m, v in rolled]
        out.extend((ts, unpack(b)[0], bool(bf)) for ts, b, bf in raw)
        if rolled and raw:
            out.sort(key=lambda r: r[0])
        return out

    def last_seq(self, host: str) -> tuple[str, int] | None:
        """``(boot, highest seq)`` of the boot of the host's newest stored batch, or None.

        Raw batches only: a host silent for longer than the raw window has none left.
        """
        with self._lock:
            row = self._conn.execute("SELECT boot FROM batches WHERE host = ? ORDER BY ts DESC "
                                     "LIMIT 1", (host,)).fetchone()
            if row is None:
                return None
            seq = self._conn.execute("SELECT max(seq) FROM batches WHERE host = ? AND boot = ?",
                                     (host, row[0])).fetchone()[0]
        return row[0], seq

    def last_ts(self, host: str, boot: str) -> float | None:
        """The newest sample timestamp stored for ``host``/``boot``, or None."""
        with self._lock:
            return self._conn.execute("SELECT max(ts) FROM batches WHERE host = ? AND boot = ?",
                                      (host, boot)).fetchone()[0]

    def seqs(self, host: str, boot: str, first: int, last: int) -> set[int]:
        """The stored seqs of ``host``/``boot`` in ``first..last`` (inclusive)."""
        with self._lock:
            rows = self._conn.execute("SELECT seq FROM batches WHERE host = ? AND boot = ? "
                                      "AND seq BETWEEN ? AND ?", (host, boot, first, last))
            return {r[0] for r in rows}

    def hosts(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._conn.execute("SELECT name, info, first_seen, last_seen, boot FROM hosts "
                                      "ORDER BY name").fetchall()
        return [{"name": n, "info": json.loads(i), "first_seen": f, "last_seen": l, "boot": b}
                for n, i, f, l, b in rows]

    def violations(self, host: str | None, since: float) -> list[dict[str, Any]]:
        """Violation records (as added) with ``timestamp >= since``, oldest first."""
        with self._lock:
            if host is None:
                rows = self._conn.execute("SELECT record FROM violations WHERE ts >= ? "
                                          "ORDER BY ts, id", (since,)).fetchall()
            else:
                rows = self._conn.execute("SELECT record FROM violations WHERE host = ? AND ts >= ? "
                                          "ORDER BY ts, id", (host, since)).fetchall()
        return [json.loads(r[0]) for r in rows]

    def alert_log(self, q: AlertQuery, now: float) -> tuple[list[dict[str, Any]], int | None]:
        """One page of the alert log (:mod:`perfmesh.store.alertlog`) and the next page's cursor."""
        with self._lock:
            if q.host is None:
                rows = self._conn.execute("SELECT id, host, record FROM violations ORDER BY id").fetchall()
            else:
                rows = self._conn.execute("SELECT id, host, record FROM violations WHERE host = ? "
                                          "ORDER BY id", (q.host,)).fetchall()
        return page(fold(((i, h, json.loads(r)) for i, h, r in rows), now), q)

    def alert_host(self, alert_id: int) -> str | None:
        """The host of the alert whose first firing is row ``alert_id``, or None."""
        with self._lock:
            row = self._conn.execute("SELECT host, record FROM violations WHERE id = ?",
                                     (alert_id,)).fetchone()
        if row is None or ACK_KEY in json.loads(row[1]):
            return None
        return row[0]

    def audit(self, since: float) -> list[dict[str, Any]]:
        """Audit entries (as added) with ``timestamp >= since``, in the order they were added."""
        with self._lock:
            rows = self._conn.execute("SELECT entry FROM audit WHERE ts >= ? ORDER BY id",
                                      (since,)).fetchall()
        return [json.loads(r[0]) for r in rows]

    def gaps(self, host: str) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT host, boot, first_seq, last_seq, start_ts, end_ts, reason FROM gaps "
                "WHERE host = ? ORDER BY id", (host,)).fetchall()
        names = ("host", "boot", "first_seq", "last_seq", "start_ts", "end_ts", "reason")
        return [dict(zip(names, r)) for r in rows]

    def counts(self) -> dict[str, int]:
        """Rows per table."""
        with self._lock:
            return {t: self._conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class StoreReader(Queries):
    """Read-only view of a store on its own connection, for threads other than the writer's."""

    def __init__(self, path: str | Path) -> None:
        self._lock = threading.Lock()
        self._conn = connect(str(path), readonly=True)
        self._conn.execute("PRAGMA query_only = ON")

