"""workers.exporter: /metrics rendered from a snapshot through prometheus-client."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from perfmesh.rules.alerting import BurnRateConfig
from perfmesh.errors import ConfigError
from perfmesh.mesh.fleet import Event
from workers.exporter import MetricsExporter, SnapshotCollector, metric_name, parse_listen

LIMITS = {"cpu_percent": 80.0, "memory_percent": 0.0}


def snapshot(now: float, samples: int) -> dict:
    return {
        "time": now, "pending_commands": 2,
        "counters": {"samples": samples, "batches": 10, "bad_frames": 3, "hosts_refused": 0},
        "bad_frame_reasons": {"bad_schema": 3},
        "hosts": [{"name": "web01", "alive": True, "last_seen": now, "health": "warning", "series": 4,
                   "bottlenecks": [{"kind": "cpu_bound", "severity": "warning"}],
                   "counters": {"gaps": 1, "backfilled": 7, "lost_batches": 2, "missing_batches": 3},
                   "budget_violations": [{"metric": "cpu_percent", "severity": "warning"}]},
                  {"name": "db01", "alive": False, "last_seen": 5.0, "health": "good", "series": 0,
                   "counters": {"gaps": 0}}],
        "latest": {"web01": {"cpu_percent": (now, 90.0, "cpu", "%"),
                             "cpu_percent{cpu=0}": (now, 95.0, "cpu", "%"),
                             "disk_busy_percent{device=sda}": (now, 12.5, "io", "%"),
                             "disk_busy_percent": (now, 12.5, "io", "%"),
                             "disk_read_bytes_per_s{device=sda}": (now, 100.0, "io", "B/s"),
                             "disk_io_time_seconds_total{device=sda}": (now, 12.5, "io", "s"),
                             "disk_io_time_seconds_total{device=sdz}": (now - 5, 1.0, "io", "s"),
                             "app.latency:p99": (now, 3.0, "application", "ms"),
                             "response_time_seconds_bucket{le=0.1}": (now, 2.0, "application", ""),
                             "response_time_seconds_bucket{le=+Inf}": (now, 3.0, "application", ""),
                             "response_time_seconds_sum": (now, 1.5, "application", "s"),
                             "response_time_seconds_count": (now, 3.0, "application", ""),
                             "budget_limit": (now, 1.0, "application", "")},
                   "db01": {"cpu_percent": (5.0, 10.0, "cpu", "%")}},
    }


def render(collector: SnapshotCollector) -> set[str]:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(collector)
    return {line for line in generate_latest(reg).decode().splitlines() if not line.startswith("#")}


def test_names_and_listen_addresses():
    """Series names become perfmesh_<name> with invalid characters as '_'; ours are reserved."""
    assert metric_name("app.latency:p99") == "perfmesh_app_latency_p99"
    assert metric_name("response_time_ms", "ms") == "perfmesh_response_time_p95_seconds"
    assert metric_name("host_up") is None and metric_name("budget_limit") is None
    assert parse_listen("127.0.0.1:9790") == ("127.0.0.1", 9790)
    assert parse_listen("[::1]:0") == ("::1", 0)
    for bad in ("9790", ":9790", "h:x", "h:70000"):
        with pytest.raises(ConfigError, match="expected ADDR:PORT"):
            parse_listen(bad)


def test_collector_renders_hosts_budgets_and_health():
    """Every host metric with host/category/series labels, budgets, burn rates and own health."""
    c = SnapshotCollector(lambda host: LIMITS, BurnRateConfig(windows_s=(60.0,), bucket_s=10.0))
    assert render(c) == {"perfmesh_aggregator_up 0.0"}
    c.update(snapshot(100.0, 1000), 100.0)
    c.update(snapshot(102.0, 1500), 102.0)
    c.count_events([Event("violation", "web01", {"metric": "cpu_percent", "severity": "warning",
                                                  "state": "firing"}),
                    Event("violation", "web01", {"metric": "cpu_percent", "state": "resolved"}),
                    Event("host", "web01", {})])
    lines = render(c)
    for expected in (
            "perfmesh_aggregator_up 1.0",
            "perfmesh_aggregator_ingest_samples_per_second 250.0",
            "perfmesh_aggregator_samples_total 1500.0",
            'perfmesh_aggregator_bad_frames_by_reason_total{reason="bad_schema"} 3.0',
            "perfmesh_aggregator_connected_hosts 1.0",
            "perfmesh_aggregator_known_hosts 2.0",
            "perfmesh_aggregator_pending_commands 2.0",
            'perfmesh_host_up{host="db01"} 0.0',
            'perfmesh_host_health{host="web01"} 1.0',
            'perfmesh_host_gaps_total{host="web01"} 1.0',
            'perfmesh_host_backfilled_total{host="web01"} 7.0',
            'perfmesh_host_lost_batches_total{host="web01"} 2.0',
            'perfmesh_host_missing_batches{host="web01"} 3.0',
            'perfmesh_host_bottleneck{host="web01",kind="cpu_bound",severity="warning"} 1.0',
            'perfmesh_cpu_busy_ratio{host="web01"} 0.9',
            'perfmesh_cpu_core_busy_ratio{cpu="0",host="web01"} 0.95',
            'perfmesh_disk_busiest_busy_ratio{host="web01"} 0.125',
            'perfmesh_disk_io_time_seconds_total{device="sda",host="web01"} 12.5',
            'perfmesh_app_latency_p99_seconds{host="web01"} 0.003',
            'perfmesh_response_time_seconds_bucket{host="web01",le="0.1"} 2.0',
            'perfmesh_response_time_seconds_bucket{host="web01",le="+Inf"} 3.0',
            'perfmesh_response_time_seconds_count{host="web01"} 3.0',
            'perfmesh_response_time_seconds_sum{host="web01"} 1.5',
            'perfmesh_budget_limit{host="web01",metric="cpu_percent"} 80.0',
            'perfmesh_budget_utilization_ratio{host="web01",metric="cpu_percent"} 1.125',
            'perfmesh_budget_violation_active{host="web01",metric="cpu_percent",severity="warning"} 1.0',
            'perfmesh_budget_violations_total{host="web01",metric="cpu_percent",severity="warning"} 1.0',
            'perfmesh_budget_burn_rate{host="web01",metric="cpu_percent",window="60s"} 20.0',
            'perfmesh_budget_remaining_ratio{host="web01",metric="cpu_percent",window="60s"} 0.0'):
        assert expected in lines, expected
    assert not any(line.startswith("perfmesh_budget_utilization_ratio{host=\"web01\",metric=\"memory")
                   for line in lines)          # a zero limit has no ratio
    assert not any("sdz" in line or 'host="db01"' in line and not line.startswith(("perfmesh_host_", "perfmesh_budget_limit"))
                   for line in lines)   # a device or a host that is gone has no series
    assert not any(line.split("{")[0].split(" ")[0].endswith(("_per_s", "_percent")) for line in lines)     # rates: counters instead


def test_exporter_serves_metrics_over_http():
    """The sink serves /metrics on its own thread and closes cleanly."""
    exp = MetricsExporter("127.0.0.1:0", lambda host: LIMITS)
    try:
        exp.on_snapshot(snapshot(100.0, 10), 100.0)
        exp.on_events([Event("host", "web01", {})], 100.0)
        exp.on_events([Event("violation", "web01", {"metric": "cpu_percent", "severity": "critical",
                                                     "state": "firing"})], 100.0)
        url = f"http://127.0.0.1:{exp.address[1]}/metrics"
        for _ in range(100):
            text = urllib.request.urlopen(url, timeout=5).read().decode()
            if 'perfmesh_cpu_busy_ratio{host="web01"} 0.9' in text:
                break
        assert 'perfmesh_cpu_busy_ratio{host="web01"} 0.9' in text
        assert 'perfmesh_budget_violations_total{host="web01",metric="cpu_percent",severity="critical"} 1.0' in text
    finally:
        exp.close()


def test_grafana_dashboard_queries_exported_metrics():
    """scripts/grafana_dashboard.json is valid JSON whose queries use only metrics we export,
    rate()/increase() over $__rate_interval, every selector filtered by $instance (several
    aggregators), and value mappings for health and up."""
    import json
    import re
    from pathlib import Path
    from perfmesh.export.naming import prom_name
    dash = json.loads((Path(__file__).parent.parent / "scripts" / "grafana_dashboard.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    used = {m for e in exprs for m in re.findall(r"perfmesh_[a-z0-9_]+", e)}
    snap = snapshot(100.0, 10)
    c = SnapshotCollector(lambda host: LIMITS, remote=[FakeWriter()])
    c.update(snap, 100.0)
    c.count_events([Event("violation", "web01", {"metric": "m", "severity": "warning", "state": "firing"})])
    rendered = {line.split("{")[0].split(" ")[0] for line in render(c)}
    collectors = {prom_name(n, u, lab).name for n, u, lab in (
        ("memory_percent", "%", False), ("swap_percent", "%", False), ("load_1m", "", False),
        ("disk_io_time_seconds_total", "s", True), ("disk_read_bytes_total", "B", True),
        ("disk_written_bytes_total", "B", True), ("net_receive_bytes_total", "B", True),
        ("net_transmit_bytes_total", "B", True))}
    assert used - rendered <= collectors, used - rendered - collectors
    assert all("$__rate_interval" in e for e in exprs if re.search(r"\b(rate|increase)\(", e))
    assert all('instance=~"$instance"' in sel for e in exprs for sel in re.findall(r"perfmesh_[a-z0-9_]+\{[^}]*\}", e))
    assert [v["name"] for v in dash["templating"]["list"]] == ["datasource", "instance", "host"]
    mapped = {p["title"] for p in dash["panels"] if p.get("fieldConfig", {}).get("defaults", {}).get("mappings")}
    assert {"Host health", "Hosts up"} <= mapped
    assert dash["uid"] == "perfmesh-fleet" and len(exprs) >= 20


class FakeWriter:
    def stats(self):
        from workers.remote_write import RemoteWriteStats
        return RemoteWriteStats("http://127.0.0.1:9/api/v1/write", sent_samples=5, queue_max_bytes=1024)


def test_remote_write_counters_are_exported_per_url():
    """Each writer's stats become perfmesh_remote_write_* series labelled by URL."""
    c = SnapshotCollector(lambda host: LIMITS, remote=[FakeWriter()])
    c.update(snapshot(100.0, 10), 100.0)
    lines = render(c)
    url = 'url="http://127.0.0.1:9/api/v1/write"'
    assert f"perfmesh_remote_write_sent_samples_total{{{url}}} 5.0" in lines
    assert f"perfmesh_remote_write_queue_limit_bytes{{{url}}} 1024.0" in lines
    assert f"perfmesh_remote_write_shed_samples_total{{{url}}} 0.0" in lines
