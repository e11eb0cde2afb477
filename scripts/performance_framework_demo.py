#!/usr/bin/env python3
"""A tour of the perfmesh library, in one process and with no sockets.

Shows, section by section: metric collection, budgets with alert handlers and a utilization
report, baselines, analysis, optimization with before/after validation and rollback, the
timing decorators, benchmarking, the performance context manager and continuous monitoring.
Runs in a few seconds.

Usage: python scripts/performance_framework_demo.py
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from perfmesh import (  # noqa: E402
    BaselineTracker,
    MetricsCollector,
    OptimizationEngine,
    PerformanceBudget,
    PerformanceManager,
    PerformanceUtils,
    UnknownStrategyError,
)
from perfmesh.rules.budget import AlertEvent  # noqa: E402


def section(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(0, 70 - len(title)))


def show_value(name: str, value: float | None, unit: str = "") -> None:
    text = "n/a" if value is None else f"{value:,.2f}"
    print(f"  {name:<28} {text:>18} {unit}")


def demo_collection() -> None:
    section("1. Metric collection")
    collector = MetricsCollector()
    print(f"  source: {collector.source.name}")
    first = collector.collect()
    time.sleep(0.2)  # CPU % and rates need two samples
    second = collector.collect()
    print(f"  first sample: {len(first)} metrics (no rates yet); second: {len(second)} metrics")
    latest = {m.name: m for m in second if not m.context}
    for name in ("cpu_percent", "cpu_user_percent", "load_1m", "memory_percent",
                 "swap_percent", "disk_read_bytes_per_s", "disk_write_bytes_per_s",
                 "net_recv_bytes_per_s", "net_sent_bytes_per_s"):
        metric = latest.get(name)
        show_value(name, None if metric is None else metric.value,
                   "" if metric is None else metric.unit)
    per_cpu = [m for m in second if m.name == "cpu_percent" and m.context]
    print("  per CPU: " + ", ".join(f"cpu{m.context['cpu']}={m.value:.1f}%" for m in per_cpu))


def demo_budgets() -> None:
    section("2. Budgets and alert handlers")
    budget = PerformanceBudget()
    print(f"  default limits: {budget.limits}")
    events: list[AlertEvent] = []
    budget.add_alert_handler(events.append, metric="response_time_ms", delay_samples=2,
                             clear_level=800.0)
    print("  alert on response_time_ms: fires after 2 violating samples, clears below 800 ms")
    for second, value in enumerate([200.0, 1200.0, 1300.0, 1500.0, 900.0, 700.0]):
        violation = budget.check_budget_violation("response_time_ms", value, now=float(second))
        verdict = "ok" if violation is None else (
            f"{violation.severity}, {violation.overage:+g} ms ({violation.overage_percent:.0f} %)")
        print(f"    t={second}s  {value:>6.0f} ms  -> {verdict}")
        for event in events:
            print(f"      ALERT {event.state.upper()}: {event.metric}={event.value:g} "
                  f"(limit {event.limit:g}, severity {event.severity})")
        events.clear()
    report = budget.utilization_report()["response_time_ms"]
    print(f"  utilization: last {report['utilization_percent']:.0f} %, peak "
          f"{report['peak_utilization_percent']:.0f} %, {report['violations']} violations "
          f"in {report['samples']} samples, status {report['status']}")
    config = budget.export_budget_config()
    copy = PerformanceBudget({})
    copy.import_budget_config(json.loads(json.dumps(config)))
    print(f"  exported config round-trips through JSON: {copy.limits == budget.limits}")
    try:
        copy.import_budget_config({"version": 1, "budgets": {"cpu_percent": -5}})
    except Exception as exc:
        print(f"  a bad config is refused: {type(exc).__name__}: {exc}")


def demo_manager_and_analysis() -> None:
    section("3. Profiles, baselines and analysis")
    manager = PerformanceManager(baselines=BaselineTracker(window=30, min_samples=3))
    for _ in range(5):
        profile = manager.collect_system_metrics()
    print(f"  {len(manager.get_performance_history())} profiles, the last with "
          f"{len(profile.metrics)} metrics over {profile.duration_s * 1000:.1f} ms")
    for name in ("cpu_percent", "memory_percent", "load_1m"):
        c = profile.baseline_comparison.get(name)
        if c and c["status"] != "unknown":
            z = "n/a (flat window)" if c["z_score"] is None else f"{c['z_score']:+.2f}"
            print(f"  baseline {name:<15} value {c['value']:9.4f}  mean {c['baseline_mean']:9.4f}"
                  f"  z-score {z}  -> {c['status']}")
    analysis = manager.analyze_performance()
    print(f"  health: {analysis['overall_health']}, optimization potential "
          f"{analysis['optimization_potential']:.0f} %")

    print("  with a deliberately tight memory budget (1 %):")
    strict = PerformanceManager(budget=PerformanceBudget({"memory_percent": 1.0}))
    analysis = strict.analyze_performance()
    print(f"    health: {analysis['overall_health']}, budget health: {analysis['budget_health']}")
    for v in analysis["budget_violations"]:
        print(f"    violation: {v['metric']} {v['value']:.1f} > {v['limit']:g} ({v['severity']})")
    for b in analysis["bottlenecks"]:
        print(f"    bottleneck: {b['description']}")
    for line in analysis["recommendations"]:
        print(f"    recommendation: {line}")
    for reason in analysis["optimization_reasons"]:
        print(f"    potential {reason}")


class Cache:
    """A stand-in application cache for the custom strategies."""

    def __init__(self) -> None:
        self.entries = {i: "x" * 100 for i in range(5000)}

    def measure(self) -> dict[str, float]:
        return {"cache_entries": float(len(self.entries))}


def demo_optimization() -> None:
    section("4. Optimization with validation")
    engine = OptimizationEngine()
    cache = Cache()
    engine.register_optimization_strategy(
        "clear_cache", lambda config: cache.entries.clear() or True, measure=cache.measure,
        description="Drop the application cache.")

    def grow_cache(config: dict) -> dict:
        previous = dict(cache.entries)
        cache.entries.update({i: "y" for i in range(config.get("entries", 100))})
        return {"state": previous}

    engine.register_optimization_strategy(
        "grow_cache", grow_cache, measure=cache.measure,
        rollback=lambda previous: (cache.entries.clear(), cache.entries.update(previous)),
        description="Pre-fill the cache (reversible).")
    print(f"  registered: {', '.join(engine.strategies())}")
    print(f"  gc_collect schema: {engine.describe('gc_collect')['params']}")

    manager = PerformanceManager(engine=engine)
    result = manager.optimize_system(strategies=["gc_collect", "memory_trim", "clear_cache",
                                                 "grow_cache"])
    for r in result["optimizations_applied"] + result["failures"]:
        outcome = "ok" if r["success"] else f"failed: {r['error']}"
        rolled = ", rolled back" if r["rolled_back"] else ""
        print(f"  {r['strategy']:<12} {outcome}; verdict {r['verdict']}{rolled}; "
              f"before {r['before']} after {r['after']} ({r['duration_ms']:.2f} ms)")
    v = result["validation"]
    print(f"  health {v['health_before']} -> {v['health_after']}; potential "
          f"{v['optimization_potential_before']:.0f} % -> {v['optimization_potential_after']:.0f} %")
    print(f"  cache after rollback of grow_cache: {len(cache.entries)} entries")
    try:
        engine.apply_optimization("rm -rf /")
    except UnknownStrategyError as exc:
        print(f"  unknown names are refused: {exc}")
    recommended = manager.optimize_system()
    print(f"  what the analysis recommends now (health {recommended['validation']['health_before']}"
          f"): applied {[r['strategy'] for r in recommended['optimizations_applied']]}, "
          f"skipped {[s['strategy'] for s in recommended['skipped']]}")


@PerformanceUtils.measure_execution_time
@PerformanceUtils.profile_memory_usage
def build_report(rows: int) -> int:
    """A small workload for the decorators."""
    return len([f"row {i}" for i in range(rows)])


def demo_timing() -> None:
    section("5. Decorators, benchmark and context manager")
    for _ in range(50):
        build_report(1000)
    stats = PerformanceUtils.get_function_performance_stats(build_report)
    t, m = stats["timing_stats"], stats["memory_stats"]
    print(f"  {stats['function']} ({build_report.__name__} keeps its name): {t['count']} calls, "
          f"avg {t['avg_ms']:.3f} ms, p50 {t['p50_ms']:.3f}, p95 {t['p95_ms']:.3f}, "
          f"max {t['max_ms']:.3f} ms; peak memory avg {m['avg_peak_kb']:.1f} KiB")

    data = list(range(5000, 0, -1))
    bench = PerformanceUtils.benchmark_function(sorted, data, iterations=300, warmup=10)
    b = bench["timing"]
    print(f"  benchmark sorted(5000 items) x{bench['iterations']}: avg {b['avg_ms']:.3f} ms, "
          f"min {b['min_ms']:.3f}, median {b['median_ms']:.3f}, p95 {b['p95_ms']:.3f}, "
          f"max {b['max_ms']:.3f}, stdev {b['stdev_ms']:.3f}; "
          f"{bench['outliers']['count']} outliers ({bench['outliers']['rule']})")

    context = PerformanceUtils.create_performance_context_manager("load_rows")
    with context:
        rows = [str(i) for i in range(20000)]
    print(f"  context '{context.name}': {context.elapsed_ms:.2f} ms, memory delta "
          f"{context.memory_delta_kb:.0f} KiB ({len(rows)} rows kept)")


def demo_monitoring() -> None:
    section("6. Continuous monitoring")
    with PerformanceManager(enable_continuous_monitoring=True, monitoring_interval=0.5) as manager:
        print(f"  monitoring every {manager.monitoring_interval} s: {manager.is_monitoring}")
        time.sleep(1.8)
        history = manager.get_performance_history()
        start = time.monotonic()
    print(f"  stopped by the with-block in {(time.monotonic() - start) * 1000:.1f} ms; "
          f"running: {manager.is_monitoring}")
    for profile in history:
        cpu = profile.metric("cpu_percent")
        print(f"    {time.strftime('%H:%M:%S', time.localtime(profile.end_time))}"
              f"  cpu {cpu.value if cpu else float('nan'):5.1f} %"
              f"  potential {profile.optimization_potential:3.0f} %")
    print(f"  a profile as JSON: {len(json.dumps(history[-1].to_dict()))} bytes")


def main() -> None:
    start = time.perf_counter()
    demo_collection()
    demo_budgets()
    demo_manager_and_analysis()
    demo_optimization()
    demo_timing()
    demo_monitoring()
    print(f"\nDemo finished in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
