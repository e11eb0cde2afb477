"""Salvage of a damaged state file: every readable row of every table into a fresh store.

Used by :class:`perfmesh.store.database.Store` when its file fails to open or its integrity check:
the bad file is moved aside first, then this walks it table by table, rowid by rowid,
stepping over unreadable pages, and says what was lost. It knows the file's layout
(:mod:`perfmesh.store.layout`) and, of the fresh store it fills, only :class:`SalvageTarget`.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from contextlib import AbstractContextManager
from typing import Iterator, Protocol

from ..errors import PerfmeshError
from .layout import COLUMNS, MAX_ROWID, MIN_ROWID, TABLES, connect, schema_id, seq_ranges

SALVAGE_CHUNK = 10_000   # rows per executemany while copying a table


class SalvageTarget(Protocol):
    """What salvage needs of the fresh store it fills (:class:`~perfmesh.store.database.Store`)."""

    def transaction(self) -> AbstractContextManager[None]: ...

    def insert_schema(self, raw: bytes) -> int: ...

    def schema_width(self, sid: int) -> int | None: ...


def _readable_rows(src: sqlite3.Connection, table: str, cols: list[str],
                   notes: list[str]) -> Iterator[tuple]:
    """Every row of ``table`` that can be read, walking rowids past unreadable pages."""
    select = f"SELECT rowid, {', '.join(cols)} FROM {table} WHERE rowid >= ? ORDER BY rowid"
    lo = MIN_ROWID
    while True:
        last = None
        try:
            for row in src.execute(select, (lo,)):
                last = row[0]
                yield row[1:]
            return
        except sqlite3.DatabaseError as exc:
            start = lo if last is None else last + 1
            resume = _next_readable(src, table, start)
            shown = "min" if start == MIN_ROWID else str(start)
            notes.append(f"{table}: rows with rowid {shown}..{'max' if resume is None else resume - 1} "
                         f"unreadable ({exc})")
            if resume is None:
                return
            lo = resume


def _next_readable(src: sqlite3.Connection, table: str, start: int) -> int | None:
    """The first rowid of a readable run after ``start`` (galloping, then bisecting);
    None when nothing past ``start`` can be read."""
    probe = f"SELECT rowid FROM {table} WHERE rowid >= ? ORDER BY rowid LIMIT 2"

    def read_from(at: int) -> int | None | bool:
        try:
            rows = src.execute(probe, (at,)).fetchall()
        except sqlite3.DatabaseError:
            return False
        return rows[0][0] if rows else None

    bad, step = start, 1
    while True:
        good = min(start + step, MAX_ROWID)
        if read_from(good) is not False:
            break
        if good == MAX_ROWID:
            return None
        bad, step = good, step * 2
    while good - bad > 1:
        mid = (bad + good) // 2
        if read_from(mid) is False:
            bad = mid
        else:
            good = mid
    found = read_from(good)
    return None if found is False else found


def salvage(aside: str, dst: sqlite3.Connection,
             store: SalvageTarget) -> tuple[dict[str, int], list[str], list[tuple[str, str, int, int]]]:
    salvaged = {t: 0 for t in TABLES}
    notes: list[str] = []
    lost_batches: list[tuple[str, str, int, int]] = []
    try:
        src = connect(aside, readonly=True)
        # writable_schema lets SQLite read a file shorter than its header says (a truncation)
        src.execute("PRAGMA writable_schema = ON")
        src.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        notes.append(f"nothing readable ({exc}): every row lost")
        return salvaged, notes, lost_batches
    try:
        tables = {r[0] for r in src.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        salvaged["schemas"] = _salvage_schemas(src, store, notes) if "schemas" in tables else 0
        for table in TABLES:
            if table == "schemas":
                continue
            if table not in tables:
                notes.append(f"{table}: table missing, all its rows lost")
                continue
            salvaged[table] = _salvage_table(src, dst, store, table, notes)
        if "batches" in tables:
            lost_batches = _lost_batches(src, dst, notes)
    finally:
        src.close()
    if not notes:
        notes.append("no row lost")
    return salvaged, notes, lost_batches


def _salvage_schemas(src: sqlite3.Connection, store: SalvageTarget, notes: list[str]) -> int:
    n = bad = 0
    with store.transaction():
        for sid, raw in _readable_rows(src, "schemas", ["id", "raw"], notes):
            try:
                if type(raw) is not bytes or schema_id(raw) != sid:
                    raise ValueError("content does not match its hash")
                store.insert_schema(raw)
                n += 1
            except (PerfmeshError, ValueError):
                bad += 1
    if bad:
        notes.append(f"schemas: {bad} damaged rows dropped")
    return n


def _salvage_table(src: sqlite3.Connection, dst: sqlite3.Connection, store: SalvageTarget, table: str,
                   notes: list[str]) -> int:
    cols = [c for c in COLUMNS[table] if c != "id"]
    insert = f"INSERT OR IGNORE INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
    n = dropped = 0
    chunk: list[tuple] = []
    with store.transaction():
        for row in _readable_rows(src, table, cols, notes):
            if table == "batches":
                width = store.schema_width(row[3])
                if width is None or type(row[5]) is not bytes or len(row[5]) != 8 * width:
                    dropped += 1
                    continue
            chunk.append(row)
            if len(chunk) >= SALVAGE_CHUNK:
                n += dst.executemany(insert, chunk).rowcount
                chunk = []
        n += dst.executemany(insert, chunk).rowcount
    if dropped:
        notes.append(f"batches: {dropped} rows dropped (schema lost or values damaged)")
    return n


def _lost_batches(src: sqlite3.Connection, dst: sqlite3.Connection,
                  notes: list[str]) -> list[tuple[str, str, int, int]]:
    """Seq ranges listed in the old unique index but not salvaged (when that index is readable)."""
    try:
        indexed = src.execute("SELECT host, boot, seq FROM batches INDEXED BY "
                              "sqlite_autoindex_batches_1").fetchall()
    except sqlite3.DatabaseError:
        notes.append("batches: the seq index is unreadable too, lost seqs unknown")
        return []
    have = set(dst.execute("SELECT host, boot, seq FROM batches").fetchall())
    missing: dict[tuple[str, str], list[int]] = defaultdict(list)
    for host, boot, seq in indexed:
        if (host, boot, seq) not in have:
            missing[(host, boot)].append(seq)
    out = [(h, b, lo, hi) for (h, b), seqs in sorted(missing.items()) for lo, hi in seq_ranges(seqs)]
    if out:
        notes.append(f"batches: {sum(len(s) for s in missing.values())} batches lost, "
                     f"seq ranges in lost_batches")
    return out
