"""Pure parsers of the per-process files of Linux /proc: ``/proc/PID/stat``, ``status``,
``io`` and ``cgroup``, plus ``btime`` from ``/proc/stat`` and the systemd unit of a cgroup path.

No file access here: each function takes the text of one file. Text that does not look like
the file raises :class:`~perfmesh.collect.procfs.ProcfsError` naming what was expected. An
empty text (a process that exited between open and read) parses to None where noted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

from .procfs import ProcfsError

PF_KTHREAD = 0x00200000
"""``flags`` bit of /proc/PID/stat marking a kernel thread (include/linux/sched.h)."""

UNIT_SUFFIXES = (".service", ".scope", ".socket", ".mount", ".swap", ".timer")
"""Names of systemd units that run processes (slices only group them)."""


@dataclass(frozen=True, slots=True)
class PidStat:
    """What /proc/PID/stat tells of one process, in kernel units (clock ticks, pages).

    ``start_ticks`` is the start time in clock ticks since boot: with the pid it names one
    process (a pid is reused, a (pid, start_ticks) pair is not within one boot).
    """

    pid: int
    comm: str
    state: str
    ppid: int
    flags: int
    utime_ticks: int
    stime_ticks: int
    start_ticks: int
    rss_pages: int

    @property
    def cpu_ticks(self) -> int:
        return self.utime_ticks + self.stime_ticks

    @property
    def kernel_thread(self) -> bool:
        return bool(self.flags & PF_KTHREAD)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PidStat":
        return cls(**data)


@dataclass(frozen=True, slots=True)
class PidIo:
    """Cumulative I/O of one process from /proc/PID/io.

    ``read_bytes``/``write_bytes`` reached the storage layer (page cache hits excluded);
    ``rchar_bytes``/``wchar_bytes`` are all bytes passed to read/write calls (sockets, pipes,
    cache hits included).
    """

    read_bytes: int
    write_bytes: int
    rchar_bytes: int = 0
    wchar_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PidIo":
        return cls(**data)


def parse_pid_stat(text: str) -> PidStat | None:
    """/proc/PID/stat: ``pid (comm) state ppid ... utime stime ... starttime vsize rss ...``.

    ``comm`` may hold spaces and parentheses, so it runs from the first ``(`` to the LAST
    ``)``. None for an empty text (the process exited while being read).
    """
    if not text:
        return None
    open_at = text.find("(")
    close_at = text.rfind(")")
    if open_at < 0 or close_at < open_at:
        raise ProcfsError(f"/proc/PID/stat text {text[:60]!r} has no '(comm)' field")
    rest = text[close_at + 2:].split()
    # rest[0] is field 3 (state): field n of proc(5) is rest[n - 3]
    if len(rest) < 22:
        raise ProcfsError(
            f"/proc/PID/stat text {text[:60]!r} has {len(rest) + 2} fields; expected at least 24"
        )
    try:
        return PidStat(
            pid=int(text[:open_at]),
            comm=text[open_at + 1:close_at],
            state=rest[0],
            ppid=int(rest[1]),
            flags=int(rest[6]),
            utime_ticks=int(rest[11]),
            stime_ticks=int(rest[12]),
            start_ticks=int(rest[19]),
            rss_pages=max(0, int(rest[21])),
        )
    except ValueError:
        raise ProcfsError(f"/proc/PID/stat text {text[:80]!r} has a non-numeric field") from None


def parse_pid_io(text: str) -> PidIo | None:
    """/proc/PID/io (``rchar: 123`` lines) -> PidIo; None for an empty text."""
    if not text:
        return None
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            try:
                values[key.strip()] = int(value)
            except ValueError:
                raise ProcfsError(f"/proc/PID/io line {line!r} has no integer value") from None
    try:
        return PidIo(values["read_bytes"], values["write_bytes"],
                     values.get("rchar", 0), values.get("wchar", 0))
    except KeyError:
        raise ProcfsError(
            f"/proc/PID/io has no read_bytes/write_bytes; fields: {sorted(values)}"
        ) from None


def parse_status_uid(text: str) -> int | None:
    """The effective uid from the ``Uid:`` line of /proc/PID/status (real, effective, saved,
    filesystem); None for an empty text."""
    if not text:
        return None
    at = text.find("\nUid:")
    if at < 0:
        raise ProcfsError(f"/proc/PID/status text {text[:40]!r} has no 'Uid:' line")
    fields = text[at + 5:text.find("\n", at + 5)].split()
    try:
        return int(fields[1])
    except (IndexError, ValueError):
        raise ProcfsError(f"/proc/PID/status Uid line {fields!r} is not four uids") from None


def parse_btime(text: str) -> int:
    """``btime`` of /proc/stat: the boot time in seconds since the epoch."""
    at = text.find("\nbtime ")
    if at < 0:
        raise ProcfsError("/proc/stat has no 'btime' line")
    end = text.find("\n", at + 1)
    try:
        return int(text[at + 7:end if end >= 0 else len(text)])
    except ValueError:
        raise ProcfsError(f"/proc/stat btime line {text[at + 1:end]!r} is not an integer") from None


def parse_pid_cgroup(text: str) -> dict[str, str]:
    """/proc/PID/cgroup as {controller: path}.

    cgroup v2 is the line ``0::/path``, kept under the key ``""``; each v1 line
    ``N:cpu,cpuacct:/path`` gives one entry per controller (``cpu`` and ``cpuacct``), and a
    named hierarchy ``N:name=systemd:/path`` is kept as ``name=systemd``.
    """
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            if line.strip():
                raise ProcfsError(f"/proc/PID/cgroup line {line!r} is not 'id:controllers:path'")
            continue
        _, controllers, path = parts
        if not controllers:
            out[""] = path
        else:
            for c in controllers.split(","):
                out[c] = path
    return out


def cgroup_of(controllers: Mapping[str, str]) -> str:
    """The one cgroup path that best says where a process runs: the v2 path when it is more
    than ``/`` (pure v2 or a v2-managed hybrid), else the systemd v1 hierarchy, else the v1
    memory or cpu path, else ``/``."""
    for key in ("", "name=systemd", "memory", "cpu", "cpuacct"):
        path = controllers.get(key)
        if path and path != "/":
            return path
    return "/"


def unit_of(cgroup_path: str) -> str:
    """The systemd unit (or container scope) a cgroup path belongs to: the deepest path part
    that is a unit, e.g. ``/system.slice/ssh.service`` -> ``ssh.service``,
    ``/user.slice/user-1000.slice/session-2.scope`` -> ``session-2.scope``; else the deepest
    slice (``user-1000.slice``); else the last part (``/docker/abc`` -> ``abc``); ``""``
    for the root."""
    parts = [p for p in cgroup_path.split("/") if p]
    for part in reversed(parts):
        if part.endswith(UNIT_SUFFIXES):
            return part
    for part in reversed(parts):
        if part.endswith(".slice"):
            return part
    return parts[-1] if parts else ""
