"""MetricsCollector: samples a Source into PerformanceMetrics, keeps bounded history.

Metric names (labels in braces; every labelled family also has an unlabelled aggregate):

- cpu: cpu_percent (total, and {cpu} per CPU), cpu_user_percent, cpu_system_percent,
  cpu_iowait_percent, load_1m, load_5m, load_15m, cpu_count
- memory: memory_percent, memory_used_bytes, memory_available_bytes, memory_total_bytes,
  swap_percent, swap_used_bytes, swap_total_bytes
- disk (category io, {device}): disk_read_bytes_per_s, disk_write_bytes_per_s,
  disk_read_ops_per_s, disk_write_ops_per_s, disk_busy_percent
- network ({interface}): net_recv_bytes_per_s, net_sent_bytes_per_s, net_recv_packets_per_s,
  net_sent_packets_per_s, net_errors_in_per_s, net_errors_out_per_s, net_drops_in_per_s,
  net_drops_out_per_s
- raw counters beside the rates (cumulative since boot, per device only, for Prometheus's
  rate()): cpu_seconds_total{mode} (user, nice, system, idle, iowait, irq, softirq, steal),
  disk_read_bytes_total, disk_written_bytes_total, disk_reads_completed_total,
  disk_writes_completed_total, disk_io_time_seconds_total ({device}); net_receive_bytes_total,
  net_transmit_bytes_total, net_receive_packets_total, net_transmit_packets_total,
  net_receive_errors_total, net_transmit_errors_total, net_receive_drops_total,
  net_transmit_drops_total ({interface}). They come from the first sample on.

CPU percentages and per-second rates need two samples: the first sample of a counter emits
no rate, and a counter that went backwards (reset) emits none either. Aggregates are the sum
of the per-device rates of that sample, except disk_busy_percent, whose aggregate is the
busiest disk (the max), and network aggregates, which leave out the loopback interface.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable, Iterable, Mapping

from ..errors import ConfigError
from ..model.metric import PerformanceMetric, is_finite_number, series_key
from .rates import CounterRates, cpu_percent
from ..model.snapshots import CpuTimes
from .sources import Source, default_source

KINDS = ("cpu", "memory", "disk", "network", "io")
"""Kinds collect() accepts; "io" is disk + network (the mesh's io collector)."""

DEFAULT_KINDS = ("cpu", "memory", "disk", "network")

COLLECTOR_KINDS = ("cpu", "memory", "io")
"""The mesh's collector processes, one per kind (an agent's ``kinds``)."""

LOOPBACK_INTERFACES = frozenset({"lo", "lo0"})

# (metric name, counter attribute, unit, scale, is_percent). A percent is capped at 100 and
# aggregated as the max over devices; other rates are summed.
_RateField = tuple[str, str, str, float, bool]
_DISK_RATES = (
    ("disk_read_bytes_per_s", "read_bytes", "B/s", 1.0, False),
    ("disk_write_bytes_per_s", "write_bytes", "B/s", 1.0, False),
    ("disk_read_ops_per_s", "read_ops", "ops/s", 1.0, False),
    ("disk_write_ops_per_s", "write_ops", "ops/s", 1.0, False),
    ("disk_busy_percent", "busy_ms", "%", 0.1, True),  # busy ms per s / 1000 * 100
)
# (counter name, counter attribute, unit, scale): raw counters, sent as they are read
_CounterField = tuple[str, str, str, float]
_DISK_COUNTERS = (
    ("disk_read_bytes_total", "read_bytes", "B", 1.0), ("disk_written_bytes_total", "write_bytes", "B", 1.0),
    ("disk_reads_completed_total", "read_ops", "", 1.0), ("disk_writes_completed_total", "write_ops", "", 1.0),
    ("disk_io_time_seconds_total", "busy_ms", "s", 0.001),
)
_NET_COUNTERS = tuple((f"net_{d}_{what}_total", f"{a}_{b}" if b else a, unit, 1.0) for d, a, b, what, unit in (
    ("receive", "recv_bytes", "", "bytes", "B"), ("transmit", "sent_bytes", "", "bytes", "B"),
    ("receive", "recv_packets", "", "packets", ""), ("transmit", "sent_packets", "", "packets", ""),
    ("receive", "errors", "in", "errors", ""), ("transmit", "errors", "out", "errors", ""),
    ("receive", "drops", "in", "drops", ""), ("transmit", "drops", "out", "drops", "")))
_CPU_MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
_NET_RATES = (
    ("net_recv_bytes_per_s", "recv_bytes", "B/s", 1.0, False),
    ("net_sent_bytes_per_s", "sent_bytes", "B/s", 1.0, False),
    ("net_recv_packets_per_s", "recv_packets", "packets/s", 1.0, False),
    ("net_sent_packets_per_s", "sent_packets", "packets/s", 1.0, False),
    ("net_errors_in_per_s", "errors_in", "errors/s", 1.0, False),
    ("net_errors_out_per_s", "errors_out", "errors/s", 1.0, False),
    ("net_drops_in_per_s", "drops_in", "drops/s", 1.0, False),
    ("net_drops_out_per_s", "drops_out", "drops/s", 1.0, False),
)


def _resolve_kinds(kinds: Iterable[str] | str) -> tuple[bool, bool, bool, bool]:
    """(cpu, memory, disk, network) flags; ConfigError naming an unknown kind."""
    if isinstance(kinds, str):
        kinds = (kinds,)
    cpu = memory = disk = network = False
    for kind in kinds:
        if kind == "cpu":
            cpu = True
        elif kind == "memory":
            memory = True
        elif kind == "disk":
            disk = True
        elif kind == "network":
            network = True
        elif kind == "io":
            disk = network = True
        else:
            raise ConfigError(f"unknown metric kind {kind!r}; expected one of {KINDS}")
    return cpu, memory, disk, network


class _Batch:
    """Metrics of one sample with their series keys (computed once per series, not per sample)."""

    __slots__ = ("metrics", "keys", "now")

    def __init__(self, now: float) -> None:
        self.metrics: list[PerformanceMetric] = []
        self.keys: list[str] = []
        self.now = now

    def add(
        self, key: str, name: str, value: float, unit: str, category: str, context: dict[str, str]
    ) -> None:
        self.metrics.append(PerformanceMetric(name, value, unit, self.now, category, context=context))
        self.keys.append(key)

    def add_unlabelled(self, name: str, value: float, unit: str, category: str) -> None:
        self.metrics.append(PerformanceMetric(name, value, unit, self.now, category))
        self.keys.append(name)


class _CounterFamily:
    """Rates of one family of per-device counters (disks or network interfaces)."""

    __slots__ = ("fields", "counters", "label", "category", "not_aggregated", "rates", "series_keys")

    def __init__(
        self,
        fields: tuple[_RateField, ...],
        label: str,
        category: str,
        not_aggregated: frozenset[str],
        counters: tuple[_CounterField, ...] = (),
    ) -> None:
        self.fields = fields
        self.counters = counters
        self.label = label
        self.category = category
        self.not_aggregated = not_aggregated
        self.rates = CounterRates()
        self.series_keys: dict[str, tuple[str, ...]] = {}

    def sample(self, counters: Mapping[str, object], batch: _Batch) -> None:
        """Per-device rate metrics, then one unlabelled aggregate per metric that had a rate."""
        fields, label, category, rates = self.fields, self.label, self.category, self.rates
        now = batch.now
        aggregate: dict[str, float] = {}
        for device, c in counters.items():
            keys = self.series_keys.get(device)
            if keys is None:
                keys = tuple(series_key(f[0], {label: device}) for f in (*fields, *self.counters))
                self.series_keys[device] = keys
            for key, (name, attr, unit, scale) in zip(keys[len(fields):], self.counters):
                value = getattr(c, attr)
                if value is not None:
                    batch.add(key, name, value * scale, unit, category, {label: device})
            aggregated = device not in self.not_aggregated
            for key, (name, attr, unit, scale, is_percent) in zip(keys, fields):
                value = getattr(c, attr)
                if value is None:
                    continue
                r = rates.rate(key, value, now)
                if r is None:
                    continue
                r *= scale
                if is_percent:
                    r = min(100.0, r)
                batch.add(key, name, r, unit, category, {label: device})
                if aggregated:
                    if is_percent:
                        aggregate[name] = max(r, aggregate.get(name, 0.0))
                    else:
                        aggregate[name] = aggregate.get(name, 0.0) + r
        for name, _, unit, _, _ in fields:
            total = aggregate.get(name)
            if total is not None:
                batch.add_unlabelled(name, total, unit, category)
        if len(self.series_keys) > len(counters):  # devices vanished: forget them
            rates.prune(before=now)
            for device in [d for d in self.series_keys if d not in counters]:
                del self.series_keys[device]


class MetricsCollector:
    """Samples CPU, memory, disk and network from a Source (default: default_source()).

    Thread-safe: sampling is serialized by one lock (rate state is per collector), history
    and latest values by another, so readers never wait for a /proc read.
    """

    def __init__(
        self,
        interval: float = 1.0,
        history_size: int = 1000,
        source: Source | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not is_finite_number(interval) or interval <= 0:
            raise ConfigError(
                f"collector interval {interval!r} must be a finite number > 0 (seconds)"
            )
        if not isinstance(history_size, int) or isinstance(history_size, bool) or history_size < 1:
            raise ConfigError(f"collector history_size {history_size!r} must be an int >= 1")
        self.interval = float(interval)
        self.history_size = history_size
        self.source: Source = source if source is not None else default_source()
        self._clock = clock
        self._sample_lock = threading.Lock()
        self._history_lock = threading.Lock()
        self._history: dict[str, deque[tuple[float, float]]] = {}
        self._latest: dict[str, PerformanceMetric] = {}
        self._cpu_prev: CpuTimes | None = None
        self._per_cpu_prev: dict[str, CpuTimes] = {}
        self._per_cpu_keys: dict[str, str] = {}
        self._disk = _CounterFamily(_DISK_RATES, "device", "io", frozenset(), _DISK_COUNTERS)
        self._network = _CounterFamily(_NET_RATES, "interface", "network", LOOPBACK_INTERFACES, _NET_COUNTERS)
        self._mode_keys = {m: series_key("cpu_seconds_total", {"mode": m}) for m in _CPU_MODES}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.error_count = 0
        self.last_error: str | None = None

    # -- sampling -------------------------------------------------------------------------

    def collect(
        self, kinds: Iterable[str] | str = DEFAULT_KINDS, now: float | None = None
    ) -> list[PerformanceMetric]:
        """One sample of ``kinds`` at ``now`` (default clock()), recorded in history."""
        cpu, memory, disk, network = _resolve_kinds(kinds)
        with self._sample_lock:
            batch = _Batch(self._clock() if now is None else now)
            if cpu:
                self._sample_cpu(batch)
            if memory:
                self._sample_memory(batch)
            if disk:
                self._disk.sample(self.source.disk_counters(), batch)
            if network:
                self._network.sample(self.source.net_counters(), batch)
            self._record(batch)
        return batch.metrics

    def sample_cpu(self, now: float) -> list[PerformanceMetric]:
        """CPU metrics at ``now`` (not recorded in history)."""
        with self._sample_lock:
            batch = _Batch(now)
            self._sample_cpu(batch)
            return batch.metrics

    def sample_memory(self, now: float) -> list[PerformanceMetric]:
        """Memory and swap metrics at ``now`` (not recorded in history)."""
        with self._sample_lock:
            batch = _Batch(now)
            self._sample_memory(batch)
            return batch.metrics

    def sample_disk(self, now: float) -> list[PerformanceMetric]:
        """Disk rate metrics at ``now`` (not recorded in history)."""
        with self._sample_lock:
            batch = _Batch(now)
            self._disk.sample(self.source.disk_counters(), batch)
            return batch.metrics

    def sample_network(self, now: float) -> list[PerformanceMetric]:
        """Network rate metrics at ``now`` (not recorded in history)."""
        with self._sample_lock:
            batch = _Batch(now)
            self._network.sample(self.source.net_counters(), batch)
            return batch.metrics

    def _sample_cpu(self, batch: _Batch) -> None:
        add = batch.add_unlabelled
        times = self.source.cpu_times()
        if times is not None:
            total, per_cpu = times
            for mode, key in self._mode_keys.items():
                batch.add(key, "cpu_seconds_total", getattr(total, mode), "s", "cpu", {"mode": mode})
            prev, self._cpu_prev = self._cpu_prev, total
            pct = cpu_percent(prev, total) if prev is not None else None
            if pct is not None:
                add("cpu_percent", pct.busy_percent, "%", "cpu")
                add("cpu_user_percent", pct.user_percent, "%", "cpu")
                add("cpu_system_percent", pct.system_percent, "%", "cpu")
                add("cpu_iowait_percent", pct.iowait_percent, "%", "cpu")
            prev_per_cpu, self._per_cpu_prev = self._per_cpu_prev, per_cpu
            keys = self._per_cpu_keys
            for cpu_id, t in per_cpu.items():
                p = prev_per_cpu.get(cpu_id)
                pct = cpu_percent(p, t) if p is not None else None
                if pct is not None:
                    key = keys.get(cpu_id)
                    if key is None:
                        key = keys[cpu_id] = series_key("cpu_percent", {"cpu": cpu_id})
                    batch.add(key, "cpu_percent", pct.busy_percent, "%", "cpu", {"cpu": cpu_id})
        load = self.source.load_avg()
        if load is not None:
            add("load_1m", load.load_1m, "", "cpu")
            add("load_5m", load.load_5m, "", "cpu")
            add("load_15m", load.load_15m, "", "cpu")
        count = self.source.cpu_count()
        if count is not None:
            add("cpu_count", float(count), "", "cpu")

    def _sample_memory(self, batch: _Batch) -> None:
        add = batch.add_unlabelled
        mem, swap = self.source.memory()
        if mem is not None:
            add("memory_percent", mem.percent, "%", "memory")
            add("memory_used_bytes", float(mem.used_bytes), "B", "memory")
            add("memory_available_bytes", float(mem.available_bytes), "B", "memory")
            add("memory_total_bytes", float(mem.total_bytes), "B", "memory")
        if swap is not None:
            add("swap_percent", swap.percent, "%", "memory")
            add("swap_used_bytes", float(swap.used_bytes), "B", "memory")
            add("swap_total_bytes", float(swap.total_bytes), "B", "memory")

    # -- history --------------------------------------------------------------------------

    def _record(self, batch: _Batch) -> None:
        history, latest, size = self._history, self._latest, self.history_size
        with self._history_lock:
            for key, m in zip(batch.keys, batch.metrics):
                series = history.get(key)
                if series is None:
                    series = history[key] = deque(maxlen=size)
                series.append((m.timestamp, m.value))
                latest[key] = m

    def latest(self) -> dict[str, PerformanceMetric]:
        """The most recent metric of every series, keyed by series_key."""
        with self._history_lock:
            return dict(self._latest)

    def get_history(self, name: str, **labels: str) -> list[tuple[float, float]]:
        """(timestamp, value) pairs of one series, oldest first; [] if never sampled."""
        key = series_key(name, labels)
        with self._history_lock:
            series = self._history.get(key)
            return list(series) if series is not None else []

    def series(self) -> list[str]:
        """Keys of every series with history, sorted."""
        with self._history_lock:
            return sorted(self._history)

    # -- background thread ----------------------------------------------------------------

    @property
    def is_running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def start(self, kinds: Iterable[str] | str = DEFAULT_KINDS) -> None:
        """Collect ``kinds`` now and then every ``interval`` s in a daemon thread (no-op if
        already running). An exception in a sample is counted (error_count, last_error) and
        the loop goes on."""
        _resolve_kinds(kinds)
        if self.is_running:
            return
        self._stop.clear()
        kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
        self._thread = threading.Thread(
            target=self._run, args=(kinds,), name="perfmesh-collector", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop the background thread and wait for it (it wakes at once, not at the tick)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self, kinds: tuple[str, ...]) -> None:
        interval, monotonic = self.interval, time.monotonic
        deadline = monotonic()
        while True:
            try:
                self.collect(kinds)
            except Exception as exc:  # a sampling loop never dies on one bad sample
                self.error_count += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
            deadline += interval
            delay = deadline - monotonic()
            if delay < 0:  # fell behind: skip the missed ticks instead of bursting
                deadline, delay = monotonic(), 0.0
            if self._stop.wait(delay):
                return
