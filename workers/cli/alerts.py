"""``perfmesh alerts``: the alert log from the aggregator's store (fired, resolved, duration,
value, limit, who acknowledged), page by page; ``perfmesh alerts ack ID`` acknowledges one."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from typing import Any

from perfmesh.errors import PerfmeshError
from perfmesh.protocol import kinds
from perfmesh.views.alertlog import format_alert_log

from .flags import CliError

PAGE = 200


def add_parser(sub: Any, connect: Any, duration: Any, host_name: Any, positive_int: Any) -> None:
    al = sub.add_parser("alerts", help="the alert log (fired, resolved, duration, acknowledged); `alerts ack ID`")
    connect(al)
    al.add_argument("action", nargs="?", choices=("ack",), help="ack: acknowledge the alert ID")
    al.add_argument("id", nargs="?", type=positive_int, metavar="ID", help="the alert to acknowledge")
    al.add_argument("--host", type=host_name, default=None)
    al.add_argument("--since", type=duration, default=86_400.0, metavar="DURATION",
                    help="alerts active at any time in this last span, e.g. 10m, 1d (default 1d)")
    al.add_argument("--active", action="store_true", help="only alerts still firing")
    al.add_argument("--limit", type=positive_int, default=1000, metavar="N", help="at most N alerts (default 1000)")
    al.add_argument("--json", action="store_true", help="one JSON object per alert")


def cmd_alerts(args: argparse.Namespace, out=sys.stdout) -> int:
    from .clients import with_api
    if args.action == "ack" and args.id is None:
        raise CliError("perfmesh alerts: ack needs the alert's ID, e.g. `perfmesh alerts ack 12`")
    if args.action is None and args.id is not None:
        raise CliError(f"perfmesh alerts: unexpected {args.id}; expected `alerts ack ID`")

    def run(api: Any) -> int:
        if args.action == "ack":
            reply = api.ack(args.id, getpass.getuser())
            if reply.get("status") != kinds.STATUS_OK:
                raise PerfmeshError(f"alerts: ack {args.id}: {reply.get('error')}")
            out.write(f"alert {args.id} on {reply.get('host')} acknowledged by {reply.get('acked_by')}\n")
            return 0
        alerts: list[dict[str, Any]] = []
        before = None
        since = time.time() - args.since
        while len(alerts) < args.limit:
            page = api.alerts(args.host, since, args.active, before, min(PAGE, args.limit - len(alerts)))
            if page.get("status") != kinds.STATUS_OK:
                raise PerfmeshError(f"alerts: {page.get('error')}")
            alerts += page["alerts"]
            before = page.get("next")
            if before is None:
                break
        if args.json:
            for a in alerts:
                out.write(json.dumps(a, sort_keys=True) + "\n")
        else:
            out.write(format_alert_log(alerts) + "\n")
        return 0
    return with_api(args, run)

