"""PSI and filesystem space: parsers on files captured here (tests/fixtures/proc/pressure,
mounts_host) and hand-made ones (mounts_containers), exact stall rates with a fake clock,
mount filtering and deduplication, and this machine's live values."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from perfmesh.collect.filesystems import (
    FilesystemCollector,
    FilesystemUsage,
    Mount,
    parse_mounts,
    real_mounts,
)
from perfmesh.collect.pressure import Pressure, PressureCollector, PressureLine, parse_pressure
from perfmesh.collect.procfs import ProcfsError

PROC = Path(__file__).parent / "fixtures" / "proc"


def test_parse_pressure_captured_cpu_some_and_full():
    """Captured /proc/pressure/cpu: averages in percent, total in microseconds."""
    lines = parse_pressure((PROC / "pressure" / "cpu").read_text())
    assert lines["some"] == PressureLine(34.02, 38.55, 19.01, 111672592)
    assert lines["full"] == PressureLine(0.0, 0.0, 0.0, 0)
    assert parse_pressure((PROC / "pressure" / "io").read_text())["full"].total_us == 4096874


def test_parse_pressure_old_cpu_file_without_full_line():
    """Before Linux 5.13 cpu has only 'some'."""
    assert set(parse_pressure("some avg10=1.00 avg60=2.00 avg300=3.00 total=5\n")) == {"some"}


@pytest.mark.parametrize("text", ["some avg10=1.0 total=5\n", "full avg10=0 avg60=0 avg300=0 total=0\n"])
def test_parse_pressure_rejects_incomplete_text(text):
    """A line missing fields, or no 'some' line, is a ProcfsError."""
    with pytest.raises(ProcfsError):
        parse_pressure(text)


def fake_pressure(root: Path, cpu_total: int, io_total: int) -> None:
    (root / "pressure").mkdir(parents=True, exist_ok=True)
    (root / "pressure" / "cpu").write_text(f"some avg10=5.00 avg60=4.00 avg300=3.00 total={cpu_total}\n")
    (root / "pressure" / "io").write_text(
        f"some avg10=0.00 avg60=0.00 avg300=0.00 total={io_total}\n"
        f"full avg10=0.00 avg60=0.00 avg300=0.00 total={io_total // 2}\n")


def test_stall_percent_is_the_stalled_share_of_the_interval(tmp_path):
    """500 ms of cpu stall over 2 s is 25 %; a missing memory file is just absent."""
    fake_pressure(tmp_path, 1_000_000, 0)
    c = PressureCollector(str(tmp_path))
    first = c.sample(now=10.0)
    assert all(p.stall_percent is None for p in first)
    fake_pressure(tmp_path, 1_500_000, 400_000)
    got = {(p.resource, p.kind): p for p in c.sample(now=12.0)}
    assert got["cpu", "some"].stall_percent == pytest.approx(25.0)
    assert got["cpu", "some"].line.avg10_percent == 5.0
    assert got["io", "some"].stall_percent == pytest.approx(20.0)
    assert got["io", "full"].stall_percent == pytest.approx(10.0)
    assert c.available == ("cpu", "io")
    assert Pressure.from_dict(got["cpu", "some"].to_dict()) == got["cpu", "some"]


def test_no_psi_gives_an_empty_sample(tmp_path):
    """A kernel without /proc/pressure yields nothing, not an error."""
    assert PressureCollector(str(tmp_path)).sample(now=1.0) == []


@pytest.mark.skipif(not os.path.exists("/proc/pressure/cpu"), reason="kernel without PSI")
def test_live_pressure_of_this_machine():
    """This machine has PSI for cpu, memory and io; stall shares are within 0..100."""
    c = PressureCollector()
    c.sample(time.time())
    got = c.sample(time.time() + 0.001)
    assert c.available == ("cpu", "memory", "io")
    assert all(0.0 <= p.stall_percent <= 100.0 for p in got if p.stall_percent is not None)


# -- filesystems ----------------------------------------------------------------------------

def test_parse_mounts_unescapes_octal_fields():
    """'\\040' in a mount point is a space."""
    mounts = parse_mounts((PROC / "mounts_containers").read_text())
    assert Mount("/dev/sdb1", "/mnt/my disk", "xfs") in mounts


def test_real_mounts_of_this_host_capture():
    """Captured here: only / (ext4 on /dev/vda) survives; /run/netns is the same device,
    tmpfs, cgroup, proc, sysfs, devpts and nsfs are skipped."""
    mounts = real_mounts(parse_mounts((PROC / "mounts_host").read_text()))
    assert mounts == [Mount("/dev/vda", "/", "ext4")]


def test_real_mounts_skip_virtual_network_and_duplicate_devices():
    """One entry per block device (shortest path), overlays kept for statvfs dedup, NFS and
    squashfs skipped unless asked; tmpfs kept when include_tmpfs."""
    mounts = parse_mounts((PROC / "mounts_containers").read_text())
    paths = [m.mountpoint for m in real_mounts(mounts)]
    assert paths == ["/", "/mnt/my disk", "/var/lib/docker/overlay2/aaa/merged",
                     "/var/lib/docker/overlay2/bbb/merged"]
    wide = [m.mountpoint for m in real_mounts(mounts, include_tmpfs=True, include_network=True)]
    assert "/run" in wide and "/mnt/nfs" in wide


def statvfs_result(blocks: int, bfree: int, bavail: int, files: int, ffree: int, fsid: int = 1):
    # f_bsize f_frsize f_blocks f_bfree f_bavail f_files f_ffree f_favail f_flag f_namemax
    return os.statvfs_result((4096, 4096, blocks, bfree, bavail, files, ffree, ffree, 0, 255),
                             {"f_fsid": fsid})


def test_collector_space_inodes_and_overlay_dedup(tmp_path):
    """df's figures from statvfs; two overlays with identical statvfs are reported once."""
    (tmp_path / "self").mkdir()
    (tmp_path / "self" / "mounts").write_text((PROC / "mounts_containers").read_text())
    numbers = {"/": (1000, 400, 300, 100, 60), "/mnt/my disk": (10, 10, 10, 0, 0)}

    def fake_statvfs(path: str):
        return statvfs_result(*numbers.get(path, (50, 25, 25, 8, 4)))

    usages = FilesystemCollector(str(tmp_path), statvfs=fake_statvfs).sample()
    assert [u.mountpoint for u in usages] == ["/", "/mnt/my disk", "/var/lib/docker/overlay2/aaa/merged"]
    root = usages[0]
    assert (root.size_bytes, root.free_bytes, root.available_bytes) == (4096000, 1638400, 1228800)
    assert root.used_percent == pytest.approx(600 * 100 / 900)
    assert root.inodes_used_percent == pytest.approx(40.0)
    assert usages[1].inodes_used_percent == 0.0
    assert FilesystemUsage.from_dict(root.to_dict()) == root


def test_live_root_filesystem_matches_statvfs():
    """This machine: / is reported with the size os.statvfs gives."""
    usages = FilesystemCollector().sample()
    root = next(u for u in usages if u.mountpoint == "/")
    st = os.statvfs("/")
    assert root.size_bytes == st.f_blocks * st.f_frsize
    assert 0.0 < root.used_percent < 100.0
