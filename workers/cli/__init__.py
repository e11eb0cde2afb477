"""The ``perfmesh`` command line (``python -m workers`` is the same).

One module per concern: ``args`` (the parser and flag checks), ``serve`` (running the
aggregator and the agent from the file and the flags), ``clients`` (the operator's commands
against a running aggregator), ``up`` (a local mesh as child processes) and ``files`` (keys and
config files). The processes themselves live in ``workers/`` and are imported only by the
subcommand that runs them (so ``perfmesh --help`` stays fast).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Sequence

from perfmesh.errors import ConfigError, PerfmeshError

from .args import CliError, build_parser
from .targets import cmd_command
from .clients import cmd_history, cmd_report, cmd_status, cmd_subscribe, cmd_top, cmd_web
from . import alerts, recording
from .files import cmd_config, cmd_keys
from .serve import cmd_agent, cmd_aggregator
from .up import cmd_up


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "aggregator": cmd_aggregator, "agent": cmd_agent, "subscribe": cmd_subscribe,
    "status": cmd_status, "command": cmd_command, "history": cmd_history, "up": cmd_up,
    "top": cmd_top, "web": cmd_web, "report": cmd_report, "config": cmd_config, "keys": cmd_keys,
    "alerts": alerts.cmd_alerts, "record": recording.cmd_record, "replay": recording.cmd_replay,
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
