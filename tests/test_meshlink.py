"""perfmesh.inproc.meshlink: the library joins the mesh through an injected or installed
factory, never by importing workers/."""

import pytest

from perfmesh import ConfigError, PerformanceManager
from perfmesh.inproc.meshlink import ENTRY_POINT_GROUP, installed_mesh_agent_factory


class FakeAgent:
    made: list = []

    def __init__(self, address, name, engine, sample, **options):
        self.address, self.name, self.engine, self.sample, self.options = address, name, engine, sample, options
        self.started = self.stopped = False
        FakeAgent.made.append(self)

    def start(self):
        self.started = True
        return self

    def stop(self):
        self.stopped = True


def test_an_injected_factory_is_what_joins_the_mesh():
    """mesh=... with mesh_agent_factory builds the agent through that factory, with the
    manager's engine and a sampler of its application metrics; close() stops it."""
    FakeAgent.made.clear()
    manager = PerformanceManager(mesh="127.0.0.1:7700", name="app1", mesh_interval=0.5,
                                 mesh_agent_factory=FakeAgent)
    agent = manager.mesh_agent
    assert FakeAgent.made == [agent] and agent.started
    assert (agent.address, agent.name, agent.engine) == ("127.0.0.1:7700", "app1", manager.engine)
    assert agent.options["interval_s"] == 0.5
    sampled = agent.sample(1000.0)              # application metrics, not a host profile
    assert sampled and {m.category for m in sampled} == {"application"}
    manager.close()
    assert agent.stopped and manager.mesh_agent is None


def test_the_installed_factory_is_the_zmq_app_agent():
    """The distribution declares workers.app_agent.AppAgent under the entry point group."""
    from workers.app_agent import AppAgent

    assert installed_mesh_agent_factory() is AppAgent


def test_no_installed_factory_is_a_clear_error():
    """An empty entry point group is a ConfigError naming the group and both remedies."""
    with pytest.raises(ConfigError, match=r"'perfmesh\.no_such_group'.*pip install perfmesh.*mesh_agent_factory"):
        installed_mesh_agent_factory("perfmesh.no_such_group")
    assert ENTRY_POINT_GROUP == "perfmesh.mesh_agent"
