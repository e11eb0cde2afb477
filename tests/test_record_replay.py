"""Record and replay end to end: a real aggregator, `perfmesh record` as a process, agents
(simulated ones sending two minutes of stream time, and a real one), then `perfmesh replay`."""

from __future__ import annotations

import json
import signal
import threading
import time

import pytest
import zmq

from perfmesh.protocol import wire
from perfmesh.store.recording import BatchRecord, RecordingError, RecordingReader
from tests.recordings import T0, batches

pytestmark = [pytest.mark.multiprocess, pytest.mark.timeout(120)]


class FakeAgent:
    """Publishes metric envelopes to the aggregator's ingest socket, as an agent does."""

    def __init__(self, base: int) -> None:
        self.ctx = zmq.Context()
        self.pub = self.ctx.socket(zmq.PUB)
        self.pub.setsockopt(zmq.LINGER, 0)
        self.pub.setsockopt(zmq.SNDHWM, 100_000)
        self.pub.connect(f"tcp://127.0.0.1:{base}")

    def send(self, env: wire.Envelope) -> None:
        self.pub.send_multipart([wire.topic("metric", env.host), wire.encode(
            env.kind, env.host, env.boot, env.seq, env.time, env.body)])

    def close(self) -> None:
        self.pub.close(0)
        self.ctx.term()


def recorded(path) -> list[BatchRecord]:
    """The batches in a recording being written (a partial last record is fine)."""
    out = []
    try:
        for r in RecordingReader(path):
            if isinstance(r, BatchRecord):
                out.append(r)
    except RecordingError:
        pass
    return out


def wait_for(what, check, timeout_s: float = 20.0, step=None):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if step is not None:
            step()
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} not within {timeout_s}s")


def start_recording(mesh, out, *extra: str, t0: float = T0):
    """A recorder process, connected once a warm-up host's batches show up in its file."""
    rec = mesh.spawn("record", "--connect", mesh.connect, "--out", str(out), *extra, log="record")
    agent = FakeAgent(mesh.base)
    warm = batches("warmup", seconds=100_000, breach=(0, 0), t0=t0)
    wait_for("the recorder's first batch", lambda: (out.exists() and any(
        b.host == "warmup" for b in recorded(out))), step=lambda: agent.send(next(warm)))
    return rec, agent


def stop(proc) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(10)


def replay(mesh_cli, path, *args: str) -> tuple[list[dict], dict]:
    res = mesh_cli("replay", str(path), "--json", *args)
    assert res.returncode == 0, res.stderr
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    return [x for x in lines if x["type"] == "alert"], lines[-1]


def test_a_recorded_two_minute_stream_with_a_cpu_breach_fires_under_50_and_not_under_95(mesh, tmp_path):
    from tests.conftest import run_cli
    mesh.aggregator("--budget", "cpu_percent=1000")
    out = tmp_path / "incident.rec"
    rec, agent = start_recording(mesh, out)
    for env in batches("web01", seconds=120, breach=(60, 90)):
        agent.send(env)
    wait_for("the whole stream in the recording",
             lambda: sum(b.host == "web01" for b in recorded(out)) == 240)
    assert stop(rec) == 0
    agent.close()
    log = (tmp_path / "record.log").read_text()
    assert "perfmesh record: wrote" in log and "batches" in log

    alerts, summary = replay(run_cli, out, "--budget", "cpu_percent=50")
    violations = [(a["host"], a["state"], a["timestamp"]) for a in alerts if a["source"] == "budget"]
    # the breach starts at T0 + 60; the budget fires on its 3rd sample over (quiet budgets)
    assert violations == [("web01", "firing", T0 + 62), ("web01", "resolved", T0 + 90)]
    assert summary["fired"]["budget"] == 1 and "web01" in summary["hosts"]
    alerts, summary = replay(run_cli, out, "--budget", "cpu_percent=95")
    assert [a for a in alerts if a["source"] == "budget"] == [] and "budget" not in summary["fired"]
    assert summary["batches"] >= 240


def test_a_recorder_killed_mid_stream_leaves_a_file_that_replays(mesh, tmp_path):
    from tests.conftest import run_cli
    mesh.aggregator()
    out = tmp_path / "crash.rec"
    rec, agent = start_recording(mesh, out)
    stream = batches("web01", seconds=100_000, breach=(0, 100_000))
    stop_sending = threading.Event()

    def send_forever() -> None:
        while not stop_sending.is_set():
            agent.send(next(stream))
            time.sleep(0.001)
    sender = threading.Thread(target=send_forever)
    sender.start()
    try:
        wait_for("a few hundred batches recorded", lambda: len(recorded(out)) > 300)
        rec.kill()                     # SIGKILL: no flush, no fsync, no goodbye
        rec.wait(10)
    finally:
        stop_sending.set()
        sender.join()
        agent.close()
    res = run_cli("replay", str(out), "--budget", "cpu_percent=50", "--json")
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout.splitlines()[-1])
    assert summary["batches"] > 300 and summary["fired"]["budget"] >= 1
    assert res.stderr == "" or "WARNING" in res.stderr and "crash.rec at byte" in res.stderr


def test_record_with_a_host_filter_keeps_only_that_host(mesh, tmp_path):
    mesh.aggregator()
    out = tmp_path / "web02.rec"
    rec, agent = start_recording(mesh, out, "--host", "warmup", "--host", "web02")
    for a, b in zip(batches("web01", seconds=30), batches("web02", seconds=30)):
        agent.send(a)
        agent.send(b)
    wait_for("web02's stream", lambda: sum(b.host == "web02" for b in recorded(out)) == 60)
    agent.close()
    assert stop(rec) == 0
    hosts = {b.host for b in recorded(out)}
    assert hosts == {"warmup", "web02"}
    assert RecordingReader(out).info.hosts == ("warmup", "web02")


def test_record_stops_by_itself_after_its_duration(mesh, tmp_path):
    from tests.conftest import run_cli
    mesh.aggregator()
    out = tmp_path / "quiet.rec"
    t = time.monotonic()
    rec = mesh.spawn("record", "--connect", mesh.connect, "--out", str(out), "--duration", "1s", log="record")
    assert rec.wait(15) == 0 and time.monotonic() - t >= 1.0
    _, summary = replay(run_cli, out)
    assert summary["batches"] == 0 and summary["problem"] is None


def test_a_real_agent_recorded_for_a_few_seconds_replays_through_the_same_budgets(mesh, tmp_path):
    from tests.conftest import run_cli
    mesh.aggregator()
    out = tmp_path / "real.rec"
    rec, agent = start_recording(mesh, out, "--host", "warmup", "--host", "real01", t0=time.time())
    agent.close()
    mesh.agent("real01")
    wait_for("three categories of real01 for a second",
             lambda: len({(b.schema_raw, b.ts) for b in recorded(out) if b.host == "real01"}) >= 15, timeout_s=30)
    assert stop(rec) == 0
    alerts, summary = replay(run_cli, out, "--budget", "memory_percent=0.001")
    assert ("real01", "memory_percent", "firing") in {(a["host"], a["metric"], a["state"]) for a in alerts}
    alerts, _ = replay(run_cli, out, "--budget", "memory_percent=100")
    assert not [a for a in alerts if a["metric"] == "memory_percent"]
    assert 0.5 < summary["span_s"] < 60


def test_record_refuses_to_overwrite_a_file_in_one_line(mesh, tmp_path):
    out = tmp_path / "old.rec"
    out.write_bytes(b"precious")
    res = mesh.cli("record", "--out", str(out))
    assert res.returncode == 1 and out.read_bytes() == b"precious"
    assert "old.rec: already exists" in res.stderr and len(res.stderr.splitlines()) == 1
    res = mesh.cli("record", "--out", str(tmp_path / "x.rec"), "--duration", "soon")
    assert res.returncode == 2 and "duration 'soon'" in res.stderr


def wait_status(mesh, check, what: str, timeout_s: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        hosts = {h["name"]: h for h in mesh.status()["hosts"]}
        if check(hosts):
            return hosts
        time.sleep(0.2)
    raise AssertionError(f"{what} not within {timeout_s}s: {hosts}\n{mesh.logs()}")


def test_the_aggregator_serves_a_recording_as_if_live(mesh, tmp_path):
    from tests.recordings import write_recording
    path = write_recording(tmp_path / "demo.rec", seconds=4, breach=(1, 4))
    started = time.time()
    mesh.aggregator("--replay", str(path), "--budget", "cpu_percent=50")
    hosts = wait_status(mesh, lambda h: "web01" in h and h["web01"]["counters"]["batches"] == 8
                        and h["web01"]["recent_violations"], "the served recording")
    violation = hosts["web01"]["recent_violations"][0]
    assert violation["metric"] == "cpu_percent" and violation["value"] == 85.0
    assert started < violation["timestamp"] < time.time()       # re-stamped: it happens now
    assert "served 8 batches from" in (tmp_path / "aggregator.log").read_text()


def test_replay_to_an_aggregator_sends_every_batch_as_an_agent_would(mesh, tmp_path):
    from tests.recordings import write_recording
    path = write_recording(tmp_path / "incident.rec")
    mesh.aggregator("--budget", "cpu_percent=50")
    from tests.conftest import run_cli
    res = run_cli("replay", str(path), "--to", mesh.connect, "--speed", "0")
    assert res.returncode == 0 and f"served 240 batches from {path}" in res.stdout, res.stderr
    hosts = wait_status(mesh, lambda h: "web01" in h and h["web01"]["counters"]["batches"] == 240,
                        "240 batches")
    assert [v["metric"] for v in hosts["web01"]["recent_violations"]] == ["cpu_percent"]
