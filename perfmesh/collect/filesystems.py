"""Filesystem space and inodes per mount: ``os.statvfs`` over ``/proc/self/mounts``.

Only real filesystems are reported: virtual ones (proc, sysfs, cgroup, devpts, ...) are
skipped, tmpfs only when asked (``include_tmpfs``), network filesystems only when asked
(``include_network``: a hung NFS server would block ``statvfs`` and the sampling loop). A
filesystem mounted several times (bind mounts, one disk under several paths, overlay mounts
of many containers on one backing store) is reported once, at its shortest mount point:
block devices are deduplicated by device name, others by what statvfs says of them.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping

from .procfs import ProcfsError

VIRTUAL_FS = frozenset({
    "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devpts",
    "devtmpfs", "efivarfs", "fusectl", "hugetlbfs", "mqueue", "nsfs", "proc", "pstore",
    "ramfs", "rpc_pipefs", "securityfs", "selinuxfs", "squashfs", "sysfs", "tracefs",
    "fuse.gvfsd-fuse", "fuse.portal", "fuse.lxcfs",
})
"""Filesystems with no space of their own to run out of (squashfs: read-only images, snaps)."""
TMPFS = frozenset({"tmpfs"})
NETWORK_FS = frozenset({"nfs", "nfs4", "cifs", "smb3", "smbfs", "ceph", "glusterfs",
                        "fuse.sshfs", "9p", "afs", "lustre"})

_OCTAL = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True, slots=True)
class Mount:
    """One line of /proc/self/mounts."""

    device: str
    mountpoint: str
    fstype: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Mount":
        return cls(**data)


def _unescape(field: str) -> str:
    """Mount fields escape space, tab, newline and backslash as octal (``\\040``)."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field) if "\\" in field else field


def parse_mounts(text: str) -> list[Mount]:
    """/proc/self/mounts (``device mountpoint fstype options 0 0``) as Mounts, in order."""
    out: list[Mount] = []
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 3:
            raise ProcfsError(f"mounts line {line!r} is not 'device mountpoint fstype options'")
        out.append(Mount(_unescape(fields[0]), _unescape(fields[1]), fields[2]))
    return out


def real_mounts(mounts: list[Mount], include_tmpfs: bool = False,
                include_network: bool = False) -> list[Mount]:
    """The mounts worth reporting, one per block device (the shortest mount point wins; a
    later mount over the same path replaces an earlier one, as the kernel shows it)."""
    by_path: dict[str, Mount] = {}
    for m in mounts:
        t = m.fstype
        if t in VIRTUAL_FS or (t in TMPFS and not include_tmpfs) or (
            t in NETWORK_FS and not include_network
        ):
            by_path.pop(m.mountpoint, None)
            continue
        by_path[m.mountpoint] = m
    by_device: dict[str, Mount] = {}
    rest: list[Mount] = []
    for m in sorted(by_path.values(), key=lambda m: (len(m.mountpoint), m.mountpoint)):
        if m.device.startswith("/dev/"):
            by_device.setdefault(m.device, m)
        else:
            rest.append(m)
    return sorted([*by_device.values(), *rest], key=lambda m: m.mountpoint)


@dataclass(frozen=True, slots=True)
class FilesystemUsage:
    """Space and inodes of one mounted filesystem, as ``df`` shows them: ``available_bytes``
    is what unprivileged users may still write (``free_bytes`` includes the root reserve), and
    ``used_percent`` is used / (used + available). ``inodes_total`` is 0 where the filesystem
    has no fixed inode table (btrfs)."""

    mountpoint: str
    device: str
    fstype: str
    size_bytes: int
    free_bytes: int
    available_bytes: int
    inodes_total: int
    inodes_free: int

    @property
    def used_bytes(self) -> int:
        return self.size_bytes - self.free_bytes

    @property
    def used_percent(self) -> float:
        denominator = self.used_bytes + self.available_bytes
        return self.used_bytes * 100.0 / denominator if denominator > 0 else 0.0

    @property
    def inodes_used_percent(self) -> float:
        total = self.inodes_total
        return (total - self.inodes_free) * 100.0 / total if total > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "FilesystemUsage":
        return cls(**data)


def usage_of(mount: Mount, st: os.statvfs_result) -> FilesystemUsage:
    frsize = st.f_frsize or st.f_bsize
    return FilesystemUsage(
        mountpoint=mount.mountpoint,
        device=mount.device,
        fstype=mount.fstype,
        size_bytes=st.f_blocks * frsize,
        free_bytes=st.f_bfree * frsize,
        available_bytes=st.f_bavail * frsize,
        inodes_total=st.f_files,
        inodes_free=st.f_ffree,
    )


class FilesystemCollector:
    """Space and inodes of the real filesystems listed in ``<root>/self/mounts``.

    ``statvfs`` is injectable so tests can point it at fake numbers; a mount point that
    cannot be statted (gone, permission) is skipped.
    """

    def __init__(self, root: str = "/proc", include_tmpfs: bool = False,
                 include_network: bool = False,
                 statvfs: Callable[[str], os.statvfs_result] = os.statvfs) -> None:
        self.mounts_path = os.path.join(root, "self", "mounts")
        self.include_tmpfs = include_tmpfs
        self.include_network = include_network
        self._statvfs = statvfs

    def sample(self) -> list[FilesystemUsage]:
        try:
            with open(self.mounts_path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return []
        out: list[FilesystemUsage] = []
        seen: set[tuple[Any, ...]] = set()
        for m in real_mounts(parse_mounts(text), self.include_tmpfs, self.include_network):
            try:
                st = self._statvfs(m.mountpoint)
            except OSError:
                continue
            if not m.device.startswith("/dev/"):
                same = (m.fstype, getattr(st, "f_fsid", 0), st.f_blocks, st.f_bfree, st.f_files)
                if same in seen:
                    continue
                seen.add(same)
            out.append(usage_of(m, st))
        return out
