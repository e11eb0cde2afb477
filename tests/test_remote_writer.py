"""workers.remote_write.RemoteWriter against a scripted HTTP receiver: the spec's headers,
auth, retries with backoff on 5xx/429, permanent drops on other 4xx, shedding when full."""

from __future__ import annotations

import base64
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from perfmesh.errors import ConfigError
from perfmesh.export.remote import decode_request
from perfmesh.export.snappy import decompress
from perfmesh.model.metric import PerformanceMetric
from perfmesh.protocol.batch import BatchEncoder, parse_schema
from workers.remote_write import RemoteTarget, RemoteWriter


class Receiver:
    """Answers each POST with the next scripted status (then 204), recording what it got."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = list(statuses)
        self.requests: list[tuple[dict, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                status = receiver.statuses.pop(0) if receiver.statuses else 204
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.send_header("Content-Length", "3")
                self.end_headers()
                self.wfile.write(b"bad")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/v1/write"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def samples(self) -> list[tuple[dict, list]]:
        return [s for _, body in self.requests for s in decode_request(decompress(body))]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def batch(ts: float, value: float):
    body = BatchEncoder().encode("cpu", ts, [PerformanceMetric("cpu_percent", value, "%", ts, "cpu")])
    return parse_schema(body["schema"]), body["values"]


def wait(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


@pytest.fixture
def receiver(request):
    r = Receiver(getattr(request, "param", []))
    yield r
    r.close()


@pytest.mark.parametrize("receiver", [[500, 429]], indirect=True)
def test_retries_5xx_and_429_then_delivers_with_the_spec_headers(receiver, tmp_path):
    """A 500 and a 429 are retried (same request), then delivered with snappy/protobuf headers
    and the bearer token read from its file."""
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    w = RemoteWriter(RemoteTarget(receiver.url, bearer_token_file=str(token), min_backoff_s=0.05))
    try:
        schema, values = batch(100.0, 50.0)
        w.on_batch("web01", schema, 100.0, values, False)
        wait(lambda: w.stats().sent_samples == 1)
        s = w.stats()
        assert (s.failed_requests, s.rejected_samples, s.shed_samples, s.queue_samples) == (2, 0, 0, 0)
        assert len(receiver.requests) == 3 and len({b for _, b in receiver.requests}) == 1
        headers = receiver.requests[-1][0]
        assert headers["Content-Encoding"] == "snappy" and headers["Content-Type"] == "application/x-protobuf"
        assert headers["X-Prometheus-Remote-Write-Version"] == "0.1.0"
        assert headers["Authorization"] == "Bearer s3cret"
        assert receiver.samples()[0] == ({"__name__": "perfmesh_cpu_busy_ratio", "host": "web01"}, [(100000, 0.5)])
        assert s.url == receiver.url and s.last_error.startswith("HTTP 429")
    finally:
        w.close()


@pytest.mark.parametrize("receiver", [[400]], indirect=True)
def test_a_4xx_drops_the_request_and_counts_it_then_goes_on(receiver, tmp_path):
    """A 400 is permanent: those samples are counted as rejected; the next batch is delivered
    (basic auth from a password file)."""
    pw = tmp_path / "pw"
    pw.write_text("hunter2")
    w = RemoteWriter(RemoteTarget(receiver.url, username="pm", password_file=str(pw)))
    try:
        schema, values = batch(1.0, 10.0)
        w.on_batch("web01", schema, 1.0, values, False)
        wait(lambda: w.stats().rejected_samples == 1)
        schema, values = batch(2.0, 20.0)
        w.on_batch("web01", schema, 2.0, values, True)
        wait(lambda: w.stats().sent_samples == 1)
        assert receiver.requests[-1][0]["Authorization"] == "Basic " + base64.b64encode(b"pm:hunter2").decode()
        assert receiver.samples()[-1][1] == [(2000, 0.2)]
    finally:
        w.close()


def test_a_full_queue_sheds_the_oldest_and_counts_it():
    """While the remote is down the queue holds at most its bytes; the rest is shed and counted."""
    w = RemoteWriter(RemoteTarget("http://127.0.0.1:9/api/v1/write", max_queue_bytes=1024,
                                  timeout_s=1.0, min_backoff_s=5.0, max_backoff_s=5.0))
    try:
        for i in range(50):
            schema, values = batch(float(i), 1.0)
            w.on_batch("web01", schema, float(i), values, False)
        s = w.stats()
        assert s.queue_bytes <= 1024 and s.shed_samples >= 40 and s.shed_samples + s.queue_samples <= 50
    finally:
        w.close()


def test_targets_are_checked():
    """A bad URL or mixed auth names the value and what was expected; credentials stay out of labels."""
    with pytest.raises(ConfigError, match="expected http"):
        RemoteTarget("ftp://x/write")
    with pytest.raises(ConfigError, match="not both"):
        RemoteTarget("http://x/w", bearer_token_file="t", username="u", password_file="p")
    with pytest.raises(ConfigError, match="both a user and a password file"):
        RemoteTarget("http://x/w", username="u")
    assert RemoteTarget("https://u:p@[::1]:9/api/v1/write?x=1").safe_url == "https://[::1]:9/api/v1/write"


def test_replay_queues_the_stored_recent_past_first(tmp_path, receiver):
    """A writer started on an aggregator's state file sends the stored batches of the last
    replay_s seconds (what a SIGKILL took from its queue), oldest first."""
    from perfmesh.store.database import Store, StoreReader
    from perfmesh.store.replay import recent_batches
    store = Store(tmp_path / "perfmesh.db")
    now = time.time()
    rows = []
    for i, ts in enumerate((now - 500, now - 20, now - 10)):
        schema, values = batch(ts, 10.0 * (i + 1))
        rows.append(("web01", "boot", i + 1, schema.raw, ts, values, False))
    store.add_batches(rows)
    store.close()
    reader = StoreReader(tmp_path / "perfmesh.db")
    assert [r[2] for r in recent_batches(reader, now - 60)] == [now - 20, now - 10]
    assert [r[2] for r in recent_batches(reader, 0, limit=1)] == [now - 10]
    reader.close()
    w = RemoteWriter(RemoteTarget(receiver.url), replay_from=tmp_path / "perfmesh.db", replay_s=60.0)
    try:
        wait(lambda: w.stats().sent_samples == 2)
        assert [v for _, samples in receiver.samples() for _, v in samples] == [0.2, 0.3]
    finally:
        w.close()
    w = RemoteWriter(RemoteTarget(receiver.url), replay_from=tmp_path / "missing.db")
    w.close()
