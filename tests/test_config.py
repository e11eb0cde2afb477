"""perfmesh.config (validation, schema, settings, example): TOML check (every error, dotted key, what was expected), parse, merge, CLI."""

from __future__ import annotations

import pytest

from workers import cli
from workers.cli import flags as cli_args
from perfmesh.config.schema import Rollup
from perfmesh.rules.alerting import HostSelector
from perfmesh.rules.budget import DEFAULT_BUDGETS
from perfmesh.config.example import EXAMPLE
from perfmesh.config.schema import Config, load, loads, parse, parse_toml, read
from perfmesh.config.settings import AGENT_DEFAULTS, AGGREGATOR_DEFAULTS, aggregator_settings, agent_settings, merge
from perfmesh.config.validation import ConfigIssue, check
from perfmesh.errors import ConfigError


def issues(raw) -> list[str]:
    return [str(i) for i in check(raw)]


def test_example_passes_check_and_parses():
    """The commented example is valid and says what it shows."""
    raw = parse_toml(EXAMPLE)
    assert check(raw) == []
    cfg = parse(raw)
    assert cfg.aggregator["metrics_listen"] == "127.0.0.1:9790"
    assert cfg.agent["server_key"] == "/etc/perfmesh/keys/aggregator.key"
    assert cfg.retention.rollups == (Rollup(60.0, 2592000.0),)
    assert cfg.retention.data_dir == "/var/lib/perfmesh"
    [cpu, disk] = cfg.alerts
    assert (cpu.warning, cpu.critical, cpu.for_samples, cpu.for_s, cpu.clear, cpu.repeat_s) == \
        (85.0, 95.0, 3, 10.0, 75.0, 300.0)
    assert cpu.hosts == HostSelector(("web*", "api01"))        # from group = "web"
    assert (disk.labels, disk.hosts, disk.critical, disk.summary) == \
        (True, HostSelector(("*",)), None, "a disk is saturated")
    assert cfg.webhooks[0].headers == {"Authorization": "Bearer change-me"}
    assert cfg.alertmanagers[0].resend_s == 60.0
    assert cfg.burn_rate.windows_s == (300.0, 3600.0)
    assert (cfg.violations, cfg.bottlenecks) == (True, True)


def test_empty_config_is_valid_with_defaults():
    """An empty file: default budgets, no rules, no targets."""
    cfg = loads("")
    assert cfg.budgets == DEFAULT_BUDGETS and cfg == Config()
    assert cfg.budgets_for("any") == DEFAULT_BUDGETS


def test_every_error_is_reported_with_its_key():
    """One bad config yields one line per problem, each naming the dotted key and what was expected."""
    raw = {
        "version": 2, "nonsense": 1,
        "aggregator": {"port": 0, "metrics_listen": "9790", "bogus": True, "auto_optimize": "yes"},
        "agent": {"interval_s": -1, "name": "bad name", "kinds": ["cpu", "gpu"], "allow": "gc"},
        "retention": {"history_rows": 0, "rollups": [{"step_s": 60, "keep_s": 30}, {"step_s": 1}, 5]},
        "budgets": {"cpu_percent": -5, "bad name": 1},
        "groups": {"web": {"budgets": {"cpu_percent": "x"}}, "db": 7},
        "alerts": [{"name": "a", "metric": "cpu_percent", "warning": 90, "critical": 80, "clear": 95,
                    "hosts": "x", "group": "web"},
                   {"name": "a", "metric": "m"},
                   {"metric": "m", "warning": 1, "group": "nope", "for_samples": 0}],
        "auto_optimize": [{"bottleneck": "sadness", "strategy": "Rm -rf"}],
        "webhooks": [{"url": "ftp://x", "headers": {"a": 1}}],
        "alertmanagers": {"url": "http://x"},
        "burn_rate": {"allowed_fraction": 2, "windows_s": [60], "bucket_s": 120},
        "alerting": {"violations": 1},
    }
    assert issues(raw) == [
        "nonsense: unknown key; expected one of version, aggregator, agent, retention, budgets, "
        "groups, alerts, auto_optimize, webhooks, alertmanagers, alerting, burn_rate, client",
        "version: is 2; expected 1",
        "aggregator.port: is 0; expected a whole number >= 1 and <= 65531",
        "aggregator.metrics_listen: is '9790'; expected ADDR:PORT, e.g. 127.0.0.1:9790",
        "aggregator.bogus: unknown key; expected one of auto_optimize, bind, budget_clear_percent, budget_for_samples, command_timeout_s, "
        "heartbeat_s, keys_dir, max_hosts, max_series_per_host, metrics_listen, port, "
        "snapshot_interval_s",
        "aggregator.auto_optimize: is 'yes'; expected true or false",
        "agent.interval_s: is -1; expected a number > 0",
        "agent.name: is 'bad name'; expected a host name (letters, digits, '_', '.', '-'; at most 128)",
        "agent.kinds: is ['cpu', 'gpu']; expected a non-empty list of collector kinds (cpu, memory, io)",
        "agent.allow: is 'gc'; expected a list of strategy names",
        "alerting.violations: is 1; expected true or false",
        "retention.history_rows: is 0; expected a whole number >= 1",
        "retention.rollups[0].keep_s: is 30; expected at least step_s (60)",
        "retention.rollups[1].keep_s: is missing; it is required",
        "retention.rollups[1].step_s: is 1; expected 60 (the store keeps per-minute rollups)",
        "retention.rollups[2]: is 5; expected a table",
        "retention.rollups: has 3 levels; expected one (step_s = 60); longer history belongs in Prometheus",
        "budgets.cpu_percent: is -5; expected a number >= 0",
        "budgets.bad name: is not a metric name; expected letters, digits, '_', '.', ':'",
        "groups.web.hosts: is missing; it is required",
        "groups.web.budgets.cpu_percent: is 'x'; expected a number >= 0",
        "groups.db: is 7; expected a table",
        "alerts[0].group: given with hosts; expected one of hosts or group",
        "alerts[0].critical: is 80; expected >= warning (90)",
        "alerts[0].clear: is 95; expected <= the lowest level (80)",
        "alerts[1].name: 'a' is used twice; expected unique rule names",
        "alerts[1]: has no level; expected warning and/or critical",
        "alerts[2].name: is missing; it is required",
        "alerts[2].for_samples: is 0; expected a whole number >= 1",
        "alerts[2].group: is 'nope'; expected a group defined under [groups.NAME] (db, web)",
        "auto_optimize[0].bottleneck: is 'sadness'; expected one of cpu_bound, memory_pressure, "
        "swap_thrashing, io_wait, disk_saturation, network_saturation",
        "auto_optimize[0].strategy: is 'Rm -rf'; expected a strategy name (a-z, 0-9, '_', '.', '-')",
        "webhooks[0].url: is 'ftp://x'; expected an http:// or https:// URL",
        "webhooks[0].headers: is {'a': 1}; expected a table of strings",
        "alertmanagers: is {'url': 'http://x'}; expected an array of tables ([[alertmanagers]])",
        "burn_rate.allowed_fraction: is 2; expected a number > 0 and <= 1",
        "burn_rate.bucket_s: is 120; expected <= the shortest window (60)",
    ]


def test_odd_shapes_are_reported_not_crashed_on():
    """A non-table top level, groups not a table, rollups not a list, sections not tables."""
    assert issues([1]) == ["(top): is [1]; expected a table"]
    assert issues({"groups": [], "retention": {"rollups": {}}, "agent": 5, "budgets": 3,
                   "alerts": [{"name": ["x"], "metric": "m", "warning": 1}]}) == [
        "agent: is 5; expected a table",
        "retention.rollups: is {}; expected an array of tables",
        "budgets: is 3; expected a table of metric = limit",
        "groups: is []; expected tables [groups.NAME]",
        "alerts[0].name: is ['x']; expected a name (letters, digits, '_', '.', ':', '-')",
    ]
    long = "x" * 200
    assert issues({"agent": {"name": long}})[0].startswith("agent.name: is 'xxxxxxxx") and "...;" in issues(
        {"agent": {"name": long}})[0]
    assert issues({"version": True}) == ["version: is True; expected 1"]
    assert issues({"burn_rate": {"windows_s": []}}) == [
        "burn_rate.windows_s: is []; expected a non-empty list of numbers of seconds > 0"]
    assert issues({"alerts": [{"name": "n", "metric": "m", "critical": 1.5, "clear": 2}]}) == [
        "alerts[0].clear: is 2; expected <= the lowest level (1.5)"]
    assert issues({"groups": {"g": {"hosts": []}}}) == [
        "groups.g.hosts: is []; expected a host name or glob pattern, or a non-empty list of them"]
    assert issues({"aggregator": {"metrics_listen": "[::1]:99999"}}) != []
    assert issues({"aggregator": {"metrics_listen": "[::1]:9790", "heartbeat_s": float("nan")}}) == [
        "aggregator.heartbeat_s: is nan; expected a number > 0"]


def test_issue_str_is_key_colon_message():
    """ConfigIssue prints as 'key: message'."""
    assert str(ConfigIssue("agent.key", "is missing")) == "agent.key: is missing"


def test_parse_raises_with_every_issue():
    """parse() refuses an invalid dict with all issues in one ConfigError."""
    with pytest.raises(ConfigError) as exc:
        parse({"agent": {"interval_s": 0, "x": 1}})
    assert str(exc.value).splitlines() == [
        "2 problem(s) in the config:", "  agent.interval_s: is 0; expected a number > 0",
        "  agent.x: unknown key; expected one of allow, commands, connect, heartbeat_s, "
        "interval_s, key, kinds, labels, name, server_key"]


def test_budgets_per_host_group():
    """Defaults < [budgets] < matching groups in file order < flag overrides."""
    cfg = loads("""
[budgets]
cpu_percent = 75
[groups.web]
hosts = ["web*"]
budgets = { cpu_percent = 60, response_time_ms = 200 }
[groups.canary]
hosts = "web-canary"
budgets = { cpu_percent = 95, queue_depth = 10 }
""")
    assert cfg.budgets_for("db01")["cpu_percent"] == 75.0
    assert cfg.budgets_for("web01")["cpu_percent"] == 60.0
    assert cfg.budgets_for("web01")["response_time_ms"] == 200.0
    canary = cfg.budgets_for("web-canary")
    assert (canary["cpu_percent"], canary["queue_depth"]) == (95.0, 10.0)
    assert "queue_depth" not in cfg.budgets_for("web01")
    assert cfg.budgets_for("web01", {"cpu_percent": 99.0})["cpu_percent"] == 99.0
    names = cfg.budget_names({"swap_percent": 1.0})
    assert (names["cpu_percent"], names["queue_depth"], names["swap_percent"]) == (75.0, 10.0, 1.0)


def test_auto_optimize_policies_select_hosts():
    """policies_for picks by bottleneck kind and host selector (hosts or group)."""
    cfg = loads("""
[groups.web]
hosts = "web*"
[[auto_optimize]]
bottleneck = "memory_pressure"
strategy = "gc_collect"
group = "web"
params = { generation = 2 }
[[auto_optimize]]
bottleneck = "memory_pressure"
strategy = "memory_trim"
min_interval_s = 60
""")
    assert [p.strategy for p in cfg.policies_for("web1", "memory_pressure")] == ["gc_collect", "memory_trim"]
    assert [p.strategy for p in cfg.policies_for("db1", "memory_pressure")] == ["memory_trim"]
    assert cfg.policies_for("web1", "cpu_bound") == []
    assert cfg.auto_optimize[0].params == {"generation": 2}
    assert cfg.auto_optimize[1].min_interval_s == 60.0


def test_toml_syntax_error_names_the_file():
    """Invalid TOML is a ConfigError naming the source and the parser's position."""
    with pytest.raises(ConfigError, match=r"^f.toml: not valid TOML: .*line 1"):
        loads("[agent\n", "f.toml")


def test_load_and_read_files(tmp_path):
    """load() reads, checks and parses; errors name the path; a missing file is a ConfigError."""
    good = tmp_path / "good.toml"
    good.write_text('[agent]\nname = "web01"\n')
    assert load(str(good)).agent == {"name": "web01"}
    assert read(str(good)) == {"agent": {"name": "web01"}}
    bad = tmp_path / "bad.toml"
    bad.write_text("[agent]\nnope = 1\n")
    with pytest.raises(ConfigError, match=rf"^{bad}: 1 problem\(s\)"):
        load(str(bad))
    with pytest.raises(ConfigError, match="cannot read config"):
        load(str(tmp_path / "missing.toml"))


def test_merge_flags_over_file_over_defaults():
    """A flag given (not None) wins over the file, the file over the default; unknown keys ignored."""
    assert merge({"a": 1, "b": 2, "c": 3}, {"b": 20, "c": 30, "z": 0}, {"c": 300, "b": None, "y": 1}) == \
        {"a": 1, "b": 20, "c": 300}


def test_aggregator_and_agent_settings():
    """Settings come from [aggregator]/[agent] and [retention].history_rows, under the flags."""
    cfg = loads('[aggregator]\nport = 8800\nbind = "0.0.0.0"\n[retention]\nhistory_rows = 50\n'
                '[agent]\ninterval_s = 2.0\nkinds = ["cpu"]\n')
    s = aggregator_settings(cfg, {"port": 9900})
    assert (s["bind"], s["port"], s["history_rows"], s["heartbeat_s"], s["metrics_listen"]) == \
        ("0.0.0.0", 9900, 50, 1.0, None)
    assert aggregator_settings(None, {})["port"] == 7700
    a = agent_settings(cfg, {"connect": "agg:7000"})
    assert (a["connect"], a["interval_s"], a["kinds"], a["commands"]) == ("agg:7000", 2.0, ["cpu"], True)
    assert agent_settings(None, {}) == AGENT_DEFAULTS


# ------------------------------------------------------------------ CLI
def test_cli_config_example_and_check(tmp_path, capsys):
    """`config example` prints a config that `config check` accepts (exit 0)."""
    assert cli.main(["config", "example"]) == 0
    text = capsys.readouterr().out
    assert text == EXAMPLE
    path = tmp_path / "perfmesh.toml"
    path.write_text(text)
    assert cli.main(["config", "check", str(path)]) == 0
    assert capsys.readouterr().out == f"{path}: ok\n"


def test_cli_config_check_lists_every_bad_key(tmp_path, capsys):
    """`config check` prints one line per issue with the file and key, and exits 1."""
    path = tmp_path / "bad.toml"
    path.write_text('[agent]\ninterval_s = 0\ncolour = "red"\n[[alerts]]\nname = "x"\nmetric = "m"\n')
    assert cli.main(["config", "check", str(path)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{path}: agent.interval_s: is 0; expected a number > 0",
        f"{path}: agent.colour: unknown key; expected one of allow, commands, connect, heartbeat_s, "
        "interval_s, key, kinds, labels, name, server_key",
        f"{path}: alerts[0]: has no level; expected warning and/or critical"]
    assert cli.main(["config", "check", str(tmp_path / "none.toml")]) == 1
    assert "cannot read config" in capsys.readouterr().err


def test_cli_flags_given_are_recorded_for_overriding_the_file():
    """Only flags typed on the command line override the file; defaults stay as before."""
    p = cli.build_parser()
    a = p.parse_args(["aggregator", "--config", "x.toml", "--port", "7700", "--auto-optimize",
                      "--metrics-listen", "127.0.0.1:0", "--webhook", "http://h/x",
                      "--alertmanager", "http://am:9093"])
    assert a.given == {"port", "auto_optimize"}
    assert cli_args.flags_given(a, {"port": "port", "bind": "bind", "auto_optimize": "auto_optimize"}) == \
        {"port": 7700, "auto_optimize": True}
    assert (a.config, a.metrics_listen, a.webhook, a.alertmanager) == \
        ("x.toml", "127.0.0.1:0", ["http://h/x"], ["http://am:9093"])
    d = p.parse_args(["aggregator"])
    assert (d.bind, d.port, d.auto_optimize, cli_args.flags_given(d, {"port": "port"})) == ("127.0.0.1", 7700, False, {})
    g = p.parse_args(["agent", "--config", "y.toml", "--no-commands", "--connect", "h:1"])
    assert (g.config, g.no_commands, g.given) == ("y.toml", True, {"no_commands", "connect"})


def test_cli_rejects_a_bad_webhook_url(capsys):
    """--webhook must be an http(s) URL: a usage error (exit 2)."""
    assert cli.main(["aggregator", "--webhook", "file:///etc/passwd"]) == 2
    assert "is not an http:// or https:// URL" in capsys.readouterr().err


def test_cli_aggregator_with_a_bad_config_fails_before_binding(tmp_path, capsys):
    """An invalid --config stops the aggregator with every issue printed (exit 1)."""
    path = tmp_path / "bad.toml"
    path.write_text("[aggregator]\nport = -1\n")
    assert cli.main(["aggregator", "--config", str(path)]) == 1
    assert "aggregator.port: is -1" in capsys.readouterr().err
    assert cli.main(["agent", "--config", str(path)]) == 1


def test_cmd_aggregator_builds_fleet_and_sinks_from_file_and_flags(tmp_path, monkeypatch):
    """--config supplies port, group budgets and targets; typed flags win; sinks are built."""
    import workers.aggregator
    seen = {}
    monkeypatch.setattr(workers.aggregator, "main", lambda config, sinks=None: seen.update(config=config, sinks=sinks) or 0)
    path = tmp_path / "p.toml"
    path.write_text('[aggregator]\nport = 8800\nheartbeat_s = 2.0\n[retention]\nhistory_rows = 64\n'
                    '[groups.web]\nhosts = "web*"\nbudgets = { cpu_percent = 50 }\n'
                    '[[webhooks]]\nurl = "http://127.0.0.1:9/hook"\n'
                    '[[alertmanagers]]\nurl = "http://127.0.0.1:9"\nresend_s = 5\n')
    assert cli.main(["aggregator", "--config", str(path), "--heartbeat", "3", "--budget", "load_1m=9",
                     "--metrics-listen", "127.0.0.1:0"]) == 0
    config, sinks = seen["config"], seen["sinks"]
    try:
        assert (config.endpoint.base_port, config.fleet.heartbeat_interval_s, config.fleet.history_rows) == \
            (8800, 3.0, 64)
        assert config.fleet.host_budgets("web01")["cpu_percent"] == 50.0
        assert config.fleet.host_budgets("db01")["cpu_percent"] == 80.0
        assert config.fleet.host_budgets("db01")["load_1m"] == 9.0
        assert [type(s).__name__ for s in sinks] == ["MetricsExporter", "AlertSink"]
        assert [type(t).__name__ for t in sinks[1].targets] == ["WebhookTarget", "AlertmanagerTarget"]
        assert sinks[1].targets[1].resend_s == 5.0
    finally:
        for s in sinks:
            s.close()
    seen.clear()
    assert cli.main(["aggregator", "--config", str(path), "--webhook", "http://127.0.0.1:9/a"]) == 0
    try:
        [sink] = seen["sinks"]
        assert [t.url for t in sink.targets] == ["http://127.0.0.1:9/a", "http://127.0.0.1:9"]
    finally:
        sink.close()
    seen.clear()
    assert cli.main(["aggregator"]) == 0 and seen["sinks"] == []


def test_cmd_aggregator_metrics_port_in_use_is_an_error(monkeypatch, capsys):
    """A /metrics address that cannot be bound stops the aggregator with a clear message (exit 1)."""
    import socket
    import workers.aggregator
    monkeypatch.setattr(workers.aggregator, "main", lambda *a, **k: pytest.fail("must not start"))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert cli.main(["aggregator", "--metrics-listen", f"127.0.0.1:{port}",
                         "--alertmanager", "http://127.0.0.1:9"]) == 1
    assert f"cannot serve /metrics on 127.0.0.1:{port}" in capsys.readouterr().err


def test_cmd_agent_takes_the_file_under_the_flags(tmp_path, monkeypatch):
    """[agent] gives connect, interval and kinds; --name and --no-commands override it."""
    import workers.agent
    seen = {}
    monkeypatch.setattr(workers.agent, "main", lambda config: seen.update(config=config) or 0)
    path = tmp_path / "a.toml"
    path.write_text('[agent]\nconnect = "10.0.0.5:7800"\ninterval_s = 2.5\nkinds = ["cpu"]\n'
                    'name = "from-file"\nallow = ["gc_collect"]\n')
    assert cli.main(["agent", "--config", str(path), "--name", "web07", "--no-commands"]) == 0
    c = seen["config"]
    assert (str(c.endpoint), c.name, c.interval_s, c.kinds, c.commands, c.allow) == \
        ("10.0.0.5:7800", "web07", 2.5, ("cpu",), False, ("gc_collect",))
    assert cli.main(["agent", "--config", str(path), "--interval", "0.5", "--allow", "memory_trim"]) == 0
    c = seen["config"]
    assert (c.name, c.interval_s, c.commands, c.allow) == ("from-file", 0.5, True, ("memory_trim",))


def test_defaults_are_read_from_what_they_configure():
    """The file's defaults come from FleetConfig and the address constants; the processes'
    dataclasses, the CLI flags and the example file agree with them."""
    from perfmesh.mesh.fleet import FleetConfig
    from perfmesh.model.address import DEFAULT_BASE_PORT, DEFAULT_HOST
    from workers.agent import AgentConfig
    from workers.aggregator import AggregatorConfig
    from workers.transport import Endpoint
    fleet, agg, agent = FleetConfig(), AggregatorConfig(), AgentConfig(name="x")
    assert (AGGREGATOR_DEFAULTS["bind"], AGGREGATOR_DEFAULTS["port"]) == (DEFAULT_HOST, DEFAULT_BASE_PORT) \
        == (Endpoint().host, Endpoint().base_port) == ("127.0.0.1", 7700)
    assert AGENT_DEFAULTS["connect"] == f"{Endpoint()}" == "127.0.0.1:7700"
    assert (AGGREGATOR_DEFAULTS["heartbeat_s"], AGGREGATOR_DEFAULTS["history_rows"],
            AGGREGATOR_DEFAULTS["auto_optimize"], AGGREGATOR_DEFAULTS["command_timeout_s"],
            AGGREGATOR_DEFAULTS["max_hosts"], AGGREGATOR_DEFAULTS["max_series_per_host"]) == \
        (fleet.heartbeat_interval_s, fleet.history_rows, fleet.auto_optimize, fleet.command_timeout_s,
         fleet.max_hosts, fleet.max_series_per_host)
    assert AGGREGATOR_DEFAULTS["snapshot_interval_s"] == agg.snapshot_interval_s
    assert (AGENT_DEFAULTS["interval_s"], AGENT_DEFAULTS["heartbeat_s"]) == (agent.interval_s, agent.heartbeat_s)
    d = cli.build_parser().parse_args(["aggregator"])
    assert (d.bind, d.port, d.heartbeat, d.history) == (DEFAULT_HOST, DEFAULT_BASE_PORT, fleet.heartbeat_interval_s,
                                                         fleet.history_rows)
    assert cli.build_parser().parse_args(["agent"]).interval == agent.interval_s
    example = parse(parse_toml(EXAMPLE))
    shown = {**example.aggregator, "history_rows": example.retention.history_rows}
    for key in ("bind", "port", "heartbeat_s", "snapshot_interval_s", "auto_optimize", "command_timeout_s",
                "history_rows"):
        assert shown[key] == AGGREGATOR_DEFAULTS[key], key
    for key in ("connect", "interval_s", "heartbeat_s", "commands"):
        assert example.agent[key] == AGENT_DEFAULTS[key], key


def test_name_rules_are_the_ones_the_wire_and_the_engine_use():
    """A budget or alert metric is a wire metric name (or a key of one); a strategy is an engine name."""
    from perfmesh.model.metric import METRIC_NAME_RE
    from perfmesh.optimize.engine import NAME_RE
    from perfmesh.config import validation as config
    from perfmesh.protocol import batch
    assert batch.NAME_RE is METRIC_NAME_RE and config._STRATEGY_RE is NAME_RE
    for good in ("cpu_percent", "app.lat:p99", "disk_busy_percent{device=sda}"):
        assert config._NAME_RE.match(good)
    for bad in ("1cpu", "bad name", "x" * 129):
        assert not config._NAME_RE.match(bad)
