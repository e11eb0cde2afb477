"""Durations are parsed once (perfmesh.model.duration) and every time-span flag takes a unit."""

import pytest

from perfmesh.errors import ConfigError
from perfmesh.model.duration import format_duration, parse_duration
from workers.cli.args import build_parser


@pytest.mark.parametrize("text, seconds", [("600", 600), ("0.5", 0.5), ("30s", 30), ("10m", 600),
                                           ("2h", 7200), ("7d", 604800), ("1.5h", 5400), (" 2 m ", 120)])
def test_a_duration_is_seconds_or_a_number_with_a_unit(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "0s", "-5", "10x", "m", "nan", "inf", "1e3", "5 minutes"])
def test_a_bad_duration_names_the_text_and_what_was_expected(text):
    with pytest.raises(ConfigError, match=r"duration .* is invalid; expected a positive number of seconds"):
        parse_duration(text)


@pytest.mark.parametrize("seconds, text", [(0, "0s"), (45, "45s"), (600, "10m"), (754, "12m34s"),
                                           (11100, "3h05m"), (187200, "2d04h")])
def test_durations_print_short(seconds, text):
    assert format_duration(seconds) == text


@pytest.mark.parametrize("argv, dest, seconds", [
    (["history", "--host", "a", "--name", "m", "--since", "10m"], "since", 600.0),
    (["report", "--host", "a", "--out", "f", "--since", "7d"], "since", 604800.0),
    (["status", "--timeout", "30s"], "timeout", 30.0),
    (["agent", "--interval", "0.25"], "interval", 0.25),
    (["aggregator", "--heartbeat", "2s"], "heartbeat", 2.0),
    (["record", "--out", "f", "--duration", "2h"], "duration", 7200.0),
])
def test_every_time_span_flag_takes_a_unit(argv, dest, seconds):
    assert getattr(build_parser().parse_args(argv), dest) == seconds
