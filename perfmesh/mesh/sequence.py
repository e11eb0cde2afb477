"""Per-host sequence tracking: new batches, gaps to backfill, backfilled batches, duplicates."""

from __future__ import annotations

from dataclasses import dataclass, field

NEW, BACKFILL, DUPLICATE = "new", "backfill", "duplicate"


@dataclass
class SeqTracker:
    """What one host's (boot, seq) stream looks like from the receiving end.

    ``missing`` holds the ranges still expected through backfill, oldest first, at most
    ``max_ranges`` (past that the oldest range is given up and returned by :meth:`observe`).
    """

    max_ranges: int = 256
    boot: str | None = None
    last: int = 0
    missing: list[list[int]] = field(default_factory=list)

    def observe(self, boot: str, seq: int) -> tuple[str, tuple[int, int] | None, list[tuple[int, int]]]:
        """Classify one batch.

        Returns (verdict, new gap to request or None, ranges given up: old boot's or overflow).
        """
        given_up: list[tuple[int, int]] = []
        if boot != self.boot:
            given_up = [(a, b) for a, b in self.missing]
            # joining mid-stream (we restarted, or first sight): nothing before is owed
            self.boot, self.last, self.missing = boot, seq - 1, []
        if seq > self.last:
            gap = (self.last + 1, seq - 1) if seq > self.last + 1 else None
            if gap:
                self.missing.append([gap[0], gap[1]])
                while len(self.missing) > self.max_ranges:
                    a, b = self.missing.pop(0)
                    given_up.append((a, b))
            self.last = seq
            return NEW, gap, given_up
        if self._take(seq):
            return BACKFILL, None, given_up
        return DUPLICATE, None, given_up

    def resume(self, boot: str, last: int, missing: list[tuple[int, int]] | None = None) -> None:
        """Start from persisted state (after an aggregator restart)."""
        self.boot, self.last = boot, last
        self.missing = [[a, b] for a, b in (missing or [])]

    def give_up(self, first: int, last: int) -> list[tuple[int, int]]:
        """The sender cannot provide [first, last]: stop expecting it; returns what was dropped."""
        dropped = []
        kept = []
        for a, b in self.missing:
            lo, hi = max(a, first), min(b, last)
            if lo > hi:
                kept.append([a, b])
                continue
            dropped.append((lo, hi))
            if a < lo:
                kept.append([a, lo - 1])
            if hi < b:
                kept.append([hi + 1, b])
        self.missing = kept
        return dropped

    def _take(self, seq: int) -> bool:
        for i, (a, b) in enumerate(self.missing):
            if a <= seq <= b:
                pieces = [[a, seq - 1]] if a < seq else []
                if seq < b:
                    pieces.append([seq + 1, b])
                self.missing[i:i + 1] = pieces
                return True
        return False

    @property
    def missing_count(self) -> int:
        return sum(b - a + 1 for a, b in self.missing)
