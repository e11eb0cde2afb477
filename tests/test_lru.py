"""perfmesh.model.lru: the one bounded LRU, used by rate limits and the command result caches."""

from __future__ import annotations

import pytest

from perfmesh.errors import ConfigError
from perfmesh.model.lru import BoundedLRU


def test_storing_past_the_limit_drops_the_least_recently_stored():
    """Three keys in a 2-entry map leave the last two, and one eviction is counted."""
    lru = BoundedLRU(2)
    for k in "abc":
        lru[k] = k.upper()
    assert list(lru) == ["b", "c"] and lru.evicted == 1 and "a" not in lru and len(lru) == 2


def test_storing_again_refreshes_but_reading_does_not():
    """A key stored again is the newest; reading a key leaves the order alone."""
    lru = BoundedLRU(2)
    lru["a"], lru["b"] = 1, 2
    assert lru["a"] == 1 and lru.get("a") == 1 and "a" in lru
    lru["c"] = 3
    assert list(lru) == ["b", "c"]          # a was read, not stored: it went first
    lru["b"] = 20
    lru["d"] = 4
    assert list(lru.items()) == [("b", 20), ("d", 4)]


def test_pop_and_missing_keys():
    """pop removes a key; get and pop of a missing key give the default; [] raises KeyError."""
    lru = BoundedLRU(3)
    lru["a"] = 1
    assert lru.pop("a") == 1 and lru.pop("a", 0) == 0 and lru.get("x") is None
    with pytest.raises(KeyError):
        lru["x"]


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, None])
def test_the_limit_must_be_a_positive_int(bad):
    """A map with no room is a configuration error naming the value."""
    with pytest.raises(ConfigError, match=repr(bad).replace(".", r"\.")):
        BoundedLRU(bad)


def test_the_three_former_copies_use_it():
    """The rate limiter keeps its most recently used keys; the command tracker's results are bounded by it."""
    from perfmesh.mesh.commands import MAX_DONE, CommandTracker
    from perfmesh.mesh.ratelimit import RateLimiter
    limiter = RateLimiter(1.0, 1.0, max_keys=2)
    for key in ("h1", "h2", "h1", "h3"):
        limiter.allow(key, now=0.0)
    assert isinstance(limiter.buckets, BoundedLRU) and list(limiter.buckets) == ["h1", "h3"]
    tracker = CommandTracker()
    assert isinstance(tracker.done, BoundedLRU) and tracker.done.max_entries == MAX_DONE
