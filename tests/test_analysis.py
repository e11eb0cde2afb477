"""Tests for perfmesh.rules.analysis: bottlenecks, health, potential score, recommendations."""

import json
import math

import pytest

from perfmesh.rules.analysis import (
    BOTTLENECK_KINDS,
    DEFAULT_THRESHOLDS,
    Bottleneck,
    detect_bottlenecks,
    optimization_potential,
    overall_health,
    recommendations,
    resolve_thresholds,
)
from perfmesh.rules.budget import BudgetViolation
from perfmesh.errors import ConfigError


def violation(metric="cpu_percent", value=90.0, limit=80.0, severity="warning"):
    return BudgetViolation(metric, value, limit, severity, value - limit,
                           (value - limit) * 100.0 / limit, 1.0)


def kinds(latest, thresholds=None):
    return [(b.kind, b.severity) for b in detect_bottlenecks(latest, thresholds)]


# -- detect_bottlenecks ---------------------------------------------------------------------


def test_quiet_host_has_no_bottlenecks():
    """Values under every threshold, or no values at all, give no bottleneck."""
    quiet = {"cpu_percent": 20.0, "memory_percent": 40.0, "swap_percent": 0.0,
             "cpu_iowait_percent": 1.0, "disk_busy_percent": 5.0, "net_drops_in_per_s": 0.0}
    assert detect_bottlenecks(quiet) == []
    assert detect_bottlenecks({}) == []


def test_cpu_bound_exact_record():
    """cpu_percent 95 is critical cpu_bound with load evidence and process_priority."""
    assert detect_bottlenecks({"cpu_percent": 95.0, "load_1m": 7.5, "cpu_count": 4.0,
                               "memory_percent": 10.0}) == [
        Bottleneck(kind="cpu_bound", severity="critical",
                   evidence={"cpu_percent": 95.0, "load_1m": 7.5, "cpu_count": 4.0},
                   recommended_strategy="process_priority",
                   description="CPU bound (critical): cpu_percent 95.0 >= 85.0")]


@pytest.mark.parametrize("latest, expected", [
    ({"cpu_percent": 84.9}, []),
    ({"cpu_percent": 85.0}, [("cpu_bound", "warning")]),
    ({"memory_percent": 85.0}, [("memory_pressure", "warning")]),
    ({"memory_percent": 95.0}, [("memory_pressure", "critical")]),
    ({"cpu_iowait_percent": 20.0}, [("io_wait", "warning")]),
    ({"cpu_iowait_percent": 40.0}, [("io_wait", "critical")]),
    ({"disk_busy_percent": 80.0}, [("disk_saturation", "warning")]),
    ({"disk_busy_percent": 95.0}, [("disk_saturation", "critical")]),
    ({"net_errors_in_per_s": 4.0, "net_drops_out_per_s": 6.0},
     [("network_saturation", "warning")]),
    ({"net_drops_in_per_s": 100.0}, [("network_saturation", "critical")]),
])
def test_threshold_boundaries(latest, expected):
    """Each rule fires exactly at its warning and critical thresholds."""
    assert kinds(latest) == expected


def test_swap_thrashing_needs_high_memory_too():
    """swap_percent over 50 is thrashing only with memory_percent >= 90."""
    assert kinds({"swap_percent": 85.0, "memory_percent": 89.0}) == [
        ("memory_pressure", "warning")]
    assert kinds({"swap_percent": 85.0}) == []
    found = detect_bottlenecks({"swap_percent": 50.0, "memory_percent": 90.0})
    assert [(b.kind, b.severity) for b in found] == [
        ("memory_pressure", "warning"), ("swap_thrashing", "warning")]
    assert found[1].evidence == {"swap_percent": 50.0, "memory_percent": 90.0}
    assert found[1].recommended_strategy == "memory_trim"
    assert kinds({"swap_percent": 80.0, "memory_percent": 90.0})[0] == (
        "swap_thrashing", "critical")


def test_memory_growth_alone_recommends_gc_collect():
    """Growth >= 100 MB/min with normal memory_percent is a gc_collect warning."""
    assert detect_bottlenecks({"memory_growth_mb_per_min": 150.0,
                               "memory_percent": 50.0}) == [
        Bottleneck("memory_pressure", "warning",
                   {"memory_percent": 50.0, "memory_growth_mb_per_min": 150.0}, "gc_collect",
                   "Memory pressure (warning): memory_growth_mb_per_min 150.0 >= 100.0")]


def test_high_memory_percent_with_growth_recommends_memory_trim():
    """When memory_percent fires, its severity and memory_trim win over growth."""
    [found] = detect_bottlenecks({"memory_growth_mb_per_min": 150.0,
                                  "memory_percent": 96.0})
    assert (found.severity, found.recommended_strategy) == ("critical", "memory_trim")


def test_network_link_utilization_when_capacity_is_known():
    """With net_link_bytes_per_s set, max(recv, sent) over capacity grades saturation."""
    latest = {"net_recv_bytes_per_s": 850.0, "net_sent_bytes_per_s": 10.0}
    assert kinds(latest) == []
    [found] = detect_bottlenecks(latest, {"net_link_bytes_per_s": 1000.0})
    assert found.severity == "warning"
    assert found.description == \
        "Network saturation (warning): link utilization 85.0% >= 80.0%"
    assert found.evidence == latest
    assert kinds({"net_sent_bytes_per_s": 950.0}, {"net_link_bytes_per_s": 1000.0}) == [
        ("network_saturation", "critical")]


def test_network_takes_worst_of_faults_and_utilization():
    """Faults (warning) and utilization (critical) give one critical with both reasons."""
    [found] = detect_bottlenecks({"net_recv_bytes_per_s": 990.0, "net_errors_out_per_s": 12.0},
                                 {"net_link_bytes_per_s": 1000.0})
    assert found.severity == "critical"
    assert found.description == ("Network saturation (critical): errors + drops 12.0/s >= "
                                 "10.0/s; link utilization 99.0% >= 80.0%")


def test_bottlenecks_are_sorted_critical_first_then_kind_order():
    """Critical before warning; within a severity, BOTTLENECK_KINDS order."""
    latest = {"cpu_percent": 90.0, "memory_percent": 99.0, "disk_busy_percent": 99.0,
              "cpu_iowait_percent": 25.0}
    assert kinds(latest) == [("memory_pressure", "critical"), ("disk_saturation", "critical"),
                             ("cpu_bound", "warning"), ("io_wait", "warning")]


def test_thresholds_are_overridable():
    """An override moves one threshold and keeps the others."""
    assert kinds({"cpu_percent": 60.0}, {"cpu_percent_warning": 50.0}) == [
        ("cpu_bound", "warning")]
    assert kinds({"memory_percent": 86.0}, {"cpu_percent_warning": 50.0}) == [
        ("memory_pressure", "warning")]


def test_resolve_thresholds_defaults_and_validation():
    """Defaults come back unchanged; overrides are floats; None only for link capacity."""
    assert resolve_thresholds() == DEFAULT_THRESHOLDS
    assert DEFAULT_THRESHOLDS["net_link_bytes_per_s"] is None
    assert resolve_thresholds({"disk_busy_percent_warning": 70})[
        "disk_busy_percent_warning"] == 70.0
    assert resolve_thresholds({"net_link_bytes_per_s": None})["net_link_bytes_per_s"] is None


@pytest.mark.parametrize("overrides, message", [
    ({"cpu_pct": 1.0}, "unknown bottleneck threshold 'cpu_pct'"),
    ({"cpu_percent_warning": -1.0}, "cpu_percent_warning=-1.0"),
    ({"cpu_percent_warning": math.nan}, "cpu_percent_warning=nan"),
    ({"cpu_percent_warning": None}, "cpu_percent_warning=None"),
    ({"cpu_percent_warning": True}, "cpu_percent_warning=True"),
])
def test_bad_thresholds_raise_config_error(overrides, message):
    """Unknown keys and bad values raise ConfigError naming them."""
    with pytest.raises(ConfigError, match=message):
        detect_bottlenecks({}, overrides)


def test_bottleneck_round_trips_and_validates():
    """Bottleneck to_dict/from_dict round-trip; bad kind/severity/strategy raise ConfigError."""
    bottleneck = Bottleneck("io_wait", "warning", {"cpu_iowait_percent": 30.0}, None, "x")
    assert Bottleneck.from_dict(json.loads(json.dumps(bottleneck.to_dict()))) == bottleneck
    assert Bottleneck.from_dict({"kind": "cpu_bound", "severity": "critical"}) == \
        Bottleneck("cpu_bound", "critical")
    with pytest.raises(ConfigError, match="kind 'slow'"):
        Bottleneck("slow", "warning")
    with pytest.raises(ConfigError, match="severity 'info'"):
        Bottleneck("cpu_bound", "info")
    with pytest.raises(ConfigError, match="strategy 'reboot'"):
        Bottleneck("cpu_bound", "warning", recommended_strategy="reboot")
    assert len(BOTTLENECK_KINDS) == 6


# -- overall_health -------------------------------------------------------------------------


def test_overall_health():
    """good with nothing, warning with any warning, critical with any critical."""
    warning_b = Bottleneck("io_wait", "warning")
    critical_b = Bottleneck("io_wait", "critical")
    assert overall_health([], []) == "good"
    assert overall_health([violation()], []) == "warning"
    assert overall_health([], [warning_b]) == "warning"
    assert overall_health([violation(severity="critical")], [warning_b]) == "critical"
    assert overall_health([violation()], [critical_b]) == "critical"


# -- optimization_potential -----------------------------------------------------------------


def test_potential_is_zero_for_a_quiet_host():
    """No bottleneck, no violation, low usage: score 0 and no reasons."""
    assert optimization_potential({"cpu_percent": 10.0}, [], []) == (0.0, [])


def test_potential_exact_score_and_reasons():
    """Points: actionable critical 30, other warning 10, violation critical 15, elevated 5."""
    bottlenecks = [Bottleneck("cpu_bound", "critical", recommended_strategy="process_priority"),
                   Bottleneck("disk_saturation", "warning")]
    violations = [violation("cpu_percent", 90.0), violation("cpu_percent", 120.0,
                                                            severity="critical")]
    score, reasons = optimization_potential(
        {"cpu_percent": 99.0, "memory_percent": 75.0}, violations, bottlenecks)
    assert score == 60.0
    assert reasons == ["+30: CPU bound (critical); try process_priority",
                       "+10: Disk saturation (warning)",
                       "+15: cpu_percent 120 is over its budget 80 (critical)",
                       "+5: memory_percent 75% is elevated (>= 70%)"]


def test_potential_other_points():
    """Actionable warning 20, other critical 15, violation warning 10."""
    score, _ = optimization_potential(
        {}, [violation("load_1m", 3.0, 2.0)],
        [Bottleneck("memory_pressure", "warning", recommended_strategy="memory_trim"),
         Bottleneck("io_wait", "critical")])
    assert score == 45.0


def test_potential_is_capped_at_100():
    """Many findings never push the score past 100."""
    bottlenecks = [Bottleneck(kind, "critical", recommended_strategy="memory_trim")
                   for kind in BOTTLENECK_KINDS]
    score, reasons = optimization_potential({}, [], bottlenecks)
    assert (score, len(reasons)) == (100.0, 6)


def test_elevated_usage_not_counted_twice_with_its_bottleneck():
    """cpu_percent >= 70 adds nothing extra when cpu_bound is already counted."""
    score, reasons = optimization_potential(
        {"cpu_percent": 90.0}, [], [Bottleneck("cpu_bound", "warning",
                                               recommended_strategy="process_priority")])
    assert (score, len(reasons)) == (20.0, 1)


# -- recommendations ------------------------------------------------------------------------


def test_recommendations_exact_text():
    """One line per bottleneck (with its strategy), then one per over-budget metric."""
    bottlenecks = [Bottleneck("memory_pressure", "critical", recommended_strategy="memory_trim"),
                   Bottleneck("network_saturation", "warning")]
    violations = [violation("load_1m", 3.0, 2.0), violation("load_1m", 2.5, 2.0)]
    assert recommendations(bottlenecks, violations) == [
        "Memory pressure (critical): free memory: release caches and return freed heap to "
        "the OS (strategy: memory_trim)",
        "Network saturation (warning): check the links for errors and drops, or spread the "
        "traffic",
        "Bring load_1m back under its budget 2 (last 3, warning)"]


def test_recommendations_empty_when_nothing_to_do():
    """No bottleneck and no violation: no advice."""
    assert recommendations([], []) == []


def test_end_to_end_with_detected_bottlenecks():
    """detect -> health -> potential -> recommendations on one busy snapshot."""
    latest = {"cpu_percent": 97.0, "cpu_iowait_percent": 45.0}
    found = detect_bottlenecks(latest)
    violations = [violation("cpu_percent", 97.0)]
    assert overall_health(violations, found) == "critical"
    assert optimization_potential(latest, violations, found)[0] == 55.0
    assert len(recommendations(found, violations)) == 3


def test_every_bottleneck_kind_has_one_category_and_io_wait_is_io():
    """One mapping kind -> category, used by the fleet and the alert rules alike; io_wait is I/O."""
    from perfmesh.mesh import fleet
    from perfmesh.model.metric import CATEGORIES
    from perfmesh.rules import alerting
    from perfmesh.rules.analysis import BOTTLENECK_CATEGORIES, BOTTLENECK_KINDS
    assert set(BOTTLENECK_CATEGORIES) == set(BOTTLENECK_KINDS)
    assert set(BOTTLENECK_CATEGORIES.values()) <= set(CATEGORIES)
    assert BOTTLENECK_CATEGORIES["io_wait"] == "io"
    assert fleet.BOTTLENECK_CATEGORIES is alerting.BOTTLENECK_CATEGORIES is BOTTLENECK_CATEGORIES
