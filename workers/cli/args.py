"""The ``perfmesh`` command line's arguments: the parser of every subcommand (flag checks are
in :mod:`workers.cli.flags`)."""

from __future__ import annotations

import argparse

from perfmesh.config.settings import AGENT_DEFAULTS, AGGREGATOR_DEFAULTS
from perfmesh.model.address import DEFAULT_BASE_PORT, DEFAULT_CONNECT, DEFAULT_HOST
from perfmesh.protocol import kinds

from . import alerts, recording
from .flags import (CliError, _clear_percent, _count, _Given, _host_name, _http_url, _port, _positive_int,
                    parse_budget, parse_duration, parse_label)

EVENT_TYPES = kinds.EVENT_TYPES
CATEGORY_CHOICES = ("cpu", "memory", "io", "network", "application")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise CliError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="perfmesh", description="Distributed performance monitoring over ZeroMQ.")
    p.add_argument("--version", action="version", version="perfmesh 0.1.0")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def connect(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--connect", default=DEFAULT_CONNECT, metavar="HOST[:BASE]", action=_Given,
                        help=f"aggregator address (an operator without it: $PERFMESH_CONNECT, else [client] connect; default {DEFAULT_CONNECT})")
        sp.add_argument("--key", default=None, metavar="SECRET_FILE", action=_Given,
                        help="this client's CURVE secret key (NAME.key_secret; or $PERFMESH_KEY)")
        sp.add_argument("--server-key", default=None, metavar="PUBLIC_FILE", action=_Given,
                        help="the aggregator's public key (aggregator.key; or $PERFMESH_SERVER_KEY)")
        sp.add_argument("--insecure", action=_Given, nargs=0, const=True, default=False,
                        help="allow a non-loopback aggregator without encryption")

    a = sub.add_parser("aggregator", help="run the central aggregator")
    a.add_argument("--config", default=None, metavar="FILE", help="perfmesh.toml; flags override it")
    a.add_argument("--bind", default=DEFAULT_HOST, metavar="ADDR", action=_Given, help=f"address to bind (default {DEFAULT_HOST})")
    a.add_argument("--keys", default=None, metavar="DIR", action=_Given,
                   help="CURVE keys: DIR/aggregator.key_secret and allowlists DIR/{agents,operators,subscribers}/")
    a.add_argument("--data", default=None, metavar="DIR",
                   help="state folder: SQLite history, audit log (default ~/.local/state/perfmesh/aggregator)")
    a.add_argument("--insecure", action=_Given, nargs=0, const=True, default=False,
                   help="allow binding a non-loopback address without keys (anyone on the network may connect)")
    a.add_argument("--port", type=_port, default=DEFAULT_BASE_PORT, metavar="BASE", action=_Given,
                   help=f"base port; uses BASE..BASE+3 (default {DEFAULT_BASE_PORT})")
    a.add_argument("--budget", type=parse_budget, action="append", default=[], metavar="NAME=LIMIT",
                   help="override a budget limit (repeatable)")
    a.add_argument("--budget-delay", type=_count, default=AGGREGATOR_DEFAULTS["budget_for_samples"],
                   metavar="SAMPLES", action=_Given,
                   help="a budget violation fires after this many samples over (0: at once; "
                        f"default {AGGREGATOR_DEFAULTS['budget_for_samples']})")
    a.add_argument("--budget-clear", type=_clear_percent, default=AGGREGATOR_DEFAULTS["budget_clear_percent"],
                   metavar="PERCENT", action=_Given,
                   help="... and resolves only this far under its limit (0: at the limit; "
                        f"default {AGGREGATOR_DEFAULTS['budget_clear_percent']:g})")
    a.add_argument("--auto-optimize", action=_Given, nargs=0, const=True, default=False,
                   help="run recommended strategies automatically (rate-limited)")
    a.add_argument("--heartbeat", type=parse_duration, default=AGGREGATOR_DEFAULTS["heartbeat_s"],
                   metavar="SECONDS", action=_Given,
                   help=f"heartbeat interval; a host is down after 3 missed (default {AGGREGATOR_DEFAULTS['heartbeat_s']:g})")
    a.add_argument("--history", type=_positive_int, default=AGGREGATOR_DEFAULTS["history_rows"], metavar="ROWS",
                   action=_Given, help=f"samples kept per series (default {AGGREGATOR_DEFAULTS['history_rows']})")
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
    a.add_argument("--replay", default=None, metavar="FILE", help="serve a recording as if live (no --keys)")

    g = sub.add_parser("agent", help="run the host agent and its collectors")
    connect(g)
    g.add_argument("--config", default=None, metavar="FILE", help="perfmesh.toml; flags override it")
    g.add_argument("--name", type=_host_name, default=None, help="host name to report (default: this machine's)")
    g.add_argument("--interval", type=parse_duration, default=AGENT_DEFAULTS["interval_s"], metavar="SECONDS",
                   action=_Given, help=f"sampling interval (default {AGENT_DEFAULTS['interval_s']:g})")
    g.add_argument("--label", type=parse_label, action="append", default=[], metavar="KEY=VALUE",
                   help="a label of this host, e.g. role=db: `command group:db ...` targets it (repeatable)")
    g.add_argument("--no-commands", action=_Given, nargs=0, const=True, default=False,
                   help="refuse every remote command")
    g.add_argument("--allow", action="append", default=None, metavar="STRATEGY",
                   help="allow only these strategies (repeatable)")
    g.add_argument("--spool-dir", default=None, metavar="DIR",
                   help="keep the spool of recent batches on disk too (survives agent restarts)")
    g.add_argument("--spool-seconds", type=parse_duration, default=None, metavar="SECONDS",
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
    s.add_argument("--timeout", type=parse_duration, default=None, metavar="S", help="exit after S seconds")

    st = sub.add_parser("status", help="show every host the aggregator knows")
    connect(st)
    st.add_argument("--json", action="store_true")
    st.add_argument("--timeout", type=parse_duration, default=3.0, metavar="S")

    c = sub.add_parser("command", help="run an optimization strategy on hosts")
    connect(c)
    c.add_argument("target", metavar="TARGET",
                   help="a host, a glob ('web*'), a comma list, or group:NAME (config group or agent label)")
    c.add_argument("strategy")
    c.add_argument("params", nargs="*", metavar="key=value")
    c.add_argument("--json", action="store_true", help="one JSON object per host")
    c.add_argument("--timeout", type=parse_duration, default=10.0, metavar="S")
    c.add_argument("--batch", default=None, metavar="N|N%",
                   help="run in waves of N hosts (or N%% of them); stop after a wave with a failure")
    c.add_argument("--keep-going", action="store_true", help="run every wave even after a failure")
    c.add_argument("--dry-run", action="store_true", help="list the hosts the target selects; run nothing")

    h = sub.add_parser("history", help="stored samples of one series")
    connect(h)
    h.add_argument("--host", type=_host_name, required=True)
    h.add_argument("--name", required=True, metavar="METRIC", help="metric name, optionally with {labels}")
    h.add_argument("--since", type=parse_duration, default=3600.0, metavar="DURATION", help="e.g. 600, 10m, 2h, 7d (default 1h)")
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
    w.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="also answer requests whose Host header is NAME, e.g. behind a proxy (repeatable)")
    w.add_argument("--auth-token", default=None, metavar="FILE",
                   help="a file (mode 600) holding a secret every request must carry; needed off loopback")
    w.add_argument("--max-connections", type=_positive_int, default=32, metavar="N",
                   help="connections served at once; more get 503 (default 32)")

    r = sub.add_parser("report", help="write a self-contained HTML report of one host")
    connect(r)
    r.add_argument("--host", type=_host_name, required=True)
    r.add_argument("--since", type=parse_duration, default=3600.0, metavar="DURATION", help="e.g. 600, 10m, 2h, 7d (default 1h)")
    r.add_argument("--out", required=True, metavar="FILE")

    u = sub.add_parser("up", help="aggregator + agent on this machine + a live view")
    u.add_argument("--port", type=_port, default=DEFAULT_BASE_PORT, metavar="BASE")
    u.add_argument("--interval", type=parse_duration, default=AGENT_DEFAULTS["interval_s"], metavar="SECONDS")
    u.add_argument("--duration", type=parse_duration, default=None, metavar="S", help="stop after S seconds")

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
    alerts.add_parser(sub, connect, parse_duration, _host_name, _positive_int)
    recording.add_parsers(sub, connect, parse_budget, _host_name)
    return p
