"""The operator's subcommands, each a client of a running aggregator: ``subscribe``, ``status``,
``command``, ``history``, ``top``, ``web`` and ``report``; and the aggregator's address with
this client's keys, from the flags (or a process's settings)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Callable

from perfmesh.errors import ConfigError
from perfmesh.protocol import kinds
from perfmesh.views.render import format_command_result, format_event, format_status

from .flags import CliError


def client_endpoint(text: str, args: argparse.Namespace | None = None,
              settings: dict[str, Any] | None = None):
    """The aggregator's address with the client's keys (from flags, else from settings; an
    operator's command without settings: flags, else the environment, else [client])."""
    from workers.transport import Endpoint, is_loopback, parse_endpoint
    source = "argument --connect"
    if settings is None and args is not None:
        from .clientconf import operator_connection
        settings = operator_connection(args)
        text, source = settings["connect"], settings["source"]
    try:
        ep = parse_endpoint(text)
    except ConfigError as exc:  # a bad --connect is a usage error (exit 2), like any flag
        raise CliError(f"perfmesh: {source}: {exc}") from None
    settings = settings or {}
    key = getattr(args, "key", None) or settings.get("key")
    server_key = getattr(args, "server_key", None) or settings.get("server_key")
    insecure = bool(getattr(args, "insecure", False) or settings.get("insecure", False))
    if bool(key) != bool(server_key):
        raise CliError("perfmesh: --key and --server-key go together (this client's secret key and the "
                       "aggregator's public key)")
    keys = None
    if key:
        from workers.security import ClientKeys
        keys = ClientKeys.load(key, server_key)
    elif insecure and not is_loopback(ep.host):
        print(f"perfmesh: WARNING: talking to {ep} without encryption or authentication (--insecure)",
              file=sys.stderr)
    return Endpoint(ep.host, ep.base_port, keys, insecure)


def cmd_subscribe(args: argparse.Namespace, out=sys.stdout) -> int:
    from workers.client import ApiClient, Subscriber
    endpoint = client_endpoint(args.connect, args)
    hosts: list[str] = []
    if args.category and not args.host:
        api = ApiClient(endpoint)
        try:
            hosts = [h["name"] for h in api.status()["hosts"]]
        finally:
            api.close()
    sub = Subscriber(endpoint, args.type, args.host, args.category, hosts=hosts)
    n = 0
    try:
        for ev in sub.events(args.timeout):
            out.write((json.dumps(ev, sort_keys=True) if args.json else format_event(ev)) + "\n")
            out.flush()
            n += 1
            if args.count is not None and n >= args.count:
                break
    finally:
        sub.close()
    return 0 if args.count is None or n >= args.count else 1


def with_api(args: argparse.Namespace, fn: Callable[[Any], int]) -> int:
    from workers.client import ApiClient
    api = ApiClient(client_endpoint(args.connect, args))
    try:
        return fn(api)
    finally:
        api.close()


def cmd_status(args: argparse.Namespace, out=sys.stdout) -> int:
    def run(api: Any) -> int:
        status = api.status(args.timeout)
        out.write((json.dumps(status, sort_keys=True) if args.json else format_status(status)) + "\n")
        return 0
    return with_api(args, run)


def cmd_history(args: argparse.Namespace, out=sys.stdout) -> int:
    def run(api: Any) -> int:
        samples = api.history(args.host, args.name, time.time() - args.since)
        for row in samples:
            ts, value = row[0], row[1]
            backfilled = bool(row[2]) if len(row) > 2 else False
            if args.json:
                out.write(json.dumps({"timestamp": ts, "value": value, "backfilled": backfilled}) + "\n")
            else:
                out.write(f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(ts))}  {value:g}"
                          f"{'  (backfilled)' if backfilled else ''}\n")
        return 0
    return with_api(args, run)


def cmd_top(args: argparse.Namespace) -> int:
    from workers.view import run_top
    return run_top(client_endpoint(args.connect, args))


def cmd_web(args: argparse.Namespace) -> int:
    from workers.web import parse_web_listen, run_web
    from workers.web_access import web_access
    try:   # before anything else: off loopback without --auth-token fails closed here
        access = web_access(parse_web_listen(args.listen)[0], args.allow_host, args.auth_token)
    except ConfigError as exc:
        raise CliError(f"perfmesh web: {exc}") from None
    endpoint = client_endpoint(args.connect, args)
    command_endpoint = None
    if args.operator_key:
        if endpoint.keys is None:
            raise CliError("perfmesh web: --operator-key needs --key and --server-key (a secured aggregator)")
        from workers.security import ClientKeys, load_secret
        command_endpoint = type(endpoint)(endpoint.host, endpoint.base_port,
                                          ClientKeys(load_secret(args.operator_key), endpoint.keys.server_public),
                                          endpoint.insecure)
    return run_web(endpoint, args.listen, allow_commands=args.allow_commands, command_endpoint=command_endpoint,
                   access=access, max_connections=args.max_connections)


def cmd_report(args: argparse.Namespace) -> int:
    from workers.report import write_report
    return write_report(client_endpoint(args.connect, args), args.host, args.since, args.out)
