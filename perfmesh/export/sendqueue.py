"""The remote-write queue: bounded in bytes, sheds the oldest batches when full and counts
what it shed; and the retry backoff. Pure: the caller passes ``now`` and holds the lock."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

DEFAULT_MAX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Queued:
    """One ingested batch waiting to be sent: what it weighs and how many samples it holds."""

    item: Any
    nbytes: int
    samples: int


class SendQueue:
    """FIFO of batches holding at most ``max_bytes``; putting into a full queue drops the
    oldest batches first (the newest data is worth most to a live dashboard)."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if type(max_bytes) is not int or max_bytes < 1024:
            raise ConfigError(f"remote-write queue size {max_bytes!r} must be an int >= 1024 (bytes)")
        self.max_bytes = max_bytes
        self.nbytes = 0
        self.samples = 0
        self.shed_samples = 0
        self.shed_batches = 0
        self._items: deque[Queued] = deque()

    def put(self, item: Any, nbytes: int, samples: int) -> int:
        """Queue ``item``; returns how many samples were shed to make room (maybe the item's own,
        when it alone is larger than the queue)."""
        shed = 0
        if nbytes > self.max_bytes:
            shed = samples
        else:
            while self.nbytes + nbytes > self.max_bytes:
                old = self._items.popleft()
                self.nbytes -= old.nbytes
                self.samples -= old.samples
                shed += old.samples
                self.shed_batches += 1
            self._items.append(Queued(item, nbytes, samples))
            self.nbytes += nbytes
            self.samples += samples
        if nbytes > self.max_bytes:
            self.shed_batches += 1
        self.shed_samples += shed
        return shed

    def take(self, max_samples: int) -> list[Any]:
        """The oldest batches up to ``max_samples`` samples in all (always at least one, when
        any is queued)."""
        out: list[Any] = []
        total = 0
        items = self._items
        while items and (not out or total + items[0].samples <= max_samples):
            q = items.popleft()
            self.nbytes -= q.nbytes
            self.samples -= q.samples
            total += q.samples
            out.append(q.item)
        return out

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class Backoff:
    """Exponential backoff between ``min_s`` and ``max_s``: each failure doubles the wait, a
    success resets it. ``retry_after_s`` (a server's Retry-After) overrides when larger."""

    min_s: float = 0.1
    max_s: float = 10.0
    wait_s: float = 0.0
    next_at: float = 0.0
    failures: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.min_s <= self.max_s:
            raise ConfigError(f"backoff {self.min_s!r}..{self.max_s!r} s must satisfy 0 < min <= max")

    def failure(self, now: float, retry_after_s: float | None = None) -> float:
        """Record a failed attempt at ``now``; returns when to try again."""
        self.failures += 1
        self.wait_s = self.min_s if self.wait_s <= 0 else min(self.max_s, self.wait_s * 2)
        wait = self.wait_s if retry_after_s is None else min(self.max_s * 6, max(self.wait_s, retry_after_s))
        self.next_at = now + wait
        return self.next_at

    def success(self) -> None:
        self.wait_s = 0.0
        self.next_at = 0.0

    def ready(self, now: float) -> bool:
        return now >= self.next_at

    def to_dict(self) -> dict[str, float]:
        return {"wait_s": self.wait_s, "next_at": self.next_at, "failures": self.failures}
