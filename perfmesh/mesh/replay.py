"""Replay a recorded stream through the same budgets, alert rules and analysis, offline.

Pure: the time is the recording's (each batch's own timestamp), never the wall clock. A
:class:`Replay` drives a real :class:`~perfmesh.mesh.fleet.Fleet` (ingest, then the aggregator's
tick every ``tick_s`` and its snapshot every ``snapshot_s`` of recorded time) and feeds an
:class:`~perfmesh.rules.alerting.AlertEngine` exactly as the aggregator's alert sink does; the
alerts it returns are what would have fired, with the times they would have fired at.

Timers run when the recorded clock leaves an instant, so every batch stamped ``T`` (cpu,
memory, io of one tick) is in before the analysis at ``T``. Across a silence longer than a
host's dead-after time, one extra tick runs just before the next batch, as the live
aggregator's timers would have during it (hosts go down, stale rules resolve).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..errors import WireError
from ..protocol import kinds
from ..protocol.batch import check_body
from ..protocol.wire import Envelope
from ..rules.alerting import Alert, AlertEngine
from .fleet import Event, Fleet, FleetConfig


@dataclass
class ReplaySummary:
    """What was replayed and what would have fired."""

    batches: int = 0
    bad_batches: int = 0
    recorded_events: dict[str, int] = field(default_factory=dict)
    hosts: set[str] = field(default_factory=set)
    first_ts: float | None = None
    last_ts: float | None = None
    fired: dict[str, int] = field(default_factory=dict)       # alert source -> firings
    still_firing: list[Alert] = field(default_factory=list)

    @property
    def span_s(self) -> float:
        return 0.0 if self.first_ts is None or self.last_ts is None else self.last_ts - self.first_ts

    def to_dict(self) -> dict[str, Any]:
        return {"batches": self.batches, "bad_batches": self.bad_batches,
                "recorded_events": dict(self.recorded_events), "hosts": sorted(self.hosts),
                "first_ts": self.first_ts, "last_ts": self.last_ts, "span_s": self.span_s,
                "fired": dict(self.fired), "still_firing": [a.to_dict() for a in self.still_firing]}


class Replay:
    """Feeds recorded batches to a Fleet and its alerts to an AlertEngine, in recorded time."""

    def __init__(self, fleet: FleetConfig, engine: AlertEngine, *, tick_s: float = 0.25,
                 snapshot_s: float = 1.0) -> None:
        self.fleet = Fleet(fleet)
        self.engine = engine
        self.tick_s, self.snapshot_s = tick_s, snapshot_s
        self.needs_latest = bool(engine.evaluators) or engine.burn is not None
        self.dead_after_s = fleet.heartbeat_interval_s * fleet.dead_after_heartbeats
        self.clock: float | None = None
        self._next_tick = self._next_snapshot = -math.inf
        self.summary = ReplaySummary()
        self._firing: dict[tuple, Alert] = {}

    @staticmethod
    def time_of(env: Envelope) -> float | None:
        """A batch's own timestamp (the replay clock), or None for a malformed body."""
        try:
            return check_body(env.body)[1]
        except WireError:
            return None

    def batch(self, env: Envelope) -> list[Alert]:
        """One recorded metric batch: the alerts that fire or resolve because of it (and of
        the timers that ran before it)."""
        ts = self.time_of(env)
        if ts is None:
            self.summary.bad_batches += 1
            return []
        out: list[Alert] = []
        if self.clock is None:
            self.clock = self.summary.first_ts = ts
        elif ts > self.clock:
            out.extend(self._timers(self.clock))
            if ts - self.clock > self.dead_after_s:
                out.extend(self._timers(ts - 1e-3, force=True))
            self.clock = ts
        try:
            _, events, _ = self.fleet.ingest(env, self.clock)
        except WireError:
            self.summary.bad_batches += 1
            return self._seen(out)
        self.fleet.backfill_requests.clear()     # nobody to ask: gaps are reported, not filled
        self.summary.batches += 1
        self.summary.hosts.add(env.host)
        self.summary.last_ts = self.clock
        if events:
            out.extend(self.engine.observe_events(events, self.clock))
        return self._seen(out)

    def event(self, body: dict[str, Any]) -> None:
        """A recorded stream event: counted (the replay recomputes violations and bottlenecks)."""
        kind = str(body.get("type", "-"))
        self.summary.recorded_events[kind] = self.summary.recorded_events.get(kind, 0) + 1

    def finish(self) -> list[Alert]:
        """The timers at the last recorded instant; what is still firing goes in the summary."""
        out = self._seen(self._timers(self.clock, force=True)) if self.clock is not None else []
        self.summary.still_firing = list(self._firing.values())
        return out

    def _timers(self, now: float, force: bool = False) -> list[Alert]:
        out: list[Alert] = []
        if force or now >= self._next_tick:
            self._next_tick = now + self.tick_s
            events, _, _ = self.fleet.tick(now)
            self.fleet.backfill_requests.clear()
            out.extend(self.engine.observe_events(_violations(events), now))
        if force or now >= self._next_snapshot:
            self._next_snapshot = now + self.snapshot_s
            snapshot = self.fleet.status(now)
            if self.needs_latest:
                snapshot["latest"] = {name: h.history.latest() for name, h in self.fleet.hosts.items()}
            out.extend(self.engine.observe_snapshot(snapshot, now))
        return out

    def _seen(self, alerts: list[Alert]) -> list[Alert]:
        for a in alerts:
            key = (a.name, a.host, a.metric)
            if a.state == "resolved":
                self._firing.pop(key, None)
            else:
                if key not in self._firing:
                    self.summary.fired[a.source] = self.summary.fired.get(a.source, 0) + 1
                self._firing[key] = a
        return alerts


def _violations(events: list[Event]) -> list[Event]:
    return [e for e in events if e.type == kinds.EVENT_VIOLATION]
