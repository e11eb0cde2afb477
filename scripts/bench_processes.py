#!/usr/bin/env python3
"""Cost per sample of the "who is using the machine" collectors beside the existing sources.

In one run, on this machine, prints the median wall time and the mean CPU time (this
process's user + system) per sample of:

- the existing collectors as the agent's collector processes run them (MetricsCollector over
  ProcSource and, when psutil imports, PsutilSource): cpu, memory, io (disk + network);
- each part of UsageCollector: processes (scan of every /proc/PID), cgroups, pressure,
  filesystems, and the whole UsageCollector;

then the ratio of the whole UsageCollector to the sum cpu + memory + io of each source.

Usage: python scripts/bench_processes.py [--samples N] [--top N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from perfmesh.collect.cgroups import CgroupCollector  # noqa: E402
from perfmesh.collect.collection import MetricsCollector  # noqa: E402
from perfmesh.collect.filesystems import FilesystemCollector  # noqa: E402
from perfmesh.collect.pressure import PressureCollector  # noqa: E402
from perfmesh.collect.processes import ProcessCollector  # noqa: E402
from perfmesh.collect.sources import ProcSource, Source  # noqa: E402
from perfmesh.collect.usage import UsageCollector  # noqa: E402


def cost(fn: Callable[[float], object], samples: int) -> tuple[float, float]:
    """(median wall ms, mean CPU ms) per call of ``fn(now)`` over ``samples`` calls (after
    one warm-up call, which also gives the rate state its first reading)."""
    fn(time.time())
    walls = []
    cpu_start = time.process_time()
    for _ in range(samples):
        start = time.perf_counter()
        fn(time.time())
        walls.append(time.perf_counter() - start)
    cpu_s = time.process_time() - cpu_start
    return statistics.median(walls) * 1e3, cpu_s / samples * 1e3


def existing(source: Source, samples: int) -> list[tuple[str, float, float]]:
    rows = []
    for kind, kinds in (("cpu", ("cpu",)), ("memory", ("memory",)), ("io", ("disk", "network"))):
        c = MetricsCollector(history_size=1, source=source)
        rows.append((f"{source.name} {kind}", *cost(lambda now, c=c, k=kinds: c.collect(k, now=now), samples)))
    total = ("%s cpu+memory+io" % source.name, sum(r[1] for r in rows), sum(r[2] for r in rows))
    return rows + [total]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--top", type=int, default=10)
    args = parser.parse_args(argv)
    n = args.samples

    sources: list[Source] = [ProcSource()]
    try:
        from perfmesh.collect.psutil_source import PsutilSource
    except ImportError:
        pass
    else:
        sources.append(PsutilSource())
    baseline = [row for s in sources for row in existing(s, n)]

    procs = ProcessCollector(top_n=args.top)
    usage = UsageCollector(top_n=args.top)
    parts = [
        ("usage processes", *cost(procs.sample, n)),
        ("usage cgroups", *cost(CgroupCollector(top_n=args.top).sample, n)),
        ("usage pressure", *cost(PressureCollector().sample, n)),
        ("usage filesystems", *cost(lambda now, f=FilesystemCollector(): f.sample(), n)),
        ("usage total", *cost(usage.sample, n)),
    ]
    last = usage.sample(time.time())
    processes = usage.last_processes.process_count if usage.last_processes else 0

    print(f"{n} samples per row; {processes} processes; top {args.top}; "
          f"{len(last.metrics)} metrics per usage sample; {os.cpu_count()} CPUs; load {os.getloadavg()[0]:.2f}")
    print(f"{'collector':28} {'wall ms/sample':>15} {'cpu ms/sample':>14}")
    for name, wall_ms, cpu_ms in baseline + parts:
        print(f"{name:28} {wall_ms:15.3f} {cpu_ms:14.3f}")
    usage_wall, usage_cpu = parts[-1][1], parts[-1][2]
    for name, wall_ms, cpu_ms in baseline:
        if name.endswith("cpu+memory+io"):
            print(f"ratio usage total / {name}: wall {usage_wall / wall_ms:.1f}x, cpu {usage_cpu / cpu_ms:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
