"""Tests for perfmesh.mesh.restart: exponential restart backoff and the failing state."""

import pytest

from perfmesh.errors import ConfigError
from perfmesh.mesh.restart import Backoff, RestartPolicy, backoff_delay


def test_first_restart_waits_initial_delay():
    """A first crash schedules the restart initial_s later."""
    p = RestartPolicy()
    p.started(100.0)
    assert p.exited(101.0) == pytest.approx(101.2)
    assert (p.restarts, p.consecutive, p.state) == (1, 1, "running")


def test_quick_crashes_double_the_delay_up_to_the_maximum():
    """Crashes within reset_after_s of starting double the wait: 0.2, 0.4, 0.8 ... capped at max_s."""
    p = RestartPolicy(initial_s=0.2, max_s=1.0, factor=2.0, reset_after_s=10.0)
    now, delays = 100.0, []
    for _ in range(5):
        p.started(now)
        now += 1.0
        at = p.exited(now)
        delays.append(round(at - now, 9))
        now = at
    assert delays == [0.2, 0.4, 0.8, 1.0, 1.0]


def test_a_long_run_resets_the_backoff():
    """A process that ran at least reset_after_s before exiting restarts after initial_s again."""
    p = RestartPolicy(reset_after_s=10.0)
    p.started(0.0)
    p.exited(1.0)
    p.started(1.2)
    p.exited(2.0)
    assert p.consecutive == 2
    p.started(3.0)
    assert p.exited(13.0) == pytest.approx(13.2)
    assert (p.consecutive, p.restarts) == (1, 3)


def test_repeated_crashes_become_failing_and_recover_after_a_long_run():
    """failing_after consecutive crashes report 'failing'; a long run resets it to 'running'."""
    p = RestartPolicy(failing_after=3, reset_after_s=10.0)
    now = 0.0
    for i in range(3):
        p.started(now)
        now = p.exited(now + 0.5)
    assert p.state == "failing"
    p.started(now)
    p.exited(now + 60.0)
    assert p.state == "running"


def test_failing_process_is_still_retried_at_the_maximum_backoff():
    """Even when failing, exited() returns a finite restart time no later than max_s away."""
    p = RestartPolicy(max_s=30.0)
    for _ in range(20):
        p.started(0.0)
        at = p.exited(1.0)
        assert at <= 31.0
    assert at == 31.0
    assert p.state == "failing" and p.restarts == 20


def test_backoff_doubles_to_its_cap_and_a_success_starts_over():
    """Waits 1, 2, 4, ... up to max_s; succeeded() makes the next wait the first again."""
    b = Backoff(1.0, 5.0)
    assert [b.failed() for _ in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    b.succeeded()
    assert b.failed() == 1.0


@pytest.mark.parametrize("bad", [(0.0, 1.0), (2.0, 1.0), (1.0, 2.0, 0.5)])
def test_backoff_refuses_a_zero_start_a_low_cap_or_a_shrinking_factor(bad):
    """A backoff that could spin or shrink is a ConfigError naming its values."""
    with pytest.raises(ConfigError, match="expected 0 < initial_s <= max_s and factor >= 1"):
        Backoff(*bad)
    with pytest.raises(ConfigError, match="failures 0"):
        backoff_delay(0, 1.0, 2.0)


def test_restarts_webhooks_and_handshake_retries_share_the_one_backoff():
    """The restart policy's delays are backoff_delay's; delivery and reconnects use Backoff."""
    from workers import alerts, security
    p = RestartPolicy(initial_s=0.5, max_s=3.0)
    delays = []
    for _ in range(4):
        p.started(0.0)
        delays.append(p.exited(1.0) - 1.0)
    assert delays == [backoff_delay(n, 0.5, 3.0) for n in range(1, 5)] == [0.5, 1.0, 2.0, 3.0]
    assert alerts.Backoff is security.Backoff is Backoff
