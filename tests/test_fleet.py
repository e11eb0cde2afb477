"""Tests for perfmesh.mesh.fleet: the aggregator's pure state machine, driven with a fake clock."""

from collections import deque

import pytest

from perfmesh.protocol import wire
from perfmesh.protocol.batch import make_body
from perfmesh.errors import WireError
from perfmesh.mesh.fleet import Event, Fleet, FleetConfig
from perfmesh.protocol.wire import Envelope

CPU = wire.pack(["cpu", [["cpu_percent", "%", {}], ["cpu_core_percent", "%", {"cpu": "0"}]]])
MEM = wire.pack(["memory", [["memory_percent", "%", {}]]])
IO_A = wire.pack(["io", [["disk_busy_percent", "%", {"dev": "sda"}]]])
IO_B = wire.pack(["io", [["disk_busy_percent", "%", {"dev": "sda"}],
                         ["disk_busy_percent", "%", {"dev": "sdb"}]]])
STRATEGIES = ["gc_collect", "process_priority"]


def metrics(seq, ts=100.0, values=(10.0, 20.0), host="web01", boot="b1", schema=CPU):
    return Envelope("metrics", host, boot, seq, ts, make_body(schema, ts, list(values)))


def env(kind, host="web01", boot="b1", body=None):
    return Envelope(kind, host, boot, 0, 0.0, body if body is not None else {})


def registered(fleet=None, host="web01", now=100.0, strategies=STRATEGIES, **body):
    fleet = fleet or Fleet()
    if strategies is not None:
        body["strategies"] = strategies
    fleet.register(env("register", host, body=body), route=b"route-" + host.encode(), now=now)
    return fleet


def types(events):
    return [(e.type, e.body.get("state")) for e in events]


# ------------------------------------------------------------------ ingest
def test_first_batch_creates_the_host_and_stores_history():
    """A batch from a new host creates its state, stores every value and counts it."""
    fleet = Fleet()
    schema, events, _ = fleet.ingest(metrics(0, ts=100.0), now=100.5)
    host = fleet.hosts["web01"]
    assert schema.category == "cpu" and list(events) == []
    assert (host.first_seen, host.last_seen, host.boot, host.seq.last) == (100.5, 100.5, "b1", 0)
    assert fleet.history("web01", "cpu_core_percent{cpu=0}", 0.0) == [(100.0, 20.0, False)]
    assert host.counters["batches"] == 1 and host.counters["samples"] == 2


def test_fleet_level_counters_count_every_stored_batch_and_sample():
    """status()['counters'] batches and samples add up what every host stored."""
    fleet = Fleet()
    fleet.ingest(metrics(0), now=1.0)
    fleet.ingest(metrics(1), now=2.0)
    fleet.ingest(metrics(0, host="db01", schema=MEM, values=(1.0,)), now=2.0)
    assert fleet.status(3.0)["counters"]["batches"] == 3
    assert fleet.status(3.0)["counters"]["samples"] == 5


def test_consecutive_sequence_numbers_make_no_gap():
    """seq 0, 1, 2 is gap-free."""
    fleet = Fleet()
    for seq in range(3):
        _, events, _ = fleet.ingest(metrics(seq, ts=float(seq)), now=float(seq))
        assert list(events) == []
    assert fleet.hosts["web01"].counters["gaps"] == 0


def test_sequence_gap_asks_for_backfill_counts_it_and_keeps_the_batch():
    """A jump from seq 0 to 3 emits no event yet: it requests 1..2, records the gap, stores batch 3."""
    fleet = Fleet()
    fleet.ingest(metrics(0, ts=1.0), now=1.0)
    schema, events, backfilled = fleet.ingest(metrics(3, ts=4.0), now=4.5)
    assert schema is not None and list(events) == [] and backfilled is False
    assert fleet.backfill_requests == [("web01", "b1", 1, 2)]
    host = fleet.hosts["web01"]
    [gap] = host.gaps
    assert (gap.first, gap.last, gap.start_ts, gap.end_ts, gap.detected, gap.asked) == (1, 2, 1.0, 4.0, 4.5, 4.5)
    c = fleet.status(5.0)["hosts"][0]["counters"]
    assert (c["gaps"], c["missing_batches"], c["lost_batches"], c["batches"]) == (1, 2, 0, 2)
    assert host.seq.last == 3 and fleet.status(5.0)["hosts"][0]["last_seq"] == 3


def test_duplicate_or_older_sequence_is_dropped_and_counted():
    """A batch with seq <= the last one (and not owed) is dropped (None), counted as a duplicate, not stored."""
    fleet = Fleet()
    fleet.ingest(metrics(0, ts=1.0), now=1.0)
    fleet.ingest(metrics(1, ts=2.0), now=2.0)
    assert fleet.ingest(metrics(1, ts=9.0), now=3.0) == (None, (), False)
    assert fleet.ingest(metrics(0, ts=9.0), now=3.0) == (None, (), False)
    host = fleet.hosts["web01"]
    assert host.counters["duplicates"] == 2 and host.counters["batches"] == 2
    assert [t for t, _, _ in fleet.history("web01", "cpu_percent", 0.0)] == [1.0, 2.0]
    assert host.seq.last == 1 and fleet.backfill_requests == []


def test_reboot_resets_the_sequence_without_gap_or_duplicate():
    """A new boot id restarting at seq 0 is neither a gap nor a duplicate."""
    fleet = Fleet()
    fleet.ingest(metrics(0), now=1.0)
    fleet.ingest(metrics(1), now=2.0)
    schema, events, _ = fleet.ingest(metrics(0, boot="b2"), now=3.0)
    host = fleet.hosts["web01"]
    assert schema is not None and list(events) == []
    assert (host.boot, host.seq.boot, host.seq.last, host.counters["duplicates"], host.counters["gaps"]) == \
        ("b2", "b2", 0, 0, 0)
    assert fleet.backfill_requests == []


def test_first_batch_seen_with_high_seq_is_not_a_gap():
    """An aggregator meeting a host mid-stream (seq 41) does not report 41 missing batches."""
    fleet = Fleet()
    _, events, _ = fleet.ingest(metrics(41), now=1.0)
    assert list(events) == [] and fleet.hosts["web01"].counters["gaps"] == 0


def test_malformed_body_raises_wire_error_for_the_caller_to_count():
    """ingest() raises WireError (bad_body) for a body that is not a batch."""
    with pytest.raises(WireError) as info:
        Fleet().ingest(Envelope("metrics", "web01", "b1", 0, 1.0, {"oops": 1}), now=1.0)
    assert info.value.reason == "bad_body"


def test_series_cap_refuses_and_counts_the_batch():
    """A schema over the per-host series cap is dropped, counted as series_refused and series_cap."""
    fleet = Fleet(FleetConfig(max_series_per_host=1))
    schema, events, _ = fleet.ingest(metrics(0), now=1.0)
    host = fleet.hosts["web01"]
    assert schema is None and list(events) == []
    assert host.counters["series_refused"] == 1 and host.bad_reasons == {"series_cap": 1}
    assert fleet.bad_reasons == {"series_cap": 1} and host.counters["batches"] == 0


def test_schema_that_comes_back_after_eviction_is_stored_again():
    """io schema A, then B evicting A at the cap, then A again: A's batches stay queryable."""
    fleet = Fleet(FleetConfig(max_series_per_host=2))
    fleet.ingest(metrics(0, ts=1.0, schema=IO_A, values=(1.0,)), now=1.0)
    fleet.ingest(metrics(1, ts=2.0, schema=IO_B, values=(2.0, 3.0)), now=2.0)
    fleet.ingest(metrics(2, ts=3.0, schema=IO_A, values=(4.0,)), now=3.0)
    assert fleet.history("web01", "disk_busy_percent{dev=sda}", 0.0)[-1] == (3.0, 4.0, False)
    assert fleet.hosts["web01"].history.series_count <= 2


def test_two_hosts_with_identical_schema_keep_separate_history():
    """The per-schema ring cache never writes one host's values into another's history."""
    fleet = Fleet()
    fleet.ingest(metrics(0, ts=1.0, values=(1.0, 1.0), host="a"), now=1.0)
    fleet.ingest(metrics(0, ts=1.0, values=(2.0, 2.0), host="b"), now=1.0)
    fleet.ingest(metrics(1, ts=2.0, values=(3.0, 3.0), host="a"), now=2.0)
    assert fleet.history("a", "cpu_percent", 0.0) == [(1.0, 1.0, False), (2.0, 3.0, False)]
    assert fleet.history("b", "cpu_percent", 0.0) == [(1.0, 2.0, False)]


# ------------------------------------------------------------------ budgets
def test_budget_violation_fires_then_stays_quiet_then_escalates_then_resolves():
    """cpu_percent over 80, with no delay nor hysteresis: warning fires once, repeats are silent,
    critical re-fires, then resolves."""
    fleet = Fleet(FleetConfig(budget_for_samples=0, budget_clear_percent=0))
    _, ev, _ = fleet.ingest(metrics(0, ts=1.0, values=(90.0, 0.0)), now=1.0)
    assert [e.to_dict() for e in ev] == [{
        "type": "violation", "host": "web01", "metric": "cpu_percent", "value": 90.0, "limit": 80.0,
        "severity": "warning", "overage": 10.0, "overage_percent": 12.5, "timestamp": 1.0,
        "state": "firing", "category": "cpu", "started": 1.0}]
    assert ev[0].category == "cpu"
    _, ev, _ = fleet.ingest(metrics(1, ts=2.0, values=(91.0, 0.0)), now=2.0)
    assert list(ev) == []
    assert fleet.hosts["web01"].active_violations["cpu_percent"]["value"] == 91.0
    _, ev, _ = fleet.ingest(metrics(2, ts=3.0, values=(100.0, 0.0)), now=3.0)
    assert [(e.body["state"], e.body["severity"]) for e in ev] == [("firing", "critical")]
    _, ev, _ = fleet.ingest(metrics(3, ts=4.0, values=(50.0, 0.0)), now=4.0)
    assert [(e.body["state"], e.body["severity"], e.body["value"], e.body["timestamp"]) for e in ev] == \
        [("resolved", "critical", 50.0, 4.0)]
    host = fleet.hosts["web01"]
    assert host.active_violations == {}
    assert [v["severity"] for v in host.recent_violations] == ["warning", "critical"]


def test_violation_fires_again_after_resolving():
    """A resolved budget that is exceeded again emits a new firing event."""
    fleet = Fleet(FleetConfig(budget_for_samples=1))
    fleet.ingest(metrics(0, values=(90.0, 0.0)), now=1.0)
    fleet.ingest(metrics(1, values=(10.0, 0.0)), now=2.0)
    _, ev, _ = fleet.ingest(metrics(2, values=(95.0, 0.0)), now=3.0)
    assert types(ev) == [("violation", "firing")]


def test_deescalation_from_critical_to_warning_is_silent():
    """A firing violation keeps the worst severity it reached; a drop to warning is no event."""
    fleet = Fleet(FleetConfig(budget_for_samples=1))
    fleet.ingest(metrics(0, values=(120.0, 0.0)), now=1.0)
    _, ev, _ = fleet.ingest(metrics(1, values=(85.0, 0.0)), now=2.0)
    assert list(ev) == []
    assert fleet.hosts["web01"].active_violations["cpu_percent"]["severity"] == "critical"


def test_oscillating_host_gives_one_violation_with_the_defaults():
    """A host crossing its budget (80) on every sample fires once, on its 3rd sample over, and
    does not resolve while it stays above 76 (5 % under the limit); a sample at 76 resolves it."""
    fleet = Fleet()
    events = []
    for seq in range(40):
        value = 82.0 if seq % 2 == 0 else 78.0
        _, ev, _ = fleet.ingest(metrics(seq, ts=float(seq), values=(value, 0.0)), now=float(seq))
        events += ev
    assert types(events) == [("violation", "firing")]
    assert (events[0].body["started"], events[0].body["timestamp"]) == (0.0, 4.0)
    _, ev, _ = fleet.ingest(metrics(40, ts=40.0, values=(76.0, 0.0)), now=40.0)
    assert [(e.body["state"], e.body["started"], e.body["timestamp"]) for e in ev] == \
        [("resolved", 0.0, 40.0)]
    assert fleet.hosts["web01"].budget_alerts == {}


def test_a_clear_sample_restarts_the_delay():
    """Two samples over, one at or below 95 % of the limit, two over: still no violation."""
    fleet = Fleet()
    events = []
    for seq, value in enumerate((90.0, 90.0, 70.0, 90.0, 90.0)):
        events += fleet.ingest(metrics(seq, ts=float(seq), values=(value, 0.0)), now=float(seq))[1]
    assert events == []


def test_budget_and_given_up_gap_events_come_together():
    """A batch that overflows the owed ranges and violates a budget returns the gap then the violation."""
    fleet = Fleet(FleetConfig(budget_for_samples=1))
    fleet.hosts["web01"] = fleet.host("web01", "b1", 1.0)
    fleet.hosts["web01"].seq.max_ranges = 1
    fleet.ingest(metrics(1), now=1.0)
    fleet.ingest(metrics(3), now=2.0)                       # owes 2
    _, ev, _ = fleet.ingest(metrics(5, values=(90.0, 0.0)), now=3.0)   # owes 4; 2 given up
    assert [(e.type, e.body.get("first_seq")) for e in ev] == [("gap", 2), ("violation", None)]


def test_labelled_series_are_not_budget_checked():
    """Only unlabeled series are checked against a budget of the same name."""
    labelled = wire.pack(["cpu", [["cpu_percent", "%", {"cpu": "0"}]]])
    fleet = Fleet()
    _, ev, _ = fleet.ingest(metrics(0, values=(99.0,), schema=labelled), now=1.0)
    assert list(ev) == [] and fleet.hosts["web01"].active_violations == {}


def test_configured_budgets_replace_the_defaults():
    """FleetConfig.budgets decides which names are checked and at what limit."""
    fleet = Fleet(FleetConfig(budgets={"cpu_percent": 95.0}))
    _, ev, _ = fleet.ingest(metrics(0, values=(90.0, 0.0)), now=1.0)
    assert list(ev) == []
    fleet = Fleet(FleetConfig(budgets={}))
    _, ev, _ = fleet.ingest(metrics(0, values=(1000.0, 0.0)), now=1.0)
    assert list(ev) == []


def test_budgeted_columns_are_kept_per_schema_by_the_fleet_and_bounded():
    """The fleet keeps which columns of a schema are budgeted, keyed by the schema's bytes, and
    clears that cache when it holds as many schemas as the schema cache may."""
    fleet = Fleet()
    fleet.schemas.max_entries = 2
    fleet.ingest(metrics(0), now=1.0)
    assert fleet.budgeted_columns == {CPU: [(0, "cpu_percent")]}
    fleet.ingest(metrics(1, values=(50.0,), schema=MEM), now=1.0)
    assert fleet.budgeted_columns == {CPU: [(0, "cpu_percent")], MEM: [(0, "memory_percent")]}
    fleet.ingest(metrics(2, values=(1.0,), schema=IO_A), now=1.0)
    assert fleet.budgeted_columns == {IO_A: []}


# ------------------------------------------------------------------ control
def test_register_records_info_collectors_and_route():
    """register() keeps the route, the known info keys only, and sanitised collector entries."""
    fleet = Fleet()
    body = {"cpu_count": 8, "memory_total_bytes": 1 << 30, "platform": "linux", "python": "3.12",
            "interval_s": 1.0, "strategies": ["gc_collect"], "commands": True, "secret": "x",
            "collectors": [{"kind": "cpu", "pid": 42, "restarts": 1, "state": "running", "extra": 1},
                           "junk", {"kind": "io"}] + [{"kind": "m"}] * 20}
    events = fleet.register(env("register", body=body), route=b"r1", now=5.0)
    host = fleet.hosts["web01"]
    assert host.registered and host.route == b"r1"
    assert host.info == {k: body[k] for k in ("cpu_count", "memory_total_bytes", "platform",
                                              "python", "interval_s", "strategies", "commands")}
    assert host.collectors[0] == {"kind": "cpu", "pid": 42, "restarts": 1, "state": "running"}
    assert host.collectors[1] == {"kind": "io", "pid": None, "restarts": None, "state": None}
    assert len(host.collectors) == 15  # at most 16 entries examined, non-maps skipped
    assert [e.to_dict() for e in events] == [
        {"type": "host", "host": "web01", "state": "registered", "timestamp": 5.0, "info": host.info}]


def test_register_with_a_non_map_body_registers_with_no_info():
    """A register body that is not a map still registers the host, with empty info."""
    fleet = Fleet()
    fleet.register(env("register", body=[1, 2]), route=b"r", now=1.0)
    host = fleet.hosts["web01"]
    assert host.registered and host.info == {} and host.collectors == []


def test_register_with_new_boot_then_its_seq_0_is_not_a_duplicate():
    """After registering under a new boot id, that boot's seq 0 is stored, not a duplicate."""
    fleet = registered()
    fleet.ingest(metrics(0), now=100.0)
    fleet.ingest(metrics(1), now=101.0)
    fleet.register(env("register", boot="b2", body={}), route=b"r", now=102.0)
    assert fleet.hosts["web01"].boot == "b2"
    schema, events, _ = fleet.ingest(metrics(0, boot="b2"), now=103.0)
    host = fleet.hosts["web01"]
    assert schema is not None and list(events) == []
    assert (host.seq.boot, host.seq.last, host.counters["duplicates"]) == ("b2", 0, 0)


def test_register_with_malformed_strategies_never_breaks_commands_or_ticks():
    """Strategies that are not a list of names are dropped, so commands and ticks never crash."""
    for bad in (5, "gc_collect", [1, None], {"x": 1}):
        fleet = Fleet(FleetConfig(auto_optimize=True))
        fleet.register(env("register", body={"strategies": bad}), route=b"r", now=100.0)
        fleet.ingest(metrics(0, values=(99.0, 0.0)), now=100.0)
        assert "strategies" not in fleet.hosts["web01"].info
        cmd, reply = fleet.start_command("c1", "web01", "gc_collect", {}, None, 100.0, 5.0)
        assert reply is None and cmd.strategy == "gc_collect"  # the agent's registry decides
        assert fleet.tick(100.5)[1] == []                       # nothing to auto-dispatch


def test_heartbeat_from_unknown_host_must_register():
    """A heartbeat from a host never seen asks it to register and creates nothing."""
    fleet = Fleet()
    assert fleet.heartbeat(env("heartbeat"), route=b"r", now=1.0) == ([], True)
    assert fleet.hosts == {}


def test_heartbeat_from_host_known_only_by_metrics_must_register():
    """A host that sent metrics but never registered is asked to register."""
    fleet = Fleet()
    fleet.ingest(metrics(0), now=1.0)
    assert fleet.heartbeat(env("heartbeat"), route=b"r", now=2.0) == ([], True)


def test_heartbeat_with_another_boot_id_must_register():
    """A heartbeat from a rebooted agent (new boot id) asks it to register again."""
    fleet = registered()
    assert fleet.heartbeat(env("heartbeat", boot="b2"), route=b"r", now=101.0) == ([], True)


def test_heartbeat_from_registered_host_updates_route_collectors_and_last_seen():
    """A good heartbeat needs no registration, moves the route and refreshes collectors."""
    fleet = registered()
    events, must = fleet.heartbeat(
        env("heartbeat", body={"collectors": [{"kind": "cpu", "pid": 7, "restarts": 2}]}),
        route=b"new", now=101.0)
    host = fleet.hosts["web01"]
    assert (events, must) == ([], False)
    assert host.route == b"new" and host.last_seen == 101.0
    assert host.collectors == [{"kind": "cpu", "pid": 7, "restarts": 2, "state": None}]


def test_heartbeat_without_collectors_keeps_the_previous_list():
    """A heartbeat body without 'collectors' does not wipe what register reported."""
    fleet = registered(collectors=[{"kind": "io", "pid": 3}])
    fleet.heartbeat(env("heartbeat", body={}), route=b"r", now=101.0)
    assert fleet.hosts["web01"].collectors[0]["pid"] == 3


# ------------------------------------------------------------------ liveness
def test_host_goes_down_after_three_missed_heartbeats_and_up_again():
    """Down strictly after 3 heartbeat intervals of silence (once), up on the next heartbeat."""
    fleet = registered(now=100.0)
    events, _, _ = fleet.tick(103.0)
    assert types(events) == [] and fleet.hosts["web01"].alive
    events, _, _ = fleet.tick(103.5)
    assert [e.to_dict() for e in events] == [
        {"type": "host", "host": "web01", "state": "down", "timestamp": 103.5, "last_seen": 100.0}]
    assert not fleet.hosts["web01"].alive
    assert types(fleet.tick(110.0)[0]) == []          # not announced twice
    events, must = fleet.heartbeat(env("heartbeat"), route=b"r", now=111.0)
    assert not must and [e.to_dict() for e in events] == [
        {"type": "host", "host": "web01", "state": "up", "timestamp": 111.0}]
    assert fleet.hosts["web01"].alive


def test_down_host_comes_up_on_a_metric_batch():
    """A batch from a host marked down marks it up, with an up event."""
    fleet = Fleet()
    fleet.ingest(metrics(0), now=100.0)
    fleet.tick(104.0)
    _, events, _ = fleet.ingest(metrics(1), now=105.0)
    assert types(events) == [("host", "up")] and fleet.hosts["web01"].alive


def test_down_host_registering_again_is_up_then_registered():
    """register() of a down host emits up before registered."""
    fleet = registered(now=100.0)
    fleet.tick(200.0)
    events = fleet.register(env("register"), route=b"r", now=201.0)
    assert types(events) == [("host", "up"), ("host", "registered")]


def test_dead_after_follows_the_configured_heartbeat_interval():
    """With heartbeat_interval_s=2 the host is down only after 6 s of silence."""
    fleet = registered(Fleet(FleetConfig(heartbeat_interval_s=2.0)), now=0.0)
    assert fleet.tick(6.0)[0] == []
    assert types(fleet.tick(6.01)[0]) == [("host", "down")]


# ------------------------------------------------------------------ analysis
def test_tick_reports_a_new_bottleneck_once_and_sets_health():
    """A cpu_percent of 99 gives one cpu_bound event (category cpu), critical health, no repeat next tick."""
    fleet = registered(now=100.0)
    fleet.ingest(metrics(0, values=(99.0, 0.0)), now=100.0)
    events, _, _ = fleet.tick(100.5)
    assert [(e.type, e.body["kind"], e.body["severity"], e.body["recommended_strategy"],
             e.body["timestamp"]) for e in events] == \
        [("bottleneck", "cpu_bound", "critical", "process_priority", 100.5)]
    assert events[0].category == "cpu"
    host = fleet.hosts["web01"]
    assert host.health == "critical" and [b.kind for b in host.bottlenecks] == ["cpu_bound"]
    assert fleet.status(101.0)["hosts"][0]["bottlenecks"][0]["kind"] == "cpu_bound"
    assert fleet.tick(101.0)[0] == []


def test_an_io_wait_bottleneck_is_an_io_event():
    """io_wait (CPUs idle waiting on disk) is reported in category io, as the alert rules see it."""
    fleet = registered(now=100.0)
    iowait = wire.pack(["cpu", [["cpu_iowait_percent", "%", {}]]])
    fleet.ingest(metrics(0, values=(45.0,), schema=iowait), now=100.0)
    events, _, _ = fleet.tick(100.5)
    assert [(e.type, e.body["kind"], e.category) for e in events] == [("bottleneck", "io_wait", "io")]


def test_health_reflects_active_budget_violations_without_bottlenecks():
    """An active warning violation (82 over a limit of 80) makes health warning; resolving it, good."""
    fleet = Fleet(FleetConfig(budgets={"memory_percent": 80.0}, budget_for_samples=1))
    fleet.ingest(metrics(0, schema=MEM, values=(82.0,)), now=1.0)
    fleet.tick(1.5)
    assert fleet.hosts["web01"].health == "warning"
    assert fleet.status(1.5)["hosts"][0]["health"] == "warning"
    fleet.ingest(metrics(1, schema=MEM, values=(10.0,)), now=2.0)
    fleet.tick(2.5)
    assert fleet.hosts["web01"].health == "good"


def test_latest_excludes_labelled_series():
    """Analysis reads only unlabeled series' newest values."""
    fleet = Fleet()
    fleet.ingest(metrics(0, values=(12.0, 34.0)), now=1.0)
    assert fleet.latest(fleet.hosts["web01"]) == {"cpu_percent": 12.0}


# ------------------------------------------------------------------ auto-optimize
def auto_fleet(**config):
    fleet = registered(Fleet(FleetConfig(auto_optimize=True, **config)), now=100.0)
    fleet.ingest(metrics(0, values=(99.0, 0.0)), now=100.0)
    return fleet


def test_auto_optimize_is_off_by_default():
    """Without auto_optimize a bottleneck never dispatches a command."""
    fleet = registered(now=100.0)
    fleet.ingest(metrics(0, values=(99.0, 0.0)), now=100.0)
    assert fleet.tick(100.5)[1] == []


def test_auto_optimize_dispatches_the_recommended_strategy():
    """cpu_bound recommends process_priority; the tick returns it as a pending auto command."""
    fleet = auto_fleet()
    _, to_send, _ = fleet.tick(100.5)
    [cmd] = to_send
    assert cmd.id.startswith("auto-") and cmd.host == "web01" and cmd.strategy == "process_priority"
    assert (cmd.params, cmd.operator, cmd.sent_at, cmd.deadline) == ({}, "auto-optimize", 100.5, 110.5)
    assert fleet.commands.pending[cmd.id] is cmd


def test_auto_optimize_is_rate_limited_per_host():
    """A second auto command waits auto_optimize_interval_s after the first."""
    fleet = auto_fleet(auto_optimize_interval_s=300.0, command_timeout_s=1.0)
    assert len(fleet.tick(100.5)[1]) == 1
    for now in (101.0, 200.0, 400.0):
        fleet.heartbeat(env("heartbeat"), route=b"r", now=now)
        assert fleet.tick(now)[1] == [], now
    fleet.heartbeat(env("heartbeat"), route=b"r", now=400.5)
    assert len(fleet.tick(400.5)[1]) == 1


def test_auto_optimize_skips_strategies_the_host_does_not_offer():
    """A recommended strategy missing from the host's registered list is not dispatched."""
    fleet = registered(Fleet(FleetConfig(auto_optimize=True)), now=100.0, strategies=["gc_collect"])
    fleet.ingest(metrics(0, values=(99.0, 0.0)), now=100.0)
    assert fleet.tick(100.5)[1] == []


def test_auto_optimize_skips_unregistered_hosts():
    """A host known only by its metrics gets no auto commands."""
    fleet = Fleet(FleetConfig(auto_optimize=True))
    fleet.ingest(metrics(0, values=(99.0, 0.0)), now=100.0)
    assert fleet.tick(100.5)[1] == []


# ------------------------------------------------------------------ commands
def test_start_command_returns_a_pending_command_with_deadline():
    """A valid command is tracked as pending with deadline now + timeout and its wire body."""
    fleet = registered()
    cmd, reply = fleet.start_command("c1", "web01", "gc_collect", {"generation": 2}, b"op", 100.0, 5.0, "alice")
    assert reply is None
    assert (cmd.id, cmd.host, cmd.strategy, cmd.params, cmd.origin, cmd.sent_at, cmd.deadline,
            cmd.operator) == ("c1", "web01", "gc_collect", {"generation": 2}, b"op", 100.0, 105.0, "alice")
    assert cmd.to_wire() == {"id": "c1", "strategy": "gc_collect", "params": {"generation": 2},
                             "expires": 105.0}
    assert fleet.status(100.0)["pending_commands"] == 1


def test_command_to_unknown_host_is_refused_naming_it_and_the_known_hosts():
    """An unknown host name is refused; the message names it and lists registered hosts."""
    fleet = registered(host="web02")
    fleet.ingest(metrics(0, host="metrics-only"), now=100.0)
    cmd, reply = fleet.start_command("c1", "web01", "gc_collect", {}, None, 100.0, 5.0)
    assert cmd is None
    assert reply == {"id": "c1", "status": "refused",
                     "error": "unknown host 'web01'; known hosts: web02"}


def test_command_when_no_host_is_registered_lists_none():
    """With no registered host the refusal says 'known hosts: none'."""
    _, reply = Fleet().start_command("c1", "web01", "gc_collect", {}, None, 1.0, 5.0)
    assert reply["error"].endswith("known hosts: none")


def test_command_to_down_host_is_refused():
    """A registered host that is down refuses commands instead of waiting for a timeout."""
    fleet = registered(now=100.0)
    fleet.tick(200.0)
    cmd, reply = fleet.start_command("c1", "web01", "gc_collect", {}, None, 200.0, 5.0)
    assert cmd is None and reply == {"id": "c1", "status": "refused", "error": "host 'web01' is down"}


def test_command_with_unknown_strategy_is_refused_listing_available():
    """A strategy the host did not register is refused, naming it and the available ones."""
    fleet = registered()
    cmd, reply = fleet.start_command("c1", "web01", "rm_rf", {}, None, 100.0, 5.0)
    assert cmd is None and reply["status"] == "refused"
    assert reply["error"] == ("unknown strategy 'rm_rf' on host 'web01'; "
                              "available: gc_collect, process_priority")


def test_command_on_host_with_no_strategies_says_none_available():
    """A host that registered an empty strategy list refuses everything, saying 'none'."""
    fleet = registered(strategies=[])
    _, reply = fleet.start_command("c1", "web01", "gc_collect", {}, None, 100.0, 5.0)
    assert reply["error"].endswith("available: none")


def test_command_on_host_without_strategy_list_is_forwarded():
    """When the host did not announce strategies the agent decides, so the command is sent."""
    fleet = registered(strategies=None)
    cmd, reply = fleet.start_command("c1", "web01", "anything", {}, None, 100.0, 5.0)
    assert cmd is not None and reply is None


@pytest.mark.parametrize("params", [[1], "generation=2", None, 3])
def test_command_params_must_be_a_map(params):
    """Params that are not a map are refused before reaching the agent."""
    cmd, reply = registered().start_command("c1", "web01", "gc_collect", params, None, 100.0, 5.0)
    assert cmd is None and reply == {"id": "c1", "status": "refused", "error": "params must be a map"}


def test_in_flight_command_id_is_refused():
    """Reusing the id of a command still in flight is refused, not sent twice."""
    fleet = registered()
    fleet.start_command("c1", "web01", "gc_collect", {}, None, 100.0, 5.0)
    cmd, reply = fleet.start_command("c1", "web01", "gc_collect", {}, None, 100.5, 5.0)
    assert cmd is None and reply == {"id": "c1", "status": "refused",
                                     "error": "command id 'c1' is already in flight"}
    assert len(fleet.commands.pending) == 1


def test_replayed_id_returns_the_cached_result_without_running_again():
    """After a result, the same id returns that result marked replayed and sends nothing."""
    fleet = registered()
    fleet.start_command("c1", "web01", "gc_collect", {}, None, 100.0, 5.0)
    fleet.command_result(env("result", body={"id": "c1", "status": "success", "result": {"n": 1}}), 101.0)
    cmd, reply = fleet.start_command("c1", "web01", "gc_collect", {}, None, 102.0, 5.0)
    assert cmd is None
    assert reply == {"id": "c1", "host": "web01", "strategy": "gc_collect", "status": "success",
                     "result": {"n": 1}, "error": None, "replayed": True}
    assert fleet.commands.pending == {}


def test_command_result_from_the_target_host_finishes_it_with_an_event():
    """The host a command was sent to may answer it: result, finished, command event."""
    fleet = registered()
    fleet.start_command("c1", "web01", "gc_collect", {"g": 1}, b"op", 100.0, 5.0, "alice")
    cmd, result, events = fleet.command_result(
        env("result", body={"id": "c1", "status": "success", "result": {"verdict": "improved"}}), 101.0)
    assert cmd.id == "c1"
    assert result == {"id": "c1", "host": "web01", "strategy": "gc_collect", "status": "success",
                      "result": {"verdict": "improved"}, "error": None}
    assert [e.to_dict() for e in events] == [{
        "type": "command", "host": "web01", "id": "c1", "strategy": "gc_collect", "params": {"g": 1},
        "status": "success", "operator": "alice", "timestamp": 101.0, "error": None,
        "verdict": "improved", "improvement": None, "duration_ms": None, "rolled_back": None}]
    assert fleet.commands.pending == {}
    assert fleet.status(101.0)["hosts"][0]["recent_commands"] == [events[0].body]


def test_command_event_without_a_result_map_has_no_outcome_fields():
    """A result whose 'result' is not a map gives the plain command event."""
    fleet = registered()
    fleet.start_command("c1", "web01", "gc_collect", {}, None, 100.0, 5.0)
    _, _, [event] = fleet.command_result(env("result", body={"id": "c1", "status": "failed", "result": 3}), 101.0)
    assert set(event.body) == {"id", "strategy", "params", "status", "operator", "timestamp", "error"}


def test_command_result_from_another_host_is_ignored():
    """A result naming a command sent to web01 but arriving from web02 changes nothing."""
    fleet = registered()
    registered(fleet, host="web02")
    fleet.start_command("c1", "web01", "gc_collect", {}, None, 100.0, 5.0)
    body = {"id": "c1", "status": "success"}
    assert fleet.command_result(env("result", host="web02", body=body), 101.0) == (None, body, [])
    assert "c1" in fleet.commands.pending


def test_command_result_for_unknown_id_is_ignored():
    """A result for an id that is not pending (late, or invented) returns no command."""
    fleet = registered()
    body = {"id": "nope", "status": "success"}
    assert fleet.command_result(env("result", body=body), 101.0) == (None, body, [])


def test_command_result_without_status_counts_as_failed_and_status_is_text():
    """A missing status is 'failed'; a non-string status is stringified."""
    fleet = registered()
    fleet.start_command("c1", "web01", "gc_collect", {}, None, 100.0, 5.0)
    fleet.start_command("c2", "web01", "gc_collect", {}, None, 100.0, 5.0)
    assert fleet.command_result(env("result", body={"id": "c1"}), 101.0)[1]["status"] == "failed"
    assert fleet.command_result(env("result", body={"id": "c2", "status": 3}), 101.0)[1]["status"] == "3"


@pytest.mark.parametrize("body", [None, [], {"status": "success"}, {"id": 5}])
def test_malformed_command_result_is_bad_body(body):
    """A result body must be a map with a string id; otherwise WireError bad_body."""
    fleet = registered()
    with pytest.raises(WireError) as info:
        fleet.command_result(Envelope("result", "web01", "b1", 0, 0.0, body), 101.0)
    assert info.value.reason == "bad_body"


def test_command_times_out_on_tick_at_its_deadline():
    """tick() at or after the deadline answers the command with a timeout and an event."""
    fleet = registered(Fleet(FleetConfig(heartbeat_interval_s=1000.0)))    # the host stays up
    cmd, _ = fleet.start_command("c1", "web01", "gc_collect", {}, b"op", 100.0, 5.0)
    assert fleet.tick(104.9)[2] == []
    events, _, answers = fleet.tick(105.0)
    assert answers == [(cmd, {"id": "c1", "host": "web01", "strategy": "gc_collect", "status": "timeout",
                              "error": "no result from host 'web01' within the deadline"})]
    assert [(e.type, e.body["status"], e.body["id"]) for e in events] == [("command", "timeout", "c1")]
    assert fleet.commands.pending == {}


def test_late_result_after_timeout_is_ignored_and_replay_gives_the_timeout():
    """Once timed out, a late result changes nothing and a replay returns the timeout."""
    fleet = registered()
    fleet.start_command("c1", "web01", "gc_collect", {}, None, 100.0, 1.0)
    fleet.tick(101.0)
    assert fleet.command_result(env("result", body={"id": "c1", "status": "success"}), 101.5)[0] is None
    _, reply = fleet.start_command("c1", "web01", "gc_collect", {}, None, 102.0, 1.0)
    assert reply["status"] == "timeout" and reply["replayed"] is True


# ------------------------------------------------------------------ hosts cap, bad frames
def test_max_hosts_refuses_new_hosts_and_counts_them():
    """Past max_hosts a new host's batch and register are dropped and counted as hosts_refused."""
    fleet = Fleet(FleetConfig(max_hosts=1))
    fleet.ingest(metrics(0, host="a"), now=1.0)
    assert fleet.ingest(metrics(0, host="b"), now=1.0) == (None, (), False)
    assert fleet.register(env("register", host="c"), route=b"r", now=1.0) == []
    assert fleet.heartbeat(env("heartbeat", host="c"), route=b"r", now=1.0) == ([], True)
    assert list(fleet.hosts) == ["a"] and fleet.counters["hosts_refused"] == 2
    assert fleet.ingest(metrics(1, host="a"), now=2.0)[0] is not None  # known hosts still flow


def test_bad_frames_are_counted_per_reason_globally_and_per_host():
    """count_bad() adds to the fleet's and, for a known host, the host's counters per reason."""
    fleet = Fleet()
    fleet.ingest(metrics(0), now=1.0)
    fleet.count_bad("undecodable")
    fleet.count_bad("bad_kind", "web01")
    fleet.count_bad("bad_kind", "web01")
    fleet.count_bad("bad_kind", "stranger")
    assert fleet.counters["bad_frames"] == 4
    assert fleet.bad_reasons == {"undecodable": 1, "bad_kind": 3}
    host = fleet.hosts["web01"]
    assert host.counters["bad_frames"] == 2 and host.bad_reasons == {"bad_kind": 2}
    assert "stranger" not in fleet.hosts


# ------------------------------------------------------------------ queries
def test_status_has_the_documented_shape():
    """status() lists hosts by name with alive, last seen, health, violations, collectors, counters."""
    fleet = registered(Fleet(FleetConfig(budget_for_samples=1)), host="web02", now=10.0,
                       collectors=[{"kind": "cpu", "pid": 9, "restarts": 0}])
    fleet.ingest(metrics(0, ts=11.0, values=(90.0, 0.0), host="web02"), now=11.0)
    fleet.ingest(metrics(0, host="web01"), now=12.0)
    fleet.count_bad("bad_kind", "web01")
    status = fleet.status(13.0)
    assert set(status) == {"time", "hosts", "counters", "bad_frame_reasons", "pending_commands"}
    assert status["time"] == 13.0 and status["pending_commands"] == 0
    assert [h["name"] for h in status["hosts"]] == ["web01", "web02"]
    w1, w2 = status["hosts"]
    assert set(w2) == {"name", "alive", "last_seen", "first_seen", "boot", "health", "registered",
                       "info", "budget_violations", "recent_violations", "bottlenecks", "collectors",
                       "counters", "bad_frame_reasons", "series", "last_seq", "recent_commands"}
    assert (w2["alive"], w2["last_seen"], w2["first_seen"], w2["registered"]) == (True, 11.0, 10.0, True)
    assert [v["metric"] for v in w2["budget_violations"]] == ["cpu_percent"]
    assert w2["collectors"] == [{"kind": "cpu", "pid": 9, "restarts": 0, "state": None}]
    assert w2["series"] == 2 and w2["info"] == {"strategies": STRATEGIES}
    assert w1["registered"] is False and w1["bad_frame_reasons"] == {"bad_kind": 1}
    assert set(w1["counters"]) == {"batches", "samples", "gaps", "backfilled", "lost_batches",
                                   "missing_batches", "duplicates", "bad_frames", "series_refused"}
    assert (w1["last_seq"], w2["last_seq"]) == (0, 0)
    assert status["counters"] == {"bad_frames": 1, "hosts_refused": 0, "batches": 2, "samples": 4,
                                  "backfilled": 0}
    assert status["bad_frame_reasons"] == {"bad_kind": 1}


def test_status_is_a_copy_not_a_view():
    """Mutating a status dict does not change the fleet."""
    fleet = registered()
    fleet.status(1.0)["hosts"][0]["counters"]["batches"] = 99
    assert fleet.hosts["web01"].counters["batches"] == 0


def test_history_of_unknown_host_is_empty():
    """history() for a host never seen returns an empty list."""
    assert Fleet().history("ghost", "cpu_percent", 0.0) == []


def test_history_since_filters_by_timestamp():
    """history(host, key, since) keeps only samples at or after since."""
    fleet = Fleet()
    for seq, ts in enumerate((1.0, 2.0, 3.0)):
        fleet.ingest(metrics(seq, ts=ts, values=(ts, 0.0)), now=ts)
    assert fleet.history("web01", "cpu_percent", 2.0) == [(2.0, 2.0, False), (3.0, 3.0, False)]


def test_event_to_dict_puts_type_and_host_first_then_body():
    """Event.to_dict() merges type and host with the body; category stays an attribute."""
    ev = Event("gap", "h", {"missing": 1}, "cpu")
    assert ev.to_dict() == {"type": "gap", "host": "h", "missing": 1}
    assert Event("host", "h", {}).category == "-"


# ------------------------------------------------------------------ backfill and gaps
def gap_fleet(**config):
    """web01 (registered, alive for long) with seq 1 at ts 1 and seq 5 at ts 5: owes 2..4."""
    config.setdefault("heartbeat_interval_s", 1000.0)
    fleet = registered(Fleet(FleetConfig(**config)), now=10.0)
    fleet.ingest(metrics(1, ts=1.0, values=(10.0, 0.0)), now=10.0)
    fleet.ingest(metrics(5, ts=5.0, values=(20.0, 0.0)), now=10.0)
    return fleet


def test_backfilled_batch_is_stored_flagged_and_not_budget_checked_and_its_repeat_dropped():
    """An owed seq is accepted as backfilled: flagged in history, no violation, counted; a repeat is a duplicate."""
    fleet = gap_fleet()
    assert fleet.backfill_requests == [("web01", "b1", 2, 4)]
    schema, events, backfilled = fleet.ingest(metrics(3, ts=3.0, values=(99.0, 0.0)), now=11.0)
    assert schema.category == "cpu" and list(events) == [] and backfilled is True
    host = fleet.hosts["web01"]
    assert host.active_violations == {} and host.recent_violations == deque()
    assert fleet.history("web01", "cpu_percent", 0.0) == [(1.0, 10.0, False), (3.0, 99.0, True), (5.0, 20.0, False)]
    assert fleet.latest(host) == {"cpu_percent": 20.0}          # analysis reads live samples only
    assert host.last_ts == 5.0 and host.last_seen == 11.0
    assert host.seq.missing == [[2, 2], [4, 4]]
    c = fleet.status(11.0)["hosts"][0]["counters"]
    assert (c["batches"], c["backfilled"], c["missing_batches"], c["duplicates"]) == (3, 1, 2, 0)
    assert fleet.status(11.0)["counters"]["backfilled"] == 1
    assert fleet.ingest(metrics(3, ts=3.0, values=(99.0, 0.0)), now=12.0) == (None, (), False)
    assert host.counters["duplicates"] == 1 and host.counters["batches"] == 3
    assert len(fleet.history("web01", "cpu_percent", 0.0)) == 3


def test_filled_gap_is_forgotten_on_tick_without_events_or_requests():
    """Once every owed seq arrived, tick drops the gap record and asks for nothing."""
    fleet = gap_fleet()
    fleet.backfill_requests.clear()
    for seq in (2, 3, 4):
        assert fleet.ingest(metrics(seq, ts=float(seq)), now=11.0)[2] is True
    assert fleet.tick(20.0)[0] == []
    host = fleet.hosts["web01"]
    assert host.gaps == [] and fleet.backfill_requests == [] and host.counters["lost_batches"] == 0
    assert [b for _, _, b in fleet.history("web01", "cpu_percent", 0.0)] == [False, True, True, True, False]


def test_gap_is_asked_again_every_backfill_retry_s_for_what_is_still_missing():
    """tick re-requests only the still-missing ranges, backfill_retry_s after the last request."""
    fleet = gap_fleet(backfill_retry_s=3.0, backfill_timeout_s=30.0)
    fleet.backfill_requests.clear()
    fleet.ingest(metrics(3, ts=3.0), now=11.0)
    assert fleet.tick(12.9)[0] == [] and fleet.backfill_requests == []
    assert fleet.tick(13.0)[0] == []
    assert fleet.backfill_requests == [("web01", "b1", 2, 2), ("web01", "b1", 4, 4)]
    fleet.backfill_requests.clear()
    fleet.tick(15.9)
    assert fleet.backfill_requests == []
    fleet.tick(16.0)
    assert fleet.backfill_requests == [("web01", "b1", 2, 2), ("web01", "b1", 4, 4)]
    assert fleet.hosts["web01"].gaps[0].asked == 16.0


def test_dead_host_is_not_asked_again_and_its_gap_waits_for_it():
    """A host marked down gets no backfill requests and its gap is not given up while it is
    down; once it is back, the timeout counts from then."""
    fleet = gap_fleet(heartbeat_interval_s=1.0, backfill_retry_s=3.0, backfill_timeout_s=30.0)
    fleet.backfill_requests.clear()
    assert types(fleet.tick(14.0)[0]) == [("host", "down")]
    fleet.tick(20.0)
    assert fleet.backfill_requests == []
    assert fleet.tick(100.0)[0] == []                    # down for 86 s: nothing given up
    fleet.heartbeat(env("heartbeat"), route=b"r", now=100.5)
    fleet.tick(101.0)
    assert fleet.backfill_requests                       # asked again once it is back
    for now in range(102, 130, 2):                       # up and silent about the gap
        fleet.heartbeat(env("heartbeat"), route=b"r", now=now - 0.5)
        assert fleet.tick(float(now))[0] == [], now
    fleet.heartbeat(env("heartbeat"), route=b"r", now=130.5)
    events = fleet.tick(131.0)[0]
    assert [(e.type, e.body["first_seq"], e.body["last_seq"]) for e in events] == [("gap", 2, 4)]


def test_gap_is_given_up_after_backfill_timeout_s_with_its_time_range():
    """At backfill_timeout_s after detection, what is still missing becomes explicit gap events."""
    fleet = gap_fleet(backfill_retry_s=3.0, backfill_timeout_s=30.0)
    fleet.ingest(metrics(3, ts=3.0), now=11.0)
    assert [e.type for e in fleet.tick(39.9)[0]] == []
    fleet.backfill_requests.clear()
    events = fleet.tick(40.0)[0]
    assert [e.to_dict() for e in events] == [
        {"type": "gap", "host": "web01", "first_seq": 2, "last_seq": 2, "missing": 1, "start": 1.0,
         "end": 5.0, "timestamp": 40.0, "reason": "not in the agent's spool"},
        {"type": "gap", "host": "web01", "first_seq": 4, "last_seq": 4, "missing": 1, "start": 1.0,
         "end": 5.0, "timestamp": 40.0, "reason": "not in the agent's spool"}]
    host = fleet.hosts["web01"]
    c = fleet.status(40.0)["hosts"][0]["counters"]
    assert (c["lost_batches"], c["missing_batches"], c["backfilled"], c["gaps"]) == (2, 0, 1, 1)
    assert host.gaps == [] and fleet.backfill_requests == []
    assert fleet.tick(80.0)[0] == []                                   # reported once
    assert fleet.ingest(metrics(2, ts=2.0), now=81.0) == (None, (), False)   # too late: a duplicate
    assert host.counters["duplicates"] == 1


def test_backfill_unavailable_gives_up_at_once_on_the_named_range_only():
    """The agent saying [first, last] is gone turns the owed part of it into gap events now."""
    fleet = gap_fleet()
    events = fleet.backfill_unavailable("web01", "b1", 1, 3, now=12.0)
    assert [e.to_dict() for e in events] == [
        {"type": "gap", "host": "web01", "first_seq": 2, "last_seq": 3, "missing": 2, "start": 1.0,
         "end": 5.0, "timestamp": 12.0, "reason": "not in the agent's spool"}]
    host = fleet.hosts["web01"]
    assert host.seq.missing == [[4, 4]] and host.counters["lost_batches"] == 2
    assert fleet.backfill_unavailable("web01", "b1", 2, 3, now=13.0) == []      # already given up
    assert fleet.backfill_unavailable("web01", "other-boot", 4, 4, now=13.0) == []
    assert fleet.backfill_unavailable("ghost", "b1", 4, 4, now=13.0) == []
    assert host.seq.missing == [[4, 4]]
    assert fleet.ingest(metrics(4, ts=4.0), now=14.0)[2] is True
    assert fleet.tick(15.0)[0] == [] and host.gaps == []


def test_boot_change_gives_up_the_old_boots_missing_ranges():
    """A new boot id ends the old stream: what it still owed is reported lost, with its time range."""
    fleet = gap_fleet()
    schema, events, backfilled = fleet.ingest(metrics(1, ts=6.0, boot="b2"), now=12.0)
    assert schema is not None and backfilled is False
    assert [e.to_dict() for e in events] == [
        {"type": "gap", "host": "web01", "first_seq": 2, "last_seq": 4, "missing": 3, "start": 1.0,
         "end": 5.0, "timestamp": 12.0, "reason": "not in the agent's spool"}]
    host = fleet.hosts["web01"]
    c = fleet.status(12.0)["hosts"][0]["counters"]
    assert (c["lost_batches"], c["missing_batches"], c["duplicates"]) == (3, 0, 0)
    assert host.gaps == [] and fleet.tick(14.0)[0] == []


def test_old_boots_gap_record_never_times_out_the_new_boots_gap():
    """A gap of the new boot over the same seqs is chased for its own full timeout, with its own times."""
    fleet = gap_fleet(backfill_timeout_s=30.0)                       # b1 owes 2..4, detected at 10
    fleet.ingest(metrics(1, ts=6.0, boot="b2"), now=20.0)
    fleet.ingest(metrics(5, ts=10.0, boot="b2"), now=25.0)           # b2 owes 2..4, detected at 25
    assert fleet.tick(40.0)[0] == []
    assert fleet.hosts["web01"].seq.missing == [[2, 4]]
    events = fleet.tick(55.0)[0]
    assert [(e.body["first_seq"], e.body["last_seq"], e.body["start"], e.body["end"]) for e in events] == \
        [(2, 4, 6.0, 10.0)]


def test_owed_ranges_past_max_ranges_are_given_up_oldest_first():
    """More gaps than SeqTracker.max_ranges: the oldest owed range becomes a gap event at once."""
    fleet = Fleet()
    fleet.ingest(metrics(1, ts=1.0), now=1.0)
    fleet.hosts["web01"].seq.max_ranges = 2
    fleet.ingest(metrics(3, ts=3.0), now=3.0)
    fleet.ingest(metrics(5, ts=5.0), now=5.0)
    _, events, _ = fleet.ingest(metrics(7, ts=7.0), now=7.0)
    assert [(e.body["first_seq"], e.body["start"], e.body["end"]) for e in events] == [(2, 1.0, 3.0)]
    assert fleet.hosts["web01"].seq.missing == [[4, 4], [6, 6]]
    assert fleet.backfill_requests == [("web01", "b1", 2, 2), ("web01", "b1", 4, 4), ("web01", "b1", 6, 6)]


# ------------------------------------------------------------------ command rate limits
def test_commands_over_the_per_host_rate_are_busy_until_tokens_refill():
    """With 2 commands per host per minute, the third is busy; 30 s later one more is allowed."""
    fleet = registered(Fleet(FleetConfig(commands_per_host_per_min=2, heartbeat_interval_s=1000.0)))
    assert fleet.start_command("c1", "web01", "gc_collect", {}, None, 100.0, 5.0, "alice")[1] is None
    assert fleet.start_command("c2", "web01", "gc_collect", {}, None, 100.0, 5.0, "bob")[1] is None
    cmd, reply = fleet.start_command("c3", "web01", "gc_collect", {}, None, 100.0, 5.0, "carol")
    assert cmd is None and reply == {
        "id": "c3", "status": "busy",
        "error": "busy: host 'web01' already had 2 commands in the last minute; try again later"}
    assert "c3" not in fleet.commands.pending
    assert fleet.start_command("c4", "web01", "gc_collect", {}, None, 129.9, 5.0, "carol")[1]["status"] == "busy"
    assert fleet.start_command("c5", "web01", "gc_collect", {}, None, 160.0, 5.0, "carol")[1] is None
    registered(fleet, host="web02", now=160.0)
    assert fleet.start_command("c6", "web02", "gc_collect", {}, None, 160.0, 5.0, "carol")[1] is None


def test_commands_over_the_per_operator_rate_are_busy_for_that_operator_only():
    """With 1 command per operator per minute, alice's second is busy while bob's first goes through."""
    fleet = registered(Fleet(FleetConfig(commands_per_operator_per_min=1)))
    assert fleet.start_command("c1", "web01", "gc_collect", {}, None, 100.0, 5.0, "alice")[1] is None
    cmd, reply = fleet.start_command("c2", "web01", "gc_collect", {}, None, 100.0, 5.0, "alice")
    assert cmd is None and reply == {
        "id": "c2", "status": "busy",
        "error": "busy: operator 'alice' is over 1 commands per minute; try again later"}
    assert fleet.start_command("c3", "web01", "gc_collect", {}, None, 100.0, 5.0, "bob")[1] is None
    assert fleet.start_command("c4", "web01", "gc_collect", {}, None, 160.0, 5.0, "alice")[1] is None


# ------------------------------------------------------------------ restart from persisted state
def test_resumed_host_is_down_and_still_owed_its_missing_ranges():
    """resume_host() restores a host as down, with its stream position and owed ranges to chase."""
    fleet = Fleet(FleetConfig(heartbeat_interval_s=1000.0, backfill_retry_s=3.0, backfill_timeout_s=30.0))
    fleet.resume_host("web01", "b1", 10, [(4, 5)], {"strategies": ["gc_collect"], "secret": 1},
                      first_seen=1.0, last_seen=50.0, now=100.0)
    host = fleet.hosts["web01"]
    assert (host.alive, host.first_seen, host.last_seen, host.info) == (False, 1.0, 50.0, {"strategies": ["gc_collect"]})
    assert (host.seq.boot, host.seq.last, host.seq.missing) == ("b1", 10, [[4, 5]])
    status = fleet.status(100.0)["hosts"][0]
    assert (status["last_seq"], status["counters"]["missing_batches"], status["alive"]) == (10, 2, False)
    assert fleet.tick(101.0)[0] == [] and fleet.backfill_requests == []          # down: not asked
    _, events, _ = fleet.ingest(metrics(11, ts=60.0), now=102.0)
    assert types(events) == [("host", "up")] and host.counters["gaps"] == 0
    fleet.tick(102.5)
    assert fleet.backfill_requests == [("web01", "b1", 4, 5)]                   # asked at once when back
    assert fleet.ingest(metrics(5, ts=55.0), now=103.0)[2] is True
    assert fleet.tick(130.0)[0] == []        # the second it spent down (100..101) does not count
    events = fleet.tick(131.0)[0]
    assert [e.to_dict() for e in events] == [
        {"type": "gap", "host": "web01", "first_seq": 4, "last_seq": 4, "missing": 1, "start": None,
         "end": 50.0, "timestamp": 131.0, "reason": "not in the agent's spool"}]


def test_resume_host_past_max_hosts_is_ignored():
    """A persisted host that does not fit under max_hosts is not restored."""
    fleet = Fleet(FleetConfig(max_hosts=0))
    fleet.resume_host("web01", "b1", 10, [], {}, 1.0, 2.0, 3.0)
    assert fleet.hosts == {} and fleet.counters["hosts_refused"] == 1


def test_auto_optimize_policy_overrides_the_recommendation_with_its_params_and_interval():
    """A configured policy for cpu_bound picks its own strategy, params and interval."""
    calls = []

    def policies(host, kind):
        calls.append((host, kind))
        return [("gc_collect", {"generation": 1}, 50.0)] if kind == "cpu_bound" else []

    fleet = auto_fleet(auto_policies=policies, command_timeout_s=1.0)
    fleet.hosts["web01"].info["strategies"] = ["gc_collect", "process_priority"]
    [cmd] = fleet.tick(100.5)[1]
    assert (cmd.strategy, cmd.params) == ("gc_collect", {"generation": 1})
    assert ("web01", "cpu_bound") in calls
    fleet.heartbeat(env("heartbeat"), route=b"r", now=140.0)
    assert fleet.tick(140.0)[1] == []               # within the policy's 50 s
    fleet.heartbeat(env("heartbeat"), route=b"r", now=151.0)
    assert [c.strategy for c in fleet.tick(151.0)[1]] == ["gc_collect"]


def test_a_command_in_flight_when_its_host_goes_down_ends_unknown_outcome():
    """Never 'success' and not a plain timeout: the agent may or may not have run it."""
    fleet = registered(Fleet(FleetConfig(heartbeat_interval_s=1.0)), now=100.0, incarnation="p1")
    cmd, reply = fleet.start_command("c1", "web01", "gc_collect", {}, b"op", 100.0, 60.0)
    assert reply is None
    events, _, answers = fleet.tick(104.0)
    assert types(events)[0] == ("host", "down")
    [(done, result)] = answers
    assert done is cmd and result["status"] == "unknown_outcome"
    assert "went down" in result["error"] and "may or may not have run" in result["error"]
    assert fleet.commands.known("c1")["status"] == "unknown_outcome"


def test_an_agent_restart_ends_its_in_flight_commands_unknown_outcome():
    """A registration from a new agent process orphans the commands the old one had."""
    fleet = registered(now=100.0, incarnation="p1")
    fleet.start_command("c1", "web01", "gc_collect", {}, b"op", 100.0, 60.0)
    registered(fleet, now=101.0, incarnation="p1")            # same process registering again
    assert fleet.tick(101.5)[2] == []
    registered(fleet, now=102.0, incarnation="p2")            # a new process
    [(cmd, result)] = fleet.tick(102.5)[2]
    assert cmd.id == "c1" and result["status"] == "unknown_outcome" and "restarted" in result["error"]
