"""MetricsCollector and the sources: exact metrics from scripted snapshots and a fake clock,
/proc files written by the test, the psutil-less fallback, and the background thread."""

import itertools
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from perfmesh.collect import sources
from perfmesh.collect.collection import DEFAULT_KINDS, KINDS, MetricsCollector
from perfmesh.errors import ConfigError
from perfmesh.collect.psutil_source import PsutilSource
from perfmesh.model.snapshots import CpuTimes, DiskCounters, LoadAvg, MemoryInfo, NetCounters, SwapInfo
from perfmesh.collect.sources import ProcSource, Source, StdlibSource, default_source
from tests.waiting import wait_until

GIB = 1024**3


class FakeSource:
    """A Source whose snapshots the test sets between samples."""

    name = "fake"

    def __init__(self):
        self.cpu = None
        self.load = None
        self.count = None
        self.mem = (None, None)
        self.disks = {}
        self.nics = {}

    def cpu_times(self):
        return self.cpu

    def load_avg(self):
        return self.load

    def cpu_count(self):
        return self.count

    def memory(self):
        return self.mem

    def disk_counters(self):
        return self.disks

    def net_counters(self):
        return self.nics


def values(metrics, counters=False):
    """{series key: value} of a sample (without the raw *_total counters unless asked)."""
    return {m.key: m.value for m in metrics if counters or not m.name.endswith("_total")}


def cpu(user, idle, iowait=0.0, system=0.0):
    return CpuTimes(user=user, system=system, idle=idle, iowait=iowait)


# -- the collector on scripted snapshots ---------------------------------------------------


def test_first_cpu_sample_has_load_and_count_but_no_percent():
    """CPU percent needs two samples: the first emits only load averages and cpu_count."""
    src = FakeSource()
    src.cpu = (cpu(10, 10), {"0": cpu(10, 10)})
    src.load, src.count = LoadAvg(0.5, 0.25, 0.125), 4
    got = values(MetricsCollector(source=src).collect(["cpu"], now=1.0))
    assert got == {"load_1m": 0.5, "load_5m": 0.25, "load_15m": 0.125, "cpu_count": 4.0}


def test_second_cpu_sample_gives_total_breakdown_and_per_cpu_percent():
    """Deltas between samples give cpu_percent (total and {cpu}) and user/system/iowait."""
    src = FakeSource()
    src.cpu = (cpu(0, 0), {"0": cpu(0, 0), "1": cpu(0, 0)})
    c = MetricsCollector(source=src)
    c.collect("cpu", now=1.0)
    src.cpu = (cpu(4, 4, iowait=1, system=1), {"0": cpu(4, 0), "1": cpu(0, 4)})
    metrics = [m for m in c.collect("cpu", now=2.0) if not m.name.endswith("_total")]
    assert values(metrics) == {
        "cpu_percent": 50.0,
        "cpu_user_percent": 40.0,
        "cpu_system_percent": 10.0,
        "cpu_iowait_percent": 10.0,
        "cpu_percent{cpu=0}": 100.0,
        "cpu_percent{cpu=1}": 0.0,
    }
    assert {(m.unit, m.category, m.timestamp) for m in metrics} == {("%", "cpu", 2.0)}
    assert metrics[4].context == {"cpu": "0"}


def test_raw_counters_come_from_the_first_sample_per_device_in_base_units():
    """cpu_seconds_total{mode}, disk_*_total{device} (busy in seconds) and net_*_total{interface}
    are the raw cumulative counters, sent from the first sample on, with no aggregate."""
    src = FakeSource()
    src.cpu = (CpuTimes(user=7, system=3, idle=90, iowait=1, steal=0.5), {})
    src.disks = {"sda": DiskCounters(2000, 4000, 20, 40, 1500)}
    src.nics = {"eth0": NetCounters(10, 20, 1, 2, 3, 4, 5, 6)}
    got = values(MetricsCollector(source=src).collect(["cpu", "io"], now=1.0), counters=True)
    assert {k: v for k, v in got.items() if k.startswith("cpu_seconds")} == {
        "cpu_seconds_total{mode=user}": 7, "cpu_seconds_total{mode=nice}": 0.0,
        "cpu_seconds_total{mode=system}": 3, "cpu_seconds_total{mode=idle}": 90,
        "cpu_seconds_total{mode=iowait}": 1, "cpu_seconds_total{mode=irq}": 0.0,
        "cpu_seconds_total{mode=softirq}": 0.0, "cpu_seconds_total{mode=steal}": 0.5}
    assert {k: v for k, v in got.items() if not k.startswith("cpu")} == {
        "disk_read_bytes_total{device=sda}": 2000, "disk_written_bytes_total{device=sda}": 4000,
        "disk_reads_completed_total{device=sda}": 20, "disk_writes_completed_total{device=sda}": 40,
        "disk_io_time_seconds_total{device=sda}": 1.5,
        "net_receive_bytes_total{interface=eth0}": 10, "net_transmit_bytes_total{interface=eth0}": 20,
        "net_receive_packets_total{interface=eth0}": 1, "net_transmit_packets_total{interface=eth0}": 2,
        "net_receive_errors_total{interface=eth0}": 3, "net_transmit_errors_total{interface=eth0}": 4,
        "net_receive_drops_total{interface=eth0}": 5, "net_transmit_drops_total{interface=eth0}": 6}


def test_cpu_that_comes_online_starts_without_a_percent():
    """A CPU id absent from the previous sample gets no percent until its second sample."""
    src = FakeSource()
    src.cpu = (cpu(0, 0), {"0": cpu(0, 0)})
    c = MetricsCollector(source=src)
    c.collect("cpu", now=1.0)
    src.cpu = (cpu(2, 2), {"0": cpu(1, 1), "1": cpu(1, 1)})
    assert "cpu_percent{cpu=1}" not in values(c.collect("cpu", now=2.0))


def test_memory_and_swap_metrics_exact():
    """Memory 3 of 4 GiB used = 75 %; swap 1 of 2 GiB = 50 %; all category memory."""
    src = FakeSource()
    src.mem = (MemoryInfo(4 * GIB, 1 * GIB), SwapInfo(2 * GIB, 1 * GIB))
    metrics = MetricsCollector(source=src).collect(["memory"], now=5.0)
    assert values(metrics) == {
        "memory_percent": 75.0,
        "memory_used_bytes": 3.0 * GIB,
        "memory_available_bytes": 1.0 * GIB,
        "memory_total_bytes": 4.0 * GIB,
        "swap_percent": 50.0,
        "swap_used_bytes": 1.0 * GIB,
        "swap_total_bytes": 2.0 * GIB,
    }
    assert {m.category for m in metrics} == {"memory"}


def test_missing_values_are_omitted():
    """A source that knows nothing yields no metrics rather than zeros."""
    assert MetricsCollector(source=FakeSource()).collect(now=1.0) == []


def test_disk_rates_per_device_and_aggregate():
    """Per-device rates labelled {device}; aggregate sums rates, busy is the busiest disk."""
    src = FakeSource()
    src.disks = {"sda": DiskCounters(0, 0, 0, 0, 0), "sdb": DiskCounters(0, 0, 0, 0, 0)}
    c = MetricsCollector(source=src)
    assert values(c.collect("disk", now=10.0)) == {}
    src.disks = {"sda": DiskCounters(2000, 4000, 20, 40, 1000), "sdb": DiskCounters(200, 0, 2, 0, 500)}
    got = values(c.collect("disk", now=12.0))
    assert got == {
        "disk_read_bytes_per_s{device=sda}": 1000.0,
        "disk_write_bytes_per_s{device=sda}": 2000.0,
        "disk_read_ops_per_s{device=sda}": 10.0,
        "disk_write_ops_per_s{device=sda}": 20.0,
        "disk_busy_percent{device=sda}": 50.0,
        "disk_read_bytes_per_s{device=sdb}": 100.0,
        "disk_write_bytes_per_s{device=sdb}": 0.0,
        "disk_read_ops_per_s{device=sdb}": 1.0,
        "disk_write_ops_per_s{device=sdb}": 0.0,
        "disk_busy_percent{device=sdb}": 25.0,
        "disk_read_bytes_per_s": 1100.0,
        "disk_write_bytes_per_s": 2000.0,
        "disk_read_ops_per_s": 11.0,
        "disk_write_ops_per_s": 20.0,
        "disk_busy_percent": 50.0,
    }


def test_disk_busy_is_capped_at_100_and_skipped_when_unknown():
    """Busy time beyond wall time (merged queues) caps at 100 %; busy_ms None emits no busy."""
    src = FakeSource()
    src.disks = {"sda": DiskCounters(0, 0, 0, 0, 0), "md0": DiskCounters(0, 0, 0, 0, None)}
    c = MetricsCollector(source=src)
    c.collect("disk", now=0.0)
    src.disks = {"sda": DiskCounters(0, 0, 0, 0, 1500), "md0": DiskCounters(0, 0, 0, 0, None)}
    got = values(c.collect("disk", now=1.0))
    assert got["disk_busy_percent{device=sda}"] == 100.0
    assert "disk_busy_percent{device=md0}" not in got
    assert got["disk_read_bytes_per_s{device=md0}"] == 0.0


def test_counter_reset_omits_the_rate_never_negative():
    """A counter that goes backwards (reboot, wrap) emits no rate that sample, then recovers."""
    src = FakeSource()
    src.disks = {"sda": DiskCounters(5000, 0, 0, 0, 0)}
    c = MetricsCollector(source=src)
    c.collect("disk", now=0.0)
    src.disks = {"sda": DiskCounters(100, 0, 0, 0, 0)}
    got = values(c.collect("disk", now=1.0))
    assert "disk_read_bytes_per_s{device=sda}" not in got and "disk_read_bytes_per_s" not in got
    assert got["disk_write_bytes_per_s{device=sda}"] == 0.0
    src.disks = {"sda": DiskCounters(600, 0, 0, 0, 0)}
    assert values(c.collect("disk", now=2.0))["disk_read_bytes_per_s{device=sda}"] == 500.0


def test_network_rates_labelled_and_loopback_left_out_of_aggregate():
    """{interface} rates for every NIC; the unlabelled aggregate excludes lo."""
    src = FakeSource()
    src.nics = {"lo": NetCounters(0, 0, 0, 0), "eth0": NetCounters(0, 0, 0, 0)}
    c = MetricsCollector(source=src)
    c.collect("network", now=0.0)
    src.nics = {"lo": NetCounters(1000, 1000, 10, 10), "eth0": NetCounters(400, 200, 4, 2, 1, 2, 3, 4)}
    metrics = c.collect("network", now=2.0)
    got = values(metrics)
    assert got["net_recv_bytes_per_s{interface=lo}"] == 500.0
    assert {k: v for k, v in got.items() if "{" not in k} == {
        "net_recv_bytes_per_s": 200.0,
        "net_sent_bytes_per_s": 100.0,
        "net_recv_packets_per_s": 2.0,
        "net_sent_packets_per_s": 1.0,
        "net_errors_in_per_s": 0.5,
        "net_errors_out_per_s": 1.0,
        "net_drops_in_per_s": 1.5,
        "net_drops_out_per_s": 2.0,
    }
    assert {m.category for m in metrics} == {"network"}


def test_vanished_device_is_forgotten_and_restarts_as_first_sight():
    """A NIC that disappears is pruned; when it returns its first sample has no rate."""
    src = FakeSource()
    src.nics = {"veth1": NetCounters(0, 0, 0, 0), "eth0": NetCounters(0, 0, 0, 0)}
    c = MetricsCollector(source=src)
    c.collect("network", now=0.0)
    src.nics = {"eth0": NetCounters(10, 0, 0, 0)}
    c.collect("network", now=1.0)
    assert len(c._network.rates) == 8 and list(c._network.series_keys) == ["eth0"]
    src.nics = {"eth0": NetCounters(20, 0, 0, 0), "veth1": NetCounters(999, 0, 0, 0)}
    assert "net_recv_bytes_per_s{interface=veth1}" not in values(c.collect("network", now=2.0))


def test_io_kind_is_disk_plus_network_and_default_is_all_four():
    """kinds "io" samples disks and networks; DEFAULT_KINDS covers cpu, memory, disk, network."""
    assert KINDS == ("cpu", "memory", "disk", "network", "io")
    assert DEFAULT_KINDS == ("cpu", "memory", "disk", "network")
    src = FakeSource()
    src.disks, src.nics = {"sda": DiskCounters(0, 0, 0, 0)}, {"eth0": NetCounters(0, 0, 0, 0)}
    src.mem = (MemoryInfo(100, 50), None)
    c = MetricsCollector(source=src)
    c.collect("io", now=0.0)
    assert {m.category for m in c.collect(("io",), now=1.0)} == {"io", "network"}
    assert {m.category for m in c.collect(now=2.0)} == {"io", "network", "memory"}


def test_unknown_kind_is_refused_with_the_choices():
    """An unknown kind raises ConfigError naming it and the known kinds."""
    with pytest.raises(ConfigError, match=r"'gpu'.*'cpu', 'memory'"):
        MetricsCollector(source=FakeSource()).collect(["cpu", "gpu"])


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"interval": 0}, "interval 0"),
        ({"interval": float("nan")}, "interval nan"),
        ({"interval": "1"}, "interval '1'"),
        ({"history_size": 0}, "history_size 0"),
        ({"history_size": True}, "history_size True"),
    ],
)
def test_constructor_validates_interval_and_history_size(kwargs, fragment):
    """Non-positive or non-numeric interval and history_size raise ConfigError naming them."""
    with pytest.raises(ConfigError, match=fragment):
        MetricsCollector(source=FakeSource(), **kwargs)


def test_now_defaults_to_the_clock():
    """collect() without now stamps metrics with clock()."""
    src = FakeSource()
    src.mem = (MemoryInfo(100, 50), None)
    c = MetricsCollector(source=src, clock=lambda: 42.0)
    assert {m.timestamp for m in c.collect(["memory"])} == {42.0}


# -- history -------------------------------------------------------------------------------


def test_history_is_bounded_per_series_and_oldest_first():
    """history_size keeps the newest samples of each series, as (timestamp, value)."""
    src = FakeSource()
    c = MetricsCollector(source=src, history_size=3)
    for t in range(5):
        src.mem = (MemoryInfo(100, 100 - t), None)
        c.collect(["memory"], now=float(t))
    assert c.get_history("memory_percent") == [(2.0, 2.0), (3.0, 3.0), (4.0, 4.0)]
    assert c.get_history("no_such_metric") == []


def test_history_and_latest_by_labels():
    """get_history(name, **labels) selects a labelled series; latest() is keyed by series key."""
    src = FakeSource()
    src.disks = {"sda": DiskCounters(0, 0, 0, 0, 0)}
    c = MetricsCollector(source=src)
    c.collect("disk", now=0.0)
    src.disks = {"sda": DiskCounters(10, 0, 0, 0, 0)}
    c.collect("disk", now=1.0)
    assert c.get_history("disk_read_bytes_per_s", device="sda") == [(1.0, 10.0)]
    latest = c.latest()
    assert latest["disk_read_bytes_per_s{device=sda}"].context == {"device": "sda"}
    assert latest["disk_read_bytes_per_s"].value == 10.0
    assert "disk_busy_percent{device=sda}" in c.series()


def test_sample_methods_do_not_record_history():
    """sample_cpu/memory/disk/network return metrics without touching history."""
    src = FakeSource()
    src.cpu, src.count = (cpu(0, 0), {}), 2
    src.mem = (MemoryInfo(100, 50), None)
    src.disks, src.nics = {"sda": DiskCounters(0, 0, 0, 0)}, {"eth0": NetCounters(0, 0, 0, 0)}
    c = MetricsCollector(source=src)
    assert values(c.sample_cpu(0.0)) == {"cpu_count": 2.0}
    assert values(c.sample_memory(0.0))["memory_percent"] == 50.0
    assert values(c.sample_disk(0.0)) == {} and values(c.sample_network(0.0)) == {}
    src.disks, src.nics = {"sda": DiskCounters(5, 0, 0, 0)}, {"eth0": NetCounters(5, 0, 0, 0)}
    assert values(c.sample_disk(1.0))["disk_read_bytes_per_s"] == 5.0
    assert values(c.sample_network(1.0))["net_recv_bytes_per_s"] == 5.0
    assert c.latest() == {} and c.series() == []


# -- sources -------------------------------------------------------------------------------


def write_proc(root: Path, stat: str, diskstats: str, net_dev: str) -> None:
    (root / "net").mkdir(exist_ok=True)
    (root / "stat").write_text(stat)
    (root / "diskstats").write_text(diskstats)
    (root / "net" / "dev").write_text(net_dev)


NET_HEADER = "Inter-| Receive | Transmit\n face |bytes packets|bytes packets\n"


def test_proc_source_end_to_end_from_files(tmp_path):
    """ProcSource reads files under root: exact CPU, disk and network rates over 2 s."""
    fixtures = Path(__file__).parent / "fixtures" / "proc"
    (tmp_path / "meminfo").write_text((fixtures / "meminfo_old_kernel").read_text())
    (tmp_path / "loadavg").write_text("1.50 1.00 0.50 2/85 3753\n")
    write_proc(
        tmp_path,
        "cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 50 0 50 400 0 0 0 0\ncpu1 50 0 50 400 0 0 0 0\nintr 1\n",
        "   8 0 sda 10 0 100 0 20 0 200 0 0 500 0\n   8 1 sda1 10 0 100 0 20 0 200 0 0 500 0\n",
        NET_HEADER + "  eth0: 1000 10 0 0 0 0 0 0 500 5 0 0 0 0 0 0\n",
    )
    c = MetricsCollector(source=ProcSource(str(tmp_path), ticks_per_s=100.0))
    c.collect(now=100.0)
    write_proc(
        tmp_path,
        "cpu  150 0 150 900 0 0 0 0 0 0\ncpu0 100 0 100 400 0 0 0 0\ncpu1 50 0 50 500 0 0 0 0\n",
        "   8 0 sda 30 0 300 0 60 0 600 0 0 1500 0\n   8 1 sda1 30 0 300 0 60 0 600 0 0 1500 0\n",
        NET_HEADER + "  eth0: 3000 30 0 0 0 0 0 0 900 9 0 0 0 0 0 0\n",
    )
    got = values(c.collect(now=102.0))
    assert got["cpu_percent"] == 50.0
    assert got["cpu_percent{cpu=0}"] == 100.0 and got["cpu_percent{cpu=1}"] == 0.0
    assert got["load_1m"] == 1.5
    assert got["swap_percent"] == 25.0
    assert got["disk_read_bytes_per_s"] == 200 * 512 / 2
    assert got["disk_write_ops_per_s{device=sda}"] == 20.0
    assert got["disk_busy_percent"] == 50.0
    assert not any("sda1" in k for k in got)
    assert got["net_recv_bytes_per_s{interface=eth0}"] == 1000.0
    assert got["net_sent_packets_per_s"] == 2.0


def test_proc_source_missing_files_yield_nothing(tmp_path):
    """A root without the files gives None / {} for everything except the CPU count."""
    src = ProcSource(str(tmp_path))
    assert src.cpu_times() is None and src.load_avg() is None
    assert src.memory() == (None, None)
    assert src.disk_counters() == {} and src.net_counters() == {}
    assert src.cpu_count() >= 1


def test_proc_source_default_ticks_from_sysconf():
    """Without ticks_per_s, ProcSource uses USER_HZ from sysconf."""
    import os

    assert ProcSource().ticks_per_s == float(os.sysconf("SC_CLK_TCK"))


def test_stdlib_source_gives_load_count_and_memory_only():
    """StdlibSource: load average, cpu count, sysconf memory; no CPU times, disks or NICs."""
    src = StdlibSource()
    assert src.cpu_times() is None and src.disk_counters() == {} and src.net_counters() == {}
    assert isinstance(src.load_avg(), LoadAvg)
    assert src.cpu_count() >= 1
    mem, swap = src.memory()
    assert mem.total_bytes > 0 and 0 <= mem.available_bytes <= mem.total_bytes and swap is None


def test_stdlib_source_without_platform_support(monkeypatch):
    """Where getloadavg or sysconf are missing, those values are simply omitted."""
    import os

    monkeypatch.delattr(os, "getloadavg")
    monkeypatch.delattr(os, "sysconf")
    src = StdlibSource()
    assert src.load_avg() is None and src.memory() == (None, None)
    got = values(MetricsCollector(source=src).collect(now=1.0))
    assert set(got) == {"cpu_count"}


def test_psutil_and_proc_sources_agree_on_this_machine():
    """Both sources see the same CPUs, memory total, disks and interfaces here."""
    ps, proc = PsutilSource(), ProcSource()
    assert ps.cpu_count() == proc.cpu_count()
    assert set(ps.cpu_times()[1]) == set(proc.cpu_times()[1])
    assert ps.memory()[0].total_bytes == proc.memory()[0].total_bytes
    assert set(ps.disk_counters()) == set(proc.disk_counters())
    assert set(ps.net_counters()) == set(proc.net_counters())
    assert isinstance(ps.load_avg(), LoadAvg)


def test_psutil_source_cpu_total_is_sum_of_per_cpu():
    """PsutilSource's total CPU time is the sum of its per-CPU times."""
    total, per_cpu = PsutilSource().cpu_times()
    assert total.user == pytest.approx(sum(t.user for t in per_cpu.values()))
    assert total.idle == pytest.approx(sum(t.idle for t in per_cpu.values()))


def test_psutil_source_omits_what_psutil_cannot_tell(monkeypatch):
    """No per-CPU times -> None; no getloadavg -> None; swap unreadable -> swap None."""
    import psutil

    def no_swap():
        raise RuntimeError("no swap info")

    monkeypatch.setattr(psutil, "cpu_times", lambda percpu=False: [])
    monkeypatch.delattr(psutil, "getloadavg")
    monkeypatch.setattr(psutil, "swap_memory", no_swap)
    src = PsutilSource()
    assert src.cpu_times() is None and src.load_avg() is None
    mem, swap = src.memory()
    assert mem.total_bytes > 0 and swap is None


def test_sources_satisfy_the_protocol():
    """ProcSource, StdlibSource and PsutilSource are Sources."""
    for src in (ProcSource(), StdlibSource(), PsutilSource()):
        assert isinstance(src, Source)


def test_snapshots_round_trip_through_dicts():
    """Every snapshot dataclass survives to_dict/from_dict exactly."""
    for snap in (
        CpuTimes(1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0),
        LoadAvg(1.0, 2.0, 3.0),
        MemoryInfo(10, 4),
        SwapInfo(0, 0),
        DiskCounters(1, 2, 3, 4, None),
        NetCounters(1, 2, 3, 4, 5, 6, 7, 8),
    ):
        assert type(snap).from_dict(snap.to_dict()) == snap


def test_default_source_prefers_psutil():
    """With psutil importable, default_source() is PsutilSource."""
    assert default_source().name == "psutil"


def test_default_source_falls_back_to_proc_without_psutil(monkeypatch):
    """psutil import blocked: ProcSource on Linux, and it yields memory_percent."""
    monkeypatch.setitem(sys.modules, "psutil", None)
    monkeypatch.delitem(sys.modules, "perfmesh.collect.psutil_source", raising=False)
    src = default_source()
    assert isinstance(src, ProcSource)
    assert "memory_percent" in values(MetricsCollector(source=src).collect(now=1.0))


def test_default_source_falls_back_to_stdlib_off_linux(monkeypatch):
    """psutil import blocked and not Linux: StdlibSource."""
    monkeypatch.setitem(sys.modules, "psutil", None)
    monkeypatch.delitem(sys.modules, "perfmesh.collect.psutil_source", raising=False)
    monkeypatch.setattr(sources.sys, "platform", "darwin")
    assert isinstance(default_source(), StdlibSource)


BLOCKED_PSUTIL_SCRIPT = """
import json, sys, time
sys.modules["psutil"] = None
from perfmesh.collect.collection import MetricsCollector
c = MetricsCollector()
names = set()
deadline = time.monotonic() + 5
while "cpu_percent" not in names and time.monotonic() < deadline:
    names |= {m.name for m in c.collect()}
    time.sleep(0.02)
print(json.dumps({"source": c.source.name, "names": sorted(names)}))
"""


def test_collector_without_psutil_gets_cpu_and_memory_from_proc():
    """In a fresh interpreter with psutil blocked, collection still yields cpu_percent and
    memory_percent, read from /proc."""
    out = subprocess.run(
        [sys.executable, "-c", BLOCKED_PSUTIL_SCRIPT],
        capture_output=True, text=True, timeout=30, check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    result = json.loads(out.stdout)
    assert result["source"] == "proc"
    assert {"cpu_percent", "memory_percent", "load_1m", "disk_read_bytes_per_s"} <= set(result["names"])


# -- threads -------------------------------------------------------------------------------


def wait_for(predicate, timeout_s=5.0):
    return wait_until(predicate, timeout_s, "the condition", poll_s=0.005)


def test_background_thread_samples_and_stops_promptly():
    """start() samples every interval; stop() wakes the thread at once (not at the next tick)."""
    src = FakeSource()
    src.mem = (MemoryInfo(100, 50), None)
    c = MetricsCollector(interval=0.01, source=src)
    c.start(["memory"])
    c.start()  # already running: no second thread
    assert c.is_running
    assert wait_for(lambda: len(c.get_history("memory_percent")) >= 3)
    c.stop()
    assert not c.is_running
    slow = MetricsCollector(interval=60.0, source=src)
    slow.start("memory")
    assert wait_for(lambda: len(slow.get_history("memory_percent")) == 1)
    t0 = time.monotonic()
    slow.stop()
    assert time.monotonic() - t0 < 1.0 and not slow.is_running
    slow.stop()  # stopping twice is harmless


def test_background_thread_survives_a_failing_source():
    """A source that raises is counted in error_count / last_error and the loop goes on."""

    class Broken(FakeSource):
        def memory(self):
            time.sleep(0.01)  # slower than the interval: the loop skips ticks, never bursts
            raise OSError("meminfo vanished")

    c = MetricsCollector(interval=0.002, source=Broken())
    c.start(["memory"])
    assert wait_for(lambda: c.error_count >= 2)
    c.stop()
    assert c.last_error == "OSError: meminfo vanished"


def test_start_refuses_unknown_kind():
    """start() validates kinds before starting a thread."""
    c = MetricsCollector(source=FakeSource())
    with pytest.raises(ConfigError, match="'disks'"):
        c.start(["disks"])
    assert not c.is_running


def test_concurrent_collect_and_reads_are_consistent():
    """Several threads collecting and one reading: no errors, no lost samples, and every
    series' history is in timestamp order (sampling and recording happen under one lock)."""
    src = FakeSource()
    src.mem = (MemoryInfo(100, 50), None)
    src.disks = {"sda": DiskCounters(0, 0, 0, 0, 0)}
    c = MetricsCollector(source=src, history_size=10_000, clock=itertools.count(1).__next__)
    errors = []
    stop_reading = threading.Event()

    def writer():
        try:
            for _ in range(300):
                c.collect(["memory", "disk"])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def reader():
        try:
            while not stop_reading.is_set():
                c.latest()
                c.get_history("memory_percent")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    read_thread = threading.Thread(target=reader)
    read_thread.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop_reading.set()
    read_thread.join()
    assert errors == []
    history = c.get_history("memory_percent")
    assert len(history) == 1200
    stamps = [t for t, _ in history]
    assert stamps == sorted(stamps) and len(set(stamps)) == 1200
    assert len(c.get_history("disk_read_bytes_per_s", device="sda")) == 1199


def test_each_collector_kind_is_a_kind_the_collector_accepts():
    """The agent's collector kinds (cpu, memory, io) are the config's, and each one collects."""
    from perfmesh.collect.collection import COLLECTOR_KINDS, KINDS
    from perfmesh.config.validation import AGENT_KINDS
    from workers.agent import AgentConfig
    assert AGENT_KINDS is COLLECTOR_KINDS == ("cpu", "memory", "io")
    assert AgentConfig(name="x").kinds == COLLECTOR_KINDS and set(COLLECTOR_KINDS) <= set(KINDS)
