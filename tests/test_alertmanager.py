"""A budget violation in a running mesh reaches a real Prometheus Alertmanager (v2 API)."""

from __future__ import annotations

import pytest

from tests.servers import ALERTMANAGER, alertmanager, get_json, missing, poll

pytestmark = [pytest.mark.multiprocess,
              pytest.mark.skipif(missing(ALERTMANAGER, "prometheus-alertmanager") is not None,
                                 reason=missing(ALERTMANAGER, "prometheus-alertmanager") or "")]


def test_violation_appears_in_alertmanager_with_labels(mesh, tmp_path):
    """memory_percent over a tiny budget shows up in /api/v2/alerts, labelled for grouping."""
    am, base = alertmanager(tmp_path)
    try:
        mesh.aggregator("--budget", "memory_percent=0.001", "--alertmanager", base)
        mesh.agent("pm-am")
        mesh.wait_hosts("pm-am")

        def found():
            return [a for a in get_json(base + "/api/v2/alerts")
                    if a["labels"].get("alertname") == "budget_violation"
                    and a["labels"].get("host") == "pm-am"
                    and a["labels"].get("metric") == "memory_percent"]   # load_1m may fire too
        try:
            alerts = poll(found, 20.0, "the violation in Alertmanager")
            assert len(alerts) == 1, alerts
            [alert] = alerts
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{mesh.logs()}\n{am.logs()}") from None
        labels = alert["labels"]
        assert {k: labels[k] for k in ("alertname", "host", "metric", "severity", "category", "source")} == {
            "alertname": "budget_violation", "host": "pm-am", "metric": "memory_percent",
            "severity": "critical", "category": "memory", "source": "budget"}
        assert alert["status"]["state"] == "active"
        assert float(alert["annotations"]["threshold"]) == 0.001
        assert alert["endsAt"] > alert["startsAt"]
    finally:
        mesh.stop()
        am.stop()
