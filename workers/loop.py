"""The one poll loop every worker runs: sockets, timers, signals, clean shutdown."""

from __future__ import annotations

import logging
import signal
import socket
import time
from typing import TYPE_CHECKING, Callable

import zmq

if TYPE_CHECKING:
    from .sdnotify import Notifier

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
    """Polls sockets and runs timers until stopped by SIGTERM/SIGINT or :meth:`stop`.

    It sleeps until a socket is readable or the next timer is due (at most ``poll_ms``): a
    signal or :meth:`stop` from another thread wakes it through a self-pipe, so an idle
    process does not wake up just to look at a flag.
    """

    def __init__(self, poll_ms: int = 1000) -> None:
        self.poller = zmq.Poller()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.poller.register(self._wake_r.fileno(), zmq.POLLIN)
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

    def notify_ready(self, notifier: "Notifier", status: str) -> None:
        """Tell systemd the process is ready (call once the sockets are bound and the keys
        loaded), and ping its watchdog from this loop at half the interval it asks for: a loop
        that hangs stops the pings, and systemd restarts the process."""
        notifier.ready(status)
        if notifier.watchdog_s:
            self.every(notifier.watchdog_s / 2, notifier.ping)

    def stop(self, *_: object) -> None:
        self.running = False
        try:
            self._wake_w.send(b"\0")
        except OSError:      # the pipe is full (already woken) or closed (already stopped)
            pass

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT stop the loop; Python writes to the self-pipe so poll wakes."""
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)

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
                handler = self.handlers.get(sock)
                if handler is not None:
                    self._guarded(handler)
                else:
                    self._drain_wake()
            now = time.monotonic()
            for timer in self.timers:
                if timer[0] <= now:
                    timer[0] = max(timer[0] + timer[1], now)
                    self._guarded(timer[2])

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def close(self) -> None:
        """Release the self-pipe (after :meth:`run` has returned)."""
        if signal.getsignal(signal.SIGTERM) == self.stop:
            signal.set_wakeup_fd(-1)
        self.poller.unregister(self._wake_r.fileno())
        self._wake_r.close()
        self._wake_w.close()

    def _guarded(self, fn: Callable[[], None]) -> None:
        """A handler's failure is logged (rate-limited) and never stops the loop."""
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - the loop must outlive any one message
            self.errors.warning(getattr(fn, "__name__", "handler"),
                                f"{getattr(fn, '__name__', 'handler')} failed: {exc.__class__.__name__}: {exc}")
