#!/usr/bin/env python3
"""perfmesh benchmark suite: every figure of the performance issue, side by side, one run.

    python scripts/bench.py [--quick] [--json FILE] [--only ingest,latency,...]

Sections (each prints its figures and its target; a summary table ends the run):

1. ingest    real aggregator, simulated hosts flat out, plaintext and CURVE, beside the raw
             pyzmq + msgpack ceiling of the same batches (same run, same encryption)
2. latency   loopback p50/p99: sample taken -> subscriber; budget breach -> violation event;
             operator command -> result (aggregator with the command rate limits raised)
3. footprint agent + collectors at 1 s beside node_exporter (scraped every second) and
             collectd at 1 s when installed: CPU % of one core, RSS and PSS
4. scale     1,000 simulated hosts (one connection each, 100 metrics/s each), then steps up
5. history   bytes of RAM per stored sample in a Fleet's history (tracemalloc)
6. overhead  per-call cost each timing decorator adds

``--quick`` shortens every window (under 3 minutes in all) and says where it used fewer
samples than the full run. The script installs nothing; peers not found are skipped.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Callable

sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent)]

import benchlib as bl  # noqa: E402
import zmq  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: E402
from rich.table import Table  # noqa: E402

console = Console()
SECTIONS = ("ingest", "latency", "footprint", "scale", "history", "overhead")
MP = mp.get_context("fork")


class Run:
    """Figures, summary rows and a scratch folder shared by the sections."""

    def __init__(self, args: argparse.Namespace, tmp: Path, progress: Progress) -> None:
        self.args, self.tmp, self.progress = args, tmp, progress
        self.quick = args.quick
        self.figures: dict[str, Any] = {"machine": machine(), "quick": args.quick, "commands": {}}
        self.rows: list[tuple[str, str, str, str, str]] = []
        self.task = None

    def q(self, quick: Any, full: Any) -> Any:
        return quick if self.quick else full

    def say(self, text: str) -> None:
        self.progress.console.print(text, highlight=False)

    def step(self, text: str) -> None:
        if self.task is not None:
            self.progress.update(self.task, description=text)

    def row(self, section: str, figure: str, value: str, target: str, met: bool | None) -> None:
        verdict = "n/a" if met is None else ("met" if met else "NOT MET")
        self.rows.append((section, figure, value, target, verdict))
        self.say(f"  {figure}: [bold]{value}[/]   target {target} -> "
                 + ("[green]met[/]" if met else "[red]NOT MET[/]" if met is not None else "n/a"))

    def wait(self, seconds: float, what: str) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self.step(f"{what} ({left:4.0f}s left)")
            time.sleep(min(0.5, left))


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpu": model, "cores": os.cpu_count(), "memory_gb": round(mem_gb, 1),
            "kernel": platform.release(), "python": platform.python_version(),
            "pyzmq": zmq.pyzmq_version(), "libzmq": zmq.zmq_version()}


def fmt_rate(x: float) -> str:
    return f"{x:,.0f}"


# ======================================================================= 1. ingest
def sec_ingest(run: Run) -> None:
    hosts, dur = run.args.ingest_hosts, run.q(4.0, 10.0)
    names = [f"sim{i:04d}" for i in range(hosts)]
    offered = f"paced at {run.args.offered:,.0f} metrics/s" if run.args.offered else "flat out"
    run.say(f"[bold]1. Ingest[/]: {hosts} simulated hosts (one connection each), {run.args.senders} sender "
            f"process(es), batches of 100 metrics, {dur:g}s per phase; aggregator {offered}, raw ceiling flat out")
    out: dict[str, Any] = {}
    for mode in ("plaintext", "curve"):
        keys = bl.Keys(run.tmp / "keys-ingest", names) if mode == "curve" else None
        raw = _raw_ceiling(run, names, keys, dur, mode)
        ing = _ingest(run, names, keys, dur, mode)
        ratio = ing["rate_median"] / raw["rate"] if raw["rate"] else 0.0
        out[mode] = {"aggregator": ing, "raw": raw, "ratio": ratio}
        run.say(f"  {mode}: aggregator per-second rates {', '.join(fmt_rate(r) for r in ing['rate_samples'])}; "
                f"aggregator CPU {ing['cpu_percent']:.0f}% of one core; stored {ing['stored_batches']:,} batches, "
                f"re-published {ing['republished']:,}, {ing['missing_batches']} missing (gaps), "
                f"{ing['bad_frames']} bad frames")
        run.row("ingest", f"{mode} ingest, metrics/s (median of 1 s windows)", fmt_rate(ing["rate_median"]),
                ">= 2,000,000", ing["rate_median"] >= 2_000_000)
        run.row("ingest", f"{mode} raw pyzmq+msgpack ceiling, metrics/s", fmt_rate(raw["rate"]), "-", None)
        run.row("ingest", f"{mode} ratio to the ceiling", f"{ratio:.2f}", "-", None)
        if keys is not None:
            shutil.rmtree(keys.dir)
    run.figures["ingest"] = out
    run.figures["commands"]["ingest"] = (f"{bl.aggregator_command()} --port BASE --data DIR [--keys DIR]; "
                                         f"{hosts} hosts x 100 metrics flat out")


def _raw_ceiling(run: Run, names: list[str], keys: Any, dur: float, mode: str) -> dict[str, Any]:
    run.step(f"ingest {mode}: raw ceiling")
    base = bl.free_base()
    ready, q = MP.Event(), MP.Queue()
    from workers.security import load_secret
    server = load_secret(keys.dir / "aggregator.key_secret") if keys else None
    recv = MP.Process(target=bl.raw_receiver, args=(f"tcp://127.0.0.1:{base}", server, ready, q), daemon=True)
    recv.start()
    ready.wait(10)
    senders = bl.Senders(MP, f"tcp://127.0.0.1:{base}", names, run.args.senders, 100, dur,
                         keys=keys.hosts if keys else None)
    senders.go()
    run.wait(dur, f"ingest {mode}: raw ceiling")
    sent = senders.join()
    n, span = q.get(timeout=60)
    recv.join(5)
    return {"rate": n / span if span else 0.0, "metrics": n, "sent_batches": sent["sent"],
            "sender_rate": sent["sent"] * 100 / sent["seconds"]}


def _ingest(run: Run, names: list[str], keys: Any, dur: float, mode: str) -> dict[str, Any]:
    run.step(f"ingest {mode}: aggregator")
    base = bl.free_base()
    agg = bl.start_aggregator(base, run.tmp / f"agg-ingest-{mode}", keys.dir if keys else None)
    client = keys.clients["bench"] if keys else None
    api = bl.Api(base, client)
    try:
        api.wait_ready()
        counter = bl.Recorder(MP, f"tcp://127.0.0.1:{base + 2}", [b"metric/"], client, idle_s=1.0,
                              count_only=True)
        per_host = run.args.offered / 100 / len(names) if run.args.offered else None
        senders = bl.Senders(MP, f"tcp://127.0.0.1:{base}", names, run.args.senders, 100, dur,
                             rate_per_host=per_host, keys=keys.hosts if keys else None)
        senders.go()
        time.sleep(1.0)                          # warm-up
        group = bl.Group("aggregator", [agg.pid])
        s0, t0 = api.status()["counters"]["samples"], time.monotonic()
        rates = []
        end = t0 + dur - 1.5
        while time.monotonic() < end - 0.5:
            run.step(f"ingest {mode}: aggregator ({end - time.monotonic():3.0f}s left)")
            time.sleep(1.0)
            s1, t1 = api.status()["counters"]["samples"], time.monotonic()
            rates.append((s1 - s0) / (t1 - t0))
            s0, t0 = s1, t1
        usage = group.result()
        sent = senders.join()
        final = _drain(api)
        got = counter.finish()
        totals = bl.host_totals(final)
        rates_sorted = sorted(rates)
        return {"rate_median": rates_sorted[len(rates) // 2] if rates else 0.0, "rate_samples": rates,
                "cpu_percent": usage["cpu_percent"], "sent_batches": sent["sent"],
                "stored_batches": final["counters"]["batches"], "stored_metrics": final["counters"]["samples"],
                "missing_batches": totals.get("missing_batches", 0) + totals.get("lost_batches", 0),
                "bad_frames": final["counters"]["bad_frames"], "republished": got["received"]}
    finally:
        api.close()
        bl.stop(agg)


def _drain(api: bl.Api, settle_s: float = 1.0, limit_s: float = 60.0) -> dict[str, Any]:
    """Status once the aggregator has worked through its backlog (batches stop growing)."""
    deadline = time.monotonic() + limit_s
    last = api.status()
    while time.monotonic() < deadline:
        time.sleep(settle_s)
        now = api.status()
        if now["counters"]["batches"] == last["counters"]["batches"]:
            return now
        last = now
    return last


# ====================================================================== 2. latency
def sec_latency(run: Run) -> None:
    run.say("[bold]2. Latency[/] on loopback (sample clock = receive clock: same host)")
    base = bl.free_base()
    agg = bl.start_aggregator(base, run.tmp / "agg-latency", raised_limits=True)
    api = bl.Api(base)
    out: dict[str, Any] = {}
    try:
        api.wait_ready()
        out["sample_to_subscriber"] = _lat_samples(run, base)
        out["violation_to_subscriber"] = _lat_violations(run, base)
        out["command_round_trip"] = _lat_commands(run, base, api)
    finally:
        api.close()
        bl.stop(agg)
    run.figures["latency"] = out
    targets = {"sample_to_subscriber": 5.0, "violation_to_subscriber": 5.0, "command_round_trip": 20.0}
    want = 10_000
    for key, label in (("sample_to_subscriber", "sample taken -> subscriber"),
                       ("violation_to_subscriber", "budget breach sampled -> violation event"),
                       ("command_round_trip", "operator command -> result")):
        p = out[key]["percentiles"]
        fewer = f" ({p['n']:,} samples" + (f": fewer than {want:,}, --quick)" if p["n"] < want else ")")
        run.say(f"  {label}: p50 {p['p50']:.2f} ms, p90 {p['p90']:.2f} ms, p99 {p['p99']:.2f} ms, "
                f"max {p['max']:.1f} ms{fewer}")
        run.row("latency", f"{label}, p50 / p99 ms", f"{p['p50']:.2f} / {p['p99']:.2f}",
                f"p99 < {targets[key]:g} ms", p["p99"] < targets[key])
    run.figures["commands"]["latency"] = (
        f"{bl.aggregator_command(True)} --port BASE --data DIR (command limits raised); "
        "python -m workers agent --interval 0.01 (samples); 1 simulated host toggling cpu_percent "
        "95/10 at 1000 batches/s (violations); python -m workers agent --interval 1 + api command gc_tune")


def _agent(base: int, name: str, interval: float, state: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "workers", "agent", "--connect", f"127.0.0.1:{base}",
                             "--name", name, "--interval", str(interval), "--state-dir", str(state)],
                            cwd=bl.ROOT, env=bl.ENV, stderr=subprocess.DEVNULL)


def _lat_samples(run: Run, base: int) -> dict[str, Any]:
    dur = run.q(6.0, 30.0)
    rec = bl.Recorder(MP, f"tcp://127.0.0.1:{base + 2}", [b"metric/lat-agent/"])
    agent = _agent(base, "lat-agent", 0.01, run.tmp / "agent-lat")
    try:
        run.wait(2.0, "latency: agent starting")
        rec.measure_from_now()
        run.wait(dur, "latency: agent samples every 10 ms")
    finally:
        bl.stop(agent)
    got = rec.finish()
    # the first 2 s are startup (collectors forking, first connections): dropped by count
    lat, hop = got["latencies_ms"], got["from_send_ms"]
    p_hop = bl.percentiles(hop)
    run.say(f"  (of which agent send -> subscriber: p50 {p_hop['p50']:.2f} ms, p99 {p_hop['p99']:.2f} ms; "
            "the rest is collection and the collector -> agent hop)")
    return {"percentiles": bl.percentiles(lat), "agent_send_to_subscriber": p_hop, "received": got["received"],
            "interval_s": 0.01,
            "note": "real agent + 3 collectors at 10 ms (4 batches per tick); latency = receive time - batch ts"}


def _lat_violations(run: Run, base: int) -> dict[str, Any]:
    dur = run.q(3.0, 12.0)
    rec = bl.Recorder(MP, f"tcp://127.0.0.1:{base + 2}", [b"violation/"])
    senders = bl.Senders(MP, f"tcp://127.0.0.1:{base}", ["viol-host"], 1, 100, dur, rate_per_host=1000.0,
                         toggle="cpu_percent")
    senders.go()
    run.wait(dur, "latency: budget breaches at 1000/s")
    sent = senders.join()
    got = rec.finish()
    lat = got["latencies_ms"][10:]
    return {"percentiles": bl.percentiles(lat), "received": got["received"], "sent_batches": sent["sent"],
            "note": "cpu_percent alternates 95 / 10 (budget 80): every batch fires or resolves"}


def _lat_commands(run: Run, base: int, api: bl.Api) -> dict[str, Any]:
    limit_n, limit_s = run.q((600, 8.0), (10_000, 60.0))
    agent = _agent(base, "cmd-agent", 1.0, run.tmp / "agent-cmd")
    lat: list[float] = []
    statuses: dict[str, int] = {}
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            hosts = {h["name"]: h for h in api.status()["hosts"]}
            if hosts.get("cmd-agent", {}).get("registered"):
                break
            time.sleep(0.2)
        end = time.monotonic() + limit_s
        while len(lat) < limit_n + 20 and time.monotonic() < end:   # the first 20 are warm-up
            if len(lat) % 200 == 0:
                run.step(f"latency: commands {len(lat):,}/{limit_n:,}")
            body = {"op": "command", "id": uuid.uuid4().hex, "host": "cmd-agent", "strategy": "gc_tune",
                    "params": {"threshold0": 700}, "timeout_s": 10.0, "operator": "bench"}
            t0 = time.perf_counter()
            reply = api.request(body, 15.0)
            ms = (time.perf_counter() - t0) * 1000
            statuses[reply.get("status", "?")] = statuses.get(reply.get("status", "?"), 0) + 1
            if reply.get("status") == "success":
                lat.append(ms)
    finally:
        bl.stop(agent)
    return {"percentiles": bl.percentiles(lat[20:]), "statuses": statuses,
            "note": "strategy gc_tune {threshold0: 700}, one at a time; audit log appended (fsync) on both sides"}


# ==================================================================== 3. footprint
NODE_EXPORTER = ("prometheus-node-exporter", "node_exporter")
COLLECTD_CONF = """\
Interval 1
BaseDir "{tmp}"
PIDFile "{tmp}/collectd.pid"
PluginDir "/usr/lib/collectd"
TypesDB "/usr/share/collectd/types.db"
LoadPlugin cpu
LoadPlugin memory
LoadPlugin load
LoadPlugin disk
LoadPlugin interface
LoadPlugin network
<Plugin network>
  Server "127.0.0.1" "25826"
</Plugin>
"""


def peers() -> dict[str, str | None]:
    ne = next((shutil.which(n) for n in NODE_EXPORTER if shutil.which(n)), None)
    cd = shutil.which("collectd") or (Path("/usr/sbin/collectd").exists() and "/usr/sbin/collectd") or None
    return {"node_exporter": ne, "collectd": cd or None}


def sec_footprint(run: Run) -> None:
    dur = run.q(15.0, 60.0)
    found = peers()
    run.say(f"[bold]3. Agent footprint[/] at 1 s for {dur:g}s, side by side; peers found: "
            + ", ".join(f"{k} ({v})" if v else f"{k} (not installed: skipped)" for k, v in found.items()))
    base = bl.free_base()
    agg = bl.start_aggregator(base, run.tmp / "agg-footprint")
    procs: dict[str, subprocess.Popen] = {}
    stop_scrape = threading.Event()
    scrapes = [0, 0]
    try:
        bl.Api(base).wait_ready()
        procs["perfmesh agent + collectors"] = _agent(base, "fp-agent", 1.0, run.tmp / "agent-fp")
        if found["node_exporter"]:
            port = bl.free_base()
            procs["node_exporter (scraped every 1 s)"] = subprocess.Popen(
                [found["node_exporter"], f"--web.listen-address=127.0.0.1:{port}"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            threading.Thread(target=_scrape, args=(f"http://127.0.0.1:{port}/metrics", stop_scrape, scrapes),
                             daemon=True).start()
        if found["collectd"]:
            conf = run.tmp / "collectd.conf"
            (run.tmp / "collectd").mkdir(exist_ok=True)
            conf.write_text(COLLECTD_CONF.format(tmp=run.tmp / "collectd"))
            procs["collectd (1 s: cpu, memory, load, disk, interface -> network)"] = subprocess.Popen(
                [found["collectd"], "-f", "-C", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        run.wait(4.0, "footprint: warming up")
        groups = {name: bl.Group(name, [p.pid, *bl.descendants(p.pid)]) for name, p in procs.items()}
        end = time.monotonic() + dur
        while time.monotonic() < end:
            for g in groups.values():
                g.sample_memory()
            run.step(f"footprint ({end - time.monotonic():3.0f}s left)")
            time.sleep(1.0)
        results = {name: g.result() for name, g in groups.items()}
    finally:
        stop_scrape.set()
        for p in procs.values():
            bl.stop(p)
        bl.stop(agg)
    run.figures["footprint"] = {"window_s": dur, "peers_found": found, "scrapes": scrapes[0],
                                "scrape_errors": scrapes[1], "results": results}
    for name, r in results.items():
        run.say(f"  {name}: {r['processes']} process(es), CPU {r['cpu_percent']:.2f}% of one core "
                f"({r['cpu_s']:.2f} s in {r['window_s']:.0f} s), RSS {r['rss_mb']:.1f} MB, PSS {r['pss_mb']:.1f} MB "
                f"(peak {r['peak_pss_mb']:.1f})")
    me = results["perfmesh agent + collectors"]
    run.row("footprint", "perfmesh agent + collectors CPU, % of one core", f"{me['cpu_percent']:.2f}", "< 0.5",
            me["cpu_percent"] < 0.5)
    run.row("footprint", "perfmesh agent + collectors PSS / RSS, MB", f"{me['pss_mb']:.1f} / {me['rss_mb']:.1f}",
            "PSS < 40", me["pss_mb"] < 40)
    for name, r in results.items():
        if not name.startswith("perfmesh"):
            run.row("footprint", f"{name.split(' (')[0]} CPU % / PSS MB (peer)",
                    f"{r['cpu_percent']:.2f} / {r['pss_mb']:.1f}", "-", None)
    run.figures["commands"]["footprint"] = ("python -m workers agent --interval 1; prometheus-node-exporter "
                                            "--web.listen-address=127.0.0.1:PORT scraped every 1 s; collectd -f -C "
                                            "conf (Interval 1; cpu memory load disk interface network)")


def _scrape(url: str, stop: threading.Event, counts: list[int]) -> None:
    while not stop.wait(1.0):
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                r.read()
            counts[0] += 1
        except OSError:
            counts[1] += 1


# ======================================================================== 4. scale
def sec_scale(run: Run) -> None:
    hosts, dur = run.args.scale_hosts, run.q(12.0, 60.0)
    run.say(f"[bold]4. Scale[/]: {hosts:,} simulated hosts, one connection each, one 100-metric batch per "
            f"second each ({hosts * 100:,} metrics/s), {dur:g}s, default history (1000 rows)")
    first = _scale_step(run, hosts, dur)
    out: dict[str, Any] = {"base": first, "steps": []}
    _say_scale(run, first)
    run.row("scale", f"{hosts:,} hosts: lost batches (gaps)", f"{first['lost']:,}", "0", first["lost"] == 0)
    run.row("scale", f"{hosts:,} hosts: aggregator CPU, % of one core", f"{first['cpu_percent']:.1f}", "< 50",
            first["cpu_percent"] < 50)
    run.row("scale", f"{hosts:,} hosts: aggregator memory per host, MB (PSS)", f"{first['mb_per_host']:.2f}",
            "< 1", first["mb_per_host"] < 1)
    run.row("scale", f"{hosts:,} hosts: p99 sample -> subscriber, ms", f"{first['p99_ms']:.1f}", "-", None)
    best = hosts if first["ok"] else 0
    for n in run.q([2000], [2000, 4000, 6000, 8000]):
        if not first["ok"]:
            break
        r = _scale_step(run, n, run.q(8.0, 20.0))
        out["steps"].append(r)
        _say_scale(run, r)
        if not r["ok"]:
            break
        best = n
    out["largest_sustained_hosts"] = best
    tried = [hosts] + [s["hosts"] for s in out["steps"]]
    run.row("scale", "largest host count sustained without loss (steps tried: "
            + ", ".join(f"{t:,}" for t in tried) + ")", f"{best:,}", "-", None)
    run.figures["scale"] = out
    run.figures["commands"]["scale"] = (f"{bl.aggregator_command()} --port BASE --data DIR; sender processes of "
                                        "250 PUB sockets each, 1 batch/s per host; a stream subscriber on metric/")


def _say_scale(run: Run, r: dict[str, Any]) -> None:
    run.say(f"  {r['hosts']:,} hosts: sent {r['sent']:,}, stored {r['stored']:,}, subscriber got {r['received']:,} "
            f"(gaps seen {r['subscriber_gaps']}), aggregator missing {r['missing']}; aggregator CPU "
            f"{r['cpu_percent']:.1f}%, PSS {r['pss_mb']:.0f} MB ({r['mb_per_host']:.2f} MB/host, RSS "
            f"{r['rss_mb']:.0f} MB); latency after warm-up p50 {r['p50_ms']:.1f} ms p99 {r['p99_ms']:.1f} ms "
            f"({r['latency_samples']:,} samples) -> "
            + ("sustained" if r["ok"] else "NOT sustained"))


def _scale_step(run: Run, hosts: int, dur: float) -> dict[str, Any]:
    run.step(f"scale {hosts:,} hosts: starting")
    base = bl.free_base()
    agg = bl.start_aggregator(base, run.tmp / f"agg-scale-{hosts}")
    api = bl.Api(base)
    try:
        api.wait_ready()
        time.sleep(0.5)
        before = bl.memory_kb(agg.pid)
        rec = bl.Recorder(MP, f"tcp://127.0.0.1:{base + 2}", [b"metric/"], idle_s=2.0)
        names = [f"h{hosts}-{i:05d}" for i in range(hosts)]
        senders = bl.Senders(MP, f"tcp://127.0.0.1:{base}", names, math.ceil(hosts / 250), 100, dur,
                             rate_per_host=1.0)
        senders.go()
        warm = run.q(3.0, 5.0)     # every host's first batch creates its state and rings at once
        run.wait(warm, f"scale {hosts:,} hosts: warming up")
        rec.measure_from_now()
        group = bl.Group("aggregator", [agg.pid])
        run.wait(max(1.0, dur - warm), f"scale {hosts:,} hosts")
        group.sample_memory()
        usage = group.result()
        sent = senders.join()
        final = _drain(api)
        got = rec.finish()
    finally:
        api.close()
        bl.stop(agg)
    totals = bl.host_totals(final)
    missing = totals.get("missing_batches", 0) + totals.get("lost_batches", 0)
    stored = final["counters"]["batches"]
    lat = got["latencies_ms"]
    p = bl.percentiles(lat)
    lost = max(missing, sent["sent"] - stored)
    r = {"hosts": hosts, "seconds": dur, "sent": sent["sent"], "stored": stored, "received": got["received"],
         "subscriber_gaps": got["gaps"], "missing": missing, "lost": lost,
         "hosts_known": len(final["hosts"]), "cpu_percent": usage["cpu_percent"],
         "pss_mb": usage["pss_mb"], "rss_mb": usage["rss_mb"],
         "mb_per_host": (usage["pss_mb"] - before["pss_kb"] / 1024) / hosts,
         "p50_ms": p["p50"], "p99_ms": p["p99"], "latency_samples": p["n"]}
    r["ok"] = lost == 0 and got["gaps"] == 0 and r["hosts_known"] == hosts and p["p99"] < 1000
    return r


# ====================================================================== 5. history
def sec_history(run: Run) -> None:
    import tracemalloc
    from perfmesh.protocol import wire
    from perfmesh.protocol.batch import BatchEncoder
    from perfmesh.mesh.fleet import Fleet, FleetConfig
    hosts, rows, width = run.q(10, 50), 1000, 100
    run.say(f"[bold]5. History memory[/]: a Fleet with default history ({rows} rows), {hosts} hosts x {width} "
            f"series filled to capacity ({hosts * rows * width:,} samples)")
    run.step("history: filling")
    body = BatchEncoder().encode("cpu", 0.0, bl.realistic_metrics(width))
    tracemalloc.start()
    base0 = tracemalloc.get_traced_memory()[0]
    rss0 = bl.memory_kb(os.getpid())["rss_kb"]
    fleet = Fleet(FleetConfig(history_rows=rows))
    t0 = time.perf_counter()
    for r in range(rows):
        body["ts"] = 1_700_000_000.0 + r
        for h in range(hosts):
            fleet.ingest(wire.Envelope("metrics", f"h{h:03d}", "boot", r + 1, body["ts"], body), body["ts"])
    elapsed = time.perf_counter() - t0
    traced = tracemalloc.get_traced_memory()[0] - base0
    tracemalloc.stop()
    rss = (bl.memory_kb(os.getpid())["rss_kb"] - rss0) * 1024
    samples = sum(hs.history.samples for hs in fleet.hosts.values())
    ring_bytes = sum(hs.history.nbytes for hs in fleet.hosts.values())
    per = traced / samples
    run.figures["history"] = {"samples": samples, "traced_bytes": traced, "rss_delta_bytes": rss,
                              "ring_bytes": ring_bytes, "bytes_per_sample": per,
                              "ring_bytes_per_sample": ring_bytes / samples,
                              "rss_bytes_per_sample": rss / samples,
                              "fleet_ingest_batches_per_s": hosts * rows / elapsed}
    run.say(f"  {samples:,} samples: {traced / 2**20:.1f} MiB traced (rings {ring_bytes / 2**20:.1f} MiB), RSS delta "
            f"{rss / 2**20:.1f} MiB; Fleet.ingest alone ran {hosts * rows / elapsed:,.0f} batches/s "
            f"under tracemalloc")
    run.row("history", "bytes of RAM per stored sample (tracemalloc; RSS delta)",
            f"{per:.2f} ({rss / samples:.2f})", "<= 16", per <= 16)
    run.figures["commands"]["history"] = "in process: Fleet.ingest of full-width batches until every ring is full"


# ===================================================================== 6. overhead
def sec_overhead(run: Run) -> None:
    import cProfile
    import bench_overhead as bo
    from perfmesh.inproc.timing import PerformanceUtils
    calls, repeats = run.q(50_000, 200_000), run.q(5, 7)
    run.say(f"[bold]6. Library overhead[/]: {calls:,} calls x {repeats} repeats, medians "
            "(scripts/bench_overhead.py's loop)")
    run.step("overhead")
    bare = bo.per_call_ns(bo.target, calls, repeats)

    def in_context(x: int) -> int:
        with PerformanceUtils.create_performance_context_manager("bench", track_memory=False):
            return x + 1
    rows = {
        "measure_execution_time": bo.per_call_ns(PerformanceUtils.measure_execution_time(bo.target), calls, repeats),
        "profile_memory_usage": bo.per_call_ns(PerformanceUtils.profile_memory_usage(bo.target),
                                               max(1, calls // 20), repeats),
        "performance context (no memory)": bo.per_call_ns(in_context, calls, repeats),
        "cProfile enabled (reference)": bo.per_call_ns(bo.target, calls, repeats, cProfile.Profile()),
    }
    run.figures["overhead"] = {"bare_ns": bare, **{k: {"ns": v, "added_ns": v - bare} for k, v in rows.items()}}
    run.say(f"  bare call {bare:.0f} ns")
    for k, v in rows.items():
        target = "< 1,000 ns" if k == "measure_execution_time" else "-"
        run.row("overhead", f"{k}: ns added per call", f"{v - bare:,.0f}", target,
                (v - bare) < 1000 if k == "measure_execution_time" else None)
    run.figures["commands"]["overhead"] = "python scripts/bench_overhead.py (same loop)"


RUNNERS: dict[str, Callable[[Run], None]] = {
    "ingest": sec_ingest, "latency": sec_latency, "footprint": sec_footprint,
    "scale": sec_scale, "history": sec_history, "overhead": sec_overhead}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short windows: the whole run in under 3 minutes")
    ap.add_argument("--json", metavar="FILE", help="save every figure here")
    ap.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections ({', '.join(SECTIONS)})")
    ap.add_argument("--ingest-hosts", type=int, default=100, help="simulated hosts in the ingest test (default 100)")
    ap.add_argument("--senders", type=int, default=1, help="sender processes in the ingest test (default 1)")
    ap.add_argument("--offered", type=float, default=4e6,
                    help="metrics/s the ingest senders offer the aggregator, paced (0: flat out; default 4e6); "
                         "the raw ceiling is always flat out")
    ap.add_argument("--scale-hosts", type=int, default=1000, help="hosts in the first scale step (default 1000)")
    args = ap.parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    bad = [s for s in chosen if s not in SECTIONS]
    if bad:
        ap.error(f"unknown section(s) {', '.join(bad)}; expected some of {', '.join(SECTIONS)}")
    started = time.monotonic()
    m = machine()
    console.print(f"perfmesh bench{' --quick' if args.quick else ''}: {m['cpu'] or 'cpu ?'}, {m['cores']} cores, "
                  f"{m['memory_gb']} GB, Linux {m['kernel']}, Python {m['python']}, pyzmq {m['pyzmq']} "
                  f"(libzmq {m['libzmq']})", highlight=False)
    with tempfile.TemporaryDirectory(prefix="perfmesh-bench-") as tmp, \
            Progress(TextColumn("{task.description:<48}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                     TimeElapsedColumn(), console=console, transient=False) as progress:
        run = Run(args, Path(tmp), progress)
        run.task = progress.add_task("starting", total=len(chosen))
        for name in chosen:
            progress.update(run.task, description=name)
            try:
                RUNNERS[name](run)
            except Exception as exc:  # noqa: BLE001 - one broken section must not hide the others
                run.say(f"[red]section {name} failed: {exc.__class__.__name__}: {exc}[/]")
                run.figures.setdefault("errors", {})[name] = f"{exc.__class__.__name__}: {exc}"
                run.rows.append((name, "section failed", str(exc)[:60], "-", "ERROR"))
            progress.advance(run.task)
        progress.update(run.task, description="done")
    run.figures["elapsed_s"] = time.monotonic() - started
    table = Table(title=f"perfmesh benchmark summary ({'quick' if args.quick else 'full'} run, "
                        f"{run.figures['elapsed_s']:.0f} s)")
    for col in ("section", "figure", "value", "target", "verdict"):
        table.add_column(col, justify="right" if col == "value" else "left")
    for r in run.rows:
        style = "red" if r[4] in ("NOT MET", "ERROR") else "green" if r[4] == "met" else None
        table.add_row(*r, style=style)
    console.print(table)
    run.figures["summary"] = [dict(zip(("section", "figure", "value", "target", "verdict"), r)) for r in run.rows]
    if args.json:
        Path(args.json).write_text(json.dumps(run.figures, indent=2, default=str))
        console.print(f"figures saved to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
