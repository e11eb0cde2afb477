"""Restart policy for supervised processes: exponential backoff, no hot loop."""

from __future__ import annotations

from dataclasses import dataclass


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
        delay = min(self.max_s, self.initial_s * self.factor ** (self.consecutive - 1))
        return now + delay

    @property
    def state(self) -> str:
        return "failing" if self.consecutive >= self.failing_after else "running"
