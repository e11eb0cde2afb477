"""A daemon thread that runs a function now and then every ``interval_s()`` seconds (read on
each tick, so the owner may change it), wakes at once when stopped, and counts (never dies on)
a failing run."""

from __future__ import annotations

import threading
from typing import Callable


class Ticker:
    """``start()`` runs ``fn`` at once and every ``interval_s()`` s until ``stop()``. An exception
    from ``fn`` is counted in ``errors`` and kept in ``last_error``; the loop goes on."""

    def __init__(self, fn: Callable[[], object], interval_s: Callable[[], float], name: str) -> None:
        self._fn = fn
        self.interval_s = interval_s
        self._name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors = 0
        self.last_error: str | None = None

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def start(self) -> None:
        """Start the thread (a no-op while it runs)."""
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 5.0) -> None:
        """Wake the thread and join it (not when called from the thread itself)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        while True:
            try:
                self._fn()
            except Exception as exc:  # a monitoring loop never dies on one bad run
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
            if self._stop.wait(self.interval_s()):
                return
