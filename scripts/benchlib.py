"""Pieces shared by the benchmark scripts: processes to measure, simulated hosts, subscribers.

- process accounting from /proc: CPU seconds (all threads), RSS and PSS (smaps_rollup),
  descendants;
- an aggregator launched as its own process (``perfmesh aggregator``, or this file's
  ``aggregator`` entry with the command rate limits raised, for latency runs);
- simulated hosts: sender processes holding one PUB connection per host (optionally with a
  CURVE key per host), paced or flat out, with per-host sequence numbers;
- a stream subscriber process that records sample -> receive latency and sequence gaps;
- an api client without the 1 MiB reply cap (a status of thousands of hosts is bigger).

Run as ``python scripts/benchlib.py aggregator --port BASE --data DIR [--keys DIR]``: a real
aggregator with ``commands_per_host_per_min`` and ``commands_per_operator_per_min`` raised.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import zmq  # noqa: E402

from perfmesh.protocol import wire  # noqa: E402
from perfmesh.protocol.batch import BatchEncoder  # noqa: E402
from perfmesh.model.metric import PerformanceMetric  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
# Every process a benchmark starts keeps its state in a scratch folder removed at exit: a
# benchmark never reads or writes the user's real perfmesh state (XDG_STATE_HOME).
SCRATCH = Path(tempfile.mkdtemp(prefix="perfmesh-bench-"))
atexit.register(shutil.rmtree, SCRATCH, ignore_errors=True)
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_STATE_HOME": str(SCRATCH / "state")}


def realistic_metrics(n: int = 100) -> list[PerformanceMetric]:
    """About the shape of a busy host's cpu batch: totals plus per-CPU and per-device series."""
    out = [PerformanceMetric("cpu_percent", 42.0, "%", 0.0, "cpu"),
           PerformanceMetric("load_1m", 0.5, "", 0.0, "cpu")]
    i = 0
    while len(out) < n:
        out.append(PerformanceMetric("cpu_percent", float(i % 100), "%", 0.0, "cpu", context={"cpu": str(i)}))
        i += 1
    return out


def free_base() -> int:
    """A free base port (four consecutive ports) on loopback."""
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import free_base_port
    return free_base_port()


# ----------------------------------------------------------------- /proc accounting
def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads) so far; 0 when gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def memory_kb(pid: int) -> dict[str, int]:
    """Rss and Pss (kB) from /proc/PID/smaps_rollup; zeros when gone."""
    out = {"rss_kb": 0, "pss_kb": 0}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    out["rss_kb"] = int(line.split()[1])
                elif line.startswith("Pss:"):
                    out["pss_kb"] = int(line.split()[1])
    except OSError:
        pass
    return out


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children of all its threads, recursively)."""
    out: list[int] = []
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    kids = [int(x) for x in f.read().split()]
            except OSError:
                continue
            out.extend(kids)
            stack.extend(kids)
    return out


class Group:
    """A set of processes measured together: CPU over a window, memory now."""

    def __init__(self, name: str, pids: list[int]) -> None:
        self.name = name
        self.pids = list(pids)
        self._cpu0 = {p: cpu_seconds(p) for p in self.pids}
        self._t0 = time.monotonic()
        self.mem_samples: list[dict[str, int]] = []

    def sample_memory(self) -> None:
        total = {"rss_kb": 0, "pss_kb": 0}
        for p in self.pids:
            for k, v in memory_kb(p).items():
                total[k] += v
        self.mem_samples.append(total)

    def result(self) -> dict[str, Any]:
        span = time.monotonic() - self._t0
        used = sum(max(0.0, cpu_seconds(p) - c0) for p, c0 in self._cpu0.items())
        last = self.mem_samples[-1] if self.mem_samples else {"rss_kb": 0, "pss_kb": 0}
        peak_pss = max((m["pss_kb"] for m in self.mem_samples), default=0)
        return {"name": self.name, "processes": len(self.pids), "window_s": span, "cpu_s": used,
                "cpu_percent": 100.0 * used / span if span else 0.0,
                "rss_mb": last["rss_kb"] / 1024, "pss_mb": last["pss_kb"] / 1024, "peak_pss_mb": peak_pss / 1024}


def percentiles(values: list[float], qs: tuple[float, ...] = (50, 90, 99, 99.9)) -> dict[str, float]:
    if not values:
        return {f"p{q:g}": float("nan") for q in qs} | {"n": 0, "max": float("nan")}
    s = sorted(values)
    out: dict[str, float] = {f"p{q:g}": s[min(len(s) - 1, int(len(s) * q / 100))] for q in qs}
    out["max"] = s[-1]
    out["n"] = len(s)
    return out


# -------------------------------------------------------------------- keys
class Keys:
    """A CURVE keys folder as the aggregator wants it, plus the clients' key pairs."""

    def __init__(self, root: Path, hosts: list[str], clients: tuple[str, ...] = ("bench",)) -> None:
        from workers.security import ClientKeys, load_public, load_secret, new_keypair
        self.dir = root
        secrets = root / "secrets"
        new_keypair("aggregator", root)
        server_public = load_public(root / "aggregator.key")
        self.hosts: dict[str, Any] = {}
        self.clients: dict[str, Any] = {}
        for role, names, into in (("agents", hosts, self.hosts), ("operators", clients, self.clients)):
            (root / role).mkdir(parents=True, exist_ok=True)
            for name in names:
                pub, sec = new_keypair(name, secrets)
                shutil.copy(pub, root / role / pub.name)
                into[name] = ClientKeys(load_secret(sec), server_public)
        # subscribers may use an operator key: the stream domain allows operators too


# -------------------------------------------------------------- aggregator
def start_aggregator(base: int, data_dir: Path, keys_dir: Path | None = None, *,
                     raised_limits: bool = False, extra: tuple[str, ...] = ()) -> subprocess.Popen:
    """A real aggregator process on loopback ports base..base+3."""
    if raised_limits:
        cmd = [sys.executable, str(ROOT / "scripts" / "benchlib.py"), "aggregator"]
    else:
        cmd = [sys.executable, "-m", "workers", "aggregator"]
    cmd += ["--port", str(base), "--data", str(data_dir), *extra]
    if keys_dir is not None:
        cmd += ["--keys", str(keys_dir)]
    return subprocess.Popen(cmd, cwd=ROOT, env=ENV, stderr=subprocess.DEVNULL)


def aggregator_command(raised_limits: bool = False) -> str:
    return ("python scripts/benchlib.py aggregator" if raised_limits else "python -m workers aggregator")


class Api:
    """Requests to the aggregator's api socket, with no cap on the reply size."""

    def __init__(self, base: int, keys: Any = None) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.linger = 0
        if keys is not None:
            keys.apply(self.sock)
        self.sock.connect(f"tcp://127.0.0.1:{base + 3}")
        self.boot = uuid.uuid4().hex

    def request(self, body: dict[str, Any], timeout_s: float = 10.0) -> dict[str, Any]:
        self.sock.send(wire.encode("request", "bench", self.boot, 0, time.time(), body))
        deadline = time.monotonic() + timeout_s
        while True:
            left = int((deadline - time.monotonic()) * 1000)
            if left <= 0 or not self.sock.poll(left):
                raise TimeoutError(f"no answer from the aggregator api within {timeout_s:g}s")
            data = wire.unpack(self.sock.recv(), max_bytes=1 << 30)
            reply = data.get("body") if isinstance(data, dict) else None
            if isinstance(reply, dict) and ("id" not in body or reply.get("id") in (None, body["id"])):
                return reply

    def status(self, timeout_s: float = 10.0) -> dict[str, Any]:
        return self.request({"op": "status"}, timeout_s)

    def wait_ready(self, timeout_s: float = 15.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return self.status(min(2.0, max(0.1, deadline - time.monotonic())))
            except TimeoutError:
                if time.monotonic() >= deadline:
                    raise

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()


def stop(proc: subprocess.Popen, timeout_s: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def host_totals(status: dict[str, Any]) -> dict[str, int]:
    """Sums of the per-host counters of a status reply (batches, samples, gaps, missing, ...)."""
    out: dict[str, int] = {}
    for h in status["hosts"]:
        for k, v in h["counters"].items():
            out[k] = out.get(k, 0) + v
    return out


# --------------------------------------------------------- simulated hosts
def host_sender(url: str, names: list[str], metrics: int, duration_s: float, rate_per_host: float | None,
                keys: dict[str, Any] | None, ready, start, result, toggle: str | None = None) -> None:
    """One PUB connection per simulated host; each sends ``metrics``-wide batches with its own
    sequence numbers, ``rate_per_host`` batches/s (spread evenly) or flat out when None.

    ``toggle`` names the first metric to alternate between 95 and 10 on every batch (budget
    breaches for violation latency). Puts (batches sent, seconds spent sending) on ``result``.
    """
    ctx = zmq.Context()
    ctx.set(zmq.MAX_SOCKETS, len(names) + 64)
    socks = []
    for name in names:
        s = ctx.socket(zmq.XPUB)    # a PUB on the wire that also tells us when the subscription is in
        s.setsockopt(zmq.SNDHWM, 100_000)
        s.setsockopt(zmq.LINGER, 2000)
        if keys is not None:
            keys[name].apply(s)
        s.connect(url)
        socks.append(s)
    ms = realistic_metrics(metrics)
    body = BatchEncoder().encode("cpu", time.time(), ms)
    values = bytearray(body["values"])
    hot = bytearray(values)
    if toggle:
        import struct
        struct.pack_into("<d", hot, 0, 95.0)
        struct.pack_into("<d", values, 0, 10.0)
    low, high = bytes(values), bytes(hot)
    topics = [wire.topic("metric", n) for n in names]
    boot = uuid.uuid4().hex[:16]
    seq = [0] * len(names)
    sent = 0
    _wait_subscribed(socks, 30.0)   # a PUB drops everything until the peer's subscription arrives
    ready.set()
    start.wait()
    t0 = time.monotonic()
    t_end = t0 + duration_s
    n = len(names)
    encode = wire.encode

    def send(i: int) -> None:
        seq[i] += 1
        now = time.time()
        body["ts"] = now
        if toggle:
            body["values"] = high if seq[i] % 2 else low
        socks[i].send_multipart([topics[i], encode("metrics", names[i], boot, seq[i], now, body)])

    if rate_per_host is None:
        while time.monotonic() < t_end:
            for i in range(n):
                send(i)
            sent += n
    else:
        period = 1.0 / rate_per_host
        step = period / n
        k = 0                       # k-th send overall: host k % n, due at t0 + k * step
        while True:
            due = t0 + k * step
            now_m = time.monotonic()
            if due > now_m:
                if due >= t_end:
                    break
                time.sleep(min(due - now_m, 0.05))
                continue
            send(k % n)
            sent += 1
            k += 1
    spent = time.monotonic() - t0
    for s in socks:
        s.close(2000)
    ctx.term()
    result.put((sent, spent))


def _wait_subscribed(socks: list, timeout_s: float) -> None:
    pending = set(socks)
    poller = zmq.Poller()
    for s in socks:
        poller.register(s, zmq.POLLIN)
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        for s, _ in poller.poll(100):
            s.recv(zmq.NOBLOCK)
            if s in pending:
                pending.discard(s)
                poller.unregister(s)


class Senders:
    """Sender processes sharing out ``names``; started together."""

    def __init__(self, mp_ctx, url: str, names: list[str], processes: int, metrics: int, duration_s: float,
                 rate_per_host: float | None = None, keys: dict[str, Any] | None = None,
                 toggle: str | None = None) -> None:
        self.result = mp_ctx.Queue()
        self.start_event = mp_ctx.Event()
        processes = max(1, min(processes, len(names)))
        chunks = [names[i::processes] for i in range(processes)]
        self.ready = [mp_ctx.Event() for _ in chunks]
        self.procs = [mp_ctx.Process(target=host_sender, daemon=True,
                                     args=(url, chunk, metrics, duration_s, rate_per_host,
                                           {n: keys[n] for n in chunk} if keys else None,
                                           self.ready[i], self.start_event, self.result, toggle))
                      for i, chunk in enumerate(chunks)]
        for p in self.procs:
            p.start()
        for r in self.ready:
            if not r.wait(120):
                raise RuntimeError("a sender process did not get ready")

    def go(self) -> None:
        self.start_event.set()

    def join(self) -> dict[str, float]:
        got = [self.result.get(timeout=600) for _ in self.procs]
        for p in self.procs:
            p.join(10)
        return {"sent": sum(g[0] for g in got), "seconds": max(g[1] for g in got)}


def raw_receiver(url: str, server_keys: Any, ready, result, idle_ms: int = 1000) -> None:
    """The ceiling: a bare SUB (a CURVE server without ZAP when keys are given) that only
    msgpack-decodes each frame and counts its metrics; ends after ``idle_ms`` of silence.
    Puts (metrics, seconds from the first frame to the last) on ``result``."""
    import msgpack
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 1_000_000)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.linger = 0
    if server_keys is not None:
        sub.curve_secretkey, sub.curve_publickey, sub.curve_server = server_keys.secret, server_keys.public, True
    sub.bind(url)
    ready.set()
    n_metrics = 0
    first = last = None
    sub.RCVTIMEO = idle_ms
    try:
        while True:
            frame = sub.recv_multipart()[1]
            env = msgpack.unpackb(frame, raw=False)
            n_metrics += len(env["body"]["values"]) // 8
            last = time.monotonic()
            if first is None:
                first = last
    except zmq.Again:
        pass
    result.put((n_metrics, (last - first) if first and last and last > first else 0.0))
    sub.close(0)
    ctx.term()


# -------------------------------------------------------------- subscriber
def stream_recorder(url: str, prefixes: list[bytes], keys: Any, stop_after_idle_s: float,
                    ready, stop, result, count_only: bool = False, since=None,
                    max_latencies: int = 2_000_000) -> None:
    """Records receive time - sample time for every stream frame matching ``prefixes``:
    metric batches (body ts) and events (body timestamp); per-host seq gaps of metrics.
    ``count_only``: just counts frames (a cheap subscriber for throughput runs). ``since``
    (a shared double): latencies of samples taken before it are not recorded (warm-up)."""
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 1_000_000)
    sub.linger = 0
    if keys is not None:
        keys.apply(sub)
    for p in prefixes:
        sub.setsockopt(zmq.SUBSCRIBE, p)
    sub.connect(url)
    time.sleep(0.3)
    ready.set()
    lat: list[float] = []
    from_send: list[float] = []      # receive time - envelope send time (the agent's hop onward)
    taken: list[float] = []          # sample times, to drop the warm-up once it is known
    last_seq: dict[str, int] = {}
    gaps = 0
    n = 0
    idle_since = None
    unpack = wire.unpack
    while True:
        if not sub.poll(100):
            if stop.is_set():
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since >= stop_after_idle_s:
                    break
            continue
        idle_since = None
        frame = sub.recv_multipart()[1]
        if count_only:
            n += 1
            continue
        t = time.time()
        env = unpack(frame)
        body = env["body"]
        if env["kind"] == "metrics":
            ts = body["ts"]
            host, seq = env["host"], env["seq"]
            prev = last_seq.get(host)
            if prev is not None and seq > prev + 1:
                gaps += seq - prev - 1
            last_seq[host] = seq
        else:
            ts = body.get("timestamp")
            if not isinstance(ts, float):
                continue
        n += 1
        if len(lat) < max_latencies:
            lat.append((t - ts) * 1000.0)
            from_send.append((t - env["time"]) * 1000.0)
            taken.append(ts)
    sub.close(0)
    ctx.term()
    if since is not None and since.value:
        keep = [i for i, ts in enumerate(taken) if ts >= since.value]
        lat, from_send = [lat[i] for i in keep], [from_send[i] for i in keep]
    result.put({"received": n, "gaps": gaps, "hosts": len(last_seq), "latencies_ms": lat,
                "from_send_ms": from_send, "since": since.value if since is not None else None})


class Recorder:
    def __init__(self, mp_ctx, url: str, prefixes: list[bytes], keys: Any = None, idle_s: float = 1.0,
                 count_only: bool = False) -> None:
        self.stop_event, ready, self.result = mp_ctx.Event(), mp_ctx.Event(), mp_ctx.Queue()
        self.since = mp_ctx.Value("d", 0.0)
        self.proc = mp_ctx.Process(target=stream_recorder, daemon=True,
                                   args=(url, prefixes, keys, idle_s, ready, self.stop_event, self.result,
                                         count_only, self.since))
        self.proc.start()
        ready.wait(30)

    def measure_from_now(self) -> None:
        """Record latencies only of samples taken from now on."""
        self.since.value = time.time()

    def finish(self) -> dict[str, Any]:
        self.stop_event.set()
        got = self.result.get(timeout=600)
        self.proc.join(10)
        return got


# ------------------------------------------------------------- aggregator entry
def _aggregator_main(argv: list[str]) -> int:
    """The real aggregator with the per-host and per-operator command rate limits raised."""
    import argparse
    from perfmesh.mesh.fleet import FleetConfig
    from workers.aggregator import AggregatorConfig, main
    from workers.transport import Endpoint
    ap = argparse.ArgumentParser(prog="benchlib.py aggregator")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--keys", type=Path, default=None)
    ap.add_argument("--commands-per-min", type=float, default=1e9)
    args = ap.parse_args(argv)
    fleet = FleetConfig(commands_per_host_per_min=args.commands_per_min,
                        commands_per_operator_per_min=args.commands_per_min)
    return main(AggregatorConfig(endpoint=Endpoint("127.0.0.1", args.port), fleet=fleet,
                                 keys_dir=args.keys, data_dir=args.data))


if __name__ == "__main__":
    if sys.argv[1:2] == ["aggregator"]:
        sys.exit(_aggregator_main(sys.argv[2:]))
    print(__doc__)
