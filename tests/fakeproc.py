"""Fake /proc and /sys/fs/cgroup trees under tmp_path for the usage collectors' tests."""

from __future__ import annotations

import shutil
from pathlib import Path

BTIME = 1_700_000_000


def make_proc(root: Path, btime: int = BTIME) -> Path:
    """A /proc with a stat (btime), no processes yet."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "stat").write_text(f"cpu  1 0 1 10 0 0 0 0\ncpu0 1 0 1 10 0 0 0 0\nintr 0\nbtime {btime}\n")
    return root


def write_process(root: Path, pid: int, comm: str = "worker", *, utime: int = 0, stime: int = 0,
                  start: int = 1000, rss_pages: int = 10, uid: int = 0,
                  cgroup: str = "0::/system.slice/app.service\n",
                  io: tuple[int, int] | None = (0, 0), kthread: bool = False) -> Path:
    """One process directory with stat, status, cgroup and (unless io is None) io."""
    d = root / str(pid)
    d.mkdir(exist_ok=True)
    flags = 0x00200000 if kthread else 0x00400000
    tail = " ".join(["0"] * 20)
    (d / "stat").write_text(
        f"{pid} ({comm}) S 1 {pid} {pid} 0 -1 {flags} 0 0 0 0 {utime} {stime} 0 0 20 0 1 0 "
        f"{start} 1000000 {rss_pages} {tail}\n"
    )
    (d / "status").write_text(f"Name:\t{comm}\nState:\tS\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n")
    (d / "cgroup").write_text(cgroup)
    io_file = d / "io"
    if io is None:
        io_file.unlink(missing_ok=True)
    else:
        io_file.write_text(f"rchar: 0\nwchar: 0\nread_bytes: {io[0]}\nwrite_bytes: {io[1]}\n")
    return d


def remove_process(root: Path, pid: int) -> None:
    shutil.rmtree(root / str(pid))


def write_group(mount: Path, rel: str, **files: str) -> Path:
    """A cgroup directory ``mount/rel`` holding ``files`` (name with '.' given as '__')."""
    d = mount / rel.strip("/") if rel.strip("/") else mount
    d.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (d / name.replace("__", ".")).write_text(text)
    return d
