"""workers.alerts: webhook and Alertmanager delivery against a local HTTP receiver."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from perfmesh.rules.alerting import Alert, AlertEngine, AlertRule
from perfmesh.mesh.fleet import Event
from tests.waiting import wait_until
from workers.alerts import (
    AlertmanagerTarget, AlertSink, HttpOutbox, WebhookTarget, am_alert, rfc3339)


class Receiver:
    """A loopback HTTP server answering each POST with the next scripted status (then 200)."""

    def __init__(self, statuses=()):
        self.statuses = list(statuses)
        self.requests: list[tuple[float, int, str, object]] = []   # (time, status, path, body)
        self.lock = threading.Lock()
        recv = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with recv.lock:
                    status = recv.statuses.pop(0) if recv.statuses else 200
                    recv.requests.append((time.monotonic(), status, self.path, body))
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, n, timeout=10.0):
        def arrived():
            with self.lock:
                return list(self.requests) if len(self.requests) >= n else None
        return wait_until(arrived, timeout, f"{n} requests arriving", poll_s=0.01)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made = []

    def make(statuses=()):
        r = Receiver(statuses)
        made.append(r)
        return r
    yield make
    for r in made:
        r.close()


def alert(state="firing", severity="warning", ts=100.0, **kw):
    base = dict(name="budget_violation", host="web01", metric="memory_percent", severity=severity,
                state=state, value=91.5, threshold=85.0, category="memory", started_at=100.0,
                timestamp=ts, source="budget", summary="memory_percent on web01 over its budget")
    return Alert(**{**base, **kw})


def test_webhook_retries_with_backoff_until_accepted(receiver):
    """Two 500s then 200: three identical POSTs, waits doubling from backoff_s (at least once)."""
    r = receiver([500, 503])
    target = WebhookTarget(r.url + "/hook", backoff_s=0.1, max_backoff_s=1.0)
    target.deliver([alert()], 100.0)
    reqs = r.wait(3)
    target.close()
    assert [s for _, s, _, _ in reqs] == [500, 503, 200]
    bodies = [b for _, _, _, b in reqs]
    assert bodies[0] == bodies[1] == bodies[2]          # the same alert id on every retry
    assert bodies[0]["version"] == 1 and bodies[0]["source"] == "perfmesh"
    [sent] = bodies[0]["alerts"]
    assert (sent["host"], sent["metric"], sent["state"], sent["severity"], sent["value"]) == \
        ("web01", "memory_percent", "firing", "warning", 91.5)
    assert len(sent["id"]) == 32
    gaps = [reqs[i + 1][0] - reqs[i][0] for i in range(2)]
    assert 0.09 <= gaps[0] < 0.6 and 0.19 <= gaps[1] < 1.0 and gaps[1] > gaps[0]
    assert target.outbox.stats["sent"] == 1 and target.outbox.stats["retries"] == 2
    assert reqs[0][2] == "/hook"


def test_webhook_sends_firing_then_resolved_in_order(receiver):
    """A firing and its resolved alert both arrive, in order."""
    r = receiver()
    target = WebhookTarget(r.url)
    target.deliver([alert()], 100.0)
    target.deliver([alert("resolved", ts=130.0, value=40.0)], 130.0)
    target.tick(131.0)
    reqs = r.wait(1)
    wait_until(lambda: sum(len(b["alerts"]) for _, _, _, b in r.requests) >= 2, 5, "2 deliveries", poll_s=0.01)
    target.close()
    states = [a["state"] for _, _, _, b in r.requests for a in b["alerts"]]
    assert states == ["firing", "resolved"] and reqs


def test_unreachable_receiver_is_retried_until_it_comes_up(receiver):
    """Connection refused is retried; once a server listens on the port the alert arrives."""
    r = receiver()
    port = r.server.server_address[1]
    r.close()
    target = WebhookTarget(f"http://127.0.0.1:{port}", backoff_s=0.05, max_backoff_s=0.2)
    target.deliver([alert()], 100.0)
    wait_until(lambda: target.outbox.stats["retries"] >= 2, 5, "two retries", poll_s=0.01)
    assert target.outbox.stats["retries"] >= 2 and target.outbox.pending == 1
    r2 = Receiver()
    r2.server.server_close()
    from http.server import ThreadingHTTPServer as S
    r2.server = S(("127.0.0.1", port), r2.server.RequestHandlerClass)
    threading.Thread(target=r2.server.serve_forever, daemon=True).start()
    try:
        r2.wait(1)
        target.close()
        assert target.outbox.stats["sent"] == 1
    finally:
        r2.close()


def test_client_errors_are_dropped_not_retried(receiver):
    """A 400 is permanent: the batch is dropped and counted, the next alert still goes."""
    r = receiver([400])
    target = WebhookTarget(r.url, backoff_s=0.05)
    target.deliver([alert()], 100.0)
    r.wait(1)
    target.deliver([alert(host="web02")], 101.0)
    reqs = r.wait(2)
    target.close()
    assert [s for _, s, _, _ in reqs] == [400, 200]
    assert target.outbox.stats["dropped_rejected"] == 1 and target.outbox.stats["sent"] == 1


def test_outbox_is_bounded_dropping_the_oldest():
    """A full outbox drops its oldest items and counts them."""
    box = HttpOutbox("http://127.0.0.1:9/never", max_queue=3, backoff_s=10.0, timeout_s=0.2)
    box.put(range(5))
    assert box.stats["dropped_full"] == 2
    assert [item for _, item in box._items] == [2, 3, 4]
    box.close(timeout_s=0.0)


def test_am_alert_shape():
    """Alertmanager v2 postable alert: labels for grouping and silencing, RFC 3339 times."""
    a = alert(metric="disk_busy_percent{device=sda}", labels={"device": "sda", "empty": ""},
              name="disk-busy", source="rule", category="io")
    assert am_alert(a, 160.0) == {
        "labels": {"alertname": "disk-busy", "host": "web01", "metric": "disk_busy_percent",
                   "severity": "warning", "category": "io", "source": "rule", "device": "sda",
                   "series": "disk_busy_percent{device=sda}"},
        "annotations": {"summary": "memory_percent on web01 over its budget", "value": "91.5",
                        "threshold": "85"},
        "startsAt": "1970-01-01T00:01:40.000Z", "endsAt": "1970-01-01T00:02:40.000Z"}
    bare = am_alert(alert(value=None, threshold=None, summary="", category=""), 1.0)
    assert bare["annotations"] == {"summary": "budget_violation on web01"}
    assert bare["labels"]["category"] == "-"
    assert rfc3339(1.5) == "1970-01-01T00:00:01.500Z"


def test_alertmanager_target_resends_firing_and_sends_resolved(receiver):
    """Firing goes at once with endsAt 4 resends ahead; tick re-sends it; resolved ends it."""
    r = receiver()
    am = AlertmanagerTarget(r.url + "/", resend_s=10.0)
    am.deliver([alert()], 100.0)
    r.wait(1)
    am.tick(105.0)                     # first tick re-sends (last_resend starts at 0)
    r.wait(2)
    am.tick(110.0)                     # within resend_s: nothing
    am.deliver([alert("resolved", ts=111.0)], 111.0)
    am.tick(116.0)                     # nothing active any more
    reqs = r.wait(3)
    time.sleep(0.1)                    # the behaviour: no fourth request follows
    am.close()
    assert len(r.requests) == 3
    assert all(path == "/api/v2/alerts" for _, _, path, _ in reqs)
    ends = [b[0]["endsAt"] for _, _, _, b in reqs]
    assert ends == [rfc3339(140.0), rfc3339(145.0), rfc3339(111.0)]


def test_alertmanager_severity_change_ends_the_old_alert(receiver):
    """An escalation ends the warning alert (endsAt now) and starts the critical one."""
    r = receiver()
    am = AlertmanagerTarget(r.url, resend_s=60.0)
    am.deliver([alert()], 100.0)
    am.deliver([alert(severity="critical", previous_severity="warning", ts=101.0)], 101.0)
    r.wait(1)
    wait_until(lambda: sum(len(b) for *_, b in r.requests) >= 3, 5, "3 deliveries", poll_s=0.01)
    am.close()
    sent = [(x["labels"]["severity"], x["endsAt"]) for *_, b in r.requests for x in b]
    assert sent == [("warning", rfc3339(340.0)), ("warning", rfc3339(101.0)),
                    ("critical", rfc3339(341.0))]
    assert list(am.active) == [("budget_violation", "web01", "memory_percent", "critical")]


def test_sink_turns_events_and_snapshots_into_deliveries(receiver):
    """The sink filters violation events on the loop thread and delivers from its own."""
    r = receiver()
    engine = AlertEngine([AlertRule("cpu-high", "cpu_percent", warning=50.0)])
    sink = AlertSink(engine, [WebhookTarget(r.url)])
    assert sink.needs_latest
    sink.on_events([Event("host", "h", {"state": "up"})], 1.0)
    sink.on_events([Event("violation", "h", {"metric": "memory_percent", "value": 99.0, "limit": 85.0,
                                             "severity": "critical", "state": "firing",
                                             "timestamp": 1.0}, "memory")], 1.0)
    sink.on_snapshot({"time": 2.0, "hosts": [], "latest": {"h": {"cpu_percent": (2.0, 75.0, "cpu", "%")}}}, 2.0)
    wait_until(lambda: sum(len(b["alerts"]) for *_, b in r.requests) >= 2, 5, "2 deliveries", poll_s=0.01)
    sink.close()
    names = sorted(a["name"] for *_, b in r.requests for a in b["alerts"])
    assert names == ["budget_violation", "cpu-high"]
    assert not AlertSink(AlertEngine(), []).needs_latest


def test_sink_queue_is_bounded():
    """When its thread falls behind, the sink drops and counts instead of blocking the loop."""
    gate = threading.Event()

    class Slow:
        def deliver(self, alerts, now):
            gate.wait(5)

        def tick(self, now):
            pass

        def close(self):
            pass
    sink = AlertSink(AlertEngine(), [Slow()], max_queue=2)
    for i in range(10):
        sink.on_snapshot({"time": i, "hosts": []}, float(i))
    assert sink.dropped >= 7
    gate.set()
    sink.close()


def test_a_failing_target_does_not_stop_the_sink(receiver):
    """An exception in one delivery is logged; later alerts are still delivered."""
    r = receiver()
    calls = []

    class Broken:
        def deliver(self, alerts, now):
            calls.append(now)
            if len(calls) == 1:
                raise RuntimeError("boom")

        def tick(self, now):
            pass

        def close(self):
            pass
    sink = AlertSink(AlertEngine(), [Broken()])
    sink.on_snapshot({"time": 1.0, "hosts": []}, 1.0)
    sink.on_snapshot({"time": 2.0, "hosts": []}, 2.0)
    wait_until(lambda: len(calls) >= 2, 5, "2 deliveries", poll_s=0.01)
    sink.close()
    assert calls == [1.0, 2.0]
