"""CgroupCollector: CPU, memory and I/O per systemd service and container, from
``/sys/fs/cgroup`` (v2, v1, or the hybrid of v1 controllers plus a v2 ``unified`` mount).

Where each resource is read (:func:`detect_layout`, from the tree under ``root``):

- pure v2 (``root/cgroup.controllers`` exists): everything from ``root``;
- v1 / hybrid: CPU from the ``cpuacct`` hierarchy (or ``cpu,cpuacct``), memory from
  ``memory``, I/O from ``blkio``; a resource whose v1 hierarchy is missing is read from the v2
  mount at ``root/unified`` when that has the controller (CPU: always, ``cpu.stat`` is core).

Which groups are reported: see :func:`perfmesh.collect.cgroupfs.is_reported_group` (units and
leaves, never the root or a slice). The walk is bounded by depth and group count. Usage is
hierarchical (a unit includes its sub-groups), so reported groups do not overlap. Note that
v1 blkio does not see buffered writes (writeback is charged to the root), v2 io.stat does.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from ..errors import ConfigError
from .cgroupfs import (
    is_reported_group,
    parse_blkio_service_bytes,
    parse_controllers,
    parse_cpu_stat_usage_usec,
    parse_io_stat,
    parse_single_int,
)
from .pidfs import unit_of
from .processes import DEFAULT_TOP_N, MIN_CPU_PERCENT, MIN_IO_BYTES_PER_S, read_text
from .procfs import ProcfsError
from .rates import CounterRates

MAX_DEPTH = 6
MAX_GROUPS = 4096
"""The walk stops after this many reported groups per hierarchy (counted in ``truncated``)."""

# resource -> (v1 directory names, v1 file, v2 file, v2 controller)
_FILES = {
    "cpu": (("cpuacct", "cpu,cpuacct", "cpuacct,cpu"), "cpuacct.usage", "cpu.stat", ""),
    "memory": (("memory",), "memory.usage_in_bytes", "memory.current", "memory"),
    "io": (("blkio",), "blkio.throttle.io_service_bytes_recursive", "io.stat", "io"),
}


@dataclass(frozen=True, slots=True)
class Hierarchy:
    """Where one resource is read: the mount directory and whether it is cgroup v2."""

    path: str
    v2: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Hierarchy":
        return cls(**data)


def detect_layout(root: str) -> dict[str, Hierarchy]:
    """{resource ("cpu", "memory", "io"): Hierarchy} for the resources this tree accounts."""
    def controllers(path: str) -> frozenset[str] | None:
        try:
            return parse_controllers(read_text(os.path.join(path, "cgroup.controllers")))
        except OSError:
            return None

    top = controllers(root)
    if top is not None:
        v2_path, v2_controllers = root, top
    else:
        v2_path = os.path.join(root, "unified")
        v2_controllers = controllers(v2_path)
    layout: dict[str, Hierarchy] = {}
    for resource, (v1_dirs, v1_file, _, v2_controller) in _FILES.items():
        if top is None:
            for d in v1_dirs:
                path = os.path.join(root, d)
                if os.path.exists(os.path.join(path, v1_file)) or (
                    resource == "io" and os.path.isdir(path)
                ):
                    layout[resource] = Hierarchy(path, False)
                    break
        if resource not in layout and v2_controllers is not None and (
            not v2_controller or v2_controller in v2_controllers
        ):
            layout[resource] = Hierarchy(v2_path, True)
    return layout


@dataclass(frozen=True, slots=True)
class CgroupUsage:
    """What one cgroup uses. ``cpu_percent``: 100 is one whole CPU. Rates are None on first
    sight; a value is None when its resource is not accounted for this group."""

    path: str
    unit: str
    cpu_percent: float | None = None
    memory_bytes: int | None = None
    read_bytes_per_s: float | None = None
    write_bytes_per_s: float | None = None

    @property
    def io_bytes_per_s(self) -> float | None:
        if self.read_bytes_per_s is None or self.write_bytes_per_s is None:
            return None
        return self.read_bytes_per_s + self.write_bytes_per_s

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CgroupUsage":
        return cls(**data)


@dataclass(frozen=True, slots=True)
class CgroupSample:
    """The top groups by each resource (highest first) and how many groups were reported."""

    timestamp: float
    group_count: int
    top_cpu: list[CgroupUsage] = field(default_factory=list)
    top_memory: list[CgroupUsage] = field(default_factory=list)
    top_io: list[CgroupUsage] = field(default_factory=list)

    def members(self) -> list[CgroupUsage]:
        seen: dict[str, CgroupUsage] = {}
        for g in (*self.top_cpu, *self.top_memory, *self.top_io):
            seen.setdefault(g.path, g)
        return list(seen.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "timestamp": self.timestamp,
            "group_count": self.group_count,
            "top_cpu": [g.to_dict() for g in self.top_cpu],
            "top_memory": [g.to_dict() for g in self.top_memory],
            "top_io": [g.to_dict() for g in self.top_io],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CgroupSample":
        return cls(
            timestamp=data["timestamp"],
            group_count=data["group_count"],
            top_cpu=[CgroupUsage.from_dict(g) for g in data.get("top_cpu", [])],
            top_memory=[CgroupUsage.from_dict(g) for g in data.get("top_memory", [])],
            top_io=[CgroupUsage.from_dict(g) for g in data.get("top_io", [])],
        )


def walk_groups(mount: str, max_depth: int = MAX_DEPTH, max_groups: int = MAX_GROUPS
                ) -> tuple[list[str], bool]:
    """(reported group paths relative to ``mount`` like ``/system.slice/ssh.service``,
    truncated?) A group that vanishes during the walk is skipped."""
    found: list[str] = []
    stack = [("", 0)]
    while stack:
        rel, depth = stack.pop()
        try:
            children = sorted(e.name for e in os.scandir(mount + rel) if e.is_dir(follow_symlinks=False))
        except OSError:
            continue
        for name in children:
            child = f"{rel}/{name}"
            deeper = depth + 1 < max_depth
            has_children = False
            if deeper and not name.endswith(".service"):
                try:
                    has_children = any(e.is_dir(follow_symlinks=False) for e in os.scandir(mount + child))
                except OSError:
                    continue
            if is_reported_group(name, has_children) or not deeper:
                if len(found) >= max_groups:
                    return found, True
                found.append(child)
            else:
                stack.append((child, depth + 1))
    return found, False


class CgroupCollector:
    """Top N cgroups by CPU, memory and I/O. ``now`` is passed in; ``root`` may be fake.
    Groups below ``min_cpu_percent`` / ``min_io_bytes_per_s`` are not ranked by that
    resource (as for processes: idle groups would churn the lists)."""

    def __init__(self, root: str = "/sys/fs/cgroup", top_n: int = DEFAULT_TOP_N,
                 max_groups: int = MAX_GROUPS, min_cpu_percent: float = MIN_CPU_PERCENT,
                 min_io_bytes_per_s: float = MIN_IO_BYTES_PER_S) -> None:
        if not isinstance(top_n, int) or isinstance(top_n, bool) or top_n < 1:
            raise ConfigError(f"cgroup top_n {top_n!r} must be an int >= 1")
        self.root = root
        self.top_n = top_n
        self.min_cpu_percent = min_cpu_percent
        self.min_io_bytes_per_s = min_io_bytes_per_s
        self.max_groups = max_groups
        self.layout = detect_layout(root)
        self._rates = CounterRates()
        self.truncated = 0
        """Samples whose walk stopped at max_groups."""

    def _read(self, resource: str, h: Hierarchy, rel: str) -> tuple[int, int] | int | None:
        v1_file, v2_file = _FILES[resource][1], _FILES[resource][2]
        path = f"{h.path}{rel}/{v2_file if h.v2 else v1_file}"
        try:
            text = read_text(path)
        except FileNotFoundError:
            if resource == "io" and not h.v2:  # older kernels: no _recursive variant
                try:
                    text = read_text(path[: -len("_recursive")])
                except OSError:
                    return None
            else:
                return None
        except OSError:
            return None
        try:
            if resource == "cpu":
                return parse_cpu_stat_usage_usec(text) * 1000 if h.v2 else parse_single_int(text, v1_file)
            if resource == "memory":
                return parse_single_int(text, v2_file if h.v2 else v1_file)
            return parse_io_stat(text) if h.v2 else parse_blkio_service_bytes(text)
        except ProcfsError:
            return None

    def sample(self, now: float) -> CgroupSample:
        groups: dict[str, dict[str, float | int | None]] = {}
        rate = self._rates.rate
        for resource, h in self.layout.items():
            paths, truncated = walk_groups(h.path, max_groups=self.max_groups)
            self.truncated += truncated
            for rel in paths:
                value = self._read(resource, h, rel)
                if value is None:
                    continue
                g = groups.setdefault(rel, {})
                if resource == "cpu":
                    ns_per_s = rate(("cpu", rel), value, now)
                    g["cpu_percent"] = None if ns_per_s is None else ns_per_s / 1e7
                elif resource == "memory":
                    g["memory_bytes"] = value
                else:
                    read, written = value  # type: ignore[misc]
                    g["read_bytes_per_s"] = rate(("read", rel), read, now)
                    g["write_bytes_per_s"] = rate(("write", rel), written, now)
        self._rates.prune(before=now)
        usage = [CgroupUsage(path, unit_of(path), **v) for path, v in groups.items()]  # type: ignore[arg-type]
        n, min_cpu, min_io = self.top_n, self.min_cpu_percent, self.min_io_bytes_per_s
        return CgroupSample(
            timestamp=now,
            group_count=len(usage),
            top_cpu=sorted((g for g in usage if g.cpu_percent and g.cpu_percent >= min_cpu), key=lambda g: -g.cpu_percent)[:n],
            top_memory=sorted((g for g in usage if g.memory_bytes), key=lambda g: -g.memory_bytes)[:n],
            top_io=sorted((g for g in usage if g.io_bytes_per_s and g.io_bytes_per_s >= min_io), key=lambda g: -g.io_bytes_per_s)[:n],
        )
