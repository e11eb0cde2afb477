"""perfmesh.rules.alerting: rules (delay, hysteresis, repeat, severities, selectors), burn rates, engine."""

from __future__ import annotations

import math

import pytest

from perfmesh.rules.alerting import (
    Alert, AlertEngine, AlertRule, BurnRateConfig, BurnTracker, HostSelector, RuleEvaluator)
from perfmesh.errors import ConfigError
from perfmesh.mesh.fleet import Event


def rule(**kw) -> AlertRule:
    return AlertRule(**{"name": "cpu-high", "metric": "cpu_percent", "warning": 80.0, **kw})


def feed(ev: RuleEvaluator, values, host="web01", key="cpu_percent", start=1.0):
    """Samples one second apart; returns (ts, alert) pairs."""
    out = []
    for i, v in enumerate(values):
        for a in ev.observe(host, key, start + i, v, "cpu"):
            out.append((start + i, a))
    return out


# ------------------------------------------------------------------ helpers
def test_host_selector_exact_names_and_globs():
    """A selector picks exact names or fnmatch globs; an empty one picks every host."""
    s = HostSelector(("web*", "db01", "cache-[0-9]"))
    assert [s.matches(h) for h in ("web01", "db01", "db02", "cache-3", "cache-x")] == \
        [True, True, False, True, False]
    assert HostSelector().matches("anything")
    assert HostSelector.parse("web*") == HostSelector(("web*",))
    assert HostSelector.parse(["a", "b"]).patterns == ("a", "b")
    with pytest.raises(ConfigError, match=r"alerts\[0\].hosts is 5; expected a host name or glob"):
        HostSelector.parse(5, "alerts[0].hosts")
    with pytest.raises(ConfigError):
        HostSelector.parse(["ok", ""])


def test_rule_validation_names_the_problem():
    """A rule needs a level, critical >= warning, and a clear level at or under the lowest level."""
    with pytest.raises(ConfigError, match="has no level"):
        AlertRule("r", "m")
    with pytest.raises(ConfigError, match="critical 50.0 is below warning 80.0"):
        rule(critical=50.0)
    with pytest.raises(ConfigError, match="clear 90.0 is above the level 80.0"):
        rule(clear=90.0)
    r = rule(critical=95.0, hosts=HostSelector(("web*",)))
    assert (r.lowest, r.level(80.0), r.level(80.5), r.level(95.0), r.level(95.1)) == \
        (80.0, None, "warning", "warning", "critical")
    assert AlertRule("c", "m", critical=10.0).level(11) == "critical"
    assert r.to_dict()["hosts"] == ["web*"]


def test_rule_selects_series_by_name_or_labels():
    """A bare metric matches only the unlabeled series unless labels=true; a key matches exactly."""
    assert rule().selects("cpu_percent") and not rule().selects("cpu_percent{cpu=0}")
    assert rule(labels=True).selects("cpu_percent{cpu=0}")
    assert not rule(labels=True).selects("cpu_percent_x")
    assert rule(metric="cpu_percent{cpu=0}").selects("cpu_percent{cpu=0}")


# ------------------------------------------------------------------ evaluation
def test_fires_on_first_sample_over_the_level_by_default():
    """for_samples=1: the first sample over warning fires, started_at is that sample."""
    [(ts, a)] = feed(RuleEvaluator(rule()), [10, 81])
    assert (ts, a.state, a.severity, a.value, a.threshold, a.started_at, a.source, a.category) == \
        (2.0, "firing", "warning", 81, 80.0, 2.0, "rule", "cpu")
    assert a.fingerprint == ("cpu-high", "web01", "cpu_percent", "warning")


def test_delay_for_samples_needs_consecutive_samples():
    """for_samples=3 fires on the third consecutive sample over; a dip in between restarts it."""
    got = feed(RuleEvaluator(rule(for_samples=3)), [90, 90, 50, 90, 90, 90, 90])
    assert [(ts, a.state, a.started_at) for ts, a in got] == [(6.0, "firing", 4.0)]


def test_delay_for_seconds_waits_for_the_condition_to_hold():
    """for_s=2.5 fires on the first sample at least 2.5 s after the condition started."""
    got = feed(RuleEvaluator(rule(for_s=2.5)), [90, 90, 90, 90, 90])
    assert [(ts, a.started_at) for ts, a in got] == [(4.0, 1.0)]


def test_hysteresis_resolves_only_below_the_clear_level():
    """clear=70: a firing alert stays firing at 75, resolves at 69; default clear is the level."""
    got = feed(RuleEvaluator(rule(clear=70.0)), [90, 75, 70, 69, 75])
    assert [(ts, a.state, a.value) for ts, a in got] == [(1.0, "firing", 90), (4.0, "resolved", 69)]
    got = feed(RuleEvaluator(rule()), [90, 80, 90])
    assert [(ts, a.state) for ts, a in got] == [(1.0, "firing"), (2.0, "resolved"), (3.0, "firing")]


def test_repeat_resends_while_firing():
    """repeat_s=2 re-sends every 2 s of firing, counting the repeats; resolved resets the count."""
    got = feed(RuleEvaluator(rule(repeat_s=2.0)), [90, 90, 90, 90, 90, 10, 90])
    assert [(ts, a.state, a.repeat) for ts, a in got] == [
        (1.0, "firing", 0), (3.0, "firing", 1), (5.0, "firing", 2), (6.0, "resolved", 2),
        (7.0, "firing", 0)]


def test_severity_change_reports_the_previous_one():
    """Escalation to critical and back to warning each fire with previous_severity set."""
    got = feed(RuleEvaluator(rule(critical=95.0)), [85, 99, 99, 85, 10])
    assert [(a.state, a.severity, a.previous_severity, a.threshold) for _, a in got] == [
        ("firing", "warning", None, 80.0), ("firing", "critical", "warning", 95.0),
        ("firing", "warning", "critical", 80.0), ("resolved", "warning", None, 80.0)]


def test_pending_tracks_worst_level_and_fires_with_the_current_one():
    """While pending the worst level is kept; the alert fires at the level of the firing sample."""
    got = feed(RuleEvaluator(rule(critical=95.0, for_samples=2)), [99, 85])
    assert [(a.severity, a.started_at) for _, a in got] == [("warning", 1.0)]


def test_old_duplicate_and_nan_samples_are_ignored():
    """A sample no newer than the last one (the same snapshot twice) or NaN changes nothing."""
    ev = RuleEvaluator(rule(for_samples=2))
    assert ev.observe("h", "cpu_percent", 5.0, 90, "cpu") == []
    assert ev.observe("h", "cpu_percent", 5.0, 90, "cpu") == []
    assert ev.observe("h", "cpu_percent", 4.0, 90, "cpu") == []
    assert ev.observe("h", "cpu_percent", 6.0, math.nan, "cpu") == []
    [a] = ev.observe("h", "cpu_percent", 7.0, 90, "cpu")
    assert a.state == "firing"


def test_stale_series_resolve_and_are_forgotten():
    """A firing series silent for stale_s resolves (value None); quiet ones are just dropped."""
    ev = RuleEvaluator(rule(stale_s=10.0))
    ev.observe("a", "cpu_percent", 1.0, 90, "cpu")
    ev.observe("b", "cpu_percent", 1.0, 10, "cpu")
    assert ev.expire(10.5) == []
    [a] = ev.expire(11.0)
    assert (a.host, a.state, a.value, a.timestamp) == ("a", "resolved", None, 11.0)
    assert ev.states == {}


def test_alerts_are_per_host_and_series():
    """Each (host, series) has its own state."""
    ev = RuleEvaluator(rule(labels=True))
    a = ev.observe("h1", "cpu_percent{cpu=0}", 1.0, 90, "cpu")
    b = ev.observe("h2", "cpu_percent{cpu=0}", 1.0, 90, "cpu")
    assert [(x.host, x.metric, x.labels) for x in a + b] == [
        ("h1", "cpu_percent{cpu=0}", {"cpu": "0"}), ("h2", "cpu_percent{cpu=0}", {"cpu": "0"})]
    assert a[0].summary == "cpu_percent{cpu=0} on h1 over warning level"
    assert a[0].to_dict()["labels"] == {"cpu": "0"}


# ------------------------------------------------------------------ burn rate
def test_burn_rate_fraction_over_limit_per_window():
    """10 samples, 3 over the limit, allowed 10 %: bad fraction 0.3, burn rate 3, nothing left."""
    t = BurnTracker(BurnRateConfig(allowed_fraction=0.1, windows_s=(5.0, 100.0), bucket_s=1.0))
    for i in range(10):
        t.observe("h", "cpu_percent", 100.0 + i, 90.0 if i in (0, 1, 9) else 10.0, 80.0)
    rows = {r["window_s"]: r for r in t.view(109.5)}
    assert rows[100.0] == {"host": "h", "metric": "cpu_percent", "window_s": 100.0, "samples": 10,
                           "bad_samples": 3, "bad_fraction": 0.3, "burn_rate": pytest.approx(3.0),
                           "budget_remaining": 0.0}
    # the 5 s window holds the buckets starting after 104.5: 105..109, one bad of five
    assert (rows[5.0]["samples"], rows[5.0]["bad_samples"]) == (5, 1)
    assert rows[5.0]["burn_rate"] == pytest.approx(2.0)
    assert rows[5.0]["budget_remaining"] == 0.0


def test_burn_rate_budget_remaining_and_empty_windows():
    """One bad sample of 20 with 10 % allowed leaves half the budget; no samples: rate 0."""
    t = BurnTracker(BurnRateConfig(allowed_fraction=0.1, windows_s=(60.0,), bucket_s=10.0))
    for i in range(20):
        t.observe("h", "m", float(i), 100.0 if i == 3 else 0.0, 50.0)
    [row] = t.view(20.0)
    assert (row["bad_fraction"], row["burn_rate"], row["budget_remaining"]) == \
        (0.05, 0.5, 0.5)
    [row] = t.view(1000.0)
    assert (row["samples"], row["burn_rate"], row["budget_remaining"]) == (0, 0.0, 1.0)


def test_burn_tracker_memory_is_bounded_and_duplicates_ignored():
    """Buckets older than the longest window are dropped; repeated timestamps count once."""
    t = BurnTracker(BurnRateConfig(windows_s=(30.0,), bucket_s=10.0))
    for i in range(1000):
        t.observe("h", "m", float(i), 1.0, 0.5)
        t.observe("h", "m", float(i), 1.0, 0.5)
    t.observe("h", "m", 999.0, math.inf, 0.5)
    assert len(t._buckets[("h", "m")]) <= 5
    [row] = t.view(999.0)
    assert row["samples"] == 30
    t.forget("h")
    assert t.view(999.0) == []


def test_burn_config_validation():
    """allowed_fraction in (0, 1], positive windows, bucket no longer than the shortest window."""
    for kw in ({"allowed_fraction": 0}, {"allowed_fraction": 1.5}, {"windows_s": ()},
               {"windows_s": (-1.0,)}, {"bucket_s": 0}, {"bucket_s": 600.0}):
        with pytest.raises(ConfigError):
            BurnRateConfig(**kw)


# ------------------------------------------------------------------ engine
def snap(now, latest=None, hosts=()):
    return {"time": now, "hosts": list(hosts), "latest": latest or {}}


def test_engine_applies_rules_to_selected_hosts_only():
    """A rule for web* sees web01's samples, not db01's."""
    eng = AlertEngine([rule(hosts=HostSelector(("web*",)))])
    alerts = eng.observe_snapshot(snap(2.0, {
        "web01": {"cpu_percent": (1.0, 90.0, "cpu", "percent")},
        "db01": {"cpu_percent": (1.0, 99.0, "cpu", "percent")}}), 2.0)
    assert [(a.host, a.state) for a in alerts] == [("web01", "firing")]
    assert eng.burn_view(2.0) == []


def test_engine_rule_expiry_runs_on_each_snapshot():
    """A host that stops sending resolves its firing alerts after stale_s."""
    eng = AlertEngine([rule(stale_s=5.0)])
    eng.observe_snapshot(snap(1.0, {"h": {"cpu_percent": (1.0, 90.0, "cpu", "%")}}), 1.0)
    [a] = eng.observe_snapshot(snap(6.0), 6.0)
    assert (a.state, a.timestamp) == ("resolved", 6.0)


def test_engine_turns_violation_events_into_budget_alerts():
    """Firing, escalation (previous severity named), repeat of the same severity, resolved."""
    eng = AlertEngine()

    def v(state, severity, value, ts):
        return Event("violation", "h", {"metric": "memory_percent", "value": value, "limit": 85.0,
                                         "severity": severity, "state": state, "timestamp": ts},
                     "memory")
    alerts = eng.observe_events([Event("host", "h", {"state": "up"}), v("firing", "warning", 90, 1.0),
                                 v("firing", "critical", 99, 2.0), v("firing", "critical", 99, 3.0),
                                 v("resolved", "critical", 50, 4.0)], 5.0)
    assert [(a.name, a.state, a.severity, a.previous_severity, a.started_at, a.timestamp, a.category)
            for a in alerts] == [
        ("budget_violation", "firing", "warning", None, 1.0, 1.0, "memory"),
        ("budget_violation", "firing", "critical", "warning", 1.0, 2.0, "memory"),
        ("budget_violation", "firing", "critical", None, 1.0, 3.0, "memory"),
        ("budget_violation", "resolved", "critical", None, 1.0, 4.0, "memory")]
    assert alerts[0].summary == "memory_percent on h over its budget"
    assert AlertEngine(violations=False).observe_events([v("firing", "warning", 90, 1.0)], 1.0) == []


def test_engine_bad_violation_fields_fall_back_safely():
    """A non-numeric value or timestamp and an unknown severity become None, now and warning."""
    [a] = AlertEngine().observe_events([Event("violation", "h", {"metric": "m", "value": "x",
                                                                  "severity": "weird", "timestamp": True})], 7.0)
    assert (a.value, a.timestamp, a.severity, a.threshold) == (None, 7.0, "warning", None)


def test_engine_bottlenecks_fire_once_and_resolve_when_gone():
    """A bottleneck in the host status fires once; when the host stops showing it, it resolves."""
    eng = AlertEngine()
    host = {"name": "h", "bottlenecks": [{"kind": "memory_pressure", "severity": "critical",
                                          "description": "memory is short"}]}
    [a] = eng.observe_snapshot(snap(1.0, hosts=[host]), 1.0)
    assert (a.name, a.metric, a.category, a.severity, a.summary, a.source) == \
        ("bottleneck", "memory_pressure", "memory", "critical", "memory is short", "bottleneck")
    assert eng.observe_snapshot(snap(2.0, hosts=[host]), 2.0) == []
    [r] = eng.observe_snapshot(snap(3.0, hosts=[{"name": "h", "bottlenecks": []}]), 3.0)
    assert (r.state, r.started_at, r.timestamp, r.severity) == ("resolved", 1.0, 3.0, "critical")
    off = AlertEngine(bottlenecks=False)
    assert off.observe_snapshot(snap(1.0, hosts=[host]), 1.0) == []


def test_engine_burn_view_uses_each_hosts_limits():
    """limits_for gives per-host limits; the burn view counts samples over them."""
    limits = {"web01": {"cpu_percent": 50.0}, "db01": {"cpu_percent": 95.0}}
    eng = AlertEngine(limits_for=lambda h: limits[h],
                      burn=BurnRateConfig(allowed_fraction=0.5, windows_s=(60.0,), bucket_s=10.0))
    for t in (1.0, 2.0):
        eng.observe_snapshot(snap(t, {h: {"cpu_percent": (t, 60.0, "cpu", "%"), "other": (t, 1.0, "cpu", "")}
                                      for h in limits}), t)
    eng.observe_snapshot(snap(3.0, {"web01": {}}), 3.0)
    view = {r["host"]: (r["samples"], r["bad_samples"], r["burn_rate"]) for r in eng.burn_view(3.0)}
    assert view == {"db01": (2, 0, 0.0), "web01": (2, 2, 2.0)}


def test_alert_to_dict_round_trips_fields():
    """to_dict carries every field, for webhooks."""
    a = Alert("n", "h", "m", "warning", "firing", 1.0, 2.0, "cpu", 0.0, 1.0, "rule")
    assert set(a.to_dict()) == {"name", "host", "metric", "severity", "state", "value", "threshold",
                                "category", "started_at", "timestamp", "source", "labels", "repeat",
                                "previous_severity", "summary"}
