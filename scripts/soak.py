"""Soak test: the mesh under steady load, then what was lost, gapped, duplicated, backfilled.

    python scripts/soak.py [--duration 600] [--agents 3] [--interval 0.2] [--samples 10]
                           [--spool-seconds 120]

Starts an aggregator (with a fresh --data folder), N agents sampling every --interval and a
``perfmesh subscribe --json`` reading the whole stream, all as real processes on random
loopback ports. While it runs it shows a progress bar and takes --samples memory readings
(RSS and PSS from /proc/PID/smaps_rollup) of every process: aggregator, agents, their
collectors and the subscriber. At the end it prints

- per host, the aggregator's counters (batches, gaps, backfilled, lost_batches, duplicates,
  missing_batches) and a continuity check of the stored history of ``memory_percent``
  (holes: consecutive samples more than 2.5 intervals apart; duplicate timestamps;
  samples stored against the agent's own count of memory batches);
- the memory table (a column per reading) and each process's growth over the second half;
- one verdict line: PASS when nothing was lost or duplicated, the history has no hole, and
  memory plateaued (second-half growth at most --max-growth-mb per process); else FAIL.

An agent's memory grows until its spool is full (--spool-seconds of batches, about 1 KiB
each), then stays flat; keep --spool-seconds under half of --duration to see the plateau.

Exit status 0 on PASS, 1 on FAIL.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn  # noqa: E402
from rich.table import Table  # noqa: E402

from tests.conftest import free_base_port  # noqa: E402
from workers.client import ApiClient  # noqa: E402
from workers.transport import Endpoint  # noqa: E402

# the soak's processes keep their state in a scratch folder, never the user's real one
SCRATCH = Path(tempfile.mkdtemp(prefix="perfmesh-soak-"))
atexit.register(shutil.rmtree, SCRATCH, ignore_errors=True)
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_STATE_HOME": str(SCRATCH / "state")}
HOST_COUNTERS = ("batches", "gaps", "backfilled", "lost_batches", "duplicates", "missing_batches")


def memory_kb(pid: int) -> tuple[int, int] | None:
    """(RSS, PSS) in kB from /proc/PID/smaps_rollup, or None when the process is gone."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    fields = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in ("Rss:", "Pss:"):
            fields[parts[0]] = int(parts[1])
    return fields.get("Rss:", 0), fields.get("Pss:", 0)


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(entry.name))
    return out


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="perfmesh-soak-"))
        self.base = free_base_port()
        self.connect = f"127.0.0.1:{self.base}"
        self.procs: dict[str, subprocess.Popen] = {}
        self.readings: list[tuple[float, dict[str, tuple[int, int]]]] = []

    def spawn(self, label: str, *args: str, stdout=None) -> None:
        log = open(self.tmp / f"{label}.log", "wb")
        self.procs[label] = subprocess.Popen(
            [sys.executable, "-m", "workers", *args], cwd=ROOT, env=ENV, start_new_session=True,
            stdout=stdout if stdout is not None else log, stderr=log)

    def start(self) -> None:
        a = self.args
        self.spawn("aggregator", "aggregator", "--port", str(self.base), "--data", str(self.tmp / "data"))
        time.sleep(1.0)
        for i in range(a.agents):
            self.spawn(f"agent{i}", "agent", "--connect", self.connect, "--name", f"soak{i}",
                       "--interval", str(a.interval), "--state-dir", str(self.tmp / f"state{i}"),
                       "--spool-dir", str(self.tmp / f"spool{i}"), "--spool-seconds", str(a.spool_seconds))
        self.spawn("subscriber", "subscribe", "--connect", self.connect, "--json",
                   stdout=subprocess.DEVNULL)
        self.api = ApiClient(Endpoint("127.0.0.1", self.base))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            hosts = {h["name"]: h for h in self.status()["hosts"]}
            if len(hosts) == a.agents and all(h["counters"]["batches"] > 5 for h in hosts.values()):
                return
            time.sleep(0.5)
        raise SystemExit(f"soak: the hosts did not all come up within 30 s; logs in {self.tmp}")

    def status(self) -> dict:
        try:
            return self.api.status(timeout_s=5.0)
        except Exception as exc:  # noqa: BLE001 - report, keep the soak going
            print(f"soak: status failed: {exc}", file=sys.stderr)
            return {"hosts": []}

    def pids(self) -> dict[str, int]:
        out = {}
        for label, p in self.procs.items():
            out[label] = p.pid
            if label.startswith("agent"):
                for n, child in enumerate(sorted(children(p.pid))):
                    out[f"{label}.collector{n}"] = child
        return out

    def read_memory(self, elapsed: float) -> None:
        self.readings.append((elapsed, {label: m for label, pid in self.pids().items()
                                        if (m := memory_kb(pid)) is not None}))

    def run(self) -> int:
        a = self.args
        self.start()
        t0 = time.monotonic()
        marks = [a.duration * i / max(1, a.samples - 1) for i in range(a.samples)]
        start_status = self.status()
        with Progress(TextColumn("[bold]soak"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                      TextColumn("{task.fields[info]}"), TimeRemainingColumn(),
                      console=Console(stderr=True)) as bar:
            task = bar.add_task("soak", total=a.duration, info="")
            while True:
                elapsed = time.monotonic() - t0
                while marks and elapsed >= marks[0]:
                    marks.pop(0)
                    self.read_memory(elapsed)
                dead = [k for k, p in self.procs.items() if p.poll() is not None]
                if dead:
                    bar.stop()
                    print(f"soak: processes died: {dead}; logs in {self.tmp}")
                    return 1
                batches = sum(h["counters"]["batches"] for h in self.status()["hosts"])
                bar.update(task, completed=min(elapsed, a.duration), info=f"{batches} batches")
                if elapsed >= a.duration and not marks:
                    break
                time.sleep(min(1.0, max(0.05, (marks[0] - elapsed) if marks else 1.0)))
        time.sleep(3 * a.interval + 1.0)   # let the last batches land
        return self.report(start_status, time.monotonic() - t0)

    def continuity(self, host: str, since: float) -> dict[str, int]:
        rows = self.api.history(host, "memory_percent", since, timeout_s=30.0)
        ts = [r[0] for r in rows]
        holes = sum(1 for x, y in zip(ts, ts[1:]) if y - x > 2.5 * self.args.interval)
        return {"stored": len(ts), "holes": holes, "dup_ts": len(ts) - len(set(ts)),
                "backfilled_rows": sum(1 for r in rows if r[2])}

    def report(self, start_status: dict, elapsed: float) -> int:
        a = self.args
        console = Console(width=max(160, Console().width))
        end_status = self.status()
        failures: list[str] = []
        hosts = Table(title=f"hosts after {elapsed:.0f} s")
        for col in ("host", *HOST_COUNTERS, "stored", "holes", "dup_ts", "backfilled_rows", "agent seq"):
            hosts.add_column(col, justify="right")
        since = time.time() - elapsed - 120
        totals = dict.fromkeys(("lost", "gaps", "duplicates", "backfilled", "holes"), 0)
        for h in end_status["hosts"]:
            c = h["counters"]
            cont = self.continuity(h["name"], since)
            hosts.add_row(h["name"], *(str(c.get(k, 0)) for k in HOST_COUNTERS),
                          *(str(cont[k]) for k in ("stored", "holes", "dup_ts", "backfilled_rows")),
                          str(h.get("last_seq")))
            totals["lost"] += c["lost_batches"] + c["missing_batches"]
            totals["gaps"] += c["gaps"]
            totals["duplicates"] += c["duplicates"] + cont["dup_ts"]
            totals["backfilled"] += c["backfilled"]
            totals["holes"] += cont["holes"]
            expected = elapsed / a.interval
            if cont["stored"] < 0.9 * expected:
                failures.append(f"{h['name']}: {cont['stored']} memory samples stored, expected about {expected:.0f}")
        console.print(hosts)
        mem = Table(title="memory (PSS MiB; RSS MiB in brackets) at elapsed seconds")
        mem.add_column("process")
        for t, _ in self.readings:
            mem.add_column(f"{t:.0f}s", justify="right")
        mem.add_column("2nd-half growth", justify="right")
        labels = sorted({k for _, r in self.readings for k in r})
        half = next(i for i, (t, _) in enumerate(self.readings) if t >= a.duration / 2)
        for label in labels:
            cells = []
            for _, r in self.readings:
                m = r.get(label)
                cells.append(f"{m[1] / 1024:.1f} ({m[0] / 1024:.1f})" if m else "-")
            mid, end = self.readings[half][1].get(label), self.readings[-1][1].get(label)
            growth = (end[1] - mid[1]) / 1024 if mid and end else 0.0
            if growth > a.max_growth_mb:
                failures.append(f"{label}: PSS grew {growth:.1f} MiB over the second half")
            mem.add_row(label, *cells, f"{growth:+.1f}")
        console.print(mem)
        if totals["lost"]:
            failures.append(f"{totals['lost']} batches lost")
        if totals["duplicates"]:
            failures.append(f"{totals['duplicates']} duplicates stored")
        if totals["holes"]:
            failures.append(f"{totals['holes']} holes in the stored history")
        console.print(f"totals: lost {totals['lost']}, gaps {totals['gaps']}, duplicates {totals['duplicates']}, "
                      f"backfilled {totals['backfilled']}, history holes {totals['holes']}")
        verdict = "PASS" if not failures else "FAIL: " + "; ".join(failures)
        console.print(f"verdict: {verdict} ({a.agents} agents at {a.interval:g} s for {elapsed:.0f} s)")
        return 0 if not failures else 1

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)
        if hasattr(self, "api"):
            self.api.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=600.0, help="seconds of steady load (default 600)")
    p.add_argument("--agents", type=int, default=3)
    p.add_argument("--interval", type=float, default=0.2, help="agents' sampling interval (default 0.2)")
    p.add_argument("--samples", type=int, default=10, help="memory readings, evenly spread (default 10)")
    p.add_argument("--spool-seconds", type=float, default=120.0,
                   help="agents' spool capacity in seconds of sampling (default 120; the agent's own default is 600)")
    p.add_argument("--max-growth-mb", type=float, default=8.0,
                   help="largest PSS growth per process over the second half that counts as a plateau")
    args = p.parse_args(argv)
    if args.samples < 2:
        p.error("--samples must be at least 2")
    soak = Soak(args)
    try:
        return soak.run()
    finally:
        soak.stop()
        print(f"logs and data in {soak.tmp}")


if __name__ == "__main__":
    sys.exit(main())
