"""The ``perfmesh`` command line.

Parsing and output live here; the processes themselves live in ``workers/`` and are
imported only by the subcommand that runs them (so ``perfmesh --help`` stays fast).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import subprocess
from pathlib import Path
import sys
import time
from typing import Any, Callable, Sequence

from perfmesh.errors import ConfigError, PerfmeshError
from perfmesh.views.render import format_command_result, format_event, format_status

EVENT_TYPES = ("metric", "violation", "bottleneck", "command", "host", "gap")
CATEGORY_CHOICES = ("cpu", "memory", "io", "network", "application")
DEFAULT_CONNECT = "127.0.0.1:7700"


class CliError(PerfmeshError):
    """A usage error: printed as one line, exit status 2."""


class _Given(argparse.Action):
    """Store the value (or ``const`` for a switch) and remember the flag was given, so it
    overrides the config file while an unused flag's default does not."""

    def __call__(self, parser, namespace, values, option_string=None):  # type: ignore[override]
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)
        namespace.given = {*getattr(namespace, "given", ()), self.dest}


def _given(args: argparse.Namespace, names: dict[str, str]) -> dict[str, Any]:
    """Config key -> flag value, for the flags in ``names`` (dest -> key) that were given."""
    given = getattr(args, "given", set())
    return {key: getattr(args, dest) for dest, key in names.items() if dest in given}


def _http_url(text: str) -> str:
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not an http:// or https:// URL")
    return text


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise CliError(f"{self.prog}: {message}")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number of seconds")
    return value


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive whole number")
    return int(text)


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65531:
        raise argparse.ArgumentTypeError(f"{text!r} must be a port number from 1 to 65531")
    return int(text)


def _host_name(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a valid host name (letters, digits, '_', '.', '-'; at most 128)")
    return text


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


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="perfmesh", description="Distributed performance monitoring over ZeroMQ.")
    p.add_argument("--version", action="version", version="perfmesh 0.1.0")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def connect(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--connect", default=DEFAULT_CONNECT, metavar="HOST[:BASE]", action=_Given,
                        help=f"aggregator address (default {DEFAULT_CONNECT})")
        sp.add_argument("--key", default=None, metavar="SECRET_FILE", action=_Given,
                        help="this client's CURVE secret key (NAME.key_secret)")
        sp.add_argument("--server-key", default=None, metavar="PUBLIC_FILE", action=_Given,
                        help="the aggregator's public key (aggregator.key)")
        sp.add_argument("--insecure", action=_Given, nargs=0, const=True, default=False,
                        help="allow a non-loopback aggregator without encryption")

    a = sub.add_parser("aggregator", help="run the central aggregator")
    a.add_argument("--config", default=None, metavar="FILE", help="perfmesh.toml; flags override it")
    a.add_argument("--bind", default="127.0.0.1", metavar="ADDR", action=_Given, help="address to bind (default 127.0.0.1)")
    a.add_argument("--keys", default=None, metavar="DIR", action=_Given,
                   help="CURVE keys: DIR/aggregator.key_secret and allowlists DIR/{agents,operators,subscribers}/")
    a.add_argument("--data", default=None, metavar="DIR",
                   help="state folder: SQLite history, audit log (default ~/.local/state/perfmesh/aggregator)")
    a.add_argument("--insecure", action=_Given, nargs=0, const=True, default=False,
                   help="allow binding a non-loopback address without keys (anyone on the network may connect)")
    a.add_argument("--port", type=_port, default=7700, metavar="BASE", action=_Given,
                   help="base port; uses BASE..BASE+3 (default 7700)")
    a.add_argument("--budget", type=parse_budget, action="append", default=[], metavar="NAME=LIMIT",
                   help="override a budget limit (repeatable)")
    a.add_argument("--auto-optimize", action=_Given, nargs=0, const=True, default=False,
                   help="run recommended strategies automatically (rate-limited)")
    a.add_argument("--heartbeat", type=_positive_float, default=1.0, metavar="SECONDS", action=_Given,
                   help="heartbeat interval; a host is down after 3 missed (default 1)")
    a.add_argument("--history", type=_positive_int, default=1000, metavar="ROWS", action=_Given,
                   help="samples kept per series (default 1000)")
    a.add_argument("--metrics-listen", default=None, metavar="ADDR:PORT", help="serve Prometheus /metrics here")
    a.add_argument("--remote-write", type=_http_url, action="append", default=[], metavar="URL",
                   help="Prometheus remote-write endpoint, e.g. http://127.0.0.1:9090/api/v1/write (repeatable)")
    a.add_argument("--remote-write-bearer-token-file", default=None, metavar="FILE",
                   help="send 'Authorization: Bearer <FILE's content>' with remote write")
    a.add_argument("--remote-write-user", default=None, metavar="USER", help="basic auth user for remote write")
    a.add_argument("--remote-write-password-file", default=None, metavar="FILE",
                   help="basic auth password for remote write, read from FILE")
    a.add_argument("--remote-write-ca-file", default=None, metavar="FILE", help="CA bundle for https remote write")
    a.add_argument("--webhook", type=_http_url, action="append", default=None, metavar="URL",
                   help="POST alerts as JSON here (repeatable; replaces the file's [[webhooks]])")
    a.add_argument("--alertmanager", type=_http_url, action="append", default=None, metavar="URL",
                   help="Alertmanager base URL, e.g. http://127.0.0.1:9093 (repeatable; replaces the file's)")

    g = sub.add_parser("agent", help="run the host agent and its collectors")
    connect(g)
    g.add_argument("--config", default=None, metavar="FILE", help="perfmesh.toml; flags override it")
    g.add_argument("--name", type=_host_name, default=None, help="host name to report (default: this machine's)")
    g.add_argument("--interval", type=_positive_float, default=1.0, metavar="SECONDS", action=_Given,
                   help="sampling interval (default 1)")
    g.add_argument("--no-commands", action=_Given, nargs=0, const=True, default=False,
                   help="refuse every remote command")
    g.add_argument("--allow", action="append", default=None, metavar="STRATEGY",
                   help="allow only these strategies (repeatable)")
    g.add_argument("--spool-dir", default=None, metavar="DIR",
                   help="keep the spool of recent batches on disk too (survives agent restarts)")
    g.add_argument("--spool-seconds", type=_positive_float, default=None, metavar="SECONDS",
                   help="how much recent sampling the spool holds for backfill (default 600)")
    g.add_argument("--state-dir", default=None, metavar="DIR",
                   help="audit log and command results (default ~/.local/state/perfmesh/agent-NAME)")

    s = sub.add_parser("subscribe", help="print the live stream")
    connect(s)
    s.add_argument("--type", choices=EVENT_TYPES, action="append", default=None, help="event type (repeatable)")
    s.add_argument("--host", type=_host_name, default=None)
    s.add_argument("--category", choices=CATEGORY_CHOICES, default=None)
    s.add_argument("--json", action="store_true", help="one JSON object per line")
    s.add_argument("--count", type=_positive_int, default=None, metavar="N", help="exit after N events")
    s.add_argument("--timeout", type=_positive_float, default=None, metavar="S", help="exit after S seconds")

    st = sub.add_parser("status", help="show every host the aggregator knows")
    connect(st)
    st.add_argument("--json", action="store_true")
    st.add_argument("--timeout", type=_positive_float, default=3.0, metavar="S")

    c = sub.add_parser("command", help="run an optimization strategy on a host")
    connect(c)
    c.add_argument("host", type=_host_name)
    c.add_argument("strategy")
    c.add_argument("params", nargs="*", metavar="key=value")
    c.add_argument("--json", action="store_true")
    c.add_argument("--timeout", type=_positive_float, default=10.0, metavar="S")

    h = sub.add_parser("history", help="stored samples of one series")
    connect(h)
    h.add_argument("--host", type=_host_name, required=True)
    h.add_argument("--name", required=True, metavar="METRIC", help="metric name, optionally with {labels}")
    h.add_argument("--since", type=_positive_float, default=3600.0, metavar="SECONDS_AGO")
    h.add_argument("--json", action="store_true")

    t = sub.add_parser("top", help="live full-screen view of the fleet")
    connect(t)

    w = sub.add_parser("web", help="serve the web dashboard")
    connect(w)
    w.add_argument("--listen", default="127.0.0.1:7780", metavar="ADDR:PORT", help="default 127.0.0.1:7780")
    w.add_argument("--allow-commands", action="store_true",
                   help="let the page send optimization commands (each asks for confirmation)")
    w.add_argument("--operator-key", default=None, metavar="SECRET_FILE",
                   help="an operator's secret key: the page sends commands with it (read-only without)")

    r = sub.add_parser("report", help="write a self-contained HTML report of one host")
    connect(r)
    r.add_argument("--host", type=_host_name, required=True)
    r.add_argument("--since", type=_positive_float, default=3600.0, metavar="SECONDS_AGO")
    r.add_argument("--out", required=True, metavar="FILE")

    u = sub.add_parser("up", help="aggregator + agent on this machine + a live view")
    u.add_argument("--port", type=_port, default=7700, metavar="BASE")
    u.add_argument("--interval", type=_positive_float, default=1.0, metavar="SECONDS")
    u.add_argument("--duration", type=_positive_float, default=None, metavar="S", help="stop after S seconds")

    k = sub.add_parser("keys", help="create CURVE key pairs")
    ks = k.add_subparsers(dest="keys_cmd", metavar="ACTION", parser_class=_Parser)
    ks.required = True
    kn = ks.add_parser("new", help="write NAME.key (public) and NAME.key_secret (mode 0600)")
    kn.add_argument("name", help="aggregator, or a host or person name")
    kn.add_argument("--dir", required=True, metavar="DIR", help="folder to write the two files into")

    cf = sub.add_parser("config", help="check a perfmesh.toml or print an example")
    cfs = cf.add_subparsers(dest="config_cmd", metavar="ACTION", parser_class=_Parser)
    cfs.required = True
    cfs.add_parser("check", help="report every error in FILE").add_argument("file", metavar="FILE")
    cfs.add_parser("example", help="print a commented example config")
    return p


# ------------------------------------------------------------------ commands
def _endpoint(text: str, args: argparse.Namespace | None = None,
              settings: dict[str, Any] | None = None):
    """The aggregator's address with the client's keys (from flags, else from settings)."""
    from workers.transport import Endpoint, is_loopback, parse_endpoint
    try:
        ep = parse_endpoint(text)
    except ConfigError as exc:  # a bad --connect is a usage error (exit 2), like any flag
        raise CliError(f"perfmesh: argument --connect: {exc}") from None
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


def cmd_aggregator(args: argparse.Namespace) -> int:
    from workers.aggregator import AggregatorConfig, main
    from workers.transport import Endpoint, is_loopback
    from perfmesh.config.schema import Config, aggregator_settings, load
    from perfmesh.mesh.fleet import FleetConfig
    cfg = load(args.config) if args.config else Config()
    flags = _given(args, {"bind": "bind", "port": "port", "heartbeat": "heartbeat_s",
                          "history": "history_rows", "auto_optimize": "auto_optimize"})
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
                        auto_policies=lambda host, kind: [(p.strategy, p.params, p.min_interval_s)
                                                          for p in cfg.policies_for(host, kind)])
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
    from perfmesh.config.schema import Config, agent_settings, load
    cfg = load(args.config) if args.config else Config()
    flags = _given(args, {"connect": "connect", "interval": "interval_s"})
    if args.name is not None:
        flags["name"] = args.name
    if "no_commands" in getattr(args, "given", ()):
        flags["commands"] = False
    if args.allow:
        flags["allow"] = list(args.allow)
    s = agent_settings(cfg, flags)
    extra = {"kinds": tuple(s["kinds"])} if s["kinds"] else {}
    if args.spool_seconds is not None:
        extra["spool_seconds"] = args.spool_seconds
    config = AgentConfig(endpoint=_endpoint(s["connect"], args, s), name=s["name"] or socket.gethostname(),
                         interval_s=s["interval_s"], heartbeat_s=s["heartbeat_s"], commands=s["commands"],
                         allow=tuple(s["allow"]) if s["allow"] else None,
                         state_dir=Path(args.state_dir) if args.state_dir else None,
                         spool_dir=Path(args.spool_dir) if args.spool_dir else None, **extra)
    return main(config)


def cmd_keys(args: argparse.Namespace, out=None) -> int:
    from workers.security import new_keypair
    out = out or sys.stdout
    public, secret = new_keypair(args.name, args.dir)
    out.write(f"public key: {public}\nsecret key: {secret} (mode 0600: keep it on this machine)\n")
    return 0


def cmd_config(args: argparse.Namespace, out=None) -> int:
    from perfmesh.config import schema as config
    out = out or sys.stdout
    if args.config_cmd == "example":
        out.write(config.EXAMPLE)
        return 0
    issues = config.check(config.read(args.file))
    for issue in issues:
        out.write(f"{args.file}: {issue}\n")
    if not issues:
        out.write(f"{args.file}: ok\n")
    return 1 if issues else 0


def cmd_subscribe(args: argparse.Namespace, out=sys.stdout) -> int:
    from workers.client import ApiClient, Subscriber
    endpoint = _endpoint(args.connect, args)
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


def _with_api(args: argparse.Namespace, fn: Callable[[Any], int]) -> int:
    from workers.client import ApiClient
    api = ApiClient(_endpoint(args.connect, args))
    try:
        return fn(api)
    finally:
        api.close()


def cmd_status(args: argparse.Namespace, out=sys.stdout) -> int:
    def run(api: Any) -> int:
        status = api.status(args.timeout)
        out.write((json.dumps(status, sort_keys=True) if args.json else format_status(status)) + "\n")
        return 0
    return _with_api(args, run)


def cmd_command(args: argparse.Namespace, out=sys.stdout) -> int:
    params = dict(parse_param(p) for p in args.params)

    def run(api: Any) -> int:
        result = api.command(args.host, args.strategy, params, args.timeout)
        result.setdefault("host", args.host)
        result.setdefault("strategy", args.strategy)
        out.write((json.dumps(result, sort_keys=True) if args.json else format_command_result(result)) + "\n")
        return 0 if result.get("status") == "success" else 1
    return _with_api(args, run)


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
    return _with_api(args, run)


def cmd_up(args: argparse.Namespace, out=sys.stdout) -> int:
    """Start an aggregator and an agent as child processes and watch the stream."""
    base = [sys.executable, "-m", "workers"]
    procs = [subprocess.Popen([*base, "aggregator", "--port", str(args.port)]),
             subprocess.Popen([*base, "agent", "--connect", f"127.0.0.1:{args.port}",
                               "--interval", str(args.interval)])]
    try:
        from workers.view import run_top
        return run_top(_endpoint(f"127.0.0.1:{args.port}"), duration_s=args.duration)
    finally:
        stop_processes(procs)


def stop_processes(procs: list[subprocess.Popen], timeout_s: float = 5.0) -> None:
    """SIGTERM every child still running, then wait; SIGKILL what has not exited in time."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout_s)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout_s)


def cmd_top(args: argparse.Namespace) -> int:
    from workers.view import run_top
    return run_top(_endpoint(args.connect, args))


def cmd_web(args: argparse.Namespace) -> int:
    from workers.web import run_web
    endpoint = _endpoint(args.connect, args)
    command_endpoint = None
    if args.operator_key:
        if endpoint.keys is None:
            raise CliError("perfmesh web: --operator-key needs --key and --server-key (a secured aggregator)")
        from workers.security import ClientKeys, load_secret
        command_endpoint = type(endpoint)(endpoint.host, endpoint.base_port,
                                          ClientKeys(load_secret(args.operator_key), endpoint.keys.server_public),
                                          endpoint.insecure)
    return run_web(endpoint, args.listen, allow_commands=args.allow_commands, command_endpoint=command_endpoint)


def cmd_report(args: argparse.Namespace) -> int:
    from workers.report import write_report
    return write_report(_endpoint(args.connect, args), args.host, args.since, args.out)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "aggregator": cmd_aggregator, "agent": cmd_agent, "subscribe": cmd_subscribe,
    "status": cmd_status, "command": cmd_command, "history": cmd_history, "up": cmd_up,
    "top": cmd_top, "web": cmd_web, "report": cmd_report, "config": cmd_config, "keys": cmd_keys,
}


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.cmd](args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except CliError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except (PerfmeshError, ConfigError) as exc:
        print(f"perfmesh: {exc}", file=sys.stderr)
        return 1
