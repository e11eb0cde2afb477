"""The keyboard of ``perfmesh top``: terminal input as key tokens, and the view state they
drive (sort, filter, selection, detail, quit). Pure: the terminal itself is in ``workers/view.py``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .dashboard import SORT_KEYS


def next_sort(current: str) -> str:
    """The sort key after ``current`` in :data:`SORT_KEYS` (wrapping)."""
    i = SORT_KEYS.index(current) if current in SORT_KEYS else -1
    return SORT_KEYS[(i + 1) % len(SORT_KEYS)]


@dataclass
class TopState:
    """What ``perfmesh top`` shows, driven by keys: sort, filter, selection, detail, quit.

    Keys are tokens from the terminal reader: single characters, or ``up``, ``down``,
    ``enter``, ``esc``, ``backspace``.
    """

    sort: str = "name"
    filter_text: str = ""
    editing_filter: bool = False
    selected: int = 0
    detail_host: str | None = None
    quit: bool = False

    def handle(self, key: str, names: Sequence[str]) -> None:
        """Apply one key, given the host names currently listed (in display order)."""
        if self.editing_filter:
            if key in ("enter", "esc"):
                self.editing_filter = False
                if key == "esc":
                    self.filter_text = ""
            elif key == "backspace":
                self.filter_text = self.filter_text[:-1]
            elif len(key) == 1 and key.isprintable():
                self.filter_text += key
            self.selected = 0
            return
        if key in ("q", "Q"):
            self.quit = True
        elif self.detail_host is not None:
            if key in ("esc", "backspace", "enter", "d", "left"):
                self.detail_host = None
        elif key == "s":
            self.sort = next_sort(self.sort)
        elif key == "/":
            self.editing_filter = True
        elif key in ("up", "k"):
            self.selected = max(0, self.selected - 1)
        elif key in ("down", "j"):
            self.selected = min(max(len(names) - 1, 0), self.selected + 1)
        elif key in ("enter", "d", "right") and names:
            self.detail_host = names[min(self.selected, len(names) - 1)]
        elif key == "esc":
            self.filter_text = ""

    def clamp(self, count: int) -> None:
        """Keep the selection inside a list of ``count`` rows."""
        self.selected = min(self.selected, max(count - 1, 0))


_ESCAPES = {"[A": "up", "[B": "down", "[C": "right", "[D": "left", "OA": "up", "OB": "down",
            "OC": "right", "OD": "left"}


def parse_keys(data: str) -> list[str]:
    """Terminal input (cbreak mode) -> key tokens: arrows, enter, esc, backspace or characters."""
    keys: list[str] = []
    i = 0
    while i < len(data):
        ch = data[i]
        if ch == "\x1b":
            seq = data[i + 1:i + 3]
            if seq in _ESCAPES:
                keys.append(_ESCAPES[seq])
                i += 3
                continue
            keys.append("esc")
        elif ch in "\r\n":
            keys.append("enter")
        elif ch in "\x7f\x08":
            keys.append("backspace")
        elif ch.isprintable():
            keys.append(ch)
        i += 1
    return keys

