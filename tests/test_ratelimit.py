"""Tests for perfmesh.mesh.ratelimit: token buckets per key with a fake clock."""

import pytest

from perfmesh.mesh.ratelimit import RateLimiter, TokenBucket


def test_bucket_starts_full_and_allows_a_burst_then_refuses():
    """A new bucket holds `burst` tokens: that many takes pass at once, the next fails."""
    b = TokenBucket(rate_per_s=1.0, burst=3)
    assert [b.take(100.0) for _ in range(4)] == [True, True, True, False]
    assert b.tokens == 0.0 and b.updated == 100.0


def test_bucket_refills_at_its_rate_up_to_the_burst():
    """Tokens come back at rate_per_s, never beyond burst."""
    b = TokenBucket(rate_per_s=0.5, burst=2)
    assert b.take(0.0) and b.take(0.0) and not b.take(0.0)
    assert not b.take(1.9)                       # 0.95 tokens
    assert b.tokens == pytest.approx(0.95)
    assert b.take(2.0)                           # 1.0 token
    assert b.tokens == pytest.approx(0.0)
    assert b.take(1000.0) and b.take(1000.0) and not b.take(1000.0)   # capped at 2


def test_bucket_take_with_a_cost():
    """take(cost) needs and spends that many tokens; a refused take spends nothing."""
    b = TokenBucket(rate_per_s=1.0, burst=5)
    assert b.take(0.0, cost=4)
    assert not b.take(0.0, cost=2)
    assert b.tokens == 1.0
    assert b.take(1.0, cost=2) and b.tokens == 0.0


def test_limiter_keeps_one_bucket_per_key():
    """Each key has its own burst: one key running dry does not affect another."""
    lim = RateLimiter(rate_per_s=1 / 60, burst=2)
    assert [lim.allow("a", 0.0) for _ in range(3)] == [True, True, False]
    assert lim.allow("b", 0.0) and lim.allow("b", 0.0)
    assert not lim.allow("a", 59.0) and lim.allow("a", 60.0)


def test_limiter_drops_the_least_recently_used_key_past_max_keys():
    """With max_keys=2, a third key evicts the least recently used one, which then starts full again."""
    lim = RateLimiter(rate_per_s=0.0, burst=1, max_keys=2)
    assert lim.allow("a", 0.0) and lim.allow("b", 0.0)
    assert not lim.allow("a", 1.0)               # a is now the most recent
    assert lim.allow("c", 2.0)                   # evicts b
    assert list(lim.buckets) == ["a", "c"]
    assert not lim.allow("a", 3.0)               # a kept its empty bucket
    assert lim.allow("b", 4.0)                   # b forgotten: full again (evicts c)
    assert list(lim.buckets) == ["a", "b"]
