"""``/metrics`` for Prometheus, rendered from the aggregator's latest snapshot.

An aggregator sink: ``on_snapshot`` only keeps a reference to the newest snapshot (and wakes a
small thread that feeds the budget burn rates); prometheus-client's HTTP server thread renders
the exposition from it at scrape time through :class:`SnapshotCollector`. The exposition format
(escaping, ``_total`` suffixes, HELP/TYPE lines, OpenMetrics negotiation) is prometheus-client's.

What it exports:

- every live host's current metrics, named by :mod:`perfmesh.export.naming` (the same names
  remote write uses): base units, ratios 0-1, raw counters as ``_total`` counters, host
  totals in families apart from the per-device series; labels ``host`` and the series labels
  (``device``, ``cpu``, ``interface``, ...). A host that is down, and a device missing from
  its category's newest batch, has no series;
- budgets: ``perfmesh_budget_limit``, ``perfmesh_budget_utilization_ratio`` (value / limit),
  ``perfmesh_budget_violation_active``, ``perfmesh_budget_violations_total`` and the burn
  rates ``perfmesh_budget_burn_rate`` / ``perfmesh_budget_bad_fraction`` /
  ``perfmesh_budget_remaining_ratio`` per window;
- hosts: ``perfmesh_host_up``, ``perfmesh_host_last_seen_timestamp_seconds``,
  ``perfmesh_host_health``, ``perfmesh_host_bottleneck``, ``perfmesh_host_series`` and every
  per-host counter as ``perfmesh_host_<counter>_total`` (batches, samples, gaps, backfilled,
  lost_batches, duplicates, bad_frames, ...: whatever the fleet counts), except
  ``perfmesh_host_missing_batches``, a gauge (it falls when a gap is backfilled);
- the aggregator itself: ``perfmesh_aggregator_*`` (ingest rate, every fleet counter as
  ``perfmesh_aggregator_<counter>_total``, bad frames by reason, connected hosts, pending
  commands, snapshot age);
- remote write, per URL: ``perfmesh_remote_write_{sent,shed,rejected}_samples_total``,
  ``perfmesh_remote_write_requests_total``, ``perfmesh_remote_write_failed_requests_total``,
  ``perfmesh_remote_write_sent_bytes_total``, ``perfmesh_remote_write_queue_bytes``,
  ``perfmesh_remote_write_queue_limit_bytes``, ``perfmesh_remote_write_queue_samples``,
  ``perfmesh_remote_write_last_success_timestamp_seconds``.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any, Callable, Iterator, Mapping, Sequence

from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import CollectorRegistry

from perfmesh.export.naming import NameCache, PromName, prom_name
from perfmesh.export.remote import prom_labels
from perfmesh.model.address import parse_listen
from perfmesh.model.serieskey import parse_series_key
from perfmesh.protocol import kinds
from perfmesh.rules.alerting import BurnTracker, BurnRateConfig

HEALTH = {"good": 0, "warning": 1, "critical": 2}
GAUGE_HOST_COUNTERS = frozenset({"missing_batches"})   # fall on backfill: not counters
_BAD = re.compile(r"[^a-zA-Z0-9_]")


def metric_name(series_name: str, unit: str = "", labelled: bool = False) -> str | None:
    """The Prometheus name of a series (perfmesh.export.naming); None when not exported."""
    out = prom_name(series_name, unit, labelled)
    return None if out is None else out.name


class SnapshotCollector:
    """A prometheus-client collector over the newest aggregator snapshot."""

    def __init__(self, limits_for: Callable[[str], Mapping[str, float]],
                 burn: BurnRateConfig | None = None, remote: Sequence[Any] = ()) -> None:
        self.limits_for = limits_for
        self.remote = list(remote)     # RemoteWriter-likes: .stats() -> RemoteWriteStats
        self.names = NameCache()
        self.burn = BurnTracker(burn)
        self._lock = threading.Lock()         # snapshot, rate, violation counts
        self._burn_lock = threading.Lock()
        self._snapshot: dict[str, Any] | None = None
        self._violations: dict[tuple[str, str, str], int] = {}
        self._rate = (0.0, 0, 0.0)   # (time, samples, samples per second)

    # -- fed by the sink
    def update(self, snapshot: dict[str, Any], now: float) -> None:
        samples = snapshot.get("counters", {}).get("samples", 0)
        with self._lock:
            then, before, rate = self._rate
            if self._snapshot is not None and now > then:
                rate = max(0.0, (samples - before) / (now - then))
            self._rate = (now, samples, rate)
            self._snapshot = snapshot
        with self._burn_lock:   # never held by the loop thread
            for host, series in (snapshot.get("latest") or {}).items():
                for metric, limit in self.limits_for(host).items():
                    row = series.get(metric)
                    if row is not None:
                        self.burn.observe(host, metric, row[0], row[1], limit)

    def count_events(self, events: list[Any]) -> None:
        with self._lock:
            for ev in events:
                if ev.type == kinds.EVENT_VIOLATION and ev.body.get("state") == kinds.FIRING:
                    key = (ev.host, str(ev.body.get("metric")), str(ev.body.get("severity")))
                    self._violations[key] = self._violations.get(key, 0) + 1

    # -- called by prometheus-client at scrape time
    def describe(self) -> list[Metric]:
        return []   # unchecked: the families depend on what the hosts send

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            snapshot = self._snapshot
            violations = dict(self._violations)
            rate = self._rate[2]
        with self._burn_lock:
            burn = self.burn.view(snapshot["time"]) if snapshot else []
        if snapshot is None:
            yield GaugeMetricFamily("perfmesh_aggregator_up", "1 when the aggregator has taken a snapshot", value=0)
            return
        yield GaugeMetricFamily("perfmesh_aggregator_up", "1 when the aggregator has taken a snapshot", value=1)
        yield from self._aggregator(snapshot, rate)
        yield from self._hosts(snapshot)
        alive = {h["name"] for h in snapshot.get("hosts", []) if h.get("alive")}
        yield from self._series({h: rows for h, rows in (snapshot.get("latest") or {}).items() if h in alive})
        yield from self._budgets(snapshot, violations, burn)
        yield from self._remote()

    def _aggregator(self, snapshot: dict[str, Any], rate: float) -> Iterator[Metric]:
        counters = snapshot.get("counters", {})
        hosts = snapshot.get("hosts", [])
        yield GaugeMetricFamily("perfmesh_aggregator_ingest_samples_per_second",
                                "Samples ingested per second, between the last two snapshots", value=rate)
        for key, n in sorted(counters.items()):   # samples, batches, bad_frames, backfilled, ...
            yield CounterMetricFamily(f"perfmesh_aggregator_{_BAD.sub('_', key)}",
                                      f"Aggregator {key.replace('_', ' ')} since start", value=n)
        reasons = CounterMetricFamily("perfmesh_aggregator_bad_frames_by_reason",
                                      "Dropped frames by reason", labels=["reason"])
        for reason, n in sorted(snapshot.get("bad_frame_reasons", {}).items()):
            reasons.add_metric([reason], n)
        yield reasons
        yield GaugeMetricFamily("perfmesh_aggregator_connected_hosts", "Hosts alive now",
                                value=sum(1 for h in hosts if h.get("alive")))
        yield GaugeMetricFamily("perfmesh_aggregator_known_hosts", "Hosts seen since start", value=len(hosts))
        yield GaugeMetricFamily("perfmesh_aggregator_pending_commands", "Commands awaiting a result",
                                value=snapshot.get("pending_commands", 0))
        yield GaugeMetricFamily("perfmesh_aggregator_snapshot_age_seconds", "Age of the snapshot served",
                                value=max(0.0, time.time() - snapshot.get("time", 0.0)))

    def _hosts(self, snapshot: dict[str, Any]) -> Iterator[Metric]:
        hosts = snapshot.get("hosts", [])
        up = GaugeMetricFamily("perfmesh_host_up", "1 while the host's agent is alive", labels=["host"])
        seen = GaugeMetricFamily("perfmesh_host_last_seen_timestamp_seconds", "When the host was last heard from",
                                 labels=["host"])
        health = GaugeMetricFamily("perfmesh_host_health", "Host health: 0 good, 1 warning, 2 critical",
                                   labels=["host"])
        series = GaugeMetricFamily("perfmesh_host_series", "Series stored for the host", labels=["host"])
        bottleneck = GaugeMetricFamily("perfmesh_host_bottleneck", "1 per bottleneck the host shows now",
                                       labels=["host", "kind", "severity"])
        counters: dict[str, CounterMetricFamily] = {}
        for h in hosts:
            name = h["name"]
            up.add_metric([name], 1 if h.get("alive") else 0)
            seen.add_metric([name], h.get("last_seen", 0.0))
            health.add_metric([name], HEALTH.get(h.get("health"), 0))
            series.add_metric([name], h.get("series", 0))
            for b in h.get("bottlenecks", []):
                bottleneck.add_metric([name, str(b.get("kind")), str(b.get("severity"))], 1)
            for key, n in h.get("counters", {}).items():
                fam = counters.get(key)
                if fam is None:
                    kind = GaugeMetricFamily if key in GAUGE_HOST_COUNTERS else CounterMetricFamily
                    fam = counters[key] = kind(
                        f"perfmesh_host_{_BAD.sub('_', key)}", f"Per-host {key.replace('_', ' ')} since the aggregator started",
                        labels=["host"])
                fam.add_metric([name], n)
        yield from (up, seen, health, series, bottleneck)
        yield from counters.values()

    def _series(self, latest: Mapping[str, Mapping[str, tuple]]) -> Iterator[Metric]:
        """Each host's current series; a series older than the newest batch of its category
        on that host is of a device that is gone, and is left out."""
        families: dict[str, tuple[PromName, set[str], list]] = {}
        histograms: dict[str, dict[tuple, dict[str, Any]]] = {}
        for host, rows in latest.items():
            newest: dict[str, float] = {}
            for ts, _, category, _ in rows.values():
                if ts > newest.get(category, float("-inf")):
                    newest[category] = ts
            for key, (ts, value, category, unit) in rows.items():
                if ts < newest[category]:
                    continue
                name, labels = parse_series_key(key)
                prom = self.names.get(name, unit, bool(labels))
                if prom is None:
                    continue
                if prom.histogram:
                    self._histogram_part(histograms, prom, host, labels, value)
                    continue
                fam = families.get(prom.name)
                if fam is None:
                    fam = families[prom.name] = (prom, set(), [])
                labels = prom_labels(host, labels)
                fam[1].update(labels)
                fam[2].append((labels, prom.convert(value)))
        for _, (prom, label_keys, rows) in sorted(families.items()):
            keys = ["host", *sorted(label_keys - {"host"})]
            kind = CounterMetricFamily if prom.counter else GaugeMetricFamily
            fam = kind(prom.name, prom.help or prom.name, labels=keys)
            seen = set()
            for labels, value in rows:
                values = tuple(labels.get(k, "") for k in keys)
                if values not in seen:
                    seen.add(values)
                    fam.add_metric(list(values), value)
            yield fam
        yield from self._histograms(histograms)

    @staticmethod
    def _histogram_part(histograms: dict, prom: PromName, host: str, labels: dict[str, str], value: float) -> None:
        le = labels.pop("le", None)
        row = histograms.setdefault(prom.histogram, {}).setdefault(
            tuple(sorted(prom_labels(host, labels).items())), {"buckets": {}, "sum": 0.0})
        if prom.name.endswith("_bucket") and le is not None:
            row["buckets"][le] = value
        elif prom.name.endswith("_sum"):
            row["sum"] = value

    @staticmethod
    def _histograms(histograms: dict[str, dict[tuple, dict[str, Any]]]) -> Iterator[Metric]:
        for name, rows in sorted(histograms.items()):
            keys = sorted({k for labels in rows for k, _ in labels} - {"host"})
            fam = HistogramMetricFamily(name, f"{name[len('perfmesh_'):]} histogram", labels=["host", *keys])
            for labels, row in rows.items():
                buckets = row["buckets"]
                if "+Inf" not in buckets:
                    continue
                d = dict(labels)
                ordered = sorted(buckets.items(), key=lambda kv: float(kv[0]))
                fam.add_metric([d["host"], *(d.get(k, "") for k in keys)], ordered, row["sum"])
            yield fam

    def _remote(self) -> Iterator[Metric]:
        if not self.remote:
            return
        stats = [w.stats() for w in self.remote]
        for field, kind, help in (
                ("sent_samples", "c", "Samples the remote accepted"),
                ("shed_samples", "c", "Samples dropped because the queue was full"),
                ("rejected_samples", "c", "Samples dropped because the remote refused them (4xx)"),
                ("sent_requests", "c", "Write requests the remote accepted"),
                ("failed_requests", "c", "Write requests that failed and were retried"),
                ("sent_bytes", "c", "Compressed bytes the remote accepted"),
                ("queue_bytes", "g", "Bytes waiting in the send queue"),
                ("queue_max_bytes", "g", "Limit of the send queue in bytes"),
                ("queue_samples", "g", "Samples waiting in the send queue"),
                ("last_success", "g", "When the remote last accepted a request")):
            name = {"sent_requests": "requests", "queue_max_bytes": "queue_limit_bytes",
                    "last_success": "last_success_timestamp_seconds"}.get(field, field)
            fam = (CounterMetricFamily if kind == "c" else GaugeMetricFamily)(
                f"perfmesh_remote_write_{name}", help, labels=["url"])
            for st in stats:
                fam.add_metric([st.url], getattr(st, field))
            yield fam

    def _budgets(self, snapshot: dict[str, Any], violations: dict, burn: list[dict]) -> Iterator[Metric]:
        latest = snapshot.get("latest") or {}
        limit = GaugeMetricFamily("perfmesh_budget_limit", "Budget limit of the metric on the host",
                                  labels=["host", "metric"])
        util = GaugeMetricFamily("perfmesh_budget_utilization_ratio",
                                 "Latest value over the budget limit (1 = at the limit)", labels=["host", "metric"])
        active = GaugeMetricFamily("perfmesh_budget_violation_active", "1 while the budget is violated",
                                   labels=["host", "metric", "severity"])
        total = CounterMetricFamily("perfmesh_budget_violations", "Budget violations raised (firing events)",
                                    labels=["host", "metric", "severity"])
        for h in snapshot.get("hosts", []):
            name = h["name"]
            rows = latest.get(name, {})
            for metric, lim in sorted(self.limits_for(name).items()):
                limit.add_metric([name, metric], lim)
                row = rows.get(metric)
                if row is not None and lim > 0 and h.get("alive"):   # a host that is down: no value
                    util.add_metric([name, metric], row[1] / lim)
            for v in h.get("budget_violations", []):
                active.add_metric([name, str(v.get("metric")), str(v.get("severity"))], 1)
        for (host, metric, severity), n in sorted(violations.items()):
            total.add_metric([host, metric, severity], n)
        yield from (limit, util, active, total)
        labels = ["host", "metric", "window"]
        rate = GaugeMetricFamily("perfmesh_budget_burn_rate",
                                 "Fraction of samples over the limit divided by the allowed fraction", labels=labels)
        bad = GaugeMetricFamily("perfmesh_budget_bad_fraction", "Fraction of samples over the limit", labels=labels)
        left = GaugeMetricFamily("perfmesh_budget_remaining_ratio", "Budget left over the window (0..1)", labels=labels)
        alive = {h["name"] for h in snapshot.get("hosts", []) if h.get("alive")}
        for row in burn:
            if row["host"] not in alive:
                continue
            values = [row["host"], row["metric"], f"{row['window_s']:g}s"]
            rate.add_metric(values, row["burn_rate"])
            bad.add_metric(values, row["bad_fraction"])
            left.add_metric(values, row["budget_remaining"])
        yield from (rate, bad, left)


class MetricsExporter:
    """The sink: serves ``/metrics`` on ``listen`` (``ADDR:PORT``) from its own thread."""

    needs_latest = True

    def __init__(self, listen: str, limits_for: Callable[[str], Mapping[str, float]],
                 burn: BurnRateConfig | None = None, remote: Sequence[Any] = ()) -> None:
        addr, port = parse_listen(listen, what="metrics listen address")
        self.collector = SnapshotCollector(limits_for, burn, remote)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.collector)   # type: ignore[arg-type]
        self.server, self._server_thread = start_http_server(port, addr, self.registry)
        self.address = self.server.server_address
        self._pending: tuple[dict, float] | None = None
        self._wake = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="perfmesh-exporter", daemon=True)
        self._thread.start()

    def on_events(self, events: list[Any], now: float) -> None:
        if any(ev.type == kinds.EVENT_VIOLATION for ev in events):
            self.collector.count_events(events)

    def on_snapshot(self, snapshot: dict[str, Any], now: float) -> None:
        with self._wake:
            self._pending = (snapshot, now)
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._pending is None and not self._stop:
                    self._wake.wait()
                if self._stop:
                    return
                snapshot, now = self._pending   # type: ignore[misc]
                self._pending = None
            self.collector.update(snapshot, now)

    def close(self) -> None:
        with self._wake:
            self._stop = True
            self._wake.notify()
        self._thread.join(2.0)
        self.server.shutdown()
        self.server.server_close()
