"""Operators' commands find the aggregator and their keys without flags: PERFMESH_CONNECT,
PERFMESH_KEY, PERFMESH_SERVER_KEY and the config file's [client] table; flags win."""

import json
import os
import subprocess

import pytest

from perfmesh.config.schema import loads
from perfmesh.config.settings import client_settings, config_paths
from tests.conftest import ROOT, perfmesh_cmd
from tests.waiting import wait_until

pytestmark = pytest.mark.multiprocess


def cli(*args, env=None):
    return subprocess.run(perfmesh_cmd(*args), capture_output=True, text=True, timeout=30, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def status_when_up(env, *args):
    """``perfmesh status`` once the aggregator answers (its last try when it never does)."""
    tries = []
    wait_until(lambda: tries.append(cli("status", "--json", "--timeout", "1s", *args, env=env))
               or tries[-1].returncode == 0, 15, "the aggregator answering", poll_s=0.2)
    return tries[-1]


def test_flags_beat_the_environment_which_beats_the_file_which_beats_the_default():
    config = loads('version = 1\n[client]\nconnect = "10.0.0.1:7700"\nkey = "file.key"\n')
    env = {"PERFMESH_CONNECT": "10.0.0.2", "PERFMESH_SERVER_KEY": "env.pub", "PERFMESH_KEY": ""}
    assert client_settings(None, {}, {}) == {"connect": "127.0.0.1:7700", "key": None,
                                             "server_key": None, "insecure": False}
    assert client_settings(config, {}, {})["connect"] == "10.0.0.1:7700"
    s = client_settings(config, env, {})
    assert (s["connect"], s["key"], s["server_key"]) == ("10.0.0.2", "file.key", "env.pub")
    assert client_settings(config, env, {"connect": "10.0.0.3"})["connect"] == "10.0.0.3"


def test_the_file_is_looked_for_in_the_usual_places():
    assert config_paths({}, "/home/op") == (["/home/op/.config/perfmesh/perfmesh.toml",
                                             "/etc/perfmesh/perfmesh.toml"], False)
    assert config_paths({"XDG_CONFIG_HOME": "/x"}, "/h")[0][0] == "/x/perfmesh/perfmesh.toml"
    assert config_paths({"PERFMESH_CONFIG": "/c.toml"}, "/h") == (["/c.toml"], True)


def test_perfmesh_connect_alone_reaches_the_aggregator(mesh):
    mesh.aggregator()
    res = status_when_up({"PERFMESH_CONNECT": mesh.connect})
    assert res.returncode == 0, res.stderr
    assert set(json.loads(res.stdout)) >= {"hosts", "counters"}


def test_the_client_table_of_the_config_file_is_used_and_a_flag_wins_over_it(mesh, tmp_path):
    mesh.aggregator()
    folder = tmp_path / "xdg-config" / "perfmesh"
    folder.mkdir(parents=True)
    (folder / "perfmesh.toml").write_text(f'version = 1\n[client]\nconnect = "{mesh.connect}"\n')
    res = status_when_up({})
    assert res.returncode == 0, res.stderr
    wrong = {"PERFMESH_CONNECT": "127.0.0.1:1"}          # nothing listens there ...
    res = status_when_up(wrong, "--connect", mesh.connect)   # ... and the flag wins
    assert res.returncode == 0, res.stderr


def test_a_bad_environment_value_is_one_line_naming_the_variable():
    res = cli("status", env={"PERFMESH_CONNECT": "no:such:port"})
    assert res.returncode == 2 and res.stderr.count("\n") == 1
    assert res.stderr.startswith("perfmesh: PERFMESH_CONNECT: ")


def test_a_broken_config_file_is_one_line_naming_it(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('version = 1\n[client]\nconnect = 5\n')
    res = cli("status", env={"PERFMESH_CONFIG": str(bad)})
    assert res.returncode == 1 and str(bad) in res.stderr and "client.connect" in res.stderr
