"""The aggregator's persistent state: one SQLite file in WAL mode.

What it holds: metric batches as received (one row per batch, the value blob untouched),
per-minute rollups of older batches, the host registry, budget violations, gaps and the
command audit log. No sockets and no threads: the aggregator's shell calls it.

Threads. A :class:`Store` is the one writer: call it from ONE thread only (it is opened with
``check_same_thread=False`` so that thread need not be the one that opened it). Readers on
other threads call :meth:`Store.reader`, which returns a :class:`StoreReader` over its own
read-only connection; WAL mode lets it read while the writer writes. A reader serialises its
own calls with a lock, so one reader may be shared, though one per thread reads in parallel.
Keep read transactions short: a reader inside a long query holds back WAL checkpoints.

Crashes. Every ``add_*`` call is one transaction; after a SIGKILL, everything committed is
there on reopen (``synchronous=NORMAL`` in WAL mode may lose the last transactions on a
*power* loss, never on a process crash, and never corrupts the file). A file that is
corrupted or truncated anyway is moved aside on open, every readable row is salvaged into a
fresh file and :attr:`Store.repair` says what was lost; opening never raises for corruption.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sqlite3
import struct
import threading
import time
from array import array
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import quote

from ..protocol.batch import BatchSchema, parse_schema
from ..errors import PerfmeshError

SCHEMA_VERSION = 1
ROLLUP_S = 60
_MIN_ROWID = -(2 ** 63)
_MAX_ROWID = 2 ** 63 - 1
_F64 = struct.Struct("<d")
_SALVAGE_CHUNK = 10_000

BatchRow = tuple[str, str, int, bytes, float, bytes, bool]

# Every table is a rowid table (salvage walks rowids). Order matters: parents first.
_TABLES: dict[str, str] = {
    "schemas": "id INTEGER PRIMARY KEY, raw BLOB NOT NULL",
    "batches": "host TEXT NOT NULL, boot TEXT NOT NULL, seq INTEGER NOT NULL, "
               "schema_id INTEGER NOT NULL, ts REAL NOT NULL, vals BLOB NOT NULL, "
               "backfilled INTEGER NOT NULL, UNIQUE(host, boot, seq)",
    "rollups": "host TEXT NOT NULL, key TEXT NOT NULL, minute INTEGER NOT NULL, "
               "count INTEGER NOT NULL, sum REAL NOT NULL, min REAL NOT NULL, max REAL NOT NULL, "
               "UNIQUE(host, key, minute)",
    "hosts": "name TEXT PRIMARY KEY, info TEXT NOT NULL, first_seen REAL NOT NULL, "
             "last_seen REAL NOT NULL, boot TEXT NOT NULL",
    "violations": "id INTEGER PRIMARY KEY, host TEXT NOT NULL, ts REAL NOT NULL, record TEXT NOT NULL",
    "audit": "id INTEGER PRIMARY KEY, ts REAL NOT NULL, entry TEXT NOT NULL",
    "gaps": "id INTEGER PRIMARY KEY, host TEXT NOT NULL, boot TEXT NOT NULL, "
            "first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL, start_ts REAL NOT NULL, "
            "end_ts REAL NOT NULL, reason TEXT NOT NULL",
}
_COLUMNS = {
    "schemas": ["id", "raw"],
    "batches": ["host", "boot", "seq", "schema_id", "ts", "vals", "backfilled"],
    "rollups": ["host", "key", "minute", "count", "sum", "min", "max"],
    "hosts": ["name", "info", "first_seen", "last_seen", "boot"],
    "violations": ["id", "host", "ts", "record"],
    "audit": ["id", "ts", "entry"],
    "gaps": ["id", "host", "boot", "first_seq", "last_seq", "start_ts", "end_ts", "reason"],
}
# Derived from ``schemas`` (rebuilt on salvage, not salvaged): which column holds a series.
_DERIVED = "CREATE TABLE schema_keys (key TEXT NOT NULL, schema_id INTEGER NOT NULL, " \
           "idx INTEGER NOT NULL, PRIMARY KEY (key, schema_id)) WITHOUT ROWID"
_INDEXES = (
    "CREATE INDEX batches_host_ts ON batches(host, ts)",
    "CREATE INDEX rollups_minute ON rollups(minute)",
    "CREATE INDEX violations_host_ts ON violations(host, ts)",
    "CREATE INDEX violations_ts ON violations(ts)",
    "CREATE INDEX audit_ts ON audit(ts)",
    "CREATE INDEX gaps_host ON gaps(host, first_seq)",
    "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit "
    "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
    "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit "
    "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
)


class StoreError(PerfmeshError, ValueError):
    """A row that cannot be stored, or a file this version cannot read."""


@dataclass
class RepairReport:
    """What opening the file had to do. ``repaired`` False: the file was fine.

    ``lost_batches`` lists ``(host, boot, first_seq, last_seq)`` ranges known to be lost (from
    a surviving index); the aggregator may ask agents to backfill them or record gaps.
    """

    repaired: bool = False
    salvaged_rows: dict[str, int] = field(default_factory=dict)
    lost: str = ""
    moved_to: str | None = None
    lost_batches: list[tuple[str, str, int, int]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"repaired": self.repaired, "salvaged_rows": dict(self.salvaged_rows),
                "lost": self.lost, "moved_to": self.moved_to,
                "lost_batches": [list(r) for r in self.lost_batches]}


def schema_id(raw: bytes) -> int:
    """The id of a schema blob: the first 8 bytes of its BLAKE2b hash, as a signed int64."""
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "little", signed=True)


def _connect(path: str, readonly: bool = False) -> sqlite3.Connection:
    uri = "file:" + quote(str(Path(path).resolve())) + ("?mode=ro" if readonly else "")
    return sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False,
                           timeout=10.0)


def _ranges(seqs: Iterable[int]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for s in sorted(seqs):
        if out and s == out[-1][1] + 1:
            out[-1][1] = s
        else:
            out.append([s, s])
    return [(a, b) for a, b in out]


# ---------------------------------------------------------------------------- reads
class _Reads:
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
            m_lo = math.ceil(since / ROLLUP_S) if math.isfinite(since) else _MIN_ROWID
            m_hi = math.floor(hi / ROLLUP_S) if math.isfinite(hi) else _MAX_ROWID
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
            return {t: self._conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in _TABLES}

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class StoreReader(_Reads):
    """Read-only view of a store on its own connection, for threads other than the writer's."""

    def __init__(self, path: str | Path) -> None:
        self._lock = threading.Lock()
        self._conn = _connect(str(path), readonly=True)
        self._conn.execute("PRAGMA query_only = ON")


# ---------------------------------------------------------------------------- writer
class Store(_Reads):
    """The aggregator's state file. Single writer: see the module docstring.

    ``check`` is the integrity check at open: ``"quick"`` (``PRAGMA quick_check``, O(file
    size)), ``"full"`` (``integrity_check``, also checks indexes against tables) or ``"none"``.
    """

    def __init__(self, path: str | Path, raw_window_s: float = 86400.0,
                 rollup_retention_s: float = 30 * 86400.0, check: str = "quick") -> None:
        if check not in ("quick", "full", "none"):
            raise StoreError(f"check {check!r} must be one of quick, full, none")
        self.path = str(path)
        self.raw_window_s = raw_window_s
        self.rollup_retention_s = rollup_retention_s
        self.repair = RepairReport()
        self._lock = threading.RLock()
        self._schema_ids: dict[bytes, int] = {}
        self._widths: dict[int, int] = {}
        self._schemas: dict[int, BatchSchema] = {}
        self._failed: sqlite3.Connection | None = None
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = self._open(check)
        except sqlite3.DatabaseError as exc:
            self._conn = self._recover(exc)

    # ------------------------------------------------------------------ opening
    def _open(self, check: str) -> sqlite3.Connection:
        conn = _connect(self.path)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA journal_size_limit = 67108864")
            if check != "none":
                pragma = "quick_check" if check == "quick" else "integrity_check"
                problems = [r[0] for r in conn.execute(f"PRAGMA {pragma}(20)")]
                if problems != ["ok"]:
                    raise sqlite3.DatabaseError("; ".join(problems)[:2000])
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                self._create(conn)
            elif version != SCHEMA_VERSION:
                conn.close()
                raise StoreError(f"{self.path} has store schema version {version}; this "
                                 f"perfmesh reads version {SCHEMA_VERSION}")
            for sid, raw in conn.execute("SELECT id, raw FROM schemas"):
                try:
                    self._remember(sid, raw)
                except (PerfmeshError, TypeError) as exc:  # damaged inside an intact page
                    self.repair.lost += f"schema {sid} unreadable ({exc}), its batches unqueryable; "
        except sqlite3.DatabaseError:
            # closed only once the files are moved aside: closing deletes the -wal and -shm
            self._failed = conn
            raise
        return conn

    @staticmethod
    def _create(conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        for table, cols in _TABLES.items():
            conn.execute(f"CREATE TABLE IF NOT EXISTS {table} ({cols})")
        conn.execute(_DERIVED)
        for stmt in _INDEXES:
            conn.execute(stmt)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")

    def _remember(self, sid: int, raw: bytes) -> BatchSchema:
        schema = parse_schema(raw)
        self._schema_ids[raw] = sid
        self._widths[sid] = schema.width
        self._schemas[sid] = schema
        return schema

    # ------------------------------------------------------------------ repair
    def _recover(self, exc: Exception) -> sqlite3.Connection:
        stamp = int(time.time())
        aside = f"{self.path}.corrupt-{stamp}"
        n = 0
        while os.path.exists(aside):
            n += 1
            aside = f"{self.path}.corrupt-{stamp}-{n}"
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(self.path + suffix):
                os.replace(self.path + suffix, aside + suffix)
        if self._failed is not None:
            self._failed.close()
            self._failed = None
        self._schema_ids.clear()
        self._widths.clear()
        self._schemas.clear()
        conn = self._conn = self._open("none")
        from .salvage import salvage     # only ever needed on a damaged file
        salvaged, notes, lost_batches = salvage(aside, conn, self)
        self.repair = RepairReport(True, salvaged, f"{str(exc)[:300]}; " + "; ".join(notes),
                                   aside, lost_batches)
        return conn

    # ------------------------------------------------------------------ writes
    def _tx(self) -> "_Transaction":
        return _Transaction(self._conn, self._lock)

    def _insert_schema(self, raw: bytes) -> int:
        sid = schema_id(raw)
        known = self._schemas.get(sid)
        if known is not None and known.raw != raw:  # pragma: no cover - a 64-bit hash collision
            raise StoreError(f"schema hash collision on id {sid}")
        schema = self._remember(sid, raw)
        self._conn.execute("INSERT OR IGNORE INTO schemas (id, raw) VALUES (?, ?)", (sid, raw))
        self._conn.executemany("INSERT OR IGNORE INTO schema_keys (key, schema_id, idx) VALUES (?, ?, ?)",
                               [(s.key, sid, i) for i, s in enumerate(schema.series)])
        return sid

    def add_batches(self, rows: Iterable[BatchRow]) -> None:
        """Store batches ``(host, boot, seq, schema_raw, ts, values, backfilled)`` in one
        transaction. A ``(host, boot, seq)`` already stored is ignored (never stored twice).

        Raises :class:`StoreError` (storing nothing) for a values blob whose length does not
        match its schema; a schema blob that does not parse raises ``WireError``.
        """
        ids, widths = self._schema_ids, self._widths
        with self._tx():
            out = []
            for host, boot, seq, raw, ts, vals, bf in rows:
                sid = ids.get(raw)
                if sid is None:
                    sid = self._insert_schema(raw)
                if len(vals) != 8 * widths[sid]:
                    raise StoreError(f"batch {host}/{boot}/{seq}: values of {len(vals)} bytes, "
                                     f"expected {8 * widths[sid]} (8 per series)")
                out.append((host, boot, seq, sid, ts, vals, bf))
            self._conn.executemany("INSERT OR IGNORE INTO batches (host, boot, seq, schema_id, ts, "
                                   "vals, backfilled) VALUES (?, ?, ?, ?, ?, ?, ?)", out)

    def compact(self, now: float) -> int:
        """Fold batches older than ``now - raw_window_s`` (whole minutes only) into per-minute
        rollups per series and delete them; delete rollups, violations and gaps older than
        ``now - rollup_retention_s`` (the audit log is kept). Returns the batches folded.

        A rollup already present for a minute (a late backfill) is merged with the new one.
        """
        cutoff = math.floor((now - self.raw_window_s) / ROLLUP_S) * ROLLUP_S
        oldest = now - self.rollup_retention_s
        folded = 0
        with self._tx():
            hosts = [r[0] for r in self._conn.execute(
                "WITH RECURSIVE h(x) AS (SELECT min(host) FROM batches UNION ALL "
                "SELECT (SELECT min(host) FROM batches WHERE host > x) FROM h WHERE x IS NOT NULL) "
                "SELECT x FROM h WHERE x IS NOT NULL")]
            for host in hosts:
                folded += self._fold(host, cutoff)
            self._conn.execute("DELETE FROM rollups WHERE minute < ?", (math.ceil(oldest / ROLLUP_S),))
            self._conn.execute("DELETE FROM violations WHERE ts < ?", (oldest,))
            self._conn.execute("DELETE FROM gaps WHERE end_ts < ?", (oldest,))
        return folded

    def _fold(self, host: str, cutoff: float) -> int:
        """Fold the host's batches older than ``cutoff`` minute by minute, then delete them."""
        n = 0
        minute = None
        groups: dict[int, list[bytes]] = defaultdict(list)
        for sid, ts, vals in self._conn.execute("SELECT schema_id, ts, vals FROM batches "
                                                "WHERE host = ? AND ts < ? ORDER BY ts", (host, cutoff)):
            m = math.floor(ts / ROLLUP_S)
            if m != minute and groups:
                self._roll(host, minute, groups)
                groups = defaultdict(list)
            minute = m
            groups[sid].append(vals)
            n += 1
        if groups:
            self._roll(host, minute, groups)
        self._conn.execute("DELETE FROM batches WHERE host = ? AND ts < ?", (host, cutoff))
        return n

    def _roll(self, host: str, minute: int | None, groups: dict[int, list[bytes]]) -> None:
        out = []
        for sid, blobs in groups.items():
            schema = self._schemas.get(sid)
            if schema is None:  # its schema blob was damaged: nothing to fold it by
                continue
            arr = array("d")
            arr.frombytes(b"".join(blobs))
            w = schema.width
            for i, spec in enumerate(schema.series):
                col = arr[i::w]
                out.append((host, spec.key, minute, len(col), math.fsum(col), min(col), max(col)))
        self._conn.executemany(
            "INSERT INTO rollups (host, key, minute, count, sum, min, max) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (host, key, minute) DO UPDATE SET count = count + excluded.count, "
            "sum = sum + excluded.sum, min = min(min, excluded.min), max = max(max, excluded.max)", out)

    def rollups(self, host: str, key: str) -> list[dict[str, Any]]:
        """The per-minute rollups of one series: minute (epoch minutes), count, sum, min, max."""
        with self._lock:
            rows = self._conn.execute("SELECT minute, count, sum, min, max FROM rollups "
                                      "WHERE host = ? AND key = ? ORDER BY minute", (host, key)).fetchall()
        return [dict(zip(("minute", "count", "sum", "min", "max"), r)) for r in rows]

    def upsert_host(self, name: str, info: dict[str, Any], first_seen: float, last_seen: float,
                    boot: str) -> None:
        """Insert or update a host; ``first_seen`` keeps the earliest, ``last_seen`` the latest."""
        with self._tx():
            self._conn.execute(
                "INSERT INTO hosts (name, info, first_seen, last_seen, boot) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET info = excluded.info, boot = excluded.boot, "
                "first_seen = min(first_seen, excluded.first_seen), "
                "last_seen = max(last_seen, excluded.last_seen)",
                (name, json.dumps(info, sort_keys=True), first_seen, last_seen, boot))

    def add_violation(self, host: str, record: dict[str, Any]) -> None:
        """A violation record (``record["timestamp"]`` is its time, 0 when absent)."""
        with self._tx():
            self._conn.execute("INSERT INTO violations (host, ts, record) VALUES (?, ?, ?)",
                               (host, float(record.get("timestamp", 0.0)), json.dumps(record)))

    def add_audit(self, entry: dict[str, Any]) -> None:
        """Append to the audit log (``entry["timestamp"]``, 0 when absent). There is no update
        or delete, here or in SQL (triggers refuse both)."""
        with self._tx():
            self._conn.execute("INSERT INTO audit (ts, entry) VALUES (?, ?)",
                               (float(entry.get("timestamp", 0.0)), json.dumps(entry)))

    def add_gap(self, host: str, boot: str, first_seq: int, last_seq: int, start_ts: float,
                end_ts: float, reason: str) -> None:
        with self._tx():
            self._conn.execute("INSERT INTO gaps (host, boot, first_seq, last_seq, start_ts, end_ts, "
                               "reason) VALUES (?, ?, ?, ?, ?, ?, ?)",
                               (host, boot, first_seq, last_seq, start_ts, end_ts, reason))

    def reader(self) -> StoreReader:
        """A read-only view on its own connection, for another thread."""
        return StoreReader(self.path)

    def journal_mode(self) -> str:
        with self._lock:
            return self._conn.execute("PRAGMA journal_mode").fetchone()[0]

    def integrity(self) -> list[str]:
        """``PRAGMA integrity_check``: ``["ok"]`` for a sound file."""
        with self._lock:
            return [r[0] for r in self._conn.execute("PRAGMA integrity_check")]


class _Transaction:
    __slots__ = ("conn", "lock")

    def __init__(self, conn: sqlite3.Connection, lock: Any) -> None:
        self.conn, self.lock = conn, lock

    def __enter__(self) -> None:
        self.lock.acquire()
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        try:
            self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self.lock.release()
