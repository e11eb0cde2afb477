"""Reliability with real processes: aggregator crashes, stopped subscribers, spool overflow, repairs.

"Every sample" is pinned exactly: the agents run with ``--spool-dir``, so after the run the
test reads back, from the agent's own spool segments, every batch it ever sent (seq and
sample timestamp), and compares them with what ``perfmesh history --json`` returns.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

from perfmesh.protocol import wire
from perfmesh.protocol.batch import parse_schema
from perfmesh.store.spool import HEADER
from tests.conftest import ROOT, untraced
from tests.waiting import log_contains, tcp_connected, wait_until

pytestmark = [pytest.mark.multiprocess, pytest.mark.timeout(90)]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


# ---------------------------------------------------------------- helpers (shared with test_partition)
def spooled(spool_dir: Path, category: str = "memory") -> list[tuple[int, float]]:
    """(seq, sample timestamp) of every batch of ``category`` in an agent's spool, read-only."""
    out = []
    for seg in sorted(Path(spool_dir).glob("*.seg")):
        data, pos = seg.read_bytes(), 0
        while pos + HEADER.size <= len(data):
            length, crc = HEADER.unpack_from(data, pos)
            frame = data[pos + HEADER.size:pos + HEADER.size + length]
            pos += HEADER.size + length
            if len(frame) != length or zlib.crc32(frame) != crc:
                break
            env = wire.decode(frame)
            if parse_schema(env.body["schema"]).category == category:
                out.append((env.seq, env.body["ts"]))
    return sorted(out)


def history_rows(res: subprocess.CompletedProcess) -> list[dict]:
    assert res.returncode == 0, res.stdout + res.stderr
    return [json.loads(line) for line in res.stdout.splitlines()]


def check_every_sample(rows: list[dict], spool: list[tuple[int, float]], last_seq: int) -> None:
    """History holds exactly the spooled samples the aggregator has accepted (seq <= last_seq)
    from its first stored one on: none missing, none extra, none twice."""
    stamps = [r["timestamp"] for r in rows]
    assert len(stamps) == len(set(stamps)), "a sample is stored twice"
    assert stamps == sorted(stamps)
    expected = [ts for seq, ts in spool if seq <= last_seq and ts >= stamps[0]]
    missing = sorted(set(expected) - set(stamps))
    extra = sorted(set(stamps) - set(expected))
    assert not missing and not extra, f"{len(missing)} spooled samples missing from history " \
                                      f"(first {missing[:3]}), {len(extra)} not spooled (first {extra[:3]})"


def max_spacing(stamps: list[float], lo: float, hi: float) -> float:
    inside = [t for t in stamps if lo <= t <= hi]
    return max((b - a for a, b in zip(inside, inside[1:])), default=float("inf"))


def hosts_of(status: dict) -> dict[str, dict]:
    return {h["name"]: h for h in status["hosts"]}


def memory_kb(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in kB of a process, from /proc/PID/smaps_rollup."""
    fields = dict(line.split()[:2] for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:])
    return int(fields["Rss:"]), int(fields["Pss:"])


def history_settled(mesh, host: str, spool_dir: Path) -> bool:
    """The aggregator has stored (its writer commits every 0.1 s) the last memory sample it
    accepted from ``host``, as the agent's spool records it."""
    last_seq = hosts_of(mesh.status())[host]["last_seq"]
    want = [ts for seq, ts in spooled(spool_dir) if seq <= last_seq]
    rows = mesh.history(host, "memory_percent")
    return bool(want and rows and rows[-1][0] == want[-1])


def live_batches(mesh, names: tuple[str, ...], at_least: int) -> bool:
    """Every named host has sent at least ``at_least`` batches (live history to compare with)."""
    hosts = hosts_of(mesh.status())
    return all(hosts[n]["counters"]["batches"] >= at_least for n in names)


def caught_up(mesh, names: tuple[str, ...], since_batches: dict[str, int] | None = None):
    """Status once every named host is alive with nothing missing (and, if given, has more
    batches than ``since_batches``); else None."""
    try:
        hosts = hosts_of(mesh.status())
    except AssertionError:
        return None
    for n in names:
        h = hosts.get(n)
        if h is None or not h["alive"] or h["counters"]["missing_batches"] != 0:
            return None
        if since_batches and h["counters"]["batches"] <= since_batches[n]:
            return None
    return hosts


# ------------------------------------------------------------------------------ tests
def test_every_sample_taken_while_the_aggregator_was_sigkilled_is_in_history_once(mesh):
    """SIGKILL for 10 s, restart on the same --data: history == the agents' spools, exactly."""
    names = ("rel01", "rel02")
    agg = mesh.aggregator()
    agents = {n: mesh.agent(n, "--spool-dir", str(mesh.tmp / f"spool-{n}")) for n in names}
    mesh.wait_hosts(*names)
    # a second of live history (3 categories every 0.2 s) before the outage
    wait_until(lambda: live_batches(mesh, names, 15), 10, "a second of live batches", poll_s=0.1)
    agg.send_signal(signal.SIGKILL)
    agg.wait(5)
    t_kill = time.time()
    time.sleep(10)                        # the behaviour: the aggregator is away for 10 s
    t_back = time.time()
    mesh.aggregator()
    hosts = wait_until(lambda: caught_up(mesh, names) and all(
        h["counters"]["backfilled"] >= 150 for h in hosts_of(mesh.status()).values()),
        40, "both hosts backfilled and caught up", poll_s=0.2)
    # live samples again past the range whose spacing is checked (t_back + 2)
    wait_until(lambda: all((rows := mesh.history(n, "memory_percent")) and rows[-1][0] > t_back + 2.5
                           for n in names),
               20, "live history after the outage", poll_s=0.2)
    for p in agents.values():
        p.send_signal(signal.SIGTERM)
        p.wait(10)
    for n in names:
        wait_until(lambda: history_settled(mesh, n, mesh.tmp / f"spool-{n}"), 10, f"{n}'s last batches stored")
    hosts = hosts_of(mesh.status())
    for n in names:
        c = hosts[n]["counters"]
        assert c["missing_batches"] == 0 and c["lost_batches"] == 0 and c["duplicates"] == 0, c
        rows = history_rows(mesh.cli("history", "--host", n, "--name", "memory_percent", "--json"))
        spool = spooled(mesh.tmp / f"spool-{n}")
        check_every_sample(rows, spool, hosts[n]["last_seq"])
        stamps = [r["timestamp"] for r in rows]
        # the agent kept sampling every 0.2 s through the outage, and all of it came back
        assert max_spacing(stamps, t_kill - 2, t_back + 2) < 0.6, mesh.logs()
        during = [r for r in rows if t_kill + 0.5 <= r["timestamp"] <= t_back - 0.5]
        assert len(during) >= 0.8 * 9 / 0.2, len(during)
        assert all(r["backfilled"] for r in during)
        assert not any(r["backfilled"] for r in rows if r["timestamp"] < t_kill - 1.0)


BLASTER = r"""
import sys, time, zmq
from perfmesh.protocol import wire
from perfmesh.protocol.batch import make_body
port, rate, seconds = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
ctx = zmq.Context()
pub = ctx.socket(zmq.PUB)
pub.setsockopt(zmq.SNDHWM, 1_000_000)
pub.connect(f"tcp://127.0.0.1:{port}")
time.sleep(0.5)     # the aggregator's subscription reaches this PUB (not observable here)
schema = wire.pack(["application", [[f"app_m{i}", "count", {}] for i in range(100)]])
values = [float(i) for i in range(100)]
topic = wire.topic("metric", "blast01")
seq, t0 = 0, time.monotonic()
while time.monotonic() - t0 < seconds:
    due = seq / rate
    ahead = due - (time.monotonic() - t0)
    if ahead > 0:
        time.sleep(ahead)
    seq += 1
    pub.send_multipart([topic, wire.encode("metrics", "blast01", "b" * 32, seq, time.time(),
                                           make_body(schema, time.time(), values))])
pub.close(2000)
"""


def test_a_stopped_subscriber_does_not_slow_ingest(mesh):
    """Batches/s accepted with a SIGSTOPped subscriber holding unread stream data vs. without."""
    mesh.aggregator(traced=False)         # its ingest rate is measured
    wait_until(log_contains(mesh.tmp / "aggregator.log", "listening on"), 15, "the aggregator listening")
    rate = 2000.0
    blaster = subprocess.Popen([sys.executable, "-c", BLASTER, str(mesh.base), str(rate), "40"],
                               cwd=ROOT, env=untraced(ENV))
    mesh.procs.append(blaster)

    def batches() -> int:
        return hosts_of(mesh.status()).get("blast01", {}).get("counters", {}).get("batches", 0)

    def measure(seconds: float) -> float:
        b0, t0 = batches(), time.monotonic()
        time.sleep(seconds)               # the behaviour: a rate over a measurement window
        return (batches() - b0) / (time.monotonic() - t0)

    wait_until(lambda: batches() > 1000, 10, "blaster batches arriving")
    without = measure(5.0)
    sub = subprocess.Popen([sys.executable, "-m", "workers", "subscribe", "--connect", mesh.connect, "--json"],
                           cwd=ROOT, env=ENV, stdout=subprocess.PIPE)
    mesh.procs.append(sub)
    wait_until(tcp_connected(sub.pid, mesh.base + 2), 15, "the subscriber connected to the stream")
    sub.send_signal(signal.SIGSTOP)
    try:
        time.sleep(3.0)                   # its socket buffers and the stream queue fill up (not observable)
        with_stopped = measure(8.0)
        status = mesh.status()
        host = hosts_of(status)["blast01"]
    finally:
        sub.send_signal(signal.SIGCONT)
        sub.kill()
    assert without > 0.8 * rate, f"ingest kept only {without:.0f}/s of {rate:.0f}/s without a subscriber"
    assert with_stopped > 0.7 * without, f"{with_stopped:.0f} batches/s with a stopped subscriber vs {without:.0f}/s"
    assert host["counters"]["lost_batches"] == 0 and host["counters"]["missing_batches"] == 0, host["counters"]


def test_agent_memory_stays_bounded_past_its_spool_and_the_gap_is_reported(mesh):
    """Aggregator away 10x longer than a 2 s spool: the agent's memory plateaus; on return
    the lost range comes as a gap event with a time range covering the outage."""
    agg = mesh.aggregator()
    agent = mesh.agent("bnd01", "--spool-seconds", "2", "--spool-dir", str(mesh.tmp / "spool"), interval="0.05",
                       traced=False)      # its RSS is measured
    mesh.wait_hosts("bnd01")
    time.sleep(1.0)                       # the behaviour: a second of steady streaming before the outage
    agg.send_signal(signal.SIGKILL)
    agg.wait(5)
    t_kill = time.time()
    time.sleep(4.0)                       # the behaviour: the spool (2 s) is full and turning over
    rss = [memory_kb(agent.pid)[0]]
    for _ in range(4):
        time.sleep(4.0)                   # the behaviour: RSS sampled over a 20 s outage
        rss.append(memory_kb(agent.pid)[0])
    t_back = time.time()
    mesh.aggregator()
    gaps = mesh.subscribe_bg("--type", "gap")
    hosts = wait_until(lambda: caught_up(mesh, ("bnd01",)), 30, "host back with nothing missing", poll_s=0.2)
    c = hosts["bnd01"]["counters"]
    # unbounded, 16 s at 80 batches/s of ~1-2 KiB would add well over 1 MiB
    assert max(rss) - rss[0] < 1024, f"agent RSS (kB) grew while the aggregator was away: {rss}"
    assert len(list((mesh.tmp / "spool").glob("*.seg"))) <= 3
    assert c["lost_batches"] > 0.8 * 20 * 80 - 200, c   # most of the outage, minus the spool
    gaps.terminate()
    out = gaps.communicate(timeout=10)[0]
    events = [json.loads(line) for line in out.splitlines()]
    assert events, mesh.logs()
    lost = sum(e["missing"] for e in events)
    assert lost == c["lost_batches"]
    start, end = min(e["start"] for e in events), max(e["end"] for e in events)
    assert start is not None and end is not None, events
    assert t_kill - 2 <= start <= t_kill + 1 and t_back - 3 <= end <= t_back + 10, (t_kill, t_back, events)
    # the spool's part came back as backfill: the newest ~2 s before the aggregator returned
    assert c["backfilled"] > 0
    agent.send_signal(signal.SIGTERM)


def test_a_truncated_sqlite_file_is_repaired_on_start(mesh):
    """Half the state file cut off while stopped: the aggregator starts, logs the repair,
    serves, and asks the agent again for the batches the repair could not salvage."""
    agg = mesh.aggregator()
    agent = mesh.agent("trn01", "--spool-dir", str(mesh.tmp / "spool"))
    mesh.wait_hosts("trn01")
    # three seconds of history (3 categories every 0.2 s): half the file then holds stored batches
    wait_until(lambda: live_batches(mesh, ("trn01",), 45), 15, "45 batches stored", poll_s=0.1)
    agg.send_signal(signal.SIGTERM)
    agg.wait(10)
    db = mesh.tmp / "aggregator" / "perfmesh.db"
    for side in ("-wal", "-shm"):
        Path(f"{db}{side}").unlink(missing_ok=True)
    with open(db, "r+b") as f:
        f.truncate(db.stat().st_size // 2)
    agg = mesh.aggregator()
    hosts = wait_until(lambda: caught_up(mesh, ("trn01",), {"trn01": 20}), 20, "the host caught up after the repair",
                       poll_s=0.2)
    assert agg.poll() is None
    log = (mesh.tmp / "aggregator.log").read_text()
    assert "damaged and repaired" in log and "batches lost" in log, log[-3000:]
    assert list(db.parent.glob("perfmesh.db.corrupt-*")), "the damaged file is kept aside"
    agent.send_signal(signal.SIGTERM)
    agent.wait(10)
    wait_until(lambda: history_settled(mesh, "trn01", mesh.tmp / "spool"), 10, "the last batches stored")
    hosts = hosts_of(mesh.status())
    assert hosts["trn01"]["counters"]["backfilled"] > 0, hosts["trn01"]["counters"]
    rows = history_rows(mesh.cli("history", "--host", "trn01", "--name", "memory_percent", "--json"))
    spool = spooled(mesh.tmp / "spool")
    check_every_sample(rows, spool, hosts["trn01"]["last_seq"])
    assert rows[0]["timestamp"] <= spool[3][1], "history from before the truncation is back"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_truncated_spool_segment_is_repaired_on_start(mesh):
    """A torn last record (agent SIGKILLed mid-write): the agent starts, logs the repair and
    carries on with the same stream."""
    mesh.aggregator()
    spool = mesh.tmp / "spool"
    agent = mesh.agent("trs01", "--spool-dir", str(spool))
    status = mesh.wait_hosts("trs01")
    boot = hosts_of(status)["trs01"]["boot"]
    wait_until(lambda: any(p.stat().st_size > 4096 for p in spool.glob("*.seg")), 10, "records in the spool")
    agent.send_signal(signal.SIGKILL)
    agent.wait(5)
    seg = max((p for p in spool.glob("*.seg") if p.stat().st_size), key=lambda p: p.name)
    with open(seg, "r+b") as f:
        f.truncate(seg.stat().st_size - 7)
    before = hosts_of(mesh.status())["trs01"]["counters"]["batches"]
    agent = mesh.agent("trs01", "--spool-dir", str(spool))
    hosts = wait_until(lambda: caught_up(mesh, ("trs01",), {"trs01": before + 20}), 20,
                       "batches from the restarted agent", poll_s=0.2)
    assert agent.poll() is None
    log = (mesh.tmp / "agent-trs01.log").read_text()
    assert "spool repaired" in log and "torn or corrupt record" in log, log[-3000:]
    assert hosts["trs01"]["boot"] == boot
    assert hosts["trs01"]["counters"]["lost_batches"] == 0
