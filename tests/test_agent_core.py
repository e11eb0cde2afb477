"""Tests for perfmesh.mesh.agent_core: the agent's pure decisions, driven with a fake clock."""

import pytest

from perfmesh.errors import InvalidParameterError, WireError
from perfmesh.mesh.commands import MAX_DONE
from perfmesh.mesh.agent_core import (MAX_BACKFILL, AgentCore, AgentPolicy, Audit, Forward,
                                      HostFacts, Note, Resend, Run, Send, outcome_body, refused_body)
from perfmesh.protocol import wire

FACTS = HostFacts(cpu_count=4, memory_total_bytes=8 << 30, platform="Linux-test", python="3.11.7")
COLLECTORS = [{"kind": "cpu", "pid": 42, "restarts": 0, "state": "running"}]
NOW = 1000.0          # wall clock
MONO = 50.0           # monotonic clock


class Registry:
    """Two strategies; gc_collect takes a 'generation' of 0, 1 or 2."""

    def __init__(self, names=("gc_collect", "process_priority")):
        self.names = list(names)

    def strategies(self):
        return list(self.names)

    def validate(self, name, config=None):
        if name == "gc_collect" and (config or {}).get("generation", 0) not in (0, 1, 2):
            raise InvalidParameterError(f"generation must be 0, 1 or 2, got {config['generation']!r}")
        return dict(config or {})


class Spool:
    """A spool holding seqs 5..9 as b'frame-N'."""

    def __init__(self, seqs=range(5, 10)):
        self.frames = {s: f"frame-{s}".encode() for s in seqs}
        self.asked = []

    def get_range(self, first, last):
        self.asked.append((first, last))
        found = [(s, self.frames[s]) for s in range(first, last + 1) if s in self.frames]
        have = {s for s, _ in found}
        missing, run = [], None
        for s in range(first, last + 1):
            if s in have:
                run = None
            elif run is None:
                run = [s, s]
                missing.append(run)
            else:
                run[1] = s
        return found, [tuple(r) for r in missing]


def core(seq=9, commands=True, allow=None, heartbeat_s=1.0, registry=None):
    policy = AgentPolicy("web01", interval_s=1.0, heartbeat_s=heartbeat_s, commands=commands, allow=allow,
                         aggregator="tcp://agg:7700")
    return AgentCore(policy, "boot1", "inc1", seq, FACTS, registry or Registry(), lambda: list(COLLECTORS), MONO)


def frame(kind, body):
    return wire.encode(kind, "aggregator", "aggboot", 0, NOW, body)


def command(cmd_id="c1", strategy="gc_collect", params=None, expires=NOW + 10):
    body = {"id": cmd_id, "strategy": strategy, "expires": expires}
    if params is not None:
        body["params"] = params
    return body


def sends(actions):
    return [(a.kind, a.body) for a in actions if isinstance(a, Send)]


def audits(actions):
    return [a.entry["event"] for a in actions if isinstance(a, Audit)]


# ------------------------------------------------------------ registration
def test_registration_carries_host_facts_offered_strategies_collectors_and_incarnation():
    """register names the host's facts, its sorted strategies, its collectors and this process."""
    assert core(registry=Registry(["process_priority", "gc_collect"])).registration() == Send("register", {
        "cpu_count": 4, "memory_total_bytes": 8 << 30, "platform": "Linux-test", "python": "3.11.7",
        "interval_s": 1.0, "strategies": ["gc_collect", "process_priority"], "commands": True,
        "collectors": COLLECTORS, "incarnation": "inc1"})


def test_strategies_offered_are_the_allowed_ones_and_none_with_commands_off():
    """allow filters the registry; commands off offers nothing at all."""
    assert core(allow=("gc_collect", "other")).strategies() == ["gc_collect"]
    assert core(commands=False).strategies() == []
    assert core(commands=False).registration().body["strategies"] == []


def test_a_reply_asking_to_register_is_answered_with_a_registration():
    """The aggregator does not know us (it restarted): register again."""
    c = core()
    actions = c.on_control(frame("reply", {"register": True}), NOW, MONO + 0.5, Spool())
    assert actions == [c.registration()]


def test_heartbeats_and_plain_replies_need_no_answer():
    """A heartbeat or an ordinary reply only shows the aggregator is there."""
    c = core()
    assert c.on_control(frame("heartbeat", {}), NOW, MONO + 1, Spool()) == []
    assert c.on_control(frame("reply", {"registered": True}), NOW, MONO + 2, Spool()) == []
    assert c.last_heard_s == MONO + 2


# ------------------------------------------------------------- heartbeats
def test_heartbeat_reports_collectors_last_seq_and_counters():
    """Each heartbeat says which collectors run, the last seq forwarded and the counters."""
    c = core(seq=9)
    assert c.heartbeat(MONO + 1.0) == [Send("heartbeat", {
        "collectors": COLLECTORS, "seq": 9,
        "counters": {"batches_forwarded": 0, "bad_local_frames": 0, "bad_control_frames": 0,
                     "commands_run": 0, "commands_refused": 0, "batches_backfilled": 0}})]
    assert c.aggregator_alive


def test_aggregator_silent_for_three_heartbeats_is_noted_once_and_registered_with_on_return():
    """Past 3 heartbeat intervals of silence the aggregator counts as gone (noted once); its
    next frame brings a note and a new registration."""
    c = core(heartbeat_s=2.0)
    assert [type(a) for a in c.heartbeat(MONO + 6.0)] == [Send] and c.aggregator_alive   # exactly 3 x 2 s
    first = c.heartbeat(MONO + 6.1)
    assert first[0] == Note("no word from the aggregator at tcp://agg:7700 for 6s") and not c.aggregator_alive
    assert [type(a) for a in c.heartbeat(MONO + 8.0)] == [Send]      # noted once only
    back = c.on_control(frame("heartbeat", {}), NOW, MONO + 9.0, Spool())
    assert back == [Note("aggregator is back; registering again"), c.registration()]
    assert c.aggregator_alive and c.last_heard_s == MONO + 9.0


# ---------------------------------------------------------------- batches
def test_collector_batches_are_numbered_from_the_last_seq_and_encoded_as_metrics():
    """Each batch gets the next seq and goes out as a metrics envelope of this host and boot."""
    c = core(seq=9)
    body = {"ts": NOW, "values": [1.0]}
    [fwd] = c.on_local(wire.pack(body), NOW + 1)
    env = wire.decode(fwd.frame)
    assert fwd.seq == 10 == c.seq
    assert (env.kind, env.host, env.boot, env.seq, env.time, env.body) == ("metrics", "web01", "boot1", 10, NOW + 1, body)
    assert isinstance(fwd, Forward) and c.counters["batches_forwarded"] == 1


def test_a_bad_collector_frame_is_counted_and_noted_without_a_seq():
    """Garbage from a collector uses no sequence number."""
    c = core(seq=9)
    error = _unpack_error(b"\xc1")
    assert c.on_local(b"\xc1", NOW) == [Note(f"bad frame from a collector: {error}", "local")]
    assert c.seq == 9 and c.counters["bad_local_frames"] == 1 and c.counters["batches_forwarded"] == 0


def _unpack_error(data):
    with pytest.raises(WireError) as info:
        wire.unpack(data)
    return info.value


# --------------------------------------------------------------- backfill
def test_backfill_resends_spooled_frames_in_order_and_names_the_missing_part():
    """A range partly in the spool: the frames it holds, then a reply for the rest."""
    c = core(seq=9)
    spool = Spool()
    actions = c.on_control(frame("backfill", {"boot": "boot1", "first": 3, "last": 7}), NOW, MONO, spool)
    assert actions == [Resend(5, b"frame-5"), Resend(6, b"frame-6"), Resend(7, b"frame-7"),
                       Send("reply", {"backfill_missing": [3, 4], "boot": "boot1"})]
    assert spool.asked == [(3, 7)]


def test_backfill_past_the_last_seq_is_clipped_and_capped_per_request():
    """Never answer beyond what was sent; at most MAX_BACKFILL frames per request."""
    c = core(seq=9)
    spool = Spool()
    assert c.on_backfill({"boot": "boot1", "first": 8, "last": 50}, spool) == [
        Resend(8, b"frame-8"), Resend(9, b"frame-9")]
    big = core(seq=MAX_BACKFILL * 3)
    big.on_backfill({"boot": "boot1", "first": 1, "last": MAX_BACKFILL * 2}, spool)
    assert spool.asked[-1] == (1, MAX_BACKFILL)


def test_backfill_for_another_boot_is_all_missing_without_reading_the_spool():
    """A request for an older stream: nothing of it is here."""
    c = core(seq=9)
    spool = Spool()
    assert c.on_backfill({"boot": "old", "first": 2, "last": 4}, spool) == [
        Send("reply", {"backfill_missing": [2, 4], "boot": "old"})]
    assert spool.asked == []


def test_resent_frames_are_counted_only_when_the_shell_queued_them():
    """batches_backfilled counts what actually went out."""
    c = core()
    c.on_backfill({"boot": "boot1", "first": 5, "last": 9}, Spool())
    assert c.counters["batches_backfilled"] == 0
    c.resent()
    c.resent()
    assert c.counters["batches_backfilled"] == 2


@pytest.mark.parametrize("body", [None, [], {"first": 1}, {"first": 1, "last": "2"}, {"first": 1.0, "last": 2}])
def test_malformed_backfill_is_a_counted_bad_frame(body):
    """A backfill body without integer first and last is refused and counted."""
    c = core()
    [note] = c.on_control(frame("backfill", body), NOW, MONO, Spool())
    assert note.limit_key == "control" and "integer first and last" in note.text
    assert c.counters["bad_control_frames"] == 1


def test_unknown_kinds_and_undecodable_frames_are_counted_bad():
    """The aggregator never sends metrics or registrations; garbage is not a message."""
    c = core()
    [note] = c.on_control(frame("metrics", {}), NOW, MONO, Spool())
    assert note == Note("bad frame from the aggregator: bad_kind: the aggregator sends commands, "
                        "heartbeats and replies, not 'metrics'", "control")
    [note] = c.on_control(b"garbage", NOW, MONO, Spool())
    assert note.text.startswith("bad frame from the aggregator: ")
    assert c.counters["bad_control_frames"] == 2


# --------------------------------------------------------------- commands
def test_a_valid_command_is_audited_and_run():
    """A known strategy, valid params, not expired: audit, then run it."""
    c = core()
    actions = c.on_control(frame("command", command(params={"generation": 1})), NOW, MONO, Spool())
    assert actions == [Audit({"time": NOW, "event": "command", "id": "c1", "strategy": "gc_collect",
                              "params": {"generation": 1}}),
                       Run("c1", "gc_collect", {"generation": 1})]
    assert c.counters["commands_run"] == 1 and c.running == {"c1"}


def test_a_finished_command_is_remembered_audited_and_sent():
    """The outcome goes to the audit log and the aggregator, and is kept for replays."""
    c = core()
    c.on_command(command(), NOW)
    body = outcome_body("c1", {"success": True, "error": None, "improvement": 3.0})
    assert body == {"id": "c1", "status": "success", "result": {"success": True, "error": None,
                                                                "improvement": 3.0}, "error": None}
    assert c.finished(body, NOW + 2) == [
        Audit({"time": NOW + 2, "event": "result", "id": "c1", "outcome": "success", "result": body}),
        Send("result", body)]
    assert c.done["c1"] == body and c.running == set()


def test_a_replayed_command_id_gets_the_remembered_result_not_a_second_run():
    """Dedup: the same id again is answered from memory, marked replayed."""
    c = core()
    c.on_command(command(), NOW)
    body = outcome_body("c1", {"success": False, "error": "boom"})
    c.finished(body, NOW + 1)
    actions = c.on_command(command(), NOW + 5)
    assert audits(actions) == ["command", "replay"]
    assert sends(actions) == [("result", {**body, "replayed": True})]
    assert not any(isinstance(a, Run) for a in actions) and c.counters["commands_run"] == 1


def test_the_same_id_while_it_runs_is_not_run_twice():
    """Dedup in flight: the running command's result will answer both."""
    c = core()
    c.on_command(command(), NOW)
    assert c.on_command(command(), NOW + 1) == [
        Audit({"time": NOW + 1, "event": "command", "id": "c1", "strategy": "gc_collect", "params": None}),
        Audit({"time": NOW + 1, "event": "in_flight", "id": "c1"})]
    assert c.counters["commands_run"] == 1


def test_results_restored_from_the_audit_log_stay_replays_after_a_restart():
    """restore() reads result entries only, ignoring other events and malformed ones."""
    c = core()
    ran = refused_body("c7", "no")
    c.restore([{"event": "command", "id": "c7"}, {"event": "result", "result": ran},
               {"event": "result", "result": "oops"}, {"event": "result", "result": {"status": "x"}}])
    assert list(c.done) == ["c7"]
    assert sends(c.on_command(command("c7"), NOW)) == [("result", {**ran, "replayed": True})]


def test_remembered_results_are_bounded_oldest_first():
    """Only the newest MAX_DONE results are kept."""
    c = core()
    c.restore({"event": "result", "result": refused_body(f"c{i}", "x")} for i in range(MAX_DONE + 5))
    assert len(c.done) == MAX_DONE and next(iter(c.done)) == "c5"


@pytest.mark.parametrize("body", [None, {"strategy": "gc_collect"}, {"id": 7}, {"id": "x" * 129}])
def test_a_command_without_a_proper_id_is_a_bad_frame_and_not_audited(body):
    """No id to answer to: counted as a bad frame, nothing run or audited."""
    c = core()
    [note] = c.on_control(frame("command", body), NOW, MONO, Spool())
    assert "string id of at most 128 characters" in note.text and c.counters["bad_control_frames"] == 1


@pytest.mark.parametrize("body, error", [
    (command(expires=NOW - 0.001), "command expired or without a finite expiry (expires 999.999)"),
    (command(expires=float("inf")), "command expired or without a finite expiry (expires inf)"),
    ({"id": "c1", "strategy": "gc_collect"}, "command expired or without a finite expiry (expires None)"),
    (command(strategy=5), "strategy must be a string, got 5"),
    (command(strategy="rm_rf"), "unknown strategy 'rm_rf' on host 'web01'; available: gc_collect, process_priority"),
    (command(params={"generation": 9}), "generation must be 0, 1 or 2, got 9"),
])
def test_refused_commands_are_answered_refused_with_the_reason(body, error):
    """Expired, non-string, unknown or badly parameterised commands are refused, not run."""
    c = core()
    actions = c.on_command(body, NOW)
    assert sends(actions) == [("result", {"id": "c1", "status": "refused", "result": None, "error": error})]
    assert audits(actions) == ["command", "result"]
    assert c.counters == {**c.counters, "commands_refused": 1, "commands_run": 0} and c.running == set()


def test_a_command_expiring_exactly_now_still_runs():
    """expires == now is not yet expired."""
    assert isinstance(core().on_command(command(expires=NOW), NOW)[-1], Run)


def test_commands_are_refused_when_disabled_or_not_allowed():
    """commands=False refuses everything; allow hides the other strategies."""
    assert sends(core(commands=False).on_command(command(), NOW))[0][1]["error"] == \
        "remote commands are disabled on host 'web01'"
    assert sends(core(allow=("process_priority",)).on_command(command(), NOW))[0][1]["error"] == \
        "unknown strategy 'gc_collect' on host 'web01'; available: process_priority"
