"""The ``record`` and ``replay`` subcommands: their parsers and runners, wired into
the CLI's parser by :func:`add_parsers` (the processes themselves are imported only when run)."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any, Callable

from .flags import _clear_percent, _count, parse_duration

def parse_speed(text: str) -> float:
    try:
        speed = float(text)
    except ValueError:
        speed = -1.0
    if not math.isfinite(speed) or speed < 0:
        raise argparse.ArgumentTypeError(f"speed {text!r} must be a number >= 0 (0: as fast as possible, "
                                         "1: real time, 10: ten times faster)")
    return speed


def add_parsers(sub: Any, connect: Callable[[argparse.ArgumentParser], None],
                budget: Callable[[str], tuple[str, float]], host_name: Callable[[str], str]) -> None:
    """``record`` and ``replay`` on the CLI's subparsers, with the CLI's own flag helpers."""
    rec = sub.add_parser("record", help="write the aggregator's stream to a recording file")
    connect(rec)
    rec.add_argument("--out", required=True, metavar="FILE", help="the recording to create (never overwritten)")
    rec.add_argument("--host", type=host_name, action="append", default=[], metavar="NAME",
                     help="record only this host (repeatable; default every host)")
    rec.add_argument("--duration", type=parse_duration, default=None, metavar="DURATION",
                     help="stop after this long, e.g. 90s, 10m, 1h (default: until SIGINT/SIGTERM)")

    rep = sub.add_parser("replay", help="replay a recording through budgets, alert rules and analysis")
    rep.add_argument("file", metavar="FILE", help="a recording written by `perfmesh record`")
    rep.add_argument("--config", default=None, metavar="FILE",
                     help="perfmesh.toml whose budgets, groups and [[alerts]] to try")
    rep.add_argument("--budget", type=budget, action="append", default=[], metavar="NAME=LIMIT",
                     help="override a budget limit (repeatable)")
    rep.add_argument("--budget-delay", type=_count, default=None, metavar="SAMPLES",
                     help="try another budget delay (samples over before a violation fires; 0: at once)")
    rep.add_argument("--budget-clear", type=_clear_percent, default=None, metavar="PERCENT",
                     help="try another budget clear level (percent under the limit to resolve; 0: at the limit)")
    rep.add_argument("--speed", type=parse_speed, default=0.0, metavar="X",
                     help="0: as fast as possible (default), 1: real time, 10: ten times faster")
    rep.add_argument("--json", action="store_true", help="one JSON object per alert, then a summary")
    rep.add_argument("--to", default=None, metavar="HOST[:BASE]",
                     help="instead: send the batches to this aggregator as if live (re-stamped to now)")


def cmd_record(args: argparse.Namespace) -> int:
    from workers.record import RecordConfig, main
    from .clients import client_endpoint
    return main(RecordConfig(endpoint=client_endpoint(args.connect, args), out=Path(args.out),
                             hosts=tuple(args.host), duration_s=args.duration))


def replay_setup(config_file: str | None, overrides: dict[str, float],
                 quiet: dict[str, Any] | None = None) -> tuple[Any, Any]:
    """The FleetConfig and AlertEngine the aggregator would build from this file and these
    flags (budgets per host and group, alert rules, violation and bottleneck alerts)."""
    from perfmesh.config.schema import Config, load
    from perfmesh.config.settings import aggregator_settings
    from perfmesh.mesh.fleet import FleetConfig
    from perfmesh.rules.alerting import AlertEngine
    cfg = load(config_file) if config_file else Config()
    s = aggregator_settings(cfg, quiet or {})

    def limits_for(host: str) -> dict[str, float]:
        return cfg.budgets_for(host, overrides)
    fleet = FleetConfig(budgets=cfg.budget_names(overrides), history_rows=s["history_rows"],
                        heartbeat_interval_s=s["heartbeat_s"], max_hosts=s["max_hosts"],
                        max_series_per_host=s["max_series_per_host"], host_budgets=limits_for,
                        budget_for_samples=s["budget_for_samples"],
                        budget_clear_percent=s["budget_clear_percent"])
    # what would fire: budget violations and bottlenecks are reported even when the file
    # turns off their delivery to webhooks
    return fleet, AlertEngine(cfg.alerts, violations=True, bottlenecks=True)


def cmd_replay(args: argparse.Namespace, out=None, err=None) -> int:
    from workers.replay import run_replay
    if args.to:
        from workers.replayfeed import Feeder
        from .clients import client_endpoint
        feeder = Feeder(client_endpoint(args.to), args.file, args.speed)
        sent = feeder.run()
        (out or sys.stdout).write(f"served {sent} batches from {args.file} to {args.to}\n")
        if feeder.problem is not None:
            (err or sys.stderr).write(f"perfmesh replay: WARNING: {feeder.problem}\n")
        return 0
    fleet, engine = replay_setup(args.config, dict(args.budget), {
        "budget_for_samples": args.budget_delay, "budget_clear_percent": args.budget_clear})
    return run_replay(args.file, fleet, engine, out or sys.stdout, err or sys.stderr,
                      speed=args.speed, as_json=args.json)


def serve_recording(path: str | None, bind: str, port: int, keys_dir: Any) -> None:
    """``perfmesh aggregator --replay FILE``: feed the file to this aggregator's own ingest, live."""
    if not path:
        return
    if keys_dir:
        from perfmesh.errors import ConfigError
        raise ConfigError("--replay serves a recording on an aggregator without --keys (a demo or test "
                          "mesh); expected no keys folder")
    from workers.replayfeed import Feeder
    from workers.transport import Endpoint
    host = "127.0.0.1" if bind in ("0.0.0.0", "*", "::", "") else bind
    Feeder(Endpoint(host, port), path, speed=1.0).start()
