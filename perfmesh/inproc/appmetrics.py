"""ApplicationMetrics: what an application that embeds perfmesh reports about itself.

A program registers the functions it wants reported (decorated by perfmesh, or decorated on
registration), times named blocks with tracked contexts and may report its request times
explicitly; :meth:`ApplicationMetrics.sample` turns all of it into one list of metrics of
category ``application`` for a given ``now``. The mesh publishes one such list per interval
(``PerformanceManager(mesh=...)``), where the aggregator's budgets apply to the unlabeled
ones (``response_time_ms``, ``memory_growth_mb_per_min``) as to host metrics.

What one sample holds:

- per tracked function (label ``function``, its qualified name): ``function_calls`` (total
  count) and, once called, ``function_avg_ms`` (over every call), ``function_p95_ms``,
  ``function_p99_ms`` and ``function_max_ms`` (percentiles over the most recent calls, as in
  ``PerformanceUtils.get_function_performance_stats``); ``function_avg_peak_kb`` when it is
  also decorated with ``profile_memory_usage``.
- per tracked context name (label ``context``): ``context_calls``, ``context_avg_ms``,
  ``context_p95_ms``, ``context_p99_ms``, ``context_max_ms``, the same way.
- **request timing, per interval** (the calls since the previous sample): the request times
  are the calls of functions tracked with ``request=True`` plus the values given to
  :meth:`record_response_time`. ``request_count`` is how many arrived in the interval,
  ``requests_per_s`` their rate (from the second sample on), and, when there was at least
  one, ``response_time_ms`` is their **95th percentile** and ``response_time_avg_ms`` their
  mean. An interval without requests has no ``response_time_ms`` (there is nothing to
  judge; a stale value would keep a violation firing). The p95 is taken over at most the
  last 1024 requests of an interval.
- **request times as a histogram** (cumulative since start, for Prometheus, aggregatable
  across hosts), once there was a request: ``response_time_seconds_bucket{le}`` (bounds
  ``LATENCY_BUCKETS_S``, Prometheus' defaults, and ``+Inf``), ``response_time_seconds_sum``
  and ``response_time_seconds_count``. Every request is counted in its bucket exactly.
- memory: ``process_rss_mb`` when an RSS reading was recorded, and
  ``memory_growth_mb_per_min``: the least-squares slope of the RSS readings of the last
  ``growth_window_s`` (300 s), reported once they span ``growth_min_span_s`` (30 s), so the
  allocations of a program's start do not count as a leak. MB here is 2**20 bytes.

Thread-safe: the hot paths (decorated calls, ``record_response_time``) append to lock-free
queues; registration and sampling take a lock.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from typing import Any, Callable, TypeVar

from ..errors import ConfigError, InvalidParameterError
from ..model.metric import PerformanceMetric, is_finite_number
from .timing import (
    FOLD_THRESHOLD,
    LATENCY_BOUNDS_NS,
    LATENCY_BUCKETS_S,
    FunctionStats,
    PerformanceContext,
    SampleRecorder,
    _stats_of,
    measure_execution_time,
    percentile,
)

F = TypeVar("F", bound=Callable[..., Any])

CATEGORY = "application"
MAX_LABEL_VALUE_LEN = 128          # perfmesh.protocol.batch.MAX_LABEL_VALUE_LEN
MB = 1024 * 1024
DEFAULT_GROWTH_WINDOW_S = 300.0
DEFAULT_GROWTH_MIN_SPAN_S = 30.0


class TrackedContext(PerformanceContext):
    """A PerformanceContext that also records each block's elapsed time under its name."""

    def __init__(self, name: str, recorder: SampleRecorder, *, track_memory: bool = False) -> None:
        super().__init__(name, track_memory=track_memory)
        self._recorder = recorder

    def __exit__(self, *exc_info: Any) -> None:
        super().__exit__(*exc_info)
        self._recorder.pending.append(round(self.elapsed_ms * 1e6))
        if len(self._recorder.pending) > FOLD_THRESHOLD:
            self._recorder.fold()


def _timing_metrics(prefix: str, label: str, value: str, stats: dict[str, Any],
                    now: float) -> list[PerformanceMetric]:
    labels = {label: value}

    def metric(name: str, v: float, unit: str) -> PerformanceMetric:
        return PerformanceMetric(f"{prefix}_{name}", float(v), unit, now, CATEGORY, context=labels)

    timing = stats["timing_stats"]
    out = [metric("calls", timing["count"], "")]
    if timing["count"]:
        out += [metric("avg_ms", timing["avg_ms"], "ms"), metric("p95_ms", timing["p95_ms"], "ms"),
                metric("p99_ms", timing["p99_ms"], "ms"), metric("max_ms", timing["max_ms"], "ms")]
    memory = stats.get("memory_stats")
    if memory is not None and memory["count"]:
        out.append(metric("avg_peak_kb", memory["avg_peak_kb"], "KiB"))
    return out


def _histogram_metrics(counts: list[int], count: int, total_ns: int, now: float) -> list[PerformanceMetric]:
    """response_time_seconds_{bucket,sum,count}: cumulative buckets, none before a request."""
    if not count:
        return []
    out, running = [], 0
    for le, c in zip((*(f"{b:g}" for b in LATENCY_BUCKETS_S), "+Inf"), counts):
        running += c
        out.append(PerformanceMetric("response_time_seconds_bucket", float(running), "", now, CATEGORY,
                                     context={"le": le}))
    return out + [PerformanceMetric("response_time_seconds_sum", total_ns / 1e9, "s", now, CATEGORY),
                  PerformanceMetric("response_time_seconds_count", float(count), "", now, CATEGORY)]


def growth_per_min(readings: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) readings, per minute; 0 for a single instant."""
    n = len(readings)
    mean_t = math.fsum(t for t, _ in readings) / n
    mean_v = math.fsum(v for _, v in readings) / n
    var = math.fsum((t - mean_t) ** 2 for t, _ in readings)
    if var == 0:
        return 0.0
    cov = math.fsum((t - mean_t) * (v - mean_v) for t, v in readings)
    return cov / var * 60.0


class ApplicationMetrics:
    """The registry and interval state behind an application's metrics (see the module)."""

    def __init__(self, *, growth_window_s: float = DEFAULT_GROWTH_WINDOW_S,
                 growth_min_span_s: float = DEFAULT_GROWTH_MIN_SPAN_S) -> None:
        for label, value in (("growth_window_s", growth_window_s), ("growth_min_span_s", growth_min_span_s)):
            if not is_finite_number(value) or value < 0:
                raise ConfigError(f"{label} {value!r} is invalid; expected a finite number of seconds >= 0")
        if growth_min_span_s > growth_window_s:
            raise ConfigError(f"growth_min_span_s {growth_min_span_s!r} is longer than growth_window_s "
                              f"{growth_window_s!r}; expected at most the window")
        self.growth_window_s = float(growth_window_s)
        self.growth_min_span_s = float(growth_min_span_s)
        self._lock = threading.Lock()
        self._functions: dict[str, Callable[..., Any]] = {}     # label -> decorated function
        self._requests: dict[str, SampleRecorder] = {}          # label -> timing recorder
        self._contexts: dict[str, SampleRecorder] = {}
        self._explicit = SampleRecorder(bounds=LATENCY_BOUNDS_NS)  # record_response_time, in ns
        self._seen: dict[int, tuple[int, int]] = {}             # id(recorder) -> (count, total ns)
        self._rss: deque[tuple[float, float]] = deque()
        self._last_now: float | None = None

    # -- registration ---------------------------------------------------------------------

    def track_function(self, fn: Callable[..., Any], *, request: bool = False,
                       label: str | None = None) -> Callable[..., Any]:
        """Report ``fn``'s timings; returns the function to use (``fn`` itself when it is
        already decorated by perfmesh, else ``fn`` wrapped by ``measure_execution_time``).

        ``request=True``: its calls are request times (``response_time_ms``). ``label``
        defaults to the qualified name (module-qualified when another function has it).
        """
        if not callable(fn):
            raise ConfigError(f"track_function expects a function, got {fn!r:.80}")
        stats = _stats_of(fn)
        if stats is None or stats.timing is None:
            fn = measure_execution_time(fn)
            stats = _stats_of(fn)
        with self._lock:
            if label is None:
                label = stats.qualname
                if self._functions.get(label, fn) is not fn:
                    label = f"{getattr(fn, '__module__', '?')}.{stats.qualname}"
            label = self._check_label("function label", label)
            self._functions[label] = fn
            if request:
                self._requests[label] = stats.timing
                if id(stats.timing) not in self._seen:      # earlier calls are not this interval's
                    n, total, *_ = stats.timing.snapshot()
                    self._seen[id(stats.timing)] = (n, total)
        return fn

    def context(self, name: str, *, track_memory: bool = False) -> TrackedContext:
        """A ``with`` block timer whose every use is reported under ``name``."""
        with self._lock:
            name = self._check_label("context name", name)
            recorder = self._contexts.setdefault(name, SampleRecorder())
        return TrackedContext(name, recorder, track_memory=track_memory)

    def record_response_time(self, ms: float) -> None:
        """One request took ``ms`` milliseconds (counted in the current interval)."""
        if not is_finite_number(ms) or ms < 0:
            raise InvalidParameterError(f"response time {ms!r} is invalid; expected a finite number of ms >= 0")
        pending = self._explicit.pending
        pending.append(round(ms * 1e6))
        if len(pending) > FOLD_THRESHOLD:
            self._explicit.fold()

    def record_rss(self, now: float, rss_bytes: float) -> None:
        """An RSS reading of this process, for ``process_rss_mb`` and the memory growth."""
        with self._lock:
            self._rss.append((float(now), float(rss_bytes)))
            while self._rss and self._rss[0][0] < now - self.growth_window_s:
                self._rss.popleft()

    @staticmethod
    def _check_label(what: str, value: Any) -> str:
        if type(value) is not str or not value:
            raise ConfigError(f"{what} {value!r:.80} is invalid; expected a non-empty string")
        return value[:MAX_LABEL_VALUE_LEN]

    def functions(self) -> list[str]:
        with self._lock:
            return sorted(self._functions)

    def contexts(self) -> list[str]:
        with self._lock:
            return sorted(self._contexts)

    # -- sampling -------------------------------------------------------------------------

    def _interval_requests(self) -> tuple[int, int, list[int]]:
        """(count, total ns, most recent samples) of the request times since the last call."""
        count = total = 0
        samples: list[int] = []
        for recorder in (self._explicit, *self._requests.values()):
            n, tot, _low, _high, recent = recorder.snapshot()
            before_n, before_tot = self._seen.get(id(recorder), (0, 0))
            self._seen[id(recorder)] = (n, tot)
            new = n - before_n
            if new > 0:
                count += new
                total += tot - before_tot
                samples += recent[-new:]
        return count, total, samples

    def _request_histogram(self) -> tuple[list[int], int, int]:
        """(count per bucket, count, total ns) of every request time since start."""
        counts, count, total = [0] * (len(LATENCY_BOUNDS_NS) + 1), 0, 0
        for recorder in (self._explicit, *self._requests.values()):
            buckets, n, tot = recorder.histogram()
            for i, c in enumerate(buckets):
                counts[i] += c
            count, total = count + n, total + tot
        return counts, count, total

    def sample(self, now: float) -> list[PerformanceMetric]:
        """The application's metrics at ``now`` (advances the request interval)."""
        with self._lock:
            functions = dict(self._functions)
            contexts = dict(self._contexts)
            count, total_ns, samples = self._interval_requests()
            hist = self._request_histogram()
            last_now, self._last_now = self._last_now, now
            rss = list(self._rss)
        out: list[PerformanceMetric] = []
        for label, fn in sorted(functions.items()):
            out += _timing_metrics("function", "function", label,
                                   _stats_of(fn).report(), now)
        for name, recorder in sorted(contexts.items()):
            out += _timing_metrics("context", "context", name,
                                   FunctionStats(name, timing=recorder).report(), now)

        def metric(name: str, value: float, unit: str) -> PerformanceMetric:
            return PerformanceMetric(name, float(value), unit, now, CATEGORY)

        out.append(metric("request_count", count, ""))
        if last_now is not None and now > last_now:
            out.append(metric("requests_per_s", count / (now - last_now), "/s"))
        if count:
            samples.sort()
            out.append(metric("response_time_ms", percentile(samples, 95) / 1e6, "ms"))
            out.append(metric("response_time_avg_ms", total_ns / count / 1e6, "ms"))
        out += _histogram_metrics(*hist, now)
        if rss:
            out.append(metric("process_rss_mb", rss[-1][1] / MB, "MB"))
            if rss[-1][0] - rss[0][0] >= self.growth_min_span_s and len(rss) >= 2:
                out.append(metric("memory_growth_mb_per_min", growth_per_min(rss) / MB, "MB/min"))
        return out
