"""A real Prometheus server scrapes the aggregator's /metrics and answers a query for a host's
CPU; promtool finds nothing to lint in a live aggregator's /metrics."""

from __future__ import annotations

import shutil
import subprocess
import urllib.parse
import urllib.request

import pytest

from tests.servers import PROMETHEUS, free_port, get_json, missing, poll, prometheus

pytestmark = [pytest.mark.multiprocess,
              pytest.mark.skipif(missing(PROMETHEUS, "prometheus") is not None,
                                 reason=missing(PROMETHEUS, "prometheus") or "")]


def test_prometheus_scrapes_a_hosts_cpu(mesh, tmp_path):
    """perfmesh_cpu_busy_ratio{host=...} comes back from /api/v1/query with a ratio in [0, 1]."""
    listen = f"127.0.0.1:{free_port()}"
    mesh.aggregator("--metrics-listen", listen)
    mesh.agent("pm-prom")
    mesh.wait_hosts("pm-prom")
    prom, base = prometheus(tmp_path, listen)
    try:
        query = urllib.parse.urlencode({"query": 'perfmesh_cpu_busy_ratio{host="pm-prom"}'})

        def result():
            body = get_json(f"{base}/api/v1/query?{query}")
            return body["status"] == "success" and body["data"]["result"]
        try:
            [series] = poll(result, 30.0, "a CPU value through Prometheus")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{mesh.logs()}\n{prom.logs()}") from None
        assert series["metric"]["__name__"] == "perfmesh_cpu_busy_ratio"
        assert series["metric"]["job"] == "perfmesh"
        assert 0.0 <= float(series["value"][1]) <= 1.0, series
        up = get_json(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": "perfmesh_host_up"}))
        assert [(r["metric"]["host"], r["value"][1]) for r in up["data"]["result"]] == [("pm-prom", "1")]
    finally:
        mesh.stop()
        prom.stop()


@pytest.mark.skipif(shutil.which("promtool") is None, reason="needs promtool (apt-get install prometheus)")
def test_promtool_check_metrics_is_clean_on_a_live_aggregator(mesh):
    """`promtool check metrics` on /metrics of an aggregator with two agents prints nothing."""
    listen = f"127.0.0.1:{free_port()}"
    mesh.aggregator("--metrics-listen", listen)
    mesh.agent("pm-lint-a")
    mesh.agent("pm-lint-b")
    mesh.wait_hosts("pm-lint-a", "pm-lint-b")

    def exposition():
        text = urllib.request.urlopen(f"http://{listen}/metrics", timeout=5).read().decode()
        want = ['perfmesh_cpu_busy_ratio{host="pm-lint-a"}', 'perfmesh_cpu_busy_ratio{host="pm-lint-b"}',
                "perfmesh_cpu_seconds_total{", "perfmesh_net_receive_bytes_total{", "perfmesh_load1{"]
        return text if all(w in text for w in want) else None
    text = poll(exposition, 30.0, "both hosts' series on /metrics")
    lint = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert (lint.returncode, lint.stdout, lint.stderr) == (0, "", ""), text[:3000]
    assert not any(bad in text for bad in ("_per_s{", "_per_s ", "_percent{", "_percent "))
