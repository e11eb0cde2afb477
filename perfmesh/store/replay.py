"""The stored batches of the last moments, for a remote writer starting up: what it had
queued when the aggregator was killed is in the store (or comes back as backfill), so it
sends the recent past again (at least once; a receiver drops exact duplicates)."""

from __future__ import annotations

from .database import StoreReader

MAX_REPLAY_ROWS = 200_000


def recent_batches(reader: StoreReader, since: float,
                   limit: int = MAX_REPLAY_ROWS) -> list[tuple[str, bytes, float, bytes]]:
    """``(host, schema raw, ts, values)`` of the raw batches with ``ts >= since``, oldest
    first, at most ``limit`` (the newest ones when there are more)."""
    with reader._lock:
        rows = reader._conn.execute(
            "SELECT b.host, s.raw, b.ts, b.vals FROM batches b JOIN schemas s ON s.id = b.schema_id "
            "WHERE b.ts >= ? ORDER BY b.ts DESC LIMIT ?", (since, limit)).fetchall()
    rows.reverse()
    return [(host, bytes(raw), float(ts), bytes(vals)) for host, raw, ts, vals in rows]
