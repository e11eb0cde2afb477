"""Pure per-process /proc parsers against files captured on this machine
(tests/fixtures/proc/pid: a bash's stat/status/io/cgroup on the hybrid v1+v2 host, pid 1,
kthreadd) and hand-made ones (odd comm, setuid status, systemd cgroup lines)."""

from pathlib import Path

import pytest

from perfmesh.collect.pidfs import (
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
from perfmesh.collect.procfs import ProcfsError
from perfmesh.errors import PerfmeshError

PID = Path(__file__).parent / "fixtures" / "proc" / "pid"
HOST = Path(__file__).parent / "fixtures" / "proc" / "host"


def read(name: str) -> str:
    return (PID / name).read_text()


def test_parse_pid_stat_captured_fields():
    """Captured bash stat: pid, comm, state, ppid, utime/stime, start ticks, rss pages."""
    st = parse_pid_stat(read("stat"))
    assert st == PidStat(pid=22204, comm="bash", state="S", ppid=22203, flags=4194560,
                         utime_ticks=0, stime_ticks=3, start_ticks=115205, rss_pages=974)
    assert st.cpu_ticks == 3 and not st.kernel_thread


def test_parse_pid_stat_comm_with_spaces_and_parentheses():
    """comm runs to the LAST ')': '(my (odd) proc)' does not shift the numeric fields."""
    st = parse_pid_stat(read("stat_odd_comm"))
    assert st.comm == "my (odd) proc"
    assert (st.utime_ticks, st.stime_ticks, st.start_ticks, st.rss_pages) == (1500, 250, 987654, 2560)


def test_parse_pid_stat_kernel_thread_flag():
    """kthreadd carries PF_KTHREAD; pid 1 does not."""
    assert parse_pid_stat(read("stat_kthread")).kernel_thread
    assert not parse_pid_stat(read("stat_init")).kernel_thread


def test_parse_pid_stat_empty_text_is_a_vanished_process():
    """An empty read (process exited between open and read) gives None, not an error."""
    assert parse_pid_stat("") is None


@pytest.mark.parametrize("text, fragment", [
    ("1 bash S 0", r"no '\(comm\)' field"),
    ("1 (bash) S 0 1 1", "expected at least 24"),
    ("1 (bash) S x " + " ".join(["0"] * 30), "non-numeric"),
])
def test_parse_pid_stat_rejects_malformed_text(text, fragment):
    """Malformed stat raises a PerfmeshError naming what was expected."""
    with pytest.raises(ProcfsError, match=fragment) as info:
        parse_pid_stat(text)
    assert isinstance(info.value, PerfmeshError)


def test_parse_pid_io_captured():
    """Captured /proc/PID/io: storage bytes and all-call bytes."""
    assert parse_pid_io(read("io")) == PidIo(229376, 1142784, 14227709, 388454)
    assert parse_pid_io("") is None


def test_parse_pid_io_without_storage_fields_is_an_error():
    """An io text lacking read_bytes/write_bytes names the fields it had."""
    with pytest.raises(ProcfsError, match="rchar"):
        parse_pid_io("rchar: 1\nwchar: 2\n")


def test_parse_status_uid_is_the_effective_uid():
    """Uid line 'real effective saved fs': the effective uid (as ps's USER) is taken."""
    assert parse_status_uid(read("status")) == 0
    assert parse_status_uid(read("status_setuid")) == 999
    with pytest.raises(ProcfsError, match="no 'Uid:' line"):
        parse_status_uid("Name:\tx\nState:\tR\n")


def test_parse_btime_of_captured_stat():
    """btime of the captured /proc/stat, in seconds since the epoch."""
    assert parse_btime((HOST / "stat").read_text()) == 1795722836
    with pytest.raises(ProcfsError, match="no 'btime' line"):
        parse_btime("cpu 1 2 3\n")


def test_parse_pid_cgroup_hybrid_captured():
    """Captured hybrid host: v1 controllers by name, the v2 line under ''."""
    groups = parse_pid_cgroup(read("cgroup_hybrid"))
    assert groups[""] == "/"
    assert groups["memory"] == "/process_api/aabfab317c9fd184f7200bf81ca29f10"
    assert groups["name=systemd"] == "/"
    assert cgroup_of(groups) == "/process_api/aabfab317c9fd184f7200bf81ca29f10"


def test_parse_pid_cgroup_v1_comounted_controllers_and_v2():
    """'cpu,cpuacct' gives both keys; the v2 path wins when it is more than '/'."""
    groups = parse_pid_cgroup(read("cgroup_v1_systemd"))
    assert groups["cpu"] == groups["cpuacct"] == "/system.slice/nginx.service"
    assert cgroup_of(groups) == "/system.slice/nginx.service"
    assert cgroup_of(parse_pid_cgroup(read("cgroup_v2"))) == "/system.slice/ssh.service"
    assert cgroup_of({"": "/"}) == "/"


@pytest.mark.parametrize("path, unit", [
    ("/system.slice/ssh.service", "ssh.service"),
    ("/user.slice/user-1000.slice/session-2.scope", "session-2.scope"),
    ("/system.slice/foo.service/payload", "foo.service"),
    ("/system.slice/docker-0123abcd.scope", "docker-0123abcd.scope"),
    ("/user.slice/user-1000.slice", "user-1000.slice"),
    ("/docker/0123abcd", "0123abcd"),
    ("/", ""),
])
def test_unit_of_cgroup_path(path, unit):
    """The deepest unit, else the deepest slice, else the last part; '' for the root."""
    assert unit_of(path) == unit


def test_pidstat_and_pidio_round_trip_through_dicts():
    """to_dict/from_dict give back equal values."""
    st = parse_pid_stat(read("stat"))
    assert PidStat.from_dict(st.to_dict()) == st
    io = parse_pid_io(read("io"))
    assert PidIo.from_dict(io.to_dict()) == io
