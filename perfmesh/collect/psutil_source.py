"""PsutilSource: the only module that imports psutil (importing it raises ImportError
when psutil is missing, which is how perfmesh.collect.sources.default_source falls back)."""

from __future__ import annotations

import psutil

from .procfs import physical_disks
from ..model.snapshots import CpuTimes, DiskCounters, LoadAvg, MemoryInfo, NetCounters, SwapInfo


def _cpu_times(t) -> CpuTimes:  # psutil scputimes: fields vary by OS, missing ones are 0
    return CpuTimes(
        t.user,
        getattr(t, "nice", 0.0),
        t.system,
        t.idle,
        getattr(t, "iowait", 0.0),
        getattr(t, "irq", 0.0),
        getattr(t, "softirq", 0.0),
        getattr(t, "steal", 0.0),
    )


class PsutilSource:
    """Snapshots from psutil, on any OS psutil supports."""

    name = "psutil"

    def cpu_times(self) -> tuple[CpuTimes, dict[str, CpuTimes]] | None:
        # One per-CPU read; the total is their sum (the kernel's total line is the same sum).
        raw = psutil.cpu_times(percpu=True)
        if not raw:
            return None
        per_cpu = {str(i): _cpu_times(t) for i, t in enumerate(raw)}
        total = _cpu_times(type(raw[0])(*map(sum, zip(*raw))))
        return total, per_cpu

    def load_avg(self) -> LoadAvg | None:
        try:
            return LoadAvg(*psutil.getloadavg())
        except (AttributeError, OSError):
            return None

    def cpu_count(self) -> int | None:
        return psutil.cpu_count()

    def memory(self) -> tuple[MemoryInfo | None, SwapInfo | None]:
        vm = psutil.virtual_memory()
        try:
            sw = psutil.swap_memory()
            swap: SwapInfo | None = SwapInfo(sw.total, sw.free)
        except (OSError, RuntimeError):  # e.g. swap info unreadable in some containers
            swap = None
        return MemoryInfo(vm.total, vm.available), swap

    def disk_counters(self) -> dict[str, DiskCounters]:
        counters = psutil.disk_io_counters(perdisk=True) or {}
        keep = physical_disks(counters)
        return {
            name: DiskCounters(
                c.read_bytes, c.write_bytes, c.read_count, c.write_count, getattr(c, "busy_time", None)
            )
            for name, c in counters.items()
            if name in keep
        }

    def net_counters(self) -> dict[str, NetCounters]:
        counters = psutil.net_io_counters(pernic=True) or {}
        return {
            name: NetCounters(
                c.bytes_recv, c.bytes_sent, c.packets_recv, c.packets_sent,
                c.errin, c.errout, c.dropin, c.dropout,
            )
            for name, c in counters.items()
        }
