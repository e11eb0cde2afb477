"""Text of ``perfmesh replay``: one line per alert that would fire or resolve, and a summary."""

from __future__ import annotations

import time
from typing import Any

from ..rules.alerting import Alert


def _safe(text: Any) -> str:
    """Peer strings (host names from a recording) with control characters escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _span(seconds: float) -> str:
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"


def format_alert(a: Alert) -> str:
    """``2026-12-01 12:00:45  FIRING    critical  budget   web01  cpu_percent=85 (limit 50)``."""
    what = _safe(a.metric)
    if a.value is not None:
        what += f"={_num(a.value)}"
    if a.threshold is not None:
        what += f" ({'limit' if a.source == 'budget' else 'level'} {_num(a.threshold)})"
    if a.state == "resolved":
        what += f" after {_span(a.timestamp - a.started_at)}"
    elif a.previous_severity:
        what += f" (was {a.previous_severity})"
    name = "" if a.source in ("budget", "bottleneck") else f" [{_safe(a.name)}]"
    return (f"{_when(a.timestamp)}  {a.state.upper():<9} {a.severity:<9} {a.source:<10} "
            f"{_safe(a.host):<16} {what}{name}")


def format_summary(path: str, summary: dict[str, Any], elapsed_s: float) -> str:
    fired = summary["fired"]
    events = summary["recorded_events"]
    live = events.get("violation", 0)
    lines = [f"replayed {_safe(path)}: {summary['batches']} batches from {len(summary['hosts'])} host(s), "
             f"{_when(summary['first_ts'])} to {_when(summary['last_ts'])} "
             f"({_span(summary['span_s'])} of stream) in {elapsed_s:.2f}s",
             f"would fire: {fired.get('budget', 0)} budget violation(s), {fired.get('bottleneck', 0)} "
             f"bottleneck(s), {fired.get('rule', 0)} rule alert(s); still firing at the end: "
             f"{len(summary['still_firing'])}; the live stream had {live} violation event(s)"]
    if summary["bad_batches"]:
        lines.append(f"skipped {summary['bad_batches']} malformed batch(es)")
    return "\n".join(lines)
