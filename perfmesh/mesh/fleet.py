"""The aggregator's state machine: hosts, history, budgets, analysis, commands.

Pure: every method takes ``now`` and returns what to send (events for the stream, commands
for agents, replies for operators). The worker shell in ``workers/aggregator.py`` wires it
to sockets.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from ..rules.analysis import BOTTLENECK_CATEGORIES, detect_bottlenecks
from ..protocol.batch import BatchSchema, SchemaCache, decode_batch
from ..rules.alertstate import AlertPolicy, AlertState
from ..rules.budget import DEFAULT_BUDGETS, PerformanceBudget
from . import admission
from .admission import REGISTER_KEYS
from .commands import CommandTracker, PendingCommand
from .gaps import chase_gaps, give_up, lost
from .hosts import NO_EVENTS, Event, GapInfo, HostState
from .ratelimit import RateLimiter
from .sequence import BACKFILL, DUPLICATE
from .history import DEFAULT_HISTORY_ROWS, SeriesHistory
from ..protocol.wire import Envelope
from ..protocol import kinds

EVENT_TYPES = kinds.EVENT_TYPES


@dataclass
class FleetConfig:
    budgets: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_BUDGETS))
    history_rows: int = DEFAULT_HISTORY_ROWS
    heartbeat_interval_s: float = 1.0
    dead_after_heartbeats: int = 3
    max_series_per_host: int = 10_000
    max_hosts: int = 10_000
    auto_optimize: bool = False
    auto_optimize_interval_s: float = 300.0
    command_timeout_s: float = 10.0
    backfill_retry_s: float = 3.0
    backfill_timeout_s: float = 30.0
    commands_per_host_per_min: float = 20.0
    commands_per_operator_per_min: float = 60.0
    # quiet budgets (the alert state machine of rules/alertstate.py): a violation fires after
    # this many consecutive samples over the limit (0 or 1: at once) ...
    budget_for_samples: int = 3
    # ... and resolves only on a sample at or below the limit less this percentage (0: the limit)
    budget_clear_percent: float = 5.0
    # per-host limits (budgets per host group, from the config file); None: ``budgets``.
    # ``budgets`` must still name every metric any host budgets (it picks what is checked).
    host_budgets: Callable[[str], dict[str, float]] | None = None
    # (host, bottleneck kind) -> [(strategy, params, min_interval_s)]: the config's policies
    auto_policies: Callable[[str, str], list[tuple[str, dict[str, Any], float]]] | None = None


class Fleet:
    def __init__(self, config: FleetConfig | None = None) -> None:
        self.config = config or FleetConfig()
        self.hosts: dict[str, HostState] = {}
        self.schemas = SchemaCache()
        # schema raw -> (column, name) of its budgeted series; bounded like the schema cache
        self.budgeted_columns: dict[bytes, list[tuple[int, str]]] = {}
        self.commands = CommandTracker()
        c = self.config
        self.host_limiter = RateLimiter(c.commands_per_host_per_min / 60.0, c.commands_per_host_per_min)
        self.operator_limiter = RateLimiter(c.commands_per_operator_per_min / 60.0, c.commands_per_operator_per_min)
        self.counters = {"bad_frames": 0, "hosts_refused": 0, "batches": 0, "samples": 0, "backfilled": 0}
        self.backfill_requests: list[tuple[str, str | None, int, int]] = []
        self.bad_reasons: dict[str, int] = {}
        self.budget_policy = AlertPolicy(for_samples=max(1, c.budget_for_samples))
        self.budget_clear_factor = 1.0 - c.budget_clear_percent / 100.0

    # ----------------------------------------------------------------- hosts
    def host(self, name: str, boot: str, now: float) -> HostState | None:
        host = self.hosts.get(name)
        if host is None:
            if len(self.hosts) >= self.config.max_hosts:
                self.counters["hosts_refused"] += 1
                return None
            host = self.hosts[name] = HostState(
                name, boot, now, now,
                SeriesHistory(self.config.history_rows, self.config.max_series_per_host),
                PerformanceBudget(dict(self.config.budgets) if self.config.host_budgets is None
                                  else self.config.host_budgets(name)))
        return host

    def resume_host(self, name: str, boot: str, last_seq: int, missing: list[tuple[int, int]],
                    info: dict[str, Any], first_seen: float, last_seen: float, now: float) -> None:
        """A host known from persisted state (after a restart): down until it speaks again,
        and still owed whatever was missing when the state was written."""
        host = self.host(name, boot, now)
        if host is None:
            return
        host.first_seen, host.last_seen, host.alive = first_seen, last_seen, False
        host.info = {k: v for k, v in info.items() if k in REGISTER_KEYS}
        host.seq.resume(boot, last_seq, missing)
        for a, b in missing:
            host.gaps.append(GapInfo(a, b, None, last_seen, now, float("-inf"), now))

    def count_bad(self, reason: str, host: str | None = None) -> None:
        self.counters["bad_frames"] += 1
        self.bad_reasons[reason] = self.bad_reasons.get(reason, 0) + 1
        state = self.hosts.get(host) if host else None
        if state is not None:
            state.counters["bad_frames"] += 1
            state.bad_reasons[reason] = state.bad_reasons.get(reason, 0) + 1

    def _touch(self, host: HostState, now: float, events: list[Event]) -> None:
        host.last_seen = now
        if not host.alive:
            host.alive = True
            events.append(Event(kinds.EVENT_HOST, host.name, {"state": kinds.HOST_UP, "timestamp": now}))

    # ---------------------------------------------------------------- ingest
    def ingest(self, env: Envelope, now: float) -> tuple[BatchSchema | None, list[Event] | tuple, bool]:
        """One metric batch. Returns its schema (None when dropped), events, and whether it
        filled a gap (backfilled).

        Raises WireError for a malformed body; the caller counts it.
        """
        host = self.hosts.get(env.host)
        if host is None:
            host = self.host(env.host, env.boot, now)
            if host is None:
                return None, NO_EVENTS, False
        schema, ts, values = decode_batch(env.body, self.schemas)
        old_boot = host.seq.boot
        verdict, gap, given_up = host.seq.observe(env.boot, env.seq)
        host.boot = env.boot
        events: list[Event] | tuple = [lost(host, a, b, now) for a, b in given_up] if given_up else NO_EVENTS
        if host.gaps and env.boot != old_boot:
            host.gaps = []      # the old boot's records would match (and time out) the new boot's seqs
        if verdict is DUPLICATE:
            host.counters["duplicates"] += 1
            return None, events, False
        backfilled = verdict is BACKFILL
        if gap is not None:
            host.counters["gaps"] += 1
            host.gaps.append(GapInfo(gap[0], gap[1], host.last_ts, ts, now, now, now))
            self.backfill_requests.append((host.name, env.boot, gap[0], gap[1]))
        ring = host.history.ring_for(schema)
        if ring is None:
            host.counters["series_refused"] += 1
            self.count_bad("series_cap", host.name)
            return None, events, False
        ring.append(ts, values, backfilled)
        c = host.counters
        c["batches"] += 1
        c["samples"] += schema.width
        f = self.counters
        f["batches"] += 1
        f["samples"] += schema.width
        host.last_seen = now
        if not host.alive:
            events = list(events)
            self._touch(host, now, events)
        if backfilled:
            c["backfilled"] += 1
            f["backfilled"] += 1
            return schema, events, True    # old samples: history only, no live budget checks
        host.last_ts = ts
        budgeted = self.budgeted_columns.get(schema.raw)
        if budgeted is None:
            if len(self.budgeted_columns) >= self.schemas.max_entries:
                self.budgeted_columns.clear()
            budgeted = self.budgeted_columns[schema.raw] = [
                (i, s.name) for i, s in enumerate(schema.series)
                if not s.labels and s.name in self.config.budgets]
        for i, name in budgeted:
            ev = self._check_budget(host, schema.category, name, values[i], ts)
            if ev is not None:
                events = [*events, ev]
        return schema, events, False

    def backfill_unavailable(self, host_name: str, boot: str, first: int, last: int,
                             now: float) -> list[Event]:
        """The agent says [first, last] is no longer in its spool."""
        host = self.hosts.get(host_name)
        if host is None or host.seq.boot != boot:
            return []
        return give_up(host, first, last, now)

    def _check_budget(self, host: HostState, category: str, name: str, value: float,
                      ts: float) -> Event | None:
        """One budgeted sample through the alert state machine: an event when the violation
        fires (after ``budget_for_samples`` over), gets worse, or resolves (at or below the
        limit less ``budget_clear_percent``); nothing while it flaps in between."""
        violation = host.budget.check_budget_violation(name, value, ts)
        state = host.budget_alerts.get(name)
        if state is None:
            if violation is None:
                return None
            state = host.budget_alerts[name] = AlertState()
        limit = host.budget.get_budget_limit(name) or 0.0
        worst = state.severity if state.firing else None
        step = state.step(self.budget_policy, None if violation is None else violation.severity,
                          value <= limit * self.budget_clear_factor, lambda: ts)
        if not state.firing and not state.pending:
            del host.budget_alerts[name]        # quiet again: no state kept per quiet series
        active = host.active_violations.get(name)
        if step is not None and step.state == kinds.RESOLVED:
            host.active_violations.pop(name, None)
            if active is None:
                return None
            return Event(kinds.EVENT_VIOLATION, host.name, {**active, "state": kinds.RESOLVED, "value": value,
                                                  "timestamp": ts}, category)
        if violation is None or not state.firing:
            return None                          # pending, or firing and not yet cleared
        record = {**violation.to_dict(), "state": kinds.FIRING, "category": category,
                  "severity": state.severity, "started": state.since}
        host.active_violations[name] = record
        if step is None and state.severity == worst:
            return None
        host.recent_violations.append(record)
        return Event(kinds.EVENT_VIOLATION, host.name, record, category)

    # ------------------------------------------------------------- control
    def register(self, env: Envelope, route: Any, now: float) -> list[Event]:
        host = self.host(env.host, env.boot, now)
        if host is None:
            return []
        body = env.body if isinstance(env.body, dict) else {}
        events: list[Event] = []
        if host.incarnation and body.get("incarnation") != host.incarnation:
            self.commands.orphan(host.name, f"the agent on {host.name!r} restarted with the command in flight", now)
        host.incarnation = admission.incarnation(body)
        host.boot, host.route, host.registered = env.boot, route, True
        host.info = admission.register_info(body)
        host.collectors = admission.collectors(body.get("collectors"))
        self._touch(host, now, events)
        events.append(Event(kinds.EVENT_HOST, host.name, {"state": kinds.HOST_REGISTERED, "timestamp": now,
                                                "info": host.info}))
        return events

    def heartbeat(self, env: Envelope, route: Any, now: float) -> tuple[list[Event], bool]:
        """Returns events and whether the agent must (re-)register."""
        host = self.hosts.get(env.host)
        if host is None or not host.registered or host.boot != env.boot:
            return [], True
        host.route = route
        if isinstance(env.body, dict) and "collectors" in env.body:
            host.collectors = admission.collectors(env.body["collectors"])
        events: list[Event] = []
        self._touch(host, now, events)
        return events, False

    def tick(self, now: float) -> tuple[list[Event], list[PendingCommand], list[tuple[PendingCommand, dict]]]:
        """Liveness, analysis, auto-optimization and command deadlines.

        Returns (events, commands to send to agents, (command, result) pairs to answer).
        """
        events: list[Event] = []
        to_send: list[PendingCommand] = []
        dead_after = self.config.heartbeat_interval_s * self.config.dead_after_heartbeats
        for host in self.hosts.values():
            if host.alive and now - host.last_seen > dead_after:
                host.alive = False
                self.commands.orphan(host.name, f"host {host.name!r} went down with the command in flight", now)
                events.append(Event(kinds.EVENT_HOST, host.name, {"state": kinds.HOST_DOWN, "timestamp": now,
                                                        "last_seen": host.last_seen}))
                continue
            events.extend(self._analyse(host, now))
            if host.gaps:
                lost_events, requests = chase_gaps(host, now, self.config.backfill_retry_s,
                                                   self.config.backfill_timeout_s)
                events.extend(lost_events)
                self.backfill_requests.extend(requests)
            cmd = self._auto_optimize(host, now)
            if cmd is not None:
                to_send.append(cmd)
        answers = [(c, self.finish_command(c.id, c.timeout_result())) for c in self.commands.expired(now)]
        for cmd, result in answers:
            events.append(self._command_event(cmd, result, now))
        return events, to_send, answers

    def latest(self, host: HostState) -> dict[str, float]:
        """The newest value of each unlabeled series of a host (what analysis reads)."""
        return host.history.latest_unlabeled()

    def _analyse(self, host: HostState, now: float) -> list[Event]:
        # analysis is a pure function of the history's newest rows: no batch since the
        # last run means the same bottlenecks and no new events
        if host.counters["batches"] == host.analysed_batches:
            return []
        host.analysed_batches = host.counters["batches"]
        before = {b.kind for b in host.bottlenecks}
        host.bottlenecks = detect_bottlenecks(self.latest(host))
        return [Event(kinds.EVENT_BOTTLENECK, host.name, {**b.to_dict(), "timestamp": now}, BOTTLENECK_CATEGORIES[b.kind])
                for b in host.bottlenecks if b.kind not in before]

    def _auto_optimize(self, host: HostState, now: float) -> PendingCommand | None:
        """At most one command per host per interval: the configured policy for a bottleneck
        (strategy, params, its own interval) or else the strategy analysis recommends."""
        if not (self.config.auto_optimize and host.alive and host.registered):
            return None
        allowed = set(host.info.get("strategies") or ())
        for b in host.bottlenecks:
            choices = self.config.auto_policies(host.name, b.kind) if self.config.auto_policies else []
            if not choices and b.recommended_strategy:
                choices = [(b.recommended_strategy, {}, self.config.auto_optimize_interval_s)]
            for strategy, params, interval_s in choices:
                if strategy in allowed and now - host.last_auto_optimize >= interval_s:
                    host.last_auto_optimize = now
                    cmd = PendingCommand(f"auto-{uuid.uuid4().hex}", host.name, strategy, dict(params), None,
                                         now, now + self.config.command_timeout_s, "auto-optimize")
                    self.commands.submit(cmd)
                    return cmd
        return None

    # ------------------------------------------------------------ commands
    def start_command(self, cmd_id: str, host_name: str, strategy: str, params: Any,
                      origin: Any, now: float, timeout_s: float,
                      operator: str = "") -> tuple[PendingCommand | None, dict[str, Any] | None]:
        """Returns (command to send, None) or (None, immediate reply)."""
        cached = self.commands.known(cmd_id)
        if cached is not None:
            return None, {**cached, "replayed": True}
        if cmd_id in self.commands.pending:
            return None, {"id": cmd_id, "status": kinds.STATUS_REFUSED, "error": f"command id {cmd_id!r} is already in flight"}
        host = self.hosts.get(host_name)
        if host is None or not host.registered:
            known = ", ".join(sorted(h for h, s in self.hosts.items() if s.registered)) or "none"
            return None, {"id": cmd_id, "status": kinds.STATUS_REFUSED,
                          "error": f"unknown host {host_name!r}; known hosts: {known}"}
        if not host.alive:
            return None, {"id": cmd_id, "status": kinds.STATUS_REFUSED, "error": f"host {host_name!r} is down"}
        strategies = host.info.get("strategies")
        if strategies is not None and strategy not in strategies:
            return None, {"id": cmd_id, "status": kinds.STATUS_REFUSED,
                          "error": f"unknown strategy {strategy!r} on host {host_name!r}; "
                                   f"available: {', '.join(strategies) or 'none'}"}
        if not isinstance(params, dict):
            return None, {"id": cmd_id, "status": kinds.STATUS_REFUSED, "error": "params must be a map"}
        if not self.host_limiter.allow(host_name, now):
            return None, {"id": cmd_id, "status": kinds.STATUS_BUSY,
                          "error": f"busy: host {host_name!r} already had {self.config.commands_per_host_per_min:g} "
                                   "commands in the last minute; try again later"}
        if not self.operator_limiter.allow(operator, now):
            return None, {"id": cmd_id, "status": kinds.STATUS_BUSY,
                          "error": f"busy: operator {operator!r} is over {self.config.commands_per_operator_per_min:g} "
                                   "commands per minute; try again later"}
        cmd = PendingCommand(cmd_id, host_name, strategy, params, origin, now, now + timeout_s, operator)
        self.commands.submit(cmd)
        return cmd, None

    def finish_command(self, cmd_id: str, result: dict[str, Any]) -> dict[str, Any]:
        self.commands.finish(cmd_id, result)
        return result

    def command_result(self, env: Envelope, now: float) -> tuple[PendingCommand | None, dict, list[Event]]:
        """An agent's result. Only the host a command was sent to may answer it."""
        body = env.body
        cmd = self.commands.pending.get(admission.result_id(body))
        if cmd is None or cmd.host != env.host:
            return None, body, []
        result = {"id": cmd.id, "host": cmd.host, "strategy": cmd.strategy,
                  "status": str(body.get("status", kinds.STATUS_FAILED)),
                  "result": body.get("result"), "error": body.get("error")}
        self.finish_command(cmd.id, result)
        return cmd, result, [self._command_event(cmd, result, now)]

    def _command_event(self, cmd: PendingCommand, result: dict, now: float) -> Event:
        body = {"id": cmd.id, "strategy": cmd.strategy, "params": cmd.params, "status": result["status"],
                "operator": cmd.operator, "timestamp": now, "error": result.get("error")}
        inner = result.get("result")
        if isinstance(inner, dict):
            body.update({k: inner.get(k) for k in ("verdict", "improvement", "duration_ms", "rolled_back")})
        host = self.hosts.get(cmd.host)
        if host is not None:
            host.recent_commands.append(body)
        return Event(kinds.EVENT_COMMAND, cmd.host, body)

    # --------------------------------------------------------------- query
    def status(self, now: float) -> dict[str, Any]:
        return {"time": now, "hosts": [h.status() for h in sorted(self.hosts.values(), key=lambda h: h.name)],
                "counters": dict(self.counters), "bad_frame_reasons": dict(self.bad_reasons),
                "pending_commands": len(self.commands.pending)}

    def history(self, host_name: str, key: str, since: float) -> list[tuple[float, float, bool]]:
        host = self.hosts.get(host_name)
        return host.history.query(key, since) if host else []
