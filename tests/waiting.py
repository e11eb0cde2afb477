"""Waiting for a condition with a deadline: the one way tests wait for something to happen.

A fixed ``time.sleep`` before an assertion is either too short on a busy machine (a flaky
test) or too long everywhere else (a slow suite). ``wait_until`` polls the condition and
returns as soon as it holds; past the deadline it fails with what it last saw. A sleep
that remains in a test is the behaviour under test ("nothing arrives during 2 s") and says so.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout_s: float = 10.0, what: str = "the condition", *,
               poll_s: float = 0.05, retry_on: tuple[type[BaseException], ...] = ()) -> T:
    """The first truthy value of ``condition()``, polled every ``poll_s`` until ``timeout_s``.

    Exceptions listed in ``retry_on`` (say, a server still starting) count as "not yet";
    others propagate at once. Fails with an AssertionError naming ``what`` and the last value.
    """
    deadline = time.monotonic() + timeout_s
    last: object = None
    while True:
        try:
            last = condition()
        except retry_on as exc:
            last = exc
        else:
            if last:
                return last  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {timeout_s:g}s (last: {last!r:.2000})")
        time.sleep(poll_s)


def log_contains(path: Path, text: str) -> Callable[[], bool]:
    """A condition: ``text`` has been written to the log file at ``path``."""
    def check() -> bool:
        try:
            return text in path.read_text(errors="replace")
        except FileNotFoundError:
            return False
    return check


def tcp_connected(pid: int, port: int) -> Callable[[], bool]:
    """A condition: process ``pid`` has an established TCP connection to loopback ``port``."""
    import psutil

    def check() -> bool:
        proc = psutil.Process(pid)
        conns = (getattr(proc, "net_connections", None) or proc.connections)(kind="tcp")   # psutil < 6
        return any(c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED for c in conns)
    return check
