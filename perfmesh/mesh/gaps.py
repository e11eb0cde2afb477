"""Gaps in a host's stream: asking the agent again for what is missing, and giving up.

A gap is owed until backfill fills it, the agent says it is gone (no longer in its spool), or
``backfill_timeout_s`` of the host being up passes without an answer; then it is reported
as an explicit ``gap`` event ("lost"), never dropped silently.
"""

from __future__ import annotations

from .hosts import Event, HostState
from ..protocol import kinds

BackfillRequest = tuple[str, "str | None", int, int]     # (host, boot, first seq, last seq)


def lost(host: HostState, first: int, last: int, now: float) -> Event:
    """An explicit gap: batches [first, last] will never arrive."""
    info = next((g for g in host.gaps if g.first <= first and last <= g.last), None)
    host.counters["lost_batches"] += last - first + 1
    return Event(kinds.EVENT_GAP, host.name, {
        "first_seq": first, "last_seq": last, "missing": last - first + 1,
        "start": info.start_ts if info else None, "end": info.end_ts if info else None,
        "timestamp": now, "reason": "not in the agent's spool"})


def give_up(host: HostState, first: int, last: int, now: float) -> list[Event]:
    """Stop waiting for [first, last]: a lost event for each part still missing."""
    return [lost(host, a, b, now) for a, b in host.seq.give_up(first, last)]


def chase_gaps(host: HostState, now: float, retry_s: float,
               timeout_s: float) -> tuple[list[Event], list[BackfillRequest]]:
    """Ask again (every ``retry_s``) for what is still missing; give up after ``timeout_s`` of
    the host being up and not answering. Returns (lost events, backfill requests)."""
    events: list[Event] = []
    requests: list[BackfillRequest] = []
    for g in list(host.gaps):
        if not host.alive and g.checked is not None:
            g.detected += now - g.checked      # a down agent cannot answer: stop the clock
        g.checked = now
        still = [(a, b) for a, b in host.seq.missing if a <= g.last and b >= g.first]
        if not still:
            host.gaps.remove(g)
        elif now - g.detected >= timeout_s:
            for a, b in still:
                events.extend(give_up(host, a, b, now))
            host.gaps.remove(g)
        elif now - g.asked >= retry_s and host.alive:
            g.asked = now
            requests.extend((host.name, host.seq.boot, a, b) for a, b in still)
    return events, requests
