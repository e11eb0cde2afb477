"""The keyboard of ``perfmesh top``: terminal input as key tokens, and the view state they
drive (sort, filter, selection, detail, quit). Pure: the terminal itself is in ``workers/view.py``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .dashboard import SORT_KEYS


# direct sort keys, as in htop (P, M) and glances (c, m, i): upper case, so the lower-case
# letters stay free for the other keys
SORT_BY_KEY = {"N": "name", "P": "cpu", "M": "memory", "L": "load", "I": "disk", "W": "net", "H": "health"}

HELP: tuple[tuple[str, str], ...] = (
    ("? h", "this help (any key closes it)"),
    ("s", "next sort column"),
    *((k, f"sort by {v}") for k, v in SORT_BY_KEY.items()),
    ("r", "reverse the sort order"),
    ("p space", "pause / resume the display (the feed keeps running)"),
    ("/", "filter hosts by name (enter applies, esc clears)"),
    ("↑ ↓ k j", "select a host"),
    ("enter d →", "host detail (esc goes back)"),
    ("q", "quit"),
)


def next_sort(current: str) -> str:
    """The sort key after ``current`` in :data:`SORT_KEYS` (wrapping)."""
    i = SORT_KEYS.index(current) if current in SORT_KEYS else -1
    return SORT_KEYS[(i + 1) % len(SORT_KEYS)]


@dataclass
class TopState:
    """What ``perfmesh top`` shows, driven by keys: sort (and its direction), filter, selection,
    detail, help, pause, quit.

    Keys are tokens from the terminal reader: single characters, or ``up``, ``down``,
    ``enter``, ``esc``, ``backspace``.
    """

    sort: str = "name"
    filter_text: str = ""
    editing_filter: bool = False
    selected: int = 0
    detail_host: str | None = None
    reverse: bool = False
    paused: bool = False
    help: bool = False
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
        elif self.help:
            self.help = False                   # any key closes the help
        elif key in ("?", "h"):
            self.help = True
        elif key in ("p", " "):
            self.paused = not self.paused
        elif self.detail_host is not None:
            if key in ("esc", "backspace", "enter", "d", "left"):
                self.detail_host = None
        elif key == "s":
            self.sort = next_sort(self.sort)
        elif key in SORT_BY_KEY:
            self.sort = SORT_BY_KEY[key]
        elif key == "r":
            self.reverse = not self.reverse
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

