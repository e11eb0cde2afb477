"""Peer-supplied strings made safe for a terminal: control characters shown escaped.

Labels, host info, errors and names come from agents, which are peers, not the operator. Printed
raw, an ``ESC [2J`` in a label would clear the operator's screen, an OSC sequence could retitle the
window or write the clipboard, and a bidi override could make ``exe.txt`` read as ``txt.exe``.
:func:`safe_text` is the one place that turns such characters into visible escapes; every view
that writes a peer string to a terminal passes it through here.
"""

from __future__ import annotations

import re
from typing import Any

# C0 (incl. ESC), DEL, C1 (incl. CSI 0x9b), line/paragraph separators, and the bidi controls:
# ALM, LRM, RLM, LRE..RLO (embeddings, overrides, PDF), LRI..PDI (isolates).
UNSAFE_RE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    if ch in NAMED:
        return NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def safe_text(value: Any) -> str:
    """``str(value)`` with every control, C1 and bidi character shown as a visible escape.

    ``"\\x1b[2J"`` becomes the six characters ``\\x1b[2J``; printable text (any script, emoji) is
    unchanged. Rich markup is not touched here: a view that uses rich passes the result as plain
    :class:`rich.text.Text`, never as markup.
    """
    text = value if isinstance(value, str) else str(value)
    return UNSAFE_RE.sub(_escape, text) if UNSAFE_RE.search(text) else text
