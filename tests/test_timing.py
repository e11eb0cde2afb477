"""Tests for perfmesh.inproc.timing: decorators, stats, benchmarks and the performance context."""

import inspect
import threading
import time
import tracemalloc

import pytest

from perfmesh.inproc import timing
from perfmesh.errors import ConfigError
from perfmesh.inproc.timing import (
    PerformanceContext,
    PerformanceUtils,
    SampleRecorder,
    TimingRegistry,
    benchmark_function,
    iqr_outliers,
    percentile,
    timing_summary,
)

measure = PerformanceUtils.measure_execution_time
profile = PerformanceUtils.profile_memory_usage
stats_of = PerformanceUtils.get_function_performance_stats


class FakeNs:
    """A perf_counter_ns replacement returning the given readings in turn."""

    def __init__(self, *readings):
        self.readings = list(readings)

    def __call__(self):
        return self.readings.pop(0)


def sample(a: int, b: str = "x", *rest: float, key: bool = False) -> str:
    """Docstring kept."""
    return f"{a}{b}{len(rest)}{key}"


def test_issue_example_runs_as_written():
    """The README example: stacked decorators, stats avg_ms, benchmark, context."""
    @PerformanceUtils.measure_execution_time
    @PerformanceUtils.profile_memory_usage
    def expensive_function():
        return sum(range(100000))

    expensive_function()
    stats = PerformanceUtils.get_function_performance_stats(expensive_function)
    assert f"{stats['timing_stats']['avg_ms']:.2f}"
    assert stats["memory_stats"]["count"] == 1

    def my_function(n):
        return sum(range(n))

    results = PerformanceUtils.benchmark_function(my_function, iterations=1000, n=10000)
    assert results["timing"]["min_ms"] <= results["timing"]["avg_ms"] <= results["timing"]["max_ms"]
    context = PerformanceUtils.create_performance_context_manager("data_processing")
    with context:
        sum(range(10**4))
    assert context.elapsed_ms > 0


@pytest.mark.parametrize("order", ["measure_outer", "profile_outer"])
def test_stacked_decorators_keep_name_signature_and_both_stats(order):
    """Either stacking order keeps __name__, __doc__, inspect.signature, and both stats."""
    fn = measure(profile(sample)) if order == "measure_outer" else profile(measure(sample))
    assert fn.__name__ == "sample" and fn.__qualname__ == "sample"
    assert fn.__doc__ == "Docstring kept."
    assert inspect.signature(fn) == inspect.signature(sample)
    assert fn(1, "y", 2.0, key=True) == "1y1True"
    stats = stats_of(fn)
    assert stats["function"] == "sample"
    assert stats["timing_stats"]["count"] == 1
    assert stats["memory_stats"]["count"] == 1


def test_single_decorator_reports_only_its_section():
    """Keys are present only for the decorators applied."""
    assert set(stats_of(measure(sample))) == {"function", "timing_stats"}
    assert set(stats_of(profile(sample))) == {"function", "memory_stats"}
    assert stats_of(sample) == {"function": "sample"}


def test_decorating_does_not_change_the_inner_wrappers_stats():
    """Stacking builds new stats for the outer wrapper; the inner keeps its own."""
    inner = profile(sample)
    outer = measure(inner)
    assert "timing_stats" not in stats_of(inner)
    assert "timing_stats" in stats_of(outer)


def test_timing_stats_exact_with_fake_clock(monkeypatch):
    """count/avg/min/max/percentiles/total from known nanosecond readings."""
    readings = []
    for elapsed_ms in (1, 2, 3, 4, 10):
        readings += [0, elapsed_ms * 1_000_000]
    monkeypatch.setattr(time, "perf_counter_ns", FakeNs(*readings))
    fn = measure(lambda: None)
    for _ in range(5):
        fn()
    assert stats_of(fn)["timing_stats"] == {
        "count": 5, "avg_ms": 4.0, "min_ms": 1.0, "max_ms": 10.0,
        "p50_ms": 3.0, "p95_ms": pytest.approx(8.8), "p99_ms": pytest.approx(9.76),
        "total_ms": 20.0,
    }


def test_never_called_stats_are_zero():
    """A decorated function never called reports count 0 and zeros."""
    stats = stats_of(profile(measure(sample)))
    assert stats["timing_stats"] == {"count": 0, "avg_ms": 0.0, "min_ms": 0.0, "max_ms": 0.0,
                                     "p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0, "total_ms": 0.0}
    assert stats["memory_stats"] == {"count": 0, "avg_peak_kb": 0.0, "max_peak_kb": 0.0,
                                     "last_peak_kb": 0.0}


def test_calls_that_raise_are_timed_and_the_error_propagates():
    """An exception passes through both decorators and the call is still counted."""
    @measure
    @profile
    def boom():
        raise KeyError("k")

    with pytest.raises(KeyError):
        boom()
    stats = stats_of(boom)
    assert stats["timing_stats"]["count"] == 1 and stats["memory_stats"]["count"] == 1


def test_many_threads_count_exactly_in_both_orders():
    """32 threads x 500 calls through stacked decorators: exactly 16000 counted each."""
    functions = [measure(profile(sample)), profile(measure(sample))]
    barrier = threading.Barrier(32)

    def work():
        barrier.wait()
        for _ in range(500):
            for fn in functions:
                fn(1)

    threads = [threading.Thread(target=work) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for fn in functions:
        stats = stats_of(fn)
        assert stats["timing_stats"]["count"] == 16000
        assert stats["memory_stats"]["count"] == 16000
    assert not tracemalloc.is_tracing()


def test_hot_path_folds_pending_samples_beyond_threshold():
    """Pending samples are folded once more than FOLD_THRESHOLD accumulate."""
    fn = measure(lambda: None)
    mem = profile(lambda: None)
    for _ in range(timing.FOLD_THRESHOLD + 1):
        fn()
        mem()
    stats = fn.__perfmesh_stats__
    assert stats.timing.count == timing.FOLD_THRESHOLD + 1 and len(stats.timing.pending) == 0
    assert mem.__perfmesh_stats__.memory.count == timing.FOLD_THRESHOLD + 1
    assert stats_of(fn)["timing_stats"]["count"] == timing.FOLD_THRESHOLD + 1


def test_percentiles_use_a_bounded_reservoir():
    """The recorder keeps at most reservoir_size recent samples for percentiles."""
    recorder = SampleRecorder(reservoir_size=3)
    for value in (100, 1, 2, 3):
        recorder.pending.append(value)
    assert recorder.snapshot() == (4, 106, 1, 100, [1, 2, 3])
    recorder.reset()
    assert recorder.snapshot() == (0, 0, 0, 0, [])


def test_reset_stats_forgets_samples():
    """reset_stats clears both sections; on an undecorated function it is a no-op."""
    fn = measure(profile(sample))
    fn(1)
    PerformanceUtils.reset_stats(fn)
    stats = stats_of(fn)
    assert stats["timing_stats"]["count"] == 0 and stats["memory_stats"]["count"] == 0
    PerformanceUtils.reset_stats(sample)


def test_profile_memory_records_peak_and_restores_tracemalloc_state():
    """The recorded peak covers a 1 MiB allocation; tracing is off again afterwards."""
    @profile
    def allocate():
        data = bytearray(1024 * 1024)
        return len(data)

    assert not tracemalloc.is_tracing()
    assert allocate() == 1024 * 1024
    assert not tracemalloc.is_tracing()
    stats = stats_of(allocate)["memory_stats"]
    assert 1024 <= stats["max_peak_kb"] < 1100
    assert stats["last_peak_kb"] == stats["max_peak_kb"] == stats["avg_peak_kb"]


def test_profile_memory_leaves_user_tracing_on():
    """When the caller already traces, tracing stays on after a profiled call."""
    tracemalloc.start()
    try:
        profile(sample)(1)
        assert tracemalloc.is_tracing()
    finally:
        tracemalloc.stop()


def test_percentile_linear_interpolation():
    """percentile interpolates linearly between ranks; empty gives 0."""
    assert percentile([], 50) == 0.0
    assert percentile([5.0], 99) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0], 100) == 4.0
    assert percentile([0.0, 10.0], 25) == 2.5


def test_timing_summary_exact():
    """avg/min/max/median/sample stdev/p95 of known samples."""
    assert timing_summary([4.0, 2.0, 6.0]) == {
        "avg_ms": 4.0, "min_ms": 2.0, "max_ms": 6.0, "median_ms": 4.0, "stdev_ms": 2.0,
        "p95_ms": pytest.approx(5.8)}
    assert timing_summary([3.0])["stdev_ms"] == 0.0


def test_iqr_outliers_tukey_fences():
    """Values beyond 1.5 IQR from the quartiles are flagged with their indices."""
    samples = [1.0, 2.0, 3.0, 4.0, 100.0, 2.5]
    got = iqr_outliers(samples)
    assert got["indices"] == [4] and got["values"] == [100.0] and got["count"] == 1
    assert got["rule"] == "1.5 IQR"
    # sorted 1, 2, 2.5, 3, 4, 100: Q1 = 2.125, Q3 = 3.75, IQR = 1.625
    assert (got["low_ms"], got["high_ms"]) == (-0.3125, 6.1875)
    assert iqr_outliers([1.0, 1.0, 1.0])["count"] == 0


def test_benchmark_function_exact_with_fake_clock(monkeypatch):
    """benchmark_function: warmup untimed, per-iteration timings, outliers, last result."""
    calls = []

    def fn(a, *, b):
        calls.append((a, b))
        return len(calls)

    readings = []
    for ms in (1, 1, 1, 1, 9):
        readings += [0, ms * 1_000_000]
    monkeypatch.setattr(time, "perf_counter_ns", FakeNs(*readings))
    report = benchmark_function(fn, 7, iterations=5, warmup=2, b="k")
    assert calls == [(7, "k")] * 7
    assert report["function"] == "test_benchmark_function_exact_with_fake_clock.<locals>.fn"
    assert report["iterations"] == 5 and report["result"] == 7
    assert report["timing"] == {"avg_ms": 2.6, "min_ms": 1.0, "max_ms": 9.0, "median_ms": 1.0,
                                "stdev_ms": pytest.approx(3.5777, abs=1e-4),
                                "p95_ms": pytest.approx(7.4), "total_ms": 13.0}
    assert report["outliers"]["indices"] == [4]


@pytest.mark.parametrize("kwargs", [{"iterations": 0}, {"iterations": True}, {"warmup": -1},
                                    {"iterations": 2.5}])
def test_benchmark_function_refuses_bad_counts(kwargs):
    """iterations >= 1 and warmup >= 0, integers only."""
    with pytest.raises(ConfigError, match="expected an integer"):
        benchmark_function(sample, 1, **kwargs)


def test_performance_context_exact_elapsed_and_reusable():
    """elapsed_ms comes from the clock; the context measures again on each use."""
    ctx = PerformanceContext("block", track_memory=False, clock=FakeNs(0, 2_500_000, 10, 1_010))
    assert ctx.elapsed_ms is None
    with ctx as entered:
        assert entered is ctx
    assert ctx.elapsed_ms == 2.5 and ctx.memory_delta_kb is None
    with ctx:
        pass
    assert ctx.elapsed_ms == 0.001
    assert ctx.to_dict() == {"name": "block", "elapsed_ms": 0.001, "memory_delta_kb": None,
                             "peak_kb": None}


def test_performance_context_memory_delta_and_exceptions():
    """memory_delta_kb sees memory kept after the block; errors propagate but are measured."""
    kept = []
    ctx = PerformanceUtils.create_performance_context_manager("mem")
    with ctx:
        kept.append(bytearray(512 * 1024))
    assert 512 <= ctx.memory_delta_kb < 600 and ctx.peak_kb >= 512
    assert ctx.name == "mem" and not tracemalloc.is_tracing()
    with pytest.raises(ValueError):
        with ctx:
            raise ValueError("x")
    assert ctx.elapsed_ms is not None and abs(ctx.memory_delta_kb) < 64


def test_timing_registry_collects_reports_and_resets():
    """TimingRegistry decorates and registers; reports by qualname; refuses plain functions."""
    registry = TimingRegistry()

    @registry.measure_execution_time
    def first():
        return 1

    @registry.profile_memory_usage
    def second():
        return 2

    first(), second(), first()
    assert registry.functions() == [first.__qualname__, second.__qualname__]
    report = registry.report()
    assert report[first.__qualname__]["timing_stats"]["count"] == 2
    assert report[second.__qualname__]["memory_stats"]["count"] == 1
    registry.reset()
    assert registry.report()[first.__qualname__]["timing_stats"]["count"] == 0
    with pytest.raises(ConfigError, match="no perfmesh stats"):
        registry.register(sample)
