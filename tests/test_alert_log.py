"""The alert log: violation rows folded into one entry per alert, served by the api a page at a
time, listed by `perfmesh alerts`, acknowledged by `perfmesh alerts ack ID`."""

import getpass
import json

import pytest

from perfmesh.errors import WireError
from perfmesh.mesh import admission
from perfmesh.model.alertquery import AlertQuery
from perfmesh.store.alertlog import ack_record, fold, page
from perfmesh.store.database import Store
from tests.waiting import wait_until


def fire(metric, ts, value=90.0, severity="warning", started=None):
    return {"metric": metric, "state": "firing", "value": value, "limit": 80.0, "severity": severity,
            "timestamp": ts, "category": "cpu", **({} if started is None else {"started": started})}


def resolve(metric, ts, value=10.0):
    return {"metric": metric, "state": "resolved", "value": value, "limit": 80.0, "severity": "warning",
            "timestamp": ts}


ROWS = [(1, "a", fire("cpu_percent", 12.0, started=10.0)), (2, "b", fire("memory_percent", 20.0)),
        (3, "a", fire("cpu_percent", 15.0, 110.0, "critical", started=10.0)),
        (4, "a", resolve("cpu_percent", 40.0)), (5, "a", ack_record(1, "alice", 50.0)),
        (6, "a", fire("cpu_percent", 60.0)), (7, "a", ack_record(1, "bob", 70.0))]


def test_rows_fold_into_one_entry_per_alert_with_duration_peak_and_first_ack():
    e = {x["id"]: x for x in fold(ROWS, now=100.0)}
    assert sorted(e) == [1, 2, 6]
    assert (e[1]["fired"], e[1]["resolved"], e[1]["duration_s"], e[1]["active"]) == (10.0, 40.0, 30.0, False)
    assert (e[1]["severity"], e[1]["value"], e[1]["peak"], e[1]["acked_by"], e[1]["acked_at"]) == \
        ("critical", 90.0, 110.0, "alice", 50.0)
    assert (e[2]["active"], e[2]["duration_s"], e[2]["acked_by"]) == (True, 80.0, None)


def test_an_alert_whose_end_was_never_recorded_is_closed_by_a_new_firing_of_the_same_metric():
    rows = [(1, "a", fire("cpu_percent", 12.0, started=10.0)), (2, "a", fire("cpu_percent", 80.0, started=78.0))]
    old, new = fold(rows, now=100.0)
    assert (old["active"], old["resolved"], old["duration_s"]) == (False, None, None)
    assert (new["id"], new["active"], new["duration_s"]) == (2, True, 22.0)
    assert [e["id"] for e in page([old, new], AlertQuery(since=50.0))[0]] == [2]


def test_pages_are_newest_first_and_filter_by_host_since_and_active():
    entries = fold(ROWS, now=100.0)
    first, cursor = page(entries, AlertQuery(limit=2))
    assert [x["id"] for x in first] == [6, 2] and cursor == 2
    rest, cursor = page(entries, AlertQuery(limit=2, before=2))
    assert [x["id"] for x in rest] == [1] and cursor is None
    assert [x["id"] for x in page(entries, AlertQuery(host="a"))[0]] == [6, 1]
    assert [x["id"] for x in page(entries, AlertQuery(active=True))[0]] == [6, 2]
    assert [x["id"] for x in page(entries, AlertQuery(since=45.0))[0]] == [6, 2]    # 1 resolved at 40


def test_the_store_answers_pages_and_finds_an_alerts_host(tmp_path):
    store = Store(tmp_path / "state.db")
    for _, host, rec in ROWS:
        store.add_violation(host, rec)
    alerts, cursor = store.alert_log(AlertQuery(limit=1), now=100.0)
    assert [a["id"] for a in alerts] == [6] and cursor == 6
    assert store.alert_host(2) == "b" and store.alert_host(5) is None and store.alert_host(99) is None
    store.close()


@pytest.mark.parametrize("body", [{"since": "x"}, {"active": 1}, {"limit": 0}, {"limit": 5000},
                                  {"before": 1.5}, {"host": 3}])
def test_a_malformed_alerts_request_is_refused(body):
    with pytest.raises(WireError, match="alerts needs"):
        admission.alerts_query({"op": "alerts", **body})


def test_the_text_log_has_one_aligned_line_per_alert_with_state_and_ack():
    from perfmesh.views.alertlog import format_alert_log
    lines = format_alert_log(fold(ROWS, now=100.0)[::-1]).splitlines()
    assert lines[0].split() == ["ID", "FIRED", "HOST", "METRIC", "SEVERITY", "VALUE", "LIMIT", "DURATION", "ACK"]
    assert lines[1].split()[0] == "6" and lines[1].split()[-3:] == ["40s", "(active)", "-"]
    assert lines[3].split()[0] == "1" and lines[3].split()[-2:] == ["30s", "alice"]
    assert lines[1].index("cpu_percent") == lines[3].index("cpu_percent")          # aligned
    assert "\x1b" not in format_alert_log([{**fold(ROWS, 100.0)[0], "host": "a\x1b[31m"}])


@pytest.mark.parametrize("body, ok", [({"id": 3}, True), ({"id": 0}, False), ({"id": "3"}, False), ({}, False)])
def test_an_ack_names_an_alert_id(body, ok):
    if ok:
        assert admission.ack_id(body) == 3
    else:
        with pytest.raises(WireError, match="ack needs id"):
            admission.ack_id(body)
    assert admission.operator_name({"operator": "x" * 100}, ("", "")) == "x" * 64
    assert admission.operator_name({"operator": "x"}, ("operators", "alice")) == "alice"


# ------------------------------------------------------------ real processes
def cli_json(mesh, *args):
    res = mesh.cli(*args)
    assert res.returncode == 0, res.stderr
    return [json.loads(line) for line in res.stdout.splitlines()]


def poll(what, fn, timeout_s=30.0):
    return wait_until(fn, timeout_s, what, poll_s=0.2)


@pytest.mark.multiprocess
def test_a_violation_that_fired_and_resolved_is_listed_with_its_duration_and_can_be_acked(mesh, tmp_path):
    from tests.recordings import write_recording
    path = write_recording(tmp_path / "demo.rec", seconds=10, breach=(2, 7))
    mesh.aggregator("--replay", str(path), "--budget", "cpu_percent=50")
    alerts = poll("a resolved alert in the log", lambda: [
        a for a in cli_json(mesh, "alerts", "--since", "10m", "--json") if a["resolved"] is not None])
    (a,) = alerts
    assert (a["host"], a["metric"], a["value"], a["limit"], a["active"]) == ("web01", "cpu_percent", 85.0, 50.0, False)
    assert 3.0 <= a["duration_s"] <= 10.0 and a["acked_by"] is None      # 5 s of breach, re-stamped
    assert cli_json(mesh, "alerts", "--active", "--json") == []
    res = mesh.cli("alerts", "ack", str(a["id"]))
    assert res.returncode == 0 and f"alert {a['id']} on web01 acknowledged" in res.stdout, res.stderr
    poll("the acknowledgement", lambda: cli_json(mesh, "alerts", "--json")[0]["acked_by"] == getpass.getuser())
    table = mesh.cli("alerts", "--host", "web01").stdout.splitlines()
    assert table[0].split()[:4] == ["ID", "FIRED", "HOST", "METRIC"] and "cpu_percent" in table[1]
    res = mesh.cli("alerts", "ack", "999")
    assert res.returncode == 1 and res.stderr.strip() == "perfmesh: alerts: ack 999: no alert with id 999 in the log"
