"""Flag values of the ``perfmesh`` command line: their checks (one line, exit status 2, before
anything connects), the usage error, and which flags were given (they override the config
file; an unused flag's default does not)."""

from __future__ import annotations

import argparse
import json
import math
import re
from typing import Any

from perfmesh.errors import ConfigError, PerfmeshError
from perfmesh.model.address import MAX_BASE_PORT, check_host_name
from perfmesh.mesh.targeting import LABEL_RE
from perfmesh.model.duration import EXPECTED, parse_duration as _parse_duration


class CliError(PerfmeshError):
    """A usage error: printed as one line, exit status 2."""


class _Given(argparse.Action):
    """Store the value (or ``const`` for a switch) and remember the flag was given, so it
    overrides the config file while an unused flag's default does not."""

    def __call__(self, parser, namespace, values, option_string=None):  # type: ignore[override]
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)
        namespace.given = {*getattr(namespace, "given", ()), self.dest}


def flags_given(args: argparse.Namespace, names: dict[str, str]) -> dict[str, Any]:
    """Config key -> flag value, for the flags in ``names`` (dest -> key) that were given."""
    given = getattr(args, "given", set())
    return {key: getattr(args, dest) for dest, key in names.items() if dest in given}


def _http_url(text: str) -> str:
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not an http:// or https:// URL")
    return text


def parse_duration(text: str) -> float:
    """A time span flag: ``30s``, ``10m``, ``2h``, ``7d`` or plain seconds (> 0)."""
    try:
        return _parse_duration(text)
    except ConfigError:
        raise argparse.ArgumentTypeError(f"duration {text!r} must be {EXPECTED}") from None


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive whole number")
    return int(text)


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} must be a whole number >= 0")
    return int(text)


def _clear_percent(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"{text!r} must be a percentage from 0 to 100")
    return value


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_BASE_PORT:
        raise argparse.ArgumentTypeError(f"{text!r} must be a port number from 1 to {MAX_BASE_PORT}")
    return int(text)


def _host_name(text: str) -> str:
    try:
        return check_host_name(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_budget(text: str) -> tuple[str, float]:
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"budget {text!r} must be NAME=LIMIT, e.g. cpu_percent=90")
    try:
        limit = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"budget {name}: limit {raw!r} is not a number") from None
    if not math.isfinite(limit) or limit < 0:
        raise argparse.ArgumentTypeError(f"budget {name}: limit {raw!r} must be a finite number >= 0")
    return name, limit


def parse_label(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not LABEL_RE.fullmatch(key) or not LABEL_RE.fullmatch(value):
        raise argparse.ArgumentTypeError(f"label {text!r} must be KEY=VALUE of letters, digits, . _ -, "
                                         "e.g. role=db")
    return key, value


def parse_param(text: str) -> tuple[str, Any]:
    """``key=value``: JSON values (numbers, true/false, [lists]), ``0,1`` as a list of ints, else a string."""
    key, sep, raw = text.partition("=")
    if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        raise CliError(f"parameter {text!r} must be key=value with a plain key, e.g. generation=2")
    if re.fullmatch(r"-?\d+(,-?\d+)+", raw):
        return key, [int(x) for x in raw.split(",")]
    try:
        return key, json.loads(raw, parse_constant=_no_constant)
    except ValueError:
        return key, raw


def _no_constant(name: str) -> Any:
    """json.loads hook: NaN and Infinity stay text; only finite numbers go on the wire."""
    raise ValueError(f"{name} is not a finite number")
