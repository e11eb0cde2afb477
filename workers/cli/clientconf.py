"""Where an operator's command finds its aggregator and keys when the flags do not say:
PERFMESH_CONNECT, PERFMESH_KEY, PERFMESH_SERVER_KEY, then the config file's ``[client]`` table
(the file PERFMESH_CONFIG names, else ~/.config/perfmesh/perfmesh.toml, else
/etc/perfmesh/perfmesh.toml). Flags win; the order is :func:`perfmesh.config.settings.client_settings`."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, Mapping

from perfmesh.config.schema import Config, load
from perfmesh.config.settings import client_settings, config_paths

from .flags import flags_given

_FLAGS = {"connect": "connect", "key": "key", "server_key": "server_key", "insecure": "insecure"}


def operator_config(env: Mapping[str, str] | None = None) -> Config:
    """The operator's config file (groups, [client]); an empty Config when there is none."""
    env = os.environ if env is None else env
    paths, required = config_paths(env, str(Path.home()))
    for path in paths:
        if required or os.path.exists(path):
            return load(path)
    return Config()


def operator_connection(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """connect, key, server_key and insecure for this command, and ``source``: what named the
    address (a flag, an environment variable, the file or the default), for error messages."""
    env = os.environ if env is None else env
    flags = flags_given(args, _FLAGS)
    config = operator_config(env)
    settings = client_settings(config, env, flags)
    source = "argument --connect"
    if "connect" not in flags and env.get("PERFMESH_CONNECT"):
        source = "PERFMESH_CONNECT"
    elif "connect" not in flags and "connect" in config.client:
        source = "[client] connect"
    return {**settings, "source": source}

