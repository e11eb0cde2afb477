"""Validation of the perfmesh TOML file: every problem at once, each with its dotted key.

Pure: :func:`check` takes the parsed TOML (a dict) and returns every problem, each with its
dotted key and what was expected (an empty list: the config is valid). The field tables say,
for each table of the file, which keys it may hold and what each must be.

    >>> [str(i) for i in check({"agent": {"interval_s": -1}})]
    ['agent.interval_s: is -1; expected a number > 0']
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ..collect.collection import COLLECTOR_KINDS
from ..errors import ConfigError
from ..model.address import HOST_NAME_RE, HOST_NAME_RULE, MAX_BASE_PORT, parse_connect, parse_listen
from ..model.metric import METRIC_NAME_RE, is_finite_number as _is_number
from ..mesh.targeting import LABEL_RE
from ..optimize.engine import NAME_RE as STRATEGY_NAME_RE
from ..rules.analysis import BOTTLENECK_KINDS

CONFIG_VERSION = 1
_NAME_RE = re.compile(METRIC_NAME_RE.pattern.removesuffix(r"\Z") + r"(\{.*\})?\Z")   # a name or series key
_STRATEGY_RE = STRATEGY_NAME_RE
_URL_RE = re.compile(r"https?://[^\s/]+(/\S*)?\Z")
AGENT_KINDS = COLLECTOR_KINDS


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a config: the dotted key and what is wrong with it."""

    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


# ---------------------------------------------------------------- validators
# Each returns an error message (what was expected) or None when the value is fine.
Check = Callable[[Any], "str | None"]


def _number(minimum: float | None = None, *, above: bool = False,
            maximum: float | None = None) -> Check:
    def check(v: Any) -> str | None:
        bad = not _is_number(v) or (minimum is not None and (v <= minimum if above else v < minimum)) \
            or (maximum is not None and v > maximum)
        if not bad:
            return None
        parts = []
        if minimum is not None:
            parts.append(f"{'>' if above else '>='} {minimum:g}")
        if maximum is not None:
            parts.append(f"<= {maximum:g}")
        return "expected a number" + (" " + " and ".join(parts) if parts else "")
    return check


def _integer(minimum: int, maximum: int | None = None) -> Check:
    def check(v: Any) -> str | None:
        if isinstance(v, int) and not isinstance(v, bool) and v >= minimum \
                and (maximum is None or v <= maximum):
            return None
        return f"expected a whole number >= {minimum}" + (f" and <= {maximum}" if maximum else "")
    return check


def _labels(v: Any) -> str | None:
    if isinstance(v, dict) and all(isinstance(k, str) and LABEL_RE.fullmatch(k) and isinstance(x, str)
                                   and LABEL_RE.fullmatch(x) for k, x in v.items()):
        return None
    return "expected a table of labels, e.g. { role = \"db\" } (letters, digits, . _ -)"


def _bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else "expected true or false"


def _string(v: Any) -> str | None:
    return None if isinstance(v, str) and v else "expected a non-empty string"


def _matching(regex: re.Pattern, what: str) -> Check:
    def check(v: Any) -> str | None:
        return None if isinstance(v, str) and regex.match(v) else f"expected {what}"
    return check


def _parses(parser: Callable[[str], Any], what: str) -> Check:
    def check(v: Any) -> str | None:
        try:
            parser(v)
        except ConfigError:
            return f"expected {what}"
        return None
    return check


_listen = _parses(parse_listen, "ADDR:PORT, e.g. 127.0.0.1:9790")


def _one_of(choices: tuple[str, ...]) -> Check:
    def check(v: Any) -> str | None:
        return None if v in choices else f"expected one of {', '.join(choices)}"
    return check


def _list_of(item: Check, what: str, allow_empty: bool = True) -> Check:
    def check(v: Any) -> str | None:
        if isinstance(v, list) and (allow_empty or v) and all(item(x) is None for x in v):
            return None
        return f"expected a {'' if allow_empty else 'non-empty '}list of {what}"
    return check


def _selector(v: Any) -> str | None:
    if isinstance(v, str) and v:
        return None
    if isinstance(v, list) and v and all(isinstance(x, str) and x for x in v):
        return None
    return "expected a host name or glob pattern, or a non-empty list of them"


def _table(v: Any) -> str | None:
    return None if isinstance(v, dict) else "expected a table"


def _show(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


class _Checker:
    def __init__(self) -> None:
        self.issues: list[ConfigIssue] = []

    def add(self, key: str, message: str) -> None:
        self.issues.append(ConfigIssue(key, message))

    def table(self, raw: Any, key: str, fields: Mapping[str, Check],
              required: tuple[str, ...] = ()) -> dict[str, Any]:
        """Check a table against its fields; returns the table (or {} when it is not one)."""
        if not isinstance(raw, dict):
            self.add(key, f"is {_show(raw)}; expected a table")
            return {}
        for name in required:
            if name not in raw:
                self.add(f"{key}.{name}", "is missing; it is required")
        for name, value in raw.items():
            check = fields.get(name)
            if check is None:
                self.add(f"{key}.{name}", f"unknown key; expected one of {', '.join(sorted(fields))}")
                continue
            problem = check(value)
            if problem is not None:
                self.add(f"{key}.{name}", f"is {_show(value)}; {problem}")
        return raw

    def limits(self, raw: Any, key: str) -> None:
        if not isinstance(raw, dict):
            self.add(key, f"is {_show(raw)}; expected a table of metric = limit")
            return
        for name, limit in raw.items():
            if not _NAME_RE.match(name):
                self.add(f"{key}.{name}", "is not a metric name; expected letters, digits, '_', '.', ':'")
            elif not _is_number(limit) or limit < 0:
                self.add(f"{key}.{name}", f"is {_show(limit)}; expected a number >= 0")

    def array(self, raw: Any, key: str) -> list[Any]:
        if not isinstance(raw, list):
            self.add(key, f"is {_show(raw)}; expected an array of tables ([[{key}]])")
            return []
        return raw


AGGREGATOR_FIELDS: dict[str, Check] = {
    "bind": _string,
    "port": _integer(1, MAX_BASE_PORT),
    "keys_dir": _string,
    "heartbeat_s": _number(0, above=True),
    "snapshot_interval_s": _number(0, above=True),
    "auto_optimize": _bool,
    "command_timeout_s": _number(0, above=True),
    "max_hosts": _integer(1),
    "max_series_per_host": _integer(1),
    "metrics_listen": _listen,
    "budget_for_samples": _integer(0),
    "budget_clear_percent": _number(0, maximum=100),
}
AGENT_FIELDS: dict[str, Check] = {
    "connect": _parses(parse_connect, "HOST[:BASE_PORT], e.g. 10.0.0.5:7700"),
    "name": _matching(HOST_NAME_RE, HOST_NAME_RULE),
    "interval_s": _number(0, above=True),
    "heartbeat_s": _number(0, above=True),
    "key": _string,
    "server_key": _string,
    "commands": _bool,
    "allow": _list_of(_matching(_STRATEGY_RE, ""), "strategy names"),
    "kinds": _list_of(_one_of(AGENT_KINDS), f"collector kinds ({', '.join(AGENT_KINDS)})", False),
    "labels": _labels,
}
CLIENT_FIELDS: dict[str, Check] = {
    "connect": AGENT_FIELDS["connect"],
    "key": _string,
    "server_key": _string,
    "insecure": _bool,
}
ROLLUP_STEP_S = 60
ROLLUP_FIELDS: dict[str, Check] = {"step_s": _number(0, above=True), "keep_s": _number(0, above=True)}
RETENTION_FIELDS: dict[str, Check] = {
    "history_rows": _integer(1),
    "data_dir": _string,
    "raw_window_s": _number(0, above=True),
    "rollups": lambda v: None if isinstance(v, list) else "expected an array of tables",
}
GROUP_FIELDS: dict[str, Check] = {"hosts": _selector, "budgets": _table}
ALERT_FIELDS: dict[str, Check] = {
    "name": _matching(re.compile(r"[A-Za-z0-9_.:-]{1,128}\Z"), "a name (letters, digits, '_', '.', ':', '-')"),
    "metric": _matching(_NAME_RE, "a metric name or series key, e.g. cpu_percent or disk_busy_percent{device=sda}"),
    "warning": _number(),
    "critical": _number(),
    "for_samples": _integer(1),
    "for_s": _number(0),
    "clear": _number(),
    "repeat_s": _number(0, above=True),
    "hosts": _selector,
    "group": _string,
    "labels": _bool,
    "stale_s": _number(0, above=True),
    "summary": _string,
}
POLICY_FIELDS: dict[str, Check] = {
    "bottleneck": _one_of(BOTTLENECK_KINDS),
    "strategy": _matching(_STRATEGY_RE, "a strategy name (a-z, 0-9, '_', '.', '-')"),
    "hosts": _selector,
    "group": _string,
    "min_interval_s": _number(0, above=True),
    "params": _table,
}
WEBHOOK_FIELDS: dict[str, Check] = {
    "url": _matching(_URL_RE, "an http:// or https:// URL"),
    "timeout_s": _number(0, above=True),
    "max_queue": _integer(1),
    "headers": lambda v: None if isinstance(v, dict) and all(
        isinstance(k, str) and isinstance(x, str) for k, x in v.items()) else "expected a table of strings",
}
ALERTMANAGER_FIELDS: dict[str, Check] = {
    "url": _matching(_URL_RE, "an http:// or https:// URL (the Alertmanager base, e.g. http://127.0.0.1:9093)"),
    "timeout_s": _number(0, above=True),
    "max_queue": _integer(1),
    "resend_s": _number(0, above=True),
}
ALERTING_FIELDS: dict[str, Check] = {"violations": _bool, "bottlenecks": _bool}
BURN_FIELDS: dict[str, Check] = {
    "allowed_fraction": _number(0, above=True, maximum=1),
    "windows_s": _list_of(_number(0, above=True), "numbers of seconds > 0", False),
    "bucket_s": _number(0, above=True),
}
SECTIONS = ("version", "aggregator", "agent", "retention", "budgets", "groups", "alerts",
            "auto_optimize", "webhooks", "alertmanagers", "alerting", "burn_rate", "client")


def check(raw: Any) -> list[ConfigIssue]:
    """Every problem of a parsed config, in file order (an empty list: the config is valid)."""
    c = _Checker()
    if not isinstance(raw, dict):
        c.add("(top)", f"is {_show(raw)}; expected a table")
        return c.issues
    for key in raw:
        if key not in SECTIONS:
            c.add(key, f"unknown key; expected one of {', '.join(SECTIONS)}")
    if "version" in raw and (raw["version"] != CONFIG_VERSION or isinstance(raw["version"], bool)):
        c.add("version", f"is {_show(raw['version'])}; expected {CONFIG_VERSION}")
    for name, fields in (("aggregator", AGGREGATOR_FIELDS), ("agent", AGENT_FIELDS),
                         ("alerting", ALERTING_FIELDS), ("client", CLIENT_FIELDS)):
        if name in raw:
            c.table(raw[name], name, fields)
    if "retention" in raw:
        retention = c.table(raw["retention"], "retention", RETENTION_FIELDS)
        if isinstance(retention.get("rollups"), list):
            for i, r in enumerate(retention["rollups"]):
                r = c.table(r, f"retention.rollups[{i}]", ROLLUP_FIELDS, ("step_s", "keep_s"))
                if _is_number(r.get("step_s")) and _is_number(r.get("keep_s")) and r["keep_s"] < r["step_s"]:
                    c.add(f"retention.rollups[{i}].keep_s",
                          f"is {r['keep_s']}; expected at least step_s ({r['step_s']})")
                if _is_number(r.get("step_s")) and r["step_s"] != ROLLUP_STEP_S:
                    c.add(f"retention.rollups[{i}].step_s",
                          f"is {r['step_s']}; expected {ROLLUP_STEP_S} (the store keeps per-minute rollups)")
            if len(retention["rollups"]) > 1:
                c.add("retention.rollups", f"has {len(retention['rollups'])} levels; expected one "
                      f"(step_s = {ROLLUP_STEP_S}); longer history belongs in Prometheus")
    if "budgets" in raw:
        c.limits(raw["budgets"], "budgets")
    groups = raw.get("groups", {})
    if not isinstance(groups, dict):
        c.add("groups", f"is {_show(groups)}; expected tables [groups.NAME]")
        groups = {}
    for gname, group in groups.items():
        g = c.table(group, f"groups.{gname}", GROUP_FIELDS, ("hosts",))
        if "budgets" in g and isinstance(g["budgets"], dict):
            c.limits(g["budgets"], f"groups.{gname}.budgets")
    names: set[str] = set()
    for i, rule in enumerate(c.array(raw.get("alerts", []), "alerts")):
        key = f"alerts[{i}]"
        r = c.table(rule, key, ALERT_FIELDS, ("name", "metric"))
        _check_selector_group(c, r, key, groups)
        if isinstance(r.get("name"), str):
            if r["name"] in names:
                c.add(f"{key}.name", f"{r['name']!r} is used twice; expected unique rule names")
            names.add(r["name"])
        if r and "warning" not in r and "critical" not in r:
            c.add(key, "has no level; expected warning and/or critical")
        levels = [r[k] for k in ("warning", "critical") if _is_number(r.get(k))]
        if len(levels) == 2 and levels[1] < levels[0]:
            c.add(f"{key}.critical", f"is {levels[1]}; expected >= warning ({levels[0]})")
        if levels and _is_number(r.get("clear")) and r["clear"] > min(levels):
            c.add(f"{key}.clear", f"is {r['clear']}; expected <= the lowest level ({min(levels)})")
    for i, policy in enumerate(c.array(raw.get("auto_optimize", []), "auto_optimize")):
        key = f"auto_optimize[{i}]"
        p = c.table(policy, key, POLICY_FIELDS, ("bottleneck", "strategy"))
        _check_selector_group(c, p, key, groups)
    for section, fields in (("webhooks", WEBHOOK_FIELDS), ("alertmanagers", ALERTMANAGER_FIELDS)):
        for i, target in enumerate(c.array(raw.get(section, []), section)):
            c.table(target, f"{section}[{i}]", fields, ("url",))
    if "burn_rate" in raw:
        b = c.table(raw["burn_rate"], "burn_rate", BURN_FIELDS)
        windows = b.get("windows_s")
        if _is_number(b.get("bucket_s")) and isinstance(windows, list) and windows \
                and all(_is_number(w) for w in windows) and b["bucket_s"] > min(windows):
            c.add("burn_rate.bucket_s", f"is {b['bucket_s']}; expected <= the shortest window ({min(windows)})")
    return c.issues


def _check_selector_group(c: _Checker, table: dict, key: str, groups: Mapping[str, Any]) -> None:
    if "hosts" in table and "group" in table:
        c.add(f"{key}.group", "given with hosts; expected one of hosts or group")
    elif isinstance(table.get("group"), str) and table["group"] not in groups:
        c.add(f"{key}.group", f"is {table['group']!r}; expected a group defined under [groups.NAME]"
              f" ({', '.join(sorted(groups)) or 'none defined'})")

