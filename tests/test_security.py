"""Security with real sockets and processes: CURVE keys per role, identity, fail-closed
starts, replay, expiry, pid reuse, parameter injection, rate limits and audit logs."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import zmq

from perfmesh.protocol import wire
from perfmesh.errors import ConfigError
from perfmesh.optimize.strategies import process_start_ticks
from tests.conftest import ROOT, free_base_port, run_cli
from tests.secure_mesh import (FakeAggregator, Keys, Operator, audit, curve, metric_frame,
                               wait_handshake)
from tests.waiting import log_contains, wait_until
from workers.client import Subscriber, Unreachable

pytestmark = [pytest.mark.multiprocess, pytest.mark.timeout(60)]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


class Secured:
    """An aggregator with --keys, an operator key, and agents started with their own keys."""

    def __init__(self, mesh, *aggregator_args: str) -> None:
        self.mesh = mesh
        self.keys = Keys(mesh.tmp)
        self.operator_key = self.keys.add("operators", "alice")
        self.agent_keys: dict[str, Path] = {}
        mesh.aggregator("--keys", str(self.keys.dir), *aggregator_args)

    def add(self, role: str, name: str) -> Path:
        """A key allowed for ``role``, once the aggregator accepts it (it reloads its allowlists
        every second). A refused client retries only after a backoff, so wait first."""
        secret = self.keys.add(role, name)
        self.keys.wait_allowed(self.mesh.base, secret, role)
        return secret

    def agent(self, name: str, *extra: str) -> subprocess.Popen:
        secret = self.agent_keys.get(name) or self.add("agents", name)
        self.agent_keys[name] = secret
        return self.mesh.agent(name, *self.keys.args(secret), *extra)

    def embedded_agent(self, name: str) -> subprocess.Popen:
        """An application embedding the agent, with string-parameter strategies of its own."""
        secret = self.add("agents", name)
        self.agent_keys[name] = secret
        log = open(self.mesh.tmp / f"agent-{name}.log", "wb")
        proc = subprocess.Popen([sys.executable, "-m", "tests.secure_mesh", self.mesh.connect, name, str(secret),
                                 str(self.keys.server_public), str(self.state(name))],
                                cwd=ROOT, env=ENV, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.mesh.procs.append(proc)
        return proc

    def streaming_host_and_subscriber(self, ctx: zmq.Context) -> tuple[Path, Subscriber]:
        """Agent web01 up, and a subscriber 'dash' on the stream: (its secret key, it)."""
        self.agent("web01")
        self.wait_hosts("web01")
        sub_key = self.add("subscribers", "dash")
        return sub_key, Subscriber(self.keys.endpoint(self.mesh.base, sub_key), ["metric"], ctx=ctx)

    def state(self, name: str) -> Path:
        return self.mesh.tmp / f"agent-{name}"

    def operator(self, secret: Path | None = None) -> Operator:
        return Operator(self.keys, self.mesh.base, secret or self.operator_key)

    def wait_hosts(self, *names: str) -> dict:
        with self.operator() as op:
            return op.wait_hosts(*names, logs=self.mesh.logs())

    def cli(self, *args: str, key: Path | None = None) -> subprocess.CompletedProcess:
        return self.mesh.cli(*args, *self.keys.args(key or self.operator_key))

    @property
    def audit(self) -> list[dict]:
        return audit(self.mesh.tmp / "aggregator" / "audit.log")

    def agent_audit(self, name: str) -> list[dict]:
        return audit(self.state(name) / "audit.log")


@pytest.fixture
def secured(mesh):
    return Secured(mesh)


def collect(sub: Subscriber, seconds: float) -> list[dict]:
    return list(sub.events(seconds))


# ------------------------------------------------------------------ authentication
def test_unauthenticated_publishers_sentinel_never_reaches_the_stream(secured):
    """No key, an unknown key, or a key of another role: the sentinel never reaches a subscriber."""
    s = secured
    ctx = zmq.Context()
    sub_key, sub = s.streaming_host_and_subscriber(ctx)
    sentinel = f"sentinel_{uuid.uuid4().hex}"
    ingest = f"tcp://127.0.0.1:{s.mesh.base}"
    intruders = {"plain": ctx.socket(zmq.PUB),
                 "stray": curve(ctx.socket(zmq.PUB), s.keys, s.keys.stray("mallory")),
                 "subscriber": curve(ctx.socket(zmq.PUB), s.keys, sub_key),
                 "operator": curve(ctx.socket(zmq.PUB), s.keys, s.operator_key)}
    try:
        for pub in intruders.values():
            pub.linger = 0
            pub.connect(ingest)
        seen: list[dict] = []
        deadline = time.monotonic() + 3.0
        seq = 0
        while time.monotonic() < deadline:
            seq += 1
            for host in ("web01", "intruder"):
                for pub in intruders.values():
                    pub.send_multipart([wire.topic("metric", host), metric_frame(host, seq, sentinel)])
            seen.extend(collect(sub, 0.1))
        names = {e["name"] for e in seen}
        assert "cpu_percent" in names and {e["host"] for e in seen} == {"web01"}   # real metrics flow
        assert sentinel not in names
        with s.operator() as op:
            hosts = op.hosts()
            assert set(hosts) == {"web01"}
            assert op.api.history("web01", sentinel, 0) == []
    finally:
        sub.close()
        for pub in intruders.values():
            pub.close(0)
        ctx.term()


def test_an_agent_key_cannot_use_the_api(secured):
    """The api allows operators and subscribers only: an agent's key fails the handshake."""
    s = secured
    s.agent("web01")
    s.wait_hosts("web01")
    with s.operator(s.agent_keys["web01"]) as op:
        with pytest.raises(Unreachable, match="refused our key"):
            op.command("web01", "gc_collect", timeout_s=0.1)
    res = s.cli("command", "web01", "gc_collect", "--timeout", "0.1", key=s.agent_keys["web01"])
    assert res.returncode != 0 and "refused our key" in res.stderr and "Traceback" not in res.stderr
    assert not [e for e in s.agent_audit("web01") if e["event"] == "command"]
    assert not [e for e in s.audit if e.get("event") == "command" and e.get("outcome") == "sent"]


def test_a_subscriber_key_may_read_status_but_not_send_commands(secured):
    s = secured
    s.agent("web01")
    s.wait_hosts("web01")
    viewer = s.add("subscribers", "viewer")
    with s.operator(viewer) as op:
        assert "web01" in op.hosts()
        out = op.command("web01", "gc_collect", cmd_id="sub-1")
    assert out["status"] == "refused" and "forbidden" in out["error"] and "viewer" in out["error"]
    res = s.cli("command", "web01", "gc_collect", "--json", key=viewer)
    assert res.returncode != 0 and "forbidden" in res.stdout
    assert s.cli("alerts", "--json", key=viewer).returncode == 0        # the alert log is for reading ...
    res = s.cli("alerts", "ack", "1", key=viewer)                       # ... acknowledging is an operator's
    assert res.returncode == 1 and "forbidden" in res.stderr and "viewer" in res.stderr
    refused = wait_until(lambda: [e for e in s.audit if e.get("id") == "sub-1"], 5, "the refusal audited")
    assert not [e for e in s.agent_audit("web01") if e["event"] == "command"]
    assert refused and refused[0]["outcome"] == "forbidden" and refused[0]["operator"] == "viewer"


def test_an_agent_cannot_publish_metrics_or_results_in_another_hosts_name(secured):
    """web01's key speaking as web02: counted as identity_mismatch, never stored or answered."""
    s = secured
    web01, web02 = s.keys.add("agents", "web01"), s.add("agents", "web02")
    ctx = zmq.Context()
    base = s.mesh.base
    real = curve(ctx.socket(zmq.DEALER), s.keys, web02)     # web02 registers but never answers
    forger = curve(ctx.socket(zmq.DEALER), s.keys, web01)
    pub = curve(ctx.socket(zmq.PUB), s.keys, web01)
    for sock in (real, forger, pub):
        sock.linger = 0
    sentinel = f"forged_{uuid.uuid4().hex}"
    try:
        assert wait_handshake(real, f"tcp://127.0.0.1:{base + 1}")
        real.send(wire.encode("register", "web02", "boot2", 0, time.time(), {"strategies": ["gc_collect"]}))
        assert real.poll(5000) and wire.decode(real.recv()).body == {"registered": True}
        assert wait_handshake(forger, f"tcp://127.0.0.1:{base + 1}")
        assert wait_handshake(pub, f"tcp://127.0.0.1:{base}")
        time.sleep(0.3)     # the SUB's subscription reaches the PUB (not observable from this side)
        for seq in range(1, 6):
            pub.send_multipart([wire.topic("metric", "web02"), metric_frame("web02", seq, sentinel)])

        answer: dict = {}
        with s.operator() as op:
            t = threading.Thread(target=lambda: answer.update(op.command("web02", "gc_collect", cmd_id="c-7",
                                                                         timeout_s=2.0)))
            t.start()
            assert real.poll(3000)
            cmd = wire.decode(real.recv())
            assert cmd.kind == "command" and cmd.body["id"] == "c-7"
            fake = {"id": "c-7", "status": "success", "result": {"forged": True}, "error": None}
            forger.send(wire.encode("result", "web02", "boot2", 0, time.time(), fake))   # in web02's name
            forger.send(wire.encode("result", "web01", "boot1", 0, time.time(), fake))   # web01 never got c-7
            forger.send(wire.encode("register", "web02", "boot3", 0, time.time(), {}))  # hijack web02's route
            t.join(10)
            assert answer["status"] == "timeout", answer
            status = op.status()
            hosts = {h["name"]: h for h in status["hosts"]}
            assert status["bad_frame_reasons"].get("identity_mismatch", 0) >= 3, status["bad_frame_reasons"]
            assert hosts["web02"]["counters"]["batches"] == 0 and hosts["web02"]["boot"] == "boot2"
            assert op.api.history("web02", sentinel, 0) == []
        results = [e for e in s.audit if e.get("id") == "c-7" and e["event"] == "result"]
        assert [e["outcome"] for e in results] == ["timeout"]
    finally:
        for sock in (real, forger, pub):
            sock.close(0)
        ctx.term()


def test_a_removed_agent_key_is_cut_off_within_five_seconds(secured):
    s = secured
    s.agent("web01")
    s.agent("web02")
    s.wait_hosts("web01", "web02")
    with s.operator() as op:
        def unauthenticated() -> int:
            return op.status()["bad_frame_reasons"].get("unauthenticated", 0)

        before = unauthenticated()
        s.keys.remove("agents", "web01")
        removed = time.monotonic()
        # the first frame refused means the allowlist without web01 is in force
        wait_until(lambda: unauthenticated() > before, 5.0, "a frame of web01 refused")
        assert time.monotonic() - removed < 5.0
        first = op.hosts()
        # while web02 sends 15 more batches (about a second), none of web01's is accepted
        wait_until(lambda: op.hosts()["web02"]["counters"]["batches"] > first["web02"]["counters"]["batches"] + 15,
                   10, "web02 still sending")
        later = op.hosts()
        assert later["web01"]["counters"]["batches"] == first["web01"]["counters"]["batches"]
        assert later["web02"]["counters"]["batches"] > first["web02"]["counters"]["batches"] + 5
        assert unauthenticated() > 5
        # heartbeats refused too: down after its missed heartbeats (checked at 9 s before)
        wait_until(lambda: op.hosts()["web01"]["alive"] is False, 9.0 - (time.monotonic() - removed),
                   "web01 marked down")


def test_a_removed_subscriber_or_operator_key_is_cut_off_within_five_seconds(secured):
    s = secured
    ctx = zmq.Context()
    sub_key, sub = s.streaming_host_and_subscriber(ctx)
    kept = Subscriber(s.keys.endpoint(s.mesh.base, s.operator_key), ["metric"], ctx=ctx)
    bob = s.add("operators", "bob")
    try:
        assert next(sub.events(5.0), None), "the subscriber gets metrics while its key is allowed"
        with s.operator(bob) as op:
            assert "web01" in op.hosts()
            s.keys.remove("subscribers", "dash")
            s.keys.remove("operators", "bob")
            removed = time.monotonic()
            refused = wait_until(lambda: (r := op.api.request({"op": "status"})).get("status") == "error" and r,
                                 5.0, "bob's api request refused")
            assert refused["status"] == "error" and "no longer" in refused["error"]
        wait_until(log_contains(s.mesh.tmp / "aggregator.log", "stream socket rebound"),
                   5.0 - (time.monotonic() - removed), "the stream rebound within 5 s")
        rebound = time.time()
        collect(sub, 0.5)       # drain what was in flight before the rebind
        # the kept subscriber reconnects after the rebind: it receives samples taken since
        wait_until(lambda: [e for e in collect(kept, 0.2) if e.get("timestamp", 0) > rebound], 10,
                   "an allowed subscriber receiving after the stream is rebound")
        assert collect(sub, 2.0) == []   # the behaviour: for 2 s more, nothing reaches the removed key
    finally:
        sub.close()
        kept.close()
        ctx.term()


# ---------------------------------------------------------------------- fail closed
def test_an_agent_started_before_its_key_is_allowlisted_joins_once_it_is(secured):
    """Allowlists reload without restarts on either side: a refused agent retries on its own."""
    secret = secured.keys.stray("late01")              # a key pair the aggregator does not know yet
    secured.agent_keys["late01"] = secret
    secured.mesh.agent("late01", *secured.keys.args(secret))
    wait_until(log_contains(secured.mesh.tmp / "agent-late01.log", "refused our handshake"), 15,
               "the agent refused")
    with secured.operator() as op:
        assert "late01" not in op.hosts()
    (secured.keys.dir / "agents").mkdir(exist_ok=True)
    (secured.keys.dir / "agents" / "late01.key").write_bytes(secret.with_suffix(".key").read_bytes())
    hosts = secured.wait_hosts("late01")
    assert hosts["late01"]["alive"]
    assert "refused our handshake" in (secured.mesh.tmp / "agent-late01.log").read_text()


def test_the_web_page_is_read_only_unless_an_operator_key_is_configured(secured):
    """perfmesh web with a subscriber key serves the fleet but refuses commands; with
    --operator-key it sends them as that operator (audited under the operator's name)."""
    import json as _json
    import urllib.error
    import urllib.request
    secured.agent("web01")
    secured.wait_hosts("web01")
    viewer = secured.add("subscribers", "wall")

    def web(*extra: str) -> tuple[subprocess.Popen, str]:
        port = free_base_port(1)
        proc = secured.mesh.spawn("web", "--connect", secured.mesh.connect, "--listen", f"127.0.0.1:{port}",
                                  *secured.keys.args(viewer), *extra, log=f"web-{port}")
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: urllib.request.urlopen(url + "/", timeout=1).read(), 10,
                   f"the page served\n{secured.mesh.logs()}", poll_s=0.1, retry_on=(OSError,))
        return proc, url

    def post(url: str) -> tuple[int, dict]:
        """A command as the page sends it: same Origin, with the page's token."""
        page = urllib.request.urlopen(url + "/", timeout=5).read().decode()
        token = re.search(r'<meta name="perfmesh-token" content="([^"]+)"', page).group(1)
        req = urllib.request.Request(url + "/api/command", method="POST",
                                     data=_json.dumps({"host": "web01", "strategy": "gc_collect", "params": {}}).encode(),
                                     headers={"Content-Type": "application/json", "Origin": url,
                                              "X-Perfmesh-Token": token})
        try:
            with urllib.request.urlopen(req, timeout=20) as res:
                return res.status, _json.loads(res.read())
        except urllib.error.HTTPError as err:
            return err.code, _json.loads(err.read())

    _, read_only = web()
    status, body = post(read_only)
    assert status == 403 and "operator-key" in body["error"]
    _, operator = web("--operator-key", str(secured.operator_key))
    status, body = post(operator)
    assert status == 200 and body["status"] == "success", body
    sent = [e for e in secured.audit if e.get("strategy") == "gc_collect" and e.get("outcome") == "sent"]
    assert sent and sent[-1]["operator"] == "alice"


def test_binding_a_public_address_without_keys_is_refused(tmp_path):
    base = free_base_port()
    res = run_cli("aggregator", "--bind", "0.0.0.0", "--port", str(base), "--data", str(tmp_path), timeout=20)
    assert res.returncode == 1
    assert "refusing to bind 0.0.0.0 without encryption" in res.stderr and "--keys" in res.stderr
    assert "Traceback" not in res.stderr
    agent = run_cli("agent", "--connect", "192.0.2.1:7700", "--state-dir", str(tmp_path / "a"), timeout=20)
    assert agent.returncode == 1 and "refusing to connect to 192.0.2.1:7700 without encryption" in agent.stderr


def test_insecure_allows_a_public_bind_with_a_loud_warning(tmp_path):
    base = free_base_port()
    log = tmp_path / "agg.log"
    proc = subprocess.Popen([sys.executable, "-m", "workers", "aggregator", "--bind", "0.0.0.0", "--port",
                             str(base), "--data", str(tmp_path), "--insecure"], cwd=ROOT, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=open(log, "wb"))
    try:
        wait_until(lambda: proc.poll() is not None or "listening" in log.read_text(), 10, "listening")
        assert proc.poll() is None, log.read_text()
        text = log.read_text()
        assert "listening on 0.0.0.0" in text
        assert "WARNING: --insecure" in text and "unauthenticated, unencrypted" in text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(5)


def test_secret_keys_readable_by_others_or_missing_are_refused(tmp_path):
    keys = Keys(tmp_path)
    base = str(free_base_port())
    keys.server_secret.chmod(0o644)
    res = run_cli("aggregator", "--port", base, "--keys", str(keys.dir), "--data", str(tmp_path / "d"), timeout=20)
    assert res.returncode == 1 and "readable by others (mode 0644)" in res.stderr and "chmod 600" in res.stderr
    keys.server_secret.unlink()
    res = run_cli("aggregator", "--port", base, "--keys", str(keys.dir), "--data", str(tmp_path / "d"), timeout=20)
    assert res.returncode == 1 and "aggregator.key_secret" in res.stderr and "Traceback" not in res.stderr
    agent_key = keys.add("agents", "web01")
    agent_key.chmod(0o640)
    res = run_cli("agent", "--connect", f"127.0.0.1:{base}", *keys.args(agent_key),
                  "--state-dir", str(tmp_path / "a"), timeout=20)
    assert res.returncode == 1 and "readable by others (mode 0640)" in res.stderr
    res = run_cli("status", "--connect", f"127.0.0.1:{base}", "--key", str(agent_key), timeout=20)
    assert res.returncode == 2 and "--key and --server-key go together" in res.stderr


def test_keys_new_writes_a_public_key_and_a_private_secret(tmp_path):
    res = run_cli("keys", "new", "web01", "--dir", str(tmp_path / "k"))
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "k" / "web01.key").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "k" / "web01.key_secret").stat().st_mode & 0o777 == 0o600
    again = run_cli("keys", "new", "web01", "--dir", str(tmp_path / "k"))
    assert again.returncode == 1 and "refusing to overwrite" in again.stderr


def test_no_bind_when_the_authenticator_cannot_start(tmp_path):
    from workers.security import ZAP_ENDPOINT, Authenticator
    ctx = zmq.Context()
    squatter = ctx.socket(zmq.REP)
    squatter.bind(ZAP_ENDPOINT)
    try:
        auth = Authenticator(ctx, Keys(tmp_path).dir)
        with pytest.raises(ConfigError, match="authenticator did not start.*refusing to bind"):
            auth.start()
    finally:
        squatter.close(0)
        ctx.term()


def test_a_libzmq_without_curve_or_older_than_4_3_5_is_refused(monkeypatch):
    from workers import security
    monkeypatch.setattr(security.zmq, "zmq_version_info", lambda: (4, 3, 4))
    with pytest.raises(ConfigError, match="older than 4.3.5"):
        security.check_libzmq()
    monkeypatch.setattr(security.zmq, "has", lambda what: False)
    with pytest.raises(ConfigError, match="without CURVE"):
        security.check_libzmq()


# ------------------------------------------------------------------------- commands
def test_a_replayed_command_id_runs_once_and_both_audit_logs_record_it(secured):
    s = secured
    s.agent("web01")
    s.wait_hosts("web01")
    with s.operator() as op:
        first = op.command("web01", "gc_collect", {"generation": 1}, cmd_id="replay-1")
        second = op.command("web01", "gc_collect", {"generation": 1}, cmd_id="replay-1")
    assert first["status"] == "success" and "replayed" not in first
    assert second["status"] == "success" and second["replayed"] is True
    assert second["result"] == first["result"]
    wait_until(lambda: len([e for e in s.audit if e["id"] == "replay-1"]) >= 3, 5, "the replay audited")
    agent = [e for e in s.agent_audit("web01") if e["id"] == "replay-1"]
    assert [e["event"] for e in agent] == ["command", "result"]       # ran once
    assert agent[0]["strategy"] == "gc_collect" and agent[0]["params"] == {"generation": 1}
    assert agent[1]["outcome"] == "success" and isinstance(agent[1]["time"], float)
    agg = [e for e in s.audit if e["id"] == "replay-1"]
    assert [(e["event"], e["outcome"]) for e in agg] == [("command", "sent"), ("result", "success"),
                                                         ("command", "success")]
    for e in agg:
        assert e["operator"] == "alice" and e["host"] == "web01" and e["strategy"] == "gc_collect"
        assert e["params"] == {"generation": 1} and abs(e["time"] - time.time()) < 60


def test_audit_logs_are_append_only_and_private(secured):
    s = secured
    s.agent("web01")
    s.wait_hosts("web01")
    path = s.mesh.tmp / "aggregator" / "audit.log"
    with s.operator() as op:
        op.command("web01", "gc_collect")
        before = path.read_bytes()
        op.command("web01", "memory_trim")
    wait_until(lambda: any(e.get("strategy") == "memory_trim" for e in s.audit)
               and any(e.get("strategy") == "memory_trim" for e in s.agent_audit("web01")), 5, "memory_trim audited")
    assert path.read_bytes().startswith(before) and len(path.read_bytes()) > len(before)
    for p in (path, s.state("web01") / "audit.log"):
        assert p.stat().st_mode & 0o777 == 0o600


class FakeRig:
    """A fake aggregator (CURVE server) and real agents pointed at it."""

    def __init__(self, mesh) -> None:
        self.mesh = mesh
        self.keys = Keys(mesh.tmp)
        self.fake = FakeAggregator(mesh.base, self.keys)
        self.secrets: dict[str, Path] = {}

    def agent(self, name: str, *extra: str, state: str | None = None) -> subprocess.Popen:
        secret = self.secrets.get(name) or self.keys.add("agents", name)
        self.secrets[name] = secret
        args = [*self.keys.args(secret), *extra]
        if state:
            args += ["--state-dir", state]    # the later one wins over the fixture's
        proc = self.mesh.agent(name, *args)
        self.fake.expect("register", name)
        return proc

    def close(self) -> None:
        self.fake.close()


@pytest.fixture
def rig(mesh):
    r = FakeRig(mesh)
    yield r
    mesh.stop()
    r.close()


def _command(cmd_id: str, strategy: str = "gc_collect", params: dict | None = None, expires_in: float = 30.0) -> dict:
    return {"id": cmd_id, "strategy": strategy, "params": params or {}, "expires": time.time() + expires_in}


def test_expired_commands_are_refused_by_the_agent(rig):
    rig.agent("web01")
    rig.fake.command("web01", _command("old", expires_in=-1))
    out = rig.fake.result("web01", "old")
    assert out["status"] == "refused" and "expired" in out["error"]
    rig.fake.command("web01", {"id": "no-expiry", "strategy": "gc_collect", "params": {}})
    assert rig.fake.result("web01", "no-expiry")["status"] == "refused"
    for odd in (float("nan"), float("inf"), True, "tomorrow"):
        rig.fake.command("web01", {**_command(f"odd-{odd}"), "expires": odd})
        out = rig.fake.result("web01", f"odd-{odd}")
        assert out["status"] == "refused" and "expire" in out["error"], (odd, out)
    rig.fake.command("web01", _command("fresh"))
    assert rig.fake.result("web01", "fresh")["status"] == "success"
    outcomes = {e["id"]: e["outcome"] for e in audit(rig.mesh.tmp / "agent-web01" / "audit.log")
                if e["event"] == "result"}
    assert outcomes == {"old": "refused", "no-expiry": "refused", "fresh": "success",
                        **{f"odd-{o}": "refused" for o in ("nan", "inf", "True", "tomorrow")}}


def test_a_replayed_id_is_not_run_again_across_an_agent_restart(rig):
    proc = rig.agent("web01")
    rig.fake.command("web01", _command("once", params={"generation": 0}))
    first = rig.fake.result("web01", "once")
    assert first["status"] == "success" and "replayed" not in first
    proc.send_signal(signal.SIGTERM)
    proc.wait(5)
    rig.agent("web01")                  # same --state-dir (the fixture's agent-web01)
    rig.fake.command("web01", _command("once", params={"generation": 0}))
    again = rig.fake.result("web01", "once")
    assert again["replayed"] is True and again["status"] == "success" and again["result"] == first["result"]
    entries = [e for e in audit(rig.mesh.tmp / "agent-web01" / "audit.log") if e["id"] == "once"]
    assert [e["event"] for e in entries] == ["command", "result", "command", "replay"]


def test_no_commands_and_allow_are_enforced_by_the_agent_itself(rig):
    rig.agent("quiet", "--no-commands")
    rig.agent("narrow", "--allow", "gc_collect")
    registered = {e.host: e.body for e in rig.fake.inbox if e.kind == "register"}
    assert registered["quiet"]["strategies"] == [] and registered["quiet"]["commands"] is False
    assert registered["narrow"]["strategies"] == ["gc_collect"]
    rig.fake.command("quiet", _command("q1"))
    out = rig.fake.result("quiet", "q1")
    assert out["status"] == "refused" and "remote commands are disabled on host 'quiet'" in out["error"]
    rig.fake.command("narrow", _command("n1", "memory_trim"))
    out = rig.fake.result("narrow", "n1")
    assert out["status"] == "refused" and "unknown strategy 'memory_trim'" in out["error"]
    assert "available: gc_collect" in out["error"]
    rig.fake.command("narrow", _command("n2", "gc_collect"))
    assert rig.fake.result("narrow", "n2")["status"] == "success"


def test_no_commands_and_allow_through_the_aggregator(secured):
    s = secured
    s.agent("quiet", "--no-commands")
    s.agent("narrow", "--allow", "gc_collect")
    s.wait_hosts("quiet", "narrow")
    with s.operator() as op:
        out = op.command("quiet", "gc_collect")
        assert out["status"] == "refused" and "available: none" in out["error"]
        out = op.command("narrow", "process_priority", {"nice": 5})
        assert out["status"] == "refused" and "unknown strategy 'process_priority'" in out["error"]
        assert op.command("narrow", "gc_collect")["status"] == "success"


def test_a_reused_pid_is_refused_and_the_right_create_time_accepted(secured):
    s = secured
    s.agent("web01")
    s.wait_hosts("web01")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        ticks = process_start_ticks(child.pid)
        assert ticks is not None
        with s.operator() as op:
            out = op.command("web01", "process_priority", {"nice": 7, "pid": child.pid, "create_time": ticks + 1})
            assert out["status"] == "refused" and "reused" in out["error"] and "create_time" in out["error"]
            assert os.getpriority(os.PRIO_PROCESS, child.pid) == 0
            out = op.command("web01", "process_priority", {"nice": 7, "pid": child.pid})
            assert out["status"] == "refused" and "create_time" in out["error"]
            out = op.command("web01", "process_priority", {"nice": 7, "pid": 1, "create_time": 1})
            assert out["status"] == "refused" and "pid" in out["error"] and "init" in out["error"]
            out = op.command("web01", "process_priority", {"nice": 30})
            assert out["status"] == "refused" and "'nice'" in out["error"]
            out = op.command("web01", "process_priority", {"nice": 7, "pid": child.pid, "create_time": ticks})
            assert out["status"] == "success", out
            assert os.getpriority(os.PRIO_PROCESS, child.pid) == 7
    finally:
        child.kill()
        child.wait()


INJECTIONS = ["a;reboot", "a|nc", "$(id)", "`id`", "../../etc/shadow", "/etc/passwd", "a&&b", "a>b",
              "x\nrm", "it's", "a\\b"]


def test_parameter_injection_is_refused_with_a_reason_naming_the_key(secured):
    """An application's own strategies: a typed str parameter and a schema-less one (two hosts,
    so the 20-commands-a-minute host limit is not reached)."""
    s = secured
    s.embedded_agent("app01")
    s.embedded_agent("app02")
    s.wait_hosts("app01", "app02")
    with s.operator() as op:
        for bad in INJECTIONS:
            out = op.command("app01", "clear_cache", {"name": bad})
            assert out["status"] == "refused" and "parameter 'name'" in out["error"], (bad, out)
            out = op.command("app02", "flush", {"target": bad})
            assert out["status"] == "refused" and "parameter 'target'" in out["error"], (bad, out)
        out = op.command("app02", "flush", {"a;b": 1})
        assert out["status"] == "refused" and "a;b" in out["error"]
        out = op.command("app01", "clear_cache", {"name": "x" * 33})
        assert out["status"] == "refused" and "at most 32" in out["error"]
        out = op.command("app01", "clear_cache", {"name": "sessions", "shell": True})
        assert out["status"] == "refused" and "'shell' is not known" in out["error"]
        out = op.command("app01", "clear_cache", {"name": 5})
        assert out["status"] == "refused" and "parameter 'name'" in out["error"]
        out = op.command("app01", "gc_collect;id", {})
        assert out["status"] == "refused" and "unknown strategy" in out["error"]
        for host in ("app01", "app02"):
            assert not (s.state(host) / "ran.log").exists()
        assert op.command("app01", "clear_cache", {"name": "sessions"})["status"] == "success"
        assert op.command("app02", "flush", {"target": "sessions-2"})["status"] == "success"
    assert (s.state("app01") / "ran.log").read_text().splitlines() == ['{"name": "sessions"}']
    assert (s.state("app02") / "ran.log").read_text().splitlines() == ['{"target": "sessions-2"}']


def test_over_the_rate_limit_a_command_is_refused_busy_per_host_and_per_operator(secured):
    """20 commands per host and 60 per operator a minute; more get 'busy' at once, not a queue."""
    s = secured
    ctx = zmq.Context()
    base = s.mesh.base
    hosts = [f"h{i}" for i in range(4)]
    agents = []
    api = curve(ctx.socket(zmq.DEALER), s.keys, s.operator_key)
    try:
        secrets = [s.keys.add("agents", h) for h in hosts]
        for secret in secrets:      # the allowlists reload every second
            s.keys.wait_allowed(base, secret, "agents")
        for h, secret in zip(hosts, secrets):   # registered hosts that never answer: commands stay pending
            d = curve(ctx.socket(zmq.DEALER), s.keys, secret)
            d.linger = 0
            d.connect(f"tcp://127.0.0.1:{base + 1}")
            d.send(wire.encode("register", h, "b", 0, time.time(), {"strategies": ["gc_collect"]}))
            assert d.poll(5000)
            agents.append(d)
        api.linger = 0
        api.connect(f"tcp://127.0.0.1:{base + 3}")
        plan = [("h0", i) for i in range(21)] + [(h, i) for h in ("h1", "h2") for i in range(20)] + \
            [("h3", i) for i in range(3)]     # the operator's bucket refills one a second: 3 to be sure
        for h, i in plan:
            api.send(wire.encode("request", "alice", "b", 0, time.time(),
                                 {"op": "command", "id": f"{h}-{i}", "host": h, "strategy": "gc_collect",
                                  "params": {}, "timeout_s": 2}))
        replies: dict[str, dict] = {}
        deadline = time.monotonic() + 10
        while len(replies) < len(plan) and time.monotonic() < deadline:
            if api.poll(200):
                body = wire.decode(api.recv()).body
                replies[body["id"]] = body
        busy = {k: v["error"] for k, v in replies.items() if v["status"] == "busy"}
        assert len(replies) == len(plan)
        assert "h0-20" in busy and "host 'h0'" in busy["h0-20"]
        assert [k for k in busy if not k.startswith("h3-")] == ["h0-20"], busy
        assert busy.keys() - {"h0-20"} and all("operator 'alice'" in busy[k] for k in busy.keys() - {"h0-20"})
        assert {v["status"] for k, v in replies.items() if k not in busy} == {"timeout"}
        outcomes = [e["outcome"] for e in s.audit if e["event"] == "command"]
        assert outcomes.count("busy") == len(busy) and outcomes.count("sent") == len(plan) - len(busy)
    finally:
        for d in (api, *agents):
            d.close(0)
        ctx.term()
