"""The aggregator's operator desk: requests on the api socket (status, history, command), and
the audit of every command the aggregator sends or answers (operators' and auto-optimize's).

Which api peer may ask what, and the shape of each request, is decided in
:mod:`perfmesh.mesh.admission`; whether a command may go to its host, in ``Fleet``.
"""

from __future__ import annotations

from typing import Any, Callable

from perfmesh.errors import WireError
from perfmesh.mesh import admission
from perfmesh.mesh.commands import PendingCommand
from perfmesh.mesh.fleet import Fleet
from perfmesh.protocol import wire
from perfmesh.store.alertlog import ack_record
from perfmesh.store.audit import AuditLog

from .loop import RateLimitedLog
from .persist import Persistence
from perfmesh.protocol import kinds


class OperatorDesk:
    def __init__(self, fleet: Fleet, persist: Persistence, audit: AuditLog, warn: RateLimitedLog,
                 answer: Callable[[bytes, dict[str, Any]], None],
                 send_command: Callable[[PendingCommand], None], default_timeout_s: float) -> None:
        self.fleet = fleet
        self.persist = persist
        self.audit_log = audit
        self.warn = warn
        self.answer = answer                # a reply to an api peer, by its routing id
        self.send_command = send_command    # a command to its agent
        self.default_timeout_s = default_timeout_s

    def on_frame(self, route: bytes, frame: bytes, who: tuple[str, str] | None, now: float) -> None:
        """One api request; anything wrong with it is counted and answered with the error."""
        try:
            admission.check_api_sender(who)
            body = admission.api_request(wire.decode(frame))
            self._request(route, body, now, who)
        except WireError as exc:
            self.fleet.count_bad(exc.reason)
            self.answer(route, {"status": kinds.STATUS_ERROR, "error": str(exc)})

    def _request(self, route: bytes, body: dict[str, Any], now: float, who: tuple[str, str]) -> None:
        op = admission.api_op(body)
        if op == kinds.OP_STATUS:
            self.answer(route, {"status": kinds.STATUS_OK, **self.fleet.status(now)})
        elif op == kinds.OP_HISTORY:
            q = admission.history_query(body)
            self.answer(route, {"status": kinds.STATUS_OK, "samples": self.persist.reader.query(q.host, q.key, q.since)})
        elif op == kinds.OP_ALERTS:
            alerts, cursor = self.persist.reader.alert_log(admission.alerts_query(body), now)
            self.answer(route, {"status": kinds.STATUS_OK, "alerts": alerts, "next": cursor})
        elif op == kinds.OP_ACK:
            self._ack(route, body, now, who)
        else:
            self._command(route, body, now, who)

    def _command(self, route: bytes, body: dict[str, Any], now: float, who: tuple[str, str]) -> None:
        error = admission.command_forbidden(who)
        if error is not None:
            role, name = who
            self.audit("command", now, id=body.get("id"), operator=name, role=role, host=body.get("host"),
                       strategy=body.get("strategy"), params=body.get("params"), outcome="forbidden",
                       error=error)
            self.answer(route, {"id": body.get("id"), "status": kinds.STATUS_REFUSED, "error": error})
            return
        req = admission.command_request(body, who, self.default_timeout_s)
        cmd, reply = self.fleet.start_command(req.id, req.host, req.strategy, req.params,
                                              route, now, req.timeout_s, req.operator)
        self.audit("command", now, id=req.id, operator=req.operator, host=req.host, strategy=req.strategy,
                   params=req.params, outcome="sent" if reply is None else reply["status"],
                   error=None if reply is None else reply.get("error"))
        if reply is not None:
            self.answer(route, reply)
            return
        self.send_command(cmd)

    def _ack(self, route: bytes, body: dict[str, Any], now: float, who: tuple[str, str]) -> None:
        """Record who acknowledged an alert of the log (operators only; audited)."""
        alert_id = admission.ack_id(body)
        error = admission.command_forbidden(who)
        host = None if error else self.persist.reader.alert_host(alert_id)
        if error is None and host is None:
            error = f"no alert with id {alert_id} in the log"
        operator = admission.operator_name(body, who)
        self.audit("ack", now, alert=alert_id, operator=operator, outcome="refused" if error else "recorded",
                   error=error)
        if error is not None:
            self.answer(route, {"id": alert_id, "status": kinds.STATUS_REFUSED, "error": error})
            return
        self.persist.call(lambda store: store.add_violation(host, ack_record(alert_id, operator, now)))
        self.answer(route, {"id": alert_id, "status": kinds.STATUS_OK, "host": host, "acked_by": operator})

    def sent(self, cmd: PendingCommand, now: float) -> None:
        """A command the aggregator started itself (auto-optimize): audit it, send it."""
        self.audit("command", now, id=cmd.id, operator=cmd.operator, host=cmd.host,
                   strategy=cmd.strategy, params=cmd.params, outcome="sent")
        self.send_command(cmd)

    def answered(self, cmd: PendingCommand, result: dict[str, Any], now: float) -> None:
        """A command's outcome (its agent's result, or a timeout): audit it, tell who asked."""
        self.audit("result", now, id=cmd.id, operator=cmd.operator, host=cmd.host, strategy=cmd.strategy,
                   params=cmd.params, outcome=result.get("status"), error=result.get("error"))
        if cmd.origin is not None:
            self.answer(cmd.origin, result)

    def audit(self, event: str, now: float, **fields: Any) -> None:
        try:
            self.audit_log.append({"time": now, "event": event, **fields})
        except (OSError, ValueError) as exc:
            self.warn.warning("audit", f"cannot write the audit log {self.audit_log.path}: {exc}")
