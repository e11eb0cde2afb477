"""Durations, written once: ``30s``, ``10m``, ``2h``, ``7d`` or plain seconds (``600``, ``0.5``).

Every flag and setting that is a time span (``--since``, ``--timeout``, ``--interval``,
``--duration``, ...) parses through :func:`parse_duration`.
"""

from __future__ import annotations

import re

from ..errors import ConfigError

UNIT_S = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([smhd]?)")
EXPECTED = "a positive number of seconds, or a number with a unit s, m, h or d (30s, 10m, 2h, 7d)"


def parse_duration(text: str) -> float:
    """``text`` in seconds (> 0); ConfigError naming the text and what was expected otherwise."""
    match = _DURATION.fullmatch(text.strip()) if isinstance(text, str) else None
    seconds = float(match.group(1)) * UNIT_S[match.group(2)] if match else 0.0
    if seconds <= 0:
        raise ConfigError(f"duration {text!r} is invalid; expected {EXPECTED}")
    return seconds


def format_duration(seconds: float) -> str:
    """The short form people read: ``45s``, ``12m``, ``3h05m``, ``2d04h``."""
    s = int(round(max(0.0, seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s" if s % 60 else f"{s // 60}m"
    if s < 86_400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86_400}d{s % 86_400 // 3600:02d}h"
