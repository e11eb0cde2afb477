"""``perfmesh command TARGET STRATEGY``: the target's hosts (:mod:`perfmesh.mesh.targeting`),
run in waves (``--batch``), each wave's commands in flight together; a per-host table and a
summary, or one JSON object per host; exit 0 only when every host succeeded."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from perfmesh.mesh.targeting import TargetError, parse_batch, parse_target, select, waves
from perfmesh.protocol import kinds
from perfmesh.views.render import format_command_result
from perfmesh.views.targets import SKIPPED, format_table, summary

from .flags import CliError, parse_param


def cmd_command(args: argparse.Namespace, out=sys.stdout) -> int:
    from .clients import with_api
    params = dict(parse_param(p) for p in args.params)
    try:
        target = parse_target(args.target)
        batch = parse_batch(args.batch) if args.batch else None
    except TargetError as exc:
        raise CliError(f"perfmesh command: {exc}") from None

    def run(api: Any) -> int:
        if target.single and not args.dry_run and batch is None:
            return _one(api, target.patterns[0], args, params, out)
        hosts = select(target, api.status(args.timeout)["hosts"] if not target.single else [], _groups())
        if args.dry_run:
            for host in hosts:
                out.write((json.dumps({"host": host, "strategy": args.strategy, "dry_run": True})
                           if args.json else host) + "\n")
            if not args.json:
                out.write(f"{args.strategy} would run on {len(hosts)} host{'s' if len(hosts) != 1 else ''}\n")
            return 0
        results: list[dict[str, Any]] = []
        stopped = False
        for wave in waves(hosts, batch):
            if stopped:
                results += [{"host": h, "strategy": args.strategy, "status": SKIPPED} for h in wave]
                continue
            answers = api.command_many(wave, args.strategy, params, args.timeout)
            for host in wave:
                result = {**answers[host], "host": host, "strategy": args.strategy}
                results.append(result)
                if args.json:
                    out.write(json.dumps(result, sort_keys=True) + "\n")
                    out.flush()
            if not args.keep_going and any(r.get("status") != kinds.STATUS_SUCCESS for r in results):
                stopped = True
        if args.json:
            for r in results:
                if r["status"] == SKIPPED:
                    out.write(json.dumps(r, sort_keys=True) + "\n")
        else:
            out.write(format_table(results) + "\n" + summary(results, args.strategy, stopped) + "\n")
        return 0 if all(r.get("status") == kinds.STATUS_SUCCESS for r in results) else 1
    return with_api(args, run)


def _one(api: Any, host: str, args: argparse.Namespace, params: dict[str, Any], out: Any) -> int:
    result = api.command(host, args.strategy, params, args.timeout)
    result.setdefault("host", host)
    result.setdefault("strategy", args.strategy)
    out.write((json.dumps(result, sort_keys=True) if args.json else format_command_result(result)) + "\n")
    return 0 if result.get("status") == kinds.STATUS_SUCCESS else 1


def _groups() -> dict[str, Any]:
    """The config file's groups, by name: name -> does this host belong."""
    from .clientconf import operator_config
    return {g.name: g.hosts.matches for g in operator_config().groups}
