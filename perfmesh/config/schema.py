"""The perfmesh TOML file: one file for the aggregator and for agents.

Pure: :func:`check` takes the parsed TOML (a dict) and returns every problem at once, each with
its dotted key and what was expected; :func:`parse` turns a valid dict into a :class:`Config`;
:func:`load` reads a file. Command-line flags override the file through :func:`merge`
(a flag left at None was not given).

    >>> [str(i) for i in check({"agent": {"interval_s": -1}})]
    ['agent.interval_s: is -1; expected a number > 0']
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ..rules.alerting import AlertRule, BurnRateConfig, HostSelector
from ..rules.analysis import BOTTLENECK_KINDS
from ..rules.budget import DEFAULT_BUDGETS
from ..errors import ConfigError
from ..collect.collection import COLLECTOR_KINDS
from ..mesh.fleet import FleetConfig
from ..model.metric import METRIC_NAME_RE, is_finite_number as _is_number
from ..optimize.engine import NAME_RE as STRATEGY_NAME_RE
from ..model.address import (DEFAULT_BASE_PORT, DEFAULT_CONNECT, DEFAULT_HOST, HOST_NAME_RE, HOST_NAME_RULE, MAX_BASE_PORT,
                             parse_connect, parse_listen)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

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
            "auto_optimize", "webhooks", "alertmanagers", "alerting", "burn_rate")


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
                         ("alerting", ALERTING_FIELDS)):
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


# --------------------------------------------------------------- the result
@dataclass(frozen=True)
class HostGroup:
    name: str
    hosts: HostSelector
    budgets: dict[str, float]


@dataclass(frozen=True)
class OptimizePolicy:
    """When a selected host reports ``bottleneck``, run ``strategy`` at most every ``min_interval_s``."""

    bottleneck: str
    strategy: str
    hosts: HostSelector = field(default_factory=HostSelector)
    min_interval_s: float = 300.0
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Target:
    """A webhook or an Alertmanager to deliver alerts to."""

    url: str
    timeout_s: float = 5.0
    max_queue: int = 10_000
    headers: dict[str, str] = field(default_factory=dict)
    resend_s: float = 60.0


@dataclass(frozen=True)
class Rollup:
    step_s: float
    keep_s: float


@dataclass(frozen=True)
class Retention:
    history_rows: int = 1000
    data_dir: str | None = None
    raw_window_s: float = 86_400.0
    rollups: tuple[Rollup, ...] = ()


@dataclass(frozen=True)
class Config:
    aggregator: dict[str, Any] = field(default_factory=dict)
    agent: dict[str, Any] = field(default_factory=dict)
    retention: Retention = field(default_factory=Retention)
    budgets: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_BUDGETS))
    groups: tuple[HostGroup, ...] = ()
    alerts: tuple[AlertRule, ...] = ()
    auto_optimize: tuple[OptimizePolicy, ...] = ()
    webhooks: tuple[Target, ...] = ()
    alertmanagers: tuple[Target, ...] = ()
    violations: bool = True
    bottlenecks: bool = True
    burn_rate: BurnRateConfig = field(default_factory=BurnRateConfig)

    def budgets_for(self, host: str, overrides: Mapping[str, float] | None = None) -> dict[str, float]:
        """The limits of one host: defaults, then [budgets], then each matching group in file
        order (a later group wins), then ``overrides`` (command-line flags)."""
        limits = dict(self.budgets)
        for group in self.groups:
            if group.hosts.matches(host):
                limits.update(group.budgets)
        limits.update(overrides or {})
        return limits

    def budget_names(self, overrides: Mapping[str, float] | None = None) -> dict[str, float]:
        """Every budgeted metric of any host, with its fleet-wide limit (or a group's when only
        groups name it): what the fleet must check."""
        limits: dict[str, float] = {}
        for group in self.groups:
            limits.update(group.budgets)
        limits.update(self.budgets)
        limits.update(overrides or {})
        return limits

    def policies_for(self, host: str, bottleneck: str) -> list[OptimizePolicy]:
        return [p for p in self.auto_optimize if p.bottleneck == bottleneck and p.hosts.matches(host)]


def parse(raw: Mapping[str, Any]) -> Config:
    """A valid config dict -> Config; a ConfigError listing every issue otherwise."""
    issues = check(raw)
    if issues:
        raise ConfigError(f"{len(issues)} problem(s) in the config:\n" + "\n".join(f"  {i}" for i in issues))
    groups = {name: HostGroup(name, HostSelector.parse(g["hosts"]), {k: float(v) for k, v in g.get("budgets", {}).items()})
              for name, g in raw.get("groups", {}).items()}

    def selector(table: Mapping[str, Any]) -> HostSelector:
        if "group" in table:
            return groups[table["group"]].hosts
        return HostSelector.parse(table.get("hosts", []))

    retention = raw.get("retention", {})
    rules = tuple(AlertRule(
        name=r["name"], metric=r["metric"], warning=_opt_float(r.get("warning")),
        critical=_opt_float(r.get("critical")), for_samples=r.get("for_samples", 1),
        for_s=_opt_float(r.get("for_s")), clear=_opt_float(r.get("clear")),
        repeat_s=_opt_float(r.get("repeat_s")), hosts=selector(r), labels=r.get("labels", False),
        stale_s=float(r.get("stale_s", 300.0)), summary=r.get("summary", ""))
        for r in raw.get("alerts", []))
    policies = tuple(OptimizePolicy(p["bottleneck"], p["strategy"], selector(p),
                                    float(p.get("min_interval_s", 300.0)), dict(p.get("params", {})))
                     for p in raw.get("auto_optimize", []))
    burn = raw.get("burn_rate", {})
    burn_config = BurnRateConfig(float(burn.get("allowed_fraction", 0.05)),
                                 tuple(float(w) for w in burn.get("windows_s", (300.0, 3600.0))),
                                 float(burn.get("bucket_s", 10.0)))
    alerting = raw.get("alerting", {})
    return Config(
        aggregator=dict(raw.get("aggregator", {})), agent=dict(raw.get("agent", {})),
        retention=Retention(retention.get("history_rows", 1000), retention.get("data_dir"),
                            float(retention.get("raw_window_s", 86_400.0)),
                            tuple(Rollup(float(r["step_s"]), float(r["keep_s"]))
                                  for r in retention.get("rollups", []))),
        budgets={**DEFAULT_BUDGETS, **{k: float(v) for k, v in raw.get("budgets", {}).items()}},
        groups=tuple(groups.values()), alerts=rules, auto_optimize=policies,
        webhooks=tuple(_target(t) for t in raw.get("webhooks", [])),
        alertmanagers=tuple(_target(t) for t in raw.get("alertmanagers", [])),
        violations=alerting.get("violations", True), bottlenecks=alerting.get("bottlenecks", True),
        burn_rate=burn_config)


def _opt_float(v: Any) -> float | None:
    return None if v is None else float(v)


def _target(t: Mapping[str, Any]) -> Target:
    return Target(t["url"], float(t.get("timeout_s", 5.0)), t.get("max_queue", 10_000),
                  dict(t.get("headers", {})), float(t.get("resend_s", 60.0)))


def loads(text: str, source: str = "<config>") -> Config:
    return parse(parse_toml(text, source))


def parse_toml(text: str, source: str = "<config>") -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None


def read(path: str) -> dict[str, Any]:
    """The parsed TOML of a file (not yet checked)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise ConfigError(f"cannot read config {path!r}: {exc.strerror or exc}") from None
    return parse_toml(text, path)


def load(path: str) -> Config:
    raw = read(path)
    try:
        return parse(raw)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def merge(defaults: Mapping[str, Any], file_values: Mapping[str, Any],
          flags: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults, overridden by the file, overridden by the flags that were given (not None).

    Only keys of ``defaults`` are taken from the file and the flags.
    """
    out = dict(defaults)
    out.update({k: v for k, v in file_values.items() if k in defaults})
    out.update({k: v for k, v in flags.items() if k in defaults and v is not None})
    return out


# Defaults are read from what they configure (FleetConfig, the address constants), never
# written here a second time. The processes' own dataclasses (workers' AggregatorConfig and
# AgentConfig) take the few they alone use from these tables.
_FLEET = FleetConfig()
AGGREGATOR_DEFAULTS: dict[str, Any] = {
    "bind": DEFAULT_HOST, "port": DEFAULT_BASE_PORT, "heartbeat_s": _FLEET.heartbeat_interval_s,
    "history_rows": _FLEET.history_rows, "auto_optimize": _FLEET.auto_optimize,
    "metrics_listen": None, "keys_dir": None, "snapshot_interval_s": 1.0,
    "command_timeout_s": _FLEET.command_timeout_s, "max_hosts": _FLEET.max_hosts,
    "max_series_per_host": _FLEET.max_series_per_host,
}
AGENT_DEFAULTS: dict[str, Any] = {
    "connect": DEFAULT_CONNECT, "name": None, "interval_s": 1.0, "heartbeat_s": 1.0,
    "key": None, "server_key": None, "commands": True, "allow": None, "kinds": None,
}


def aggregator_settings(config: Config | None, flags: Mapping[str, Any]) -> dict[str, Any]:
    """The aggregator's settings: file (``[aggregator]`` and ``[retention].history_rows``)
    under flags. ``budgets`` in flags are NAME -> LIMIT overrides for every host."""
    config = config or Config()
    file_values = {**config.aggregator, "history_rows": config.retention.history_rows}
    return merge(AGGREGATOR_DEFAULTS, file_values, flags)


def agent_settings(config: Config | None, flags: Mapping[str, Any]) -> dict[str, Any]:
    return merge(AGENT_DEFAULTS, (config or Config()).agent, flags)


EXAMPLE = '''\
# perfmesh.toml: one file for the aggregator and for agents.
# Check it with `perfmesh config check perfmesh.toml`. Command-line flags override it.
version = 1

[aggregator]
bind = "127.0.0.1"             # address for the four sockets (BASE..BASE+3)
port = 7700                    # base port
keys_dir = "/etc/perfmesh/keys"  # CURVE keys: aggregator secret key and allowed public keys
heartbeat_s = 1.0              # a host is down after 3 missed heartbeats
snapshot_interval_s = 1.0      # how often /metrics and alert rules see fresh values
auto_optimize = false          # run the [[auto_optimize]] policies below
command_timeout_s = 10.0
metrics_listen = "127.0.0.1:9790"  # Prometheus /metrics (omit to serve none)

[agent]
connect = "127.0.0.1:7700"     # the aggregator, HOST[:BASE]
# name = "web01"               # defaults to this machine's host name
interval_s = 1.0               # sampling interval
heartbeat_s = 1.0
key = "/etc/perfmesh/keys/agent.key_secret"         # this host's CURVE key pair
server_key = "/etc/perfmesh/keys/aggregator.key"    # the aggregator's public key
commands = true                # false refuses every remote command
allow = ["gc_collect", "memory_trim"]               # strategies this host may run
kinds = ["cpu", "memory", "io"]                     # collectors to run

[retention]
history_rows = 1000            # in-memory samples per series
data_dir = "/var/lib/perfmesh" # SQLite state
raw_window_s = 86400           # keep raw samples one day
rollups = [                    # then per-minute averages (min, max, count kept) for 30 days
  { step_s = 60, keep_s = 2592000 },
]

[budgets]                      # limits for every host (defaults apply to names left out)
cpu_percent = 80
memory_percent = 85

[groups.web]                   # budgets per host group: exact names or glob patterns
hosts = ["web*", "api01"]
budgets = { cpu_percent = 70, response_time_ms = 250 }

[groups.db]
hosts = "db-[0-9]*"
budgets = { memory_percent = 92 }

[[alerts]]                     # rules beyond a plain limit
name = "cpu-high"
metric = "cpu_percent"
warning = 85                   # over this: warning
critical = 95                  # over this: critical
for_samples = 3                # only after 3 samples in a row over a level (delay) ...
for_s = 10                     # ... that also span at least 10 seconds
clear = 75                     # resolve only below 75 (hysteresis)
repeat_s = 300                 # re-send every 5 minutes while firing
group = "web"                  # or hosts = ["web01", "web*"]; neither: every host

[[alerts]]
name = "disk-busy"
metric = "disk_busy_percent"
labels = true                  # every device: disk_busy_percent{device=...}
warning = 90
hosts = "*"
summary = "a disk is saturated"

[[auto_optimize]]              # policies: a bottleneck on selected hosts -> a strategy
bottleneck = "memory_pressure"
strategy = "gc_collect"
group = "web"
min_interval_s = 300

[[webhooks]]                   # JSON POST, retried with backoff, at-least-once
url = "http://127.0.0.1:8080/perfmesh"
timeout_s = 5
max_queue = 10000
headers = { Authorization = "Bearer change-me" }

[[alertmanagers]]              # Prometheus Alertmanager, v2 API
url = "http://127.0.0.1:9093"
resend_s = 60                  # firing alerts are re-sent this often

[alerting]
violations = true              # deliver budget violations
bottlenecks = true             # deliver detected bottlenecks

[burn_rate]                    # budget burn rate, as with SLO error budgets
allowed_fraction = 0.05        # 5 % of samples may be over the limit
windows_s = [300, 3600]        # rates over 5 minutes and 1 hour
bucket_s = 10
'''
