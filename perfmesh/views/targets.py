"""The outcome of one command on many hosts: a per-host table and a summary line (like Salt's
and circusctl's), from the results in host order (pure)."""

from __future__ import annotations

from typing import Any, Sequence

from ..protocol import kinds
from .safe_text import safe_text

SKIPPED = "skipped"        # not run: an earlier wave failed (without --keep-going)


def _detail(result: dict[str, Any]) -> str:
    if result.get("error"):
        return str(result["error"])
    inner = result.get("result") or {}
    if isinstance(inner, dict) and inner.get("verdict"):
        ms = inner.get("duration_ms")
        return f"verdict {inner['verdict']}" + (f", {ms:.1f} ms" if isinstance(ms, (int, float)) else "")
    return ""


def format_table(results: Sequence[dict[str, Any]]) -> str:
    """``HOST  STATUS  DETAIL`` rows, columns aligned, control characters escaped."""
    rows = [("HOST", "STATUS", "DETAIL")] + [
        (safe_text(r.get("host", "?")), safe_text(r.get("status", "?")), safe_text(_detail(r)))
        for r in results]
    width = [max(len(row[i]) for row in rows) for i in range(2)]
    return "\n".join(f"{h:<{width[0]}}  {s:<{width[1]}}  {d}".rstrip() for h, s, d in rows)


def summary(results: Sequence[dict[str, Any]], strategy: str, stopped: bool) -> str:
    """``strategy on N hosts: a succeeded, b failed, c skipped (...)``."""
    ok = sum(r.get("status") == kinds.STATUS_SUCCESS for r in results)
    skipped = sum(r.get("status") == SKIPPED for r in results)
    failed = len(results) - ok - skipped
    line = (f"{safe_text(strategy)} on {len(results)} host{'s' if len(results) != 1 else ''}: "
            f"{ok} succeeded, {failed} failed, {skipped} skipped")
    if stopped:
        line += " (stopped after a failed wave; --keep-going runs every wave)"
    return line
