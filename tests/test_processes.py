"""ProcessCollector: top processes by CPU, memory and I/O from a fake /proc (exact values,
fake clock) and from this machine's /proc (a busy-loop child appears, an exited one is gone)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from perfmesh.collect import processes
from perfmesh.collect.processes import ProcessCollector, ProcessInfo, ProcessSample
from perfmesh.errors import ConfigError

from .fakeproc import BTIME, make_proc, remove_process, write_process


def collector(root, **kw) -> ProcessCollector:
    kw.setdefault("ticks_per_s", 100.0)
    kw.setdefault("page_bytes", 4096)
    kw.setdefault("user_of", lambda uid: {0: "root", 1000: "alice"}.get(uid, str(uid)))
    kw.setdefault("min_cpu_percent", 0.0)
    kw.setdefault("min_io_bytes_per_s", 0.0)
    return ProcessCollector(str(root), **kw)


def pids(infos: list[ProcessInfo]) -> list[int]:
    return [p.pid for p in infos]


def test_first_sample_ranks_memory_but_has_no_rates(tmp_path):
    """Without a previous reading there is no CPU or I/O list; memory is ranked at once."""
    root = make_proc(tmp_path / "proc")
    write_process(root, 10, rss_pages=5)
    write_process(root, 11, rss_pages=50)
    s = collector(root).sample(now=100.0)
    assert s.process_count == 2
    assert s.top_cpu == [] and s.top_io == []
    assert pids(s.top_memory) == [11, 10]
    assert s.top_memory[0].rss_bytes == 50 * 4096


def test_cpu_percent_from_tick_deltas_over_elapsed_time(tmp_path):
    """100 ticks at 100 Hz over 2 s is 50 % of one CPU; utime and stime both count."""
    root = make_proc(tmp_path / "proc")
    write_process(root, 10, utime=100, stime=0)
    write_process(root, 11, utime=0, stime=0)
    c = collector(root)
    c.sample(now=100.0)
    write_process(root, 10, utime=160, stime=40)
    write_process(root, 11, utime=10, stime=0)
    s = c.sample(now=102.0)
    assert pids(s.top_cpu) == [10, 11]
    assert s.top_cpu[0].cpu_percent == pytest.approx(50.0)
    assert s.top_cpu[1].cpu_percent == pytest.approx(5.0)


def test_identity_fields_start_time_user_comm_cgroup_unit(tmp_path):
    """A listed process carries start ticks and epoch start (btime + ticks / Hz), user from
    its effective uid, comm, cgroup path and unit."""
    root = make_proc(tmp_path / "proc")
    write_process(root, 4242, "ffmpeg", start=12345, uid=1000,
                  cgroup="0::/system.slice/transcode.service\n")
    p = collector(root).sample(now=1.0).top_memory[0]
    assert (p.pid, p.comm, p.start_ticks, p.uid, p.user) == (4242, "ffmpeg", 12345, 1000, "alice")
    assert p.start_time_s == pytest.approx(BTIME + 123.45)
    assert (p.cgroup, p.unit) == ("/system.slice/transcode.service", "transcode.service")
    assert ProcessInfo.from_dict(p.to_dict()) == p


def test_reused_pid_gets_no_rate_from_its_predecessor(tmp_path):
    """Same pid, new start time: a new process, so no CPU rate from the old counters."""
    root = make_proc(tmp_path / "proc")
    write_process(root, 10, utime=0, start=1000)
    c = collector(root)
    c.sample(now=1.0)
    write_process(root, 10, utime=500, start=2000)
    assert c.sample(now=2.0).top_cpu == []
    write_process(root, 10, utime=600, start=2000)
    s = c.sample(now=3.0)
    assert [(p.pid, p.start_ticks, p.cpu_percent) for p in s.top_cpu] == [(10, 2000, pytest.approx(100.0))]


def test_io_rates_rank_by_read_plus_write(tmp_path):
    """Storage bytes per second from /proc/PID/io deltas; a process with no io file has none."""
    root = make_proc(tmp_path / "proc")
    write_process(root, 10, io=(0, 0))
    write_process(root, 11, io=(0, 0))
    write_process(root, 12, io=None)
    c = collector(root)
    c.sample(now=10.0)
    write_process(root, 10, io=(1000, 0))
    write_process(root, 11, io=(4000, 6000))
    s = c.sample(now=12.0)
    assert pids(s.top_io) == [11, 10]
    assert (s.top_io[0].read_bytes_per_s, s.top_io[0].write_bytes_per_s) == (2000.0, 3000.0)
    assert s.top_io[0].io_bytes_per_s == 5000.0
    assert s.io_readable


def test_default_thresholds_keep_blips_out_of_the_rate_lists(tmp_path):
    """By default one clock tick in 1 s (1 %) and 1 KiB/s of I/O do not rank a process;
    2 % of a CPU and 64 KiB/s do."""
    root = make_proc(tmp_path / "proc")
    write_process(root, 10, utime=0, io=(0, 0))
    write_process(root, 11, utime=0, io=(0, 0))
    c = ProcessCollector(str(root), ticks_per_s=100.0, page_bytes=4096, user_of=str)
    c.sample(now=1.0)
    write_process(root, 10, utime=1, io=(1024, 0))
    write_process(root, 11, utime=2, io=(0, 65536))
    s = c.sample(now=2.0)
    assert pids(s.top_cpu) == [11] and pids(s.top_io) == [11]


def test_top_n_bounds_each_list(tmp_path):
    """top_n=2 keeps the two largest of each list."""
    root = make_proc(tmp_path / "proc")
    for pid in range(10, 16):
        write_process(root, pid, rss_pages=pid)
    s = collector(root, top_n=2).sample(now=1.0)
    assert pids(s.top_memory) == [15, 14]
    assert s.process_count == 6


def test_exited_process_is_gone_at_the_next_sample(tmp_path):
    """A process whose directory disappeared is not listed and its reading is dropped."""
    root = make_proc(tmp_path / "proc")
    write_process(root, 10, utime=0)
    write_process(root, 11, utime=0)
    c = collector(root)
    c.sample(now=1.0)
    remove_process(root, 10)
    write_process(root, 11, utime=50)
    s = c.sample(now=2.0)
    assert pids(s.top_cpu) == [11] and pids(s.top_memory) == [11]
    assert set(c._prev) == {(11, 1000)}


@pytest.mark.parametrize("exc", [FileNotFoundError, ProcessLookupError, PermissionError])
def test_process_vanishing_mid_read_is_skipped(tmp_path, monkeypatch, exc):
    """A read of one process raising exc skips that process; the others are reported."""
    root = make_proc(tmp_path / "proc")
    write_process(root, 10)
    write_process(root, 11)
    real = processes.read_text

    def flaky(path: str) -> str:
        if "/10/" in path:
            raise exc(path)
        return real(path)

    monkeypatch.setattr(processes, "read_text", flaky)
    s = collector(root).sample(now=1.0)
    assert pids(s.top_memory) == [11] and s.process_count == 1


def test_io_denied_is_not_asked_again_for_the_same_process(tmp_path, monkeypatch):
    """A PermissionError on /proc/PID/io (not root) leaves the process listed without I/O
    and its io file is not opened again at the next samples."""
    root = make_proc(tmp_path / "proc")
    write_process(root, 10, rss_pages=3)
    real = processes.read_text
    io_reads: list[str] = []

    def denied_io(path: str) -> str:
        if path.endswith("/io"):
            io_reads.append(path)
            raise PermissionError(path)
        return real(path)

    monkeypatch.setattr(processes, "read_text", denied_io)
    c = collector(root)
    for now in (1.0, 2.0, 3.0):
        s = c.sample(now=now)
    assert pids(s.top_memory) == [10] and s.top_memory[0].read_bytes_per_s is None
    assert len(io_reads) == 1 and not s.io_readable


def test_unparsable_stat_is_counted_and_skipped(tmp_path):
    """A stat that is not a stat is counted in ``unparsable``; the sample goes on."""
    root = make_proc(tmp_path / "proc")
    write_process(root, 10)
    (write_process(root, 11) / "stat").write_text("garbage")
    c = collector(root)
    s = c.sample(now=1.0)
    assert pids(s.top_memory) == [10] and c.unparsable == 1


def test_kernel_threads_have_no_memory_entry_and_no_io_read(tmp_path):
    """A kernel thread (rss 0) is not in the memory list; its io file is not read."""
    root = make_proc(tmp_path / "proc")
    write_process(root, 2, "kthreadd", rss_pages=0, kthread=True, io=(0, 0))
    write_process(root, 10, rss_pages=1)
    c = collector(root)
    c.sample(now=1.0)
    write_process(root, 2, "kthreadd", rss_pages=0, kthread=True, io=(999, 999), utime=10)
    s = c.sample(now=2.0)
    assert pids(s.top_memory) == [10] and s.top_io == []
    assert s.top_cpu[0].kernel_thread and s.top_cpu[0].read_bytes_per_s is None


def test_user_names_are_cached_per_uid(tmp_path):
    """pwd is asked once per uid across processes and samples."""
    root = make_proc(tmp_path / "proc")
    for pid in (10, 11, 12):
        write_process(root, pid, uid=1000)
    calls: list[int] = []
    c = collector(root, user_of=lambda uid: calls.append(uid) or "alice")
    c.sample(now=1.0)
    c.sample(now=2.0)
    assert calls == [1000]


def test_top_n_must_be_a_positive_int(tmp_path):
    """top_n=0 is a ConfigError naming the value."""
    with pytest.raises(ConfigError, match="top_n 0"):
        ProcessCollector(str(tmp_path), top_n=0)


def test_sample_round_trips_through_dicts(tmp_path):
    """ProcessSample.to_dict/from_dict give back an equal sample."""
    root = make_proc(tmp_path / "proc")
    write_process(root, 10)
    s = collector(root).sample(now=1.0)
    assert ProcessSample.from_dict(s.to_dict()) == s


# -- this machine ---------------------------------------------------------------------------

HOG = "open('/proc/self/comm', 'w').write('pmtest-hog')\nwhile True:\n    pass\n"


def wait_for(predicate, timeout_s: float = 20.0, poll_s: float = 0.2):
    """Poll ``predicate`` until it returns something truthy; fail after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(poll_s)
    pytest.fail(f"condition not met within {timeout_s} s")


@pytest.fixture
def hog():
    before = time.time()
    proc = subprocess.Popen([sys.executable, "-c", HOG])
    try:
        yield proc, before
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs Linux /proc")
def test_live_busy_loop_appears_in_top_cpu_with_pid_comm_and_start_time(hog):
    """A busy-loop child shows in the top CPU list with its pid, comm and a start time
    between just before and just after it was spawned."""
    proc, before = hog
    c = ProcessCollector()

    def hog_listed():
        s = c.sample(time.time())
        return next((p for p in s.top_cpu if p.pid == proc.pid and p.comm == "pmtest-hog"), None)

    p = wait_for(hog_listed)
    assert before - 1.0 <= p.start_time_s <= time.time()
    stat = open(f"/proc/{proc.pid}/stat").read()
    assert p.start_ticks == int(stat[stat.rfind(")") + 2:].split()[19])
    assert p.cpu_percent > 10.0
    assert p.user == __import__("pwd").getpwuid(os.geteuid()).pw_name
    assert p.cgroup.startswith("/")


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs Linux /proc")
def test_live_exited_child_is_gone_after_the_next_sample(hog):
    """Once the child is killed and reaped, the next sample lists it nowhere."""
    proc, _ = hog
    c = ProcessCollector()
    wait_for(lambda: any(p.pid == proc.pid for p in c.sample(time.time()).members()))
    proc.kill()
    proc.wait()
    s = c.sample(time.time())
    assert proc.pid not in {p.pid for p in s.members()}
