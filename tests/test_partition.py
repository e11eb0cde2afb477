"""A 30 s network partition between an agent's namespace and the aggregator's (downed veth)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from workers.cli.up import stop_processes
from tests.conftest import ROOT, free_base_port
from tests.netns import Topology, netns_unavailable
from tests.test_reliability import check_every_sample, history_rows, max_spacing, spooled
from tests.waiting import wait_until

REASON = netns_unavailable()
pytestmark = [pytest.mark.multiprocess, pytest.mark.netns, pytest.mark.timeout(120),
              pytest.mark.skipif(REASON is not None, reason=str(REASON))]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def perfmesh_in(topo: Topology, where: str, *args: str) -> list[str]:
    return [*topo.exec_prefix(where), sys.executable, "-m", "workers", *args]


def test_partition_loses_no_sample_and_both_sides_notice_the_dead_peer(tmp_path):
    base = free_base_port()
    procs: list[subprocess.Popen] = []
    with Topology(["east"]) as topo:
        def cli(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run(perfmesh_in(topo, "hub", *args, "--connect", f"127.0.0.1:{base}"),
                                  env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=30)

        def host() -> dict:
            res = cli("status", "--json")
            if res.returncode != 0:
                return {}
            return next((h for h in json.loads(res.stdout)["hosts"] if h["name"] == "east01"), {})

        try:
            procs.append(subprocess.Popen(
                perfmesh_in(topo, "hub", "aggregator", "--bind", "0.0.0.0", "--port", str(base), "--insecure",
                            "--data", str(tmp_path / "data")),
                env=ENV, cwd=ROOT, stdout=open(tmp_path / "agg.log", "wb"), stderr=subprocess.STDOUT))
            agent_log = tmp_path / "east.log"
            procs.append(subprocess.Popen(
                perfmesh_in(topo, "east", "agent", "--connect", f"{topo.hub_addr['east']}:{base}",
                            "--name", "east01", "--interval", "0.2", "--insecure",
                            "--spool-dir", str(tmp_path / "spool"), "--state-dir", str(tmp_path / "state")),
                env=ENV, cwd=ROOT, stdout=open(agent_log, "wb"), stderr=subprocess.STDOUT))
            # streaming, with a second of live history (3 categories every 0.2 s) before the cut
            wait_until(lambda: host().get("counters", {}).get("batches", 0) > 25, 20, "east01 streaming",
                       poll_s=0.2)

            topo.set_link("east", False)
            t_cut = time.time()
            down = wait_until(lambda: (h := host()) and not h["alive"] and h, 10, "aggregator marking east01 down",
                              poll_s=0.2)
            assert time.time() - t_cut < 3 * 1.0 + 3, "dead peer noticed within 3 heartbeats (+ slack)"
            wait_until(lambda: "no word from the aggregator" in agent_log.read_text(), 10,
                     "the agent logging that the aggregator is silent")
            batches_down = down["counters"]["batches"]
            time.sleep(max(0.0, 30 - (time.time() - t_cut)))     # the behaviour: a 30 s partition
            topo.set_link("east", True)
            t_heal = time.time()

            healed = wait_until(lambda: (h := host()) and h["alive"] and h["counters"]["missing_batches"] == 0
                              and h["counters"]["backfilled"] > 0.8 * 30 * 20 and h, 30,
                              "east01 back, the partition backfilled", poll_s=0.2)
            assert healed["counters"]["batches"] > batches_down

            def memory_rows() -> list[dict]:
                return history_rows(cli("history", "--host", "east01", "--name", "memory_percent", "--json"))

            # live samples again past the range whose spacing is checked (t_heal + 2)
            wait_until(lambda: (rows := memory_rows()) and rows[-1]["timestamp"] > t_heal + 2.5, 20,
                       "live history after the partition", poll_s=0.2, retry_on=(AssertionError,))
            procs[1].send_signal(signal.SIGTERM)
            procs[1].wait(10)

            def settled() -> bool:   # the writer has stored the last sample the aggregator accepted
                last_seq = host()["last_seq"]
                want = [ts for seq, ts in spooled(tmp_path / "spool") if seq <= last_seq]
                rows = memory_rows()
                return bool(want and rows and rows[-1]["timestamp"] == want[-1])
            wait_until(settled, 10, "the last batches stored", poll_s=0.2, retry_on=(AssertionError, KeyError))
            final = host()
            c = final["counters"]
            assert c["lost_batches"] == 0 and c["missing_batches"] == 0 and c["duplicates"] == 0, c
            rows = history_rows(cli("history", "--host", "east01", "--name", "memory_percent", "--json"))
            check_every_sample(rows, spooled(tmp_path / "spool"), final["last_seq"])
            stamps = [r["timestamp"] for r in rows]
            assert max_spacing(stamps, t_cut - 2, t_heal + 2) < 0.6
            during = [r for r in rows if t_cut + 4 <= r["timestamp"] <= t_heal - 1]
            assert len(during) >= 0.8 * 25 / 0.2 and all(r["backfilled"] for r in during)
            log = (tmp_path / "agg.log").read_text() + agent_log.read_text()
            assert "Traceback" not in log, log[-3000:]
        finally:
            stop_processes(procs)
