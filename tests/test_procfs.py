"""Pure /proc parsers against captured files (tests/fixtures/proc/host, from a real Linux VM)
and hand-made edge cases (old kernels, partitions, virtual disks, 32-bit counters)."""

from pathlib import Path

import pytest

from perfmesh.errors import PerfmeshError
from perfmesh.collect.procfs import (
    MEMINFO_FIELDS,
    ProcfsError,
    memory_from_meminfo,
    parse_diskstats,
    parse_loadavg,
    parse_meminfo,
    parse_net_dev,
    parse_stat,
    physical_disks,
)
from perfmesh.model.snapshots import CpuTimes, DiskCounters, LoadAvg, MemoryInfo, NetCounters, SwapInfo

FIXTURES = Path(__file__).parent / "fixtures" / "proc"
HOST = FIXTURES / "host"


def read(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_parse_stat_captured_total_and_per_cpu_in_seconds():
    """Captured /proc/stat: total line and one entry per cpuN line, jiffies / USER_HZ."""
    total, per_cpu = parse_stat(read("host/stat"), ticks_per_s=100.0)
    assert total == CpuTimes(8.88, 0.0, 8.84, 369.75, 0.58, 0.0, 0.10, 0.05)
    assert list(per_cpu) == ["0", "1"]
    assert per_cpu["0"] == CpuTimes(2.16, 0.0, 3.87, 187.87, 0.02, 0.0, 0.03, 0.01)


def test_parse_stat_old_kernel_pads_missing_fields_and_keeps_cpu_ids():
    """Old kernels (no steal) get 0.0 for missing fields; offline cpu1 leaves ids 0 and 2."""
    total, per_cpu = parse_stat(read("stat_old_kernel"), ticks_per_s=1.0)
    assert total == CpuTimes(100.0, 5.0, 50.0, 1000.0, 20.0, 1.0, 2.0, 0.0)
    assert sorted(per_cpu) == ["0", "2"]
    assert per_cpu["2"] == CpuTimes(40.0, 0.0, 20.0, 500.0, 10.0, 0.0, 1.0, 0.0)


def test_parse_stat_ignores_guest_columns():
    """guest/guest_nice (already inside user/nice) are not added again."""
    total, _ = parse_stat("cpu  1 2 3 4 5 6 7 8 900 900\n", ticks_per_s=1.0)
    assert total == CpuTimes(1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0)


def test_parse_stat_without_trailing_newline():
    """A text ending right after the last cpu line is parsed."""
    total, per_cpu = parse_stat("cpu 1 0 1 2\ncpu0 1 0 1 2", ticks_per_s=1.0)
    assert total.idle == 2.0 and per_cpu["0"].user == 1.0


@pytest.mark.parametrize(
    "text, fragment",
    [("intr 1 2\nctxt 3\n", "no 'cpu ' total line"), ("cpu  1 x 3 4\n", "not numeric")],
)
def test_parse_stat_rejects_bad_text(text, fragment):
    """Text without a total line or with non-numbers raises ProcfsError naming the problem."""
    with pytest.raises(ProcfsError, match=fragment):
        parse_stat(text)


def test_procfs_error_is_a_perfmesh_error():
    """ProcfsError sits under the one error root (and is a ValueError)."""
    assert issubclass(ProcfsError, PerfmeshError) and issubclass(ProcfsError, ValueError)


def test_parse_loadavg_captured():
    """Captured /proc/loadavg gives the three averages."""
    assert parse_loadavg(read("host/loadavg")) == LoadAvg(0.03, 0.05, 0.02)


def test_parse_loadavg_rejects_garbage():
    """A loadavg text that is not three numbers raises ProcfsError quoting it."""
    with pytest.raises(ProcfsError, match="'0.5 x'"):
        parse_loadavg("0.5 x")


def test_parse_meminfo_converts_kb_to_bytes_and_keeps_counts():
    """kB fields become bytes; unit-less counts (HugePages_Total) stay as they are."""
    fields = parse_meminfo(read("meminfo_old_kernel"))
    assert fields["MemTotal"] == 2048000 * 1024
    assert fields["HugePages_Total"] == 0
    assert fields["Hugepagesize"] == 2048 * 1024


def test_parse_meminfo_only_keeps_requested_fields():
    """With only=MEMINFO_FIELDS the result holds no other field."""
    fields = parse_meminfo(read("host/meminfo"), only=MEMINFO_FIELDS)
    assert set(fields) <= MEMINFO_FIELDS
    assert fields["MemAvailable"] == 24436996 * 1024


def test_parse_meminfo_skips_lines_without_colon_and_rejects_non_numbers():
    """Blank lines are skipped; a field with no integer raises ProcfsError."""
    assert parse_meminfo("\nMemTotal: 1 kB\n") == {"MemTotal": 1024}
    with pytest.raises(ProcfsError, match="MemTotal"):
        parse_meminfo("MemTotal: lots kB\n")


def test_memory_from_meminfo_captured_uses_memavailable():
    """Captured meminfo: available is MemAvailable, no swap configured -> 0 percent."""
    mem, swap = memory_from_meminfo(parse_meminfo(read("host/meminfo")))
    assert mem == MemoryInfo(24684100 * 1024, 24436996 * 1024)
    assert mem.used_bytes == (24684100 - 24436996) * 1024
    assert swap == SwapInfo(0, 0) and swap.percent == 0.0


def test_memory_from_meminfo_old_kernel_estimates_available_and_swap():
    """Without MemAvailable: free + buffers + cached; swap 250000 of 1000000 kB used = 25 %."""
    mem, swap = memory_from_meminfo(parse_meminfo(read("meminfo_old_kernel")))
    assert mem.available_bytes == (512000 + 100000 + 300000) * 1024
    assert mem.percent == pytest.approx((2048000 - 912000) * 100 / 2048000)
    assert swap.used_bytes == 250000 * 1024 and swap.percent == 25.0


def test_memory_from_meminfo_requires_memtotal():
    """meminfo without MemTotal raises ProcfsError."""
    with pytest.raises(ProcfsError, match="MemTotal"):
        memory_from_meminfo({"MemFree": 1})


def test_parse_diskstats_captured_skips_loop_and_zram():
    """Captured diskstats: loop0-7 and zram0 are dropped; vda counters in bytes and ms."""
    disks = parse_diskstats(read("host/diskstats"))
    assert disks == {
        "vda": DiskCounters(
            read_bytes=811642 * 512, write_bytes=285712 * 512, read_ops=7777, write_ops=792, busy_ms=840
        )
    }


def test_parse_diskstats_mixed_keeps_whole_disks_only():
    """Partitions (sda1, nvme0n1p1, mmcblk0p1), loop/ram/zram and short 2.6 lines are dropped;
    dm-0 and md0 (no parent listed) are kept; 17- and 20-field lines both parse."""
    disks = parse_diskstats(read("diskstats_mixed"))
    assert sorted(disks) == ["dm-0", "md0", "mmcblk0", "nvme0n1", "sda"]
    assert disks["sda"] == DiskCounters(2048 * 512, 4096 * 512, 100, 50, 30)
    assert disks["nvme0n1"].busy_ms == 120


def test_parse_diskstats_all_devices_on_request():
    """whole_disks_only=False keeps partitions and virtual devices (short lines still skipped)."""
    disks = parse_diskstats(read("diskstats_mixed"), whole_disks_only=False)
    assert "sda1" in disks and "loop0" in disks and "sda2" not in disks


def test_parse_diskstats_rejects_non_numbers():
    """A full-length line with a non-number raises ProcfsError quoting the line."""
    with pytest.raises(ProcfsError, match="sdz"):
        parse_diskstats("8 0 sdz 1 0 x 0 0 0 0 0 0 0 0\n")


def test_physical_disks_rules():
    """A trailing-digit name is a partition only when its disk is listed too."""
    names = ["sda", "sda10", "xvdb1", "nvme1n1", "nvme1n1p3", "md127", "ram3", "sdb"]
    assert physical_disks(names) == {"sda", "xvdb1", "nvme1n1", "md127", "sdb"}


def test_parse_net_dev_captured():
    """Captured /proc/net/dev: every interface, with the right columns for each counter."""
    nics = parse_net_dev(read("host/net/dev"))
    assert list(nics) == ["lo", "ifb0", "ifb1", "eth0"]
    assert nics["eth0"] == NetCounters(
        recv_bytes=18723565, sent_bytes=40208, recv_packets=625, sent_packets=390
    )


def test_parse_net_dev_edge_colon_without_space_and_error_columns():
    """``eth0:4294967295`` (no space after the colon) parses; errs/drop columns map in/out."""
    nics = parse_net_dev(read("net_dev_edge"))
    assert nics["eth0"] == NetCounters(4294967295, 777, 100, 50, 1, 3, 2, 4)
    assert nics["wlp3s0"].sent_bytes == 2000


def test_parse_net_dev_rejects_short_lines():
    """An interface line with too few columns raises ProcfsError naming it."""
    with pytest.raises(ProcfsError, match="eth9"):
        parse_net_dev("h1\nh2\n eth9: 1 2 3\n")


def test_parse_net_dev_skips_lines_without_colon():
    """Lines after the headers that name no interface are ignored."""
    assert parse_net_dev("h1\nh2\n\n") == {}
