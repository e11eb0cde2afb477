"""A background thread that keeps a :class:`~perfmesh.views.dashboard.FleetModel` current.

It owns its own ZeroMQ context and sockets (a stream subscriber and an api client), applies
every stream event and a status snapshot every ``status_every_s`` to the model under a lock,
and marks the model disconnected while the aggregator does not answer.
"""

from __future__ import annotations

import threading
import time

import zmq

from perfmesh.views.dashboard import FleetModel

from .client import ApiClient, Subscriber, Unreachable
from .transport import Endpoint


class Feed(threading.Thread):
    def __init__(self, endpoint: Endpoint, model: FleetModel, lock: threading.Lock,
                 status_every_s: float = 1.0, name: str = "viewer") -> None:
        super().__init__(name="perfmesh-feed", daemon=True)
        self.endpoint, self.model, self.lock = endpoint, model, lock
        self.status_every_s = status_every_s
        self.client_name = name
        self.stopping = threading.Event()
        self.ever_connected = False
        self.failures = 0
        self.alerts_host: str | None = None          # whose alert log to keep (top's detail view)
        self.alerts: tuple[str | None, list] = (None, [])   # (host, its newest alerts from the store)

    def stop(self, timeout_s: float = 3.0) -> None:
        self.stopping.set()
        if self.is_alive():
            self.join(timeout_s)

    def run(self) -> None:
        ctx = zmq.Context()
        sub = Subscriber(self.endpoint, ctx=ctx)
        api = ApiClient(self.endpoint, ctx=ctx, name=self.client_name)
        next_status = 0.0
        try:
            while not self.stopping.is_set():
                batch = list(sub.events(0.2))
                if batch:
                    with self.lock:
                        self.model.apply_events(batch)
                if time.monotonic() >= next_status:
                    next_status = time.monotonic() + self.status_every_s
                    try:
                        status = api.status(timeout_s=1.0)
                    except Unreachable:
                        self.failures += 1
                        with self.lock:
                            self.model.disconnected()
                        api.close()          # drop queued requests; a fresh socket reconnects
                        api = ApiClient(self.endpoint, ctx=ctx, name=self.client_name)
                        continue
                    self.ever_connected = True
                    with self.lock:
                        self.model.apply_status(status)
                    host = self.alerts_host
                    if host is not None:
                        try:
                            log = api.alerts(host, time.time() - 7 * 86400, limit=8, timeout_s=1.0)
                            self.alerts = (host, list(log.get("alerts", [])))
                        except Unreachable:
                            pass
        finally:
            sub.close()
            api.close()
            ctx.term()
