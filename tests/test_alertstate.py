"""perfmesh.rules.alertstate: the one alert state machine behind budget alerts and alert rules."""

from __future__ import annotations

from perfmesh.rules.alertstate import AlertPolicy, AlertState


def run(policy, samples, start=0.0):
    """Feed (level, cleared) samples one second apart; returns (t, state, severity, repeat, previous)."""
    st, out = AlertState(), []
    for i, (level, cleared) in enumerate(samples):
        t = start + i
        step = st.step(policy, level, cleared, lambda: t)
        if step is not None:
            out.append((t, step.state, step.severity, step.repeat, step.previous))
    return out


W, C, OK, BAND = ("warning", False), ("critical", False), (None, True), (None, False)


def test_fires_after_for_samples_in_a_row_and_a_gap_starts_over():
    """Two samples in a row are needed; a clear sample in between resets the count."""
    assert run(AlertPolicy(for_samples=2), [W, OK, W, W]) == [(3.0, "firing", "warning", 0, None)]


def test_for_s_needs_the_condition_to_hold_that_long():
    """With for_s=2 the alert fires on the first sample 2 s after the condition began."""
    assert run(AlertPolicy(for_s=2.0), [W, W, W, W]) == [(2.0, "firing", "warning", 0, None)]


def test_resolves_only_on_a_cleared_sample():
    """A sample under the level but not cleared (the hysteresis band) keeps the alert firing."""
    assert run(AlertPolicy(), [W, BAND, BAND, OK]) == [(0.0, "firing", "warning", 0, None),
                                                       (3.0, "resolved", "warning", 0, None)]


def test_repeats_every_repeat_s_while_firing_including_the_band():
    """Re-fires count up while firing; a new firing counts from 0 again."""
    got = run(AlertPolicy(repeat_s=2.0), [W, W, BAND, W, OK, W])
    assert got == [(0.0, "firing", "warning", 0, None), (2.0, "firing", "warning", 1, None),
                   (4.0, "resolved", "warning", 1, None), (5.0, "firing", "warning", 0, None)]


def test_worst_severity_sticks_silently_without_follow():
    """Budgets: the worst level seen since the condition began is the severity; no extra event."""
    assert run(AlertPolicy(for_samples=2), [C, W, W, OK]) == [(1.0, "firing", "critical", 0, None),
                                                              (3.0, "resolved", "critical", 0, None)]
    assert run(AlertPolicy(), [W, C, W, OK]) == [(0.0, "firing", "warning", 0, None),
                                                 (3.0, "resolved", "critical", 0, None)]


def test_follow_takes_the_firing_level_and_refires_on_a_change():
    """Alert rules: severity is the firing sample's level; a change re-fires naming the previous one."""
    got = run(AlertPolicy(for_samples=2, follow=True), [C, W, C, W, OK])
    assert got == [(1.0, "firing", "warning", 0, None), (2.0, "firing", "critical", 0, "warning"),
                   (3.0, "firing", "warning", 0, "critical"), (4.0, "resolved", "warning", 0, None)]


def test_time_is_asked_for_only_when_needed():
    """Quiet samples and samples while firing without repeats never read the time."""
    st = AlertState()

    def no_time():
        raise AssertionError("time read")
    assert st.step(AlertPolicy(), None, True, no_time) is None
    assert st.step(AlertPolicy(), "warning", False, lambda: 5.0).state == "firing"
    assert st.step(AlertPolicy(), "warning", False, no_time) is None
    assert st.step(AlertPolicy(), None, False, no_time) is None


def test_forced_resolution_reports_the_alert_as_it_was():
    """resolve() (a series gone stale) reports severity, start and repeats, then starts over."""
    st = AlertState()
    st.step(AlertPolicy(), "critical", False, lambda: 7.0)
    step = st.resolve(9.0)
    assert (step.state, step.severity, step.started, step.time) == ("resolved", "critical", 7.0, 9.0)
    assert not st.firing and st.severity is None and st.pending == 0


def test_budgets_and_alert_rules_share_it():
    """Budget handlers and rule evaluators keep AlertState objects, not their own machines."""
    from perfmesh.rules.alerting import AlertRule, RuleEvaluator
    from perfmesh.rules.budget import PerformanceBudget
    ev = RuleEvaluator(AlertRule("r", "m", warning=1.0))
    ev.observe("h", "m", 1.0, 2.0, "cpu")
    assert isinstance(ev.states[("h", "m")], AlertState)
    budget = PerformanceBudget({"m": 1.0})
    hid = budget.add_alert_handler(lambda e: None)
    budget.check_budget_violation("m", 2.0, now=1.0)
    assert isinstance(budget._handlers[hid].states["m"], AlertState)
