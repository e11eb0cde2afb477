"""Hostile input through authenticated peers: 100,000+ random, truncated, oversized, deeply
nested and mistyped frames to the aggregator (ingest and control) and to an agent (control).

No crash, valid traffic keeps flowing, memory stays flat, and every reject is counted: each
frame of the counted corpus is one that a local copy of the receiver's checks calls certainly
invalid (frames that might be valid are set aside), so the receiver's bad-frame counter must
grow by exactly the number sent.
"""

from __future__ import annotations

import json
import math
import random
import struct
import time
from typing import Any, Callable

import pytest
import zmq
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from perfmesh.protocol import wire
from perfmesh.protocol.batch import SchemaCache, decode_batch, make_body
from perfmesh.errors import WireError
from tests.conftest import coverage_paused, run_cli
from tests.waiting import wait_until
from tests.secure_mesh import FakeAggregator, Keys, Operator, curve, rss_kb, wait_handshake

pytestmark = [pytest.mark.multiprocess, pytest.mark.timeout(120)]

FRAMES = 100_000
WARMUP = 20_000                               # the allocator's high-water mark is reached by then
CHUNK = 10_000
RSS_GROWTH_KB = 5 * 1024
ME = "fuzz"                                   # the authenticated fuzzing agent's key name

# ----------------------------------------------------------------------- the corpus
scalars = (st.none() | st.booleans() | st.integers(min_value=-(2 ** 63), max_value=2 ** 64 - 1)
           | st.floats() | st.text(max_size=24) | st.binary(max_size=24))
values = st.recursive(scalars, lambda kids: st.lists(kids, max_size=6)
                      | st.dictionaries(st.text(max_size=8) | st.binary(max_size=4), kids, max_size=6),
                      max_leaves=12)


def hypothesis_templates(n: int) -> list[Any]:
    """``n`` msgpack-able structures drawn by hypothesis (deterministic)."""
    out: list[Any] = []

    @settings(max_examples=n, database=None, derandomize=True, phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(values)
    def draw(v: Any) -> None:
        out.append(v)

    draw()
    return out


def nested(depth: int, rng: random.Random) -> bytes:
    """A msgpack value nested ``depth`` levels deep, built as bytes (no recursion)."""
    if rng.random() < 0.5:
        return b"\x91" * depth + b"\xc0"                  # [[[...nil...]]]
    return b"\x81\xa1k" * depth + b"\x01"                 # {"k": {"k": ... 1}}


def envelope(kind: str, host: str, body: Any, seq: int = 1, **override: Any) -> dict:
    env = {"v": 1, "kind": kind, "host": host, "boot": "b", "seq": seq, "time": time.time(), "body": body}
    env.update(override)
    return env


def batch_body(rng: random.Random) -> dict:
    names = [f"m{i}" for i in range(rng.randint(1, 5))]
    schema = wire.pack([rng.choice(["cpu", "memory", "io", "application"]), [[n, "", {}] for n in names]])
    return make_body(schema, time.time(), [rng.random() for _ in names])


class Corpus:
    """Mutates hypothesis templates and valid envelopes with a seeded Random."""

    def __init__(self, seed: int, templates: list[Any]) -> None:
        self.rng = random.Random(seed)
        self.t = templates

    def template(self) -> Any:
        return self.rng.choice(self.t)

    def valid(self, kind: str, host: str) -> bytes:
        body = batch_body(self.rng) if kind == "metrics" else {"id": "x", "strategy": "gc_collect"}
        return wire.pack(envelope(kind, host, body, seq=self.rng.randint(0, 1 << 40)))

    def mutate(self, good: bytes) -> bytes:
        r, b = self.rng, bytearray(good)
        op = r.randrange(6)
        if op == 0:
            return bytes(b[: r.randrange(len(b))])                                 # truncated
        if op == 1:
            for _ in range(r.randint(1, 4)):
                b[r.randrange(len(b))] = r.randrange(256)                          # flipped
            return bytes(b)
        if op == 2:
            at = r.randrange(len(b))
            return bytes(b[:at] + r.randbytes(r.randint(1, 16)) + b[at:])          # inserted
        if op == 3:
            at = r.randrange(len(b))
            return bytes(b[:at] + b[at + r.randint(1, 8):])                        # deleted
        if op == 4:
            return good + r.randbytes(r.randint(1, 8))                             # trailing data
        return bytes(b[: r.randrange(len(b))]) + r.randbytes(r.randint(0, 32))     # spliced

    def frame(self, kinds: list[str], host: str) -> bytes:
        """One frame: mostly hostile, sometimes (by chance) acceptable — the classifier decides."""
        r = self.rng
        pick = r.random()
        if pick < 0.12:
            return r.randbytes(r.randint(0, 300))                                  # raw bytes
        if pick < 0.24:
            return wire.pack(self.template())                                      # any structure
        if pick < 0.50:
            return self.mutate(self.valid(r.choice(kinds), host))
        if pick < 0.70:                                                            # mistyped field
            env = envelope(r.choice(kinds), host, batch_body(r))
            key = r.choice(sorted(env))
            env[key] = self.template()
            if r.random() < 0.2:
                env.pop(key)
            if r.random() < 0.1:
                env["extra"] = 1
            return wire.pack(env)
        if pick < 0.85:                                                            # hostile body
            return wire.pack(envelope(r.choice(kinds), host, self.body()))
        if pick < 0.90:                                                            # deeply nested
            depth = r.choice([64, 500, 1000, 2000, 100_000])
            if r.random() < 0.5:
                return nested(depth, r)
            head = wire.pack(envelope(r.choice(kinds), host, None))
            return head[:-1] + nested(depth, r)        # the body (the last key) becomes the nest
        if pick < 0.96:                                                            # oversized
            return self.oversized(kinds, host)
        return self.ext()

    def body(self) -> Any:
        r = self.rng
        b = batch_body(r)
        choice = r.randrange(6)
        if choice == 0:
            return self.template()
        if choice == 1:
            b["values"] = r.randbytes(r.randint(0, 64))
        elif choice == 2:
            b["values"] = struct.pack("<d", r.choice([math.nan, math.inf, -math.inf])) * (len(b["values"]) // 8)
        elif choice == 3:
            b["schema"] = self.mutate(b["schema"])
        elif choice == 4:
            b["ts"] = r.choice([math.nan, math.inf, "now", None, [1], 2 ** 64 - 1])
        else:
            b[r.choice(["schema", "values", "ts"])] = self.template()
        return b

    def oversized(self, kinds: list[str], host: str) -> bytes:
        r = self.rng
        choice = r.randrange(5)
        if choice == 0:
            return wire.pack(envelope(r.choice(kinds), host, "x" * (wire.MAX_STR_LEN + r.randint(1, 100))))
        if choice == 1:
            return wire.pack(envelope(r.choice(kinds), host, [0] * (wire.MAX_CONTAINER_LEN + 1)))
        if choice == 2:
            return b"\xdd\xff\xff\xff\xff" + r.randbytes(8)                     # claims 4G elements
        if choice == 3:
            return wire.pack(envelope(r.choice(kinds), "h" * (wire.MAX_NAME_LEN + 1), 1))
        big = r.random()        # frames of 100s of kB are few: each makes the allocator's high-water mark jump
        if big < 0.03:          # over MAX_FRAME_BYTES, under the sockets' MAXMSGSIZE
            return b"\xc4" + r.randbytes(wire.MAX_FRAME_BYTES + r.randint(1, 2000))
        if big < 0.1:           # a schema over MAX_SCHEMA_BYTES
            return wire.pack(envelope(r.choice(kinds), host, {"schema": b"\x00" * (300 * 1024), "ts": 1.0, "values": b""}))
        return wire.pack(envelope(r.choice(kinds), host, {"schema": r.randbytes(r.randint(1, 60_000)), "ts": 1.0,
                                                          "values": b""}))

    def ext(self) -> bytes:
        r = self.rng
        return r.choice([b"\xd4\x01\x00", b"\xd6\xff\x00\x00\x00\x01", b"\xc7\x05\x02hello",
                         b"\x81\xa1k\xd4\x05\x00", wire.pack(envelope("metrics", ME, None))[:-1] + b"\xd4\x01\x00"])


# ------------------------------------------------------- what the receivers would count
def aggregator_ingest_rejects(parts: list[bytes]) -> bool:
    """True when the aggregator's ingest certainly counts this message as a bad frame."""
    if len(parts) != 2:
        return True
    try:
        env = wire.decode(parts[1])
    except WireError:
        return True
    if env.host != ME or env.kind != "metrics":
        return True                                   # identity_mismatch / bad_kind
    try:
        decode_batch(env.body, SchemaCache())
    except WireError:
        return True
    return False


def aggregator_control_rejects(parts: list[bytes]) -> bool:
    if len(parts) != 1:
        return True                                   # [route, *parts] is not two frames
    try:
        env = wire.decode(parts[0])
    except WireError:
        return True
    if env.host != ME:
        return True
    if env.kind == "result":
        return not (isinstance(env.body, dict) and type(env.body.get("id")) is str)
    return env.kind not in ("register", "heartbeat", "metrics", "reply")


def agent_control_rejects(frame: bytes) -> bool | None:
    """True: counted as a bad control frame; False: might be acted on; None: never sent
    (a backfill request would be answered, not counted)."""
    try:
        env = wire.decode(frame)
    except WireError:
        return True
    if env.kind == "command":
        body = env.body
        return not (isinstance(body, dict) and type(body.get("id")) is str and len(body["id"]) <= 128)
    if env.kind == "backfill":
        return None
    return env.kind not in ("heartbeat", "reply")


def build(n: int, seed: int, make: Callable[[Corpus], list[bytes]], rejects: Callable[[list[bytes]], bool | None],
          templates: list[Any]) -> tuple[list[list[bytes]], list[list[bytes]]]:
    """(certainly invalid messages, maybe-valid ones set aside), ``n`` invalid ones."""
    corpus = Corpus(seed, templates)
    bad: list[list[bytes]] = []
    aside: list[list[bytes]] = []
    while len(bad) < n:
        parts = make(corpus)
        verdict = rejects(parts)
        (bad if verdict else aside).append(parts)
    return bad, aside


@pytest.fixture(scope="module")
def templates() -> list[Any]:
    with coverage_paused():     # hypothesis drawing inputs: none of our code runs, a tracer only slows it
        return hypothesis_templates(1500)


# ------------------------------------------------------------------------ aggregator
def ingest_message(c: Corpus) -> list[bytes]:
    r = c.rng
    topic = wire.topic("metric", r.choice([ME, "web01", "x"])) if r.random() < 0.9 else r.randbytes(r.randint(0, 40))
    host = ME if r.random() < 0.8 else r.choice(["web01", "other", ""])
    frame = c.frame(["metrics"] * 8 + ["heartbeat", "result", "register", "event"], host)
    n = r.random()
    if n < 0.02:
        return [frame]
    if n < 0.04:
        return [topic, frame, c.frame(["metrics"], host)]
    return [topic, frame]


def control_message(c: Corpus) -> list[bytes]:
    r = c.rng
    host = ME if r.random() < 0.8 else r.choice(["web01", "other"])
    frame = c.frame(["register", "heartbeat", "result", "command", "request", "event", "backfill"], host)
    if r.random() < 0.03:
        return [frame, frame]
    return [frame]


def hostile_registers(c: Corpus) -> list[bytes]:
    """Registrations in our own name whose info is hostile: accepted, and must not break status."""
    r = c.rng
    deep: Any = 1
    for _ in range(1000):
        deep = [deep]
    info = {"platform": r.choice([deep, c.template(), b"\xff\xfe", {b"k": 1}, math.nan]),
            "python": c.template(), "strategies": c.template(), "collectors": c.template(),
            "cpu_count": c.template(), "interval_s": r.choice([math.inf, -1, "1"])}
    return [wire.pack(envelope("register", ME, info))]


def send_all(sock: zmq.Socket, messages: list[list[bytes]], drain: zmq.Socket | None = None) -> None:
    """In steps of 1,000 with a short pause, so the receiver's queue stays short (memory is
    then what handling frames leaves behind, not a queue's high-water mark)."""
    for i, parts in enumerate(messages):
        sock.send_multipart(parts)
        if i % 1000 == 999:
            time.sleep(0.03)
        if drain is not None and i % 500 == 0:
            while drain.poll(0):
                drain.recv_multipart()


def settled_rss_kb(pid: int) -> int:
    """The lowest of a few RSS samples over a second: a leak shows in every one, a transient
    buffer (a burst of large frames just freed) in one at most."""
    samples = []
    for _ in range(10):
        samples.append(rss_kb(pid))
        time.sleep(0.2)     # the measurement: samples spread over a second
    return min(samples)


def wait_for(fn: Callable[[], Any], want: Callable[[Any], bool], timeout_s: float) -> Any:
    """``fn()``'s last value, polled until ``want(value)`` or ``timeout_s``: the caller's
    assertion then says what was wrong."""
    seen: list[Any] = []
    try:
        wait_until(lambda: want(seen.append(fn()) or seen[-1]), timeout_s, poll_s=0.1)
    except AssertionError:
        pass
    return seen[-1]


def test_aggregator_survives_100k_hostile_frames_counts_each_and_keeps_flowing(mesh, templates):
    keys = Keys(mesh.tmp)
    op_key, agent_key, fuzz_key = (keys.add("operators", "alice"), keys.add("agents", "web01"),
                                   keys.add("agents", ME))
    aggregator = mesh.aggregator("--keys", str(keys.dir), traced=False)    # its RSS is measured
    mesh.agent("web01", *keys.args(agent_key))
    t0 = time.monotonic()
    ingest_bad, ingest_aside = build(FRAMES * 6 // 10, 1, ingest_message, aggregator_ingest_rejects, templates)
    control_bad, control_aside = build(FRAMES * 4 // 10, 2, control_message, aggregator_control_rejects, templates)
    registers = [hostile_registers(Corpus(i, templates)) for i in range(50)]
    built_s = time.monotonic() - t0
    assert len(ingest_bad) + len(control_bad) >= FRAMES
    assert len(ingest_aside) + len(control_aside) < FRAMES // 5      # the corpus is mostly hostile

    ctx = zmq.Context()
    pub = curve(ctx.socket(zmq.PUB), keys, fuzz_key)
    dealer = curve(ctx.socket(zmq.DEALER), keys, fuzz_key)
    for s in (pub, dealer):
        s.linger, s.sndhwm = 0, 0
    with Operator(keys, mesh.base, op_key) as op:
        try:
            op.wait_hosts("web01", logs=mesh.logs())
            assert wait_handshake(pub, f"tcp://127.0.0.1:{mesh.base}")
            assert wait_handshake(dealer, f"tcp://127.0.0.1:{mesh.base + 1}")
            time.sleep(0.5)     # the aggregator's subscription reaches our PUB (not observable here)
            start = op.status()["counters"]["bad_frames"]

            # chunks of 10,000, each sent at full speed and then counted: memory is measured
            # between the same kind of moment (after the warm-up chunk, after the last one)
            total = len(ingest_bad) + len(control_bad)
            chunks = total // CHUNK
            sent = 0
            rss_warm = batches_warm = 0
            for n in range(chunks):
                i_part = ingest_bad[n * len(ingest_bad) // chunks:(n + 1) * len(ingest_bad) // chunks]
                c_part = control_bad[n * len(control_bad) // chunks:(n + 1) * len(control_bad) // chunks]
                send_all(pub, i_part)
                send_all(dealer, c_part + (registers if n == chunks // 2 else []), drain=dealer)
                sent += len(i_part) + len(c_part)
                bad = wait_for(lambda: op.status()["counters"]["bad_frames"], lambda v: v >= start + sent, 20)
                if n == WARMUP // CHUNK - 1:
                    rss_warm = settled_rss_kb(aggregator.pid)
                    batches_warm = op.hosts()["web01"]["counters"]["batches"]
            assert sent == total
            time.sleep(1.0)     # the behaviour: nothing more is counted during a second
            status = op.status()
            assert aggregator.poll() is None, mesh.logs()
            assert status["counters"]["bad_frames"] - start == total == bad - start, (
                f"counted {status['counters']['bad_frames'] - start} of {total}: {status['bad_frame_reasons']}")
            reasons = status["bad_frame_reasons"]
            for reason in ("undecodable", "identity_mismatch", "bad_schema", "too_large", "bad_body", "frame_count"):
                assert reasons.get(reason, 0) > 0, reasons

            hosts = {h["name"]: h for h in status["hosts"]}
            assert hosts["web01"]["alive"] and hosts["web01"]["counters"]["batches"] > batches_warm + 5
            assert hosts["web01"]["counters"]["bad_frames"] == 0
            later = wait_for(lambda: op.hosts()["web01"]["counters"]["batches"],
                             lambda v: v > hosts["web01"]["counters"]["batches"] + 3, 5)
            assert later > hosts["web01"]["counters"]["batches"] + 3       # still flowing
            assert op.command("web01", "gc_collect")["status"] == "success"
            res = run_cli("status", "--json", "--connect", mesh.connect, *keys.args(op_key))
            assert res.returncode == 0, res.stderr
            assert "web01" in {h["name"] for h in json.loads(res.stdout)["hosts"]}

            growth = settled_rss_kb(aggregator.pid) - rss_warm
            assert growth < RSS_GROWTH_KB, f"aggregator RSS grew {growth} kB"
            print(f"corpus built in {built_s:.1f}s; {total} frames counted; RSS +{growth} kB; {reasons}")
        finally:
            pub.close(0)
            dealer.close(0)
            ctx.term()


# ------------------------------------------------------------------------------ agent
def agent_message(c: Corpus) -> list[bytes]:
    r = c.rng
    frame = c.frame(["command"] * 4 + ["metrics", "register", "result", "request", "event", "heartbeat"],
                    r.choice(["aggregator", "x"]))
    return [frame] if r.random() < 0.97 else [frame, c.frame(["command"], "aggregator")]


def agent_rejects(parts: list[bytes]) -> bool | None:
    verdicts = [agent_control_rejects(p) for p in parts]
    if None in verdicts:
        return None
    return all(verdicts)


def latest_counters(fake: FakeAggregator, host: str) -> dict:
    return fake.expect("heartbeat", host, 5).body["counters"]


def test_agent_survives_100k_hostile_control_frames_counts_each_and_keeps_sending(mesh, templates):
    keys = Keys(mesh.tmp)
    fake = FakeAggregator(mesh.base, keys)
    try:
        agent = mesh.agent("web01", *keys.args(keys.add("agents", "web01")), traced=False)   # its RSS is measured
        fake.expect("register", "web01")
        t0 = time.monotonic()
        bad, aside = build(FRAMES, 3, agent_message, lambda p: bool(agent_rejects(p)), templates)
        built_s = time.monotonic() - t0
        frames = sum(len(m) for m in bad)
        assert len(aside) < FRAMES // 5
        start = latest_counters(fake, "web01")["bad_control_frames"]
        assert fake.metrics(1.0), "the agent's metrics arrive before the fuzz"

        def send(messages: list[list[bytes]]) -> None:
            """In steps of 1,000 with a pause, so the agent's inbound queue stays short: what is
            measured is what handling a frame leaves behind, not a queue's high-water mark."""
            for i in range(0, len(messages), 1000):
                for parts in messages[i:i + 1000]:
                    fake.send("web01", *parts)
                fake.metrics(0.1)

        send(bad[:WARMUP])
        warm = sum(len(m) for m in bad[:WARMUP])
        wait_for(lambda: latest_counters(fake, "web01")["bad_control_frames"], lambda v: v >= start + warm, 20)
        rss_warm = settled_rss_kb(agent.pid)
        send(bad[WARMUP:])
        counted = wait_for(lambda: latest_counters(fake, "web01")["bad_control_frames"],
                           lambda v: v >= start + frames, 40)
        time.sleep(1.0)     # the behaviour: nothing more is counted during a second
        counters = latest_counters(fake, "web01")
        assert agent.poll() is None, mesh.logs()
        assert counters["bad_control_frames"] - start == frames == counted - start, counters
        assert counters["commands_run"] == 0 and counters["commands_refused"] == 0
        assert not [e for e in fake.inbox if e.kind == "result"]
        got = fake.metrics(2.0)
        assert len(got) > 10 and {e.host for e in got} == {"web01"}      # still sending
        fake.command("web01", {"id": "after", "strategy": "gc_collect", "params": {}, "expires": time.time() + 30})
        assert fake.result("web01", "after")["status"] == "success"
        growth = settled_rss_kb(agent.pid) - rss_warm
        assert growth < RSS_GROWTH_KB, f"agent RSS grew {growth} kB"
        print(f"corpus built in {built_s:.1f}s; {frames} frames counted; RSS +{growth} kB")
    finally:
        mesh.stop()
        fake.close()


def test_hostile_commands_with_valid_ids_are_each_answered_and_audited(mesh, templates):
    """Commands the agent must act on (string id) with hostile strategy/params/expiry: every one
    gets exactly one refused (or, for harmless valid ones, success) result; nothing is lost."""
    keys = Keys(mesh.tmp)
    fake = FakeAggregator(mesh.base, keys)
    try:
        agent = mesh.agent("web01", *keys.args(keys.add("agents", "web01")))
        fake.expect("register", "web01")
        c = Corpus(4, templates)
        r = c.rng
        deep: Any = 0
        for _ in range(800):
            deep = [deep]
        sent = {}
        for i in range(300):
            params = r.choice([c.template(), {"generation": c.template()}, {b"bytes-key": 1}, {"pid": deep},
                               {"nice": 5, "pid": 1, "create_time": c.template()}, [1, 2], None, {"x" * 70: 1}])
            body = {"id": f"h{i}", "strategy": r.choice(["gc_collect", "process_priority", "memory_trim",
                                                          "cpu_affinity", c.template()]),
                    "params": params, "expires": r.choice([time.time() + 30, time.time() + 30, c.template()])}
            if r.random() < 0.1:
                body.pop(r.choice(["strategy", "params", "expires"]))
            sent[body["id"]] = body
            fake.command("web01", body)
        results = {}
        deadline = time.monotonic() + 30
        while len(results) < len(sent) and time.monotonic() < deadline:
            try:
                env = fake.expect("result", "web01", max(0.1, deadline - time.monotonic()))
            except AssertionError:
                break
            results[env.body["id"]] = env.body
        missing = sorted(set(sent) - set(results))
        assert not missing, f"never answered: {[sent[m] for m in missing][:5]!r:.2000}\n{mesh.logs()}"
        assert set(results) == set(sent), f"{len(set(sent) - set(results))} commands never answered; {mesh.logs()}"
        for cmd_id, out in results.items():
            assert out["status"] in ("refused", "success", "failed"), out
            if out["status"] == "refused":
                assert out["error"], out
        assert agent.poll() is None
        audit_path = mesh.tmp / "agent-web01" / "audit.log"
        entries = [json.loads(line) for line in audit_path.read_text().splitlines()]
        assert {e["id"] for e in entries if e["event"] == "result"} == set(sent)
    finally:
        mesh.stop()
        fake.close()
