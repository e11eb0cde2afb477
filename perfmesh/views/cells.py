"""Cells of a fleet table as text: sparklines, bars, warning levels and compact byte counts
(pure; ``perfmesh top`` draws them, the web page has its own)."""

from __future__ import annotations

from typing import Sequence

SPARK_CHARS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float], width: int, lo: float | None = None, hi: float | None = None) -> str:
    """The last ``width`` values as block characters, scaled to [lo, hi] (default: their range).

    Shorter input is padded on the left with spaces, so the newest value is always rightmost.
    """
    if width <= 0:
        return ""
    tail = [float(v) for v in list(values)[-width:]]
    if not tail:
        return " " * width
    lo = min(tail) if lo is None else lo
    hi = max(tail) if hi is None else hi
    span = hi - lo
    top = len(SPARK_CHARS) - 1
    chars = []
    for v in tail:
        frac = 0.0 if span <= 0 else (min(max(v, lo), hi) - lo) / span
        chars.append(SPARK_CHARS[round(frac * top)])
    return " " * (width - len(tail)) + "".join(chars)


def bar(fraction: float | None, width: int) -> str:
    """A horizontal bar of ``width`` cells, filled to ``fraction`` (clamped to 0..1) in eighths."""
    if width <= 0:
        return ""
    if fraction is None:
        return " " * width
    eighths = round(min(max(fraction, 0.0), 1.0) * width * 8)
    full, part = divmod(eighths, 8)
    partial = " ▏▎▍▌▋▊▉"[part] if part else ""
    return ("█" * full + partial).ljust(width)


def level(value: float | None, warn: float, crit: float) -> str:
    """'ok', 'warn' or 'crit' for a value against two thresholds ('none' without a value)."""
    if value is None:
        return "none"
    return "crit" if value >= crit else "warn" if value >= warn else "ok"


def compact_bytes(value: float | None) -> str:
    """A byte count in at most 4 characters: ``0``, ``999``, ``1.2K``, ``34K``, ``567M``, ``1.2G``."""
    if value is None:
        return "-"
    value = max(float(value), 0.0)
    for suffix in ("", "K", "M", "G", "T", "P"):
        if value < 999.5 or suffix == "P":
            break
        value /= 1024
    if suffix == "":
        return f"{value:.0f}"
    return f"{value:.1f}{suffix}" if value < 9.95 else f"{value:.0f}{suffix}"
