"""A collector process: sample -> encode -> publish, one batch per category per tick.

It knows nothing of the network: it connects a PUB socket to its agent's local endpoint.
"""

from __future__ import annotations

import ctypes
import os
import signal
import threading
import time

import zmq

from perfmesh.protocol import wire
from perfmesh.protocol.batch import BatchEncoder
from perfmesh.collect.collection import MetricsCollector
from perfmesh.protocol.kinds import BATCH

from .transport import make_socket

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask Linux to SIGTERM us when the agent dies, so no collector is orphaned."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass


def run(kind: str, url: str, interval_s: float, parent_pid: int) -> None:
    """Entry point of the collector process (forked from the agent)."""
    die_with_parent()
    stopping = threading.Event()    # one sleep per tick; SIGTERM's handler wakes it at once
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C goes to the agent, which stops us
    ctx = zmq.Context()
    pub = make_socket(ctx, zmq.PUB, hwm=1000, heartbeat_ms=0)
    pub.connect(url)
    collector = MetricsCollector(interval=interval_s, history_size=1)
    kinds = (kind,)                 # MetricsCollector knows each of COLLECTOR_KINDS ("io": disk + network)
    encoders: dict[str, BatchEncoder] = {}
    topic = wire.topic(BATCH, kind)
    next_due = time.monotonic()
    try:
        while not stopping.is_set() and os.getppid() == parent_pid:
            now = time.time()
            by_category: dict[str, list] = {}
            for m in collector.collect(kinds, now=now):
                by_category.setdefault(m.category, []).append(m)
            for category, metrics in by_category.items():
                enc = encoders.setdefault(category, BatchEncoder())
                pub.send_multipart([topic, wire.pack(enc.encode(category, now, metrics))])
            next_due += interval_s
            delay = next_due - time.monotonic()
            if delay < 0:           # fell behind (suspended): skip missed ticks, no burst
                next_due = time.monotonic()
                delay = 0
            stopping.wait(delay)
    finally:
        pub.close(0)
        ctx.term()
