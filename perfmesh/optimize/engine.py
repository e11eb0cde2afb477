"""The optimization engine: an exact-name registry of strategies and their validated runs.

A strategy is registered under a plain name with:

- ``fn(optimization_config) -> truthy/falsy or dict``: does the work. A dict result may
  carry ``success`` (bool, default True), ``state`` (handed to ``rollback``), ``reason``
  or ``error`` (why it failed); every other key is kept in ``OptimizationResult.details``.
- ``schema``: ``{name: Param}``; every config is validated against it before ``fn`` runs.
  Without a schema the config is still screened (``params.validate_free_params``).
- ``check(params)``: optional extra validation that needs the live system (a CPU set, a
  target process); it raises ``InvalidParameterError``.
- ``measure() -> dict[str, float]``: taken before and after ``fn``; lower is better.
- ``rollback(state)``: makes the strategy reversible; called when the verdict is 'worse'.

Verdict rule (``compare_measurements``): each measured value present before and after is
'improved' when it fell by more than ``tolerance`` (relative, default 1 %), 'worse' when it
rose by more than that, else unchanged. The verdict is 'improved' when some value improved
and none got worse, 'worse' when some got worse and none improved, else 'neutral'. It is
None when there was nothing to compare (no measure, a failed run or a failed measurement).

Names are looked up by exact match only: no getattr, no import by name.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ..errors import ConfigError, UnknownStrategyError
from ..model.params import Param, validate_free_params, validate_params
from .strategies import register_builtin_strategies

NAME_RE = re.compile(r"[a-z0-9_.-]{1,64}\Z")
"""A strategy name: 1-64 characters from [a-z0-9_.-] (an exact-match registry key)."""
VERDICTS = ("improved", "neutral", "worse")
DEFAULT_TOLERANCE = 0.01

StrategyFn = Callable[[dict], Any]
MeasureFn = Callable[[], Mapping[str, float]]


@dataclass
class OptimizationResult:
    """The outcome of one ``apply_optimization`` call."""

    strategy: str
    success: bool
    before: dict[str, float] = field(default_factory=dict)
    after: dict[str, float] = field(default_factory=dict)
    improvement: dict[str, float] = field(default_factory=dict)
    verdict: str | None = None
    rolled_back: bool = False
    error: str | None = None
    duration_ms: float = 0.0
    config: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "success": self.success,
            "before": dict(self.before),
            "after": dict(self.after),
            "improvement": dict(self.improvement),
            "verdict": self.verdict,
            "rolled_back": self.rolled_back,
            "error": self.error,
            "duration_ms": self.duration_ms,
            "config": dict(self.config),
            "details": dict(self.details),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "OptimizationResult":
        return cls(
            strategy=data["strategy"],
            success=bool(data["success"]),
            before=dict(data.get("before", {})),
            after=dict(data.get("after", {})),
            improvement=dict(data.get("improvement", {})),
            verdict=data.get("verdict"),
            rolled_back=bool(data.get("rolled_back", False)),
            error=data.get("error"),
            duration_ms=float(data.get("duration_ms", 0.0)),
            config=dict(data.get("config", {})),
            details=dict(data.get("details", {})),
        )


@dataclass(frozen=True)
class Strategy:
    """A registered strategy (see the module docstring for each part)."""

    name: str
    fn: StrategyFn
    schema: Mapping[str, Param] | None = None
    measure: MeasureFn | None = None
    rollback: Callable[[Any], Any] | None = None
    check: Callable[[dict], None] | None = None
    description: str = ""

    @property
    def reversible(self) -> bool:
        return self.rollback is not None

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "reversible": self.reversible,
            "measured": self.measure is not None,
            "params": None
            if self.schema is None
            else {key: param.to_dict() for key, param in self.schema.items()},
        }


def compare_measurements(
    before: Mapping[str, float], after: Mapping[str, float], tolerance: float = DEFAULT_TOLERANCE
) -> tuple[dict[str, float], str | None]:
    """Return (improvement per key = before - after, verdict); lower values are better."""
    improvement: dict[str, float] = {}
    improved = worse = False
    for key in sorted(set(before) & set(after)):
        delta = before[key] - after[key]
        improvement[key] = delta
        threshold = tolerance * abs(before[key])
        if delta > threshold:
            improved = True
        elif -delta > threshold:
            worse = True
    if not improvement:
        return improvement, None
    if improved and not worse:
        return improvement, "improved"
    if worse and not improved:
        return improvement, "worse"
    return improvement, "neutral"


def _interpret(outcome: Any) -> tuple[bool, Any, str | None, dict[str, Any]]:
    """Split a strategy's return value into (success, rollback state, error, details)."""
    if isinstance(outcome, Mapping):
        details = {k: v for k, v in outcome.items() if k not in ("success", "state", "error", "reason")}
        success = bool(outcome.get("success", True))
        error = outcome.get("error") or outcome.get("reason")
        if not success and not error:
            error = "strategy reported failure"
        return success, outcome.get("state"), None if error is None else str(error), details
    if outcome:
        return True, None, None, {}
    return False, None, "strategy returned a false value", {}


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class OptimizationEngine:
    """Registry and runner of optimization strategies; thread-safe.

    Runs are serialised (one strategy at a time) so that before/after measurements of one
    run are not disturbed by another.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.perf_counter,
        register_builtins: bool = True,
        *,
        history_size: int = 100,
        tolerance: float = DEFAULT_TOLERANCE,
    ) -> None:
        if not isinstance(history_size, int) or isinstance(history_size, bool) or history_size < 1:
            raise ConfigError(f"history_size {history_size!r} is not valid; expected an integer >= 1")
        self._clock = clock
        self._tolerance = tolerance
        self._strategies: dict[str, Strategy] = {}
        self._history: deque[OptimizationResult] = deque(maxlen=history_size)
        self._lock = threading.Lock()
        self._run_lock = threading.Lock()
        if register_builtins:
            register_builtin_strategies(self)

    # -- registry -------------------------------------------------------------------------

    def register_optimization_strategy(
        self,
        name: str,
        fn: StrategyFn,
        *,
        schema: Mapping[str, Param] | None = None,
        measure: MeasureFn | None = None,
        rollback: Callable[[Any], Any] | None = None,
        check: Callable[[dict], None] | None = None,
        description: str = "",
    ) -> None:
        """Register ``fn`` under the exact ``name`` ([a-z0-9_.-], at most 64 characters)."""
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            raise ConfigError(
                f"strategy name {name!r} is not valid; expected 1-64 characters from [a-z0-9_.-]"
            )
        for label, value in (("fn", fn), ("measure", measure), ("rollback", rollback), ("check", check)):
            if value is not None and not callable(value):
                raise ConfigError(f"strategy {name!r}: {label} {value!r} is not callable")
        if fn is None:
            raise ConfigError(f"strategy {name!r}: fn is required; expected a callable")
        if schema is not None:
            for key, param in schema.items():
                if not isinstance(param, Param):
                    raise ConfigError(
                        f"strategy {name!r}: schema entry {key!r} is {param!r}; expected a Param"
                    )
        strategy = Strategy(name, fn, None if schema is None else dict(schema), measure,
                            rollback, check, description)
        with self._lock:
            if name in self._strategies:
                raise ConfigError(f"strategy {name!r} is already registered")
            self._strategies[name] = strategy

    def unregister(self, name: str) -> None:
        """Remove a strategy; UnknownStrategyError when it is not registered."""
        with self._lock:
            self._get(name)
            del self._strategies[name]

    def _get(self, name: str) -> Strategy:
        strategy = self._strategies.get(name) if isinstance(name, str) else None
        if strategy is None:
            registered = ", ".join(sorted(self._strategies)) or "none"
            raise UnknownStrategyError(
                f"unknown optimization strategy {name!r}; registered: {registered}"
            )
        return strategy

    def strategy(self, name: str) -> Strategy:
        """The registered Strategy called exactly ``name``."""
        with self._lock:
            return self._get(name)

    def strategies(self) -> list[str]:
        with self._lock:
            return sorted(self._strategies)

    def has_strategy(self, name: str) -> bool:
        with self._lock:
            return isinstance(name, str) and name in self._strategies

    def describe(self, name: str) -> dict[str, Any]:
        """The strategy's name, description, reversibility and schema as JSON-able data."""
        return self.strategy(name).describe()

    def validate(self, name: str, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Validated parameters for ``name`` (UnknownStrategyError / InvalidParameterError)."""
        strategy = self.strategy(name)
        if strategy.schema is None:
            params = validate_free_params(config)
        else:
            params = validate_params(strategy.schema, config)
        if strategy.check is not None:
            strategy.check(params)
        return params

    # -- running --------------------------------------------------------------------------

    def apply_optimization(
        self,
        name: str,
        config: Mapping[str, Any] | None = None,
        *,
        measure: MeasureFn | None = None,
    ) -> OptimizationResult:
        """Validate, measure, run, measure again, judge and roll back when worse.

        ``measure`` overrides the strategy's own measurement for this run. Unknown names
        and invalid parameters raise; anything the strategy (or its measure/rollback)
        raises is caught and reported in the result.
        """
        strategy = self.strategy(name)
        params = self.validate(name, config)
        measure = measure if measure is not None else strategy.measure
        with self._run_lock:
            start = self._clock()
            result = self._run(strategy, params, measure)
            result.duration_ms = (self._clock() - start) * 1000.0
        with self._lock:
            self._history.append(result)
        return result

    def _run(self, strategy: Strategy, params: dict, measure: MeasureFn | None) -> OptimizationResult:
        result = OptimizationResult(strategy=strategy.name, success=False, config=dict(params))
        if measure is not None:
            try:
                result.before = dict(measure())
            except Exception as exc:
                result.error = f"measurement before the run failed: {_error_text(exc)}"
                return result
        try:
            outcome = strategy.fn(dict(params))
        except Exception as exc:
            result.error = _error_text(exc)
            return result
        result.success, state, result.error, result.details = _interpret(outcome)
        if not result.success or measure is None:
            return result
        try:
            result.after = dict(measure())
        except Exception as exc:
            result.error = f"measurement after the run failed: {_error_text(exc)}"
            return result
        result.improvement, result.verdict = compare_measurements(
            result.before, result.after, self._tolerance
        )
        if result.verdict == "worse" and strategy.rollback is not None:
            try:
                strategy.rollback(state)
                result.rolled_back = True
            except Exception as exc:
                result.error = f"rollback failed: {_error_text(exc)}"
        return result

    def history(self) -> list[OptimizationResult]:
        """The most recent results, oldest first (bounded by ``history_size``)."""
        with self._lock:
            return list(self._history)
