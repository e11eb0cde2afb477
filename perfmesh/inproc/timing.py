"""Timing and memory utilities: decorators, benchmarks and a performance context.

Statistics live on the decorated function itself (``wrapper.__perfmesh_stats__``), so no
global registry is needed; ``TimingRegistry`` is an explicit, optional collection of
decorated functions for callers who want a report over many of them.

Hot path of ``measure_execution_time``: two ``perf_counter_ns`` calls and a lock-free
``deque.append`` of the elapsed nanoseconds. Samples are folded into the totals (count,
total, min, max and a bounded reservoir of recent samples for percentiles) lazily, under a
lock, when stats are read or when enough samples are pending. ``deque.append`` and
``popleft`` are atomic, so every call is counted exactly once under any number of threads.

Memory (``profile_memory_usage``) uses tracemalloc: the recorded value is the traced peak
during the call minus the traced memory at its start. tracemalloc is process-wide: it is
started for the duration of profiled calls when it was not already tracing and stopped
after the last one ends; with concurrent profiled calls the peaks overlap (the counts stay
exact).
"""

from __future__ import annotations

import bisect
import functools
import math
import statistics
import threading
import time
import tracemalloc
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Sequence, TypeVar

from ..errors import ConfigError
from ..model.percentile import percentile

F = TypeVar("F", bound=Callable[..., Any])

STATS_ATTR = "__perfmesh_stats__"
RESERVOIR_SIZE = 1024
FOLD_THRESHOLD = 4096
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)   # Prometheus' defaults
LATENCY_BOUNDS_NS = tuple(round(b * 1e9) for b in LATENCY_BUCKETS_S)


class SampleRecorder:
    """Counts and summarises samples (ints) recorded from any number of threads."""

    def __init__(self, reservoir_size: int = RESERVOIR_SIZE, bounds: Sequence[int] = ()) -> None:
        self.bounds = tuple(bounds)                   # histogram upper bounds (le), if any
        self.bucket_counts = [0] * (len(self.bounds) + 1) if self.bounds else []
        self.pending: deque[int] = deque()
        self._lock = threading.Lock()
        self._recent: deque[int] = deque(maxlen=reservoir_size)
        self.count = 0
        self.total = 0
        self.min: int | None = None
        self.max: int | None = None

    def fold(self) -> None:
        """Move pending samples into the totals (safe against concurrent appends)."""
        with self._lock:
            pending = self.pending
            n = len(pending)
            if not n:
                return
            popleft = pending.popleft
            batch = [popleft() for _ in range(n)]
            self.count += n
            self.total += sum(batch)
            low, high = min(batch), max(batch)
            self.min = low if self.min is None else min(self.min, low)
            self.max = high if self.max is None else max(self.max, high)
            self._recent.extend(batch)
            for v in batch if self.bounds else ():     # v <= bounds[i]; past the last: +Inf
                self.bucket_counts[bisect.bisect_left(self.bounds, v)] += 1

    def snapshot(self) -> tuple[int, int, int, int, list[int]]:
        """(count, total, min, max, recent samples) after folding; zeros when empty."""
        self.fold()
        with self._lock:
            return (self.count, self.total, self.min or 0, self.max or 0, list(self._recent))

    def reset(self) -> None:
        with self._lock:
            self.pending.clear()
            self._recent.clear()
            self.count = self.total = 0
            self.min = self.max = None
            self.bucket_counts = [0] * len(self.bucket_counts)

    def histogram(self) -> tuple[list[int], int, int]:
        """(count per bucket, not cumulative, +Inf last; count; total) after folding."""
        self.fold()
        with self._lock:
            return list(self.bucket_counts), self.count, self.total


@dataclass(frozen=True)
class FunctionStats:
    """The recorders attached to a decorated function (None where not decorated)."""

    qualname: str
    timing: SampleRecorder | None = None
    memory: SampleRecorder | None = None

    def report(self) -> dict[str, Any]:
        report: dict[str, Any] = {"function": self.qualname}
        if self.timing is not None:
            count, total, low, high, recent = self.timing.snapshot()
            recent.sort()
            ms = 1e-6
            report["timing_stats"] = {
                "count": count,
                "avg_ms": total / count * ms if count else 0.0,
                "min_ms": low * ms,
                "max_ms": high * ms,
                "p50_ms": percentile(recent, 50) * ms,
                "p95_ms": percentile(recent, 95) * ms,
                "p99_ms": percentile(recent, 99) * ms,
                "total_ms": total * ms,
            }
        if self.memory is not None:
            count, total, _low, high, recent = self.memory.snapshot()
            report["memory_stats"] = {
                "count": count,
                "avg_peak_kb": total / count / 1024 if count else 0.0,
                "max_peak_kb": high / 1024,
                "last_peak_kb": recent[-1] / 1024 if recent else 0.0,
            }
        return report

    def reset(self) -> None:
        for recorder in (self.timing, self.memory):
            if recorder is not None:
                recorder.reset()


def _stats_of(fn: Callable[..., Any]) -> FunctionStats | None:
    stats = getattr(fn, STATS_ATTR, None)
    return stats if isinstance(stats, FunctionStats) else None


def _attach(wrapper: Callable[..., Any], fn: Callable[..., Any], **recorders: SampleRecorder) -> None:
    """Attach stats to ``wrapper``, keeping the recorders of an inner perfmesh decorator."""
    inner = _stats_of(fn)
    base = {"timing": None, "memory": None} if inner is None else {
        "timing": inner.timing, "memory": inner.memory}
    base.update(recorders)
    setattr(wrapper, STATS_ATTR, FunctionStats(getattr(fn, "__qualname__", repr(fn)), **base))


def measure_execution_time(fn: F) -> F:
    """Decorator recording each call's wall time (also of calls that raise)."""
    recorder = SampleRecorder(bounds=LATENCY_BOUNDS_NS)
    pending = recorder.pending
    append = pending.append
    fold = recorder.fold
    clock = time.perf_counter_ns

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = clock()
        try:
            return fn(*args, **kwargs)
        finally:
            append(clock() - start)
            if len(pending) > FOLD_THRESHOLD:
                fold()

    _attach(wrapper, fn, timing=recorder)
    return wrapper  # type: ignore[return-value]


class _TracemallocUse:
    """Reference-counted use of the process-wide tracemalloc by perfmesh callers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._started = False

    def enter(self) -> int:
        """Start tracing if needed; return the traced memory now (bytes)."""
        with self._lock:
            if self._users == 0 and not tracemalloc.is_tracing():
                tracemalloc.start()
                self._started = True
            self._users += 1
        current, _peak = tracemalloc.get_traced_memory()
        return current

    def exit(self) -> tuple[int, int]:
        """(current, peak) traced memory; stop tracing if perfmesh started it."""
        current, peak = tracemalloc.get_traced_memory()
        with self._lock:
            self._users -= 1
            if self._users == 0 and self._started:
                tracemalloc.stop()
                self._started = False
        return current, peak


#: tracemalloc is process-wide state; this object mirrors who in perfmesh is using it.
TRACEMALLOC = _TracemallocUse()


def profile_memory_usage(fn: F) -> F:
    """Decorator recording each call's tracemalloc peak above its starting traced memory."""
    recorder = SampleRecorder()
    pending = recorder.pending

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = TRACEMALLOC.enter()
        tracemalloc.reset_peak()
        try:
            return fn(*args, **kwargs)
        finally:
            _current, peak = TRACEMALLOC.exit()
            pending.append(max(0, peak - start))
            if len(pending) > FOLD_THRESHOLD:
                recorder.fold()

    _attach(wrapper, fn, memory=recorder)
    return wrapper  # type: ignore[return-value]


def get_function_performance_stats(fn: Callable[..., Any]) -> dict[str, Any]:
    """Stats of a decorated function; only ``{"function"}`` when it was not decorated."""
    stats = _stats_of(fn)
    if stats is None:
        return {"function": getattr(fn, "__qualname__", repr(fn))}
    return stats.report()


def reset_stats(fn: Callable[..., Any]) -> None:
    """Forget every sample recorded for ``fn`` (no-op for an undecorated function)."""
    stats = _stats_of(fn)
    if stats is not None:
        stats.reset()


def timing_summary(samples_ms: Sequence[float]) -> dict[str, float]:
    """avg, min, max, median, stdev (sample) and p95 of timings in ms."""
    ordered = sorted(samples_ms)
    return {
        "avg_ms": statistics.fmean(ordered),
        "min_ms": ordered[0],
        "max_ms": ordered[-1],
        "median_ms": percentile(ordered, 50),
        "stdev_ms": statistics.stdev(ordered) if len(ordered) > 1 else 0.0,
        "p95_ms": percentile(ordered, 95),
    }


def iqr_outliers(samples: Sequence[float]) -> dict[str, Any]:
    """Samples outside [Q1 - 1.5 IQR, Q3 + 1.5 IQR] (Tukey's fences)."""
    ordered = sorted(samples)
    q1, q3 = percentile(ordered, 25), percentile(ordered, 75)
    low, high = q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1)
    indices = [i for i, value in enumerate(samples) if value < low or value > high]
    return {
        "count": len(indices),
        "indices": indices,
        "values": [samples[i] for i in indices],
        "low_ms": low,
        "high_ms": high,
        "rule": "1.5 IQR",
    }


def benchmark_function(fn: Callable[..., Any], *args: Any, iterations: int = 100, warmup: int = 5,
                       **kwargs: Any) -> dict[str, Any]:
    """Call ``fn(*args, **kwargs)`` ``warmup`` times untimed, then ``iterations`` times timed."""
    for label, value, least in (("iterations", iterations, 1), ("warmup", warmup, 0)):
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise ConfigError(f"{label} {value!r} is not valid; expected an integer >= {least}")
    for _ in range(warmup):
        fn(*args, **kwargs)
    clock = time.perf_counter_ns
    samples_ms: list[float] = []
    result = None
    for _ in range(iterations):
        start = clock()
        result = fn(*args, **kwargs)
        samples_ms.append((clock() - start) / 1e6)
    return {"function": getattr(fn, "__qualname__", repr(fn)), "iterations": iterations,
            "timing": {**timing_summary(samples_ms), "total_ms": math.fsum(samples_ms)},
            "outliers": iqr_outliers(samples_ms), "result": result}


class PerformanceContext:
    """``with ctx:`` measures the block: ``elapsed_ms`` and ``memory_delta_kb``; reusable.

    ``memory_delta_kb`` is the change of tracemalloc's traced memory over the block
    (tracing is started for the block if it was off); None with ``track_memory=False``.
    """

    def __init__(
        self,
        name: str,
        *,
        track_memory: bool = True,
        clock: Callable[[], int] = time.perf_counter_ns,
    ) -> None:
        self.name = name
        self.track_memory = track_memory
        self._clock = clock
        self._start_ns = 0
        self._start_bytes = 0
        self.elapsed_ms: float | None = None
        self.memory_delta_kb: float | None = None
        self.peak_kb: float | None = None

    def __enter__(self) -> "PerformanceContext":
        if self.track_memory:
            self._start_bytes = TRACEMALLOC.enter()
            tracemalloc.reset_peak()
        self._start_ns = self._clock()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.elapsed_ms = (self._clock() - self._start_ns) / 1e6
        if self.track_memory:
            current, peak = TRACEMALLOC.exit()
            self.memory_delta_kb = (current - self._start_bytes) / 1024
            self.peak_kb = max(0, peak - self._start_bytes) / 1024

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "elapsed_ms": self.elapsed_ms,
                "memory_delta_kb": self.memory_delta_kb, "peak_kb": self.peak_kb}


class TimingRegistry:
    """An explicit, thread-safe collection of decorated functions, for reports over many."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._functions: dict[str, Callable[..., Any]] = {}

    def register(self, fn: F) -> F:
        """Add a function decorated by perfmesh; ConfigError if it is not."""
        stats = _stats_of(fn)
        if stats is None:
            raise ConfigError(
                f"function {fn!r} has no perfmesh stats; expected it decorated with "
                "measure_execution_time or profile_memory_usage"
            )
        with self._lock:
            self._functions[stats.qualname] = fn
        return fn

    def measure_execution_time(self, fn: F) -> F:
        return self.register(measure_execution_time(fn))

    def profile_memory_usage(self, fn: F) -> F:
        return self.register(profile_memory_usage(fn))

    def functions(self) -> list[str]:
        with self._lock:
            return sorted(self._functions)

    def report(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            functions = dict(self._functions)
        return {name: get_function_performance_stats(fn) for name, fn in sorted(functions.items())}

    def reset(self) -> None:
        with self._lock:
            functions = list(self._functions.values())
        for fn in functions:
            reset_stats(fn)


class PerformanceUtils:
    """The timing utilities as static methods (stats live on the decorated functions)."""

    measure_execution_time = staticmethod(measure_execution_time)
    profile_memory_usage = staticmethod(profile_memory_usage)
    get_function_performance_stats = staticmethod(get_function_performance_stats)
    reset_stats = staticmethod(reset_stats)
    benchmark_function = staticmethod(benchmark_function)

    @staticmethod
    def create_performance_context_manager(name: str, *, track_memory: bool = True) -> PerformanceContext:
        return PerformanceContext(name, track_memory=track_memory)

