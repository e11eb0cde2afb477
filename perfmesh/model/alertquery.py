"""What an alert log request asks for (the api's ``alerts`` op; the store answers it)."""

from __future__ import annotations

from dataclasses import dataclass

MAX_PAGE = 1000
DEFAULT_PAGE = 100


@dataclass(frozen=True)
class AlertQuery:
    host: str | None = None
    since: float = 0.0               # alerts active at any time since then
    active: bool = False             # only those still firing
    before: int | None = None        # page cursor: entries with a smaller id
    limit: int = DEFAULT_PAGE
