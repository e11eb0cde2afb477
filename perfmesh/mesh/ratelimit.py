"""Token buckets: a rate with a burst, per key, bounded in the number of keys."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..model.lru import BoundedLRU


@dataclass
class TokenBucket:
    rate_per_s: float
    burst: float
    tokens: float = -1.0
    updated: float = 0.0

    def take(self, now: float, cost: float = 1.0) -> bool:
        if self.tokens < 0:
            self.tokens, self.updated = self.burst, now
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate_per_s)
        self.updated = now
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False


@dataclass
class RateLimiter:
    """One bucket per key (host, operator); the least recently used key is dropped past ``max_keys``."""

    rate_per_s: float
    burst: float
    max_keys: int = 10_000
    buckets: BoundedLRU[str, TokenBucket] = field(init=False)

    def __post_init__(self) -> None:
        self.buckets = BoundedLRU(self.max_keys)

    def allow(self, key: str, now: float) -> bool:
        bucket = self.buckets.get(key) or TokenBucket(self.rate_per_s, self.burst)
        self.buckets[key] = bucket       # storing again makes it the most recent
        return bucket.take(now)
