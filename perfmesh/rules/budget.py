"""Performance budgets: limits per metric, violations, alerts and a utilization report.

A budget is an upper limit on one metric name (``cpu_percent`` <= 80). A sample *violates* its
budget when ``value > limit`` (equal to the limit is still within budget). The violation's
severity is ``'critical'`` when ``value >= limit * CRITICAL_FACTOR`` (25 % or more over the
limit), otherwise ``'warning'``; for a limit of 0 every violation is critical.

:meth:`PerformanceBudget.check_budget_violation` is on the aggregator's hot path, called for
every budgeted sample. Its within-budget path is one dict lookup, a finiteness check, four
attribute updates and one comparison; it needs the time only when it has to (a violation, or an
alert handler watching the metric).

Pure: nothing here reads the wall clock. The time is the ``now`` passed in, or else the injected
``clock``; the in-process class :class:`perfmesh.inproc.budget.PerformanceBudget` (what
``from perfmesh import PerformanceBudget`` gives) injects :func:`time.time`.

The class is not thread-safe: one owner (the aggregator loop, or the manager under its lock)
feeds it samples.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable, Mapping

from ..errors import ConfigError
from ..model.metric import is_finite_number
from .alertstate import AlertPolicy, AlertState

DEFAULT_BUDGETS: dict[str, float] = {
    "cpu_percent": 80.0,
    "memory_percent": 85.0,
    "swap_percent": 50.0,
    "load_1m": 2.0,
    "response_time_ms": 1000.0,
    "memory_growth_mb_per_min": 100.0,
}

CRITICAL_FACTOR = 1.25
"""A violation is critical when the value is at least ``limit * CRITICAL_FACTOR``."""

CONFIG_VERSION = 1
_CONFIG_KEYS = ("version", "budgets")
_STATUS_RANK = {"ok": 0, "warning": 1, "critical": 2}
_HEALTH = ("good", "warning", "critical")


@dataclass
class BudgetViolation:
    """One sample over its budget.

    ``overage`` is ``value - limit``; ``overage_percent`` is the overage as a percentage of
    the limit, or None when the limit is 0.
    """

    metric: str
    value: float
    limit: float
    severity: str
    overage: float
    overage_percent: float | None
    timestamp: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "BudgetViolation":
        return cls(**{f.name: data[f.name] for f in fields(cls)})


@dataclass
class AlertEvent:
    """What an alert handler receives.

    ``state`` is ``'firing'`` (first firing or a repeat) or ``'resolved'``. ``severity`` is the
    worst violation severity seen since the alert started pending. ``repeat`` counts the
    re-fires of this firing (0 for the first).
    """

    handler_id: int
    metric: str
    state: str
    value: float
    limit: float
    clear_level: float
    severity: str
    timestamp: float
    repeat: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "AlertEvent":
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


class _Handler:
    __slots__ = ("handler_id", "fn", "metric", "clear_level", "policy", "states", "errors")

    def __init__(self, handler_id: int, fn: Callable[[AlertEvent], Any], metric: str | None,
                 delay_samples: int, clear_level: float | None,
                 repeat_interval_s: float | None) -> None:
        self.handler_id = handler_id
        self.fn = fn
        self.metric = metric
        self.clear_level = clear_level
        self.policy = AlertPolicy(for_samples=delay_samples, repeat_s=repeat_interval_s)
        self.states: dict[str, AlertState] = {}
        self.errors = 0


class _Budget:
    """A limit and the running statistics of the samples checked against it."""

    __slots__ = ("limit", "critical_at", "last", "peak", "total", "count", "violations",
                 "routes")

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.critical_at = limit * CRITICAL_FACTOR
        self.last = 0.0
        self.peak = -math.inf
        self.total = 0.0
        self.count = 0
        self.violations = 0
        self.routes: tuple[_Handler, ...] = ()

    def severity(self, value: float) -> str:
        return "critical" if value >= self.critical_at else "warning"

    def status(self) -> str:
        if self.count == 0 or self.last <= self.limit:
            return "ok"
        return self.severity(self.last)


def _validated_limit(name: Any, limit: Any) -> float:
    if not isinstance(name, str) or not name:
        raise ConfigError(f"budget name {name!r} is invalid; expected a non-empty string")
    if not is_finite_number(limit) or limit < 0:
        raise ConfigError(
            f"budget limit for {name!r} is {limit!r}; expected a finite number >= 0")
    return float(limit)


def _bad_value(name: str, value: Any) -> ConfigError:
    return ConfigError(f"value {value!r} for budget {name!r} is invalid; expected a finite number")


def _percent(value: float, limit: float) -> float | None:
    return None if limit == 0 else value * 100.0 / limit


class PerformanceBudget:
    """Limits per metric name, checked sample by sample.

    ``limits`` defaults to :data:`DEFAULT_BUDGETS`; pass ``{}`` for no budgets. ``clock`` gives
    the timestamp when ``now`` is not passed to :meth:`check_budget_violation`; without a clock,
    a check that needs the time and was not given ``now`` raises ConfigError.
    """

    def __init__(self, limits: Mapping[str, float] | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        self._clock = clock
        self._budgets: dict[str, _Budget] = {}
        self._handlers: dict[int, _Handler] = {}
        self._handler_ids = itertools.count(1)
        for name, limit in (DEFAULT_BUDGETS if limits is None else limits).items():
            self.set_budget_limit(name, limit)

    # -- limits ---------------------------------------------------------------------------

    def set_budget_limit(self, name: str, limit: float) -> None:
        """Set (or change) the limit for ``name``; its statistics are kept on change."""
        limit = _validated_limit(name, limit)
        budget = self._budgets.get(name)
        if budget is None:
            self._budgets[name] = _Budget(limit)
            self._route()
        else:
            budget.limit = limit
            budget.critical_at = limit * CRITICAL_FACTOR

    def get_budget_limit(self, name: str) -> float | None:
        budget = self._budgets.get(name)
        return None if budget is None else budget.limit

    def remove_budget_limit(self, name: str) -> bool:
        """Remove the budget for ``name``; False when there was none."""
        if self._budgets.pop(name, None) is None:
            return False
        for handler in self._handlers.values():
            handler.states.pop(name, None)
        return True

    def has_budget(self, name: str) -> bool:
        return name in self._budgets

    @property
    def limits(self) -> dict[str, float]:
        """A copy of the limits, by metric name."""
        return {name: budget.limit for name, budget in self._budgets.items()}

    # -- the hot path ---------------------------------------------------------------------

    def check_budget_violation(self, name: str, value: float,
                               now: float | None = None) -> BudgetViolation | None:
        """Record ``value`` for ``name`` and return a violation when it is over the limit.

        A name without a budget returns None and records nothing. A value that is not a finite
        number raises ConfigError (a NaN is never compared against a limit).
        """
        budget = self._budgets.get(name)
        if budget is None:
            return None
        try:  # x - x is 0 for finite numbers, NaN for NaN and infinities
            if value - value != 0 or value.__class__ is bool:
                raise _bad_value(name, value)
        except TypeError:
            raise _bad_value(name, value) from None
        budget.last = value
        budget.count += 1
        budget.total += value
        if value > budget.peak:
            budget.peak = value
        if value <= budget.limit:
            if budget.routes:
                self._alert(name, budget, value, None, now)
            return None
        budget.violations += 1
        if now is None:
            now = self._now()
        limit = budget.limit
        violation = BudgetViolation(name, value, limit, budget.severity(value), value - limit,
                                    _percent(value - limit, limit), now)
        if budget.routes:
            self._alert(name, budget, value, violation.severity, now)
        return violation

    def _now(self) -> float:
        if self._clock is None:
            raise ConfigError("this budget has no clock; expected now= (the sample's time) "
                              "or PerformanceBudget(clock=...)")
        return self._clock()

    # -- alerts ---------------------------------------------------------------------------

    def add_alert_handler(self, handler: Callable[[AlertEvent], Any], *,
                          metric: str | None = None, delay_samples: int = 1,
                          clear_level: float | None = None,
                          repeat_interval_s: float | None = None) -> int:
        """Call ``handler(AlertEvent)`` when a budget's alert fires, repeats or resolves.

        ``metric`` None watches every budget (each metric has its own alert state). The alert
        fires after ``delay_samples`` consecutive violating samples, re-fires every
        ``repeat_interval_s`` seconds on later samples while firing (None: never), and resolves
        on the first sample strictly below ``clear_level`` (default: the limit; only settable
        with a ``metric``). A handler exception is counted (:meth:`handler_errors`) and
        swallowed. Returns the handler id.
        """
        if not callable(handler):
            raise ConfigError(f"alert handler {handler!r} is not callable")
        if metric is not None and (not isinstance(metric, str) or not metric):
            raise ConfigError(f"alert metric {metric!r} is invalid; expected a non-empty string")
        if isinstance(delay_samples, bool) or not isinstance(delay_samples, int) \
                or delay_samples < 1:
            raise ConfigError(f"delay_samples {delay_samples!r} is invalid; expected an int >= 1")
        if clear_level is not None:
            if metric is None:
                raise ConfigError("clear_level needs a metric; expected metric='name' with it")
            if not is_finite_number(clear_level) or clear_level < 0:
                raise ConfigError(
                    f"clear_level {clear_level!r} is invalid; expected a finite number >= 0")
            clear_level = float(clear_level)
        if repeat_interval_s is not None and (
                not is_finite_number(repeat_interval_s) or repeat_interval_s <= 0):
            raise ConfigError(f"repeat_interval_s {repeat_interval_s!r} is invalid; "
                              "expected None or a finite number > 0")
        handler_id = next(self._handler_ids)
        self._handlers[handler_id] = _Handler(handler_id, handler, metric, delay_samples,
                                              clear_level, repeat_interval_s)
        self._route()
        return handler_id

    def remove_alert_handler(self, handler_id: int) -> bool:
        """Remove a handler; False when the id is unknown."""
        if self._handlers.pop(handler_id, None) is None:
            return False
        self._route()
        return True

    def handler_errors(self, handler_id: int | None = None) -> int:
        """Exceptions raised by one handler, or by all of them when ``handler_id`` is None."""
        if handler_id is None:
            return sum(h.errors for h in self._handlers.values())
        handler = self._handlers.get(handler_id)
        return 0 if handler is None else handler.errors

    def _route(self) -> None:
        """Attach to every budget the handlers that watch it (kept off the hot path)."""
        for name, budget in self._budgets.items():
            budget.routes = tuple(h for h in self._handlers.values()
                                  if h.metric is None or h.metric == name)

    def _alert(self, name: str, budget: _Budget, value: float, severity: str | None,
               now: float | None) -> None:
        """Advance each watching handler's alert state (:mod:`.alertstate`) by one sample."""
        clock = self._now if now is None else lambda: now
        for handler in budget.routes:
            state = handler.states.get(name)
            if state is None:
                state = handler.states[name] = AlertState()
            clear_level = budget.limit if handler.clear_level is None else handler.clear_level
            step = state.step(handler.policy, severity, value < clear_level, clock)
            if step is None:
                continue
            event = AlertEvent(handler.handler_id, name, step.state, value, budget.limit,
                               clear_level, step.severity, step.time, step.repeat)
            try:
                handler.fn(event)
            except Exception:  # a broken handler must never break the sampling loop
                handler.errors += 1

    # -- reports --------------------------------------------------------------------------

    def utilization_report(self) -> dict[str, dict[str, Any]]:
        """Per budget: limit, last, peak, average (None before any sample), utilization as a
        percentage of the limit (None for a zero limit or no sample), sample and violation
        counts, and status: 'ok' (last within budget or no sample), else the last sample's
        violation severity."""
        report = {}
        for name, budget in self._budgets.items():
            limit = budget.limit
            if budget.count:
                last, peak = budget.last, budget.peak
                average = budget.total / budget.count
                percents = (_percent(last, limit), _percent(peak, limit),
                            _percent(average, limit))
            else:
                last = peak = average = None
                percents = (None, None, None)
            report[name] = {
                "limit": limit,
                "last": last,
                "peak": peak,
                "average": average,
                "utilization_percent": percents[0],
                "peak_utilization_percent": percents[1],
                "average_utilization_percent": percents[2],
                "samples": budget.count,
                "violations": budget.violations,
                "status": budget.status(),
            }
        return report

    def budget_health(self) -> str:
        """'good' when every budget's last sample is within its limit, else the worst
        severity among the budgets' statuses ('warning' or 'critical')."""
        worst = max((_STATUS_RANK[b.status()] for b in self._budgets.values()), default=0)
        return _HEALTH[worst]

    # -- config ---------------------------------------------------------------------------

    def export_budget_config(self) -> dict[str, Any]:
        """``{"version": 1, "budgets": {name: limit}}``: plain JSON-able data."""
        return {"version": CONFIG_VERSION, "budgets": self.limits}

    def import_budget_config(self, config: Any) -> None:
        """Replace all limits with those of ``config`` (as made by export_budget_config).

        Everything is validated first; on any error a ConfigError names the bad key or value
        and what was expected, and the current limits are left untouched. Statistics of the
        names kept are preserved.
        """
        if not isinstance(config, Mapping):
            raise ConfigError(
                f"budget config is {type(config).__name__}; expected a dict with "
                "keys 'version' and 'budgets'")
        unknown = sorted(str(k) for k in config if k not in _CONFIG_KEYS)
        if unknown:
            raise ConfigError(f"budget config has unknown key(s) {', '.join(unknown)}; "
                              f"expected only {', '.join(_CONFIG_KEYS)}")
        version = config.get("version")
        if version != CONFIG_VERSION or isinstance(version, bool):
            raise ConfigError(
                f"budget config version {version!r} is unsupported; expected {CONFIG_VERSION}")
        budgets = config.get("budgets")
        if not isinstance(budgets, Mapping):
            raise ConfigError(
                f"budget config 'budgets' is {budgets!r}; expected a dict of name -> limit")
        validated = {name: _validated_limit(name, limit) for name, limit in budgets.items()}
        for name in [n for n in self._budgets if n not in validated]:
            self.remove_budget_limit(name)
        for name, limit in validated.items():
            self.set_budget_limit(name, limit)
