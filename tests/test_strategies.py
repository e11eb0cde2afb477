"""Tests for perfmesh.optimize.strategies: the built-in strategies and the process-target policy."""

import ctypes
import ctypes.util
import gc
import os
import subprocess
import sys

import pytest

from perfmesh.optimize import strategies
from perfmesh.errors import ConfigError, InvalidParameterError
from perfmesh.optimize.engine import OptimizationEngine
from perfmesh.optimize.strategies import (
    ProcessPolicy,
    load_malloc_trim,
    measure_gc_objects,
    measure_rss,
    process_start_ticks,
    register_builtin_strategies,
)

STAT_LINE = "4242 (evil) 1 2 3) S 1 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 987654 1 2 3\n"


def worse_measure():
    """A measure that always reports things got worse (forces a rollback)."""
    values = iter([{"x": 1.0}, {"x": 2.0}])
    return lambda: next(values)


@pytest.fixture
def engine():
    return OptimizationEngine()


@pytest.fixture
def child():
    """A sleeping child process owned by this user, killed after the test."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def fake_proc(tmp_path, pid=4242, stat=STAT_LINE):
    (tmp_path / str(pid)).mkdir()
    (tmp_path / str(pid) / "stat").write_text(stat)
    return tmp_path


def test_process_start_ticks_parses_field_22_past_a_tricky_command_name(tmp_path):
    """A command name containing ') ' does not shift the starttime field."""
    root = fake_proc(tmp_path)
    assert process_start_ticks(4242, str(root)) == 987654


def test_process_start_ticks_none_when_missing_or_garbled(tmp_path):
    """A missing process or a truncated stat file gives None."""
    root = fake_proc(tmp_path, stat="4242 (x) S 1 2\n")
    assert process_start_ticks(4242, str(root)) is None
    assert process_start_ticks(99999999, str(root)) is None


def test_process_start_ticks_of_this_process_matches_proc():
    """The real /proc gives this process's start time."""
    with open("/proc/self/stat") as fh:
        expected = int(fh.read().rsplit(")", 1)[1].split()[19])
    assert process_start_ticks(os.getpid()) == expected


def test_measures_report_positive_numbers(tmp_path):
    """gc objects and RSS are measured; without /proc RSS falls back to peak RSS."""
    assert measure_gc_objects()["gc_tracked_objects"] > 0
    assert measure_rss()["rss_bytes"] > 0
    assert measure_rss(str(tmp_path))["max_rss_bytes"] > 0


def test_load_malloc_trim_on_glibc():
    """On this (glibc) machine malloc_trim is found and callable."""
    trim, reason = load_malloc_trim()
    assert reason == "" and trim(0) in (0, 1)


def test_load_malloc_trim_reasons(monkeypatch):
    """A missing C library or one without malloc_trim yields None and a reason."""
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: "/nonexistent/libc.so")
    trim, reason = load_malloc_trim()
    assert trim is None and "cannot be loaded" in reason
    monkeypatch.setattr(ctypes, "CDLL", lambda path: object())
    trim, reason = load_malloc_trim()
    assert trim is None and "has no malloc_trim" in reason


def test_gc_collect_runs_and_validates_generation(engine):
    """gc_collect reports objects collected and refuses generation 3."""
    result = engine.apply_optimization("gc_collect", {"generation": 0})
    assert result.success and result.details["generation"] == 0
    assert isinstance(result.details["collected"], int)
    assert set(result.before) == {"gc_tracked_objects"} and result.verdict is not None
    with pytest.raises(InvalidParameterError, match="between 0 and 2"):
        engine.validate("gc_collect", {"generation": 3})


def test_gc_tune_sets_thresholds_and_rolls_back_when_worse(engine):
    """gc_tune changes only the given thresholds; a 'worse' verdict restores them."""
    original = gc.get_threshold()
    try:
        result = engine.apply_optimization("gc_tune", {"threshold0": 5000})
        assert gc.get_threshold() == (5000,) + original[1:]
        assert result.details == {"previous": list(original), "thresholds": [5000, *original[1:]]}
        assert result.verdict is None
        result = engine.apply_optimization("gc_tune", {"threshold2": 20}, measure=worse_measure())
        assert result.rolled_back and gc.get_threshold() == (5000,) + original[1:]
    finally:
        gc.set_threshold(*original)
    with pytest.raises(InvalidParameterError, match="threshold0"):
        engine.validate("gc_tune", {"threshold0": 0})


def test_memory_trim_succeeds_and_measures_rss(engine):
    """memory_trim calls malloc_trim and measures RSS before and after."""
    result = engine.apply_optimization("memory_trim")
    assert result.success and "released" in result.details
    assert set(result.before) == set(result.after) == {"rss_bytes"}
    with pytest.raises(InvalidParameterError, match="not known"):
        engine.validate("memory_trim", {"pad": 1})


def test_memory_trim_unavailable_fails_with_reason(engine, monkeypatch):
    """Without malloc_trim the strategy fails with a clear reason."""
    monkeypatch.setattr(strategies, "load_malloc_trim", lambda: (None, "musl"))
    result = engine.apply_optimization("memory_trim")
    assert result.success is False
    assert result.error == "malloc_trim is not available: musl"


def test_cpu_affinity_pins_and_rolls_back(engine):
    """cpu_affinity pins this process; a 'worse' verdict restores the previous CPU set."""
    original = os.sched_getaffinity(0)
    first = min(original)
    try:
        result = engine.apply_optimization("cpu_affinity", {"cpus": [first, first]})
        assert result.success and os.sched_getaffinity(0) == {first}
        assert result.details == {"previous_cpus": sorted(original), "cpus": [first]}
        os.sched_setaffinity(0, original)
        result = engine.apply_optimization("cpu_affinity", {"cpus": [first]}, measure=worse_measure())
        assert result.rolled_back and os.sched_getaffinity(0) == original
    finally:
        os.sched_setaffinity(0, original)


@pytest.mark.parametrize("cpus", [[], [os.cpu_count()], [4096], [-1]])
def test_cpu_affinity_refuses_bad_cpu_sets(engine, cpus):
    """Empty sets and CPUs this machine does not have are refused."""
    with pytest.raises(InvalidParameterError, match="'cpus'"):
        engine.validate("cpu_affinity", {"cpus": cpus})


def test_process_targets_refuse_pid_1(engine):
    """pid 1 is always refused, even with a create_time."""
    for name, extra in (("cpu_affinity", {"cpus": [0]}), ("process_priority", {"nice": 5})):
        with pytest.raises(InvalidParameterError, match="other than 1"):
            engine.validate(name, {**extra, "pid": 1, "create_time": 0})


def test_other_pid_needs_matching_create_time(engine, child):
    """Another pid without create_time, or with a stale one (pid reuse), is refused."""
    with pytest.raises(InvalidParameterError, match="'create_time': got None"):
        engine.validate("process_priority", {"nice": 5, "pid": child.pid})
    real = process_start_ticks(child.pid)
    with pytest.raises(InvalidParameterError, match="pid was reused"):
        engine.validate("process_priority", {"nice": 5, "pid": child.pid, "create_time": real + 1})
    with pytest.raises(InvalidParameterError, match="expected a running process"):
        engine.validate("process_priority", {"nice": 5, "pid": 4_000_000, "create_time": 1})


def test_process_priority_on_a_verified_child_and_rollback(engine, child):
    """process_priority renices a child named with its create time; rollback restores it."""
    params = {"pid": child.pid, "create_time": process_start_ticks(child.pid)}
    result = engine.apply_optimization("process_priority", {"nice": 5, **params})
    assert result.success and os.getpriority(os.PRIO_PROCESS, child.pid) == 5
    assert result.details == {"previous_nice": 0, "nice": 5}
    result = engine.apply_optimization("process_priority", {"nice": 7, **params},
                                       measure=worse_measure())
    assert result.rolled_back and os.getpriority(os.PRIO_PROCESS, child.pid) == 5


def test_cpu_affinity_on_a_verified_child(engine, child):
    """cpu_affinity acts on the named child, not on this process."""
    mine = os.sched_getaffinity(0)
    params = {"pid": child.pid, "create_time": process_start_ticks(child.pid)}
    result = engine.apply_optimization("cpu_affinity", {"cpus": [min(mine)], **params})
    assert result.success and os.sched_getaffinity(child.pid) == {min(mine)}
    assert os.sched_getaffinity(0) == mine


def test_lowering_nice_needs_root(engine, child, monkeypatch):
    """A non-root caller asking for a lower nice value gets a clear failure."""
    params = {"pid": child.pid, "create_time": process_start_ticks(child.pid)}
    assert engine.apply_optimization("process_priority", {"nice": 6, **params}).success
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    result = engine.apply_optimization("process_priority", {"nice": 2, **params})
    assert result.success is False
    assert result.error == "lowering nice from 6 to 2 needs root"
    assert os.getpriority(os.PRIO_PROCESS, child.pid) == 6


def test_nice_range_is_configurable_and_checked():
    """register_builtin_strategies(nice_range=...) bounds nice; bad ranges are refused."""
    e = OptimizationEngine(register_builtins=False)
    policy = register_builtin_strategies(e, nice_range=(5, 10))
    assert policy == ProcessPolicy(5, 10)
    with pytest.raises(InvalidParameterError, match="between 5 and 10"):
        e.validate("process_priority", {"nice": 4})
    for bad in ((10, 5), (-21, 0), (0, 20)):
        with pytest.raises(ConfigError, match="nice range"):
            ProcessPolicy(*bad)


def test_other_users_processes_are_refused_unless_allowed(tmp_path):
    """A process owned by another uid is refused by default, allowed when configured."""
    root = fake_proc(tmp_path)
    os.chown(tmp_path / "4242", 12345, 12345)
    params = {"pid": 4242, "create_time": 987654}
    with pytest.raises(InvalidParameterError, match="owned by uid 12345"):
        ProcessPolicy(proc_root=str(root)).target(params)
    assert ProcessPolicy(proc_root=str(root), allow_other_users=True).target(params) == 4242


def test_process_vanishing_between_checks_is_refused(tmp_path, monkeypatch):
    """If the process disappears before its owner is read, it is refused."""
    root = fake_proc(tmp_path)
    monkeypatch.setattr(strategies, "process_start_ticks", lambda pid, proc_root: 987654)
    (tmp_path / "4242" / "stat").unlink()
    (tmp_path / "4242").rmdir()
    with pytest.raises(InvalidParameterError, match="expected a running process"):
        ProcessPolicy(proc_root=str(root)).target({"pid": 4242, "create_time": 987654})


def test_own_pid_is_treated_as_current_process():
    """Naming this process's own pid needs no create_time."""
    assert ProcessPolicy().target({"pid": os.getpid()}) == 0
    assert ProcessPolicy().target({}) == 0


def test_unsupported_platform_fails_cleanly(engine, monkeypatch):
    """Without sched_setaffinity / setpriority the strategies fail with a reason."""
    monkeypatch.delattr(os, "sched_setaffinity")
    monkeypatch.delattr(os, "setpriority")
    result = engine.apply_optimization("cpu_affinity", {"cpus": [0]})
    assert result.error == "cpu affinity is not supported on this platform"
    result = engine.apply_optimization("process_priority", {"nice": 0})
    assert result.error == "process priority is not supported on this platform"
