"""Tests for perfmesh.mesh.commands: pending commands, deadlines and the bounded replay cache."""

from perfmesh.mesh.commands import TERMINAL_STATUSES, CommandTracker, PendingCommand


def cmd(cmd_id="c1", host="web01", deadline=10.0):
    return PendingCommand(cmd_id, host, "gc_collect", {"generation": 2}, b"op", 0.0, deadline, "alice")


def test_to_wire_is_the_agent_body_with_expiry():
    """to_wire() sends id, strategy, params and the deadline as 'expires', never the origin."""
    assert cmd().to_wire() == {"id": "c1", "strategy": "gc_collect", "params": {"generation": 2},
                               "expires": 10.0}


def test_operator_defaults_to_empty():
    """A command without an operator records ''."""
    assert PendingCommand("c", "h", "s", {}, None, 0.0, 1.0).operator == ""


def test_submit_then_finish_moves_the_command_to_done():
    """finish() removes the pending command, returns it and caches its result."""
    tracker = CommandTracker()
    c = cmd()
    tracker.submit(c)
    assert tracker.pending == {"c1": c} and tracker.known("c1") is None
    assert tracker.finish("c1", {"status": "success"}) is c
    assert tracker.pending == {} and tracker.known("c1") == {"status": "success"}


def test_finish_of_an_unknown_id_caches_nothing():
    """Finishing an id that is not pending returns None and does not poison the replay cache."""
    tracker = CommandTracker()
    assert tracker.finish("ghost", {"status": "success"}) is None
    assert tracker.known("ghost") is None and len(tracker.done) == 0


def test_finish_twice_keeps_the_first_result():
    """A second finish of the same id (a late duplicate) does not overwrite the result."""
    tracker = CommandTracker()
    tracker.submit(cmd())
    tracker.finish("c1", {"status": "success"})
    assert tracker.finish("c1", {"status": "failed"}) is None
    assert tracker.known("c1") == {"status": "success"}


def test_done_cache_is_bounded_dropping_the_oldest():
    """Past max_done results, the oldest finished ids are forgotten first."""
    tracker = CommandTracker(max_done=2)
    for i in range(3):
        tracker.submit(cmd(f"c{i}"))
        tracker.finish(f"c{i}", {"n": i})
    assert list(tracker.done) == ["c1", "c2"] and tracker.known("c0") is None


def test_expired_returns_commands_at_or_past_their_deadline():
    """expired(now) lists pending commands with deadline <= now, leaving them pending."""
    tracker = CommandTracker()
    early, late = cmd("a", deadline=5.0), cmd("b", deadline=6.0)
    tracker.submit(early)
    tracker.submit(late)
    assert tracker.expired(4.9) == []
    assert tracker.expired(5.0) == [early]
    assert tracker.expired(7.0) == [early, late]
    assert len(tracker.pending) == 2


def test_for_host_lists_only_that_hosts_pending_commands():
    """for_host() filters pending commands by target host."""
    tracker = CommandTracker()
    a, b = cmd("a", host="web01"), cmd("b", host="web02")
    tracker.submit(a)
    tracker.submit(b)
    assert tracker.for_host("web02") == [b] and tracker.for_host("x") == []


def test_terminal_statuses_include_success_failure_and_timeout():
    """The documented terminal statuses are a fixed tuple."""
    assert TERMINAL_STATUSES == ("success", "failed", "refused", "timeout", "unknown_outcome", "busy")
