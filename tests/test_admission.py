"""Tests for perfmesh.mesh.admission: which peer may send what, and which bodies are accepted."""

import pytest

from perfmesh.errors import WireError
from perfmesh.mesh import admission
from perfmesh.mesh.admission import BackfillMissing, CommandRequest, HistoryQuery
from perfmesh.protocol.wire import Envelope


def env(kind="metrics", host="web01", body=None):
    return Envelope(kind, host, "b1", 0, 0.0, body if body is not None else {})


def reason(fn, *args):
    with pytest.raises(WireError) as info:
        fn(*args)
    return info.value.reason, str(info.value)


# ------------------------------------------------------------------ agents
def test_an_agent_speaks_only_in_the_name_its_key_is_filed_under():
    """Key 'web01' may send as web01; not as db01; a key not allowed may not send at all."""
    admission.check_agent(("agents", "web01"), env(host="web01"))
    assert reason(admission.check_agent, ("agents", "web01"), env(host="db01")) == (
        "identity_mismatch", "identity_mismatch: key of agent 'web01' sent a frame in the name of host 'db01'")
    assert reason(admission.check_agent, None, env())[0] == "unauthenticated"


def test_ingest_takes_metrics_only_and_control_its_five_kinds():
    """A command or request on ingest/control is refused with the kinds it takes."""
    admission.check_ingest(env("metrics"))
    assert reason(admission.check_ingest, env("register")) == (
        "bad_kind", "bad_kind: ingest accepts metrics only, got 'register'")
    for kind in ("register", "heartbeat", "metrics", "reply", "result"):
        admission.check_control(env(kind))
    assert reason(admission.check_control, env("command")) == (
        "bad_kind", "bad_kind: control accepts register, heartbeat, metrics, reply and result, got 'command'")


def test_a_control_reply_must_name_the_missing_backfill_range():
    """backfill_missing [first, last] with the boot; anything else is a bad body."""
    assert admission.backfill_missing({"backfill_missing": [3, 7], "boot": "b1"}) == BackfillMissing("b1", 3, 7)
    assert admission.backfill_missing({"backfill_missing": [3, 7]}) == BackfillMissing("None", 3, 7)
    for body in (None, {}, {"backfill_missing": [3]}, {"backfill_missing": [3, 7.0]}, {"backfill_missing": "3-7"}):
        assert reason(admission.backfill_missing, body)[0] == "bad_body"


def test_a_result_names_its_command_by_a_string_id():
    assert admission.result_id({"id": "c1", "status": "success"}) == "c1"
    for body in (None, [], {"id": 1}, {}):
        assert reason(admission.result_id, body) == ("bad_body", "bad_body: a result body must be a map with a string id")


def test_registration_keeps_known_fields_of_their_types_only():
    """Unknown keys, wrong types, long strings and bad strategy lists are left out."""
    body = {"cpu_count": 4, "memory_total_bytes": 1 << 33, "platform": "Linux", "python": "3.11",
            "interval_s": 1, "strategies": ["gc_collect"], "commands": True, "evil": "x"}
    assert admission.register_info(body) == {k: v for k, v in body.items() if k != "evil"}
    assert admission.register_info({"cpu_count": True, "platform": "x" * 257, "interval_s": float("nan"),
                                    "strategies": ["ok", 5], "commands": 1}) == {}
    assert admission.register_info({"strategies": ["s" * 65]}) == {}
    assert admission.register_info({"strategies": ["s"] * 1025}) == {}


def test_incarnation_is_a_short_string_or_none():
    assert admission.incarnation({"incarnation": "i" * 64}) == "i" * 64
    assert admission.incarnation({"incarnation": "i" * 65}) is None
    assert admission.incarnation({"incarnation": 7}) is None and admission.incarnation({}) is None


def test_collectors_are_at_most_sixteen_records_of_plain_values():
    """Known keys only; non-plain values become None; non-maps are skipped."""
    raw = [{"kind": "cpu", "pid": 12, "restarts": 0, "state": "running", "extra": 1},
           {"kind": ["x"], "pid": 1 << 70, "restarts": float("inf")}, "junk"]
    assert admission.collectors(raw) == [
        {"kind": "cpu", "pid": 12, "restarts": 0, "state": "running"},
        {"kind": None, "pid": None, "restarts": None, "state": None}]
    assert len(admission.collectors([{"kind": "cpu"}] * 40)) == 16
    assert admission.collectors({"kind": "cpu"}) == []


# -------------------------------------------------------------- operators
def test_the_api_takes_request_maps_from_allowed_keys_only():
    """A key not allowed is refused before decoding; a non-request is a bad kind."""
    assert reason(admission.check_api_sender, None)[0] == "unauthenticated"
    admission.check_api_sender(("subscribers", "grafana"))
    assert admission.api_request(env("request", body={"op": "status"})) == {"op": "status"}
    assert reason(admission.api_request, env("request", body=[1]))[0] == "bad_kind"
    assert reason(admission.api_request, env("command", body={"op": "status"}))[0] == "bad_kind"


def test_api_ops_are_status_history_and_command():
    assert [admission.api_op({"op": op}) for op in ("status", "history", "command")] == ["status", "history", "command"]
    assert reason(admission.api_op, {"op": "shutdown"}) == (
        "bad_op", "bad_op: unknown api op 'shutdown'; expected status, history, command, alerts or ack")


def test_history_needs_host_key_and_a_numeric_since():
    assert admission.history_query({"host": "h", "key": "cpu_percent"}) == HistoryQuery("h", "cpu_percent", 0.0)
    assert admission.history_query({"host": "h", "key": "k", "since": 5}) == HistoryQuery("h", "k", 5.0)
    for body in ({"key": "k"}, {"host": "h", "key": 1}, {"host": "h", "key": "k", "since": "now"}):
        assert reason(admission.history_query, body)[0] == "bad_body"


def test_only_operators_may_send_commands_and_anyone_when_security_is_off():
    """Subscribers are forbidden by name and role; operators and the insecure mode are not."""
    assert admission.command_forbidden(("subscribers", "grafana")) == \
        "forbidden: key 'grafana' has role subscribers; only operators may send commands"
    assert admission.command_forbidden(("operators", "alice")) is None
    assert admission.command_forbidden(("", "")) is None


def test_a_command_request_is_typed_with_its_operator_from_the_key():
    """The key's name is the operator; without security, the (clipped) name the request gives."""
    body = {"id": "c1", "host": "web01", "strategy": "gc_collect", "params": {"generation": 1},
            "timeout_s": 5, "operator": "mallory"}
    assert admission.command_request(body, ("operators", "alice"), 10.0) == CommandRequest(
        "c1", "web01", "gc_collect", {"generation": 1}, 5.0, "alice")
    insecure = admission.command_request({**body, "operator": "o" * 100}, ("", ""), 10.0)
    assert insecure.operator == "o" * 64
    defaults = admission.command_request({"id": "c1", "host": "h", "strategy": "s"}, ("", ""), 10.0)
    assert (defaults.params, defaults.timeout_s, defaults.operator) == ({}, 10.0, "")


@pytest.mark.parametrize("change", [{"id": 1}, {"host": None}, {"strategy": ["s"]}, {"timeout_s": 0},
                                    {"timeout_s": 3601}, {"timeout_s": "5"}])
def test_a_command_request_without_strings_or_with_a_bad_timeout_is_a_bad_body(change):
    body = {"id": "c1", "host": "web01", "strategy": "gc_collect", **change}
    assert reason(admission.command_request, body, ("", ""), 10.0) == (
        "bad_body", "bad_body: command needs id, host, strategy (strings) and 0 < timeout_s <= 3600")
