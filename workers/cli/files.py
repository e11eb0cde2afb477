"""The subcommands that only touch local files: ``keys new`` and ``config check|example``."""

from __future__ import annotations

import argparse
import sys


def cmd_keys(args: argparse.Namespace, out=None) -> int:
    from workers.security import new_keypair
    out = out or sys.stdout
    public, secret = new_keypair(args.name, args.dir)
    out.write(f"public key: {public}\nsecret key: {secret} (mode 0600: keep it on this machine)\n")
    return 0


def cmd_config(args: argparse.Namespace, out=None) -> int:
    from perfmesh.config.example import EXAMPLE
    from perfmesh.config.schema import read
    from perfmesh.config.validation import check
    out = out or sys.stdout
    if args.config_cmd == "example":
        out.write(EXAMPLE)
        return 0
    issues = check(read(args.file))
    for issue in issues:
        out.write(f"{args.file}: {issue}\n")
    if not issues:
        out.write(f"{args.file}: ok\n")
    return 1 if issues else 0
