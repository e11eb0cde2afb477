"""Quiet budgets are configurable: the [aggregator] table and the aggregator's flags (flags win)."""

import pytest

from perfmesh.config.schema import loads
from perfmesh.config.settings import aggregator_settings
from perfmesh.errors import ConfigError
from workers.cli import main
from workers.cli.args import build_parser
from workers.cli.flags import flags_given


def _settings(argv, toml="version = 1\n"):
    args = build_parser().parse_args(["aggregator", *argv])
    flags = flags_given(args, {"budget_delay": "budget_for_samples", "budget_clear": "budget_clear_percent"})
    return aggregator_settings(loads(toml), flags)


def test_defaults_are_three_samples_and_five_percent():
    s = _settings([])
    assert (s["budget_for_samples"], s["budget_clear_percent"]) == (3, 5.0)


def test_the_file_sets_them_and_flags_win_down_to_zero():
    toml = "version = 1\n[aggregator]\nbudget_for_samples = 5\nbudget_clear_percent = 10.0\n"
    assert (lambda s: (s["budget_for_samples"], s["budget_clear_percent"]))(_settings([], toml)) == (5, 10.0)
    s = _settings(["--budget-delay", "0", "--budget-clear", "0"], toml)
    assert (s["budget_for_samples"], s["budget_clear_percent"]) == (0, 0.0)


@pytest.mark.parametrize("key, value", [("budget_for_samples", "-1"), ("budget_for_samples", "1.5"),
                                        ("budget_clear_percent", "101"), ("budget_clear_percent", '"x"')])
def test_bad_values_in_the_file_name_the_key(key, value):
    with pytest.raises(ConfigError, match=f"aggregator.{key}"):
        loads(f"version = 1\n[aggregator]\n{key} = {value}\n")


@pytest.mark.parametrize("argv, message", [(["--budget-delay", "x"], "'x' must be a whole number >= 0"),
                                           (["--budget-clear", "150"], "'150' must be a percentage from 0 to 100")])
def test_bad_flags_are_one_line_and_exit_2(capsys, argv, message):
    assert main(["aggregator", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
