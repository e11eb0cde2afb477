"""Plain-text renderings of stream events and fleet status (pure functions).

Every line is built from peer-supplied strings (host info, labels, errors), so each function
returns it through :func:`~perfmesh.views.safe_text.safe_text`: control characters show escaped.
"""

from __future__ import annotations

import time
from typing import Any

from .safe_text import safe_text
from ..model.serieskey import series_key
from ..protocol import kinds


def _clock(ts: Any) -> str:
    if not isinstance(ts, (int, float)):
        return "--:--:--"
    return time.strftime("%H:%M:%S", time.localtime(ts))


def format_value(value: Any, unit: str = "") -> str:
    if not isinstance(value, (int, float)):
        return str(value)
    if unit in ("B", "B/s", "bytes"):
        for suffix in ("", "K", "M", "G", "T"):
            if abs(value) < 1024 or suffix == "T":
                break
            value /= 1024
        return f"{value:.1f}{suffix}{unit}"
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return f"{text}{unit if unit in ('%', 'ms') else (' ' + unit if unit else '')}"


def format_event(ev: dict[str, Any]) -> str:
    """One readable line per stream event, control characters escaped."""
    return safe_text(_event_line(ev))


def _event_line(ev: dict[str, Any]) -> str:
    kind, host, when = ev.get("type", "?"), ev.get("host", "?"), _clock(ev.get("timestamp"))
    if kind == kinds.EVENT_METRIC:
        return (f"{when} {host:<16} {ev.get('category', ''):<8} "
                f"{series_key(str(ev.get('name', '')), ev.get('labels'))} = {format_value(ev.get('value'), ev.get('unit', ''))}")
    if kind == kinds.EVENT_VIOLATION:
        return (f"{when} {host:<16} VIOLATION {ev.get('state', 'firing')} {ev.get('severity', '')} "
                f"{ev.get('metric')} = {format_value(ev.get('value'))} (limit {format_value(ev.get('limit'))})")
    if kind == kinds.EVENT_BOTTLENECK:
        strategy = ev.get("recommended_strategy")
        return (f"{when} {host:<16} BOTTLENECK {ev.get('kind')} ({ev.get('severity')})"
                + (f", try {strategy}" if strategy else ""))
    if kind == kinds.EVENT_HOST:
        return f"{when} {host:<16} host {ev.get('state')}"
    if kind == kinds.EVENT_GAP:
        return f"{when} {host:<16} GAP {ev.get('missing')} batches (seq {ev.get('first_seq')}..{ev.get('last_seq')})"
    if kind == kinds.EVENT_COMMAND:
        err = f": {ev['error']}" if ev.get("error") else ""
        return f"{when} {host:<16} command {ev.get('strategy')} {ev.get('status')}{err}"
    return f"{when} {host:<16} {kind} {ev}"


def format_status(status: dict[str, Any], now: float | None = None) -> str:
    """The fleet as a table, one line per host (and per violation), control characters escaped."""
    now = time.time() if now is None else now
    hosts = status.get("hosts", [])
    if not hosts:
        return "no hosts have reported yet"
    lines = [f"{'HOST':<20} {'STATE':<6} {'HEALTH':<8} {'SEEN':>6} {'BATCHES':>8} {'GAPS':>5} {'BAD':>5}  COLLECTORS"]
    for h in hosts:
        c = h.get("counters", {})
        collectors = " ".join(f"{x.get('kind')}:{x.get('pid') or '-'}/r{x.get('restarts', 0)}"
                              for x in h.get("collectors", []))
        lines.append(f"{h['name']:<20} {'up' if h.get('alive') else 'DOWN':<6} {h.get('health', '?'):<8} "
                     f"{now - h.get('last_seen', now):>5.0f}s {c.get('batches', 0):>8} {c.get('gaps', 0):>5} "
                     f"{c.get('bad_frames', 0):>5}  {collectors}")
        for v in h.get("budget_violations", []):
            lines.append(f"  ! {v.get('severity')} {v.get('metric')} = {format_value(v.get('value'))} "
                         f"(limit {format_value(v.get('limit'))})")
    return "\n".join(safe_text(line) for line in lines)


def format_command_result(result: dict[str, Any]) -> str:
    """``host: strategy -> status[: error] (verdict ...)``, control characters escaped."""
    status = result.get("status", "?")
    line = f"{result.get('host', '?')}: {result.get('strategy', '?')} -> {status}"
    if result.get("error"):
        line += f": {result['error']}"
    inner = result.get("result") or {}
    if isinstance(inner, dict) and inner.get("verdict"):
        line += f" (verdict {inner['verdict']}"
        if inner.get("duration_ms") is not None:
            line += f", {inner['duration_ms']:.1f} ms"
        line += ")"
    return safe_text(line)
