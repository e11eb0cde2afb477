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

import json
import math
import os
import sqlite3
import threading
import time
from array import array
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..protocol.batch import BatchSchema, parse_schema
from ..errors import PerfmeshError
from .layout import ROLLUP_S, SCHEMA_VERSION, connect, create_tables, schema_id
from .queries import Queries, StoreReader
from .salvage import salvage

BatchRow = tuple[str, str, int, bytes, float, bytes, bool]


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



# ---------------------------------------------------------------------------- writer
class Store(Queries):
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
        conn = connect(self.path)
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
                create_tables(conn)
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


    def schema_width(self, sid: int) -> int | None:
        """How many series the schema ``sid`` holds (None: no readable schema of that id)."""
        return self._widths.get(sid)

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
        salvaged, notes, lost_batches = salvage(aside, conn, self)
        self.repair = RepairReport(True, salvaged, f"{str(exc)[:300]}; " + "; ".join(notes),
                                   aside, lost_batches)
        return conn

    # ------------------------------------------------------------------ writes
    def transaction(self) -> "_Transaction":
        """One write transaction (BEGIN IMMEDIATE ... COMMIT, ROLLBACK on an exception)."""
        return _Transaction(self._conn, self._lock)

    def insert_schema(self, raw: bytes) -> int:
        """Inside :meth:`transaction`: store a schema blob once and index its series; its id."""
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
        with self.transaction():
            out = []
            for host, boot, seq, raw, ts, vals, bf in rows:
                sid = ids.get(raw)
                if sid is None:
                    sid = self.insert_schema(raw)
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
        with self.transaction():
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
        with self.transaction():
            self._conn.execute(
                "INSERT INTO hosts (name, info, first_seen, last_seen, boot) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET info = excluded.info, boot = excluded.boot, "
                "first_seen = min(first_seen, excluded.first_seen), "
                "last_seen = max(last_seen, excluded.last_seen)",
                (name, json.dumps(info, sort_keys=True), first_seen, last_seen, boot))

    def add_violation(self, host: str, record: dict[str, Any]) -> None:
        """A violation record (``record["timestamp"]`` is its time, 0 when absent)."""
        with self.transaction():
            self._conn.execute("INSERT INTO violations (host, ts, record) VALUES (?, ?, ?)",
                               (host, float(record.get("timestamp", 0.0)), json.dumps(record)))

    def add_audit(self, entry: dict[str, Any]) -> None:
        """Append to the audit log (``entry["timestamp"]``, 0 when absent). There is no update
        or delete, here or in SQL (triggers refuse both)."""
        with self.transaction():
            self._conn.execute("INSERT INTO audit (ts, entry) VALUES (?, ?)",
                               (float(entry.get("timestamp", 0.0)), json.dumps(entry)))

    def add_gap(self, host: str, boot: str, first_seq: int, last_seq: int, start_ts: float,
                end_ts: float, reason: str) -> None:
        with self.transaction():
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
