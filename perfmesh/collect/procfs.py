"""Pure parsers of Linux /proc text into snapshots. No file access here.

Each function takes the text of one /proc file and returns values in base units
(seconds, bytes, operations). Text that does not look like the file raises ProcfsError.
"""

from __future__ import annotations

from typing import Iterable

from ..errors import PerfmeshError
from ..model.snapshots import CpuTimes, DiskCounters, LoadAvg, MemoryInfo, NetCounters, SwapInfo

SECTOR_BYTES = 512
"""/proc/diskstats counts 512-byte sectors whatever the device's real sector size."""

VIRTUAL_DISK_PREFIXES = ("loop", "ram", "zram")
"""Memory- or file-backed block devices: their I/O is not storage I/O."""


class ProcfsError(PerfmeshError, ValueError):
    """/proc text that cannot be parsed."""


def _cpu_times(fields: list[str], ticks_per_s: float) -> CpuTimes:
    # user nice system idle iowait irq softirq steal [guest guest_nice]; old kernels have fewer.
    v = [int(f) / ticks_per_s for f in fields[1:9]]
    v.extend([0.0] * (8 - len(v)))
    return CpuTimes(*v)


def parse_stat(text: str, ticks_per_s: float = 100.0) -> tuple[CpuTimes, dict[str, CpuTimes]]:
    """The ``cpu`` lines of /proc/stat: (total, {cpu id: per-CPU times}) in seconds.

    ``ticks_per_s`` is USER_HZ (``os.sysconf("SC_CLK_TCK")``). Offline CPUs have no line, so
    ids are taken from the line ("cpu3" -> "3"), not counted. Scanning stops at the first
    non-cpu line, so the long ``intr`` line is never split.
    """
    total: CpuTimes | None = None
    per_cpu: dict[str, CpuTimes] = {}
    pos = 0
    try:
        while text.startswith("cpu", pos):
            end = text.find("\n", pos)
            if end < 0:
                end = len(text)
            fields = text[pos:end].split()
            if fields[0] == "cpu":
                total = _cpu_times(fields, ticks_per_s)
            else:
                per_cpu[fields[0][3:]] = _cpu_times(fields, ticks_per_s)
            pos = end + 1
    except ValueError as exc:
        raise ProcfsError(f"/proc/stat cpu line near offset {pos} is not numeric: {exc}") from None
    if total is None:
        raise ProcfsError(f"/proc/stat text has no 'cpu ' total line; starts with {text[:40]!r}")
    return total, per_cpu


def parse_loadavg(text: str) -> LoadAvg:
    """/proc/loadavg: ``0.09 0.07 0.02 2/85 3753`` -> LoadAvg(0.09, 0.07, 0.02)."""
    fields = text.split()
    try:
        return LoadAvg(float(fields[0]), float(fields[1]), float(fields[2]))
    except (IndexError, ValueError):
        raise ProcfsError(f"/proc/loadavg text {text[:60]!r} is not three load numbers") from None


MEMINFO_FIELDS = frozenset(
    {"MemTotal", "MemAvailable", "MemFree", "Buffers", "Cached", "SReclaimable", "SwapTotal", "SwapFree"}
)
"""The /proc/meminfo fields memory_from_meminfo reads."""


def parse_meminfo(text: str, only: frozenset[str] | None = None) -> dict[str, int]:
    """/proc/meminfo as {field: value}; ``kB`` values converted to bytes, counts kept as is.

    ``only`` keeps just those fields (the collector passes MEMINFO_FIELDS).
    """
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, sep, rest = line.partition(":")
        if not sep or (only is not None and key not in only):
            continue
        fields = rest.split()
        try:
            value = int(fields[0])
        except (IndexError, ValueError):
            raise ProcfsError(f"/proc/meminfo line {line!r} has no integer value") from None
        out[key] = value * 1024 if len(fields) > 1 and fields[1] == "kB" else value
    return out


def memory_from_meminfo(fields: dict[str, int]) -> tuple[MemoryInfo, SwapInfo]:
    """Memory and swap from parsed /proc/meminfo.

    Kernels before 3.14 have no MemAvailable: it is then estimated as
    MemFree + Buffers + Cached + SReclaimable (the page cache is reclaimable).
    """
    try:
        total = fields["MemTotal"]
    except KeyError:
        raise ProcfsError(f"/proc/meminfo has no MemTotal; fields: {sorted(fields)[:8]}") from None
    available = fields.get("MemAvailable")
    if available is None:
        available = (
            fields.get("MemFree", 0)
            + fields.get("Buffers", 0)
            + fields.get("Cached", 0)
            + fields.get("SReclaimable", 0)
        )
    swap = SwapInfo(fields.get("SwapTotal", 0), fields.get("SwapFree", 0))
    return MemoryInfo(total, min(available, total)), swap


def physical_disks(names: Iterable[str]) -> set[str]:
    """The names that are whole storage devices: no loop/ram/zram device, no partition.

    A partition is ``<disk><digits>`` (sda1) or ``<disk>p<digits>`` when the disk name ends
    in a digit (nvme0n1p1, mmcblk0p1), where ``<disk>`` is also listed. Counting partitions
    beside their disk would count every byte twice in the aggregate.
    """
    names = set(names)
    keep = set()
    for name in names:
        if name.startswith(VIRTUAL_DISK_PREFIXES):
            continue
        base = name.rstrip("0123456789")
        if base != name:
            if base in names:
                continue
            if base.endswith("p") and base[:-1] in names and base[-2:-1].isdigit():
                continue
        keep.add(name)
    return keep


def parse_diskstats(text: str, whole_disks_only: bool = True) -> dict[str, DiskCounters]:
    """/proc/diskstats as {device: DiskCounters}.

    Fields used (after major, minor, name): reads completed, sectors read, writes completed,
    sectors written, and ms spent doing I/O (the busy time). Lines of the short 2.6-era
    partition format (fewer than 14 fields) are skipped. With ``whole_disks_only`` (default)
    only :func:`physical_disks` are kept.
    """
    out: dict[str, DiskCounters] = {}
    for line in text.splitlines():
        f = line.split()
        if len(f) < 14:
            continue
        try:
            out[f[2]] = DiskCounters(
                read_bytes=int(f[5]) * SECTOR_BYTES,
                write_bytes=int(f[9]) * SECTOR_BYTES,
                read_ops=int(f[3]),
                write_ops=int(f[7]),
                busy_ms=int(f[12]),
            )
        except ValueError:
            raise ProcfsError(f"/proc/diskstats line {line.strip()!r} is not numeric") from None
    if whole_disks_only:
        keep = physical_disks(out)
        if len(keep) != len(out):
            out = {name: c for name, c in out.items() if name in keep}
    return out


def parse_net_dev(text: str) -> dict[str, NetCounters]:
    """/proc/net/dev as {interface: NetCounters}; the two header lines are skipped.

    Receive columns: bytes packets errs drop fifo frame compressed multicast; transmit:
    bytes packets errs drop fifo colls carrier compressed. Old kernels print no space after
    the colon (``eth0:4294967295``), so the name is split at the colon.
    """
    out: dict[str, NetCounters] = {}
    for line in text.splitlines()[2:]:
        name, sep, rest = line.partition(":")
        if not sep:
            continue
        f = rest.split()
        try:
            out[name.strip()] = NetCounters(
                recv_bytes=int(f[0]),
                recv_packets=int(f[1]),
                errors_in=int(f[2]),
                drops_in=int(f[3]),
                sent_bytes=int(f[8]),
                sent_packets=int(f[9]),
                errors_out=int(f[10]),
                drops_out=int(f[11]),
            )
        except (IndexError, ValueError):
            raise ProcfsError(f"/proc/net/dev line {line.strip()!r} needs 16 numbers") from None
    return out
