#!/usr/bin/env python3
"""Per-call cost of perfmesh's timing decorators beside a bare call and cProfile.

Prints, in one run, the median (over several repeats) cost per call of:
a bare call, a measure_execution_time-wrapped call, a profile_memory_usage-wrapped call,
and a bare call with cProfile enabled; then the ns each adds per call over the bare call.

Usage: python scripts/bench_overhead.py [--calls N] [--repeats R]
"""

from __future__ import annotations

import argparse
import cProfile
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from perfmesh.inproc.timing import PerformanceUtils  # noqa: E402


def target(x: int) -> int:
    return x + 1


def per_call_ns(fn: Callable[[int], int], calls: int, repeats: int,
                profiler: cProfile.Profile | None = None) -> float:
    """Median over ``repeats`` of the mean ns per call of ``calls`` calls in a plain loop."""
    results = []
    for _ in range(repeats):
        if profiler is not None:
            profiler.enable()
        start = time.perf_counter_ns()
        for i in range(calls):
            fn(i)
        elapsed = time.perf_counter_ns() - start
        if profiler is not None:
            profiler.disable()
        results.append(elapsed / calls)
    return statistics.median(results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)

    timed = PerformanceUtils.measure_execution_time(target)
    memory = PerformanceUtils.profile_memory_usage(target)
    memory_calls = max(1, args.calls // 20)  # tracemalloc is slow; fewer calls keep it short

    bare = per_call_ns(target, args.calls, args.repeats)
    rows = [
        ("bare call", bare),
        ("measure_execution_time", per_call_ns(timed, args.calls, args.repeats)),
        ("profile_memory_usage", per_call_ns(memory, memory_calls, args.repeats)),
        ("cProfile enabled", per_call_ns(target, args.calls, args.repeats, cProfile.Profile())),
    ]
    print(f"python {sys.version.split()[0]}, {args.calls} calls x {args.repeats} repeats, medians")
    print(f"{'variant':<24}{'ns/call':>10}{'added ns':>10}{'x bare':>8}")
    for name, ns in rows:
        print(f"{name:<24}{ns:>10.1f}{ns - bare:>10.1f}{ns / bare:>8.2f}")
    added = rows[1][1] - bare
    verdict = "meets" if added < 1000 else "MISSES"
    print(f"measure_execution_time adds {added:.0f} ns/call ({verdict} the < 1 us target)")
    stats = PerformanceUtils.get_function_performance_stats(timed)["timing_stats"]
    print(f"(calls counted by measure_execution_time: {stats['count']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
