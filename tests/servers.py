"""Real Prometheus and Alertmanager servers (Debian packages) started by a test on loopback."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tests.waiting import wait_until

PROMETHEUS = "prometheus"                    # Debian package prometheus: /usr/bin/prometheus
ALERTMANAGER = "prometheus-alertmanager"     # Debian package prometheus-alertmanager


def missing(binary: str, package: str) -> str | None:
    """Why a server test cannot run here, or None."""
    if shutil.which(binary) is None:
        return f"needs {binary} (apt-get install {package})"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str, timeout: float = 5.0):
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


def poll(fn, timeout: float, what: str, interval: float = 0.25):
    """Call ``fn`` until it returns something truthy; AssertionError naming ``what`` after ``timeout``."""
    return wait_until(fn, timeout, what, poll_s=interval, retry_on=(OSError, ValueError, urllib.error.URLError))


class Server:
    """One server process with its log in ``tmp``; stopped (and reaped) by :meth:`stop`."""

    def __init__(self, args: list[str], tmp: Path, name: str, ready_url: str) -> None:
        self.log = tmp / f"{name}.log"
        self.proc = subprocess.Popen(args, stdout=open(self.log, "wb"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.name = name
        try:
            poll(lambda: self.proc.poll() is None and urllib.request.urlopen(ready_url, timeout=2).status == 200,
                 30.0, f"{name} ready at {ready_url}")
        except AssertionError as exc:
            self.stop()
            raise AssertionError(f"{exc}\n{self.logs()}") from None

    def logs(self) -> str:
        return f"--- {self.name}\n{self.log.read_text(errors='replace')[-3000:]}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def alertmanager(tmp: Path) -> tuple[Server, str]:
    """An Alertmanager with one do-nothing receiver, clustering off; returns (server, base URL)."""
    port = free_port()
    conf = tmp / "alertmanager.yml"
    conf.write_text("route:\n  receiver: blackhole\n  group_wait: 1s\n  group_interval: 1s\n"
                    "receivers:\n  - name: blackhole\n")
    base = f"http://127.0.0.1:{port}"
    server = Server([ALERTMANAGER, f"--config.file={conf}", f"--storage.path={tmp / 'am-data'}",
                     f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                    tmp, "alertmanager", base + "/-/ready")
    return server, base


def prometheus_receiver(tmp: Path, port: int | None = None) -> tuple[Server, str]:
    """A Prometheus that scrapes nothing and takes remote write at ``/api/v1/write``, with an
    out-of-order window so backfilled (older) samples are accepted; returns (server, base URL)."""
    port = port or free_port()
    conf = tmp / "prometheus-rw.yml"
    conf.write_text("global:\n  scrape_interval: 15s\nstorage:\n  tsdb:\n    out_of_order_time_window: 10m\n")
    base = f"http://127.0.0.1:{port}"
    server = Server([PROMETHEUS, f"--config.file={conf}", f"--storage.tsdb.path={tmp / 'prom-rw-data'}",
                     f"--web.listen-address=127.0.0.1:{port}", "--web.enable-remote-write-receiver"],
                    tmp, "prometheus-rw", base + "/-/ready")
    return server, base


def query(base: str, promql: str, at: float | None = None) -> list[dict]:
    """The result of an instant query (``at``: evaluation time, default now)."""
    params = {"query": promql, **({"time": f"{at:.3f}"} if at is not None else {})}
    body = get_json(f"{base}/api/v1/query?{urllib.parse.urlencode(params)}")
    assert body["status"] == "success", body
    return body["data"]["result"]


def prometheus(tmp: Path, target: str) -> tuple[Server, str]:
    """A Prometheus scraping ``target`` (ADDR:PORT) every second; returns (server, base URL)."""
    port = free_port()
    conf = tmp / "prometheus.yml"
    conf.write_text("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    "scrape_configs:\n  - job_name: perfmesh\n    scrape_interval: 1s\n"
                    f"    static_configs:\n      - targets: ['{target}']\n")
    base = f"http://127.0.0.1:{port}"
    server = Server([PROMETHEUS, f"--config.file={conf}", f"--storage.tsdb.path={tmp / 'prom-data'}",
                     f"--web.listen-address=127.0.0.1:{port}"], tmp, "prometheus", base + "/-/ready")
    return server, base
