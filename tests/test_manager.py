"""PerformanceManager: profiles from a scripted source and a fake clock, budgets and
baselines, analysis health, optimization through the engine, the monitoring thread and the
context manager."""

import json
import threading
import time

import pytest

from perfmesh.rules.baseline import BaselineTracker
from perfmesh.rules.budget import PerformanceBudget
from perfmesh.collect.collection import MetricsCollector
from perfmesh.errors import ConfigError, UnknownStrategyError
from perfmesh.inproc.manager import PerformanceManager
from perfmesh.optimize.engine import OptimizationEngine
from perfmesh.model.params import Param
from perfmesh.model.snapshots import CpuTimes, DiskCounters, LoadAvg, MemoryInfo, SwapInfo
from tests import waiting

GIB = 1024**3


class ScriptedSource:
    """A Source whose CPU spends ``busy_percent`` of each 1 s step busy, with settable
    memory, swap and load; the disk reads 1 MiB per reading. Counts its CPU readings."""

    name = "scripted"

    def __init__(self, busy_percent=50.0, memory_percent=50.0, swap_percent=0.0, load_1m=0.5):
        self.busy_percent = busy_percent
        self.memory_percent = memory_percent
        self.swap_percent = swap_percent
        self.load_1m = load_1m
        self.cpu_readings = 0
        self.fail_memory = False
        self._user = self._idle = 0.0
        self._disk_read = 0

    def cpu_times(self):
        self.cpu_readings += 1
        self._user += self.busy_percent / 100.0
        self._idle += 1.0 - self.busy_percent / 100.0
        total = CpuTimes(user=self._user, idle=self._idle)
        return total, {"0": total}

    def load_avg(self):
        return LoadAvg(self.load_1m, 0.25, 0.125)

    def cpu_count(self):
        return 1

    def memory(self):
        if self.fail_memory:
            raise OSError("meminfo unreadable")
        available = int(GIB * (100.0 - self.memory_percent) / 100.0)
        free_swap = int(GIB * (100.0 - self.swap_percent) / 100.0)
        return MemoryInfo(GIB, available), SwapInfo(GIB, free_swap)

    def disk_counters(self):
        self._disk_read += 1024 * 1024
        return {"sda": DiskCounters(self._disk_read, 0, 1, 0, 0)}

    def net_counters(self):
        return {}


class FakeClock:
    """Starts at 1000.0 and advances ``step`` seconds on every reading."""

    def __init__(self, start=1000.0, step=1.0):
        self.now = start
        self.step = step

    def __call__(self):
        now = self.now
        self.now += self.step
        return now


def make_manager(source=None, clock=None, **kwargs):
    """A manager on a scripted source and fake clock that never waits between samples."""
    source = source or ScriptedSource()
    clock = clock or FakeClock()
    kwargs.setdefault("collector", MetricsCollector(source=source, clock=clock))
    kwargs.setdefault("min_sample_interval_s", 0.0)
    kwargs.setdefault("engine", OptimizationEngine(register_builtins=False))
    return PerformanceManager(clock=clock, **kwargs)


def wait_until(predicate, timeout_s=5.0):
    return waiting.wait_until(predicate, timeout_s, "the condition", poll_s=0.005)


# -- profiles -------------------------------------------------------------------------------


def test_first_profile_already_has_cpu_percent_and_disk_rates():
    """The collector is primed at construction, so the very first profile has CPU % and rates."""
    manager = make_manager(source=ScriptedSource(busy_percent=50.0))
    profile = manager.collect_system_metrics()
    assert profile.metric("cpu_percent").value == 50.0
    assert profile.metric("cpu_percent", cpu="0").value == 50.0
    assert profile.metric("disk_read_bytes_per_s", device="sda").value == 1024 * 1024 / 2.0


def test_profile_times_component_and_metrics_come_from_the_clock_and_source():
    """start/end time are clock readings around the sample; metrics are stamped with it."""
    clock = FakeClock(start=1000.0, step=1.0)
    manager = make_manager(clock=clock)  # priming reads 1000.0
    profile = manager.collect_system_metrics()
    assert profile.component == "system"
    assert (profile.start_time, profile.end_time) == (1001.0, 1003.0)
    assert profile.duration_s == 2.0
    assert {m.timestamp for m in profile.metrics} == {1002.0}
    assert profile.metric("memory_percent").value == pytest.approx(50.0, abs=1e-6)


def test_profile_scores_potential_and_recommends_for_memory_pressure():
    """memory 90 %: a memory_pressure bottleneck (20) and a memory budget violation (10)."""
    manager = make_manager(source=ScriptedSource(busy_percent=50.0, memory_percent=90.0))
    profile = manager.collect_system_metrics()
    assert profile.optimization_potential == 30.0
    assert len(profile.optimization_reasons) == 2
    assert profile.optimization_reasons[0].startswith("+20: Memory pressure (warning)")
    assert profile.optimization_reasons[1].startswith("+10: memory_percent")
    assert profile.recommendations[0].startswith("Memory pressure (warning)")
    assert "Bring memory_percent back under its budget 85" in profile.recommendations[1]


def test_over_budget_metric_carries_the_violation_severity_in_the_profile_only():
    """The profile's copy of an over-budget aggregate is marked; the collector's is not."""
    source = ScriptedSource(busy_percent=100.0)
    manager = make_manager(source=source)
    profile = manager.collect_system_metrics()
    assert profile.metric("cpu_percent").severity == "critical"  # 100 >= 80 * 1.25
    assert profile.metric("cpu_percent", cpu="0").severity == "info"
    assert profile.metric("memory_percent").severity == "info"
    assert manager.collector.latest()["cpu_percent"].severity == "info"


def test_baseline_comparison_is_against_earlier_samples_only():
    """Each aggregate is compared with its baseline before being added to it."""
    source = ScriptedSource(memory_percent=50.0)
    manager = make_manager(source=source, baselines=BaselineTracker(window=10, min_samples=2))
    first = manager.collect_system_metrics()
    assert first.baseline_comparison["memory_percent"]["status"] == "unknown"
    manager.collect_system_metrics()
    normal = manager.collect_system_metrics()
    assert normal.baseline_comparison["memory_percent"]["status"] == "normal"
    assert normal.baseline_comparison["memory_percent"]["samples"] == 2
    source.memory_percent = 90.0
    above = manager.collect_system_metrics()
    assert above.baseline_comparison["memory_percent"]["status"] == "above"
    assert manager.baselines.baseline("memory_percent").samples == 4


def test_history_is_bounded_and_keeps_the_newest_profiles():
    """history_size bounds the profiles kept; get_performance_history(limit) gives the last."""
    manager = make_manager(history_size=3)
    profiles = [manager.collect_system_metrics() for _ in range(5)]
    assert manager.get_performance_history() == profiles[2:]
    assert manager.get_performance_history(limit=2) == profiles[3:]
    assert manager.get_performance_history(limit=0) == []


def test_metric_history_comes_from_the_collector():
    """get_metric_history returns the collector's (timestamp, value) pairs of one series."""
    manager = make_manager(source=ScriptedSource(busy_percent=25.0))
    manager.collect_system_metrics()
    manager.collect_system_metrics()
    assert [v for _, v in manager.get_metric_history("cpu_percent", cpu="0")] == [25.0, 25.0]


def test_fresh_samples_are_spaced_by_min_sample_interval():
    """A sample right after the previous reading waits out min_sample_interval_s."""
    manager = make_manager(min_sample_interval_s=0.05)
    start = time.monotonic()
    manager.collect_system_metrics()  # primed at construction: waits the rest of 0.05 s
    manager.collect_system_metrics()
    assert time.monotonic() - start >= 0.1


class AlwaysRunningCollector(MetricsCollector):
    """A collector that claims its background thread runs (without starting one)."""

    is_running = True


def test_profiles_use_the_collectors_latest_sample_while_its_thread_runs():
    """With the collector sampling on its own, a profile reuses its newest sample instead of
    reading the counters microseconds later; with no sample yet it takes a fresh one."""
    source = ScriptedSource()
    clock = FakeClock()
    collector = AlwaysRunningCollector(source=source, clock=clock)
    manager = make_manager(source=source, clock=clock, collector=collector)
    first = manager.collect_system_metrics()  # nothing sampled yet: a fresh sample
    readings = source.cpu_readings
    second = manager.collect_system_metrics()
    assert source.cpu_readings == readings
    assert [m.to_dict() for m in second.metrics] == [m.to_dict() for m in first.metrics]


def test_thread_safe_profiles_from_many_threads():
    """Concurrent collect_system_metrics calls each record exactly one profile."""
    manager = make_manager(history_size=1000)
    threads = [threading.Thread(target=lambda: [manager.collect_system_metrics()
                                                for _ in range(20)]) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(manager.get_performance_history()) == 160
    assert manager.budget.utilization_report()["cpu_percent"]["samples"] == 160


# -- analysis -------------------------------------------------------------------------------


def test_analysis_is_good_within_budgets_and_json_able():
    """A quiet host is 'good' with no bottlenecks or violations; the report is plain data."""
    manager = make_manager(source=ScriptedSource(busy_percent=25.0, memory_percent=40.0))
    analysis = manager.analyze_performance()
    assert analysis["overall_health"] == "good"
    assert analysis["bottlenecks"] == [] and analysis["budget_violations"] == []
    assert analysis["recommendations"] == []
    assert analysis["optimization_potential"] == 0.0
    assert analysis["budget_health"] == "good"
    assert analysis["budget_utilization"]["cpu_percent"]["last"] == 25.0
    assert analysis["metrics"]["cpu_percent"] == 25.0
    assert "memory_percent" in analysis["baseline_comparison"]
    json.dumps(analysis)


def test_analysis_is_warning_for_a_violated_budget_without_bottleneck():
    """load_1m 2.25 over a budget of 2.0 is a warning violation (no bottleneck rule for load)."""
    budget = PerformanceBudget({"load_1m": 2.0})
    manager = make_manager(source=ScriptedSource(busy_percent=25.0, load_1m=2.25), budget=budget)
    analysis = manager.analyze_performance()
    assert analysis["overall_health"] == "warning"
    assert analysis["bottlenecks"] == []
    [violation] = analysis["budget_violations"]
    assert violation["metric"] == "load_1m" and violation["severity"] == "warning"
    assert violation["limit"] == 2.0 and violation["overage"] == 0.25
    assert analysis["budget_utilization"]["load_1m"]["utilization_percent"] == 112.5


def test_analysis_is_critical_for_a_critical_budget_violation():
    """cpu 100 % against the default 80 % budget is critical (>= 1.25 x), and CPU bound."""
    manager = make_manager(source=ScriptedSource(busy_percent=100.0))
    analysis = manager.analyze_performance()
    assert analysis["overall_health"] == "critical"
    assert analysis["budget_violations"][0]["severity"] == "critical"
    assert analysis["bottlenecks"][0]["kind"] == "cpu_bound"
    assert analysis["bottlenecks"][0]["recommended_strategy"] == "process_priority"
    assert analysis["budget_health"] == "critical"


# -- optimization ---------------------------------------------------------------------------


class Recorder:
    """A strategy that records its configs and lowers a measured value by 10 per run."""

    def __init__(self, succeed=True):
        self.configs = []
        self.value = 100.0
        self.succeed = succeed

    def __call__(self, config):
        self.configs.append(config)
        self.value -= 10.0
        return self.succeed

    def measure(self):
        return {"value": self.value}


def test_optimize_runs_only_registered_recommended_strategies():
    """CPU bound and memory pressure recommend process_priority and memory_trim; only the
    registered memory_trim runs, process_priority is skipped as not registered."""
    engine = OptimizationEngine(register_builtins=False)
    trim = Recorder()
    engine.register_optimization_strategy("memory_trim", trim, measure=trim.measure)
    manager = make_manager(source=ScriptedSource(busy_percent=100.0, memory_percent=96.0),
                           engine=engine)
    result = manager.optimize_system()
    assert [r["strategy"] for r in result["optimizations_applied"]] == ["memory_trim"]
    assert trim.configs == [{}]
    assert result["failures"] == []
    assert result["skipped"] == [{"strategy": "process_priority",
                                  "reason": "not registered in the engine"}]
    validation = result["validation"]
    assert validation["results"]["memory_trim"] == {
        "verdict": "improved", "improvement": {"value": 10.0}, "rolled_back": False}
    assert validation["health_before"] == validation["health_after"] == "critical"
    assert validation["optimization_potential_before"] == 85.0  # 30 + 30 + 15 + 10
    json.dumps(result)


def test_optimize_skips_a_strategy_missing_required_params_unless_configured():
    """A recommended strategy whose schema needs a parameter runs only with a config."""
    engine = OptimizationEngine(register_builtins=False)
    priority = Recorder()
    engine.register_optimization_strategy(
        "process_priority", priority, schema={"nice": Param(int, required=True, min=0, max=19)})
    manager = make_manager(source=ScriptedSource(busy_percent=100.0), engine=engine)
    skipped = manager.optimize_system()
    assert skipped["optimizations_applied"] == [] and priority.configs == []
    assert skipped["skipped"][0]["strategy"] == "process_priority"
    assert "nice" in skipped["skipped"][0]["reason"]
    assert skipped["validation"]["health_after"] == skipped["validation"]["health_before"]

    ran = manager.optimize_system(configs={"process_priority": {"nice": 5}})
    assert priority.configs == [{"nice": 5}]
    assert ran["optimizations_applied"][0]["config"] == {"nice": 5}


def test_optimize_with_named_strategies_reports_failures():
    """Named strategies run even when the host is healthy; a false result is a failure."""
    engine = OptimizationEngine(register_builtins=False)
    good, bad = Recorder(), Recorder(succeed=False)
    engine.register_optimization_strategy("good", good)
    engine.register_optimization_strategy("bad", bad)
    manager = make_manager(source=ScriptedSource(busy_percent=10.0), engine=engine)
    result = manager.optimize_system(strategies=["good", "bad", "good"])
    assert [r["strategy"] for r in result["optimizations_applied"]] == ["good"]
    assert [r["strategy"] for r in result["failures"]] == ["bad"]
    assert result["failures"][0]["error"] == "strategy returned a false value"
    assert len(good.configs) == 1


def test_optimize_with_an_unknown_named_strategy_runs_nothing():
    """An unregistered name in strategies raises UnknownStrategyError before any run."""
    engine = OptimizationEngine(register_builtins=False)
    good = Recorder()
    engine.register_optimization_strategy("good", good)
    manager = make_manager(engine=engine)
    with pytest.raises(UnknownStrategyError, match="'nope'"):
        manager.optimize_system(strategies=["good", "nope"])
    assert good.configs == []


def test_default_engine_has_the_builtin_strategies():
    """Without an engine the manager uses OptimizationEngine() with the five built-ins."""
    source = ScriptedSource()
    manager = PerformanceManager(collector=MetricsCollector(source=source),
                                 min_sample_interval_s=0.0)
    assert manager.engine.strategies() == [
        "cpu_affinity", "gc_collect", "gc_tune", "memory_trim", "process_priority"]
    result = manager.optimize_system(strategies=["gc_collect"])
    assert result["optimizations_applied"][0]["strategy"] == "gc_collect"


# -- monitoring -----------------------------------------------------------------------------


def test_monitoring_builds_profiles_every_interval_and_stops_promptly():
    """The thread profiles at once and every monitoring_interval; stop joins in < 1 s."""
    manager = make_manager(enable_continuous_monitoring=True, monitoring_interval=0.02)
    assert manager.is_monitoring
    wait_until(lambda: len(manager.get_performance_history()) >= 3)
    start = time.monotonic()
    manager.stop_monitoring()
    assert time.monotonic() - start < 1.0
    assert not manager.is_monitoring
    count = len(manager.get_performance_history())
    time.sleep(0.06)     # the behaviour: no sample is added after stop
    assert len(manager.get_performance_history()) == count


def test_stop_monitoring_wakes_a_long_interval_at_once():
    """With a 30 s interval, stop_monitoring returns well under a second."""
    manager = make_manager(monitoring_interval=30.0)
    manager.start_monitoring()
    manager.start_monitoring()  # already running: no second thread
    wait_until(lambda: len(manager.get_performance_history()) == 1)
    start = time.monotonic()
    manager.stop_monitoring()
    assert time.monotonic() - start < 1.0
    assert len(manager.get_performance_history()) == 1
    manager.stop_monitoring()  # stopping again is harmless


def test_monitoring_counts_errors_and_keeps_going():
    """A failing profile is counted with its error text; the loop carries on."""
    source = ScriptedSource()
    manager = make_manager(source=source, monitoring_interval=0.01)
    source.fail_memory = True
    manager.start_monitoring()
    wait_until(lambda: manager.monitoring_errors >= 2)
    assert manager.last_monitoring_error == "OSError: meminfo unreadable"
    source.fail_memory = False
    wait_until(lambda: len(manager.get_performance_history()) >= 1)
    manager.stop_monitoring()


def test_monitoring_can_restart_after_stop():
    """start_monitoring after stop_monitoring starts a new thread."""
    manager = make_manager(monitoring_interval=30.0)
    manager.start_monitoring()
    manager.stop_monitoring()
    manager.start_monitoring()
    assert manager.is_monitoring
    manager.stop_monitoring()


def test_context_manager_stops_monitoring_on_exit():
    """`with PerformanceManager(...) as m:` stops the monitoring thread on exit."""
    with make_manager(enable_continuous_monitoring=True, monitoring_interval=30.0) as manager:
        assert manager.is_monitoring
        threads = [t for t in threading.enumerate() if t.name == "perfmesh-monitor"]
        assert len(threads) == 1
    assert not manager.is_monitoring
    assert not threads[0].is_alive()


# -- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, text", [
    ({"monitoring_interval": 0}, "monitoring_interval 0"),
    ({"monitoring_interval": float("nan")}, "monitoring_interval nan"),
    ({"collection_interval": -1.0}, "collection_interval -1.0"),
    ({"history_size": 0}, "history_size 0"),
    ({"history_size": True}, "history_size True"),
    ({"min_sample_interval_s": -0.1}, "min_sample_interval_s -0.1"),
])
def test_invalid_settings_raise_config_error_naming_the_value(kwargs, text):
    """Bad intervals and history sizes are refused with a ConfigError naming them."""
    with pytest.raises(ConfigError, match=text):
        make_manager(**kwargs)


def test_default_collector_uses_collection_interval_and_history_size():
    """The default collector gets collection_interval and history_size."""
    manager = PerformanceManager(collection_interval=0.5, history_size=7)
    assert manager.collector.interval == 0.5
    assert manager.collector.history_size == 7
    assert manager.budget.limits["cpu_percent"] == 80.0
    assert manager.baselines.window == 300
