"""An append-only audit log: one JSON object per line, written with O_APPEND and flushed.

Who asked for what, when, with which parameters, and how it ended. The file is never
rewritten; reading it back tolerates a torn last line (a crash mid-write).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator


MAX_DEPTH = 16


def _jsonable(value: Any, depth: int = 0) -> Any:
    """Untrusted data as JSON-able data: keys become text, depth and odd types are cut short."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if depth >= MAX_DEPTH:
        return "<nested too deep>"
    if isinstance(value, dict):
        return {k if isinstance(k, str) else repr(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, depth + 1) for v in value]
    return repr(value)[:200]


class AuditLog:
    def __init__(self, path: str | os.PathLike, fsync: bool = True) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def append(self, entry: dict[str, Any]) -> None:
        try:
            line = json.dumps(entry, sort_keys=True, default=str) + "\n"
        except (TypeError, ValueError, RecursionError):   # hostile params: bytes keys, deep nesting
            line = json.dumps(_jsonable(entry), sort_keys=True) + "\n"
        os.write(self._fd, line.encode())
        if self.fsync:
            os.fsync(self._fd)

    def entries(self) -> Iterator[dict[str, Any]]:
        """Every whole entry in order; a torn or corrupt line is skipped."""
        try:
            with open(self.path, "rb") as f:
                for raw in f:
                    try:
                        entry = json.loads(raw)
                    except ValueError:
                        continue
                    if isinstance(entry, dict):
                        yield entry
        except FileNotFoundError:
            return

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
