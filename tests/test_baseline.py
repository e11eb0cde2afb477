"""Tests for perfmesh.rules.baseline: rolling mean/stdev per metric and comparison."""

import json
import math
import random
import statistics

import pytest

from perfmesh.rules.baseline import Baseline, BaselineTracker
from perfmesh.errors import ConfigError


def fed(values, name="cpu_percent", **options):
    tracker = BaselineTracker(**options)
    for value in values:
        tracker.update(name, value)
    return tracker


def test_no_baseline_before_min_samples():
    """baseline() is None until min_samples values, then exists."""
    tracker = fed([1.0, 2.0], window=10, min_samples=3)
    assert tracker.baseline("cpu_percent") is None
    tracker.update("cpu_percent", 3.0)
    assert tracker.baseline("cpu_percent") == Baseline(mean=2.0, stdev=1.0, samples=3)


def test_baseline_is_mean_and_sample_stdev():
    """Mean 5 and sample stdev sqrt(32/7) for the classic 2,4,4,4,5,5,7,9."""
    tracker = fed([2, 4, 4, 4, 5, 5, 7, 9], window=10, min_samples=2)
    base = tracker.baseline("cpu_percent")
    assert (base.mean, base.samples) == (5.0, 8)
    assert base.stdev == pytest.approx(math.sqrt(32 / 7), rel=1e-15)


def test_window_keeps_only_the_last_values():
    """With window 3, the baseline of 1..6 is that of 4, 5, 6."""
    tracker = fed([1, 2, 3, 4, 5, 6], window=3, min_samples=2)
    assert tracker.baseline("cpu_percent") == Baseline(mean=5.0, stdev=1.0, samples=3)


def test_sliding_window_matches_statistics_module_over_long_runs():
    """After many slides (and resyncs) mean/stdev equal statistics.mean/stdev of the window."""
    rng = random.Random(7)
    values = [rng.uniform(0, 1e6) for _ in range(5003)]
    tracker = fed(values, window=100, min_samples=2)
    base = tracker.baseline("cpu_percent")
    assert base.mean == pytest.approx(statistics.mean(values[-100:]), rel=1e-12)
    assert base.stdev == pytest.approx(statistics.stdev(values[-100:]), rel=1e-9)


def test_huge_values_leaving_the_window_leave_no_error():
    """After 1e16 values slide out, the stats are those of the small values that remain."""
    tracker = fed([1e16, 1e16, 1.0, 0.2, 0.3, 0.2, 0.7, 0.2], window=5, min_samples=2)
    base = tracker.baseline("cpu_percent")
    assert base.mean == pytest.approx(0.32, rel=1e-15)
    assert base.stdev == pytest.approx(statistics.stdev([0.2, 0.3, 0.2, 0.7, 0.2]), rel=1e-14)


def test_baseline_is_recomputed_after_each_update():
    """The cached stats are dropped when a new value arrives."""
    tracker = fed([1.0, 3.0], window=5, min_samples=2)
    assert tracker.baseline("cpu_percent").mean == 2.0
    assert tracker.baseline("cpu_percent").mean == 2.0
    tracker.update("cpu_percent", 5.0)
    assert tracker.baseline("cpu_percent") == Baseline(mean=3.0, stdev=2.0, samples=3)


def test_constant_values_have_zero_stdev():
    """A constant window has stdev exactly 0 (never negative from rounding)."""
    tracker = fed([0.1] * 50, window=7, min_samples=2)
    assert tracker.baseline("cpu_percent").stdev == 0.0


def test_compare_exact_fields_and_normal_status():
    """1..5 (mean 3, stdev sqrt(2.5)): 4 is normal with z = 1/sqrt(2.5)."""
    tracker = fed([1, 2, 3, 4, 5], window=5, min_samples=5)
    result = tracker.compare("cpu_percent", 4.0)
    assert result == {"value": 4.0, "baseline_mean": 3.0, "baseline_stdev": math.sqrt(2.5),
                      "samples": 5, "deviation": 1.0, "z_score": 1 / math.sqrt(2.5),
                      "status": "normal"}


def test_compare_above_and_below_beyond_z_threshold():
    """Beyond z_threshold standard deviations is above/below; at the threshold is normal."""
    tracker = fed([9.0, 11.0], window=5, min_samples=2, z_threshold=2.0)
    stdev = math.sqrt(2.0)
    assert tracker.compare("cpu_percent", 10.0 + 2 * stdev)["status"] == "normal"
    assert tracker.compare("cpu_percent", 13.0)["status"] == "above"
    assert tracker.compare("cpu_percent", 7.0)["status"] == "below"
    assert tracker.compare("cpu_percent", 13.0)["z_score"] == 3.0 / stdev


def test_compare_against_constant_baseline():
    """stdev 0: equal value is normal with z 0; any other value is above/below with z None."""
    tracker = fed([8.0, 8.0, 8.0], window=5, min_samples=3)
    assert tracker.compare("cpu_percent", 8.0)["status"] == "normal"
    assert tracker.compare("cpu_percent", 8.0)["z_score"] == 0.0
    above = tracker.compare("cpu_percent", 9.0)
    assert (above["status"], above["z_score"], above["deviation"]) == ("above", None, 1.0)
    assert tracker.compare("cpu_percent", 7.0)["status"] == "below"


def test_compare_unknown_without_baseline():
    """Too few samples (or none) gives status unknown with None baseline fields."""
    tracker = fed([1.0], window=5, min_samples=2)
    assert tracker.compare("cpu_percent", 1.0) == {
        "value": 1.0, "baseline_mean": None, "baseline_stdev": None, "samples": 1,
        "deviation": None, "z_score": None, "status": "unknown"}
    assert tracker.compare("load_1m", 1.0)["samples"] == 0


def test_compare_does_not_add_the_value():
    """compare leaves the window unchanged."""
    tracker = fed([1, 2, 3], window=5, min_samples=2)
    tracker.compare("cpu_percent", 100.0)
    assert tracker.baseline("cpu_percent").samples == 3


def test_compare_all_and_update_all():
    """update_all adds one value per name; compare_all compares each name."""
    tracker = BaselineTracker(window=5, min_samples=2)
    tracker.update_all({"a": 1.0, "b": 10.0})
    tracker.update_all({"a": 3.0, "b": 10.0})
    result = tracker.compare_all({"a": 2.0, "b": 11.0, "c": 0.0})
    assert {name: r["status"] for name, r in result.items()} == {
        "a": "normal", "b": "above", "c": "unknown"}
    assert tracker.names() == ["a", "b"]


def test_reset_one_or_all():
    """reset(name) forgets one metric; reset() forgets every metric."""
    tracker = BaselineTracker(window=5, min_samples=2)
    tracker.update_all({"a": 1.0, "b": 2.0})
    tracker.reset("a")
    tracker.reset("missing")
    assert tracker.names() == ["b"]
    tracker.reset()
    assert tracker.names() == []


def test_defaults_are_documented():
    """Defaults: window 300, min_samples 30, z_threshold 3.0."""
    tracker = BaselineTracker()
    assert (tracker.window, tracker.min_samples, tracker.z_threshold) == (300, 30, 3.0)


@pytest.mark.parametrize("options, message", [
    ({"window": 1}, "window 1"),
    ({"window": True}, "window True"),
    ({"window": 10, "min_samples": 1}, "min_samples 1"),
    ({"window": 10, "min_samples": 11}, "min_samples 11"),
    ({"min_samples": 2.0}, "min_samples 2.0"),
    ({"z_threshold": 0}, "z_threshold 0"),
    ({"z_threshold": math.nan}, "z_threshold nan"),
])
def test_bad_options_raise_config_error(options, message):
    """Invalid window/min_samples/z_threshold raise ConfigError naming the value."""
    with pytest.raises(ConfigError, match=message):
        BaselineTracker(**options)


@pytest.mark.parametrize("value", [math.nan, math.inf, "1", True])
def test_non_finite_values_are_refused(value):
    """update and compare refuse values that are not finite numbers."""
    tracker = BaselineTracker(window=5, min_samples=2)
    with pytest.raises(ConfigError, match="expected a finite number"):
        tracker.update("a", value)
    with pytest.raises(ConfigError, match="expected a finite number"):
        tracker.compare("a", value)


def test_baseline_round_trips_through_dict():
    """Baseline.to_dict/from_dict round-trip through JSON."""
    base = Baseline(mean=1.5, stdev=0.25, samples=4)
    assert Baseline.from_dict(json.loads(json.dumps(base.to_dict()))) == base
