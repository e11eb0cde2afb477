"""The issue's library example, run exactly as written in a fresh interpreter, and the
demo script."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Verbatim from issue 2 ("Public API, importable from perfmesh"); do not edit.
EXAMPLE = '''\
from perfmesh import PerformanceManager, PerformanceBudget, PerformanceUtils, OptimizationEngine
manager = PerformanceManager()
profile = manager.collect_system_metrics()
print(f"Collected {len(profile.metrics)} metrics")
print(f"Optimization potential: {profile.optimization_potential}%")
analysis = manager.analyze_performance()
print(f"System health: {analysis['overall_health']}")          # good | warning | critical
if analysis['overall_health'] != 'good':
    result = manager.optimize_system()
    print(f"Applied {len(result['optimizations_applied'])} optimizations")

budget = PerformanceBudget()
budget.set_budget_limit('cpu_percent', 80.0)
budget.set_budget_limit('memory_percent', 85.0)
if budget.check_budget_violation('cpu_percent', 90.0):
    print("CPU budget exceeded!")
config = budget.export_budget_config()          # plain JSON-able data
new_budget = PerformanceBudget(); new_budget.import_budget_config(config)

@PerformanceUtils.measure_execution_time
@PerformanceUtils.profile_memory_usage
def expensive_function():
    return sum(range(100000))
expensive_function()
stats = PerformanceUtils.get_function_performance_stats(expensive_function)
print(f"Average execution time: {stats['timing_stats']['avg_ms']:.2f}ms")

manager = PerformanceManager(enable_continuous_monitoring=True)   # every 10 s by default
history = manager.get_performance_history()
manager.stop_monitoring()

def my_function(n):
    return sum(range(n))
results = PerformanceUtils.benchmark_function(my_function, iterations=1000, n=10000)
print(results['timing']['avg_ms'], results['timing']['min_ms'], results['timing']['max_ms'])

engine = OptimizationEngine()
engine.register_optimization_strategy('my_optimization', lambda optimization_config: True)
engine.apply_optimization('my_optimization', {'level': 2})

context = PerformanceUtils.create_performance_context_manager("data_processing")
with context:
    sum(range(10**6))
print(context.elapsed_ms)
'''

NUMBER = r"[0-9]+(?:\.[0-9]+)?(?:e-?[0-9]+)?"


def run_example(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    script = tmp_path / "example.py"
    script.write_text(EXAMPLE)
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_issue_example_runs_as_written_and_prints_what_it_promises(tmp_path):
    """Every print of the example appears, in order, with plausible values."""
    lines = run_example(tmp_path)
    expected = [
        r"Collected ([0-9]+) metrics",
        rf"Optimization potential: ({NUMBER})%",
        r"System health: (good|warning|critical)",
    ]
    for pattern, line in zip(expected, lines):
        assert re.fullmatch(pattern, line), (pattern, line)
    assert int(re.fullmatch(expected[0], lines[0]).group(1)) >= 5
    assert 0.0 <= float(re.fullmatch(expected[1], lines[1]).group(1)) <= 100.0
    rest = lines[3:]
    if lines[2] != "System health: good":
        assert re.fullmatch(r"Applied [0-9]+ optimizations", rest[0]), rest[0]
        rest = rest[1:]
    assert rest[0] == "CPU budget exceeded!"
    assert re.fullmatch(rf"Average execution time: {NUMBER}ms", rest[1]), rest[1]
    avg_ms, min_ms, max_ms = (float(v) for v in rest[2].split())
    assert 0.0 < min_ms <= avg_ms <= max_ms
    assert float(rest[3]) > 0.0
    assert len(rest) == 4


def test_demo_script_shows_every_section_within_30_s():
    """scripts/performance_framework_demo.py runs to the end, every section, in under 30 s."""
    start = time.monotonic()
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "performance_framework_demo.py")],
                          capture_output=True, text=True, timeout=60)
    elapsed_s = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    for title in ("Metric collection", "Budgets and alert handlers",
                  "Profiles, baselines and analysis", "Optimization with validation",
                  "Decorators, benchmark and context manager", "Continuous monitoring"):
        assert title in proc.stdout
    assert "ALERT FIRING" in proc.stdout and "ALERT RESOLVED" in proc.stdout
    assert "verdict worse, rolled back" in proc.stdout
    assert "Demo finished" in proc.stdout
    assert elapsed_s < 30.0
