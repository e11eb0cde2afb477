"""Raw snapshots a :class:`~perfmesh.collect.sources.Source` returns: counters and gauges, no rates.

Counters (CPU seconds, disk bytes, network packets) only grow until a reset; the collector
turns two snapshots into rates. Gauges (memory, load) are used as they are.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, TypeVar

_S = TypeVar("_S", bound="_Snapshot")


class _Snapshot:
    """to_dict/from_dict shared by the snapshot dataclasses (all fields are plain numbers)."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[_S], data: Mapping[str, Any]) -> _S:
        return cls(**data)


class _Capacity(_Snapshot):
    """``percent`` of ``total_bytes`` that is ``used_bytes`` (0.0 when total is 0); the
    subclasses (memory, swap) define both."""

    __slots__ = ()

    @property
    def percent(self) -> float:
        total = self.total_bytes
        return self.used_bytes * 100.0 / total if total > 0 else 0.0


@dataclass(frozen=True, slots=True)
class CpuTimes(_Snapshot):
    """Cumulative CPU time in seconds per mode, as in the ``cpu`` lines of /proc/stat.

    ``user`` and ``nice`` already include guest time, so guest fields are not kept.
    """

    user: float = 0.0
    nice: float = 0.0
    system: float = 0.0
    idle: float = 0.0
    iowait: float = 0.0
    irq: float = 0.0
    softirq: float = 0.0
    steal: float = 0.0


@dataclass(frozen=True, slots=True)
class LoadAvg(_Snapshot):
    """Run-queue load averages over 1, 5 and 15 minutes."""

    load_1m: float
    load_5m: float
    load_15m: float


@dataclass(frozen=True, slots=True)
class MemoryInfo(_Capacity):
    """Physical memory. ``used`` is total - available, the basis of ``percent`` (as psutil)."""

    total_bytes: int
    available_bytes: int

    @property
    def used_bytes(self) -> int:
        return max(0, self.total_bytes - self.available_bytes)


@dataclass(frozen=True, slots=True)
class SwapInfo(_Capacity):
    """Swap space; ``percent`` is 0.0 when there is no swap."""

    total_bytes: int
    free_bytes: int

    @property
    def used_bytes(self) -> int:
        return max(0, self.total_bytes - self.free_bytes)


@dataclass(frozen=True, slots=True)
class DiskCounters(_Snapshot):
    """Cumulative I/O of one block device. ``busy_ms`` is None where the OS does not say."""

    read_bytes: int
    write_bytes: int
    read_ops: int
    write_ops: int
    busy_ms: int | None = None


@dataclass(frozen=True, slots=True)
class NetCounters(_Snapshot):
    """Cumulative traffic of one network interface."""

    recv_bytes: int
    sent_bytes: int
    recv_packets: int
    sent_packets: int
    errors_in: int = 0
    errors_out: int = 0
    drops_in: int = 0
    drops_out: int = 0
