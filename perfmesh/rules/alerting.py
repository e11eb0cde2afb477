"""Alert rules and budget burn rates, evaluated from what the aggregator sees.

Pure: nothing here reads the clock or touches a socket. The delivery shell
(``workers/alerts.py``) feeds an :class:`AlertEngine` the aggregator's snapshots (each host's
newest value of every series, about once a second) and its stream events, and ships the
:class:`Alert` values it returns to webhooks and Alertmanager.

Three sources of alerts, one shape:

- **rules** (:class:`AlertRule`): a metric over a warning and/or critical level, for N samples
  and/or S seconds (delay), resolving only below a clear level (hysteresis), re-sent every
  ``repeat_s`` while firing, for the hosts a :class:`HostSelector` picks (the state machine
  is :mod:`.alertstate`, shared with budget alert handlers);
- **budget violations** from the fleet's stream (``violation`` events, firing and resolved);
- **bottlenecks** from the fleet's status (firing while the host reports the bottleneck).

A :class:`BurnTracker` gives the burn-rate view of each budget, as SLO error budgets do: the
fraction of samples over the limit within each window, divided by the fraction allowed. A burn
rate of 1 uses the budget up exactly over the window; 10 uses it up ten times as fast.
"""

from __future__ import annotations

import fnmatch
import math
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Mapping

from ..errors import ConfigError
from ..model.metric import finite_float
from ..model.serieskey import parse_series_key
from .alertstate import AlertPolicy, AlertState, Transition
from ..protocol import kinds
from .analysis import BOTTLENECK_CATEGORIES

SEVERITIES = ("warning", "critical")
DEFAULT_STALE_S = 300.0


# ------------------------------------------------------------------ selectors
@dataclass(frozen=True)
class HostSelector:
    """Host names or glob patterns (``web*``, ``db-[0-9]``); empty selects every host."""

    patterns: tuple[str, ...] = ()

    def matches(self, host: str) -> bool:
        if not self.patterns:
            return True
        return any(p == host or fnmatch.fnmatchcase(host, p) for p in self.patterns)

    @classmethod
    def parse(cls, raw: Any, key: str = "hosts") -> "HostSelector":
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, (list, tuple)) or not all(isinstance(p, str) and p for p in raw):
            raise ConfigError(f"{key} is {raw!r}; expected a host name or glob, or a list of them")
        return cls(tuple(raw))


# ---------------------------------------------------------------------- rules
@dataclass(frozen=True)
class AlertRule:
    """``metric`` over ``warning``/``critical`` (either or both) on the selected hosts.

    ``metric`` is a series name (every series of that name: ``cpu_percent`` also matches
    ``cpu_percent{cpu=3}`` only when ``labels`` is true) or an exact series key with labels.
    It fires after ``for_samples`` consecutive samples over a level and, when ``for_s`` is set,
    only once the condition has held that long. It resolves on the first sample below
    ``clear`` (default: the lowest level, so at or under the level resolves). ``repeat_s``
    re-sends a firing alert; None sends it once.
    """

    name: str
    metric: str
    warning: float | None = None
    critical: float | None = None
    for_samples: int = 1
    for_s: float | None = None
    clear: float | None = None
    repeat_s: float | None = None
    hosts: HostSelector = field(default_factory=HostSelector)
    labels: bool = False
    stale_s: float = DEFAULT_STALE_S
    summary: str = ""

    def __post_init__(self) -> None:
        if self.warning is None and self.critical is None:
            raise ConfigError(f"alert rule {self.name!r} has no level; expected warning and/or critical")
        if self.warning is not None and self.critical is not None and self.critical < self.warning:
            raise ConfigError(f"alert rule {self.name!r}: critical {self.critical} is below "
                              f"warning {self.warning}; expected critical >= warning")
        if self.clear is not None and self.clear > self.lowest:
            raise ConfigError(f"alert rule {self.name!r}: clear {self.clear} is above the level "
                              f"{self.lowest}; expected clear <= the lowest level")

    @property
    def lowest(self) -> float:
        return min(v for v in (self.warning, self.critical) if v is not None)

    def level(self, value: float) -> str | None:
        if self.critical is not None and value > self.critical:
            return "critical"
        if self.warning is not None and value > self.warning:
            return "warning"
        return None

    def threshold(self, severity: str) -> float:
        return self.critical if severity == "critical" else self.warning  # type: ignore[return-value]

    def selects(self, key: str) -> bool:
        if key == self.metric:
            return True
        return self.labels and key.startswith(self.metric + "{")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["hosts"] = list(self.hosts.patterns)
        return out


@dataclass
class Alert:
    """One alert, whatever raised it, as delivery targets see it.

    ``name`` is the alert name (the rule's, ``budget_violation`` or ``bottleneck``); ``metric`` the series
    key (or the bottleneck kind); ``source`` is ``rule``, ``budget`` or
    ``bottleneck``. ``state`` is ``firing`` or ``resolved``. When a firing alert
    changes severity, ``previous_severity`` names the one it replaces.
    """

    name: str
    host: str
    metric: str
    severity: str
    state: str
    value: float | None
    threshold: float | None
    category: str
    started_at: float
    timestamp: float
    source: str
    labels: dict[str, str] = field(default_factory=dict)
    repeat: int = 0
    previous_severity: str | None = None
    summary: str = ""

    @property
    def fingerprint(self) -> tuple[str, str, str, str]:
        return (self.name, self.host, self.metric, self.severity)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _State(AlertState):
    """The shared alert state, plus what a rule remembers of its series."""

    __slots__ = ("last_ts", "category")

    def __init__(self) -> None:
        super().__init__()
        self.last_ts = -math.inf
        self.category = "-"


class RuleEvaluator:
    """The state of one rule on every (host, series) it sees."""

    def __init__(self, rule: AlertRule) -> None:
        self.rule = rule
        self.policy = AlertPolicy(for_samples=rule.for_samples, for_s=rule.for_s,
                                  repeat_s=rule.repeat_s, follow=True)
        self.states: dict[tuple[str, str], _State] = {}

    def observe(self, host: str, key: str, ts: float, value: float, category: str) -> list[Alert]:
        """One sample; a sample no newer than the last one seen is ignored."""
        st = self.states.get((host, key))
        if st is None:
            st = self.states[(host, key)] = _State()
        if ts <= st.last_ts or not math.isfinite(value):
            return []
        st.last_ts = ts
        st.category = category
        clear = self.rule.clear
        step = st.step(self.policy, self.rule.level(value), clear is None or value < clear, lambda: ts)
        return [] if step is None else [self._alert(host, key, st, step, value)]

    def expire(self, now: float) -> list[Alert]:
        """Resolve firing alerts whose series sent nothing for ``stale_s`` (host gone)."""
        out = []
        for (host, key), st in list(self.states.items()):
            if now - st.last_ts >= self.rule.stale_s:
                if st.firing:
                    out.append(self._alert(host, key, st, st.resolve(now), None))
                del self.states[(host, key)]
        return out

    def _alert(self, host: str, key: str, st: _State, step: Transition, value: float | None) -> Alert:
        name, labels = parse_series_key(key)
        summary = self.rule.summary or f"{key} on {host} over {step.severity} level"
        return Alert(self.rule.name, host, key, step.severity, step.state, value,
                     self.rule.threshold(step.severity), st.category, step.started, step.time, "rule",
                     labels, step.repeat, step.previous, summary)


# ------------------------------------------------------------------ burn rate
@dataclass(frozen=True)
class BurnRateConfig:
    """``allowed_fraction`` of samples may be over the limit; rates over ``windows_s``."""

    allowed_fraction: float = 0.05
    windows_s: tuple[float, ...] = (300.0, 3600.0)
    bucket_s: float = 10.0

    def __post_init__(self) -> None:
        if not 0 < self.allowed_fraction <= 1:
            raise ConfigError(f"burn_rate.allowed_fraction {self.allowed_fraction!r}; expected 0 < x <= 1")
        if not self.windows_s or any(w <= 0 for w in self.windows_s):
            raise ConfigError(f"burn_rate.windows_s {self.windows_s!r}; expected positive seconds")
        if self.bucket_s <= 0 or self.bucket_s > min(self.windows_s):
            raise ConfigError(f"burn_rate.bucket_s {self.bucket_s!r}; expected 0 < x <= the shortest window")


class BurnTracker:
    """Per (host, budget): counts of samples and of samples over the limit, in time buckets.

    Memory is bounded: ``longest window / bucket_s`` buckets per tracked pair.
    """

    def __init__(self, config: BurnRateConfig | None = None) -> None:
        self.config = config or BurnRateConfig()
        self._span = max(self.config.windows_s)
        self._buckets: dict[tuple[str, str], deque] = {}
        self._last_ts: dict[tuple[str, str], float] = {}

    def observe(self, host: str, metric: str, ts: float, value: float, limit: float) -> None:
        """One sample; a sample no newer than the pair's last one is ignored."""
        pair = (host, metric)
        if ts <= self._last_ts.get(pair, -math.inf) or not math.isfinite(value):
            return
        self._last_ts[pair] = ts
        buckets = self._buckets.get(pair)
        if buckets is None:
            buckets = self._buckets[pair] = deque()
        start = math.floor(ts / self.config.bucket_s) * self.config.bucket_s
        if not buckets or buckets[-1][0] != start:
            buckets.append([start, 0, 0])
        bucket = buckets[-1]
        bucket[1] += 1
        if value > limit:
            bucket[2] += 1
        while buckets and buckets[0][0] <= ts - self._span - self.config.bucket_s:
            buckets.popleft()

    def forget(self, host: str) -> None:
        for pair in [p for p in self._buckets if p[0] == host]:
            del self._buckets[pair]
            del self._last_ts[pair]

    def view(self, now: float) -> list[dict[str, Any]]:
        """Per (host, metric, window): samples, bad samples, bad fraction, burn rate and the
        budget left over the window (1 - bad fraction / allowed fraction, at least 0)."""
        out = []
        allowed = self.config.allowed_fraction
        for (host, metric), buckets in sorted(self._buckets.items()):
            for window in self.config.windows_s:
                total = bad = 0
                for start, n, b in buckets:
                    if start >= now - window:   # whole buckets inside the window
                        total += n
                        bad += b
                fraction = bad / total if total else 0.0
                out.append({"host": host, "metric": metric, "window_s": window,
                            "samples": total, "bad_samples": bad, "bad_fraction": fraction,
                            "burn_rate": fraction / allowed,
                            "budget_remaining": max(0.0, 1.0 - fraction / allowed)})
        return out


# --------------------------------------------------------------------- engine
class AlertEngine:
    """Turns snapshots and stream events into :class:`Alert` values.

    ``limits_for(host)`` gives the budget limits of a host (for burn rates); None tracks no
    burn rate.
    """

    def __init__(self, rules: Iterable[AlertRule] = (), *,
                 limits_for: Callable[[str], Mapping[str, float]] | None = None,
                 burn: BurnRateConfig | None = None, violations: bool = True,
                 bottlenecks: bool = True) -> None:
        self.evaluators = [RuleEvaluator(r) for r in rules]
        self.limits_for = limits_for
        self.burn = BurnTracker(burn) if limits_for is not None else None
        self.violations = violations
        self.bottlenecks = bottlenecks
        self._bottlenecks: dict[tuple[str, str], Alert] = {}
        self._violation_start: dict[tuple[str, str], float] = {}
        self._violation_severity: dict[tuple[str, str], str] = {}

    def observe_snapshot(self, snapshot: Mapping[str, Any], now: float) -> list[Alert]:
        out: list[Alert] = []
        latest = snapshot.get("latest") or {}
        for host, series in latest.items():
            evaluators = [e for e in self.evaluators if e.rule.hosts.matches(host)]
            if evaluators:
                for key, row in series.items():
                    for ev in evaluators:
                        if ev.rule.selects(key):
                            out.extend(ev.observe(host, key, row[0], row[1], row[2]))
            if self.burn is not None:
                for metric, limit in self.limits_for(host).items():  # type: ignore[misc]
                    row = series.get(metric)
                    if row is not None:
                        self.burn.observe(host, metric, row[0], row[1], limit)
        for ev in self.evaluators:
            out.extend(ev.expire(now))
        if self.bottlenecks:
            out.extend(self._observe_bottlenecks(snapshot.get("hosts") or (), now))
        return out

    def _observe_bottlenecks(self, hosts: Iterable[Mapping[str, Any]], now: float) -> list[Alert]:
        out = []
        seen = set()
        for h in hosts:
            for b in h.get("bottlenecks") or ():
                pair = (h["name"], str(b.get("kind")))
                seen.add(pair)
                if pair in self._bottlenecks:
                    continue
                alert = Alert("bottleneck", pair[0], pair[1], _severity(b.get("severity")), kinds.FIRING,
                              None, None, BOTTLENECK_CATEGORIES.get(pair[1], "-"), now, now, "bottleneck",
                              summary=str(b.get("description") or f"{pair[1]} on {pair[0]}"))
                self._bottlenecks[pair] = alert
                out.append(alert)
        for pair in [p for p in self._bottlenecks if p not in seen]:
            alert = self._bottlenecks.pop(pair)
            out.append(Alert(**{**alert.to_dict(), "state": kinds.RESOLVED, "timestamp": now}))
        return out

    def observe_events(self, events: Iterable[Any], now: float) -> list[Alert]:
        """Budget violations from the stream (fleet ``Event`` values) as alerts."""
        out = []
        if not self.violations:
            return out
        for ev in events:
            if ev.type != kinds.EVENT_VIOLATION:
                continue
            body = ev.body
            metric = str(body.get("metric"))
            pair = (ev.host, metric)
            state = kinds.RESOLVED if body.get("state") == kinds.RESOLVED else kinds.FIRING
            ts = finite_float(body.get("timestamp")) or now
            previous = None
            started = self._violation_start.setdefault(pair, ts)
            severity = _severity(body.get("severity"))
            if state == kinds.RESOLVED:
                del self._violation_start[pair]
                self._violation_severity.pop(pair, None)
            else:
                previous = self._violation_severity.get(pair)
                self._violation_severity[pair] = severity
                if previous == severity:
                    previous = None
            out.append(Alert("budget_violation", ev.host, metric, severity, state,
                             finite_float(body.get("value")), finite_float(body.get("limit")),
                             ev.category, started, ts, "budget", previous_severity=previous,
                             summary=f"{metric} on {ev.host} over its budget"))
        return out

    def burn_view(self, now: float) -> list[dict[str, Any]]:
        return self.burn.view(now) if self.burn is not None else []


def _severity(raw: Any) -> str:
    return raw if raw in SEVERITIES else "warning"

