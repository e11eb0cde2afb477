"""Which hosts a command targets, and in what waves (like Salt's targeting and ``--batch``).

A target is one of:

- a host name: ``web01`` (passed through as is: the aggregator says when it does not know it);
- a glob: ``'web*'``, ``'db-[0-9]'`` (matched against the hosts the aggregator knows);
- a comma list of names and globs: ``web01,web02,'db*'`` (a name in it is kept even when the
  aggregator does not know it, so its refusal shows in the results);
- ``group:NAME``: the hosts of the config file's ``[groups.NAME]``, or else the hosts whose
  agent declared a label with the value NAME (``--label role=db`` is in ``group:db``);
  ``group:KEY=VALUE`` names the label exactly.

Pure: the known hosts (name, alive, labels) and the groups come in as arguments.
"""

from __future__ import annotations

import fnmatch
import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from ..errors import PerfmeshError
from ..model.address import HOST_NAME_RULE, is_host_name

LABEL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
GROUP_PREFIX = "group:"
_GLOB = re.compile(r"[*?\[]")


class TargetError(PerfmeshError):
    """A target that is malformed or selects no host."""


@dataclass(frozen=True)
class Target:
    text: str
    patterns: tuple[str, ...] = ()          # names and globs
    group: str | None = None                # group:NAME (or group:KEY=VALUE)

    @property
    def single(self) -> bool:
        """One plain host name: the command goes to it as before (no table)."""
        return self.group is None and len(self.patterns) == 1 and not _GLOB.search(self.patterns[0])


def parse_target(text: str) -> Target:
    if text.startswith(GROUP_PREFIX):
        group = text[len(GROUP_PREFIX):]
        key, sep, value = group.partition("=")
        if not LABEL_RE.fullmatch(key) or (sep and not LABEL_RE.fullmatch(value)):
            raise TargetError(f"target {text!r} is invalid; expected group:NAME or group:KEY=VALUE")
        return Target(text, group=group)
    patterns = tuple(p.strip() for p in text.split(","))
    if not all(patterns):
        raise TargetError(f"target {text!r} has an empty name; expected NAME, a glob like 'web*', "
                          "a comma list or group:NAME")
    for p in patterns:
        if not is_host_name(p if not _GLOB.search(p) else _GLOB.sub("x", p).replace("]", "")):
            raise TargetError(f"{p!r} is not a valid host name or glob; expected {HOST_NAME_RULE}, "
                              "with * ? [...] in a glob")
    return Target(text, patterns)


def select(target: Target, hosts: Sequence[Mapping[str, Any]],
           groups: Mapping[str, Callable[[str], bool]]) -> list[str]:
    """The names of the known ``hosts`` (status entries: name, info.labels) the target selects,
    sorted; a TargetError naming the target when it selects none."""
    if target.single:
        return [target.patterns[0]]
    names = sorted(str(h.get("name")) for h in hosts)
    if target.group is not None:
        if target.group in groups:
            chosen = [n for n in names if groups[target.group](n)]
        else:
            key, sep, value = target.group.partition("=")
            label_key, label_value = (key, value) if sep else (None, key)
            chosen = sorted(str(h.get("name")) for h in hosts if _labelled(h, label_key, label_value))
    else:   # a plain name is kept even when unknown: the aggregator's refusal names it in the table
        plain = [p for p in target.patterns if not _GLOB.search(p)]
        chosen = sorted({*plain, *(n for n in names if any(fnmatch.fnmatchcase(n, p) for p in target.patterns))})
    if not chosen:
        known = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "") or "none"
        where = f"; groups in the config: {', '.join(sorted(groups))}" if target.group is not None and groups else ""
        raise TargetError(f"target {target.text!r} matches no host; known hosts: {known}{where}")
    return chosen


def _labelled(host: Mapping[str, Any], key: str | None, value: str) -> bool:
    labels = (host.get("info") or {}).get("labels") or {}
    return any(v == value and (key is None or k == key) for k, v in labels.items())


def parse_batch(text: str) -> tuple[int, bool]:
    """``--batch N`` or ``N%``: (N, is a percentage)."""
    percent = text.endswith("%")
    digits = text[:-1] if percent else text
    if not digits.isdigit() or int(digits) < 1 or (percent and int(digits) > 100):
        raise TargetError(f"batch {text!r} is invalid; expected a number of hosts >= 1 or a percentage "
                          "from 1% to 100%")
    return int(digits), percent


def waves(hosts: Sequence[str], batch: tuple[int, bool] | None) -> list[list[str]]:
    """The hosts in waves of the batch size (all at once without a batch; a percentage of the
    selected hosts, rounded up, at least one)."""
    if not hosts:
        return []
    if batch is None:
        size = len(hosts)
    else:
        n, percent = batch
        size = max(1, math.ceil(len(hosts) * n / 100)) if percent else n
    return [list(hosts[i:i + size]) for i in range(0, len(hosts), size)]
