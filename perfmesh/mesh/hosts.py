"""A host as the aggregator sees it (its state, its open gaps) and the stream's events.

``HostState`` and ``GapInfo`` are plain data owned by :class:`perfmesh.mesh.fleet.Fleet`;
``Event`` is what goes out on the stream.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ..rules.alertstate import AlertState
from ..rules.analysis import Bottleneck, overall_health
from ..rules.budget import BudgetViolation, PerformanceBudget
from .history import SeriesHistory
from .sequence import SeqTracker

NO_EVENTS: tuple = ()


@dataclass
class Event:
    """One stream event: its type, the host it is about, a category (or '-') and its body."""

    type: str
    host: str
    body: dict[str, Any]
    category: str = "-"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "host": self.host, **self.body}


@dataclass
class GapInfo:
    """A detected gap: its seq range, the time range it covers, and when it was asked for.

    ``detected`` moves forward while the host is down, so the backfill timeout counts only
    time in which the agent could have answered.
    """

    first: int
    last: int
    start_ts: float | None
    end_ts: float
    detected: float
    asked: float
    checked: float | None = None



@dataclass
class HostState:
    name: str
    boot: str
    first_seen: float
    last_seen: float
    history: SeriesHistory
    budget: PerformanceBudget
    alive: bool = True
    registered: bool = False
    route: Any = None                      # the control socket's routing id of the agent
    info: dict[str, Any] = field(default_factory=dict)
    collectors: list[dict[str, Any]] = field(default_factory=list)
    seq: SeqTracker = field(default_factory=SeqTracker)
    last_ts: float | None = None
    gaps: list[GapInfo] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=lambda: {
        "batches": 0, "samples": 0, "gaps": 0, "backfilled": 0, "lost_batches": 0, "duplicates": 0,
        "bad_frames": 0, "series_refused": 0})
    bad_reasons: dict[str, int] = field(default_factory=dict)
    active_violations: dict[str, dict[str, Any]] = field(default_factory=dict)
    budget_alerts: dict[str, AlertState] = field(default_factory=dict)   # pending or firing
    recent_violations: deque = field(default_factory=lambda: deque(maxlen=100))
    recent_commands: deque = field(default_factory=lambda: deque(maxlen=50))
    bottlenecks: list[Bottleneck] = field(default_factory=list)
    last_auto_optimize: float = float("-inf")
    incarnation: str | None = None          # the agent process (changes when it restarts)
    analysed_batches: int = -1             # counters["batches"] at the last analysis

    @property
    def health(self) -> str:
        """good | warning | critical, from the active violations and bottlenecks now."""
        violations = [BudgetViolation.from_dict(v) for v in self.active_violations.values()]
        return overall_health(violations, self.bottlenecks)

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name, "alive": self.alive, "last_seen": self.last_seen,
            "first_seen": self.first_seen, "boot": self.boot, "health": self.health,
            "registered": self.registered, "info": dict(self.info),
            "budget_violations": list(self.active_violations.values()),
            "recent_violations": list(self.recent_violations)[-10:],
            "recent_commands": list(self.recent_commands)[-10:],
            "bottlenecks": [b.to_dict() for b in self.bottlenecks],
            "collectors": [dict(c) for c in self.collectors],
            "counters": {**self.counters, "missing_batches": self.seq.missing_count},
            "bad_frame_reasons": dict(self.bad_reasons), "last_seq": self.seq.last,
            "series": self.history.series_count,
        }
