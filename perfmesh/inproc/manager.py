"""PerformanceManager: the in-process shell that ties collection, budgets, baselines,
analysis and optimization together, with optional continuous monitoring.

One call of :meth:`PerformanceManager.collect_system_metrics` takes a sample of the system,
checks every budgeted aggregate metric against the budget, compares each aggregate with its
baseline (and then adds it to the baseline), detects bottlenecks and scores the optimization
potential; the resulting :class:`~perfmesh.model.metric.PerformanceProfile` goes into a bounded
history.

**Sample spacing.** CPU percentages and per-second rates come from two readings of the
counters, and over a window of a millisecond or two they are noise (the CPU percentage is then
mostly this very process). So the manager primes its collector when it is constructed (one
CPU, disk and network reading, not recorded), and a fresh sample is never taken less than
``min_sample_interval_s`` (0.1 s) after the previous reading: the call waits out the rest.
The first profile therefore already has ``cpu_percent`` and the I/O rates, and
``analyze_performance()`` right after ``collect_system_metrics()`` measures a real 0.1 s
window. A manager sampled less often than that never waits.

**Continuous monitoring** is one daemon thread that builds a profile at once and then every
``monitoring_interval`` seconds; :meth:`stop_monitoring` wakes it at once and joins it.
``collection_interval`` is the interval of the collector's own background sampling
(``manager.collector.start()``), for a finer metric history than the profiles; while that
thread runs, profiles are built from its latest sample instead of sampling again a few
microseconds later (which would make the rate windows tiny and the CPU percentage noise).

**The application and the mesh.** ``manager.app`` (:class:`~perfmesh.inproc.appmetrics.ApplicationMetrics`)
holds what the embedding program reports about itself: tracked functions
(:meth:`~PerformanceManager.track_function`), named block timings
(:meth:`~PerformanceManager.performance_context`) and request times
(:meth:`~PerformanceManager.record_response_time`). With ``mesh="HOST[:BASE]"`` (and ``name``,
``mesh_keys=(SECRET_FILE, SERVER_PUBLIC_FILE)``, ``mesh_interval``) the manager joins the mesh as
an application agent (the ``perfmesh.mesh_agent`` entry point, or an injected
``mesh_agent_factory``: the library itself opens no socket and never imports ``workers``),
publishes those metrics every ``mesh_interval`` seconds as category ``application``
and runs the aggregator's commands through ``manager.engine``. ``stop_monitoring()``,
``close()``, leaving a ``with`` block and interpreter exit all leave the mesh.

Thread-safe: one lock serialises profiles and guards the budget, the baselines and the
history (PerformanceBudget and BaselineTracker are not thread-safe themselves).
"""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
from collections import deque
from typing import Any, Callable, Iterable, Mapping

from .appmetrics import ApplicationMetrics, TrackedContext
from .meshlink import MeshAgentFactory, installed_mesh_agent_factory, mesh_settings
from .ticker import Ticker
from .optimizing import recommended_strategies, run_strategies, validation_report
from ..rules.analysis import Bottleneck, detect_bottlenecks, optimization_potential, overall_health, recommendations
from ..rules.baseline import BaselineTracker
from ..rules.budget import BudgetViolation
from .budget import PerformanceBudget
from ..collect.collection import MetricsCollector
from ..errors import ConfigError
from ..model.metric import PerformanceMetric, PerformanceProfile, is_finite_number
from ..optimize.engine import OptimizationEngine
from ..optimize.strategies import measure_rss

COMPONENT = "system"
DEFAULT_MIN_SAMPLE_INTERVAL_S = 0.1


def _positive_seconds(label: str, value: Any) -> float:
    if not is_finite_number(value) or value <= 0:
        raise ConfigError(f"{label} {value!r} is invalid; expected a finite number of seconds > 0")
    return float(value)


class _Sample:
    """A profile together with what its analysis found (kept for analyze/optimize)."""

    __slots__ = ("profile", "latest", "violations", "bottlenecks")

    def __init__(self, profile: PerformanceProfile, latest: dict[str, float],
                 violations: list[BudgetViolation], bottlenecks: list[Bottleneck]) -> None:
        self.profile = profile
        self.latest = latest
        self.violations = violations
        self.bottlenecks = bottlenecks


class PerformanceManager:
    """Collect, analyse and optimize the performance of this host, in process.

    ``budget``, ``engine``, ``collector`` and ``baselines`` default to a
    ``PerformanceBudget()`` with the default limits, an ``OptimizationEngine()`` with the
    built-in strategies, a ``MetricsCollector(collection_interval, history_size)`` on the best
    available source and a ``BaselineTracker()``. ``clock`` stamps the samples and profiles.

    ``mesh="HOST[:BASE]"`` joins the mesh as application agent ``name`` (see
    :meth:`join_mesh`); ``mesh_config="perfmesh.toml"`` takes the address, name, keys and
    interval from the file's ``[agent]`` table, with these arguments winning over it.
    """

    def __init__(
        self,
        enable_continuous_monitoring: bool = False,
        monitoring_interval: float = 10.0,
        collection_interval: float = 1.0,
        history_size: int = 1000,
        budget: PerformanceBudget | None = None,
        engine: OptimizationEngine | None = None,
        collector: MetricsCollector | None = None,
        baselines: BaselineTracker | None = None,
        clock: Callable[[], float] = time.time,
        *,
        min_sample_interval_s: float = DEFAULT_MIN_SAMPLE_INTERVAL_S,
        mesh: str | None = None,
        name: str | None = None,
        mesh_keys: tuple[str, str] | None = None,
        mesh_interval: float | None = None,
        mesh_insecure: bool = False,
        mesh_state_dir: str | None = None,
        mesh_config: str | None = None,
        mesh_agent_factory: MeshAgentFactory | None = None,
    ) -> None:
        self.monitoring_interval = _positive_seconds("monitoring_interval", monitoring_interval)
        self.collection_interval = _positive_seconds("collection_interval", collection_interval)
        if not isinstance(history_size, int) or isinstance(history_size, bool) or history_size < 1:
            raise ConfigError(f"history_size {history_size!r} is invalid; expected an int >= 1")
        if not is_finite_number(min_sample_interval_s) or min_sample_interval_s < 0:
            raise ConfigError(f"min_sample_interval_s {min_sample_interval_s!r} is invalid; "
                              "expected a finite number of seconds >= 0")
        self.history_size = history_size
        self.min_sample_interval_s = float(min_sample_interval_s)
        self.budget = budget if budget is not None else PerformanceBudget(clock=clock)
        self.engine = engine if engine is not None else OptimizationEngine()
        self.collector = collector if collector is not None else MetricsCollector(
            interval=self.collection_interval, history_size=history_size, clock=clock)
        self.baselines = baselines if baselines is not None else BaselineTracker()
        self._clock = clock
        self._lock = threading.RLock()
        self._history: deque[PerformanceProfile] = deque(maxlen=history_size)
        self._last: _Sample | None = None
        self._ticker = Ticker(self.collect_system_metrics, lambda: self.monitoring_interval,
                              "perfmesh-monitor")
        self._last_read_at = self._prime()  # time.monotonic() of the last counter reading
        self.app = ApplicationMetrics()
        self.mesh_agent: Any = None         # what the mesh agent factory made, while in the mesh
        self._mesh_agent_factory = mesh_agent_factory
        settings = mesh_settings(mesh, name, mesh_keys, mesh_interval, mesh_config)
        if settings.address is not None:
            self.join_mesh(settings.address, name=settings.name, keys=settings.keys,
                           interval_s=settings.interval_s, insecure=mesh_insecure, state_dir=mesh_state_dir)
        if enable_continuous_monitoring:
            self.start_monitoring()

    # -- collection -----------------------------------------------------------------------

    def _prime(self) -> float:
        """Read the counters once (not recorded) so the first profile has CPU % and rates."""
        now = self._clock()
        self.collector.sample_cpu(now)
        self.collector.sample_disk(now)
        self.collector.sample_network(now)
        return time.monotonic()

    def _sample(self) -> tuple[list[PerformanceMetric], float]:
        """(metrics, sample time): the collector's latest sample while its own thread runs,
        else a fresh one."""
        if self.collector.is_running:
            latest = list(self.collector.latest().values())
            if latest:
                newest = max(m.timestamp for m in latest)
                return [m for m in latest if m.timestamp == newest], newest
        remaining_s = self.min_sample_interval_s - (time.monotonic() - self._last_read_at)
        if remaining_s > 0:
            time.sleep(remaining_s)
        now = self._clock()
        metrics = self.collector.collect(now=now)
        self._last_read_at = time.monotonic()
        return metrics, now

    def collect_system_metrics(self) -> PerformanceProfile:
        """Sample the system, check budgets and baselines, analyse, and record the profile."""
        with self._lock:
            start = self._clock()
            metrics, now = self._sample()
            latest = {m.name: m.value for m in metrics if not m.context}
            violations = []
            for name, value in latest.items():
                violation = self.budget.check_budget_violation(name, value, now)
                if violation is not None:
                    violations.append(violation)
            comparison = self.baselines.compare_all(latest)
            self.baselines.update_all(latest)
            bottlenecks = detect_bottlenecks(latest)
            potential, reasons = optimization_potential(latest, violations, bottlenecks)
            profile = PerformanceProfile(
                component=COMPONENT,
                metrics=_mark_violations(metrics, violations),
                recommendations=recommendations(bottlenecks, violations),
                baseline_comparison=comparison,
                optimization_potential=potential,
                optimization_reasons=reasons,
                start_time=start,
                end_time=self._clock(),
            )
            self._history.append(profile)
            self._last = _Sample(profile, latest, violations, bottlenecks)
            return profile

    def get_performance_history(self, limit: int | None = None) -> list[PerformanceProfile]:
        """The recorded profiles, oldest first (the last ``limit`` of them if given)."""
        with self._lock:
            profiles = list(self._history)
        if limit is None:
            return profiles
        return profiles[-limit:] if limit > 0 else []

    def get_metric_history(self, name: str, **labels: str) -> list[tuple[float, float]]:
        """(timestamp, value) pairs of one series from the collector's history."""
        return self.collector.get_history(name, **labels)

    # -- analysis -------------------------------------------------------------------------

    def analyze_performance(self) -> dict[str, Any]:
        """Take a fresh profile and report on it as plain JSON-able data.

        Keys: ``timestamp``, ``overall_health`` ('good'|'warning'|'critical'), ``bottlenecks``,
        ``budget_violations``, ``recommendations``, ``baseline_comparison``,
        ``optimization_potential`` and ``optimization_reasons``, ``budget_utilization`` (the
        budget's utilization report), ``budget_health`` and ``metrics`` (aggregate name ->
        value).
        """
        with self._lock:
            self.collect_system_metrics()
            return self._report(self._last)

    def _report(self, sample: _Sample) -> dict[str, Any]:
        profile = sample.profile
        return {
            "timestamp": profile.end_time,
            "overall_health": overall_health(sample.violations, sample.bottlenecks),
            "bottlenecks": [b.to_dict() for b in sample.bottlenecks],
            "budget_violations": [v.to_dict() for v in sample.violations],
            "recommendations": list(profile.recommendations),
            "baseline_comparison": dict(profile.baseline_comparison),
            "optimization_potential": profile.optimization_potential,
            "optimization_reasons": list(profile.optimization_reasons),
            "budget_utilization": self.budget.utilization_report(),
            "budget_health": self.budget.budget_health(),
            "metrics": dict(sample.latest),
        }

    # -- optimization ---------------------------------------------------------------------

    def optimize_system(
        self,
        strategies: Iterable[str] | None = None,
        configs: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Run optimization strategies through the engine and validate the outcome.

        Without ``strategies``, runs the strategies that the bottlenecks of a fresh analysis
        recommend, each once; a recommended strategy that is not registered in the engine,
        or whose parameters are invalid (``process_priority`` needs a ``nice`` value: pass
        ``configs={"process_priority": {"nice": 10}}``), is skipped with the reason. Names
        given in ``strategies`` must all be registered (UnknownStrategyError, before anything
        runs). ``configs`` maps a strategy name to its parameters.

        Returns ``optimizations_applied`` and ``failures`` (OptimizationResult dicts),
        ``skipped`` ([{strategy, reason}]) and ``validation``: per strategy its verdict,
        improvement and rollback, plus the health and optimization potential before and
        after (after from a fresh analysis, taken only when something was applied).
        """
        before = self.analyze_performance()
        if strategies is None:
            names = recommended_strategies(before["bottlenecks"])
        else:
            names = list(dict.fromkeys(strategies))
            for name in names:
                self.engine.strategy(name)  # raises UnknownStrategyError naming it
        applied, failures, skipped = run_strategies(self.engine, names, configs or {})
        after = self.analyze_performance() if applied else before
        return {
            "timestamp": self._clock(),
            "optimizations_applied": [r.to_dict() for r in applied],
            "failures": [r.to_dict() for r in failures],
            "skipped": skipped,
            "validation": validation_report(before, after, applied),
        }

    # -- the application's own metrics, and the mesh ---------------------------------------

    def track_function(self, fn: Callable[..., Any] | None = None, *, request: bool = False,
                       label: str | None = None) -> Any:
        """Report a function's timings (and publish them when in the mesh).

        Use as ``manager.track_function(fn)`` or as a decorator, ``@manager.track_function``
        or ``@manager.track_function(request=True)``. A function not yet decorated with
        ``PerformanceUtils.measure_execution_time`` is decorated here: use the returned
        function. ``request=True`` makes its calls request times (``response_time_ms``).
        See :mod:`perfmesh.inproc.appmetrics` for what is reported.
        """
        if fn is None:
            return lambda f: self.app.track_function(f, request=request, label=label)
        return self.app.track_function(fn, request=request, label=label)

    def record_response_time(self, ms: float) -> None:
        """One request took ``ms`` milliseconds (reported in ``response_time_ms``)."""
        self.app.record_response_time(ms)

    def performance_context(self, name: str, *, track_memory: bool = False) -> TrackedContext:
        """A ``with`` block timer (a PerformanceContext) whose uses are reported by name."""
        return self.app.context(name, track_memory=track_memory)

    def application_metrics(self, now: float | None = None) -> list[PerformanceMetric]:
        """The application's metrics now (category ``application``), with this process's RSS.

        Each call closes a request interval; while in the mesh, its agent calls this every
        ``mesh_interval`` seconds, so call it yourself only outside the mesh.
        """
        now = self._clock() if now is None else now
        rss = measure_rss().get("rss_bytes")
        if rss is not None:
            self.app.record_rss(now, rss)
        return self.app.sample(now)

    def join_mesh(self, address: str, *, name: str | None = None,
                  keys: tuple[str, str] | None = None, interval_s: float = 1.0,
                  insecure: bool = False, state_dir: str | None = None) -> None:
        """Join the mesh at ``HOST[:BASE]`` as application agent ``name`` (default
        ``HOSTNAME-app``): publish :meth:`application_metrics` every ``interval_s`` and run
        the commands the aggregator sends through this manager's engine (its registered
        strategies and the built-ins). ``keys``: (secret key file, the aggregator's public
        key file) for CURVE; required for a non-loopback aggregator unless ``insecure``.
        Raises ConfigError at once for a bad address, name or key file.
        """
        if self.mesh_agent is not None:
            raise ConfigError(f"already in the mesh as {self.mesh_agent.name!r}; leave_mesh() first")
        interval_s = _positive_seconds("mesh_interval", interval_s)
        factory = self._mesh_agent_factory or installed_mesh_agent_factory()
        agent = factory(address, name if name is not None else f"{socket.gethostname()}-app",
                         self.engine, lambda now: self.application_metrics(now), keys=keys,
                         insecure=insecure, interval_s=interval_s, state_dir=state_dir)
        self.mesh_agent = agent.start()

    def leave_mesh(self) -> None:
        """Leave the mesh: the agent's thread stops and every socket is closed (idempotent)."""
        agent, self.mesh_agent = self.mesh_agent, None
        if agent is not None:
            agent.stop()

    def close(self) -> None:
        """Stop monitoring and leave the mesh."""
        self.stop_monitoring()

    # -- continuous monitoring ------------------------------------------------------------

    @property
    def is_monitoring(self) -> bool:
        return self._ticker.running

    @property
    def monitoring_errors(self) -> int:
        return self._ticker.errors

    @property
    def last_monitoring_error(self) -> str | None:
        return self._ticker.last_error

    def start_monitoring(self) -> None:
        """Build a profile now and every ``monitoring_interval`` s in a daemon thread
        (no-op when already running). A failing profile is counted (``monitoring_errors``,
        ``last_monitoring_error``) and the loop goes on."""
        self._ticker.start()

    def stop_monitoring(self, timeout: float | None = 5.0) -> None:
        """Stop the monitoring thread and join it; it wakes at once, not at its next tick.
        Also leaves the mesh (the manager's background work all ends here)."""
        self.leave_mesh()
        self._ticker.stop(timeout)

    def __enter__(self) -> "PerformanceManager":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop_monitoring()


def _mark_violations(metrics: list[PerformanceMetric],
                     violations: list[BudgetViolation]) -> list[PerformanceMetric]:
    """The metrics, with copies of the over-budget aggregates carrying the violation's
    severity (the collector's own metric objects are left as they are)."""
    if not violations:
        return list(metrics)
    severity = {v.metric: v.severity for v in violations}
    return [dataclasses.replace(m, severity=severity[m.name])
            if not m.context and m.name in severity else m for m in metrics]

