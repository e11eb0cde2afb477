"""The alert log: the ``violations`` table's rows (each firing, escalation and resolution as the
aggregator recorded it, and each acknowledgement) folded into one entry per alert.

An entry: ``id`` (the row of its first firing), ``host``, ``metric``, ``category``, ``severity``
(the worst it reached), ``value`` (at firing), ``peak``, ``limit``, ``fired`` (when the condition
began), ``resolved`` (None while active, or when its end was never recorded: the aggregator
restarted and the same alert fired anew), ``duration_s`` (fired to resolved, or to ``now``
while active), ``active``, ``acked_by`` and ``acked_at``. Pure: rows and ``now`` come in.
"""

from __future__ import annotations

from typing import Any, Iterable

from ..model.alertquery import AlertQuery
from ..protocol import kinds

ACK_KEY = "ack"            # an acknowledgement row: {"ack": alert id, "by": operator, "timestamp"}
def ack_record(alert_id: int, operator: str, now: float) -> dict[str, Any]:
    return {ACK_KEY: alert_id, "by": operator, "timestamp": now}


def fold(rows: Iterable[tuple[int, str, dict[str, Any]]], now: float) -> list[dict[str, Any]]:
    """(row id, host, record) in row order -> alert entries, oldest first."""
    entries: dict[int, dict[str, Any]] = {}
    open_: dict[tuple[str, str], dict[str, Any]] = {}
    acks: dict[int, dict[str, Any]] = {}
    for row_id, host, rec in rows:
        if ACK_KEY in rec:
            acks.setdefault(int(rec[ACK_KEY]), rec)        # the first acknowledgement counts
            continue
        key = (host, str(rec.get("metric")))
        entry = open_.get(key)
        ts = float(rec.get("timestamp") or 0.0)
        if rec.get("state") == kinds.RESOLVED:
            if entry is not None:
                entry.update(resolved=ts, active=False, duration_s=max(0.0, ts - entry["fired"]))
                del open_[key]
            continue
        value = rec.get("value")
        if entry is not None and "started" in rec and float(rec["started"]) != entry["fired"]:
            entry["active"] = False       # never resolved in the log (the aggregator restarted): ended unseen
            entry = None
        if entry is None:
            fired = float(rec.get("started", ts))
            entry = open_[key] = entries[row_id] = {
                "id": row_id, "host": host, "metric": key[1], "category": rec.get("category"),
                "severity": rec.get("severity"), "value": value, "peak": value, "limit": rec.get("limit"),
                "fired": fired, "resolved": None, "active": True, "duration_s": None,
                "acked_by": None, "acked_at": None}
        else:                                              # an escalation of the same alert
            entry["severity"] = rec.get("severity", entry["severity"])
            if isinstance(value, (int, float)) and isinstance(entry["peak"], (int, float)):
                entry["peak"] = max(entry["peak"], value)
    for entry in entries.values():
        if entry["active"]:
            entry["duration_s"] = max(0.0, now - entry["fired"])
        ack = acks.get(entry["id"])
        if ack is not None:
            entry["acked_by"], entry["acked_at"] = ack.get("by"), ack.get("timestamp")
    return list(entries.values())


def page(entries: list[dict[str, Any]], q: AlertQuery) -> tuple[list[dict[str, Any]], int | None]:
    """The entries ``q`` selects, newest first, one page; and the cursor of the next page."""
    chosen = [e for e in reversed(entries)
              if (q.host is None or e["host"] == q.host)
              and (not q.active or e["active"])
              and (e["active"] or (e["resolved"] or e["fired"]) >= q.since)
              and (q.before is None or e["id"] < q.before)]
    out = chosen[:q.limit]
    return out, (out[-1]["id"] if len(chosen) > q.limit else None)
