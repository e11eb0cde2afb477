"""The perfmesh TOML file: one file for the aggregator and for agents.

:func:`parse` turns a valid dict into a :class:`Config` (a :class:`ConfigError` listing every
problem :func:`perfmesh.config.validation.check` finds otherwise); :func:`load` reads a file.
Command-line flags override the file through :mod:`perfmesh.config.settings`; the commented
example is :data:`perfmesh.config.example.EXAMPLE`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..rules.alerting import AlertRule, BurnRateConfig, HostSelector
from ..rules.budget import DEFAULT_BUDGETS
from ..errors import ConfigError
from .validation import check

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib


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
    client: dict[str, Any] = field(default_factory=dict)     # operators' defaults ([client])
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
        client=dict(raw.get("client", {})),
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
