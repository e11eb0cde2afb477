"""ProcessCollector: who is using the machine, process by process.

Each :meth:`ProcessCollector.sample` scans ``<root>/[0-9]*`` and reads ``stat`` (and ``io``
when readable) of every process, then ranks them: the top N by CPU (utime + stime delta since
the previous sample of the same process), by resident memory, and by storage I/O bytes per
second (/proc/PID/io delta). Only the members of those lists have their user
(``status`` Uid -> name through ``pwd``, cached) and cgroup (``cgroup``) read.

A process is keyed by (pid, start ticks), so a reused pid is a new process and never gets a
rate from its predecessor's counters. The previous reading is kept only for processes seen in
the last sample: memory is bounded by the number of live processes. A process that vanishes
mid-read (FileNotFoundError, ProcessLookupError, PermissionError) is skipped. An ``io``
file denied to us (another user's process when not root) is not asked again for that process.

The caller passes ``now``; the only clock is the sample's. ``root`` may point at a fake tree.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping

from ..errors import ConfigError
from .pidfs import (
    PidIo,
    PidStat,
    cgroup_of,
    parse_btime,
    parse_pid_cgroup,
    parse_pid_io,
    parse_pid_stat,
    parse_status_uid,
    unit_of,
)
from .procfs import ProcfsError

DEFAULT_TOP_N = 10
MIN_CPU_PERCENT = 2.0
"""Below this share of one CPU a process is not ranked: at a 1 s interval and 100 Hz, one
clock tick is 1 %, and single-tick blips of idle daemons would swap in and out of the list
every sample (measured here: the list's membership changed at every 1 s sample without it)."""
MIN_IO_BYTES_PER_S = 64 * 1024
"""Below this storage I/O rate a process is not ranked (same reason)."""
VANISHED = (FileNotFoundError, ProcessLookupError, PermissionError)
"""What reading a process that exited (or hid itself) raises: skipped, never an error."""
USER_CACHE_MAX = 4096


def read_text(path: str) -> str:
    """One read() of a small /proc or /sys file, at most 64 KiB (OSError propagates).

    os.open/os.read, not open(): a third cheaper per file, which counts when every process
    is read every sample. The files read this way (stat, io, status, cgroup, pressure,
    cgroup accounting) are produced whole by the kernel in one read.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, 65536).decode("utf-8", "replace")
    finally:
        os.close(fd)


def user_name(uid: int) -> str:
    """The login name of ``uid`` (pwd), or the number as text when it has none."""
    import pwd  # stdlib, Unix only: imported here so the module imports everywhere

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """One process in a top list, with what identifies it and what it uses.

    ``cpu_percent`` follows psutil and top: 100 is one whole CPU (a process with 4 busy
    threads can show 400). Rates are None on the first sight of a process.
    """

    pid: int
    start_ticks: int
    start_time_s: float
    comm: str
    uid: int | None
    user: str
    cgroup: str
    unit: str
    rss_bytes: int
    cpu_percent: float | None = None
    read_bytes_per_s: float | None = None
    write_bytes_per_s: float | None = None
    kernel_thread: bool = False

    @property
    def io_bytes_per_s(self) -> float | None:
        if self.read_bytes_per_s is None or self.write_bytes_per_s is None:
            return None
        return self.read_bytes_per_s + self.write_bytes_per_s

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ProcessInfo":
        return cls(**data)


@dataclass(frozen=True, slots=True)
class ProcessSample:
    """One scan: the three top lists (highest first) and how many processes were seen."""

    timestamp: float
    process_count: int
    top_cpu: list[ProcessInfo] = field(default_factory=list)
    top_memory: list[ProcessInfo] = field(default_factory=list)
    top_io: list[ProcessInfo] = field(default_factory=list)
    io_readable: bool = True

    def members(self) -> list[ProcessInfo]:
        """Every process of the three lists once, in order of first appearance."""
        seen: dict[tuple[int, int], ProcessInfo] = {}
        for p in (*self.top_cpu, *self.top_memory, *self.top_io):
            seen.setdefault((p.pid, p.start_ticks), p)
        return list(seen.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "timestamp": self.timestamp,
            "process_count": self.process_count,
            "top_cpu": [p.to_dict() for p in self.top_cpu],
            "top_memory": [p.to_dict() for p in self.top_memory],
            "top_io": [p.to_dict() for p in self.top_io],
            "io_readable": self.io_readable,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ProcessSample":
        return cls(
            timestamp=data["timestamp"],
            process_count=data["process_count"],
            top_cpu=[ProcessInfo.from_dict(p) for p in data.get("top_cpu", [])],
            top_memory=[ProcessInfo.from_dict(p) for p in data.get("top_memory", [])],
            top_io=[ProcessInfo.from_dict(p) for p in data.get("top_io", [])],
            io_readable=data.get("io_readable", True),
        )


class _Reading:
    """One process's counters at one sample, and the rates derived from the one before."""

    __slots__ = ("stat", "io", "cpu_percent", "read_bytes_per_s", "write_bytes_per_s")

    def __init__(self, stat: PidStat, io: PidIo | None) -> None:
        self.stat = stat
        self.io = io
        self.cpu_percent: float | None = None
        self.read_bytes_per_s: float | None = None
        self.write_bytes_per_s: float | None = None


class ProcessCollector:
    """Top N processes by CPU, resident memory and I/O, from /proc without psutil."""

    def __init__(
        self,
        root: str = "/proc",
        top_n: int = DEFAULT_TOP_N,
        ticks_per_s: float | None = None,
        page_bytes: int | None = None,
        user_of: Callable[[int], str] = user_name,
        min_cpu_percent: float = MIN_CPU_PERCENT,
        min_io_bytes_per_s: float = MIN_IO_BYTES_PER_S,
    ) -> None:
        if not isinstance(top_n, int) or isinstance(top_n, bool) or top_n < 1:
            raise ConfigError(f"process top_n {top_n!r} must be an int >= 1")
        self.root = root
        self.top_n = top_n
        self.min_cpu_percent = min_cpu_percent
        self.min_io_bytes_per_s = min_io_bytes_per_s
        self.ticks_per_s = float(ticks_per_s or os.sysconf("SC_CLK_TCK"))
        self.page_bytes = int(page_bytes or os.sysconf("SC_PAGE_SIZE"))
        self._user_of = user_of
        self._users: dict[int, str] = {}
        self._uids: dict[tuple[int, int], int | None] = {}
        self._io_denied: set[tuple[int, int]] = set()
        self._prev: dict[tuple[int, int], _Reading] = {}
        self._prev_now: float | None = None
        self._btime_s: int | None = None
        self.unparsable = 0
        """Process files that could not be parsed (counted, skipped)."""

    # -- reading --------------------------------------------------------------------------

    def btime_s(self) -> int:
        """Boot time (seconds since the epoch), read once from <root>/stat."""
        if self._btime_s is None:
            self._btime_s = parse_btime(read_text(os.path.join(self.root, "stat")))
        return self._btime_s

    def _scan(self) -> tuple[dict[tuple[int, int], _Reading], bool]:
        root = self.root
        readings: dict[tuple[int, int], _Reading] = {}
        io_readable = False
        io_denied, denied = self._io_denied, set()
        for name in os.listdir(root):
            if not name.isdigit():
                continue
            base = f"{root}/{name}/"
            try:
                stat = parse_pid_stat(read_text(base + "stat"))
            except VANISHED:
                continue
            except ProcfsError:
                self.unparsable += 1
                continue
            if stat is None:
                continue
            key = (stat.pid, stat.start_ticks)
            io: PidIo | None = None
            if not stat.kernel_thread and key not in io_denied:
                try:
                    io = parse_pid_io(read_text(base + "io"))
                    io_readable = True
                except PermissionError:  # another user's process, agent not root: ask once
                    denied.add(key)
                except (FileNotFoundError, ProcessLookupError, ProcfsError):
                    io = None
            readings[key] = _Reading(stat, io)
        self._io_denied = {k for k in io_denied if k in readings} | denied
        return readings, io_readable

    def _rates(self, readings: dict[tuple[int, int], _Reading], now: float) -> None:
        prev_now = self._prev_now
        if prev_now is None or now <= prev_now:
            return
        elapsed_s = now - prev_now
        cpu_scale = 100.0 / (self.ticks_per_s * elapsed_s)
        prev = self._prev
        for key, r in readings.items():
            p = prev.get(key)
            if p is None:
                continue
            r.cpu_percent = max(0, r.stat.cpu_ticks - p.stat.cpu_ticks) * cpu_scale
            if r.io is not None and p.io is not None:
                r.read_bytes_per_s = max(0, r.io.read_bytes - p.io.read_bytes) / elapsed_s
                r.write_bytes_per_s = max(0, r.io.write_bytes - p.io.write_bytes) / elapsed_s

    def _info(self, r: _Reading, btime_s: int) -> ProcessInfo:
        st = r.stat
        key = (st.pid, st.start_ticks)
        base = f"{self.root}/{st.pid}/"
        if key in self._uids:
            uid = self._uids[key]
        else:
            try:
                uid = parse_status_uid(read_text(base + "status"))
            except (*VANISHED, ProcfsError):
                uid = None
            self._uids[key] = uid
        try:
            cgroup = cgroup_of(parse_pid_cgroup(read_text(base + "cgroup")))
        except (*VANISHED, ProcfsError):
            cgroup = ""
        return ProcessInfo(
            pid=st.pid,
            start_ticks=st.start_ticks,
            start_time_s=btime_s + st.start_ticks / self.ticks_per_s,
            comm=st.comm,
            uid=uid,
            user=self._user(uid),
            cgroup=cgroup,
            unit=unit_of(cgroup),
            rss_bytes=st.rss_pages * self.page_bytes,
            cpu_percent=r.cpu_percent,
            read_bytes_per_s=r.read_bytes_per_s,
            write_bytes_per_s=r.write_bytes_per_s,
            kernel_thread=st.kernel_thread,
        )

    def _user(self, uid: int | None) -> str:
        if uid is None:
            return ""
        name = self._users.get(uid)
        if name is None:
            if len(self._users) >= USER_CACHE_MAX:
                self._users.clear()
            name = self._users[uid] = self._user_of(uid)
        return name

    # -- sampling -------------------------------------------------------------------------

    def sample(self, now: float) -> ProcessSample:
        """Scan every process at ``now`` and rank them.

        A process is in the CPU list only with a CPU rate of at least ``min_cpu_percent``,
        in the I/O list only with at least ``min_io_bytes_per_s`` (so an idle machine reports
        short lists rather than an arbitrary, ever-changing choice among idle processes), in
        the memory list with a resident set above zero (kernel threads have none). The first
        sample has no rates: no CPU or I/O list.
        """
        readings, io_readable = self._scan()
        self._rates(readings, now)
        self._prev, self._prev_now = readings, now
        self._uids = {k: v for k, v in self._uids.items() if k in readings}
        n = self.top_n
        values = list(readings.values())
        min_cpu, min_io = self.min_cpu_percent, self.min_io_bytes_per_s
        by_cpu = sorted((r for r in values if r.cpu_percent and r.cpu_percent >= min_cpu),
                        key=lambda r: -r.cpu_percent)[:n]
        by_rss = sorted((r for r in values if r.stat.rss_pages > 0),
                        key=lambda r: -r.stat.rss_pages)[:n]
        by_io = sorted(
            (r for r in values
             if (io := (r.read_bytes_per_s or 0) + (r.write_bytes_per_s or 0)) > 0 and io >= min_io),
            key=lambda r: -((r.read_bytes_per_s or 0) + (r.write_bytes_per_s or 0)),
        )[:n]
        btime_s = self.btime_s()
        infos: dict[int, ProcessInfo] = {}

        def info(r: _Reading) -> ProcessInfo:
            got = infos.get(id(r))
            if got is None:
                got = infos[id(r)] = self._info(r, btime_s)
            return got

        return ProcessSample(
            timestamp=now,
            process_count=len(readings),
            top_cpu=[info(r) for r in by_cpu],
            top_memory=[info(r) for r in by_rss],
            top_io=[info(r) for r in by_io],
            io_readable=io_readable,
        )
