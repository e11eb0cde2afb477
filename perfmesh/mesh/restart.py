"""Exponential backoff, the one definition, and the restart policy for supervised processes.

:class:`Backoff` is used wherever something is retried after a failure: collector restarts
(:class:`RestartPolicy`), webhook and Alertmanager deliveries, and reconnecting after a refused
CURVE handshake. Pure: the caller reads the clock and waits.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError


def backoff_delay(failures: int, initial_s: float, max_s: float, factor: float = 2.0) -> float:
    """The wait after the ``failures``-th failure in a row: ``initial_s`` after the first,
    multiplied by ``factor`` after each further one, never more than ``max_s``."""
    if failures < 1:
        raise ConfigError(f"failures {failures!r} is invalid; expected an int >= 1")
    return min(max_s, initial_s * factor ** (failures - 1))


@dataclass
class Backoff:
    """Consecutive failures and the wait each one earns; a success starts over."""

    initial_s: float
    max_s: float
    factor: float = 2.0
    failures: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.initial_s <= self.max_s or self.factor < 1:
            raise ConfigError(f"backoff {self.initial_s!r}..{self.max_s!r} x{self.factor!r} is invalid; "
                              "expected 0 < initial_s <= max_s and factor >= 1")

    def failed(self) -> float:
        """Count a failure; returns how long to wait before the next attempt."""
        self.failures += 1
        return backoff_delay(self.failures, self.initial_s, self.max_s, self.factor)

    def succeeded(self) -> None:
        self.failures = 0


@dataclass
class RestartPolicy:
    """When to restart a process that exited.

    The first restart waits ``initial_s``; each crash within ``reset_after_s`` of the last
    start doubles the wait up to ``max_s``. A process that crashed ``failing_after`` times in a
    row is reported as ``failing`` (still retried, at the maximum backoff).
    """

    initial_s: float = 0.2
    max_s: float = 30.0
    factor: float = 2.0
    reset_after_s: float = 10.0
    failing_after: int = 5
    restarts: int = 0
    consecutive: int = 0
    started_at: float = 0.0

    def started(self, now: float) -> None:
        self.started_at = now

    def exited(self, now: float) -> float:
        """Record an exit; returns when to restart (absolute time)."""
        if now - self.started_at >= self.reset_after_s:
            self.consecutive = 0
        self.consecutive += 1
        self.restarts += 1
        return now + backoff_delay(self.consecutive, self.initial_s, self.max_s, self.factor)

    @property
    def state(self) -> str:
        return "failing" if self.consecutive >= self.failing_after else "running"
