"""Prometheus names for perfmesh series: base units, ``_total`` counters, separate families
for totals and per-device series. One rule, used by ``/metrics`` and by remote write, so a
query works the same on either.

- The collectors' series have explicit names (``COLLECTOR``): percentages become 0-1 ratios
  (``cpu_percent`` -> ``perfmesh_cpu_busy_ratio``, per CPU ``perfmesh_cpu_core_busy_ratio``),
  ``load_1m`` -> ``perfmesh_load1``, ``cpu_count`` -> ``perfmesh_cpus``. The per-second disk
  and network rates are not exported: the raw counters the collectors send beside them
  (``disk_read_bytes_total{device}``, ``net_receive_bytes_total{interface}``, ...) are, as
  counters, for ``rate()``.
- A series whose name ends in ``_total`` is a counter and keeps its name; ``<x>_seconds_bucket``
  (label ``le``), ``<x>_seconds_sum`` and ``<x>_seconds_count`` are the parts of histogram
  ``perfmesh_<x>_seconds`` (the applications' ``response_time_seconds``).
- Any other series is a gauge named ``perfmesh_<name>`` in base units by its unit: ``ms`` ->
  seconds (``_ms`` -> ``_seconds``), ``%`` -> ratio (``_percent`` -> ``_ratio``), ``KB``/``MB``
  -> bytes, ``/s`` -> ``_per_second``; ``_count``/``_sum``/``_bucket`` endings (reserved for
  histograms) become ``_value``.
- Names under ``perfmesh_host_``, ``perfmesh_budget_``, ``perfmesh_aggregator_`` and
  ``perfmesh_remote_write_`` are ours: a series that would land there is not exported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PREFIX = "perfmesh_"
RESERVED = ("perfmesh_aggregator_", "perfmesh_budget_", "perfmesh_host_", "perfmesh_remote_write_")
_BAD = re.compile(r"[^a-zA-Z0-9_]")
MB = 1024.0 * 1024.0


@dataclass(frozen=True, slots=True)
class PromName:
    """Where one perfmesh series goes in Prometheus: metric name, counter or gauge, and how
    to get from the series' unit to the base unit (``value * scale / per``: dividing keeps
    95 % exactly 0.95)."""

    name: str
    counter: bool = False
    scale: float = 1.0
    help: str = ""
    per: float = 1.0
    histogram: str = ""     # the family of a _bucket/_sum/_count series, else ""

    def convert(self, value: float) -> float:
        return value * self.scale / self.per

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "counter": self.counter, "scale": self.scale, "per": self.per,
                "help": self.help, "histogram": self.histogram}


SKIP = PromName("")
"""Not exported (a rate whose raw counter is exported instead)."""

_RATES = ("disk_read_bytes_per_s", "disk_write_bytes_per_s", "disk_read_ops_per_s", "disk_write_ops_per_s",
          "net_recv_bytes_per_s", "net_sent_bytes_per_s", "net_recv_packets_per_s", "net_sent_packets_per_s",
          "net_errors_in_per_s", "net_errors_out_per_s", "net_drops_in_per_s", "net_drops_out_per_s")


def _g(name: str, help: str, scale: float = 1.0, per: float = 1.0) -> PromName:
    return PromName(PREFIX + name, False, scale, help, per)


# stream name -> (host total, per-device series); None: that scope does not occur.
COLLECTOR: dict[str, tuple[PromName | None, PromName | None]] = {
    "cpu_percent": (_g("cpu_busy_ratio", "Share of CPU time busy (not idle or iowait), all CPUs", per=100.0),
                    _g("cpu_core_busy_ratio", "Share of one CPU's time busy (not idle or iowait)", per=100.0)),
    "cpu_user_percent": (_g("cpu_user_ratio", "Share of CPU time in user mode", per=100.0), None),
    "cpu_system_percent": (_g("cpu_system_ratio", "Share of CPU time in kernel mode", per=100.0), None),
    "cpu_iowait_percent": (_g("cpu_iowait_ratio", "Share of CPU time idle waiting for I/O", per=100.0), None),
    "load_1m": (_g("load1", "1-minute load average"), None),
    "load_5m": (_g("load5", "5-minute load average"), None),
    "load_15m": (_g("load15", "15-minute load average"), None),
    "cpu_count": (_g("cpus", "Logical CPUs"), None),
    "memory_percent": (_g("memory_used_ratio", "Share of physical memory in use", per=100.0), None),
    "swap_percent": (_g("swap_used_ratio", "Share of swap in use", per=100.0), None),
    "disk_busy_percent": (_g("disk_busiest_busy_ratio", "Share of time the busiest disk was busy", per=100.0), SKIP),
    **{name: (SKIP, SKIP) for name in _RATES},
    # application metrics (perfmesh.inproc.appmetrics)
    "function_calls": (None, PromName(PREFIX + "function_calls_total", True, 1.0, "Calls of a tracked function")),
    "context_calls": (None, PromName(PREFIX + "context_calls_total", True, 1.0, "Runs of a tracked context")),
    "request_count": (_g("interval_requests", "Requests in the last sample interval"), None),
    "response_time_ms": (_g("response_time_p95_seconds", "95th percentile response time in the last interval",
                            per=1000.0), None),
    "process_rss_mb": (_g("process_resident_memory_bytes", "Resident memory of the application", MB), None),
    "memory_growth_mb_per_min": (_g("memory_growth_bytes_per_second", "Slope of the resident memory",
                                    MB, per=60.0), None),
}

# (suffixes of the stream name, units) -> (new suffix, scale, per); first match wins.
_UNITS: tuple[tuple[tuple[str, ...], tuple[str, ...], str, float, float], ...] = (
    (("_ms",), ("ms",), "_seconds", 1.0, 1000.0),
    (("_us",), ("us", "µs"), "_seconds", 1.0, 1e6),
    (("_s", "_sec"), ("s",), "_seconds", 1.0, 1.0),
    (("_percent", "_pct"), ("%", "percent"), "_ratio", 1.0, 100.0),
    (("_kb",), ("KB", "kB", "kb", "KiB"), "_bytes", 1024.0, 1.0),
    (("_mb",), ("MB", "mb", "MiB"), "_bytes", MB, 1.0),
    (("_bytes", "_b"), ("B", "bytes"), "_bytes", 1.0, 1.0),
)
_HISTOGRAM_SUFFIXES = ("_count", "_sum", "_bucket")


def sanitize(name: str) -> str:
    return _BAD.sub("_", name)


def generic(name: str, unit: str) -> PromName:
    """The rule for series without an entry in COLLECTOR (application and custom metrics)."""
    base = sanitize(name)
    family, _, part = base.rpartition("_")
    if part in ("bucket", "sum", "count") and family.endswith("_seconds"):   # a histogram in seconds
        return PromName(PREFIX + base, False, 1.0, f"{family} histogram", 1.0, PREFIX + family)
    if base.endswith("_total"):
        return PromName(PREFIX + base, True, 1.0, f"{name} ({unit or 'count'}), a counter")
    scale = per = 1.0
    if unit.endswith("/s") or base.endswith("_per_s"):
        base = base[:-len("_per_s")] + "_per_second" if base.endswith("_per_s") else base + "_per_second"
    else:
        for suffixes, units, new, factor, divisor in _UNITS:
            hit = next((s for s in suffixes if base.endswith(s)), None)
            if hit is not None or unit in units:
                base = base[:-len(hit)] if hit is not None else base
                base = base if base.endswith(new) else base + new
                if unit in units or not unit:
                    scale, per = factor, divisor
                break
    if base.endswith(_HISTOGRAM_SUFFIXES):
        base += "_value"
    return PromName(PREFIX + base, False, scale, f"{name} ({unit or 'no unit'}) in base units", per)


def prom_name(name: str, unit: str, labelled: bool) -> PromName | None:
    """The Prometheus name of a series (``labelled``: it has labels such as device or cpu), or
    None when it is not exported."""
    entry = COLLECTOR.get(name)
    if entry is not None:
        out = entry[1] if labelled else entry[0]
        if out is None:
            out = generic(name, unit)
    else:
        out = generic(name, unit)
    if out is SKIP or out.name.startswith(RESERVED):
        return None
    return out


class NameCache:
    """prom_name by (name, unit, labelled), bounded: a full cache is cleared, not grown."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._names: dict[tuple[str, str, bool], PromName | None] = {}

    def get(self, name: str, unit: str, labelled: bool) -> PromName | None:
        key = (name, unit, labelled)
        try:
            return self._names[key]
        except KeyError:
            pass
        if len(self._names) >= self.max_entries:
            self._names.clear()
        out = self._names[key] = prom_name(name, unit, labelled)
        return out

    def __len__(self) -> int:
        return len(self._names)
