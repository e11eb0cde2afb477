"""A real Prometheus server scrapes the aggregator's /metrics and answers a query for a host's CPU."""

from __future__ import annotations

import urllib.parse

import pytest

from tests.servers import PROMETHEUS, free_port, get_json, missing, poll, prometheus

pytestmark = [pytest.mark.multiprocess,
              pytest.mark.skipif(missing(PROMETHEUS, "prometheus") is not None,
                                 reason=missing(PROMETHEUS, "prometheus") or "")]


def test_prometheus_scrapes_a_hosts_cpu(mesh, tmp_path):
    """perfmesh_cpu_percent{host=...} comes back from /api/v1/query with a number in [0, 100]."""
    listen = f"127.0.0.1:{free_port()}"
    mesh.aggregator("--metrics-listen", listen)
    mesh.agent("pm-prom")
    mesh.wait_hosts("pm-prom")
    prom, base = prometheus(tmp_path, listen)
    try:
        query = urllib.parse.urlencode({"query": 'perfmesh_cpu_percent{host="pm-prom",cpu=""}'})

        def result():
            body = get_json(f"{base}/api/v1/query?{query}")
            return body["status"] == "success" and body["data"]["result"]
        try:
            [series] = poll(result, 30.0, "a CPU value through Prometheus")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{mesh.logs()}\n{prom.logs()}") from None
        assert series["metric"]["__name__"] == "perfmesh_cpu_percent"
        assert series["metric"]["category"] == "cpu" and series["metric"]["job"] == "perfmesh"
        assert 0.0 <= float(series["value"][1]) <= 100.0
        up = get_json(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": "perfmesh_host_up"}))
        assert [(r["metric"]["host"], r["value"][1]) for r in up["data"]["result"]] == [("pm-prom", "1")]
    finally:
        mesh.stop()
        prom.stop()
