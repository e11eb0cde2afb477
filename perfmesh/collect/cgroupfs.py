"""Pure parsers of cgroup accounting files, v2 (unified) and v1, and the rule that says which
cgroups are reported.

- v2: ``cpu.stat`` (``usage_usec``), ``memory.current``, ``io.stat``
  (``MAJ:MIN rbytes=.. wbytes=.. rios=..`` per device);
- v1: ``cpuacct.usage`` (nanoseconds), ``memory.usage_in_bytes``,
  ``blkio.throttle.io_service_bytes[_recursive]`` (``MAJ:MIN Read N`` lines and a ``Total``).

No file access here. Text that does not look like the file raises
:class:`~perfmesh.collect.procfs.ProcfsError` naming what was expected.
"""

from __future__ import annotations

from .pidfs import UNIT_SUFFIXES
from .procfs import ProcfsError


def parse_single_int(text: str, what: str) -> int:
    """A file holding one integer (``memory.current``, ``cpuacct.usage``, ...)."""
    try:
        return int(text.strip())
    except ValueError:
        raise ProcfsError(f"{what} text {text[:40]!r} is not one integer") from None


def parse_cpu_stat_usage_usec(text: str) -> int:
    """``usage_usec`` of a v2 ``cpu.stat``: CPU time used by the cgroup, microseconds."""
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "usage_usec":
            return parse_single_int(value, "cpu.stat usage_usec")
    raise ProcfsError(f"cpu.stat text {text[:40]!r} has no usage_usec line")


def parse_io_stat(text: str) -> tuple[int, int]:
    """(read bytes, written bytes) of a v2 ``io.stat``, summed over devices."""
    read = written = 0
    for line in text.splitlines():
        for item in line.split()[1:]:
            key, sep, value = item.partition("=")
            if not sep:
                raise ProcfsError(f"io.stat line {line!r} has an item {item!r} without '='")
            if key == "rbytes":
                read += parse_single_int(value, "io.stat rbytes")
            elif key == "wbytes":
                written += parse_single_int(value, "io.stat wbytes")
    return read, written


def parse_blkio_service_bytes(text: str) -> tuple[int, int]:
    """(read bytes, written bytes) of a v1 ``blkio.throttle.io_service_bytes`` file, summed
    over devices (``MAJ:MIN Read N``, ``MAJ:MIN Write N``; the ``Total`` line is ignored)."""
    read = written = 0
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 3:
            if fields[1] == "Read":
                read += parse_single_int(fields[2], "blkio Read")
            elif fields[1] == "Write":
                written += parse_single_int(fields[2], "blkio Write")
        elif len(fields) == 2 and fields[0] == "Total":
            continue
        elif fields:
            raise ProcfsError(f"blkio.throttle.io_service_bytes line {line!r} is not 'dev op bytes'")
    return read, written


def parse_controllers(text: str) -> frozenset[str]:
    """``cgroup.controllers`` of a v2 hierarchy: the controllers it has (space separated)."""
    return frozenset(text.split())


def is_reported_group(name: str, has_children: bool) -> bool:
    """Whether a cgroup directory is reported as one consumer: a systemd unit (``.service``,
    ``.scope``, ... : a service or a container scope, its sub-groups included) or a leaf
    (``/docker/<id>``, a pod's container). Slices and other inner groups only hold others,
    whose usage they repeat: they are walked, not reported."""
    return name.endswith(UNIT_SUFFIXES) or not has_children
