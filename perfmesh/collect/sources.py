"""Where raw system snapshots come from: psutil, Linux /proc, or the standard library.

A :class:`Source` answers with snapshots (perfmesh.model.snapshots) or None / {} for what it
cannot tell; the collector simply omits those metrics. :func:`default_source` picks the best
one available: psutil when it imports, else /proc on Linux, else the standard library.
"""

from __future__ import annotations

import os
import sys
from typing import Protocol, runtime_checkable

from . import procfs
from ..model.snapshots import CpuTimes, DiskCounters, LoadAvg, MemoryInfo, NetCounters, SwapInfo

__all__ = [
    "CpuTimes",
    "DiskCounters",
    "LoadAvg",
    "MemoryInfo",
    "NetCounters",
    "ProcSource",
    "Source",
    "StdlibSource",
    "SwapInfo",
    "default_source",
]


@runtime_checkable
class Source(Protocol):
    """What the collector asks of a platform. Every method is one cheap, current read."""

    name: str

    def cpu_times(self) -> tuple[CpuTimes, dict[str, CpuTimes]] | None:
        """(total, {cpu id: per-CPU}) cumulative CPU seconds, or None if unknown."""

    def load_avg(self) -> LoadAvg | None:
        """1/5/15-minute load averages, or None if unknown."""

    def cpu_count(self) -> int | None:
        """Logical CPUs, or None if unknown."""

    def memory(self) -> tuple[MemoryInfo | None, SwapInfo | None]:
        """(memory, swap), each None if unknown; one read serves both."""

    def disk_counters(self) -> dict[str, DiskCounters]:
        """{device: cumulative counters} of whole physical disks; {} if unknown."""

    def net_counters(self) -> dict[str, NetCounters]:
        """{interface: cumulative counters}; {} if unknown."""


class ProcSource:
    """Linux /proc, read directly: one read per file per call, parsed by perfmesh.collect.procfs.

    ``root`` lets tests point at captured files. A file that cannot be read yields None / {}.
    """

    name = "proc"

    def __init__(self, root: str = "/proc", ticks_per_s: float | None = None) -> None:
        self.root = root
        if ticks_per_s is None:
            ticks_per_s = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0
        self.ticks_per_s = ticks_per_s
        join = os.path.join
        self._stat = join(root, "stat")
        self._loadavg = join(root, "loadavg")
        self._meminfo = join(root, "meminfo")
        self._diskstats = join(root, "diskstats")
        self._net_dev = join(root, "net", "dev")

    @staticmethod
    def _read(path: str) -> str | None:
        try:
            with open(path, "rb", buffering=0) as f:  # unbuffered: one read() of the whole file
                return f.read().decode("utf-8", "replace")
        except OSError:
            return None

    def cpu_times(self) -> tuple[CpuTimes, dict[str, CpuTimes]] | None:
        text = self._read(self._stat)
        return None if text is None else procfs.parse_stat(text, self.ticks_per_s)

    def load_avg(self) -> LoadAvg | None:
        text = self._read(self._loadavg)
        return None if text is None else procfs.parse_loadavg(text)

    def cpu_count(self) -> int | None:
        return os.cpu_count()

    def memory(self) -> tuple[MemoryInfo | None, SwapInfo | None]:
        text = self._read(self._meminfo)
        if text is None:
            return None, None
        return procfs.memory_from_meminfo(procfs.parse_meminfo(text, procfs.MEMINFO_FIELDS))

    def disk_counters(self) -> dict[str, DiskCounters]:
        text = self._read(self._diskstats)
        return {} if text is None else procfs.parse_diskstats(text)

    def net_counters(self) -> dict[str, NetCounters]:
        text = self._read(self._net_dev)
        return {} if text is None else procfs.parse_net_dev(text)


class StdlibSource:
    """Whatever the standard library tells on any OS: load average, CPU count, and physical
    memory through sysconf where the platform has it. No CPU times, disks or networks."""

    name = "stdlib"

    def cpu_times(self) -> None:
        return None

    def load_avg(self) -> LoadAvg | None:
        try:
            return LoadAvg(*os.getloadavg())
        except (AttributeError, OSError):  # Windows has no getloadavg
            return None

    def cpu_count(self) -> int | None:
        return os.cpu_count()

    def memory(self) -> tuple[MemoryInfo | None, None]:
        try:
            page = os.sysconf("SC_PAGE_SIZE")
            total = os.sysconf("SC_PHYS_PAGES") * page
            available = os.sysconf("SC_AVPHYS_PAGES") * page
        except (AttributeError, ValueError, OSError):  # no sysconf, or name unknown here
            return None, None
        return MemoryInfo(total, available), None

    def disk_counters(self) -> dict[str, DiskCounters]:
        return {}

    def net_counters(self) -> dict[str, NetCounters]:
        return {}


def default_source(proc_root: str = "/proc") -> Source:
    """PsutilSource when psutil imports, else ProcSource on Linux, else StdlibSource."""
    try:
        from .psutil_source import PsutilSource
    except ImportError:
        pass
    else:
        return PsutilSource()
    if sys.platform.startswith("linux") and os.path.exists(os.path.join(proc_root, "stat")):
        return ProcSource(proc_root)
    return StdlibSource()
