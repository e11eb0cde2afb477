"""The mesh end to end: real aggregator, agents and collectors on loopback."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time

import pytest
import zmq

from perfmesh.protocol import wire
from tests.waiting import wait_until

pytestmark = [pytest.mark.multiprocess, pytest.mark.timeout(120)]


def events(res: subprocess.CompletedProcess) -> list[dict]:
    assert res.returncode == 0, res.stderr
    return [json.loads(line) for line in res.stdout.splitlines()]


def start_two_hosts(mesh, traced: bool = True):
    mesh.aggregator(traced=traced)
    mesh.agent("web01", traced=traced)
    mesh.agent("web02", traced=traced)
    mesh.wait_hosts("web01", "web02")
    return mesh


@pytest.fixture
def two_hosts(mesh):
    """Two hosts of its own, for a test that kills or garbles something."""
    return start_two_hosts(mesh)


@pytest.fixture
def two_hosts_untraced(mesh):
    """Two hosts whose shutdown a test times: without coverage, whose save at exit adds to it."""
    return start_two_hosts(mesh, traced=False)


@pytest.fixture(scope="module")
def fleet(module_mesh):
    """Two hosts shared by the tests that only read the mesh: the stream, status, and commands
    that change nothing these tests look at (gc_collect, refusals)."""
    module_mesh.aggregator()
    module_mesh.agent("web01")
    module_mesh.agent("web02")
    module_mesh.wait_hosts("web01", "web02")
    return module_mesh


def test_metrics_of_every_kind_from_two_agents_reach_a_subscriber(fleet):
    got = events(fleet.cli("subscribe", "--type", "metric", "--json", "--count", "600"))
    seen = {(e["host"], e["category"]) for e in got}
    for host in ("web01", "web02"):
        assert {(host, "cpu"), (host, "memory"), (host, "io")} <= seen, seen
    names = {e["name"] for e in got}
    assert {"cpu_percent", "memory_percent", "disk_read_bytes_per_s", "load_1m"} <= names
    e = next(e for e in got if e["name"] == "memory_percent")
    assert set(e) >= {"type", "host", "category", "name", "value", "unit", "timestamp", "labels"}
    assert e["type"] == "metric" and e["unit"] == "%" and 0 < e["value"] < 100


def test_host_and_category_filters_deliver_only_matching_metrics(fleet):
    by_host = events(fleet.cli("subscribe", "--type", "metric", "--host", "web02", "--json", "--count", "50"))
    assert {e["host"] for e in by_host} == {"web02"}
    by_cat = events(fleet.cli("subscribe", "--category", "memory", "--json", "--count", "40"))
    assert {e["category"] for e in by_cat} == {"memory"}
    assert {e["host"] for e in by_cat} == {"web01", "web02"}
    both = events(fleet.cli("subscribe", "--host", "web01", "--category", "cpu", "--json", "--count", "20"))
    assert {(e["host"], e["category"]) for e in both} == {("web01", "cpu")}


def test_host_filter_is_a_delimited_topic_prefix(mesh):
    """Subscribing to web1 must not receive web10's metrics."""
    mesh.aggregator()
    mesh.agent("web1")
    mesh.agent("web10")
    mesh.wait_hosts("web1", "web10")
    got = events(mesh.cli("subscribe", "--host", "web1", "--json", "--count", "60"))
    assert {e["host"] for e in got} == {"web1"}


def test_status_lists_hosts_with_collectors_and_counters(fleet):
    status = fleet.status()
    hosts = {h["name"]: h for h in status["hosts"]}
    assert set(hosts) == {"web01", "web02"}
    h = hosts["web01"]
    assert h["alive"] is True and h["health"] in ("good", "warning", "critical")
    assert time.time() - h["last_seen"] < 5
    assert {c["kind"] for c in h["collectors"]} == {"cpu", "memory", "io"}
    assert all(isinstance(c["pid"], int) and c["restarts"] == 0 for c in h["collectors"])
    assert {"batches", "gaps", "bad_frames"} <= set(h["counters"])
    assert h["counters"]["batches"] > 0 and h["counters"]["gaps"] == 0
    assert isinstance(h["budget_violations"], list)
    readable = fleet.cli("status")
    assert readable.returncode == 0 and "web01" in readable.stdout and "web02" in readable.stdout


def test_command_round_trip_returns_the_agents_validated_result(fleet):
    res = fleet.cli("command", "web01", "gc_collect", "generation=2", "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    out = json.loads(res.stdout)
    assert out["status"] == "success" and out["host"] == "web01"
    assert out["result"]["strategy"] == "gc_collect" and out["result"]["success"] is True
    assert "before" in out["result"] and "after" in out["result"]
    readable = fleet.cli("command", "web02", "gc_collect")
    assert readable.returncode == 0 and "success" in readable.stdout


def test_command_events_reach_the_stream(fleet):
    proc = fleet.subscribe_bg("--type", "command", "--count", "1", "--timeout", "20")
    assert fleet.cli("command", "web01", "gc_collect").returncode == 0
    out, _ = proc.communicate(timeout=25)
    ev = json.loads(out.splitlines()[0])
    assert ev["type"] == "command" and ev["host"] == "web01" and ev["status"] == "success"


@pytest.mark.parametrize("args, fragment", [
    (("web99", "gc_collect"), "unknown host 'web99'"),
    (("web01", "rm_rf"), "unknown strategy 'rm_rf'"),
    (("web01", "gc_collect", "generation=7"), "generation"),
    (("web01", "process_priority", "nice=5", "pid=1"), "pid"),
])
def test_bad_commands_are_refused_with_a_message_naming_the_problem(fleet, args, fragment):
    res = fleet.cli("command", *args)
    assert res.returncode != 0
    assert fragment in res.stdout + res.stderr
    assert "Traceback" not in res.stderr


def test_collector_killed_with_sigkill_is_back_within_two_seconds(two_hosts):
    host = next(h for h in two_hosts.status()["hosts"] if h["name"] == "web01")
    cpu = next(c for c in host["collectors"] if c["kind"] == "cpu")
    os.kill(cpu["pid"], signal.SIGKILL)
    killed_at = time.monotonic()

    def restarted() -> dict | None:
        host = next(h for h in two_hosts.status()["hosts"] if h["name"] == "web01")
        new = next(c for c in host["collectors"] if c["kind"] == "cpu")
        return new if new["pid"] and new["pid"] != cpu["pid"] else None
    new = wait_until(restarted, 6, "the cpu collector back with a new pid")
    assert new["pid"] != cpu["pid"] and new["restarts"] == 1
    # status lags by one heartbeat (1 s); the restart itself happens within 2 s
    assert time.monotonic() - killed_at < 3.5
    assert "exited with -9" in (two_hosts.tmp / "agent-web01.log").read_text()


def test_budget_violations_reach_the_stream(mesh):
    # only the memory budget can fire, however busy this machine is
    mesh.aggregator("--budget", "memory_percent=0.001", "--budget", "cpu_percent=1000",
                    "--budget", "load_1m=1000", "--budget", "swap_percent=1000")
    sub = mesh.subscribe_bg("--type", "violation", "--count", "1", "--timeout", "30")
    mesh.agent("web01")    # after the subscriber: the first violation fires on the first sample
    out, _ = sub.communicate(timeout=40)
    got = [json.loads(line) for line in out.splitlines()]
    assert got and got[0]["type"] == "violation" and got[0]["metric"] == "memory_percent"
    assert got[0]["limit"] == 0.001 and got[0]["value"] > 0.001 and got[0]["host"] == "web01"
    status = mesh.status()
    assert [v["metric"] for v in status["hosts"][0]["budget_violations"]] == ["memory_percent"]
    assert status["hosts"][0]["health"] == "critical"


def test_garbage_on_every_socket_changes_nothing(two_hosts):
    ctx = zmq.Context()
    base = two_hosts.base
    rng = random.Random(7)
    junk = [b"", b"\x00", b"\xc1" * 10, os.urandom(300), wire.pack([1, 2, 3]),
            wire.pack({"v": 1, "kind": "metrics"}), b"\x91" * 5000,
            wire.encode("metrics", "web01", "x", 10**9, 1.0, {"schema": b"zz", "ts": 1.0, "values": b""}),
            wire.encode("metrics", "evil", "x", 1, 1.0, {"schema": wire.pack(["cpu", [["cpu_percent", "%", {}]]]),
                                                          "ts": 1.0, "values": b"\x00\x00\x00\x00\x00\x00\xf8\x7f"})]
    socks = []
    pub = ctx.socket(zmq.PUB)
    pub.connect(f"tcp://127.0.0.1:{base}")
    for role in (1, 3):
        d = ctx.socket(zmq.DEALER)
        d.connect(f"tcp://127.0.0.1:{base + role}")
        socks.append(d)
    sub = ctx.socket(zmq.XSUB)
    sub.connect(f"tcp://127.0.0.1:{base + 2}")
    time.sleep(0.5)      # the connections are made (the PUB drops until the SUB side subscribes)
    for _ in range(3):
        for j in junk + [bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 64))) for _ in range(20)]:
            pub.send_multipart([b"metric/web01/", j])
            pub.send(j)
            for d in socks:
                d.send(j)
                d.send_multipart([j, j, j])
            sub.send(b"\x01" + j)
    status = wait_until(lambda: (st := two_hosts.status())["counters"]["bad_frames"] > 50
                        and {"non_finite", "undecodable"} <= set(st["bad_frame_reasons"]) and st,
                        10, "the junk counted")
    for s in (pub, sub, *socks):
        s.close(0)
    ctx.term()
    hosts = {h["name"]: h for h in status["hosts"]}
    assert "evil" not in hosts or hosts["evil"]["counters"]["batches"] == 0
    assert status["counters"]["bad_frames"] > 50
    assert "non_finite" in status["bad_frame_reasons"] and "undecodable" in status["bad_frame_reasons"]
    assert all(p.poll() is None for p in two_hosts.procs)
    before = hosts["web01"]["counters"]["batches"]
    after = wait_until(lambda: {h["name"]: h for h in two_hosts.status()["hosts"]}["web01"]["counters"]["batches"]
                       > before, 5, "web01's batches after the junk")
    assert after  # metrics keep flowing
    assert two_hosts.cli("command", "web01", "gc_collect").returncode == 0


def test_sigterm_stops_every_process_within_two_seconds_without_orphans(two_hosts_untraced):
    host = next(h for h in two_hosts_untraced.status()["hosts"] if h["name"] == "web01")
    pids = [c["pid"] for c in host["collectors"]]
    agent = two_hosts_untraced.procs[1]
    t0 = time.monotonic()
    agent.send_signal(signal.SIGTERM)
    agent.wait(5)
    assert time.monotonic() - t0 < 2.0
    time.sleep(0.2)      # the behaviour: the collectors are gone (not zombies) 0.2 s after the agent
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    agg = two_hosts_untraced.procs[0]
    t0 = time.monotonic()
    agg.send_signal(signal.SIGINT)
    agg.wait(5)
    assert time.monotonic() - t0 < 2.0 and agg.returncode == 0


def test_agent_sigkilled_leaves_no_orphan_collectors(two_hosts_untraced):
    host = next(h for h in two_hosts_untraced.status()["hosts"] if h["name"] == "web02")
    pids = [c["pid"] for c in host["collectors"]]
    two_hosts_untraced.procs[2].kill()
    two_hosts_untraced.procs[2].wait(5)
    wait_until(lambda: not [p for p in pids if _alive(p)], 3, "the orphaned collectors gone")
    assert [p for p in pids if _alive(p)] == []


def test_host_marked_down_after_missed_heartbeats_and_up_again(mesh):
    mesh.aggregator()
    agent = mesh.agent("web01")
    mesh.wait_hosts("web01")
    agent.send_signal(signal.SIGSTOP)
    try:
        got = events(mesh.cli("subscribe", "--type", "host", "--json", "--count", "1", "--timeout", "10"))
        assert got[0]["state"] == "down" and got[0]["host"] == "web01"
        assert mesh.status()["hosts"][0]["alive"] is False
        proc = mesh.subscribe_bg("--type", "host", "--count", "1", "--timeout", "10")
    finally:
        agent.send_signal(signal.SIGCONT)
    out, _ = proc.communicate(timeout=15)
    assert json.loads(out.splitlines()[0])["state"] == "up"


def test_unreachable_aggregator_gives_one_clear_line(mesh):
    for args in (("status", "--timeout", "0.5"), ("command", "web01", "gc_collect", "--timeout", "0.5")):
        res = mesh.cli(*args)
        assert res.returncode == 1
        assert res.stderr.count("\n") == 1 and "no answer from the aggregator" in res.stderr


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
