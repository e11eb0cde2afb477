"""Targeting: `perfmesh command TARGET STRATEGY` on a glob, a list or a group, in waves."""

import json

import pytest

from perfmesh.mesh.targeting import TargetError, parse_batch, parse_target, select, waves
from perfmesh.views.targets import format_table, summary
from tests.conftest import Mesh

HOSTS = [{"name": "web01", "info": {"labels": {"role": "web"}}}, {"name": "web02", "info": {}},
         {"name": "db1", "info": {"labels": {"role": "db", "dc": "east"}}}, {"name": "db2"}]


@pytest.mark.parametrize("text, expected", [
    ("web*", ["web01", "web02"]), ("db1,web0[2]", ["db1", "web02"]), ("*", ["db1", "db2", "web01", "web02"]),
    ("group:db", ["db1"]), ("group:dc=east", ["db1"]), ("group:edge", ["db2"]),
    ("web99", ["web99"]),                       # one plain name goes through as is
    ("web99,db*", ["db1", "db2", "web99"]),     # so does a name in a list (the aggregator refuses it)
])
def test_a_target_selects_the_known_hosts_it_names(text, expected):
    groups = {"edge": lambda host: host == "db2"}      # no config group db: the label value decides
    assert select(parse_target(text), HOSTS, groups) == expected


def test_a_config_group_wins_over_a_label_of_the_same_name():
    assert select(parse_target("group:db"), HOSTS, {"db": lambda h: h == "db2"}) == ["db2"]


@pytest.mark.parametrize("text, message", [("x*", "matches no host; known hosts: db1, db2, web01, web02"),
                                           ("group:nope", "'group:nope' matches no host"),
                                           ("web01,,web02", "empty name"), ("web 01", "not a valid host name"),
                                           ("group:a=b=c", "expected group:NAME or group:KEY=VALUE")])
def test_a_bad_or_empty_target_names_itself(text, message):
    with pytest.raises(TargetError, match=message):
        select(parse_target(text), HOSTS, {})


@pytest.mark.parametrize("batch, expected", [(None, [["a", "b", "c", "d", "e"]]), ("2", [["a", "b"], ["c", "d"], ["e"]]),
                                             ("40%", [["a", "b"], ["c", "d"], ["e"]]), ("1%", [[h] for h in "abcde"])])
def test_waves_of_n_hosts_or_a_percentage_rounded_up(batch, expected):
    assert waves(list("abcde"), parse_batch(batch) if batch else None) == expected


@pytest.mark.parametrize("batch", ["0", "-1", "x", "101%", "%"])
def test_a_bad_batch_names_itself(batch):
    with pytest.raises(TargetError, match=f"batch '{batch}' is invalid"):
        parse_batch(batch)


def test_table_and_summary():
    results = [{"host": "a", "status": "success", "result": {"verdict": "improved", "duration_ms": 2.0}},
               {"host": "bb", "status": "refused", "error": "commands are off"}, {"host": "c", "status": "skipped"}]
    assert format_table(results).splitlines() == ["HOST  STATUS   DETAIL", "a     success  verdict improved, 2.0 ms",
                                                  "bb    refused  commands are off", "c     skipped"]
    assert summary(results, "gc_collect", True) == ("gc_collect on 3 hosts: 1 succeeded, 1 failed, 1 skipped "
                                                    "(stopped after a failed wave; --keep-going runs every wave)")


# ------------------------------------------------------------ real processes
@pytest.fixture(scope="module")
def three_agents(tmp_path_factory):
    mesh = Mesh(tmp_path_factory.mktemp("targeting"))
    mesh.aggregator()
    mesh.agent("wa", "--label", "role=db")
    mesh.agent("wb", "--no-commands")
    mesh.agent("wc", "--label", "role=db")
    try:
        mesh.wait_hosts("wa", "wb", "wc", timeout=30)
        yield mesh
    finally:
        mesh.stop()


@pytest.mark.multiprocess
def test_batch_1_stops_after_the_refusing_host_with_a_table_and_exit_1(three_agents):
    res = three_agents.cli("command", "w*", "gc_collect", "--batch", "1")
    assert res.returncode == 1, res.stderr
    rows = [line.split()[:2] for line in res.stdout.splitlines()[1:4]]
    assert rows == [["wa", "success"], ["wb", "refused"], ["wc", "skipped"]], res.stdout
    assert "gc_collect on 3 hosts: 1 succeeded, 1 failed, 1 skipped (stopped" in res.stdout


@pytest.mark.multiprocess
def test_keep_going_runs_every_host_and_json_is_one_object_per_host(three_agents):
    res = three_agents.cli("command", "w*", "gc_collect", "--batch", "1", "--keep-going", "--json")
    assert res.returncode == 1, res.stderr
    out = [json.loads(line) for line in res.stdout.splitlines()]
    assert [(o["host"], o["status"]) for o in out] == [("wa", "success"), ("wb", "refused"), ("wc", "success")]


@pytest.mark.multiprocess
def test_a_label_group_all_succeeding_exits_0_and_dry_run_only_lists(three_agents):
    res = three_agents.cli("command", "group:db", "gc_collect", "--dry-run")
    assert (res.returncode, res.stdout) == (0, "wa\nwc\ngc_collect would run on 2 hosts\n"), res.stderr
    res = three_agents.cli("command", "group:role=db", "gc_collect", "generation=0")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "gc_collect on 2 hosts: 2 succeeded, 0 failed, 0 skipped" in res.stdout
    res = three_agents.cli("command", "nothing*", "gc_collect")
    assert res.returncode == 1 and res.stderr.count("\n") == 1 and "matches no host" in res.stderr


def test_agent_labels_come_from_the_flag_or_the_agent_table_and_are_checked():
    from perfmesh.config.schema import loads
    from perfmesh.config.settings import agent_settings
    from perfmesh.errors import ConfigError
    from perfmesh.mesh.admission import register_info
    from workers.cli.args import build_parser
    cfg = loads('version = 1\n[agent]\nlabels = { role = "db", dc = "east" }\n')
    assert agent_settings(cfg, {})["labels"] == {"role": "db", "dc": "east"}
    assert agent_settings(cfg, {"labels": {"role": "web"}})["labels"] == {"role": "web"}
    with pytest.raises(ConfigError, match="agent.labels"):
        loads('version = 1\n[agent]\nlabels = { role = "d b" }\n')
    assert build_parser().parse_args(["agent", "--label", "role=db"]).label == [("role", "db")]
    with pytest.raises(Exception, match="label 'role' must be KEY=VALUE"):
        build_parser().parse_args(["agent", "--label", "role"])
    # the aggregator keeps well-formed labels and drops a malformed set
    assert register_info({"labels": {"role": "db"}}) == {"labels": {"role": "db"}}
    assert register_info({"labels": {"role": "\x1b[31m"}}) == {}
