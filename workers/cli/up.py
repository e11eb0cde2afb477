"""``perfmesh up``: an aggregator and an agent on this machine as child processes, a live view,
and a clean stop of the children (SIGTERM, then SIGKILL after a timeout)."""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys

from .clients import client_endpoint


def cmd_up(args: argparse.Namespace, out=sys.stdout) -> int:
    """Start an aggregator and an agent as child processes and watch the stream."""
    base = [sys.executable, "-m", "workers"]
    procs = [subprocess.Popen([*base, "aggregator", "--port", str(args.port)]),
             subprocess.Popen([*base, "agent", "--connect", f"127.0.0.1:{args.port}",
                               "--interval", str(args.interval)])]
    try:
        from workers.view import run_top
        return run_top(client_endpoint(f"127.0.0.1:{args.port}"), duration_s=args.duration)
    finally:
        stop_processes(procs)


def stop_processes(procs: list[subprocess.Popen], timeout_s: float = 5.0) -> None:
    """SIGTERM every child still running, then wait; SIGKILL what has not exited in time."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout_s)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout_s)
