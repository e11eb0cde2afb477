"""Rates from cumulative counters, and CPU percentages from CPU-time deltas. Pure: the
caller passes ``now``; nothing here reads a clock or the system."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable

from ..model.snapshots import CpuTimes


class CounterRates:
    """Per-second rates of monotonic counters, one remembered sample per key.

    ``rate`` is None on the first sight of a key, when the counter went backwards (a reset,
    a reboot, a 32-bit wrap: never a negative rate) and when time did not advance; the new
    sample is remembered in every case, so the next call yields a rate again.
    """

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: dict[Hashable, tuple[float, float]] = {}

    def rate(self, key: Hashable, counter_value: float, now: float) -> float | None:
        last = self._last.get(key)
        self._last[key] = (counter_value, now)
        if last is None:
            return None
        delta = counter_value - last[0]
        elapsed_s = now - last[1]
        if delta < 0 or elapsed_s <= 0:
            return None
        return delta / elapsed_s

    def forget(self, key: Hashable) -> None:
        """Drop a key (its next sample is a first sight)."""
        self._last.pop(key, None)

    def prune(self, before: float) -> int:
        """Drop keys last sampled before ``before`` (vanished devices); returns how many."""
        stale = [k for k, (_, t) in self._last.items() if t < before]
        for k in stale:
            del self._last[k]
        return len(stale)

    def __len__(self) -> int:
        return len(self._last)


@dataclass(frozen=True, slots=True)
class CpuPercent:
    """Share of CPU time between two snapshots, in percent of all time that passed."""

    busy_percent: float
    user_percent: float
    system_percent: float
    iowait_percent: float


def cpu_percent(prev: CpuTimes, cur: CpuTimes) -> CpuPercent | None:
    """CPU use between two snapshots: busy = all time except idle and iowait (as psutil).

    Per-field deltas below zero (idle/iowait can step back slightly on tickless kernels) count
    as zero. None when no time passed between the snapshots.
    """
    d_user = max(0.0, cur.user - prev.user)
    d_system = max(0.0, cur.system - prev.system)
    d_idle = max(0.0, cur.idle - prev.idle)
    d_iowait = max(0.0, cur.iowait - prev.iowait)
    total = (
        d_user
        + d_system
        + d_idle
        + d_iowait
        + max(0.0, cur.nice - prev.nice)
        + max(0.0, cur.irq - prev.irq)
        + max(0.0, cur.softirq - prev.softirq)
        + max(0.0, cur.steal - prev.steal)
    )
    if total <= 0.0:
        return None
    scale = 100.0 / total
    return CpuPercent(
        busy_percent=(total - d_idle - d_iowait) * scale,
        user_percent=d_user * scale,
        system_percent=d_system * scale,
        iowait_percent=d_iowait * scale,
    )
