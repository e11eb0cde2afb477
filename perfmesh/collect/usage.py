"""UsageCollector: "who is using the machine" as PerformanceMetrics with bounded cardinality.

It composes :class:`~perfmesh.collect.processes.ProcessCollector`,
:class:`~perfmesh.collect.cgroups.CgroupCollector`,
:class:`~perfmesh.collect.pressure.PressureCollector` and
:class:`~perfmesh.collect.filesystems.FilesystemCollector` and returns, per sample, the
metrics and the series RETIRED since the previous sample (a process that exited or left the
top lists, a cgroup removed, a filesystem unmounted): a retired series is not reported again
unless it comes back, and consumers can drop it at once instead of waiting for it to age out.

Metric names (labels in braces):

- process ({pid, start_ticks, comm, user, unit, cgroup}, one set per process in the union of
  the top-N lists by CPU, resident memory and I/O): process_cpu_percent (100 = one CPU),
  process_rss_bytes, process_read_bytes_per_s, process_write_bytes_per_s,
  process_start_time_seconds (since the epoch); and unlabelled process_count.
- process ({cgroup, unit}, the union of the top-N groups by each resource):
  cgroup_cpu_percent (100 = one CPU), cgroup_memory_bytes, cgroup_read_bytes_per_s,
  cgroup_write_bytes_per_s.
- cpu / memory / io ({resource}; category = the resource): pressure_some_avg10_percent,
  pressure_some_avg60_percent, pressure_some_avg300_percent, pressure_some_stall_percent
  (stalled share of the last interval, from ``total``), and the same for ``full``.
- io ({mountpoint, device, fstype}): filesystem_size_bytes, filesystem_available_bytes,
  filesystem_used_percent, filesystem_inodes_total, filesystem_inodes_free,
  filesystem_inodes_used_percent.

Processes are emitted in (pid, start) order and groups in path order, not in rank order, so
the set and order of series (a batch's schema) changes only when a member joins or leaves a
top list, not each time two members swap ranks.

The series count is bounded: at most 3 x top_n processes x 5 + 3 x top_n groups x 4 + 24
pressure series + 6 per filesystem. Label values are cut to LABEL_VALUE_MAX characters (a long
cgroup path keeps its end, where the unit is).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ..model.metric import PerformanceMetric, series_key
from .cgroups import CgroupCollector, CgroupSample
from .filesystems import FilesystemCollector, FilesystemUsage
from .pressure import Pressure, PressureCollector
from .processes import DEFAULT_TOP_N, ProcessCollector, ProcessSample

LABEL_VALUE_MAX = 128
"""The wire's limit on a label value (perfmesh.protocol.batch.MAX_LABEL_VALUE_LEN)."""


def label_value(text: str) -> str:
    """``text`` cut to LABEL_VALUE_MAX characters, keeping its end (``...`` marks the cut)."""
    return text if len(text) <= LABEL_VALUE_MAX else "..." + text[-(LABEL_VALUE_MAX - 3):]


@dataclass(frozen=True, slots=True)
class UsageSample:
    """One sample: the metrics, and the keys of the series retired since the previous one."""

    timestamp: float
    metrics: list[PerformanceMetric] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"timestamp": self.timestamp, "metrics": [m.to_dict() for m in self.metrics],
                "retired": list(self.retired)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "UsageSample":
        return cls(data["timestamp"], [PerformanceMetric.from_dict(m) for m in data["metrics"]],
                   list(data.get("retired", [])))


def process_metrics(sample: ProcessSample) -> list[PerformanceMetric]:
    now = sample.timestamp
    out = [PerformanceMetric("process_count", float(sample.process_count), "", now, "process")]
    for p in sorted(sample.members(), key=lambda p: (p.pid, p.start_ticks)):
        labels = {"pid": str(p.pid), "start_ticks": str(p.start_ticks), "comm": label_value(p.comm),
                  "user": label_value(p.user), "unit": label_value(p.unit),
                  "cgroup": label_value(p.cgroup)}
        for name, value, unit in (
            ("process_cpu_percent", p.cpu_percent, "%"),
            ("process_rss_bytes", p.rss_bytes, "B"),
            ("process_read_bytes_per_s", p.read_bytes_per_s, "B/s"),
            ("process_write_bytes_per_s", p.write_bytes_per_s, "B/s"),
            ("process_start_time_seconds", p.start_time_s, "s"),
        ):
            if value is not None:
                out.append(PerformanceMetric(name, float(value), unit, now, "process", context=dict(labels)))
    return out


def cgroup_metrics(sample: CgroupSample) -> list[PerformanceMetric]:
    now = sample.timestamp
    out = []
    for g in sorted(sample.members(), key=lambda g: g.path):
        labels = {"cgroup": label_value(g.path), "unit": label_value(g.unit)}
        for name, value, unit in (
            ("cgroup_cpu_percent", g.cpu_percent, "%"),
            ("cgroup_memory_bytes", g.memory_bytes, "B"),
            ("cgroup_read_bytes_per_s", g.read_bytes_per_s, "B/s"),
            ("cgroup_write_bytes_per_s", g.write_bytes_per_s, "B/s"),
        ):
            if value is not None:
                out.append(PerformanceMetric(name, float(value), unit, now, "process", context=dict(labels)))
    return out


def pressure_metrics(pressures: list[Pressure], now: float) -> list[PerformanceMetric]:
    out = []
    for p in pressures:
        labels = {"resource": p.resource}
        prefix = f"pressure_{p.kind}_"
        for name, value in (
            ("avg10_percent", p.line.avg10_percent),
            ("avg60_percent", p.line.avg60_percent),
            ("avg300_percent", p.line.avg300_percent),
            ("stall_percent", p.stall_percent),
        ):
            if value is not None:
                out.append(PerformanceMetric(prefix + name, value, "%", now, p.resource, context=dict(labels)))
    return out


def filesystem_metrics(usages: list[FilesystemUsage], now: float) -> list[PerformanceMetric]:
    out = []
    for u in usages:
        labels = {"mountpoint": label_value(u.mountpoint), "device": label_value(u.device),
                  "fstype": label_value(u.fstype)}
        for name, value, unit in (
            ("filesystem_size_bytes", u.size_bytes, "B"),
            ("filesystem_available_bytes", u.available_bytes, "B"),
            ("filesystem_used_percent", u.used_percent, "%"),
            ("filesystem_inodes_total", u.inodes_total, ""),
            ("filesystem_inodes_free", u.inodes_free, ""),
            ("filesystem_inodes_used_percent", u.inodes_used_percent, "%"),
        ):
            out.append(PerformanceMetric(name, float(value), unit, now, "io", context=dict(labels)))
    return out


class UsageCollector:
    """Processes, cgroups, pressure and filesystems in one sample, with retirement.

    ``proc_root`` and ``cgroup_root`` may point at fake trees; a part can be turned off.
    """

    def __init__(self, proc_root: str = "/proc", cgroup_root: str = "/sys/fs/cgroup",
                 top_n: int = DEFAULT_TOP_N, processes: bool = True, cgroups: bool = True,
                 pressure: bool = True, filesystems: bool = True, include_tmpfs: bool = False,
                 **process_options: Any) -> None:
        self.processes = ProcessCollector(proc_root, top_n, **process_options) if processes else None
        self.cgroups = CgroupCollector(cgroup_root, top_n) if cgroups else None
        self.pressure = PressureCollector(proc_root) if pressure else None
        self.filesystems = FilesystemCollector(proc_root, include_tmpfs) if filesystems else None
        self._keys: set[str] = set()
        self.last_processes: ProcessSample | None = None
        self.last_cgroups: CgroupSample | None = None

    def sample(self, now: float) -> UsageSample:
        metrics: list[PerformanceMetric] = []
        if self.processes is not None:
            self.last_processes = self.processes.sample(now)
            metrics += process_metrics(self.last_processes)
        if self.cgroups is not None:
            self.last_cgroups = self.cgroups.sample(now)
            metrics += cgroup_metrics(self.last_cgroups)
        if self.pressure is not None:
            metrics += pressure_metrics(self.pressure.sample(now), now)
        if self.filesystems is not None:
            metrics += filesystem_metrics(self.filesystems.sample(), now)
        keys = {series_key(m.name, m.context) for m in metrics}
        retired = sorted(self._keys - keys)
        self._keys = keys
        return UsageSample(now, metrics, retired)
