#!/usr/bin/env python3
"""Remote-write throughput: samples per second a RemoteWriter gets into a local Prometheus.

A real Prometheus (Debian package, ``--web.enable-remote-write-receiver``, loopback, scratch
folder removed at exit) receives; the writer is fed realistic batches of ``--hosts`` hosts
(about 100 series each, as bench_ingest.py sends) as fast as it drains them, never past half
its queue (so nothing is shed). Counted: samples Prometheus accepted (the writer's
sent_samples), wall time and the benchmark process's CPU time.

Last line: ``remote write: X samples/s to a local Prometheus (Y samples per CPU-second)``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchlib import realistic_metrics  # noqa: E402
from perfmesh.protocol.batch import BatchEncoder, parse_schema  # noqa: E402
from tests.servers import get_json, prometheus_receiver  # noqa: E402
from workers.remote_write import RemoteTarget, RemoteWriter  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=200, help="simulated hosts (default 200)")
    ap.add_argument("--metrics", type=int, default=100, help="series per batch (default 100)")
    ap.add_argument("--duration", type=float, default=8.0, help="seconds (default 8)")
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args()
    if shutil.which("prometheus") is None:
        sys.exit("needs prometheus (apt-get install prometheus)")
    scratch = Path(tempfile.mkdtemp(prefix="perfmesh-bench-rw-"))
    server, base = prometheus_receiver(scratch)
    try:
        metrics = realistic_metrics(args.metrics)
        body = BatchEncoder().encode("cpu", 0.0, metrics)
        schema, values = parse_schema(body["schema"]), body["values"]
        writer = RemoteWriter(RemoteTarget(f"{base}/api/v1/write", max_samples_per_send=5000,
                                           max_queue_bytes=4 * 1024 * 1024))
        hosts = [f"bench{i:05d}" for i in range(args.hosts)]
        cpu0, t0 = time.process_time(), time.monotonic()
        ts = time.time() - args.duration - 60    # one tick per host per loop, in the recent past
        while time.monotonic() - t0 < args.duration:
            ts += 0.001
            for host in hosts:
                writer.on_batch(host, schema, ts, values, False)
            while writer.stats().queue_bytes > writer.target.max_queue_bytes // 2:
                time.sleep(0.01)
        fed_s = time.monotonic() - t0
        deadline = time.monotonic() + 60
        while writer.stats().queue_samples and time.monotonic() < deadline:
            time.sleep(0.05)
        wall, cpu = time.monotonic() - t0, time.process_time() - cpu0
        writer.close()
        s = writer.stats()
        head = get_json(f"{base}/api/v1/status/tsdb")["data"]["headStats"]
        result = {"hosts": args.hosts, "series_per_host": args.metrics, "fed_s": round(fed_s, 2),
                  "wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "sent_samples": s.sent_samples,
                  "requests": s.sent_requests, "bytes": s.sent_bytes, "shed": s.shed_samples,
                  "rejected": s.rejected_samples, "failed_requests": s.failed_requests,
                  "prometheus_head_series": head["numSeries"],
                  "samples_per_s": round(s.sent_samples / wall), "samples_per_cpu_s": round(s.sent_samples / cpu),
                  "bytes_per_sample": round(s.sent_bytes / max(1, s.sent_samples), 1)}
        print(json.dumps(result, indent=2))
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"remote write: {result['samples_per_s']} samples/s to a local Prometheus "
              f"({result['samples_per_cpu_s']} samples per CPU-second)")
    finally:
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
