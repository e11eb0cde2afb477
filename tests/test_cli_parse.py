"""Tests for workers.cli (args, clients) parsing: defaults, flag validation (one line, exit 2), parse_param,
parse_budget and main()'s error paths. No processes or sockets are started."""

import argparse
import os
import sys

import pytest

from workers import cli
from workers.cli import clients as cli_clients
from workers.cli import main
from workers.cli.args import build_parser
from workers.cli.flags import CliError, parse_budget, parse_param
from perfmesh.errors import ConfigError, PerfmeshError


def parse(*argv):
    return build_parser().parse_args(list(argv))


def usage_error(capsys, *argv):
    """Run main(argv), expect exit 2 with exactly one line on stderr and nothing on stdout."""
    assert main(list(argv)) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip("\n").split("\n")
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ------------------------------------------------------------------ defaults
def test_aggregator_defaults():
    """aggregator binds 127.0.0.1 on base port 7700, default budgets, auto-optimize off."""
    a = parse("aggregator")
    assert (a.cmd, a.bind, a.port, a.budget, a.auto_optimize, a.heartbeat, a.history) == \
        ("aggregator", "127.0.0.1", 7700, [], False, 1.0, 1000)


def test_aggregator_flags_are_parsed_and_typed():
    """--port, repeated --budget, --auto-optimize, --heartbeat and --history become typed values."""
    a = parse("aggregator", "--bind", "0.0.0.0", "--port", "8000", "--budget", "cpu_percent=90",
              "--budget", "memory_percent=75.5", "--auto-optimize", "--heartbeat", "0.5",
              "--history", "50")
    assert (a.bind, a.port, a.budget, a.auto_optimize, a.heartbeat, a.history) == \
        ("0.0.0.0", 8000, [("cpu_percent", 90.0), ("memory_percent", 75.5)], True, 0.5, 50)


def test_agent_defaults_and_flags():
    """agent connects to 127.0.0.1:7700 by default; --allow repeats; --no-commands switches off commands."""
    a = parse("agent")
    assert (a.connect, a.name, a.interval, a.no_commands, a.allow) == \
        ("127.0.0.1:7700", None, 1.0, False, None)
    a = parse("agent", "--connect", "agg:9000", "--name", "web-01.dc1", "--interval", "0.25",
              "--no-commands", "--allow", "gc_collect", "--allow", "memory_trim")
    assert (a.connect, a.name, a.interval, a.no_commands, a.allow) == \
        ("agg:9000", "web-01.dc1", 0.25, True, ["gc_collect", "memory_trim"])


def test_subscribe_defaults_and_filters():
    """subscribe takes repeatable --type, --host, --category, --json, --count and --timeout."""
    s = parse("subscribe")
    assert (s.type, s.host, s.category, s.json, s.count, s.timeout) == (None, None, None, False, None, None)
    s = parse("subscribe", "--type", "metric", "--type", "gap", "--host", "web01", "--category", "io",
              "--json", "--count", "5", "--timeout", "2.5")
    assert (s.type, s.host, s.category, s.json, s.count, s.timeout) == \
        (["metric", "gap"], "web01", "io", True, 5, 2.5)


def test_status_defaults():
    """status prints a table by default and waits 3 s for the aggregator."""
    s = parse("status")
    assert (s.connect, s.json, s.timeout) == ("127.0.0.1:7700", False, 3.0)


def test_command_positionals_and_defaults():
    """command takes TARGET STRATEGY and any number of key=value params; timeout defaults to 10 s."""
    c = parse("command", "web01", "gc_collect", "generation=2", "full=true", "--json")
    assert (c.target, c.strategy, c.params, c.json, c.timeout) == \
        ("web01", "gc_collect", ["generation=2", "full=true"], True, 10.0)


def test_history_requires_host_and_name():
    """history needs --host and --name; --since defaults to an hour."""
    h = parse("history", "--host", "web01", "--name", "disk_busy_percent{dev=sda}")
    assert (h.host, h.name, h.since, h.json) == ("web01", "disk_busy_percent{dev=sda}", 3600.0, False)


def test_up_top_web_report_defaults():
    """up, top, web and report parse with their documented defaults."""
    u = parse("up")
    assert (u.port, u.interval, u.duration) == (7700, 1.0, None)
    assert parse("top").connect == "127.0.0.1:7700"
    assert parse("web").listen == "127.0.0.1:7780"
    r = parse("report", "--host", "h", "--out", "r.html")
    assert (r.host, r.since, r.out) == ("h", 3600.0, "r.html")


def test_every_subcommand_has_a_handler():
    """COMMANDS has exactly one handler per subcommand the parser knows."""
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(cli.COMMANDS)


# ------------------------------------------------------------------ flag errors through main()
@pytest.mark.parametrize("argv,fragment", [
    ([], "required: COMMAND"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["status", "--bogus"], "unrecognized arguments: --bogus"),
    (["aggregator", "--port", "0"], "'0' must be a port number from 1 to 65531"),
    (["aggregator", "--port", "65532"], "'65532' must be a port number"),
    (["aggregator", "--port", "http"], "'http' must be a port number"),
    (["aggregator", "--port", "-5"], "must be a port number"),
    (["aggregator", "--budget", "cpu_percent"], "must be NAME=LIMIT"),
    (["aggregator", "--budget", "=90"], "must be NAME=LIMIT"),
    (["aggregator", "--budget", "cpu_percent=lots"], "limit 'lots' is not a number"),
    (["aggregator", "--budget", "cpu_percent=-1"], "must be a finite number >= 0"),
    (["aggregator", "--budget", "cpu_percent=nan"], "must be a finite number >= 0"),
    (["aggregator", "--budget", "cpu_percent=inf"], "must be a finite number >= 0"),
    (["aggregator", "--heartbeat", "0"], "'0' must be a positive number of seconds"),
    (["aggregator", "--heartbeat", "nan"], "'nan' must be a positive number of seconds"),
    (["aggregator", "--heartbeat", "soon"], "'soon' must be a positive number of seconds, or a number with a unit"),
    (["aggregator", "--history", "0"], "'0' must be a positive whole number"),
    (["aggregator", "--history", "1.5"], "'1.5' must be a positive whole number"),
    (["agent", "--name", "bad name"], "'bad name' is not a valid host name"),
    (["agent", "--name", "x" * 129], "is not a valid host name"),
    (["agent", "--name", ".hidden"], "'.hidden' is not a valid host name"),
    (["agent", "--interval", "-1"], "'-1' must be a positive number of seconds"),
    (["agent", "--interval", "inf"], "'inf' must be a positive number of seconds"),
    (["subscribe", "--type", "metrics"], "invalid choice: 'metrics'"),
    (["subscribe", "--category", "disk"], "invalid choice: 'disk'"),
    (["subscribe", "--count", "0"], "'0' must be a positive whole number"),
    (["subscribe", "--count", "many"], "'many' must be a positive whole number"),
    (["subscribe", "--host", "web01;rm"], "is not a valid host name"),
    (["status", "--timeout", "0"], "'0' must be a positive number of seconds"),
    (["command"], "required: TARGET, strategy"),
    (["command", "web01"], "required: strategy"),
    (["command", "web 01", "gc_collect"], "'web 01' is not a valid host name or glob"),
    (["command", "web01", "gc_collect", "--timeout", "-3"], "must be a positive number of seconds"),
    (["history", "--name", "cpu_percent"], "required: --host"),
    (["history", "--host", "h"], "required: --name"),
    (["report", "--host", "h"], "required: --out"),
    (["up", "--duration", "0"], "'0' must be a positive number of seconds"),
])
def test_flag_errors_are_one_line_with_exit_2(capsys, argv, fragment):
    """Every invalid flag is one stderr line naming the bad value, exit status 2, no traceback."""
    line = usage_error(capsys, *argv)
    assert line.startswith("perfmesh") and fragment in line, line


def test_flag_error_names_the_subcommand(capsys):
    """A subcommand's flag error is prefixed with 'perfmesh SUBCOMMAND:'."""
    line = usage_error(capsys, "agent", "--interval", "0")
    assert line.startswith("perfmesh agent: argument --interval:")


def test_bad_command_parameter_is_a_usage_error_before_any_connection(capsys, monkeypatch):
    """A malformed key=value parameter fails with exit 2 before the api client is created."""
    monkeypatch.setattr(cli_clients, "with_api", lambda *a: pytest.fail("must not connect"))
    line = usage_error(capsys, "command", "web01", "gc_collect", "generation")
    assert "parameter 'generation' must be key=value" in line


@pytest.mark.parametrize("connect", ["agg:port", "agg:0", "agg:99999", ":7700", "[::1"])
def test_malformed_connect_is_a_usage_error_before_any_connection(capsys, connect):
    """A --connect that is not HOST[:BASE] is one line naming it, exit 2, and nothing connects."""
    line = usage_error(capsys, "status", "--connect", connect)
    assert "--connect" in line and repr(connect) in line


def test_version_prints_and_exits_zero(capsys):
    """--version prints the version and exits 0 (argparse's SystemExit, not an error)."""
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.strip() == "perfmesh 0.1.0"


def test_help_exits_zero_and_lists_every_subcommand(capsys):
    """--help exits 0 and names each subcommand."""
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    out = capsys.readouterr().out
    assert info.value.code == 0
    for name in cli.COMMANDS:
        assert name in out


# ------------------------------------------------------------------ parse_param
@pytest.mark.parametrize("text,expected", [
    ("generation=2", ("generation", 2)),
    ("ratio=0.5", ("ratio", 0.5)),
    ("full=true", ("full", True)),
    ("full=false", ("full", False)),
    ("nothing=null", ("nothing", None)),
    ("cpus=0,1", ("cpus", [0, 1])),
    ("cpus=0,-1,12", ("cpus", [0, -1, 12])),
    ("cpus=[2, 3]", ("cpus", [2, 3])),
    ("name=worker", ("name", "worker")),
    ('name="42"', ("name", "42")),
    ("empty=", ("empty", "")),
    ("expr=a=b", ("expr", "a=b")),
    ("_k9=1", ("_k9", 1)),
    ("nested={\"a\": 1}", ("nested", {"a": 1})),
    ("single=7,", ("single", "7,")),
])
def test_parse_param_values(text, expected):
    """key=value: JSON values, comma lists of ints, otherwise the raw string."""
    assert parse_param(text) == expected


@pytest.mark.parametrize("text", ["generation", "=2", "9key=1", "a-b=1", "a b=1", "a.b=1", ""])
def test_parse_param_refuses_bad_keys(text):
    """A missing '=' or a key that is not a plain identifier raises CliError naming the text."""
    with pytest.raises(CliError, match="must be key=value"):
        parse_param(text)


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "-Infinity", "[1, NaN]"])
def test_parse_param_never_yields_a_non_finite_number(raw):
    """JSON's NaN/Infinity literals stay text, so no non-finite float reaches the wire."""
    assert parse_param(f"x={raw}") == ("x", raw)


# ------------------------------------------------------------------ parse_budget
@pytest.mark.parametrize("text,expected", [
    ("cpu_percent=90", ("cpu_percent", 90.0)),
    ("swap_percent=0", ("swap_percent", 0.0)),
    ("x=1e3", ("x", 1000.0)),
    ("a=b=1", None),
])
def test_parse_budget(text, expected):
    """NAME=LIMIT gives (name, float limit); the limit is everything after the first '='."""
    if expected is None:
        with pytest.raises(argparse.ArgumentTypeError, match="limit 'b=1' is not a number"):
            parse_budget(text)
    else:
        assert parse_budget(text) == expected


@pytest.mark.parametrize("text,message", [
    ("cpu_percent", "budget 'cpu_percent' must be NAME=LIMIT, e.g. cpu_percent=90"),
    ("=5", "budget '=5' must be NAME=LIMIT"),
    ("cpu_percent=", "budget cpu_percent: limit '' is not a number"),
    ("cpu_percent=-0.1", "budget cpu_percent: limit '-0.1' must be a finite number >= 0"),
    ("cpu_percent=-inf", "must be a finite number >= 0"),
])
def test_parse_budget_errors_name_the_value(text, message):
    """Each malformed budget raises ArgumentTypeError whose message names the bad part."""
    with pytest.raises(argparse.ArgumentTypeError) as info:
        parse_budget(text)
    assert message in str(info.value)


# ------------------------------------------------------------------ main() error paths
def run_with(monkeypatch, fn, argv=("status",)):
    monkeypatch.setitem(cli.COMMANDS, argv[0], fn)
    return main(list(argv))


def test_main_returns_the_handlers_exit_status(monkeypatch):
    """main() passes the parsed namespace to the subcommand and returns its status."""
    seen = []
    assert run_with(monkeypatch, lambda args: seen.append(args.timeout) or 7) == 7
    assert seen == [3.0]


def raising(exc):
    def handler(args):
        raise exc
    return handler


@pytest.mark.parametrize("exc,status,err", [
    (KeyboardInterrupt(), 130, ""),
    (PerfmeshError("no aggregator at 127.0.0.1:7700 (timed out after 3 s)"), 1,
     "perfmesh: no aggregator at 127.0.0.1:7700 (timed out after 3 s)\n"),
    (ConfigError("budget config version 2 is not 1"), 1, "perfmesh: budget config version 2 is not 1\n"),
    (CliError("perfmesh status: nope"), 2, "perfmesh status: nope\n"),
])
def test_handler_errors_map_to_exit_status_and_one_line(monkeypatch, capsys, exc, status, err):
    """Ctrl-C -> 130 silently; PerfmeshError/ConfigError -> 'perfmesh: msg', 1; CliError -> its text, 2."""
    assert run_with(monkeypatch, raising(exc)) == status
    assert capsys.readouterr().err == err


def test_broken_pipe_exits_0_and_silences_stdout(monkeypatch):
    """Output piped into `head` that closes early: stdout is pointed at /dev/null and exit is 0."""
    calls = []

    class FakeStdout:
        def fileno(self):
            return 99

    monkeypatch.setattr(os, "open", lambda path, flags: calls.append(("open", path, flags)) or 42)
    monkeypatch.setattr(os, "dup2", lambda a, b: calls.append(("dup2", a, b)))
    monkeypatch.setattr(sys, "stdout", FakeStdout())

    assert run_with(monkeypatch, raising(BrokenPipeError())) == 0
    assert calls == [("open", os.devnull, os.O_WRONLY), ("dup2", 42, 99)]


def test_unexpected_errors_are_not_swallowed(monkeypatch):
    """A programming error (not a PerfmeshError) propagates instead of being disguised."""
    with pytest.raises(ZeroDivisionError):
        run_with(monkeypatch, raising(ZeroDivisionError()))
