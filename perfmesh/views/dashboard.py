"""The fleet as a viewer sees it: pure state behind ``perfmesh top`` and ``perfmesh web``.

A :class:`FleetModel` applies stream events (as the subscriber yields them) and status
snapshots (as ``ApiClient.status()`` returns them), and answers what a view needs: one row per
host (sorted and filtered), sparklines, one host's detail, and JSON for the web page. It never
reads the clock or touches a socket; every method that needs the time takes ``now``. The cells
as text are in :mod:`.cells`, the keys of ``perfmesh top`` in :mod:`.top`.
"""

from __future__ import annotations

import math
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable

from ..model.metric import finite_float as _finite
from ..model.serieskey import parse_series_key, series_key
from ..protocol import kinds

SORT_KEYS = ("name", "cpu", "memory", "load", "disk", "net", "health")
HEALTH_RANK = {"critical": 0, "warning": 1, "degraded": 1, "good": 2, "unknown": 3}
DEFAULT_WINDOW_S = 600.0
DEFAULT_MAX_POINTS = 600
RECENT_EVENTS = 50

# The series a fleet row shows, by column.
ROW_SERIES = {
    "cpu": "cpu_percent", "memory": "memory_percent", "swap": "swap_percent", "load": "load_1m",
    "disk_read": "disk_read_bytes_per_s", "disk_write": "disk_write_bytes_per_s",
    "net_recv": "net_recv_bytes_per_s", "net_sent": "net_sent_bytes_per_s",
}



@dataclass
class HostView:
    """Everything the viewer knows about one host."""

    name: str
    alive: bool = True
    health: str = "unknown"
    last_seen: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    collectors: list[dict[str, Any]] = field(default_factory=list)
    latest: dict[str, tuple[float, float, str]] = field(default_factory=dict)   # key -> (ts, value, unit)
    series: dict[str, deque] = field(default_factory=dict)                     # key -> deque[(ts, value)]
    active_violations: dict[str, dict[str, Any]] = field(default_factory=dict)  # metric -> violation
    recent_violations: deque = field(default_factory=lambda: deque(maxlen=RECENT_EVENTS))
    bottlenecks: list[dict[str, Any]] = field(default_factory=list)
    commands: deque = field(default_factory=lambda: deque(maxlen=RECENT_EVENTS))

    def value(self, key: str) -> float | None:
        got = self.latest.get(key)
        return got[1] if got else None


@dataclass
class HostRow:
    """One line of the fleet table."""

    name: str
    alive: bool
    health: str
    cpu: float | None
    memory: float | None
    swap: float | None
    load: float | None
    disk_read: float | None
    disk_write: float | None
    net_recv: float | None
    net_sent: float | None
    violations: list[str]
    cpu_history: list[float]
    memory_history: list[float]
    cpu_count: int | None

    @property
    def disk(self) -> float | None:
        return _sum_or_none(self.disk_read, self.disk_write)

    @property
    def net(self) -> float | None:
        return _sum_or_none(self.net_recv, self.net_sent)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "alive": self.alive, "health": self.health, "cpu": self.cpu,
                "memory": self.memory, "swap": self.swap, "load": self.load,
                "disk_read": self.disk_read, "disk_write": self.disk_write,
                "net_recv": self.net_recv, "net_sent": self.net_sent,
                "violations": list(self.violations), "cpu_history": list(self.cpu_history),
                "memory_history": list(self.memory_history), "cpu_count": self.cpu_count}


def _sum_or_none(a: float | None, b: float | None) -> float | None:
    if a is None and b is None:
        return None
    return (a or 0.0) + (b or 0.0)


@dataclass
class HostDetail:
    """One host's breakdown: per CPU, per disk, per interface, and what happened lately."""

    row: HostRow
    per_cpu: list[tuple[str, float]]
    disks: list[dict[str, Any]]
    interfaces: list[dict[str, Any]]
    violations: list[dict[str, Any]]
    commands: list[dict[str, Any]]
    bottlenecks: list[dict[str, Any]]
    info: dict[str, Any]
    collectors: list[dict[str, Any]]
    counters: dict[str, int]


def _natural(text: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text))


class FleetModel:
    """Applies stream events and status snapshots; answers rows, sparklines and details."""

    def __init__(self, window_s: float = DEFAULT_WINDOW_S, max_points: int = DEFAULT_MAX_POINTS) -> None:
        self.window_s = window_s
        self.max_points = max_points
        self.hosts: dict[str, HostView] = {}
        self.connected = False
        self.version = 0            # bumped on every change, so a view can tell it is stale
        self.backfill_peak = 0      # most batches owed at once since the current backfill began

    def host(self, name: str) -> HostView:
        view = self.hosts.get(name)
        if view is None:
            view = self.hosts[name] = HostView(name)
        return view

    # ---------------------------------------------------------------- input
    def apply_events(self, events: Iterable[dict[str, Any]]) -> int:
        n = 0
        for ev in events:
            n += self.apply_event(ev)
        return n

    def apply_event(self, ev: dict[str, Any]) -> bool:
        """One stream event; returns whether it was understood."""
        kind, name = ev.get("type"), ev.get("host")
        if not isinstance(name, str) or not name:
            return False
        if kind == kinds.EVENT_METRIC:
            return self._metric(name, ev)
        view = self.host(name)
        if kind == kinds.EVENT_VIOLATION:
            metric = str(ev.get("metric", "?"))
            if ev.get("state") == kinds.RESOLVED:
                view.active_violations.pop(metric, None)
            else:
                view.active_violations[metric] = dict(ev)
            view.recent_violations.append(dict(ev))
        elif kind == kinds.EVENT_BOTTLENECK:
            view.bottlenecks = [b for b in view.bottlenecks if b.get("kind") != ev.get("kind")] + [dict(ev)]
        elif kind == kinds.EVENT_COMMAND:
            view.commands.append(dict(ev))
        elif kind == kinds.EVENT_HOST:
            state = ev.get("state")
            if state == kinds.HOST_DOWN:
                view.alive = False
            elif state in (kinds.HOST_UP, kinds.HOST_REGISTERED):
                view.alive = True
                if isinstance(ev.get("info"), dict):
                    view.info = dict(ev["info"])
        elif kind != kinds.EVENT_GAP:
            return False
        self.version += 1
        return True

    def _metric(self, name: str, ev: dict[str, Any]) -> bool:
        value, ts = _finite(ev.get("value")), _finite(ev.get("timestamp"))
        metric = ev.get("name")
        if value is None or ts is None or not isinstance(metric, str):
            return False
        labels = ev.get("labels") if isinstance(ev.get("labels"), dict) else {}
        key = series_key(metric, {str(k): str(v) for k, v in labels.items()})
        view = self.host(name)
        view.latest[key] = (ts, value, str(ev.get("unit", "")))
        view.last_seen = max(view.last_seen, ts)
        points = view.series.get(key)
        if points is None:
            points = view.series[key] = deque(maxlen=self.max_points)
        if points and ts < points[-1][0]:
            return True   # out of order (a backfill): latest is kept, the live chart stays monotonic
        points.append((ts, value))
        horizon = ts - self.window_s
        while points and points[0][0] < horizon:
            points.popleft()
        self.version += 1
        return True

    def backfill_progress(self) -> tuple[int, float] | None:
        """(batches still owed across the fleet, fraction done) while a backfill is under way."""
        owed = sum(int(h.counters.get("missing_batches", 0) or 0) for h in self.hosts.values())
        if owed <= 0:
            self.backfill_peak = 0
            return None
        self.backfill_peak = max(self.backfill_peak, owed)
        return owed, 1.0 - owed / self.backfill_peak

    def apply_status(self, status: dict[str, Any]) -> None:
        """A snapshot from ``ApiClient.status()``: liveness, health, violations, collectors."""
        self.connected = True
        for h in status.get("hosts", []):
            if not isinstance(h, dict) or not isinstance(h.get("name"), str):
                continue
            view = self.host(h["name"])
            view.alive = bool(h.get("alive", view.alive))
            view.health = str(h.get("health", view.health))
            view.last_seen = max(view.last_seen, _finite(h.get("last_seen")) or 0.0)
            for attr in ("info", "counters"):
                if isinstance(h.get(attr), dict):
                    setattr(view, attr, dict(h[attr]))
            if isinstance(h.get("collectors"), list):
                view.collectors = [dict(c) for c in h["collectors"] if isinstance(c, dict)]
            if isinstance(h.get("budget_violations"), list):
                view.active_violations = {str(v.get("metric")): dict(v) for v in h["budget_violations"]
                                          if isinstance(v, dict)}
            if isinstance(h.get("bottlenecks"), list):
                view.bottlenecks = [dict(b) for b in h["bottlenecks"] if isinstance(b, dict)]
            if not view.recent_violations and isinstance(h.get("recent_violations"), list):
                view.recent_violations.extend(dict(v) for v in h["recent_violations"] if isinstance(v, dict))
            if isinstance(h.get("recent_commands"), list) and not view.commands:
                view.commands.extend(dict(c) for c in h["recent_commands"] if isinstance(c, dict))
        self.version += 1

    def disconnected(self) -> None:
        if self.connected:
            self.connected = False
            self.version += 1

    # ---------------------------------------------------------------- output
    def points(self, host: str, key: str, since: float = float("-inf")) -> list[tuple[float, float]]:
        view = self.hosts.get(host)
        if view is None or key not in view.series:
            return []
        return [p for p in view.series[key] if p[0] > since]

    def row(self, view: HostView, history: int = 60) -> HostRow:
        values = {col: view.value(key) for col, key in ROW_SERIES.items()}
        cpu_count = _finite(view.info.get("cpu_count")) or view.value("cpu_count")
        return HostRow(
            name=view.name, alive=view.alive, health=view.health, **values,
            violations=sorted(view.active_violations),
            cpu_history=[v for _, v in list(view.series.get("cpu_percent", ()))[-history:]],
            memory_history=[v for _, v in list(view.series.get("memory_percent", ()))[-history:]],
            cpu_count=int(cpu_count) if cpu_count else None)

    def rows(self, sort: str = "name", filter_text: str = "", history: int = 60,
             reverse: bool = False) -> list[HostRow]:
        """Rows for every host whose name contains ``filter_text`` (any case), sorted by ``sort``.

        ``name`` sorts A-Z, ``health`` worst first, every other key largest first (hosts
        without a value last); ties fall back to the name; ``reverse`` turns the order round.
        Down hosts always come after the live ones (a state folder full of old hosts must not
        push the live ones off the screen).
        """
        if sort not in SORT_KEYS:
            raise ValueError(f"sort key {sort!r} is not one of {', '.join(SORT_KEYS)}")
        needle = filter_text.lower()
        rows = [self.row(v, history) for v in self.hosts.values() if needle in v.name.lower()]
        rows.sort(key=lambda r: r.name)
        if sort == "health":
            rows.sort(key=lambda r: HEALTH_RANK.get(r.health, 3))
        elif sort != "name":
            rows.sort(key=lambda r: -getattr(r, sort) if getattr(r, sort) is not None else math.inf)
        if reverse:
            rows.reverse()
        rows.sort(key=lambda r: not r.alive)
        return rows

    def detail(self, host: str, recent: int = 10) -> HostDetail | None:
        view = self.hosts.get(host)
        if view is None:
            return None
        per_cpu: list[tuple[str, float]] = []
        disks: dict[str, dict[str, Any]] = {}
        nics: dict[str, dict[str, Any]] = {}
        for key, (_, value, _) in view.latest.items():
            name, labels = parse_series_key(key)
            if name == "cpu_percent" and "cpu" in labels:
                per_cpu.append((labels["cpu"], value))
            elif "device" in labels and name.startswith("disk_"):
                disks.setdefault(labels["device"], {"device": labels["device"]})[name[5:]] = value
            elif "interface" in labels and name.startswith("net_"):
                nics.setdefault(labels["interface"], {"interface": labels["interface"]})[name[4:]] = value
        per_cpu.sort(key=lambda p: _natural(p[0]))
        return HostDetail(
            row=self.row(view), per_cpu=per_cpu,
            disks=[disks[k] for k in sorted(disks, key=_natural)],
            interfaces=[nics[k] for k in sorted(nics, key=_natural)],
            violations=list(view.recent_violations)[-recent:][::-1],
            commands=list(view.commands)[-recent:][::-1],
            bottlenecks=list(view.bottlenecks), info=dict(view.info),
            collectors=list(view.collectors), counters=dict(view.counters))

    def overview(self, sort: str = "name", filter_text: str = "") -> dict[str, Any]:
        """The fleet page's JSON: one dict per host row, and whether the aggregator answers."""
        return {"connected": self.connected, "version": self.version,
                "hosts": [r.to_dict() for r in self.rows(sort, filter_text, history=120)]}

    def host_json(self, host: str, since: float = float("-inf")) -> dict[str, Any] | None:
        """One host page's JSON: the detail plus every series' points newer than ``since``."""
        detail = self.detail(host, recent=20)
        if detail is None:
            return None
        view = self.hosts[host]
        series = {}
        for key, points in view.series.items():
            new = [[round(ts, 3), v] for ts, v in points if ts > since]
            if new:
                series[key] = {"unit": view.latest[key][2], "points": new}
        return {"name": host, "alive": view.alive, "health": view.health, "row": detail.row.to_dict(),
                "per_cpu": detail.per_cpu, "disks": detail.disks, "interfaces": detail.interfaces,
                "violations": detail.violations, "active_violations": list(view.active_violations.values()),
                "commands": detail.commands, "bottlenecks": detail.bottlenecks, "info": detail.info,
                "collectors": detail.collectors, "counters": detail.counters, "series": series,
                "connected": self.connected}
