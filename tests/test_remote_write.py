"""Remote write end to end: an aggregator pushes what it ingests into a real Prometheus
(``--web.enable-remote-write-receiver``), queues and retries while the remote is away, and
never stops for a remote that fails."""

from __future__ import annotations

import re
import signal
import time
import urllib.request

import pytest

from tests.servers import PROMETHEUS, free_port, missing, poll, prometheus_receiver, query

pytestmark = pytest.mark.multiprocess


def scrape(listen: str) -> dict[str, float]:
    """{'name{labels}': value} of the aggregator's /metrics, remote-write families only."""
    text = urllib.request.urlopen(f"http://{listen}/metrics", timeout=5).read().decode()
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^(perfmesh_remote_write_\S+) (\S+)$", text, re.M)}


def stat(values: dict[str, float], name: str) -> float:
    return sum(v for k, v in values.items() if k.startswith(f"perfmesh_remote_write_{name}{{"))


@pytest.mark.skipif(missing(PROMETHEUS, "prometheus") is not None, reason=missing(PROMETHEUS, "prometheus") or "")
def test_samples_reach_prometheus_with_host_labels_and_no_gap_across_a_late_remote(mesh, tmp_path):
    """Two agents; the remote comes up only after the aggregator has failed to reach it: the
    queued samples are retried, and Prometheus then holds both hosts' CPU series with one point
    per second (the agents' interval) and no gap, from before it started."""
    port, listen = free_port(), f"127.0.0.1:{free_port()}"
    mesh.aggregator("--remote-write", f"http://127.0.0.1:{port}/api/v1/write", "--metrics-listen", listen)
    mesh.agent("rw-a", interval="1.0")
    mesh.agent("rw-b", interval="1.0")
    mesh.wait_hosts("rw-a", "rw-b", timeout=30.0)
    poll(lambda: stat(scrape(listen), "failed_requests_total") >= 5, 30.0, "failed requests while the remote is down")
    started = time.time()
    prom, base = prometheus_receiver(tmp_path, port)
    try:
        def series():
            got = query(base, "perfmesh_cpu_busy_ratio[1h]")
            return got if {r["metric"]["host"] for r in got} == {"rw-a", "rw-b"} and \
                all(len(r["values"]) >= 12 for r in got) else None
        try:
            found = poll(series, 60.0, "both hosts' CPU in Prometheus, 12 points each")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{mesh.logs()}\n{prom.logs()}") from None
        for r in found:
            assert r["metric"] == {"__name__": "perfmesh_cpu_busy_ratio", "host": r["metric"]["host"]}
            times = [float(t) for t, _ in r["values"]]
            steps = [b - a for a, b in zip(times, times[1:])]
            assert all(0.5 < s < 1.5 for s in steps), steps       # one a second, no hole
            assert all(0.0 <= float(v) <= 1.0 for _, v in r["values"])
            assert times[0] < started - 1.0          # queued while the remote was away
        per_device = query(base, 'perfmesh_net_receive_bytes_total{interface="lo"}')
        assert {r["metric"]["host"] for r in per_device} == {"rw-a", "rw-b"}
        counters = scrape(listen)
        assert stat(counters, "sent_samples_total") > 0 and stat(counters, "shed_samples_total") == 0
        assert stat(counters, "rejected_samples_total") == 0
        assert stat(counters, "queue_limit_bytes") > 0
    finally:
        mesh.stop()
        prom.stop()


@pytest.mark.skipif(missing(PROMETHEUS, "prometheus") is not None, reason=missing(PROMETHEUS, "prometheus") or "")
def test_samples_backfilled_after_an_aggregator_outage_reach_prometheus_too(mesh, tmp_path):
    """SIGKILL the aggregator for 6 s and restart it: the agent's spooled batches are
    backfilled and remote-written, so Prometheus has no hole where perfmesh has none."""
    prom, base = prometheus_receiver(tmp_path)
    url = f"{base}/api/v1/write"
    try:
        agg = mesh.aggregator("--remote-write", url)
        mesh.agent("rw-bf", "--spool-dir", str(tmp_path / "spool"), interval="1.0")
        mesh.wait_hosts("rw-bf", timeout=30.0)
        poll(lambda: [r for r in query(base, 'perfmesh_memory_used_ratio{host="rw-bf"}[1m]') if len(r["values"]) >= 4],
             30.0, "4 live samples in Prometheus")
        agg.send_signal(signal.SIGKILL)
        agg.wait(5)
        t_kill = time.time()
        time.sleep(6.0)                     # the outage itself, not a wait for a condition
        t_back = time.time()
        mesh.aggregator("--remote-write", url)

        seen: list = []

        def points():
            got = query(base, 'perfmesh_memory_used_ratio{host="rw-bf"}[5m]')
            times = [float(t) for t, _ in got[0]["values"]] if got else []
            inside = [t for t in times if t_kill - 3 <= t <= t_back + 3]
            steps = [b - a for a, b in zip(inside, inside[1:])]
            seen[:] = [(t_kill, t_back), inside]
            return times if inside and inside[0] <= t_kill - 1 and inside[-1] >= t_back + 2 and \
                max(steps) < 1.5 else None
        try:
            poll(points, 60.0, "the outage's samples backfilled into Prometheus")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{seen}\n{mesh.logs()}") from None
        status = {h["name"]: h for h in mesh.status()["hosts"]}
        assert status["rw-bf"]["counters"]["backfilled"] >= 4
    finally:
        mesh.stop()
        prom.stop()


def test_an_unreachable_remote_never_stops_the_aggregator(mesh):
    """With a remote that refuses every connection the aggregator ingests, serves status and
    /metrics, and counts its failed requests."""
    listen = f"127.0.0.1:{free_port()}"
    mesh.aggregator("--remote-write", f"http://127.0.0.1:{free_port()}/api/v1/write", "--metrics-listen", listen)
    mesh.agent("rw-dead")
    mesh.wait_hosts("rw-dead")
    poll(lambda: stat(scrape(listen), "failed_requests_total") >= 2, 30.0, "failed requests counted")
    values = scrape(listen)
    assert stat(values, "sent_samples_total") == 0 and stat(values, "queue_samples") > 0
    assert mesh.status()["hosts"][0]["alive"]
    assert mesh.procs[0].poll() is None
