"""Counter rates and CPU percentages: pure functions of values and times given by the test."""

import pytest

from perfmesh.collect.rates import CounterRates, CpuPercent, cpu_percent
from perfmesh.model.snapshots import CpuTimes


def test_first_sight_of_a_key_yields_no_rate():
    """A counter seen once has no rate yet."""
    assert CounterRates().rate("k", 100, now=10.0) is None


def test_rate_is_delta_over_elapsed_seconds():
    """1000 -> 3000 over 4 s is 500 per second."""
    rates = CounterRates()
    rates.rate("k", 1000, now=10.0)
    assert rates.rate("k", 3000, now=14.0) == 500.0


def test_keys_are_independent():
    """Each key keeps its own last sample."""
    rates = CounterRates()
    rates.rate(("a", "sda"), 0, now=0.0)
    rates.rate(("a", "sdb"), 100, now=0.0)
    assert rates.rate(("a", "sda"), 10, now=1.0) == 10.0
    assert rates.rate(("a", "sdb"), 300, now=2.0) == 100.0


def test_backwards_counter_is_a_reset_not_a_negative_rate():
    """A counter that goes down yields None, and the next sample rates from the new value."""
    rates = CounterRates()
    rates.rate("k", 5000, now=0.0)
    assert rates.rate("k", 100, now=1.0) is None
    assert rates.rate("k", 300, now=2.0) == 200.0


def test_no_elapsed_time_yields_none():
    """Same or earlier timestamp gives None instead of dividing by zero or going negative."""
    rates = CounterRates()
    rates.rate("k", 0, now=5.0)
    assert rates.rate("k", 10, now=5.0) is None
    assert rates.rate("k", 20, now=4.0) is None
    assert rates.rate("k", 30, now=6.0) == 5.0


def test_unchanged_counter_rates_zero():
    """A counter that did not move has rate 0.0 (not None)."""
    rates = CounterRates()
    rates.rate("k", 7, now=0.0)
    assert rates.rate("k", 7, now=1.0) == 0.0


def test_forget_makes_next_sample_a_first_sight():
    """forget(key) drops the remembered sample; forgetting an unknown key is harmless."""
    rates = CounterRates()
    rates.rate("k", 1, now=0.0)
    rates.forget("k")
    rates.forget("never")
    assert rates.rate("k", 2, now=1.0) is None


def test_prune_drops_keys_not_sampled_since():
    """prune(before) removes only keys last sampled earlier, and returns how many."""
    rates = CounterRates()
    rates.rate("old", 1, now=1.0)
    rates.rate("new", 1, now=5.0)
    assert rates.prune(before=5.0) == 1
    assert len(rates) == 1
    assert rates.rate("new", 3, now=6.0) == 2.0


def test_cpu_percent_busy_user_system_iowait():
    """Of 100 s: 20 user, 10 system, 5 iowait, 5 nice/irq/softirq/steal, 60 idle -> busy 35 %."""
    prev = CpuTimes(user=100, nice=0, system=50, idle=1000, iowait=10)
    cur = CpuTimes(user=120, nice=2, system=60, idle=1060, iowait=15, irq=1, softirq=1, steal=1)
    assert cpu_percent(prev, cur) == CpuPercent(
        busy_percent=35.0, user_percent=20.0, system_percent=10.0, iowait_percent=5.0
    )


def test_cpu_percent_all_idle_is_zero_and_all_busy_is_hundred():
    """Only idle time passing is 0 % busy; only user time is 100 %."""
    base = CpuTimes(user=1, idle=1)
    assert cpu_percent(base, CpuTimes(user=1, idle=3)).busy_percent == 0.0
    assert cpu_percent(base, CpuTimes(user=3, idle=1)).busy_percent == 100.0


def test_cpu_percent_no_time_passed_is_none():
    """Identical snapshots carry no information: None."""
    t = CpuTimes(user=5, idle=5)
    assert cpu_percent(t, t) is None


def test_cpu_percent_clamps_fields_that_step_back():
    """An idle counter stepping back (tickless kernels) counts as 0, so busy stays in 0..100."""
    prev = CpuTimes(user=10, idle=100)
    cur = CpuTimes(user=20, idle=99)
    pct = cpu_percent(prev, cur)
    assert pct.busy_percent == 100.0 and pct.user_percent == 100.0


def test_cpu_percent_is_unit_free():
    """Seconds or ticks give the same percentages."""
    a = cpu_percent(CpuTimes(user=1, idle=1), CpuTimes(user=2, idle=4))
    b = cpu_percent(CpuTimes(user=100, idle=100), CpuTimes(user=200, idle=400))
    assert a == b and a.busy_percent == pytest.approx(25.0)
