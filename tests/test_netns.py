"""The mesh across hosts: an aggregator and two agents in separate network namespaces."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from workers.cli.up import stop_processes
from tests.conftest import ROOT, free_base_port
from tests.netns import Topology, netns_unavailable
from tests.waiting import wait_until

REASON = netns_unavailable()
pytestmark = [pytest.mark.multiprocess, pytest.mark.netns, pytest.mark.timeout(120),
              pytest.mark.skipif(REASON is not None, reason=str(REASON))]


def perfmesh_in(topo: Topology, where: str, *args: str) -> list[str]:
    return [*topo.exec_prefix(where), sys.executable, "-m", "workers", *args]


def test_metrics_and_commands_cross_namespaces(tmp_path):
    ENV = {**os.environ, "PYTHONPATH": str(ROOT)}   # carries the test's own XDG_STATE_HOME
    base = free_base_port()
    procs: list[subprocess.Popen] = []
    with Topology(["east", "west"]) as topo:
        try:
            procs.append(subprocess.Popen(perfmesh_in(topo, "hub", "aggregator", "--bind", "0.0.0.0",
                                                      "--port", str(base), "--insecure"),
                                          env=ENV, cwd=ROOT, stdout=open(tmp_path / "agg.log", "wb"),
                                          stderr=subprocess.STDOUT))
            for leaf in ("east", "west"):
                procs.append(subprocess.Popen(
                    perfmesh_in(topo, leaf, "agent", "--connect", f"{topo.hub_addr[leaf]}:{base}",
                                "--name", f"{leaf}01", "--interval", "0.2", "--insecure"),
                    env=ENV, cwd=ROOT, stdout=open(tmp_path / f"{leaf}.log", "wb"), stderr=subprocess.STDOUT))

            def cli(*args: str) -> subprocess.CompletedProcess:
                return subprocess.run(perfmesh_in(topo, "hub", *args, "--connect", f"127.0.0.1:{base}"),
                                      env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=30)

            hosts: dict = {}

            def streaming() -> bool:
                res = cli("status", "--json")
                if res.returncode == 0:
                    hosts.clear()
                    hosts.update({h["name"]: h for h in json.loads(res.stdout)["hosts"]})
                return all(hosts.get(n, {}).get("counters", {}).get("batches", 0) > 5 for n in ("east01", "west01"))
            try:
                wait_until(streaming, 20, "both hosts streaming", poll_s=0.3)
            except AssertionError:
                pass        # the assertion below says what is missing, with the logs
            logs = "".join(p.read_text() for p in tmp_path.glob("*.log"))
            assert set(hosts) == {"east01", "west01"}, logs
            got = cli("subscribe", "--type", "metric", "--json", "--count", "400")
            seen = {(e["host"], e["category"]) for e in map(json.loads, got.stdout.splitlines())}
            assert {("east01", "cpu"), ("west01", "memory"), ("east01", "io"), ("west01", "io")} <= seen
            for host in ("east01", "west01"):
                res = cli("command", host, "gc_collect", "--json")
                assert res.returncode == 0, res.stdout + res.stderr
                assert json.loads(res.stdout)["status"] == "success"
        finally:
            stop_processes(procs)
