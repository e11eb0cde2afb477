"""``perfmesh aggregator`` and ``perfmesh agent``: the config file under the flags, composed into
the process's config, then its ``main``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

from perfmesh.errors import ConfigError

from . import recording
from .flags import flags_given
from .clients import client_endpoint


def cmd_aggregator(args: argparse.Namespace) -> int:
    from workers.aggregator import AggregatorConfig, main
    from workers.transport import Endpoint, is_loopback
    from perfmesh.config.schema import Config, load
    from perfmesh.config.settings import aggregator_settings
    from perfmesh.mesh.fleet import FleetConfig
    cfg = load(args.config) if args.config else Config()
    flags = flags_given(args, {"bind": "bind", "port": "port", "heartbeat": "heartbeat_s",
                          "history": "history_rows", "auto_optimize": "auto_optimize",
                          "budget_delay": "budget_for_samples", "budget_clear": "budget_clear_percent"})
    if args.metrics_listen is not None:
        flags["metrics_listen"] = args.metrics_listen
    s = aggregator_settings(cfg, flags)
    overrides = dict(args.budget)
    keys_dir = args.keys or s.get("keys_dir")
    insecure = bool(args.insecure)
    if insecure and not keys_dir and not is_loopback(s["bind"]):
        print(f"perfmesh aggregator: WARNING: --insecure: {s['bind']} accepts unauthenticated, unencrypted "
              "agents, operators and subscribers from the network", file=sys.stderr)

    def limits_for(host: str) -> dict[str, float]:
        return cfg.budgets_for(host, overrides)
    fleet = FleetConfig(budgets=cfg.budget_names(overrides), history_rows=s["history_rows"],
                        heartbeat_interval_s=s["heartbeat_s"], auto_optimize=s["auto_optimize"],
                        command_timeout_s=s["command_timeout_s"], max_hosts=s["max_hosts"],
                        max_series_per_host=s["max_series_per_host"], host_budgets=limits_for,
                        budget_for_samples=s["budget_for_samples"],
                        budget_clear_percent=s["budget_clear_percent"],
                        auto_policies=lambda host, kind: [(p.strategy, p.params, p.min_interval_s)
                                                          for p in cfg.policies_for(host, kind)])
    recording.serve_recording(args.replay, s["bind"], s["port"], keys_dir)
    sinks = _aggregator_sinks(cfg, s, args, limits_for)
    return main(AggregatorConfig(endpoint=Endpoint(s["bind"], s["port"]), fleet=fleet,
                                 snapshot_interval_s=s["snapshot_interval_s"],
                                 keys_dir=Path(keys_dir) if keys_dir else None, insecure=insecure,
                                 raw_window_s=cfg.retention.raw_window_s,
                                 **_retention(cfg.retention.rollups),
                                 **_data_dir(args.data or cfg.retention.data_dir)), sinks)


def _data_dir(path: str | None) -> dict[str, Any]:
    return {"data_dir": Path(path)} if path else {}


def _retention(rollups: Any) -> dict[str, Any]:
    return {"rollup_retention_s": rollups[0].keep_s} if rollups else {}


def _aggregator_sinks(cfg: Any, settings: dict[str, Any], args: argparse.Namespace,
                      limits_for: Callable[[str], dict[str, float]]) -> list[Any]:
    """The /metrics exporter and the alert delivery sink, as the file and flags ask."""
    from perfmesh.config.schema import Target
    writers = _remote_writers(args, cfg)
    sinks: list[Any] = []
    if settings["metrics_listen"]:   # first: nothing to clean up when its port is taken
        from workers.exporter import MetricsExporter
        try:
            sinks.append(MetricsExporter(settings["metrics_listen"], limits_for, cfg.burn_rate, remote=writers))
        except OSError as exc:
            for w in writers:
                w.close()
            raise ConfigError(f"cannot serve /metrics on {settings['metrics_listen']}: "
                              f"{exc.strerror or exc}") from None
    sinks.extend(writers)
    webhooks = [Target(u) for u in args.webhook] if args.webhook else list(cfg.webhooks)
    managers = [Target(u) for u in args.alertmanager] if args.alertmanager else list(cfg.alertmanagers)
    if webhooks or managers:
        from workers.alerts import AlertSink, AlertmanagerTarget, WebhookTarget
        from perfmesh.rules.alerting import AlertEngine
        targets: list[Any] = [
            *(WebhookTarget(t.url, timeout_s=t.timeout_s, max_queue=t.max_queue, headers=t.headers)
              for t in webhooks),
            *(AlertmanagerTarget(t.url, t.resend_s, timeout_s=t.timeout_s, max_queue=t.max_queue,
                                 headers=t.headers) for t in managers)]
        engine = AlertEngine(cfg.alerts, violations=cfg.violations, bottlenecks=cfg.bottlenecks)
        sinks.append(AlertSink(engine, targets))
    return sinks


def _remote_writers(args: argparse.Namespace, cfg: Any) -> list[Any]:
    """One remote writer per --remote-write URL (their stats go to /metrics); each replays the
    last moments from the aggregator's state file at start."""
    if not args.remote_write:
        return []
    from workers.remote_write import RemoteTarget, RemoteWriter
    from workers.transport import default_state_dir
    store = Path(args.data or cfg.retention.data_dir or default_state_dir("aggregator")) / "perfmesh.db"
    targets = [RemoteTarget(url, bearer_token_file=args.remote_write_bearer_token_file,
                            username=args.remote_write_user, password_file=args.remote_write_password_file,
                            ca_file=args.remote_write_ca_file) for url in args.remote_write]
    return [RemoteWriter(t, replay_from=store) for t in targets]


def cmd_agent(args: argparse.Namespace) -> int:
    from workers.agent import AgentConfig, main
    import socket
    from perfmesh.config.schema import Config, load
    from perfmesh.config.settings import agent_settings
    cfg = load(args.config) if args.config else Config()
    flags = flags_given(args, {"connect": "connect", "interval": "interval_s"})
    if args.name is not None:
        flags["name"] = args.name
    if "no_commands" in getattr(args, "given", ()):
        flags["commands"] = False
    if args.allow:
        flags["allow"] = list(args.allow)
    if args.label:
        flags["labels"] = dict(args.label)
    s = agent_settings(cfg, flags)
    extra = {"kinds": tuple(s["kinds"])} if s["kinds"] else {}
    if args.spool_seconds is not None:
        extra["spool_seconds"] = args.spool_seconds
    config = AgentConfig(endpoint=client_endpoint(s["connect"], args, s), name=s["name"] or socket.gethostname(),
                         interval_s=s["interval_s"], heartbeat_s=s["heartbeat_s"], commands=s["commands"],
                         allow=tuple(s["allow"]) if s["allow"] else None,
                         state_dir=Path(args.state_dir) if args.state_dir else None,
                         spool_dir=Path(args.spool_dir) if args.spool_dir else None,
                         labels=tuple(sorted((s["labels"] or {}).items())), **extra)
    return main(config)
