"""cgroup accounting: parsers on captured and hand-made files (tests/fixtures/cgroup), the
layout detection and walk on fake v2 / v1-hybrid trees, CgroupCollector's exact rates, and
this machine's tree."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from perfmesh.collect.cgroupfs import (
    is_reported_group,
    parse_blkio_service_bytes,
    parse_controllers,
    parse_cpu_stat_usage_usec,
    parse_io_stat,
    parse_single_int,
)
from perfmesh.collect.cgroups import (
    CgroupCollector,
    CgroupSample,
    Hierarchy,
    detect_layout,
    walk_groups,
)
from perfmesh.collect.procfs import ProcfsError

from .fakeproc import write_group

FIX = Path(__file__).parent / "fixtures" / "cgroup"


def read(name: str) -> str:
    return (FIX / name).read_text()


def test_parse_v2_cpu_stat_usage_usec_captured():
    """usage_usec of the captured unified cpu.stat."""
    assert parse_cpu_stat_usage_usec(read("cpu.stat_v2")) == 937723189
    with pytest.raises(ProcfsError, match="no usage_usec"):
        parse_cpu_stat_usage_usec("user_usec 1\n")


def test_parse_v2_io_stat_sums_devices():
    """rbytes and wbytes summed over every device line."""
    assert parse_io_stat(read("io.stat_v2")) == (1459200 + 4096, 314773504 + 8192)
    assert parse_io_stat("") == (0, 0)
    with pytest.raises(ProcfsError, match="without '='"):
        parse_io_stat("8:0 rbytes\n")


def test_parse_v1_blkio_sums_read_and_write_ignoring_totals():
    """Read/Write lines summed over devices; Sync/Async/Total do not add again."""
    assert parse_blkio_service_bytes(read("blkio.throttle.io_service_bytes_v1")) == (45056, 8192)
    assert parse_blkio_service_bytes(read("blkio_empty_v1")) == (0, 0)
    with pytest.raises(ProcfsError, match="not 'dev op bytes'"):
        parse_blkio_service_bytes("8:0 Read 1 extra\n")


def test_parse_v1_single_integer_files_captured():
    """cpuacct.usage (ns) and memory.usage_in_bytes captured on this machine."""
    assert parse_single_int(read("cpuacct.usage_v1"), "cpuacct.usage") == 947131909779
    assert parse_single_int(read("memory.usage_in_bytes_v1"), "memory") == 2209112064
    with pytest.raises(ProcfsError, match="'max.*is not one integer"):
        parse_single_int("max\n", "memory.current")


def test_reported_groups_are_units_and_leaves():
    """A unit is reported even with sub-groups; a slice with children is walked, not reported."""
    assert is_reported_group("ssh.service", has_children=True)
    assert is_reported_group("docker-1.scope", has_children=False)
    assert is_reported_group("0123abcd", has_children=False)
    assert not is_reported_group("system.slice", has_children=True)
    assert parse_controllers("cpu io memory pids\n") == {"cpu", "io", "memory", "pids"}


def v2_tree(root: Path) -> Path:
    write_group(root, "/", cgroup__controllers="cpuset cpu io memory pids\n",
                cpu__stat="usage_usec 999\n")
    write_group(root, "/system.slice")
    write_group(root, "/system.slice/ssh.service", cpu__stat="usage_usec 0\n",
                memory__current="1000\n", io__stat="8:0 rbytes=0 wbytes=0\n")
    write_group(root, "/system.slice/db.service", cpu__stat="usage_usec 0\n",
                memory__current="9000\n", io__stat="8:0 rbytes=0 wbytes=0\n")
    write_group(root, "/system.slice/db.service/worker", cpu__stat="usage_usec 0\n")
    write_group(root, "/user.slice/user-1000.slice/session-2.scope", cpu__stat="usage_usec 0\n",
                memory__current="500\n", io__stat="")
    return root


def test_detect_layout_pure_v2(tmp_path):
    """cgroup.controllers at the root: every resource from the root, as v2."""
    root = v2_tree(tmp_path / "cg")
    layout = detect_layout(str(root))
    assert layout == {r: Hierarchy(str(root), True) for r in ("cpu", "memory", "io")}


def test_detect_layout_hybrid_prefers_v1_controllers(tmp_path):
    """v1 cpuacct/memory/blkio mounted: read there; unified only for what v1 lacks."""
    root = tmp_path / "cg"
    write_group(root / "cpuacct", "/", cpuacct__usage="0\n")
    write_group(root / "memory", "/", memory__usage_in_bytes="0\n")
    write_group(root / "unified", "/", cgroup__controllers="io\n", cpu__stat="usage_usec 0\n")
    layout = detect_layout(str(root))
    assert layout["cpu"] == Hierarchy(str(root / "cpuacct"), False)
    assert layout["memory"] == Hierarchy(str(root / "memory"), False)
    assert layout["io"] == Hierarchy(str(root / "unified"), True)


def test_detect_layout_comounted_cpu_cpuacct(tmp_path):
    """systemd's 'cpu,cpuacct' directory serves CPU when there is no plain cpuacct."""
    root = tmp_path / "cg"
    write_group(root / "cpu,cpuacct", "/", cpuacct__usage="0\n")
    assert detect_layout(str(root))["cpu"] == Hierarchy(str(root / "cpu,cpuacct"), False)


def test_walk_reports_units_and_leaves_never_slices(tmp_path):
    """Units (with or without sub-groups) and leaves; slices are walked through."""
    root = v2_tree(tmp_path / "cg")
    found, truncated = walk_groups(str(root))
    assert sorted(found) == ["/system.slice/db.service", "/system.slice/ssh.service",
                             "/user.slice/user-1000.slice/session-2.scope"]
    assert not truncated


def test_walk_is_bounded_by_group_count(tmp_path):
    """max_groups stops the walk and says so."""
    root = tmp_path / "cg"
    for i in range(5):
        write_group(root, f"/docker/c{i}")
    found, truncated = walk_groups(str(root), max_groups=3)
    assert len(found) == 3 and truncated


def test_v2_collector_rates_and_top_lists(tmp_path):
    """CPU percent from usage_usec deltas (100 = one CPU), memory as is, io bytes/s."""
    root = v2_tree(tmp_path / "cg")
    c = CgroupCollector(str(root), top_n=2, min_cpu_percent=0.0, min_io_bytes_per_s=0.0)
    first = c.sample(now=10.0)
    assert first.top_cpu == [] and [g.path for g in first.top_memory] == [
        "/system.slice/db.service", "/system.slice/ssh.service"]
    write_group(root, "/system.slice/db.service", cpu__stat="usage_usec 1500000\n",
                io__stat="8:0 rbytes=4000 wbytes=2000\n")
    write_group(root, "/system.slice/ssh.service", cpu__stat="usage_usec 100000\n")
    s = c.sample(now=12.0)
    db = s.top_cpu[0]
    assert (db.path, db.unit) == ("/system.slice/db.service", "db.service")
    assert db.cpu_percent == pytest.approx(75.0)
    assert s.top_cpu[1].cpu_percent == pytest.approx(5.0)
    assert [(g.path, g.read_bytes_per_s, g.write_bytes_per_s) for g in s.top_io] == [
        ("/system.slice/db.service", 2000.0, 1000.0)]
    assert s.group_count == 3
    assert CgroupSample.from_dict(s.to_dict()) == s


def test_v1_collector_reads_cpuacct_memory_blkio(tmp_path):
    """v1: cpuacct.usage in ns, memory.usage_in_bytes, blkio (non-recursive fallback)."""
    root = tmp_path / "cg"
    write_group(root / "cpuacct", "/", cpuacct__usage="0\n")
    write_group(root / "cpuacct", "/docker/abc", cpuacct__usage="0\n")
    write_group(root / "memory", "/", memory__usage_in_bytes="0\n")
    write_group(root / "memory", "/docker/abc", memory__usage_in_bytes="4096\n")
    (root / "blkio").mkdir()
    write_group(root / "blkio", "/docker/abc",
                blkio__throttle__io_service_bytes="8:0 Read 0\n8:0 Write 0\nTotal 0\n")
    c = CgroupCollector(str(root), min_io_bytes_per_s=0.0)
    c.sample(now=1.0)
    write_group(root / "cpuacct", "/docker/abc", cpuacct__usage="500000000\n")
    write_group(root / "blkio", "/docker/abc",
                blkio__throttle__io_service_bytes="8:0 Read 100\n8:0 Write 300\nTotal 400\n")
    s = c.sample(now=2.0)
    (g,) = s.members()
    assert (g.path, g.unit, g.memory_bytes) == ("/docker/abc", "abc", 4096)
    assert g.cpu_percent == pytest.approx(50.0)
    assert (g.read_bytes_per_s, g.write_bytes_per_s) == (100.0, 300.0)


def test_removed_group_is_dropped(tmp_path):
    """A cgroup that disappeared is not reported at the next sample."""
    root = v2_tree(tmp_path / "cg")
    c = CgroupCollector(str(root))
    c.sample(now=1.0)
    shutil.rmtree(root / "user.slice")
    assert "/user.slice/user-1000.slice/session-2.scope" not in [g.path for g in c.sample(now=2.0).members()]


def test_live_machine_reports_memory_of_its_cgroups():
    """This machine: a layout is detected and, where groups exist, memory is read."""
    c = CgroupCollector()
    assert c.layout, "no cgroup hierarchy detected under /sys/fs/cgroup"
    c.sample(time.time())
    s = c.sample(time.time())
    assert s.group_count == 0 or any(g.memory_bytes for g in s.members())
    assert len(s.top_memory) <= c.top_n
