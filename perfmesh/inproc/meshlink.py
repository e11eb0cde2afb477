"""How an in-process :class:`PerformanceManager` reaches the mesh without importing it.

The library opens no socket. Joining the mesh needs a *mesh agent factory*: a callable
``factory(address, name, engine, sample, *, keys, insecure, interval_s, state_dir)`` returning
an object with ``start() -> self``, ``stop()`` and ``name``. It is either injected
(``PerformanceManager(mesh_agent_factory=...)``) or found through the ``perfmesh.mesh_agent``
entry point, which the perfmesh distribution declares for its ZeroMQ application agent
(``workers/app_agent.py``). Dependencies keep running one way: ``workers`` → ``perfmesh``.
"""

from __future__ import annotations

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
