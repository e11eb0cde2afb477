"""The host agent's pure core: what to send the aggregator, and when.

``AgentCore`` holds every decision of the agent (``workers/agent.py``): sequence numbers for
forwarded batches, registration, heartbeats and the aggregator's liveness, backfill answers
from the spool, and commands (dedup by id, expiry, refusal, results). Each handler is a
function of (state, message, now) that returns a list of typed actions; the shell performs
them (sockets, the command thread, the audit file, the spool) and reads no decision itself.

Two clocks come in, both as arguments: ``now_s`` is the wall clock (epoch seconds: command
expiry, audit times, send times) and ``mono_s`` a monotonic clock (is the aggregator there).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Protocol, Union

from ..errors import InvalidParameterError, WireError, UnknownStrategyError
from ..model.lru import BoundedLRU
from ..protocol import kinds
from .commands import MAX_DONE
from ..protocol import wire

MAX_BACKFILL = 5000           # batches answered per request; the aggregator asks again for more
MAX_COMMAND_ID_CHARS = 128
DEAD_AFTER_HEARTBEATS = 3     # silent heartbeat intervals before the aggregator counts as gone


# ----------------------------------------------------------------- actions
@dataclass(frozen=True)
class Forward:
    """A collector's batch, numbered and encoded: spool it, then publish it on ingest."""

    seq: int
    frame: bytes


@dataclass(frozen=True)
class Send:
    """A message to the aggregator on the control channel (sequence number 0)."""

    kind: str
    body: dict[str, Any]


@dataclass(frozen=True)
class Resend:
    """A spooled batch sent again, byte for byte, on the control channel to fill a gap.
    If it cannot be queued, the shell drops the rest of that answer (the aggregator asks again)."""

    seq: int
    frame: bytes


@dataclass(frozen=True)
class Run:
    """Run a validated command on the command thread; its outcome comes back to ``finished``."""

    cmd_id: str
    strategy: str
    params: dict[str, Any]


@dataclass(frozen=True)
class Audit:
    """One entry for the agent's audit log."""

    entry: dict[str, Any]


@dataclass(frozen=True)
class Note:
    """A warning for the log; ``limit_key`` set: rate-limited under that key."""

    text: str
    limit_key: str | None = None


Action = Union[Forward, Send, Resend, Run, Audit, Note]


class StrategyRegistry(Protocol):
    """What the core asks of the optimization engine: names, and a parameter check."""

    def strategies(self) -> list[str]: ...
    def validate(self, name: str, config: Mapping[str, Any] | None = None) -> dict[str, Any]: ...


class SpoolReader(Protocol):
    """The agent's spool of recent batches, as the core reads it."""

    def get_range(self, first: int, last: int) -> tuple[list[tuple[int, bytes]], list[tuple[int, int]]]: ...


@dataclass(frozen=True)
class HostFacts:
    """What the agent tells the aggregator about its host when it registers."""

    cpu_count: int
    memory_total_bytes: int
    platform: str
    python: str


@dataclass(frozen=True)
class AgentPolicy:
    """The agent's settings that its decisions read (defaults: ``workers.agent.AgentConfig``)."""

    name: str
    interval_s: float
    heartbeat_s: float
    commands: bool
    allow: tuple[str, ...] | None      # None: every registered strategy
    aggregator: str                    # how log notes name it (its endpoint)
    labels: tuple[tuple[str, str], ...] = ()   # e.g. (("role", "db"),): targets group:db


def outcome_body(cmd_id: str, result: dict[str, Any]) -> dict[str, Any]:
    """The result message for a command that ran (``result``: OptimizationResult.to_dict())."""
    return {"id": cmd_id, "status": kinds.STATUS_SUCCESS if result.get("success") else "failed",
            "result": result, "error": result.get("error")}


def refused_body(cmd_id: str, error: str) -> dict[str, Any]:
    """The result message for a command that was not run."""
    return {"id": cmd_id, "status": kinds.STATUS_REFUSED, "result": None, "error": error}


@dataclass
class AgentCore:
    """The agent's state and decisions; see the module docstring."""

    policy: AgentPolicy
    boot: str                   # the stream id (kept across restarts with a spool dir)
    incarnation: str            # this process: tells the aggregator the agent restarted
    seq: int                    # the last sequence number forwarded
    facts: HostFacts
    registry: StrategyRegistry
    collectors: Callable[[], list[dict[str, Any]]]   # the supervisor's view, read when sent
    last_heard_s: float         # monotonic time of the last message from the aggregator
    aggregator_alive: bool = True
    done: BoundedLRU[str, dict[str, Any]] = field(default_factory=lambda: BoundedLRU(MAX_DONE))  # for replays
    running: set[str] = field(default_factory=set)
    counters: dict[str, int] = field(default_factory=lambda: {
        "batches_forwarded": 0, "bad_local_frames": 0, "bad_control_frames": 0,
        "commands_run": 0, "commands_refused": 0, "batches_backfilled": 0})

    # ------------------------------------------------------------ registration
    def strategies(self) -> list[str]:
        """The strategies this agent offers: none with commands off, else the allowed ones."""
        if not self.policy.commands:
            return []
        names = self.registry.strategies()
        if self.policy.allow is not None:
            names = [n for n in names if n in self.policy.allow]
        return sorted(names)

    def registration(self) -> Send:
        return Send(kinds.REGISTER, {
            "cpu_count": self.facts.cpu_count, "memory_total_bytes": self.facts.memory_total_bytes,
            "platform": self.facts.platform, "python": self.facts.python,
            "interval_s": self.policy.interval_s, "strategies": self.strategies(),
            "commands": self.policy.commands, "collectors": self.collectors(),
            "incarnation": self.incarnation,
            **({"labels": dict(self.policy.labels)} if self.policy.labels else {})})

    def heartbeat(self, mono_s: float) -> list[Action]:
        """Each heartbeat interval: note a silent aggregator, and say we are here."""
        actions: list[Action] = []
        silent_s = DEAD_AFTER_HEARTBEATS * self.policy.heartbeat_s
        if mono_s - self.last_heard_s > silent_s:
            if self.aggregator_alive:
                actions.append(Note(f"no word from the aggregator at {self.policy.aggregator} "
                                    f"for {silent_s:.0f}s"))
            self.aggregator_alive = False
        actions.append(Send(kinds.HEARTBEAT, {"collectors": self.collectors(), "seq": self.seq,
                                          "counters": dict(self.counters)}))
        return actions

    # ----------------------------------------------------------------- batches
    def on_local(self, payload: bytes, now_s: float) -> list[Action]:
        """A collector's batch: number it and forward it, or count it as bad."""
        try:
            body = wire.unpack(payload)
        except WireError as exc:
            self.counters["bad_local_frames"] += 1
            return [Note(f"bad frame from a collector: {exc}", "local")]
        self.seq += 1
        self.counters["batches_forwarded"] += 1
        return [Forward(self.seq, wire.encode(kinds.METRICS, self.policy.name, self.boot, self.seq, now_s, body))]

    def resent(self) -> None:
        """The shell queued one ``Resend``."""
        self.counters["batches_backfilled"] += 1

    def on_backfill(self, body: Any, spool: SpoolReader) -> list[Action]:
        """Resend what the aggregator missed, in order; say which part is gone."""
        if not isinstance(body, dict) or not all(type(body.get(k)) is int for k in ("first", "last")):
            raise WireError("bad_body", "a backfill body must be a map with integer first and last")
        first, last = body["first"], min(body["last"], self.seq)
        actions: list[Action] = []
        if body.get("boot") != self.boot:
            missing = [(first, last)]
        else:
            found, missing = spool.get_range(first, min(last, first + MAX_BACKFILL - 1))
            actions = [Resend(seq, frame) for seq, frame in found]
        actions.extend(Send(kinds.REPLY, {"backfill_missing": [a, b], "boot": body.get("boot")})
                       for a, b in missing)
        return actions

    # ------------------------------------------------------------- the control
    def on_control(self, frame: bytes, now_s: float, mono_s: float, spool: SpoolReader) -> list[Action]:
        """One frame from the aggregator: any frame shows it is there; then its message."""
        actions = self.heard(mono_s)
        try:
            actions.extend(self.on_message(wire.decode(frame), now_s, spool))
        except WireError as exc:
            self.counters["bad_control_frames"] += 1
            actions.append(Note(f"bad frame from the aggregator: {exc}", "control"))
        return actions

    def heard(self, mono_s: float) -> list[Action]:
        self.last_heard_s = mono_s
        if self.aggregator_alive:
            return []
        self.aggregator_alive = True
        return [Note("aggregator is back; registering again"), self.registration()]

    def on_message(self, env: wire.Envelope, now_s: float, spool: SpoolReader) -> list[Action]:
        """The aggregator sends commands, backfill requests, heartbeats and replies."""
        if env.kind == kinds.COMMAND:
            return self.on_command(env.body, now_s)
        if env.kind == kinds.BACKFILL:
            return self.on_backfill(env.body, spool)
        if env.kind == kinds.REPLY and isinstance(env.body, dict) and env.body.get("register"):
            return [self.registration()]
        if env.kind in ("heartbeat", "reply"):
            return []
        raise WireError("bad_kind", f"the aggregator sends commands, heartbeats and replies, not {env.kind!r}")

    # ---------------------------------------------------------------- commands
    def on_command(self, body: Any, now_s: float) -> list[Action]:
        """Audit it; answer a replay from memory; refuse, ignore a duplicate in flight, or run."""
        if not isinstance(body, dict) or type(body.get("id")) is not str or len(body["id"]) > MAX_COMMAND_ID_CHARS:
            raise WireError("bad_body", f"a command body must be a map with a string id of at most "
                                        f"{MAX_COMMAND_ID_CHARS} characters")
        cmd_id = body["id"]
        actions: list[Action] = [Audit({"time": now_s, "event": "command", "id": cmd_id,
                                        "strategy": body.get("strategy"), "params": body.get("params")})]
        if cmd_id in self.done:
            return [*actions, Audit({"time": now_s, "event": "replay", "id": cmd_id}),
                    Send(kinds.RESULT, {**self.done[cmd_id], "replayed": True})]
        if cmd_id in self.running:        # its result goes out when it ends
            return [*actions, Audit({"time": now_s, "event": "in_flight", "id": cmd_id})]
        refusal = self.refusal(body, now_s)
        if refusal is not None:
            self.counters["commands_refused"] += 1
            return [*actions, *self.finished(refused_body(cmd_id, refusal), now_s)]
        self.counters["commands_run"] += 1
        self.running.add(cmd_id)
        return [*actions, Run(cmd_id, body["strategy"], body.get("params") or {})]   # validated: a map or none

    def refusal(self, body: dict[str, Any], now_s: float) -> str | None:
        """Why a command must not run here (disabled, expired, unknown, bad params), or None."""
        strategy, params, name = body.get("strategy"), body.get("params"), self.policy.name
        if not self.policy.commands:
            return f"remote commands are disabled on host {name!r}"
        if type(strategy) is not str:
            return f"strategy must be a string, got {strategy!r:.40}"
        expires = body.get("expires")
        if type(expires) not in (int, float) or not math.isfinite(expires) or expires < now_s:
            return f"command expired or without a finite expiry (expires {expires!r:.40})"
        offered = self.strategies()
        if strategy not in offered:
            return f"unknown strategy {strategy!r} on host {name!r}; available: {', '.join(offered) or 'none'}"
        try:
            self.registry.validate(strategy, params if params is not None else {})
        except (UnknownStrategyError, InvalidParameterError) as exc:
            return str(exc)
        return None

    def finished(self, body: dict[str, Any], now_s: float) -> list[Action]:
        """A command's result (ran or refused): remember it for replays, audit it, send it."""
        self.running.discard(body["id"])
        self.remember(body)
        return [Audit({"time": now_s, "event": "result", "id": body["id"], "outcome": body.get("status"),
                       "result": body}),
                Send(kinds.RESULT, body)]

    def remember(self, body: dict[str, Any]) -> None:
        self.done[body["id"]] = body

    def restore(self, entries: Iterable[dict[str, Any]]) -> None:
        """Results from the audit log: replays stay replays across restarts."""
        for entry in entries:
            result = entry.get("result")
            if entry.get("event") == "result" and isinstance(result, dict) and type(result.get("id")) is str:
                self.remember(result)
