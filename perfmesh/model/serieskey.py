"""Series keys: the one encoder and the one parser of ``name{k=v,...}``.

A series is identified by its metric name and its labels: ``cpu_percent`` for a bare name,
``disk_read_bytes_per_s{device=sda}`` with labels, sorted by label name. Inside the braces a
label key or value escapes each of ``\\ , = { } "`` with a backslash, so any string survives
the round trip: ``parse_series_key(series_key(n, labels)) == (n, labels)``. Values holding none
of those characters are written as they are, so keys stored before escaping existed still read
back the same.

The parser is lenient with keys written by hand or by older code: a ``,`` that is not followed
by a ``label=`` belongs to the value (``x{a=1,b=p,q}`` has ``b`` = ``p,q``), and a key that does not
end in an unescaped ``}`` is a bare name.
"""

from __future__ import annotations

from typing import Mapping

ESCAPED = '\\,={}"'
"""The characters escaped with a backslash inside the braces (the backslash itself first)."""

_ESCAPE = str.maketrans({c: "\\" + c for c in ESCAPED})


def escape_label(text: str) -> str:
    """``text`` with each of ``\\ , = { } "`` preceded by a backslash."""
    return text.translate(_ESCAPE)


def series_key(name: str, labels: Mapping[str, str] | None = None) -> str:
    """The identity of a series: ``name`` or ``name{k=v,...}`` with sorted, escaped labels."""
    if not labels:
        return name
    inner = ",".join(f"{escape_label(str(k))}={escape_label(str(labels[k]))}"
                     for k in sorted(labels))
    return f"{name}{{{inner}}}"


def parse_series_key(key: str) -> tuple[str, dict[str, str]]:
    """``name{k=v,...}`` -> (name, labels), undoing :func:`series_key`'s escapes.

    A bare name, or a key without a closing ``}``, has no labels.
    """
    brace = key.find("{")
    if brace < 0 or not _closes(key):
        return key, {}
    labels: dict[str, str] = {}
    for part in _split(key, brace + 1, len(key) - 1):
        k, v = _pair(part)
        labels[k] = v
    return key[:brace], labels


def _closes(key: str) -> bool:
    """True when ``key`` ends in a ``}`` that no backslash escapes."""
    if not key.endswith("}"):
        return False
    slashes = len(key) - 1 - len(key[:-1].rstrip("\\"))
    return slashes % 2 == 0


def _split(key: str, start: int, end: int) -> list[str]:
    """The raw (still escaped) ``k=v`` parts between ``start`` and ``end``.

    Split at every unescaped ``,``; a piece with no unescaped ``=`` is the tail of the value
    before it (an unescaped comma written by older code).
    """
    parts: list[str] = []
    begin = i = start
    while i <= end:
        c = key[i] if i < end else ","
        if c == "\\":
            i += 2
            continue
        if c == ",":
            piece = key[begin:i]
            if parts and _equals_at(piece) < 0:
                parts[-1] += "," + piece
            elif piece or i < end:
                parts.append(piece)
            begin = i + 1
        i += 1
    return parts


def _equals_at(part: str) -> int:
    """The index of the first unescaped ``=`` in ``part``, or -1."""
    i = 0
    while i < len(part):
        c = part[i]
        if c == "\\":
            i += 2
            continue
        if c == "=":
            return i
        i += 1
    return -1


def _pair(part: str) -> tuple[str, str]:
    """One raw ``k=v`` part split at its first unescaped ``=``, both halves unescaped."""
    i = _equals_at(part)
    if i < 0:
        return _unescape(part), ""
    return _unescape(part[:i]), _unescape(part[i + 1:])


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)
