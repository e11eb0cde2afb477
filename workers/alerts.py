"""Alert delivery beside the aggregator loop: webhooks and Prometheus Alertmanager.

:class:`AlertSink` is an aggregator sink. On the loop thread it only filters and enqueues;
its own thread runs the pure :class:`perfmesh.rules.alerting.AlertEngine` and hands the alerts to
each target. Every target has a bounded :class:`HttpOutbox` and a thread of its own, so a
slow or dead receiver delays nobody else:

- :class:`WebhookTarget` POSTs ``{"version": 1, "source": "perfmesh", "alerts": [...]}``;
  every alert carries an ``id`` that stays the same across retries (receivers dedupe on it).
- :class:`AlertmanagerTarget` POSTs to ``/api/v2/alerts`` with labels alertname, host,
  metric, severity, category (plus the series labels, e.g. device), re-sends firing alerts
  every ``resend_s`` with ``endsAt`` four resend intervals ahead (as Prometheus does), and
  sends resolved alerts with ``endsAt`` at the time they resolved.

Delivery is at least once: a batch leaves the outbox only after a 2xx answer, and is retried
with exponential backoff (``backoff_s`` doubling up to ``max_backoff_s``) on connection errors,
timeouts, 408, 429 and 5xx. Other 4xx answers are permanent: the batch is dropped and
counted. The outbox is bounded: when full, the oldest alert is dropped and counted.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import deque
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

from perfmesh.mesh.restart import Backoff
from perfmesh.model.serieskey import parse_series_key
from perfmesh.rules.alerting import Alert, AlertEngine
from perfmesh.protocol import kinds

log = logging.getLogger("perfmesh.alerts")
RETRYABLE_STATUS = {408, 429}


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class HttpOutbox:
    """A bounded queue of JSON items POSTed in batches by a thread of its own."""

    def __init__(self, url: str, *, wrap: Callable[[list[Any]], Any] = lambda items: items,
                 max_queue: int = 10_000, max_batch: int = 100, timeout_s: float = 5.0,
                 headers: dict[str, str] | None = None, backoff_s: float = 0.5,
                 max_backoff_s: float = 30.0, name: str = "outbox") -> None:
        self.url = url
        self.wrap = wrap
        self.max_batch = max_batch
        self.timeout_s = timeout_s
        self.headers = {"Content-Type": "application/json", "User-Agent": "perfmesh",
                        **(headers or {})}
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._items: deque = deque()
        self._max_queue = max_queue
        self._seq = 0
        self._cond = threading.Condition()
        self._stop = False
        self.stats = {"sent": 0, "batches": 0, "attempts": 0, "retries": 0, "dropped_full": 0,
                      "dropped_rejected": 0}
        self._thread = threading.Thread(target=self._run, name=f"perfmesh-{name}", daemon=True)
        self._thread.start()

    def put(self, items: Iterable[Any]) -> None:
        with self._cond:
            for item in items:
                if len(self._items) >= self._max_queue:
                    self._items.popleft()
                    self.stats["dropped_full"] += 1
                self._seq += 1
                self._items.append((self._seq, item))
            self._cond.notify()

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._items)

    def _run(self) -> None:
        backoff = Backoff(self.backoff_s, max(self.backoff_s, self.max_backoff_s))
        while True:
            with self._cond:
                while not self._items and not self._stop:
                    self._cond.wait()
                if not self._items:
                    return
                batch = list(self._items)[:self.max_batch]
            outcome = self._post([item for _, item in batch])
            with self._cond:
                if outcome == "retry":
                    self.stats["retries"] += 1
                    if self._stop:
                        return
                    self._cond.wait(backoff.failed())
                    continue
                backoff.succeeded()
                last = batch[-1][0]
                while self._items and self._items[0][0] <= last:
                    self._items.popleft()
                if outcome == "ok":
                    self.stats["sent"] += len(batch)
                    self.stats["batches"] += 1
                else:
                    self.stats["dropped_rejected"] += len(batch)

    def _post(self, items: list[Any]) -> str:
        self.stats["attempts"] += 1
        body = json.dumps(self.wrap(items), allow_nan=False, default=str).encode()
        req = urllib.request.Request(self.url, data=body, headers=self.headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                resp.read()
            return "ok"
        except urllib.error.HTTPError as exc:
            if exc.code >= 500 or exc.code in RETRYABLE_STATUS:
                log.warning("%s answered %d; retrying", self.url, exc.code)
                return "retry"
            log.warning("%s rejected %d alert(s) with %d: %s", self.url, len(items), exc.code,
                        exc.read()[:200].decode(errors="replace"))
            return "rejected"
        except (OSError, ValueError) as exc:   # URLError, timeouts, resets
            log.warning("cannot reach %s: %s; retrying", self.url, exc)
            return "retry"

    def close(self, timeout_s: float = 2.0) -> None:
        """Try to flush for up to ``timeout_s``, then stop."""
        deadline = time.monotonic() + timeout_s
        while self.pending and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.02)
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(max(0.0, deadline - time.monotonic()) + 0.1)


class WebhookTarget:
    """Every alert, as JSON, to one URL."""

    def __init__(self, url: str, **outbox: Any) -> None:
        self.url = url
        self.outbox = HttpOutbox(url, wrap=lambda items: {"version": 1, "source": "perfmesh",
                                                          "alerts": items},
                                 name="webhook", **outbox)

    def deliver(self, alerts: list[Alert], now: float) -> None:
        if alerts:
            self.outbox.put({"id": uuid.uuid4().hex, **a.to_dict()} for a in alerts)

    def tick(self, now: float) -> None:
        pass

    def close(self) -> None:
        self.outbox.close()


def am_alert(alert: Alert, ends_at: float) -> dict[str, Any]:
    """An :class:`Alert` in Alertmanager's v2 ``postableAlert`` shape."""
    metric = parse_series_key(alert.metric)[0]
    labels = {**{k: v for k, v in alert.labels.items() if v},
              "alertname": alert.name, "host": alert.host, "metric": metric,
              "severity": alert.severity, "category": alert.category or "-",
              "source": alert.source}
    if metric != alert.metric:
        labels["series"] = alert.metric
    annotations = {"summary": alert.summary or f"{alert.name} on {alert.host}"}
    if alert.value is not None:
        annotations["value"] = f"{alert.value:g}"
    if alert.threshold is not None:
        annotations["threshold"] = f"{alert.threshold:g}"
    return {"labels": labels, "annotations": annotations, "startsAt": rfc3339(alert.started_at),
            "endsAt": rfc3339(ends_at)}


class AlertmanagerTarget:
    """Alerts to a Prometheus Alertmanager (``url`` is its base, e.g. http://host:9093)."""

    def __init__(self, url: str, resend_s: float = 60.0, **outbox: Any) -> None:
        self.url = url.rstrip("/")
        self.resend_s = resend_s
        self.active: dict[tuple, Alert] = {}
        self.last_resend = 0.0
        self.outbox = HttpOutbox(self.url + "/api/v2/alerts", name="alertmanager", **outbox)

    def deliver(self, alerts: list[Alert], now: float) -> None:
        items = []
        for a in alerts:
            if a.previous_severity and a.previous_severity != a.severity:
                old = self.active.pop((a.name, a.host, a.metric, a.previous_severity), None)
                if old is not None:
                    items.append(am_alert(old, now))
            if a.state == kinds.RESOLVED:
                self.active.pop(a.fingerprint, None)
                items.append(am_alert(a, a.timestamp))
            else:
                self.active[a.fingerprint] = a
                items.append(am_alert(a, now + 4 * self.resend_s))
        if items:
            self.outbox.put(items)

    def tick(self, now: float) -> None:
        if now - self.last_resend >= self.resend_s:
            self.last_resend = now
            if self.active:
                self.outbox.put([am_alert(a, now + 4 * self.resend_s) for a in self.active.values()])

    def close(self) -> None:
        self.outbox.close()


class AlertSink:
    """The aggregator sink that feeds an AlertEngine and its delivery targets."""

    def __init__(self, engine: AlertEngine, targets: list[Any], max_queue: int = 1000) -> None:
        self.engine = engine
        self.targets = targets
        self.needs_latest = bool(engine.evaluators) or engine.burn is not None
        self.dropped = 0
        self._queue: queue.Queue = queue.Queue(max_queue)
        self._thread = threading.Thread(target=self._run, name="perfmesh-alerts", daemon=True)
        self._thread.start()

    # -- on the loop thread: filter and enqueue only
    def on_events(self, events: list[Any], now: float) -> None:
        wanted = [e for e in events if e.type == kinds.EVENT_VIOLATION]
        if wanted:
            self._put(("events", wanted, now))

    def on_snapshot(self, snapshot: dict[str, Any], now: float) -> None:
        self._put(("snapshot", snapshot, now))

    def _put(self, item: tuple) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1

    # -- on the sink's thread
    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            kind, payload, now = item
            try:
                if kind == "events":
                    alerts = self.engine.observe_events(payload, now)
                else:
                    alerts = self.engine.observe_snapshot(payload, now)
                for target in self.targets:
                    target.deliver(alerts, now)
                    if kind == "snapshot":
                        target.tick(now)
            except Exception:   # a bad rule or target must never stop delivery
                log.exception("alert evaluation failed")

    def close(self) -> None:
        try:
            self._queue.put(None, timeout=1.0)
        except queue.Full:
            pass   # the thread is a daemon; targets still flush below
        self._thread.join(2.0)
        for target in self.targets:
            target.close()
