"""ApplicationMetrics: what an embedding application reports, per sample, with exact values."""

from __future__ import annotations

import threading

import pytest

from perfmesh import ConfigError, InvalidParameterError, PerformanceUtils
from perfmesh.inproc.appmetrics import MB, ApplicationMetrics, growth_per_min


def by_key(metrics):
    return {m.key: m for m in metrics}


def values(metrics):
    return {m.key: m.value for m in metrics}


def test_every_metric_is_of_category_application_and_stamped_now():
    """One sample: category application, the given timestamp, only request_count when idle."""
    app = ApplicationMetrics()
    got = app.sample(100.0)
    assert [(m.name, m.value, m.timestamp, m.category) for m in got] == [
        ("request_count", 0.0, 100.0, "application")]


def test_tracking_an_undecorated_function_decorates_it_and_reports_its_timings():
    """track_function wraps a plain function with measure_execution_time; stats per label."""
    app = ApplicationMetrics()

    def work(n):
        return n * 2

    tracked = app.track_function(work)
    assert tracked is not work and tracked(4) == 8 and tracked.__name__ == "work"
    got = by_key(app.sample(1.0))
    key = "function_calls{function=test_tracking_an_undecorated_function_decorates_it_and_reports_its_timings.<locals>.work}"
    assert got[key].value == 1.0 and got[key].context["function"].endswith("work")
    label = got[key].context["function"]
    stats = PerformanceUtils.get_function_performance_stats(tracked)["timing_stats"]
    for name, stat in (("avg_ms", "avg_ms"), ("p95_ms", "p95_ms"), ("p99_ms", "p99_ms"), ("max_ms", "max_ms")):
        m = got[f"function_{name}{{function={label}}}"]
        assert m.value == pytest.approx(stats[stat]) and m.unit == "ms"
    assert app.functions() == [label]


def test_an_already_decorated_function_is_kept_and_its_memory_peak_reported():
    """A perfmesh-decorated function is returned as is; profile_memory_usage adds avg_peak_kb."""
    app = ApplicationMetrics()

    @PerformanceUtils.measure_execution_time
    @PerformanceUtils.profile_memory_usage
    def build():
        return [0] * 10000

    assert app.track_function(build, label="build") is build
    assert values(app.sample(1.0)) == {"function_calls{function=build}": 0.0, "request_count": 0.0}
    build()
    got = values(app.sample(2.0))
    assert got["function_calls{function=build}"] == 1.0
    assert got["function_avg_peak_kb{function=build}"] > 10000 * 8 / 1024 * 0.9


def test_a_memory_only_decorated_function_gets_timing_too():
    """profile_memory_usage alone has no timing: tracking adds measure_execution_time."""
    app = ApplicationMetrics()
    fn = PerformanceUtils.profile_memory_usage(lambda: None)
    tracked = app.track_function(fn, label="f")
    assert tracked is not fn
    tracked()
    assert values(app.sample(1.0))["function_calls{function=f}"] == 1.0


def test_two_functions_with_one_qualname_get_distinct_labels():
    """The second is labelled module.qualname; the same function again keeps its label."""
    app = ApplicationMetrics()

    def make():
        def handler():
            return 1
        return handler

    a, b = make(), make()
    a = app.track_function(a)
    app.track_function(a)
    b = app.track_function(b)
    labels = app.functions()
    assert len(labels) == 2 and labels[1] == f"{__name__}.{labels[0]}"


def test_labels_are_truncated_to_the_wire_limit_and_bad_ones_refused():
    """Labels longer than 128 characters are cut; empty or non-string labels are errors."""
    app = ApplicationMetrics()
    app.track_function(lambda: None, label="x" * 300)
    assert app.functions() == ["x" * 128]
    with pytest.raises(ConfigError, match="function label"):
        app.track_function(lambda: None, label="")
    with pytest.raises(ConfigError, match="context name"):
        app.context(3)
    with pytest.raises(ConfigError, match="expects a function"):
        app.track_function(42)


def test_request_times_are_per_interval_p95_and_average():
    """response_time_ms is the p95 of the interval's requests; avg, count and rate beside it."""
    app = ApplicationMetrics()
    app.sample(10.0)
    for ms in range(1, 21):                # 1..20 ms
        app.record_response_time(ms)
    got = values(app.sample(12.0))
    assert got["request_count"] == 20.0
    assert got["requests_per_s"] == 10.0
    assert got["response_time_ms"] == pytest.approx(19.05)      # p95 of 1..20, interpolated
    assert got["response_time_avg_ms"] == pytest.approx(10.5)
    idle = {k: v for k, v in values(app.sample(13.0)).items() if not k.startswith("response_time_seconds")}
    assert idle == {"request_count": 0.0, "requests_per_s": 0.0}


def test_request_times_make_a_cumulative_histogram_in_seconds():
    """Every request lands in its le bucket (Prometheus' default bounds), cumulative since
    start, with _sum and _count; nothing before the first request."""
    app = ApplicationMetrics()
    assert not any(k.startswith("response_time_seconds") for k in values(app.sample(1.0)))
    handler = app.track_function(lambda: None, request=True, label="h")
    for ms in (1, 5, 7, 30, 20_000):
        app.record_response_time(ms)
    got = values(app.sample(2.0))
    handler()
    got2 = values(app.sample(3.0))
    bucket = "response_time_seconds_bucket{{le={}}}".format
    assert [got[bucket(le)] for le in ("0.005", "0.01", "0.025", "0.05", "10", "+Inf")] == [2.0, 3.0, 3.0, 4.0, 4.0, 5.0]
    assert got["response_time_seconds_count"] == 5.0
    assert got["response_time_seconds_sum"] == pytest.approx(20.043)
    assert got2["response_time_seconds_count"] == 6.0 and got2[bucket("0.005")] == 3.0   # a fast call


def test_calls_of_request_functions_count_as_requests_from_registration_on():
    """Calls before registration are not the first interval's; calls after are."""
    app = ApplicationMetrics()
    handler = PerformanceUtils.measure_execution_time(lambda: None)
    handler()
    handler()
    app.track_function(handler, request=True, label="h")
    assert values(app.sample(1.0))["request_count"] == 0.0
    handler()
    app.record_response_time(1000.0)
    got = values(app.sample(2.0))
    assert got["request_count"] == 2.0
    assert got["function_calls{function=h}"] == 3.0
    assert 0 < got["response_time_avg_ms"] < 1000.0 and got["response_time_ms"] <= 1000.0


def test_a_reset_request_function_gives_no_negative_count():
    """reset_stats between samples: that function adds nothing to the interval."""
    app = ApplicationMetrics()
    handler = app.track_function(lambda: None, request=True, label="h")
    handler()
    app.sample(1.0)
    PerformanceUtils.reset_stats(handler)
    assert values(app.sample(2.0))["request_count"] == 0.0


def test_bad_response_times_are_refused():
    """Negative, NaN and non-numbers raise InvalidParameterError naming the value."""
    app = ApplicationMetrics()
    for bad in (-1, float("nan"), "5", None):
        with pytest.raises(InvalidParameterError, match="response time"):
            app.record_response_time(bad)


def test_many_threads_recording_response_times_are_all_counted():
    """8 threads x 5000 records (past the fold threshold): every one is counted."""
    app = ApplicationMetrics()

    def hammer():
        for _ in range(5000):
            app.record_response_time(2.0)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = values(app.sample(1.0))
    assert got["request_count"] == 40000.0 and got["response_time_ms"] == 2.0


def test_tracked_contexts_are_reported_by_name():
    """Every use of a named context counts; elapsed_ms is still on the context."""
    ticks = iter([0, 2_000_000, 10_000_000, 14_000_000])
    app = ApplicationMetrics()
    for _ in range(2):
        ctx = app.context("load")
        ctx._clock = lambda: next(ticks)
        with ctx:
            pass
    assert ctx.elapsed_ms == 4.0 and ctx.memory_delta_kb is None
    got = values(app.sample(1.0))
    assert got["context_calls{context=load}"] == 2.0
    assert got["context_avg_ms{context=load}"] == 3.0
    assert got["context_max_ms{context=load}"] == 4.0
    assert app.contexts() == ["load"]


def test_many_context_uses_fold_past_the_threshold():
    """More uses than the pending threshold are all counted."""
    app = ApplicationMetrics()
    for _ in range(5000):
        with app.context("tiny"):
            pass
    assert values(app.sample(1.0))["context_calls{context=tiny}"] == 5000.0


def test_memory_growth_is_the_rss_slope_once_the_readings_span_the_minimum():
    """Readings 10 MB/min apart: nothing before 30 s of span, then exactly 10 MB/min."""
    app = ApplicationMetrics(growth_window_s=300, growth_min_span_s=30)
    for i in range(3):                       # 0, 10, 20 s
        app.record_rss(1000.0 + 10 * i, 100 * MB + i * (10 * MB / 6))
        got = values(app.sample(1000.0 + 10 * i))
        assert "memory_growth_mb_per_min" not in got
    app.record_rss(1030.0, 105 * MB)
    got = values(app.sample(1030.0))
    assert got["process_rss_mb"] == 105.0
    assert got["memory_growth_mb_per_min"] == pytest.approx(10.0)


def test_old_rss_readings_leave_the_window():
    """Only the last growth_window_s of readings count: a later flat stretch reads 0 growth."""
    app = ApplicationMetrics(growth_window_s=60, growth_min_span_s=30)
    app.record_rss(0.0, 0.0)
    app.record_rss(30.0, 600 * MB)
    assert values(app.sample(30.0))["memory_growth_mb_per_min"] == pytest.approx(1200.0)
    for t in (100.0, 120.0, 140.0):
        app.record_rss(t, 600 * MB)
    assert values(app.sample(140.0))["memory_growth_mb_per_min"] == 0.0


def test_growth_per_min_is_zero_for_readings_at_one_instant():
    """A degenerate regression (no time spread) is zero growth, not a division error."""
    assert growth_per_min([(5.0, 1.0), (5.0, 9.0)]) == 0.0
    assert growth_per_min([(0.0, 0.0), (60.0, 3.0), (120.0, 6.0)]) == pytest.approx(3.0)


@pytest.mark.parametrize("kwargs, fragment", [
    ({"growth_window_s": -1}, "growth_window_s"),
    ({"growth_min_span_s": float("inf")}, "growth_min_span_s"),
    ({"growth_window_s": 10, "growth_min_span_s": 20}, "longer than growth_window_s"),
])
def test_bad_growth_settings_are_refused(kwargs, fragment):
    """Negative, infinite or inconsistent windows raise ConfigError naming the setting."""
    with pytest.raises(ConfigError, match=fragment):
        ApplicationMetrics(**kwargs)
