"""UsageCollector: metric names, labels and bounded cardinality from fake trees, retirement
of series whose process exited or left the top lists, and this machine end to end."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from perfmesh.collect.usage import LABEL_VALUE_MAX, UsageCollector, UsageSample, label_value
from perfmesh.model.metric import series_key

from .fakeproc import make_proc, remove_process, write_group, write_process
from .test_processes import HOG, wait_for


def usage(tmp_path, **kw) -> UsageCollector:
    proc = make_proc(tmp_path / "proc")
    cg = tmp_path / "cg"
    write_group(cg, "/", cgroup__controllers="cpu memory io\n")
    kw.setdefault("filesystems", False)
    return UsageCollector(str(proc), str(cg), ticks_per_s=100.0, page_bytes=4096,
                          user_of=lambda uid: "root", min_cpu_percent=0.0,
                          min_io_bytes_per_s=0.0, **kw)


def by_key(sample: UsageSample) -> dict[str, float]:
    return {m.key: m.value for m in sample.metrics}


def test_process_metrics_carry_identity_labels(tmp_path):
    """Each listed process has pid, start_ticks, comm, user, unit and cgroup labels, its rss,
    CPU and I/O rates and its start time in seconds since the epoch."""
    u = usage(tmp_path)
    root = tmp_path / "proc"
    write_process(root, 4242, "ffmpeg", start=500, cgroup="0::/system.slice/transcode.service\n")
    u.sample(now=1.0)
    write_process(root, 4242, "ffmpeg", start=500, utime=150,
                  cgroup="0::/system.slice/transcode.service\n")
    s = u.sample(now=2.0)
    labels = {"pid": "4242", "start_ticks": "500", "comm": "ffmpeg", "user": "root",
              "unit": "transcode.service", "cgroup": "/system.slice/transcode.service"}
    got = by_key(s)
    assert got[series_key("process_cpu_percent", labels)] == pytest.approx(150.0)
    assert got[series_key("process_rss_bytes", labels)] == 40960.0
    assert got[series_key("process_read_bytes_per_s", labels)] == 0.0
    assert got[series_key("process_start_time_seconds", labels)] == pytest.approx(1_700_000_005.0)
    assert got["process_count"] == 1.0
    assert {m.category for m in s.metrics if m.name.startswith("process_")} == {"process"}


def test_exited_process_series_are_retired_at_the_next_sample(tmp_path):
    """A process that left is not reported, and its series are listed as retired once."""
    u = usage(tmp_path)
    root = tmp_path / "proc"
    write_process(root, 10, "gone")
    write_process(root, 11, "stays")
    first = u.sample(now=1.0)
    gone_keys = {m.key for m in first.metrics if m.context.get("pid") == "10"}
    assert gone_keys
    remove_process(root, 10)
    second = u.sample(now=2.0)
    assert not any(m.context.get("pid") == "10" for m in second.metrics)
    assert gone_keys <= set(second.retired)
    assert u.sample(now=3.0).retired == []


def test_process_leaving_the_top_list_is_retired(tmp_path):
    """With top_n=1, the process overtaken in memory is retired."""
    u = usage(tmp_path, top_n=1, cgroups=False, pressure=False)
    root = tmp_path / "proc"
    write_process(root, 10, rss_pages=100)
    write_process(root, 11, rss_pages=1)
    u.sample(now=1.0)
    write_process(root, 11, rss_pages=1000)
    s = u.sample(now=2.0)
    assert {m.context["pid"] for m in s.metrics if "pid" in m.context} == {"11"}
    assert any('pid=10' in k for k in s.retired)


def test_cardinality_is_bounded_by_top_n(tmp_path):
    """200 busy processes, top_n=3: at most 3 x 3 processes are labelled."""
    u = usage(tmp_path, top_n=3, cgroups=False, pressure=False)
    root = tmp_path / "proc"
    for pid in range(100, 300):
        write_process(root, pid, rss_pages=pid, io=(0, 0))
    u.sample(now=1.0)
    for pid in range(100, 300):
        write_process(root, pid, rss_pages=pid, utime=pid, io=(400 - pid, 0))
    s = u.sample(now=2.0)
    labelled = {m.context["pid"] for m in s.metrics if "pid" in m.context}
    assert len(labelled) <= 9
    assert {"299", "298", "297", "100", "101", "102"} <= labelled


def test_cgroup_pressure_and_filesystem_metrics(tmp_path):
    """Groups by cgroup/unit, pressure by resource in the resource's category, one
    filesystem's df figures by mount point."""
    u = usage(tmp_path, filesystems=True)
    cg = tmp_path / "cg"
    write_group(cg, "/system.slice/db.service", cpu__stat="usage_usec 0\n", memory__current="7\n",
                io__stat="")
    proc = tmp_path / "proc"
    (proc / "pressure").mkdir()
    (proc / "pressure" / "memory").write_text("some avg10=1.50 avg60=1.00 avg300=0.50 total=0\n")
    (proc / "self").mkdir()
    (proc / "self" / "mounts").write_text(f"/dev/fake {tmp_path} ext4 rw 0 0\n")
    got = by_key(u.sample(now=1.0))
    assert got["cgroup_memory_bytes{cgroup=/system.slice/db.service,unit=db.service}"] == 7.0
    assert got["pressure_some_avg10_percent{resource=memory}"] == 1.5
    fs = {"mountpoint": str(tmp_path), "device": "/dev/fake", "fstype": "ext4"}
    assert got[series_key("filesystem_size_bytes", fs)] > 0
    cats = {m.name: m.category for m in u.sample(now=2.0).metrics}
    assert cats["pressure_some_stall_percent"] == "memory"
    assert cats["filesystem_used_percent"] == "io"


def test_long_label_values_keep_their_end():
    """A cgroup path longer than the wire's label limit is cut at the front."""
    long_path = "/kubepods.slice/" + "x" * 200 + "/cri-containerd-abc.scope"
    cut = label_value(long_path)
    assert len(cut) == LABEL_VALUE_MAX and cut.startswith("...")
    assert cut.endswith("cri-containerd-abc.scope")


def test_sample_round_trips_through_dicts(tmp_path):
    """UsageSample.to_dict/from_dict give back an equal sample."""
    u = usage(tmp_path)
    write_process(tmp_path / "proc", 10)
    s = u.sample(now=1.0)
    assert UsageSample.from_dict(s.to_dict()) == s


def test_live_hog_series_retired_after_it_exits():
    """This machine: a busy child's process_cpu_percent series appears, and once the child
    is reaped the next sample retires it."""
    proc = subprocess.Popen([sys.executable, "-c", HOG])
    try:
        u = UsageCollector()

        def hog_keys():
            s = u.sample(time.time())
            return {m.key for m in s.metrics
                    if m.name == "process_cpu_percent" and m.context["pid"] == str(proc.pid)
                    and m.context["comm"] == "pmtest-hog"}

        keys = wait_for(hog_keys)
    finally:
        proc.kill()
        proc.wait()
    s = u.sample(time.time())
    assert keys <= set(s.retired)
    assert not any(m.context.get("pid") == str(proc.pid) for m in s.metrics)
