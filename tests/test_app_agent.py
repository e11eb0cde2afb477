"""Applications join the mesh: PerformanceManager(mesh=...) as an application agent.

In-process tests talk to a fake aggregator (a SUB and a ROUTER on random loopback ports);
the multiprocess ones run a real aggregator and scripts/example_service.py.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
import zmq

from perfmesh import ConfigError, PerformanceManager
from perfmesh.protocol import wire
from perfmesh.protocol.batch import SchemaCache, batch_metrics, decode_batch

from .conftest import ROOT, free_base_port
from .waiting import wait_until

pytestmark = pytest.mark.timeout(60)


class FakeAggregator:
    """The aggregator's ingest (SUB) and control (ROUTER) sockets, bound on loopback."""

    def __init__(self) -> None:
        self.base = free_base_port()
        self.address = f"127.0.0.1:{self.base}"
        self.ctx = zmq.Context()
        self.ingest = self.ctx.socket(zmq.SUB)
        self.ingest.linger = 0
        self.ingest.subscribe(b"")
        self.ingest.bind(f"tcp://127.0.0.1:{self.base}")
        self.control = self.ctx.socket(zmq.ROUTER)
        self.control.linger = 0
        self.control.bind(f"tcp://127.0.0.1:{self.base + 1}")
        self.cache = SchemaCache()

    def control_message(self, kind: str, timeout_s: float = 10.0) -> tuple[bytes, wire.Envelope]:
        """The next control message of ``kind`` (others, such as heartbeats, are skipped)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.control.poll(100):
                route, frame = self.control.recv_multipart()
                env = wire.decode(frame)
                if env.kind == kind:
                    return route, env
        raise AssertionError(f"no {kind} message within {timeout_s}s")

    def metrics_until(self, predicate, timeout_s: float = 10.0) -> list[dict]:
        """Batches (as rows, with the envelope) until one satisfies ``predicate``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.ingest.poll(100):
                topic, frame = self.ingest.recv_multipart()
                env = wire.decode(frame)
                rows = batch_metrics(*decode_batch(env.body, self.cache))
                for row in rows:
                    row.update(host=env.host, seq=env.seq, topic=topic)
                if predicate(rows):
                    return rows
        raise AssertionError(f"no matching batch within {timeout_s}s")

    def close(self) -> None:
        self.ingest.close(0)
        self.control.close(0)
        self.ctx.term()


@pytest.fixture
def fake():
    agg = FakeAggregator()
    yield agg
    agg.close()


@pytest.fixture
def joined(fake, tmp_path):
    manager = PerformanceManager(mesh=fake.address, name="app1", mesh_interval=0.1,
                                 mesh_state_dir=str(tmp_path / "state"))
    yield manager
    manager.close()


def app_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("perfmesh-app")]


def by_name(rows: list[dict]) -> dict[str, dict]:
    return {r["name"] + json.dumps(r["labels"], sort_keys=True): r for r in rows}


# ------------------------------------------------------------------ in process

def test_the_application_api_works_without_a_mesh():
    """track_function (plain and decorator forms), contexts and response times, no sockets."""
    manager = PerformanceManager()
    plain = manager.track_function(lambda: 1, label="plain")

    @manager.track_function
    def bare():
        return 2

    assert plain() == 1 and bare() == 2 and manager.mesh_agent is None
    manager.record_response_time(4.0)
    got = {m.key: m.value for m in manager.application_metrics()}
    assert got["function_calls{function=plain}"] == 1.0 and got["response_time_ms"] == 4.0
    assert any(k.startswith("function_calls{function=") and k.endswith("bare}") for k in got)
    assert got["process_rss_mb"] > 1
    manager.close()


def test_joining_registers_with_the_engines_strategies(joined, fake):
    """The app registers under its name with the built-ins and no collectors."""
    route, env = fake.control_message("register")
    assert env.host == "app1" and route.startswith(b"app1/")
    assert "gc_collect" in env.body["strategies"] and env.body["collectors"] == []
    assert joined.mesh_agent.name == "app1" and joined.mesh_agent.running


def test_application_metrics_arrive_as_application_batches_with_a_sequence(joined, fake):
    """response_time_ms (p95 of the interval), timings and RSS travel as category application."""
    handler = joined.track_function(lambda: None, request=True, label="handler")
    with joined.performance_context("load"):
        pass
    handler()
    joined.record_response_time(7.0)
    rows = fake.metrics_until(lambda rows: any(r["name"] == "response_time_ms" for r in rows))
    got = by_name(rows)
    assert {r["category"] for r in rows} == {"application"} and {r["host"] for r in rows} == {"app1"}
    assert rows[0]["topic"] == b"metric/app1/"
    assert got['request_count{}']["value"] == 2.0
    assert 0 < got["response_time_ms{}"]["value"] <= 7.0 and got["response_time_ms{}"]["unit"] == "ms"
    assert got['function_calls{"function": "handler"}']["value"] == 1.0
    assert 'function_avg_ms{"function": "handler"}' in got
    assert got['context_calls{"context": "load"}']["value"] == 1.0
    assert got["process_rss_mb{}"]["value"] > 1
    later = fake.metrics_until(lambda rows: rows[0]["seq"] > got["request_count{}"]["seq"])
    assert "response_time_ms" not in {r["name"] for r in later}      # no requests since


def test_a_strategy_registered_after_joining_is_announced(joined, fake):
    """The agent registers again, listing it, on the next tick."""
    fake.control_message("register")
    joined.engine.register_optimization_strategy("clear_caches", lambda config: True)
    _, env = fake.control_message("register")
    assert "clear_caches" in env.body["strategies"]


def test_commands_run_the_apps_own_strategies_through_its_engine(joined, fake):
    """A command for clear_caches calls the app's function with the params; the result returns."""
    calls = []
    joined.engine.register_optimization_strategy("clear_caches", lambda config: calls.append(config) or {"cleared": 3})
    route, _ = fake.control_message("register")
    command = {"id": "c1", "strategy": "clear_caches", "params": {}, "expires": time.time() + 30}
    fake.control.send_multipart([route, wire.encode("command", "aggregator", "b", 0, time.time(), command)])
    _, env = fake.control_message("result")
    assert env.body["id"] == "c1" and env.body["status"] == "success"
    assert env.body["result"]["details"] == {"cleared": 3} and calls == [{}]


@pytest.mark.parametrize("leave", ["close", "stop_monitoring", "leave_mesh", "with"])
def test_leaving_the_mesh_stops_the_thread_and_closes_every_socket(fake, tmp_path, leave):
    """close(), stop_monitoring(), leave_mesh() and a with block all end the agent at once."""
    manager = PerformanceManager(mesh=fake.address, name="app2", mesh_interval=0.1,
                                 mesh_state_dir=str(tmp_path))
    agent = manager.mesh_agent
    fake.control_message("register")
    started = time.monotonic()
    if leave == "with":
        with manager:
            pass
    else:
        getattr(manager, leave)()
    assert time.monotonic() - started < 1.0
    assert not agent.running and app_threads() == [] and manager.mesh_agent is None
    assert agent.agent.ctx.closed
    manager.close()                                   # idempotent


def test_continuous_monitoring_and_the_mesh_stop_together(fake, tmp_path):
    """With monitoring on as well, stop_monitoring ends both threads."""
    manager = PerformanceManager(enable_continuous_monitoring=True, monitoring_interval=0.2,
                                 mesh=fake.address, name="app3", mesh_state_dir=str(tmp_path))
    assert manager.is_monitoring and manager.mesh_agent.running
    manager.stop_monitoring()
    assert not manager.is_monitoring and app_threads() == []


def test_joining_twice_is_refused_and_leaving_allows_joining_again(joined, fake, tmp_path):
    """One membership at a time; after leave_mesh the manager can join again."""
    with pytest.raises(ConfigError, match="already in the mesh as 'app1'"):
        joined.join_mesh(fake.address, name="other")
    joined.leave_mesh()
    joined.join_mesh(fake.address, name="again", state_dir=str(tmp_path / "again"))
    _, env = fake.control_message("register")
    while env.host != "again":
        _, env = fake.control_message("register")
    assert joined.mesh_agent.name == "again"


@pytest.mark.parametrize("kwargs, fragment", [
    ({"mesh": "10.1.2.3:7700"}, "refusing to connect"),
    ({"mesh": "host:notaport"}, "port 'notaport'"),
    ({"mesh": 7700}, "mesh address"),
    ({"mesh": "127.0.0.1", "name": "a/b"}, "mesh name 'a/b'"),
    ({"mesh": "127.0.0.1", "name": ""}, "mesh name"),
    ({"mesh": "127.0.0.1", "mesh_interval": 0}, "mesh_interval"),
    ({"mesh": "127.0.0.1", "mesh_keys": ("only-one",)}, "mesh_keys"),
    ({"mesh": "127.0.0.1", "mesh_keys": ("/nonexistent.key_secret", "/nonexistent.key")}, "nonexistent"),
])
def test_bad_mesh_settings_fail_at_construction_with_a_clear_error(kwargs, fragment, tmp_path):
    """Address, name, interval and keys are checked before any socket or thread exists."""
    with pytest.raises(ConfigError, match=fragment):
        PerformanceManager(mesh_state_dir=str(tmp_path), **kwargs)
    assert app_threads() == []


def test_an_insecure_remote_mesh_is_allowed_when_asked(tmp_path):
    """mesh_insecure=True connects to a non-loopback address without keys (then leaves)."""
    manager = PerformanceManager(mesh="192.0.2.1:7700", name="app4", mesh_insecure=True,
                                 mesh_state_dir=str(tmp_path))
    assert manager.mesh_agent.config.endpoint.insecure
    manager.close()
    assert app_threads() == []


def test_curve_keys_are_loaded_into_the_endpoint(tmp_path):
    """mesh_keys=(secret, server public) gives the endpoint CURVE client keys."""
    from workers.app_agent import app_endpoint
    from workers.security import new_keypair

    _, secret = new_keypair("app", tmp_path / "app")
    server_public, _ = new_keypair("aggregator", tmp_path / "server")
    endpoint = app_endpoint("192.0.2.1:7700", (secret, server_public))
    assert endpoint.keys.server_public == server_public.read_bytes().split(b'"')[1]
    assert endpoint.base_port == 7700 and endpoint.host == "192.0.2.1"


def test_an_agent_that_cannot_start_raises_in_the_caller(tmp_path):
    """A failure inside the agent's thread (its state dir is a file) reaches the constructor."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSError):
        PerformanceManager(mesh="127.0.0.1:7700", name="app5", mesh_state_dir=str(blocker / "sub"))
    assert app_threads() == []


# ------------------------------------------------------------------ real processes

class Service:
    """scripts/example_service.py as a subprocess in the mesh."""

    def __init__(self, mesh, name: str = "api-server") -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "example_service.py"), "--port", "0",
             "--mesh", mesh.connect, "--name", name, "--interval", "0.2",
             "--state-dir", str(mesh.tmp / f"app-{name}")],
            stdout=subprocess.PIPE, stderr=open(mesh.tmp / f"{name}.log", "wb"), text=True, cwd=ROOT)
        mesh.procs.append(self.proc)
        line = self.proc.stdout.readline()
        assert line.startswith("listening on http://"), line
        self.url = line.split()[2].rstrip(",")

    def get(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=10) as resp:
            body = resp.read().decode()
        return json.loads(body) if resp.headers["Content-Type"] == "application/json" else body

    def traffic(self, stop: threading.Event) -> threading.Thread:
        def run():
            i = 0
            while not stop.is_set():
                self.get(f"/item/{i % 7}")
                i += 1
                time.sleep(0.02)    # pacing: steady traffic, not a burst
        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t


def wait_registered(mesh, name: str, strategy: str, timeout_s: float = 15.0) -> dict:
    def registered() -> dict | None:
        host = next((h for h in mesh.status()["hosts"] if h["name"] == name), None)
        return host if host and host["alive"] and strategy in host["info"].get("strategies", []) else None
    try:
        return wait_until(registered, timeout_s, f"{name} registering {strategy}", poll_s=0.1)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{mesh.logs()}") from None


@pytest.fixture
def service(mesh):
    """An aggregator and the example service, registered with its clear_caches strategy."""
    mesh.aggregator()
    started = Service(mesh)
    wait_registered(mesh, "api-server", "clear_caches")
    return started


def events(res: subprocess.CompletedProcess) -> list[dict]:
    assert res.returncode == 0, res.stderr
    return [json.loads(line) for line in res.stdout.splitlines()]


@pytest.mark.multiprocess
@pytest.mark.timeout(120)
def test_example_service_metrics_and_budget_violation_reach_the_stream(mesh):
    """Its response_time_ms and function timings are on the stream; a response_time_ms
    budget fires a violation for the app host."""
    mesh.aggregator("--budget", "response_time_ms=0.0001")
    service = Service(mesh)
    wait_registered(mesh, "api-server", "clear_caches")
    watcher = mesh.subscribe_bg("--host", "api-server", "--type", "violation", "--count", "1",
                                "--timeout", "20")      # before any request: it fires once
    stop = threading.Event()
    service.traffic(stop)
    try:
        got = events(mesh.cli("subscribe", "--host", "api-server", "--json", "--type", "metric",
                              "--count", "80", "--timeout", "20"))
        out, _ = watcher.communicate(timeout=25)
    finally:
        stop.set()
    violations = [json.loads(line) for line in out.splitlines()]
    assert {e["host"] for e in got} == {"api-server"} and {e["category"] for e in got} == {"application"}
    rt = [e for e in got if e["name"] == "response_time_ms"]
    assert rt and all(e["value"] > 0 and e["unit"] == "ms" and e["labels"] == {} for e in rt)
    avg = [e for e in got if e["name"] == "function_avg_ms"]
    assert avg and avg[0]["labels"] == {"function": "handle"} and avg[0]["value"] > 0
    assert any(e["name"] == "context_avg_ms" and e["labels"] == {"context": "compute"} for e in got)
    v = violations[0]
    assert v["type"] == "violation" and v["host"] == "api-server" and v["metric"] == "response_time_ms"
    assert v["limit"] == 0.0001 and v["value"] > 0.0001
    host = next(h for h in mesh.status()["hosts"] if h["name"] == "api-server")
    assert "response_time_ms" in [x["metric"] for x in host["budget_violations"]]


@pytest.mark.multiprocess
@pytest.mark.timeout(120)
def test_command_clear_caches_really_clears_the_services_cache(mesh, service):
    """`perfmesh command api-server clear_caches` runs the app's strategy: its cache empties."""
    for key in ("a", "b", "c"):
        service.get(f"/item/{key}")
    assert service.get("/cache") == {"size": 3, "clears": 0}
    res = mesh.cli("command", "api-server", "clear_caches", "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    out = json.loads(res.stdout)
    assert out["status"] == "success" and out["host"] == "api-server"
    assert out["result"]["details"] == {"cleared_entries": 3}
    assert out["result"]["before"] == {"cache_entries": 3.0} and out["result"]["after"] == {"cache_entries": 0.0}
    assert service.get("/cache") == {"size": 0, "clears": 1}
    builtin = mesh.cli("command", "api-server", "gc_collect", "--json")
    assert builtin.returncode == 0 and json.loads(builtin.stdout)["status"] == "success"


@pytest.mark.multiprocess
@pytest.mark.timeout(120)
def test_the_service_exits_promptly_and_cleanly_on_sigterm(mesh, service):
    """SIGTERM: exit code 0 within 2 s, nothing on stderr."""
    service.get("/item/x")
    started = time.monotonic()
    service.proc.send_signal(signal.SIGTERM)
    assert service.proc.wait(5) == 0
    assert time.monotonic() - started < 2.0
    assert (mesh.tmp / "api-server.log").read_text() == ""


@pytest.mark.multiprocess
@pytest.mark.timeout(60)
def test_a_program_that_never_closes_its_manager_still_exits_promptly(mesh):
    """Interpreter exit leaves the mesh (atexit): the program ends at once, without errors."""
    mesh.aggregator()
    code = ("import time\nfrom perfmesh import PerformanceManager\n"
            f"m = PerformanceManager(mesh={mesh.connect!r}, name='script', mesh_interval=0.1,"
            f" mesh_state_dir={str(mesh.tmp / 'script')!r})\n"
            "m.record_response_time(3.0)\ntime.sleep(0.5)\nprint('done', flush=True)\n")
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30, cwd=ROOT)
    assert proc.returncode == 0 and proc.stdout == "done\n" and proc.stderr == "", proc.stderr
    assert time.monotonic() - started < 10
    host = next(h for h in mesh.status()["hosts"] if h["name"] == "script")
    assert host["counters"]["batches"] >= 1
