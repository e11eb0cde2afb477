#!/usr/bin/env python3
"""Ingest throughput of a real aggregator, beside the raw pyzmq + msgpack ceiling.

Simulated agents (one process, many hosts, one PUB connection each group) send realistic
columnar batches of about 100 metrics to a real ``perfmesh aggregator`` process, with a
subscriber attached to its stream. Every metric is validated, stored in history,
budget-checked and re-published. In the same run the raw ceiling is measured: the same
frames through a bare pyzmq PUB/SUB pair, decoded with msgpack and nothing else.

Last line: ``ingest: X metrics/s; raw ceiling: Y metrics/s; ratio: R``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import zmq  # noqa: E402

import benchlib  # noqa: E402
from benchlib import free_base, realistic_metrics  # noqa: E402,F401
from perfmesh.protocol import wire  # noqa: E402
from perfmesh.protocol.batch import BatchEncoder  # noqa: E402


def sender(url: str, hosts: int, metrics: int, duration_s: float, rate_per_host: float | None,
           ready, start) -> None:
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.SNDHWM, 100_000)
    pub.setsockopt(zmq.LINGER, 2000)
    pub.connect(url)
    enc = BatchEncoder()
    ms = realistic_metrics(metrics)
    names = [f"sim{h:04d}" for h in range(hosts)]
    topics = [wire.topic("metric", n) for n in names]
    boot = os.urandom(8).hex()
    ready.set()
    start.wait()
    time.sleep(0.3)
    seq = 0
    t_end = time.monotonic() + duration_s
    body = enc.encode("cpu", time.time(), ms)
    while time.monotonic() < t_end:
        seq += 1
        now = time.time()
        body["ts"] = now
        for name, topic in zip(names, topics):
            pub.send_multipart([topic, wire.encode("metrics", name, boot, seq, now, body)])
        if rate_per_host:
            time.sleep(1.0 / rate_per_host)
    pub.close()
    ctx.term()


def raw_receiver(url: str, duration_s: float, result) -> None:
    import threading
    benchlib.raw_receiver(url, None, threading.Event(), result, idle_ms=3000)


def stream_counter(url: str, result) -> None:
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 1_000_000)
    sub.setsockopt(zmq.SUBSCRIBE, b"metric/")
    sub.connect(url)
    sub.RCVTIMEO = 4000
    n = 0
    try:
        while True:
            sub.recv_multipart()
            n += 1
    except zmq.Again:
        pass
    result.put(n)
    sub.close(0)
    ctx.term()


def run_senders(url: str, args, ctx) -> None:
    ready = [ctx.Event() for _ in range(args.senders)]
    start = ctx.Event()
    procs = [ctx.Process(target=sender, args=(url, args.hosts // args.senders, args.metrics,
                                              args.duration, None, ready[i], start))
             for i in range(args.senders)]
    for p in procs:
        p.start()
    for r in ready:
        r.wait()
    return procs, start


def measure_ingest(args, ctx) -> dict:
    base = free_base()
    agg = subprocess.Popen([sys.executable, "-m", "workers", "aggregator", "--port", str(base),
                            "--data", str(benchlib.SCRATCH / "aggregator")], cwd=ROOT, env=benchlib.ENV,
                           stderr=subprocess.DEVNULL)
    from workers.client import ApiClient
    from workers.transport import Endpoint
    api = ApiClient(Endpoint("127.0.0.1", base), ctx=zmq.Context())
    api.status(10)
    q = ctx.Queue()
    counter = ctx.Process(target=stream_counter, args=(f"tcp://127.0.0.1:{base + 2}", q))
    counter.start()
    procs, start = run_senders(f"tcp://127.0.0.1:{base}", args, ctx)
    start.set()
    time.sleep(0.3 + 1.0)  # connect + warm up
    s0, t0 = api.status(10), time.monotonic()
    samples = []
    for _ in range(int(args.duration - 2)):
        time.sleep(1.0)
        s1, t1 = api.status(10), time.monotonic()
        samples.append((_samples(s1) - _samples(s0)) / (t1 - t0))
        s0, t0 = s1, t1
    for p in procs:
        p.join()
    final = api.status(10)
    while True:                       # let the aggregator drain what it has queued
        time.sleep(1.0)
        again = api.status(10)
        if _samples(again) == _samples(final):
            break
        final = again
    counter.join()
    republished = q.get()
    agg.terminate()
    agg.wait(5)
    hosts = final["hosts"]
    stored = sum(h["counters"]["samples"] for h in hosts)
    missing = sum(h["counters"]["missing_batches"] for h in hosts) * args.metrics
    return {"rate_median": statistics.median(samples), "rate_samples": samples, "stored": stored,
            "lost_in_transport": missing, "bad_frames": final["counters"]["bad_frames"],
            "republished_batches": republished, "stored_batches": sum(h["counters"]["batches"] for h in hosts)}


def _samples(status: dict) -> int:
    return sum(h["counters"]["samples"] for h in status["hosts"])


def measure_raw(args, ctx) -> dict:
    base = free_base()
    q = ctx.Queue()
    recv = ctx.Process(target=raw_receiver, args=(f"tcp://127.0.0.1:{base}", args.duration, q))
    recv.start()
    time.sleep(0.3)
    procs, start = run_senders(f"tcp://127.0.0.1:{base}", args, ctx)
    start.set()
    for p in procs:
        p.join()
    n, span = q.get()
    recv.join()
    return {"rate": n / span if span else 0.0, "metrics": n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=100, help="simulated hosts (default 100)")
    ap.add_argument("--metrics", type=int, default=100, help="metrics per batch (default 100)")
    ap.add_argument("--senders", type=int, default=1, help="sender processes (default 1)")
    ap.add_argument("--duration", type=float, default=8.0, help="seconds per phase (default 8)")
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args()
    ctx = mp.get_context("fork")
    print(f"machine: {os.cpu_count()} cores; {args.hosts} simulated hosts, {args.metrics} metrics per batch, "
          f"{args.senders} sender process(es), {args.duration:g}s per phase", flush=True)
    raw = measure_raw(args, ctx)
    print(f"raw pyzmq PUB/SUB + msgpack decode: {raw['rate']:,.0f} metrics/s", flush=True)
    ing = measure_ingest(args, ctx)
    print(f"aggregator per-second ingest rates: {', '.join(f'{r:,.0f}' for r in ing['rate_samples'])}")
    print(f"stored {ing['stored']:,} metrics in {ing['stored_batches']:,} batches; re-published "
          f"{ing['republished_batches']:,} batches to a subscriber; {ing['lost_in_transport']:,} metrics "
          f"the flat-out sender offered beyond what was taken (dropped at the high-water mark, counted as "
          f"sequence gaps); {ing['bad_frames']} bad frames")
    ratio = ing["rate_median"] / raw["rate"] if raw["rate"] else 0.0
    if args.json:
        Path(args.json).write_text(json.dumps({"ingest": ing, "raw": raw, "ratio": ratio}, indent=2))
    print(f"ingest: {ing['rate_median']:,.0f} metrics/s; raw ceiling: {raw['rate']:,.0f} metrics/s; ratio: {ratio:.2f}")


if __name__ == "__main__":
    main()
