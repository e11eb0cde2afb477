"""How an in-process :class:`PerformanceManager` reaches the mesh without importing it.

The library opens no socket. Joining the mesh needs a *mesh agent factory*: a callable
``factory(address, name, engine, sample, *, keys, insecure, interval_s, state_dir)`` returning
an object with ``start() -> self``, ``stop()`` and ``name``. It is either injected
(``PerformanceManager(mesh_agent_factory=...)``) or found through the ``perfmesh.mesh_agent``
entry point, which the perfmesh distribution declares for its ZeroMQ application agent
(``workers/app_agent.py``). Dependencies keep running one way: ``workers`` → ``perfmesh``.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Callable

from ..errors import ConfigError

ENTRY_POINT_GROUP = "perfmesh.mesh_agent"

MeshAgentFactory = Callable[..., Any]


def installed_mesh_agent_factory(group: str = ENTRY_POINT_GROUP) -> MeshAgentFactory:
    """The factory the installed distribution declares under ``group``.

    Raises ConfigError naming the group when none is installed (the library alone, without
    the perfmesh processes, cannot join a mesh).
    """
    found = sorted(entry_points(group=group), key=lambda ep: ep.name)
    if not found:
        raise ConfigError(f"no mesh agent is installed (entry point group {group!r} is empty); "
                          "install perfmesh with `pip install perfmesh`, or pass mesh_agent_factory=")
    return found[0].load()


@dataclass(frozen=True)
class MeshSettings:
    """Where and as whom to join the mesh (``address`` None: stay out of it)."""

    address: str | None
    name: str | None
    keys: tuple[str, str] | None
    interval_s: float


def mesh_settings(address: str | None, name: str | None, keys: tuple[str, str] | None,
                  interval_s: float | None, config_path: str | None) -> MeshSettings:
    """The manager's mesh arguments, filled from the ``[agent]`` table of ``config_path``
    (a perfmesh.toml) where given; the arguments win over the file."""
    if config_path is not None:
        from ..config.schema import load                  # only when a file is named
        from ..config.settings import agent_settings

        settings = agent_settings(load(config_path), {})
        address = address or settings["connect"]
        name = name or settings["name"]
        if keys is None and settings.get("key"):
            keys = (settings["key"], settings.get("server_key") or "")
        interval_s = settings["interval_s"] if interval_s is None else interval_s
    return MeshSettings(address, name, keys, 1.0 if interval_s is None else interval_s)
