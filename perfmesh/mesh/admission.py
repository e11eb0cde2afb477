"""Admission at the aggregator: which peer may send what, and the bodies it may send.

Every frame is untrusted. A peer's identity is its authenticated key, given here as ``who``:
``(role, name)`` from the key allowlists, ``("", "")`` when security is off, ``None`` when
its key is not (or no longer) allowed. Checks raise :class:`WireError` (its ``reason`` is
counted per peer) or return the body's fields, typed; peer strings an operator will see are
kept short and plain. Pure: no sockets, no clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..errors import WireError
from ..protocol.wire import Envelope
from ..model.alertquery import DEFAULT_PAGE, MAX_PAGE, AlertQuery
from .targeting import LABEL_RE
from ..protocol import kinds

AGENT_ROLES = ("agents",)
API_ROLES = ("operators", "subscribers")
COMMAND_ROLES = ("", "operators")           # "": security off, anyone on loopback
CONTROL_KINDS = (kinds.REGISTER, kinds.HEARTBEAT, kinds.METRICS, kinds.REPLY, kinds.RESULT)
API_OPS = kinds.OPS
MAX_COMMAND_TIMEOUT_S = 3600.0
MAX_OPERATOR_CHARS = 64
MAX_INCARNATION_CHARS = 64
REGISTER_KEYS = ("cpu_count", "memory_total_bytes", "platform", "python", "interval_s", "strategies", "commands",
                 "labels")
_INFO_TYPES = {"cpu_count": (int,), "memory_total_bytes": (int,), "platform": (str,), "python": (str,),
               "interval_s": (int, float), "strategies": (list,), "commands": (bool,), "labels": (dict,)}
MAX_LABELS = 32
COLLECTOR_KEYS = ("kind", "pid", "restarts", "state")
MAX_COLLECTORS = 16


# ------------------------------------------------------------------ agents
def check_agent(who: tuple[str, str] | None, env: Envelope) -> None:
    """An agent may speak only in the name its key is filed under."""
    if who is None:
        raise WireError("unauthenticated", "sender's key is not (or no longer) allowed for agents")
    if who[1] != env.host:
        raise WireError("identity_mismatch",
                        f"key of agent {who[1]!r} sent a frame in the name of host {env.host!r:.80}")


def check_ingest(env: Envelope) -> None:
    if env.kind != kinds.METRICS:
        raise WireError("bad_kind", f"ingest accepts metrics only, got {env.kind!r}")


def check_control(env: Envelope) -> None:
    if env.kind not in CONTROL_KINDS:
        raise WireError("bad_kind", f"control accepts register, heartbeat, metrics, reply and result, "
                                    f"got {env.kind!r}")


@dataclass(frozen=True)
class BackfillMissing:
    """An agent's answer that [first, last] of stream ``boot`` is no longer in its spool."""

    boot: str
    first: int
    last: int


def backfill_missing(body: Any) -> BackfillMissing:
    """The only reply an agent sends on control: which backfilled range it no longer has."""
    missing = body.get("backfill_missing") if isinstance(body, dict) else None
    if not (isinstance(missing, list) and len(missing) == 2 and all(type(x) is int for x in missing)):
        raise WireError("bad_body", "a reply on control must carry backfill_missing [first, last]")
    return BackfillMissing(str(body.get("boot")), missing[0], missing[1])


def result_id(body: Any) -> str:
    """The command id an agent's result answers."""
    if not isinstance(body, dict) or type(body.get("id")) is not str:
        raise WireError("bad_body", "a result body must be a map with a string id")
    return body["id"]


def register_info(body: dict[str, Any]) -> dict[str, Any]:
    """The registration fields of their expected types (malformed ones are left out: an
    agent's info is shown to every operator, and a bad strategy list falls back to the
    agent's own registry deciding)."""
    return {k: body[k] for k in REGISTER_KEYS if k in body and plain_info(k, body[k])}


def incarnation(body: dict[str, Any]) -> str | None:
    """The agent process's id, if it is a short string."""
    value = body.get("incarnation")
    return value if type(value) is str and len(value) <= MAX_INCARNATION_CHARS else None


def collectors(raw: Any) -> list[dict[str, Any]]:
    """At most 16 collector records of plain values (anything else becomes None)."""
    if not isinstance(raw, list):
        return []
    return [{k: v if plain(v) else None for k, v in ((k, c.get(k)) for k in COLLECTOR_KEYS)}
            for c in raw[:MAX_COLLECTORS] if isinstance(c, dict)]


def plain(value: Any) -> bool:
    """A short string, a bool, a 64-bit int or a finite float: safe to show anywhere (JSON, top, web)."""
    if type(value) is str:
        return len(value) <= 256
    if type(value) is float:
        return math.isfinite(value)
    return type(value) is bool or (type(value) is int and -(1 << 63) <= value < 1 << 64)


def plain_info(key: str, value: Any) -> bool:
    """A registration field of its expected type."""
    if type(value) not in _INFO_TYPES.get(key, ()):
        return False
    if type(value) is list:
        return len(value) <= 1024 and all(type(s) is str and len(s) <= 64 for s in value)
    if type(value) is dict:     # labels
        return len(value) <= MAX_LABELS and all(type(k) is str and type(v) is str and LABEL_RE.fullmatch(k)
                                                and LABEL_RE.fullmatch(v) for k, v in value.items())
    return plain(value)


# -------------------------------------------------------------- operators
def check_api_sender(who: tuple[str, str] | None) -> None:
    """Only allowed operator and subscriber keys may use the api (checked before decoding)."""
    if who is None:
        raise WireError("unauthenticated", "sender's key is not (or no longer) allowed on the api")


def api_request(env: Envelope) -> dict[str, Any]:
    """An api request's body."""
    if env.kind != kinds.REQUEST or not isinstance(env.body, dict):
        raise WireError("bad_kind", "api accepts request maps only")
    return env.body


def api_op(body: dict[str, Any]) -> str:
    op = body.get("op")
    if op not in API_OPS:
        raise WireError("bad_op", f"unknown api op {op!r:.40}; expected {', '.join(API_OPS[:-1])} or {API_OPS[-1]}")
    return op


@dataclass(frozen=True)
class HistoryQuery:
    host: str
    key: str
    since: float


def history_query(body: dict[str, Any]) -> HistoryQuery:
    host, key, since = body.get("host"), body.get("key"), body.get("since", 0.0)
    if type(host) is not str or type(key) is not str or not isinstance(since, (int, float)):
        raise WireError("bad_body", "history needs host (str), key (str), since (number)")
    return HistoryQuery(host, key, float(since))


def alerts_query(body: dict[str, Any]) -> AlertQuery:
    """An alert log request: host (str or absent), since (number), active (bool), before (the
    page cursor, an int or absent), limit (1..MAX_PAGE)."""
    host, since, active = body.get("host"), body.get("since", 0.0), body.get("active", False)
    before, limit = body.get("before"), body.get("limit", DEFAULT_PAGE)
    if not (host is None or type(host) is str) or type(since) not in (int, float) or type(active) is not bool \
            or not (before is None or type(before) is int) or type(limit) is not int \
            or not 1 <= limit <= MAX_PAGE or not math.isfinite(since):
        raise WireError("bad_body", f"alerts needs host (str), since (number), active (bool), before (int) "
                                    f"and limit (1..{MAX_PAGE})")
    return AlertQuery(host, float(since), active, before, limit)


def operator_name(body: dict[str, Any], who: tuple[str, str]) -> str:
    """Who asks: the authenticated key's name, else (security off) the name the request gives."""
    return who[1] or str(body.get("operator", ""))[:MAX_OPERATOR_CHARS]


def ack_id(body: dict[str, Any]) -> int:
    """The alert an ack names (its id in the log)."""
    alert_id = body.get("id")
    if type(alert_id) is not int or alert_id < 1:
        raise WireError("bad_body", "ack needs id, the alert's id in the log (an int >= 1)")
    return alert_id


def command_forbidden(who: tuple[str, str]) -> str | None:
    """Why this api peer may not send commands (only operators may), or None."""
    role, name = who
    if role in COMMAND_ROLES:
        return None
    return f"forbidden: key {name!r} has role {role}; only operators may send commands"


@dataclass(frozen=True)
class CommandRequest:
    """An operator's command, checked for shape (the fleet decides whether it may run)."""

    id: str
    host: str
    strategy: str
    params: Any           # the fleet refuses anything but a map, with a reply
    timeout_s: float
    operator: str         # the key's name; without security, the name the request gives


def command_request(body: dict[str, Any], who: tuple[str, str], default_timeout_s: float) -> CommandRequest:
    cmd_id, host, strategy = body.get("id"), body.get("host"), body.get("strategy")
    timeout_s = body.get("timeout_s", default_timeout_s)
    if not all(type(v) is str for v in (cmd_id, host, strategy)) or \
            not isinstance(timeout_s, (int, float)) or not 0 < timeout_s <= MAX_COMMAND_TIMEOUT_S:
        raise WireError("bad_body", f"command needs id, host, strategy (strings) and "
                                    f"0 < timeout_s <= {MAX_COMMAND_TIMEOUT_S:g}")
    operator = operator_name(body, who)
    return CommandRequest(cmd_id, host, strategy, body.get("params", {}), float(timeout_s), operator)
