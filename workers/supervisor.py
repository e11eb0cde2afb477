"""Starts collector processes and keeps them running, with backoff."""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import time
from dataclasses import dataclass, field
from typing import Any

from perfmesh.mesh.restart import RestartPolicy
from perfmesh.collect.sources import default_source

from . import collector

log = logging.getLogger("perfmesh.agent")


@dataclass
class Child:
    kind: str
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    process: Any = None
    restart_at: float | None = 0.0   # monotonic time of the next start, None while running

    def info(self) -> dict[str, Any]:
        alive = self.process is not None and self.process.is_alive()
        return {"kind": self.kind, "pid": self.process.pid if alive else None,
                "restarts": self.policy.restarts,
                "state": self.policy.state if alive else ("failing" if self.policy.state == "failing" else "restarting")}


class Supervisor:
    """Forks collectors after the agent's imports (pages shared), restarts them when they die."""

    def __init__(self, kinds: list[str], url: str, interval_s: float) -> None:
        self.url = url
        self.interval_s = interval_s
        self.ctx = multiprocessing.get_context("fork")
        self.children = [Child(kind) for kind in kinds]

    def poll(self) -> list[str]:
        """Reap and restart; returns human-readable notes of what changed."""
        now = time.monotonic()
        notes = []
        for child in self.children:
            proc = child.process
            if proc is not None and child.restart_at is None and not proc.is_alive():
                proc.join(0)
                child.restart_at = child.policy.exited(now)
                notes.append(f"collector {child.kind} (pid {proc.pid}) exited with {proc.exitcode}; "
                             f"restart in {child.restart_at - now:.1f}s ({child.policy.state})")
            if child.restart_at is not None and child.restart_at <= now:
                self._start(child, now)
        return notes

    def _start(self, child: Child, now: float) -> None:
        # import the collectors' source (psutil) once here so its pages are shared, and keep
        # the agent's objects out of the collectors' garbage collections: the forked pages
        # then stay shared (lower PSS) instead of being copied when gc touches them
        default_source()
        gc.freeze()
        proc = self.ctx.Process(target=collector.run, name=f"perfmesh-collector-{child.kind}",
                                args=(child.kind, self.url, self.interval_s, os.getpid()), daemon=True)
        proc.start()
        child.process, child.restart_at = proc, None
        child.policy.started(now)

    def info(self) -> list[dict[str, Any]]:
        return [c.info() for c in self.children]

    def stop(self, timeout_s: float = 1.5) -> None:
        procs = [c.process for c in self.children if c.process is not None]
        for p in procs:
            if p.is_alive():
                p.terminate()
        deadline = time.monotonic() + timeout_s
        for p in procs:
            p.join(max(0.0, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join(0.5)
