"""Settings of a process: defaults, overridden by the file, overridden by the command-line
flags that were given (:func:`merge`; a flag left at None was not given)."""

from __future__ import annotations

from typing import Any, Mapping

from ..mesh.fleet import FleetConfig
from ..model.address import DEFAULT_BASE_PORT, DEFAULT_CONNECT, DEFAULT_HOST
from .schema import Config


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
    "budget_for_samples": _FLEET.budget_for_samples,
    "budget_clear_percent": _FLEET.budget_clear_percent,
}
AGENT_DEFAULTS: dict[str, Any] = {
    "connect": DEFAULT_CONNECT, "name": None, "interval_s": 1.0, "heartbeat_s": 1.0,
    "key": None, "server_key": None, "commands": True, "allow": None, "kinds": None,
    "labels": None,
}


CLIENT_DEFAULTS: dict[str, Any] = {
    "connect": DEFAULT_CONNECT, "key": None, "server_key": None, "insecure": False,
}
CLIENT_ENV = {"PERFMESH_CONNECT": "connect", "PERFMESH_KEY": "key", "PERFMESH_SERVER_KEY": "server_key"}
CONFIG_ENV = "PERFMESH_CONFIG"
SYSTEM_CONFIG = "/etc/perfmesh/perfmesh.toml"


def client_settings(config: Config | None, env: Mapping[str, str],
                    flags: Mapping[str, Any]) -> dict[str, Any]:
    """An operator's connection (``connect``, ``key``, ``server_key``, ``insecure``): defaults,
    under the file's ``[client]``, under PERFMESH_CONNECT / PERFMESH_KEY / PERFMESH_SERVER_KEY
    (set and not empty), under the flags given."""
    from_env = {key: env[name] for name, key in CLIENT_ENV.items() if env.get(name)}
    return merge(CLIENT_DEFAULTS, {**(config or Config()).client, **from_env}, flags)


def config_paths(env: Mapping[str, str], home: str) -> tuple[list[str], bool]:
    """Where the config file is looked for, in order, and whether it must exist: the file
    PERFMESH_CONFIG names (must), else $XDG_CONFIG_HOME/perfmesh/perfmesh.toml (default
    ~/.config) then /etc/perfmesh/perfmesh.toml (the first that exists, if any)."""
    if env.get(CONFIG_ENV):
        return [env[CONFIG_ENV]], True
    xdg = env.get("XDG_CONFIG_HOME") or f"{home}/.config"
    return [f"{xdg}/perfmesh/perfmesh.toml", SYSTEM_CONFIG], False


def aggregator_settings(config: Config | None, flags: Mapping[str, Any]) -> dict[str, Any]:
    """The aggregator's settings: file (``[aggregator]`` and ``[retention].history_rows``)
    under flags. ``budgets`` in flags are NAME -> LIMIT overrides for every host."""
    config = config or Config()
    file_values = {**config.aggregator, "history_rows": config.retention.history_rows}
    return merge(AGGREGATOR_DEFAULTS, file_values, flags)


def agent_settings(config: Config | None, flags: Mapping[str, Any]) -> dict[str, Any]:
    return merge(AGENT_DEFAULTS, (config or Config()).agent, flags)
