"""The alert log as text: one line per alert, newest first (pure; peer strings escaped)."""

from __future__ import annotations

import time
from typing import Any, Sequence

from ..model.duration import format_duration
from .render import format_value
from .safe_text import safe_text

HEADER = ("ID", "FIRED", "HOST", "METRIC", "SEVERITY", "VALUE", "LIMIT", "DURATION", "ACK")


def _row(a: dict[str, Any]) -> tuple[str, ...]:
    fired = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(a["fired"])) if a.get("fired") else "?"
    duration = format_duration(a["duration_s"]) if isinstance(a.get("duration_s"), (int, float)) else "?"
    return (str(a.get("id")), fired, safe_text(a.get("host")), safe_text(a.get("metric")),
            safe_text(a.get("severity")), format_value(a.get("value")), format_value(a.get("limit")),
            duration + (" (active)" if a.get("active") else ""), safe_text(a.get("acked_by") or "-"))


def format_alert_log(alerts: Sequence[dict[str, Any]]) -> str:
    rows = [HEADER] + [_row(a) for a in alerts]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
