"""Commands in flight between operators and agents: correlation, deadlines, dedup."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..model.lru import BoundedLRU
from ..protocol import kinds

TERMINAL_STATUSES = kinds.COMMAND_STATUSES
MAX_DONE = 1000
"""Finished results remembered per tracker (aggregator and agent) to answer replays."""


@dataclass
class PendingCommand:
    id: str
    host: str
    strategy: str
    params: dict[str, Any]
    origin: Any                      # who to answer (an api routing id), opaque to the core
    sent_at: float
    deadline: float
    operator: str = ""
    lost: str | None = None          # why the outcome can no longer be known (agent died)

    def to_wire(self) -> dict[str, Any]:
        """The body sent to the agent."""
        return {"id": self.id, "strategy": self.strategy, "params": self.params,
                "expires": self.deadline}

    def timeout_result(self) -> dict[str, Any]:
        """The answer when no result came by the deadline (unknown if the agent died)."""
        if self.lost:
            return {"id": self.id, "host": self.host, "strategy": self.strategy, "status": kinds.STATUS_UNKNOWN_OUTCOME,
                    "error": f"{self.lost}; it may or may not have run"}
        return {"id": self.id, "host": self.host, "strategy": self.strategy, "status": kinds.STATUS_TIMEOUT,
                "error": f"no result from host {self.host!r} within the deadline"}


@dataclass
class CommandTracker:
    """Pending commands by id, and a bounded cache of finished results for replays."""

    max_done: int = MAX_DONE
    pending: dict[str, PendingCommand] = field(default_factory=dict)
    done: BoundedLRU[str, dict[str, Any]] = field(init=False)

    def __post_init__(self) -> None:
        self.done = BoundedLRU(self.max_done)

    def known(self, cmd_id: str) -> dict[str, Any] | None:
        """A finished result for ``cmd_id`` (a replay), else None."""
        return self.done.get(cmd_id)

    def submit(self, cmd: PendingCommand) -> None:
        self.pending[cmd.id] = cmd

    def finish(self, cmd_id: str, result: dict[str, Any]) -> PendingCommand | None:
        cmd = self.pending.pop(cmd_id, None)
        if cmd is not None:
            self.done[cmd_id] = result
        return cmd

    def expired(self, now: float) -> list[PendingCommand]:
        return [c for c in self.pending.values() if c.deadline <= now]

    def for_host(self, host: str) -> list[PendingCommand]:
        return [c for c in self.pending.values() if c.host == host]

    def orphan(self, host: str, reason: str, now: float) -> None:
        """The agent that had these commands died: end them (at the next deadline check) as
        ``unknown_outcome``; they may or may not have run."""
        for c in self.for_host(host):
            c.lost, c.deadline = reason, min(c.deadline, now)
