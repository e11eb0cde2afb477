"""perfmesh.protocol.kinds: every protocol name lives in one module, and no code spells one out."""

from __future__ import annotations

import ast
from pathlib import Path

from perfmesh.protocol import kinds, wire

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted((ROOT / "perfmesh").rglob("*.py")) + sorted((ROOT / "workers").rglob("*.py"))


def test_one_definition_of_each_set():
    """wire, the fleet, the command tracker, the client and the CLI use kinds' sets, not copies."""
    from perfmesh.mesh import commands, fleet
    from workers.cli import args as cli
    assert wire.KINDS is kinds.KINDS
    assert fleet.EVENT_TYPES is cli.EVENT_TYPES is kinds.EVENT_TYPES
    assert commands.TERMINAL_STATUSES is kinds.COMMAND_STATUSES


def test_the_names_have_their_wire_values():
    """The values on the wire do not change: old peers and stored data still match."""
    assert sorted(kinds.KINDS) == ["backfill", "command", "event", "heartbeat", "metrics", "register",
                                   "reply", "request", "result"]
    assert kinds.EVENT_TYPES == ("metric", "violation", "bottleneck", "command", "host", "gap")
    assert kinds.OPS == ("status", "history", "command", "alerts", "ack")
    assert kinds.COMMAND_STATUSES == ("success", "failed", "refused", "timeout", "unknown_outcome", "busy")
    assert (kinds.HOST_STATES, kinds.ALERT_STATES) == (("up", "down", "registered"), ("firing", "resolved"))


def _literal_uses(tree: ast.AST) -> list[tuple[int, str]]:
    """Protocol names written as literals where code compares or sends them."""
    found = []
    names = kinds.KINDS | set(kinds.EVENT_TYPES)
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and isinstance(node.left, ast.Attribute) \
                and node.left.attr in ("kind", "type"):
            for right in node.comparators:
                if isinstance(right, ast.Constant) and right.value in names:
                    found.append((node.lineno, f".{node.left.attr} compared with {right.value!r}"))
        elif isinstance(node, ast.Call):
            fn = node.func
            name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
            if name in ("encode", "topic", "Event", "_send_control") and node.args \
                    and isinstance(node.args[0], ast.Constant) and node.args[0].value in names | {kinds.BATCH}:
                found.append((node.lineno, f"{name}({node.args[0].value!r}, ...)"))
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value in ("op", "status") \
                        and isinstance(value, ast.Constant) \
                        and value.value in set(kinds.OPS) | set(kinds.COMMAND_STATUSES) | {"ok", "error"}:
                    found.append((node.lineno, f"{{{key.value!r}: {value.value!r}}}"))
    return found


def test_no_protocol_name_is_spelled_as_a_literal():
    """Kinds, event types, ops and statuses are compared and sent by name, in perfmesh/ and workers/."""
    offenders = [f"{p.relative_to(ROOT)}:{line}: {what}"
                 for p in SOURCES if p.name != "kinds.py"
                 for line, what in _literal_uses(ast.parse(p.read_text()))]
    assert offenders == []


def test_the_scan_sees_each_form():
    """The scan finds a literal in a comparison, a send, an event and a reply map."""
    tree = ast.parse('env.kind == "reply"\nwire.encode("metrics", h)\nEvent("gap", h)\n'
                     'x = {"status": "refused", "op": "history"}\nev.type != "violation"\n')
    assert len(_literal_uses(tree)) == 6
