"""Tests for perfmesh.rules.budget: limits, violations, alerts, reports and config."""

import json
import math

import pytest

from perfmesh.rules.budget import (
    CRITICAL_FACTOR,
    DEFAULT_BUDGETS,
    AlertEvent,
    BudgetViolation,
    PerformanceBudget,
)
from perfmesh.errors import ConfigError


class FakeClock:
    def __init__(self, now=1000.0):
        self.now = now
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return self.now


def no_clock():
    raise AssertionError("the clock must not be read")


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def budget(clock):
    return PerformanceBudget({"cpu_percent": 80.0}, clock=clock)


# -- limits -------------------------------------------------------------------------------


def test_default_limits_are_the_documented_budgets():
    """PerformanceBudget() starts with exactly DEFAULT_BUDGETS."""
    assert PerformanceBudget().limits == DEFAULT_BUDGETS
    assert DEFAULT_BUDGETS == {"cpu_percent": 80.0, "memory_percent": 85.0,
                               "swap_percent": 50.0, "load_1m": 2.0,
                               "response_time_ms": 1000.0, "memory_growth_mb_per_min": 100.0}


def test_empty_limits_mean_no_budgets():
    """limits={} gives a budget with no limits at all."""
    assert PerformanceBudget({}).limits == {}


def test_limits_property_is_a_copy(budget):
    """Mutating the returned limits dict does not change the budget."""
    budget.limits["cpu_percent"] = 1.0
    assert budget.get_budget_limit("cpu_percent") == 80.0


def test_set_get_has_remove_limit(budget):
    """set/get/has/remove work together; remove says whether there was a budget."""
    budget.set_budget_limit("load_1m", 4)
    assert budget.get_budget_limit("load_1m") == 4.0
    assert isinstance(budget.get_budget_limit("load_1m"), float)
    assert budget.has_budget("load_1m")
    assert budget.remove_budget_limit("load_1m") is True
    assert budget.remove_budget_limit("load_1m") is False
    assert not budget.has_budget("load_1m")
    assert budget.get_budget_limit("load_1m") is None


@pytest.mark.parametrize("limit", [math.nan, math.inf, -1.0, True, "80", None])
def test_set_budget_limit_rejects_bad_limit(budget, limit):
    """A limit that is not a finite number >= 0 raises ConfigError naming it."""
    with pytest.raises(ConfigError, match="expected a finite number >= 0"):
        budget.set_budget_limit("cpu_percent", limit)
    assert budget.get_budget_limit("cpu_percent") == 80.0


@pytest.mark.parametrize("name", ["", None, 3])
def test_set_budget_limit_rejects_bad_name(budget, name):
    """A budget name must be a non-empty string."""
    with pytest.raises(ConfigError, match="non-empty string"):
        budget.set_budget_limit(name, 1.0)


def test_changing_a_limit_keeps_its_statistics(budget):
    """Re-setting a limit keeps the samples and moves the critical mark."""
    budget.check_budget_violation("cpu_percent", 50.0, now=1.0)
    budget.set_budget_limit("cpu_percent", 45.0)
    report = budget.utilization_report()["cpu_percent"]
    assert (report["samples"], report["limit"], report["status"]) == (1, 45.0, "warning")
    assert budget.check_budget_violation("cpu_percent", 56.25, now=2.0).severity == "critical"


# -- check_budget_violation -----------------------------------------------------------------


def test_violation_record_has_exact_fields(budget):
    """90 against 80 is a warning 10 over (12.5 %), stamped with the clock."""
    violation = budget.check_budget_violation("cpu_percent", 90.0)
    assert violation == BudgetViolation(metric="cpu_percent", value=90.0, limit=80.0,
                                        severity="warning", overage=10.0,
                                        overage_percent=12.5, timestamp=1000.0)


def test_value_at_limit_is_within_budget(budget):
    """A value equal to the limit is not a violation."""
    assert budget.check_budget_violation("cpu_percent", 80.0) is None


def test_critical_from_25_percent_over(budget):
    """Severity is critical from limit * 1.25 (100 for 80), warning just below."""
    assert CRITICAL_FACTOR == 1.25
    assert budget.check_budget_violation("cpu_percent", 99.9).severity == "warning"
    assert budget.check_budget_violation("cpu_percent", 100.0).severity == "critical"


def test_zero_limit_violation_is_critical_without_percent(clock):
    """With a limit of 0 any positive value is critical and overage_percent is None."""
    budget = PerformanceBudget({"errors": 0.0}, clock=clock)
    violation = budget.check_budget_violation("errors", 1.0)
    assert (violation.severity, violation.overage, violation.overage_percent) == \
        ("critical", 1.0, None)


def test_explicit_now_is_used_and_within_budget_never_reads_clock():
    """now= stamps the violation; the within-budget path does not read the clock."""
    budget = PerformanceBudget({"cpu_percent": 80.0}, clock=no_clock)
    assert budget.check_budget_violation("cpu_percent", 10.0) is None
    assert budget.check_budget_violation("cpu_percent", 81.0, now=5.0).timestamp == 5.0


def test_unknown_metric_returns_none_and_records_nothing(budget):
    """A name without a budget yields None and is absent from the report."""
    assert budget.check_budget_violation("disk_busy_percent", 1e9) is None
    assert list(budget.utilization_report()) == ["cpu_percent"]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "90", None, True])
def test_non_finite_value_raises_config_error(budget, value):
    """NaN, infinities, non-numbers and bools raise ConfigError naming the value."""
    with pytest.raises(ConfigError, match="expected a finite number"):
        budget.check_budget_violation("cpu_percent", value)
    assert budget.utilization_report()["cpu_percent"]["samples"] == 0


def test_integer_values_are_accepted(budget):
    """Plain ints are checked like floats."""
    assert budget.check_budget_violation("cpu_percent", 90).overage == 10


def test_violation_round_trips_through_dict(budget):
    """BudgetViolation.to_dict/from_dict round-trip and the dict is JSON-able."""
    violation = budget.check_budget_violation("cpu_percent", 120.0)
    data = json.loads(json.dumps(violation.to_dict()))
    assert BudgetViolation.from_dict(data) == violation


# -- reports --------------------------------------------------------------------------------


def test_utilization_report_exact_values(budget):
    """last, peak, average, utilizations, counts and status after three samples."""
    for value in (40.0, 100.0, 60.0):
        budget.check_budget_violation("cpu_percent", value, now=1.0)
    assert budget.utilization_report() == {"cpu_percent": {
        "limit": 80.0, "last": 60.0, "peak": 100.0, "average": 200.0 / 3,
        "utilization_percent": 75.0, "peak_utilization_percent": 125.0,
        "average_utilization_percent": (200.0 / 3) * 100.0 / 80.0,
        "samples": 3, "violations": 1, "status": "ok"}}


def test_utilization_report_before_any_sample(budget):
    """Without samples the values are None and the status is ok."""
    assert budget.utilization_report()["cpu_percent"] == {
        "limit": 80.0, "last": None, "peak": None, "average": None,
        "utilization_percent": None, "peak_utilization_percent": None,
        "average_utilization_percent": None, "samples": 0, "violations": 0, "status": "ok"}


def test_zero_limit_report_has_no_percentages(clock):
    """A zero limit reports utilization percentages as None."""
    budget = PerformanceBudget({"errors": 0.0}, clock=clock)
    budget.check_budget_violation("errors", 0.0)
    assert budget.utilization_report()["errors"]["utilization_percent"] is None


def test_negative_values_track_peak(budget):
    """The peak starts below any value, so a first negative sample is the peak."""
    budget.check_budget_violation("cpu_percent", -5.0)
    assert budget.utilization_report()["cpu_percent"]["peak"] == -5.0


def test_budget_health_follows_worst_last_sample(clock):
    """good within budget, warning just over, critical 25 % over; per last sample."""
    budget = PerformanceBudget({"cpu_percent": 80.0, "memory_percent": 85.0}, clock=clock)
    assert budget.budget_health() == "good"
    budget.check_budget_violation("cpu_percent", 85.0)
    assert budget.budget_health() == "warning"
    budget.check_budget_violation("memory_percent", 110.0)
    assert budget.utilization_report()["memory_percent"]["status"] == "critical"
    assert budget.budget_health() == "critical"
    budget.check_budget_violation("memory_percent", 10.0)
    budget.check_budget_violation("cpu_percent", 10.0)
    assert budget.budget_health() == "good"
    assert PerformanceBudget({}).budget_health() == "good"


# -- alerts ---------------------------------------------------------------------------------


def events_of(budget, **options):
    events = []
    budget.add_alert_handler(events.append, **options)
    return events


def states(events):
    return [(e.state, e.value, e.timestamp) for e in events]


def test_alert_fires_after_delay_samples_consecutive_violations(budget):
    """delay_samples=3: fires on the third consecutive violation; a dip resets the count."""
    events = events_of(budget, metric="cpu_percent", delay_samples=3)
    for now, value in enumerate([90, 90, 50, 90, 90, 95]):
        budget.check_budget_violation("cpu_percent", value, now=float(now))
    assert states(events) == [("firing", 95, 5.0)]
    assert events[0] == AlertEvent(handler_id=1, metric="cpu_percent", state="firing",
                                   value=95, limit=80.0, clear_level=80.0,
                                   severity="warning", timestamp=5.0, repeat=0)


def test_alert_resolves_below_clear_level_only(budget):
    """Hysteresis: with clear_level 70 a value of 75 keeps firing, 69 resolves."""
    events = events_of(budget, metric="cpu_percent", clear_level=70)
    for now, value in enumerate([90, 75, 85, 69, 60]):
        budget.check_budget_violation("cpu_percent", value, now=float(now))
    assert states(events) == [("firing", 90, 0.0), ("resolved", 69, 3.0)]
    assert events[1].clear_level == 70.0


def test_alert_default_clear_level_is_the_limit(budget):
    """Without clear_level the alert resolves on the first value below the limit."""
    events = events_of(budget)
    for now, value in enumerate([90, 80, 79.9]):
        budget.check_budget_violation("cpu_percent", value, now=float(now))
    assert states(events) == [("firing", 90, 0.0), ("resolved", 79.9, 2.0)]


def test_alert_repeats_every_interval_while_firing(budget):
    """repeat_interval_s=10: re-fires on the first sample 10 s after the last firing."""
    events = events_of(budget, metric="cpu_percent", repeat_interval_s=10, clear_level=50)
    for now, value in [(0, 90), (5, 90), (10, 60), (15, 90), (20, 90), (21, 90), (30, 40)]:
        budget.check_budget_violation("cpu_percent", value, now=float(now))
    assert [(e.state, e.timestamp, e.repeat) for e in events] == [
        ("firing", 0.0, 0), ("firing", 10.0, 1), ("firing", 20.0, 2), ("resolved", 30.0, 2)]


def test_alert_without_repeat_fires_once(budget):
    """repeat_interval_s None: one firing however long the violation lasts."""
    events = events_of(budget)
    for now in range(5):
        budget.check_budget_violation("cpu_percent", 90.0, now=float(now))
    assert len(events) == 1


def test_alert_severity_is_worst_seen(budget):
    """The event severity is the worst violation since pending began, reset on resolve."""
    events = events_of(budget, delay_samples=2, repeat_interval_s=1)
    for now, value in enumerate([100, 85, 10, 85, 85, 100, 10]):
        budget.check_budget_violation("cpu_percent", value, now=float(now))
    assert [(e.state, e.severity, e.timestamp) for e in events] == [
        ("firing", "critical", 1.0), ("resolved", "critical", 2.0),
        ("firing", "warning", 4.0), ("firing", "critical", 5.0), ("resolved", "critical", 6.0)]


def test_alert_reads_clock_when_now_not_given(budget, clock):
    """Events are stamped with the clock when check_budget_violation gets no now."""
    events = events_of(budget, repeat_interval_s=5)
    budget.check_budget_violation("cpu_percent", 90.0)
    clock.now = 1005.0
    budget.check_budget_violation("cpu_percent", 79.0 + 2)
    budget.check_budget_violation("cpu_percent", 10.0)
    assert [(e.state, e.timestamp) for e in events] == [
        ("firing", 1000.0), ("firing", 1005.0), ("resolved", 1005.0)]


def test_alert_repeat_in_hysteresis_band_reads_clock(clock):
    """A repeat check on a within-budget sample without now reads the clock."""
    budget = PerformanceBudget({"cpu_percent": 80.0}, clock=clock)
    events = events_of(budget, metric="cpu_percent", clear_level=50, repeat_interval_s=5)
    budget.check_budget_violation("cpu_percent", 90.0)
    clock.now = 1006.0
    budget.check_budget_violation("cpu_percent", 60.0)
    assert [(e.state, e.value, e.timestamp) for e in events] == [
        ("firing", 90.0, 1000.0), ("firing", 60.0, 1006.0)]


def test_handler_without_metric_watches_each_budget_separately(clock):
    """metric=None: every budget, each with its own state."""
    budget = PerformanceBudget({"cpu_percent": 80.0, "load_1m": 2.0}, clock=clock)
    events = events_of(budget, delay_samples=2)
    budget.check_budget_violation("cpu_percent", 90.0, now=1.0)
    budget.check_budget_violation("load_1m", 3.0, now=2.0)
    budget.check_budget_violation("load_1m", 3.0, now=3.0)
    assert [(e.metric, e.state) for e in events] == [("load_1m", "firing")]


def test_handler_for_a_metric_ignores_other_metrics(clock):
    """A handler for cpu_percent sees no memory_percent events."""
    budget = PerformanceBudget(clock=clock)
    events = events_of(budget, metric="cpu_percent")
    budget.check_budget_violation("memory_percent", 99.0, now=1.0)
    assert events == []


def test_handler_added_before_its_budget_is_routed_later(clock):
    """A handler for a metric without a budget starts working when the budget is set."""
    budget = PerformanceBudget({}, clock=clock)
    events = events_of(budget, metric="latency_ms")
    budget.set_budget_limit("latency_ms", 5.0)
    budget.check_budget_violation("latency_ms", 6.0, now=1.0)
    assert states(events) == [("firing", 6.0, 1.0)]


def test_handler_exception_is_counted_not_raised(budget):
    """A raising handler does not propagate; its errors are counted per handler."""
    def broken(event):
        raise RuntimeError("boom")

    broken_id = budget.add_alert_handler(broken)
    events = events_of(budget)
    assert budget.check_budget_violation("cpu_percent", 90.0, now=1.0) is not None
    assert len(events) == 1
    assert budget.handler_errors(broken_id) == 1
    assert budget.handler_errors() == 1
    assert budget.handler_errors(999) == 0


def test_remove_alert_handler_stops_events(budget):
    """A removed handler gets no more events; removing twice returns False."""
    events = []
    handler_id = budget.add_alert_handler(events.append)
    assert budget.remove_alert_handler(handler_id) is True
    assert budget.remove_alert_handler(handler_id) is False
    budget.check_budget_violation("cpu_percent", 90.0, now=1.0)
    assert events == []


def test_removing_a_budget_forgets_alert_state(budget):
    """After remove and re-set, the alert starts pending from zero again."""
    events = events_of(budget, delay_samples=2)
    budget.check_budget_violation("cpu_percent", 90.0, now=1.0)
    budget.remove_budget_limit("cpu_percent")
    budget.set_budget_limit("cpu_percent", 80.0)
    budget.check_budget_violation("cpu_percent", 90.0, now=2.0)
    assert events == []


def test_handler_ids_are_distinct_increasing(budget):
    """Each add_alert_handler returns a new id."""
    assert [budget.add_alert_handler(print) for _ in range(3)] == [1, 2, 3]


@pytest.mark.parametrize("options, message", [
    ({"delay_samples": 0}, "delay_samples 0"),
    ({"delay_samples": True}, "delay_samples True"),
    ({"delay_samples": 1.5}, "delay_samples 1.5"),
    ({"clear_level": 5.0}, "clear_level needs a metric"),
    ({"metric": "cpu_percent", "clear_level": -1}, "clear_level -1"),
    ({"metric": "cpu_percent", "clear_level": math.nan}, "clear_level nan"),
    ({"repeat_interval_s": 0}, "repeat_interval_s 0"),
    ({"repeat_interval_s": math.inf}, "repeat_interval_s inf"),
    ({"metric": ""}, "alert metric ''"),
])
def test_add_alert_handler_validates_options(budget, options, message):
    """Bad alert options raise ConfigError naming the bad value."""
    with pytest.raises(ConfigError, match=message):
        budget.add_alert_handler(print, **options)


def test_add_alert_handler_requires_callable(budget):
    """A non-callable handler raises ConfigError."""
    with pytest.raises(ConfigError, match="not callable"):
        budget.add_alert_handler("print")


def test_alert_event_round_trips_through_dict():
    """AlertEvent.to_dict/from_dict round-trip."""
    event = AlertEvent(3, "cpu_percent", "resolved", 10.0, 80.0, 70.0, "critical", 5.0, 2)
    assert AlertEvent.from_dict(json.loads(json.dumps(event.to_dict()))) == event


# -- config ---------------------------------------------------------------------------------


def test_export_is_plain_json_and_import_reproduces_limits():
    """export -> JSON -> import into a fresh budget gives the same limits (issue example)."""
    budget = PerformanceBudget()
    budget.set_budget_limit("cpu_percent", 70.0)
    budget.set_budget_limit("queue_depth", 12)
    config = json.loads(json.dumps(budget.export_budget_config()))
    assert config == {"version": 1, "budgets": {**DEFAULT_BUDGETS, "cpu_percent": 70.0,
                                                "queue_depth": 12.0}}
    fresh = PerformanceBudget({})
    fresh.import_budget_config(config)
    assert fresh.limits == budget.limits


def test_import_replaces_all_limits_and_keeps_kept_statistics(budget):
    """Names absent from the config are removed; kept names keep their samples."""
    budget.set_budget_limit("load_1m", 2.0)
    budget.check_budget_violation("cpu_percent", 50.0, now=1.0)
    budget.import_budget_config({"version": 1, "budgets": {"cpu_percent": 60}})
    assert budget.limits == {"cpu_percent": 60.0}
    assert budget.utilization_report()["cpu_percent"]["samples"] == 1


@pytest.mark.parametrize("config, message", [
    ([], "budget config is list"),
    ({"version": 1, "budgets": {}, "extra": 1}, "unknown key.*extra"),
    ({"budgets": {}}, "version None is unsupported"),
    ({"version": 2, "budgets": {}}, "version 2 is unsupported"),
    ({"version": True, "budgets": {}}, "version True is unsupported"),
    ({"version": 1}, "'budgets' is None"),
    ({"version": 1, "budgets": [("cpu_percent", 1.0)]}, "'budgets' is"),
    ({"version": 1, "budgets": {"cpu_percent": -1}}, "'cpu_percent' is -1"),
    ({"version": 1, "budgets": {"cpu_percent": math.nan}}, "'cpu_percent' is nan"),
    ({"version": 1, "budgets": {"cpu_percent": math.inf}}, "'cpu_percent' is inf"),
    ({"version": 1, "budgets": {"cpu_percent": True}}, "'cpu_percent' is True"),
    ({"version": 1, "budgets": {"cpu_percent": "80"}}, "'cpu_percent' is '80'"),
    ({"version": 1, "budgets": {5: 1.0}}, "budget name 5"),
])
def test_import_rejects_bad_config_and_leaves_limits_untouched(budget, config, message):
    """Every bad config raises ConfigError naming the problem; limits stay as they were."""
    budget.set_budget_limit("load_1m", 2.0)
    before = budget.limits
    with pytest.raises(ConfigError, match=message):
        budget.import_budget_config(config)
    assert budget.limits == before


def test_import_error_after_valid_entries_changes_nothing(budget):
    """A bad limit late in the config does not apply the good ones before it."""
    with pytest.raises(ConfigError):
        budget.import_budget_config({"version": 1, "budgets": {"a": 1.0, "b": -2.0}})
    assert budget.limits == {"cpu_percent": 80.0}


def test_issue_example_runs():
    """The README/issue example: set limits, detect 90 > 80, export and import."""
    from perfmesh import PerformanceBudget
    budget = PerformanceBudget()
    budget.set_budget_limit("cpu_percent", 80.0)
    budget.set_budget_limit("memory_percent", 85.0)
    assert budget.check_budget_violation("cpu_percent", 90.0)
    new_budget = PerformanceBudget()
    new_budget.import_budget_config(budget.export_budget_config())
    assert new_budget.limits == budget.limits


def test_public_budget_stamps_with_the_wall_clock_when_no_now_is_given():
    """from perfmesh import PerformanceBudget works standalone: violations carry time.time()."""
    import time
    from perfmesh import PerformanceBudget as Public
    budget = Public({"cpu_percent": 80.0})
    before = time.time()
    violation = budget.check_budget_violation("cpu_percent", 90.0)
    assert isinstance(budget, PerformanceBudget) and before <= violation.timestamp <= time.time()


def test_core_budget_without_a_clock_needs_now():
    """rules/ reads no clock: without clock= a violation needs now=, and says so."""
    budget = PerformanceBudget({"cpu_percent": 80.0})
    assert budget.check_budget_violation("cpu_percent", 50.0) is None
    assert budget.check_budget_violation("cpu_percent", 90.0, now=5.0).timestamp == 5.0
    with pytest.raises(ConfigError, match="no clock; expected now="):
        budget.check_budget_violation("cpu_percent", 90.0)


def test_rules_modules_do_not_import_time():
    """The budget (and every rules/ module) takes time as an argument; none imports time."""
    import ast
    from pathlib import Path
    import perfmesh.rules
    for path in Path(perfmesh.rules.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert "time" not in names and "datetime" not in names, path.name
