"""perfmesh.views.safe_text: control, C1 and bidi characters from peers shown as visible escapes."""

from __future__ import annotations

import pytest

from perfmesh.views.safe_text import safe_text


@pytest.mark.parametrize("raw,shown", [
    ("\x1b[2J", "\\x1b[2J"),                         # ESC (C0)
    ("\x1b]52;c;aGk=\x07", "\\x1b]52;c;aGk=\\x07"),  # OSC 52 clipboard write, BEL
    ("\x9b2J", "\\x9b2J"),                           # CSI as one C1 character
    ("a\x7fb\x00", "a\\x7fb\\x00"),                  # DEL, NUL
    ("a\nb\rc\td", "a\\nb\\rc\\td"),                 # no new lines or carriage returns from peers
    ("\u202eexe.txt", "\\u202eexe.txt"),             # right-to-left override
    ("\u2066x\u2069\u200f\u061c", "\\u2066x\\u2069\\u200f\\u061c"),   # isolates, RLM, ALM
    ("x\u2028y", "x\\u2028y"),                       # line separator
])
def test_control_and_bidi_characters_are_shown_escaped(raw, shown):
    """Each unsafe character becomes a visible \\xNN / \\uNNNN (or \\n, \\r, \\t) escape."""
    assert safe_text(raw) == shown


@pytest.mark.parametrize("text", ["web-01", "café ✓ 日本 🚀", "[bold]x[/bold]", "a\\x1b", ""])
def test_printable_text_is_unchanged(text):
    """Printable text in any script, rich markup and backslashes pass through as they are."""
    assert safe_text(text) == text


def test_non_strings_are_converted_then_escaped():
    """Numbers and None print as str(); a container's repr is escaped too."""
    assert safe_text(3) == "3" and safe_text(None) == "None"
    assert "\x1b" not in safe_text(["\x1b"])
