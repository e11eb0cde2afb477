"""The state file's layout, shared by the store and its salvage: its tables and columns, the
derived index of series, the indexes and triggers, a schema's id, and how a file is opened.

"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Iterable
from urllib.parse import quote

SCHEMA_VERSION = 1
ROLLUP_S = 60
MIN_ROWID = -(2 ** 63)
MAX_ROWID = 2 ** 63 - 1

# Every table is a rowid table (salvage walks rowids). Order matters: parents first.
TABLES: dict[str, str] = {
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
COLUMNS = {
    "schemas": ["id", "raw"],
    "batches": ["host", "boot", "seq", "schema_id", "ts", "vals", "backfilled"],
    "rollups": ["host", "key", "minute", "count", "sum", "min", "max"],
    "hosts": ["name", "info", "first_seen", "last_seen", "boot"],
    "violations": ["id", "host", "ts", "record"],
    "audit": ["id", "ts", "entry"],
    "gaps": ["id", "host", "boot", "first_seq", "last_seq", "start_ts", "end_ts", "reason"],
}
# Derived from ``schemas`` (rebuilt on salvage, not salvaged): which column holds a series.
DERIVED = "CREATE TABLE schema_keys (key TEXT NOT NULL, schema_id INTEGER NOT NULL, " \
           "idx INTEGER NOT NULL, PRIMARY KEY (key, schema_id)) WITHOUT ROWID"
INDEXES = (
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


def schema_id(raw: bytes) -> int:
    """The id of a schema blob: the first 8 bytes of its BLAKE2b hash, as a signed int64."""
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "little", signed=True)


def connect(path: str, readonly: bool = False) -> sqlite3.Connection:
    """A connection to the file at ``path`` (read-only when asked); autocommit, any thread."""
    uri = "file:" + quote(str(Path(path).resolve())) + ("?mode=ro" if readonly else "")
    return sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False,
                           timeout=10.0)


def seq_ranges(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Sequence numbers -> sorted ``(first, last)`` runs of consecutive numbers."""
    out: list[list[int]] = []
    for s in sorted(seqs):
        if out and s == out[-1][1] + 1:
            out[-1][1] = s
        else:
            out.append([s, s])
    return [(a, b) for a, b in out]


def create_tables(conn: sqlite3.Connection) -> None:
    """Lay out an empty file: every table, the derived index, indexes and triggers, the version."""
    conn.execute("BEGIN IMMEDIATE")
    for table, cols in TABLES.items():
        conn.execute(f"CREATE TABLE IF NOT EXISTS {table} ({cols})")
    conn.execute(DERIVED)
    for stmt in INDEXES:
        conn.execute(stmt)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    conn.execute("COMMIT")
