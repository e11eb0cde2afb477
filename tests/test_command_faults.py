"""Commands across faults: an agent that dies mid-command gives unknown_outcome, never success."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT
from tests.waiting import wait_until

pytestmark = [pytest.mark.multiprocess, pytest.mark.timeout(90)]

SLOW_APP = """
import sys, time
from perfmesh import PerformanceManager
manager = PerformanceManager(mesh=sys.argv[1], name="slowapp", mesh_state_dir=sys.argv[2])
manager.engine.register_optimization_strategy("slow", lambda config: time.sleep(60) or True)
print("ready", flush=True)
time.sleep(600)
"""


def test_a_command_in_flight_when_the_agent_is_killed_ends_unknown_outcome(mesh):
    mesh.aggregator()
    app = subprocess.Popen([sys.executable, "-c", SLOW_APP, mesh.connect, str(mesh.tmp / "slowapp")],
                           cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True)
    mesh.procs.append(app)
    assert app.stdout.readline().strip() == "ready"
    wait_until(lambda: "slow" in (next((h for h in mesh.status()["hosts"] if h["name"] == "slowapp"), {})
                                  .get("info", {}).get("strategies") or []), 15, "slowapp offering its strategy")
    command = subprocess.Popen([sys.executable, "-m", "workers", "command", "slowapp", "slow", "--json",
                                "--timeout", "30", "--connect", mesh.connect],
                               cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    agent_audit = mesh.tmp / "slowapp" / "audit.log"
    wait_until(lambda: agent_audit.exists() and '"strategy": "slow"' in agent_audit.read_text(), 15,
               "the agent running the command")    # it audits a command, then starts it
    app.send_signal(signal.SIGKILL)
    t0 = time.monotonic()
    out, err = command.communicate(timeout=30)
    result = json.loads(out)
    assert command.returncode == 1, out + err
    assert result["status"] == "unknown_outcome" and "may or may not have run" in result["error"]
    assert time.monotonic() - t0 < 8     # 3 missed heartbeats, not the 30 s command timeout
    audit = [json.loads(line) for line in (mesh.tmp / "aggregator" / "audit.log").read_text().splitlines()]
    assert [e["outcome"] for e in audit if e.get("id") and e.get("strategy") == "slow"] == ["sent", "unknown_outcome"]
