"""The one poll loop every worker runs: sockets, timers, signals, clean shutdown."""

from __future__ import annotations

import logging
import signal
import time
from typing import Callable

import zmq

log = logging.getLogger("perfmesh")


class RateLimitedLog:
    """At most one line per ``interval_s`` per key, with a count of what was suppressed."""

    def __init__(self, interval_s: float = 5.0) -> None:
        self.interval_s = interval_s
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, key: str, message: str) -> None:
        now = time.monotonic()
        if now - self._last.get(key, float("-inf")) >= self.interval_s:
            extra = self._suppressed.pop(key, 0)
            log.warning("%s%s", message, f" (+{extra} similar suppressed)" if extra else "")
            self._last[key] = now
        else:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1


class Loop:
    """Polls sockets and runs timers until stopped by SIGTERM/SIGINT or :meth:`stop`."""

    def __init__(self, poll_ms: int = 100) -> None:
        self.poller = zmq.Poller()
        self.handlers: dict[zmq.Socket, Callable[[], None]] = {}
        self.timers: list[list] = []   # [next_due, interval_s, fn]
        self.poll_ms = poll_ms
        self.running = False
        self.errors = RateLimitedLog()

    def on_readable(self, sock: zmq.Socket, handler: Callable[[], None]) -> None:
        self.poller.register(sock, zmq.POLLIN)
        self.handlers[sock] = handler

    def forget(self, sock: zmq.Socket) -> None:
        self.poller.unregister(sock)
        self.handlers.pop(sock, None)

    def every(self, interval_s: float, fn: Callable[[], None], first_in_s: float = 0.0) -> None:
        self.timers.append([time.monotonic() + first_in_s, interval_s, fn])

    def stop(self, *_: object) -> None:
        self.running = False

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def run(self) -> None:
        self.running = True
        while self.running:
            now = time.monotonic()
            due = min((t[0] for t in self.timers), default=now + self.poll_ms / 1000)
            timeout_ms = max(0, min(self.poll_ms, int((due - now) * 1000) + 1))
            try:
                ready = self.poller.poll(timeout_ms)
            except zmq.ZMQError as exc:
                if exc.errno == zmq.EINTR:
                    continue
                raise
            for sock, _ in ready:
                self._guarded(self.handlers[sock])
            now = time.monotonic()
            for timer in self.timers:
                if timer[0] <= now:
                    timer[0] = max(timer[0] + timer[1], now)
                    self._guarded(timer[2])

    def _guarded(self, fn: Callable[[], None]) -> None:
        """A handler's failure is logged (rate-limited) and never stops the loop."""
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - the loop must outlive any one message
            self.errors.warning(getattr(fn, "__name__", "handler"),
                                f"{getattr(fn, '__name__', 'handler')} failed: {exc.__class__.__name__}: {exc}")
