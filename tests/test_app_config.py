"""An application joins the mesh from the [agent] table of a perfmesh.toml."""

from __future__ import annotations

import pytest

from perfmesh import PerformanceManager
from perfmesh.errors import ConfigError
from tests.waiting import wait_until

pytestmark = [pytest.mark.multiprocess, pytest.mark.timeout(60)]


def test_mesh_config_supplies_address_name_and_interval(mesh, tmp_path):
    mesh.aggregator()
    cfg = tmp_path / "perfmesh.toml"
    cfg.write_text(f'version = 1\n[agent]\nconnect = "{mesh.connect}"\nname = "cfgapp"\ninterval_s = 0.5\n')
    manager = PerformanceManager(mesh_config=str(cfg), mesh_state_dir=str(tmp_path / "state"))
    try:
        assert manager.mesh_agent.name == "cfgapp" and manager.mesh_agent.config.interval_s == 0.5
        hosts = wait_until(lambda: (hs := {h["name"]: h for h in mesh.status()["hosts"]})
                           .get("cfgapp", {}).get("registered") and hs, 15, "cfgapp registered", poll_s=0.1)
        assert hosts["cfgapp"]["alive"] and "gc_collect" in hosts["cfgapp"]["info"]["strategies"]
    finally:
        manager.close()
    assert manager.mesh_agent is None


def test_arguments_override_the_file_and_a_broken_file_is_refused(tmp_path):
    cfg = tmp_path / "perfmesh.toml"
    cfg.write_text('version = 1\n[agent]\nconnect = "10.1.2.3:7700"\nname = "fromfile"\n')
    # the file's remote address without keys is refused before any socket exists ...
    with pytest.raises(ConfigError, match="without encryption"):
        PerformanceManager(mesh_config=str(cfg))
    # ... and arguments win over the file
    manager = PerformanceManager(mesh_config=str(cfg), mesh="127.0.0.1:7990", name="fromargs",
                                 mesh_interval=2.0, mesh_state_dir=str(tmp_path / "state"))
    try:
        agent = manager.mesh_agent
        assert (agent.name, agent.config.endpoint.host, agent.config.endpoint.base_port,
                agent.config.interval_s) == ("fromargs", "127.0.0.1", 7990, 2.0)
    finally:
        manager.close()
    cfg.write_text('version = 1\n[agent]\ninterval_s = -1\n')
    with pytest.raises(ConfigError, match="agent.interval_s"):
        PerformanceManager(mesh_config=str(cfg))
