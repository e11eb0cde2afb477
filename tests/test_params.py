"""Tests for perfmesh.model.params: typed parameter schemas refuse everything off-schema."""

import math

import pytest
from hypothesis import given, strategies as st

from perfmesh.errors import ConfigError, InvalidParameterError
from perfmesh.model.params import (
    SHELL_METACHARACTERS,
    Param,
    validate_free_params,
    validate_params,
)

SCHEMA = {
    "level": Param(int, default=1, min=0, max=3),
    "ratio": Param(float, min=0.0, max=1.0),
    "mode": Param(str, choices=("fast", "slow"), default="fast"),
    "label": Param(str, max_len=8),
    "flag": Param(bool, default=False),
    "cpus": Param(list[int], min=0, max=7, max_len=4),
}


def test_valid_config_is_returned_with_defaults_for_missing_keys():
    """Missing optional keys get their default (None without one); given values pass."""
    got = validate_params(SCHEMA, {"level": 2, "ratio": 1, "cpus": (1, 3)})
    assert got == {"level": 2, "ratio": 1.0, "mode": "fast", "label": None,
                   "flag": False, "cpus": [1, 3]}
    assert isinstance(got["ratio"], float)
    assert isinstance(got["cpus"], list)


def test_none_config_means_empty():
    """validate_params(schema, None) behaves like an empty config."""
    assert validate_params({"a": Param(int, default=5)}, None) == {"a": 5}


def test_tuple_default_is_returned_as_list():
    """A list[int] default given as a tuple comes back as a fresh list."""
    assert validate_params({"c": Param(list[int], default=(0, 1))}, {}) == {"c": [0, 1]}


@pytest.mark.parametrize(
    "key, value, fragment",
    [
        ("level", True, "an integer between 0 and 3"),
        ("level", 1.0, "an integer"),
        ("level", "2", "an integer"),
        ("level", 4, "between 0 and 3"),
        ("level", -1, "between 0 and 3"),
        ("ratio", False, "a finite number"),
        ("ratio", math.nan, "a finite number"),
        ("ratio", math.inf, "a finite number"),
        ("ratio", 1.5, "between 0.0 and 1.0"),
        ("ratio", "0.5", "a finite number"),
        ("flag", 1, "true or false"),
        ("mode", "medium", "from ['fast', 'slow']"),
        ("mode", 3, "a string"),
        ("label", "x" * 9, "at most 8 characters"),
        ("cpus", [1, True], "a list of integers"),
        ("cpus", [1, 8], "between 0 and 7"),
        ("cpus", "0,1", "a list of integers"),
        ("cpus", [0, 1, 2, 3, 4], "at most 4 elements"),
    ],
)
def test_bad_values_are_refused_naming_key_value_and_expectation(key, value, fragment):
    """Wrong type (bool is not int), range, choice, length: the error names all three."""
    with pytest.raises(InvalidParameterError) as err:
        validate_params(SCHEMA, {key: value})
    text = str(err.value)
    assert repr(key) in text
    assert repr(value)[:40] in text
    assert fragment in text


@pytest.mark.parametrize("char", sorted(SHELL_METACHARACTERS))
def test_every_shell_metacharacter_is_refused(char):
    """Each of ; | & $ ` < > \\ quotes newline CR NUL in a string is refused."""
    with pytest.raises(InvalidParameterError, match="shell metacharacters"):
        validate_params(SCHEMA, {"label": f"a{char}b"})


@pytest.mark.parametrize("value", ["..", "a/../b", "/etc", "../x"])
def test_path_traversal_is_refused(value):
    """'..' anywhere or a leading '/' is refused as path traversal."""
    with pytest.raises(InvalidParameterError, match="path traversal"):
        validate_params(SCHEMA, {"label": value})


def test_plain_relative_string_is_accepted():
    """A harmless string with dots, dashes and slashes inside passes."""
    assert validate_params(SCHEMA, {"label": "a.b-c/d"})["label"] == "a.b-c/d"


def test_unknown_key_is_refused_listing_allowed_keys():
    """An unknown key is named and the allowed keys listed."""
    with pytest.raises(InvalidParameterError, match=r"'levle' is not known; expected one of: cpus, flag"):
        validate_params(SCHEMA, {"levle": 1})


def test_unknown_key_with_empty_schema_says_none():
    """An empty schema accepts no key at all."""
    with pytest.raises(InvalidParameterError, match="expected one of: none"):
        validate_params({}, {"x": 1})


def test_missing_required_key_is_refused():
    """A required key that is absent is named with its expectation."""
    with pytest.raises(InvalidParameterError, match=r"'nice' is required; expected an integer >= 0"):
        validate_params({"nice": Param(int, required=True, min=0)}, {})


def test_non_mapping_config_is_refused():
    """A config that is not a mapping is refused."""
    with pytest.raises(InvalidParameterError, match="expected a mapping"):
        validate_params(SCHEMA, [("level", 1)])


def test_long_hostile_value_is_truncated_in_the_message():
    """Error messages bound the repr of a huge value."""
    with pytest.raises(InvalidParameterError) as err:
        validate_params(SCHEMA, {"level": "y" * 10_000})
    assert len(str(err.value)) < 200
    assert "..." in str(err.value)


def test_expectation_with_only_max():
    """A Param with only max describes itself as '<= max'."""
    with pytest.raises(InvalidParameterError, match="an integer <= 5"):
        validate_params({"n": Param(int, max=5)}, {"n": 6})


def test_list_choices_apply_to_elements():
    """With choices, every list element must be one of them."""
    schema = {"c": Param(list[int], choices=(0, 2))}
    assert validate_params(schema, {"c": [2, 0]}) == {"c": [2, 0]}
    with pytest.raises(InvalidParameterError, match=r"from \[0, 2\]"):
        validate_params(schema, {"c": [1]})


def test_unsupported_param_type_and_bad_range_are_config_errors():
    """Param(type=dict) and min > max are refused when the schema is written."""
    with pytest.raises(ConfigError, match="not supported"):
        Param(dict)
    with pytest.raises(ConfigError, match="greater than max"):
        Param(int, min=3, max=1)


def test_param_to_dict_from_dict_round_trip():
    """Every Param round-trips through its JSON-able dict."""
    for param in list(SCHEMA.values()) + [Param(list[int], default=(1,), description="d")]:
        data = param.to_dict()
        assert Param.from_dict(data).to_dict() == data
    assert SCHEMA["cpus"].to_dict()["type"] == "list[int]"
    assert SCHEMA["mode"].to_dict()["choices"] == ["fast", "slow"]


def test_param_from_dict_unknown_type():
    """from_dict refuses a type name it does not know."""
    with pytest.raises(ConfigError, match="'object' is not supported"):
        Param.from_dict({"type": "object"})


def test_free_params_accept_plain_scalars_and_lists():
    """Without a schema, scalars and short lists of them pass unchanged."""
    config = {"level": 2, "ratio": 0.5, "on": True, "none": None, "name": "x", "l": [1, "a"]}
    assert validate_free_params(config) == config
    assert validate_free_params(None) == {}


@pytest.mark.parametrize(
    "config, fragment",
    [
        ({"bad key": 1}, "parameter name 'bad key' is not valid"),
        ({1: 1}, "parameter name 1 is not valid"),
        ({"x": math.nan}, "a finite number"),
        ({"x": "rm -rf /; true"}, "shell metacharacters"),
        ({"x": {"nested": 1}}, "null, a boolean, a number or a string"),
        ({"x": list(range(65))}, "at most 64 elements"),
        ({"x": [object()]}, "null, a boolean"),
    ],
)
def test_free_params_refuse_hostile_input(config, fragment):
    """Schema-less configs still refuse bad names, nesting, NaN and unsafe strings."""
    with pytest.raises(InvalidParameterError, match=fragment.replace("(", r"\(")):
        validate_free_params(config)


@given(st.text(max_size=20))
def test_no_accepted_string_carries_a_metacharacter_or_traversal(text):
    """Property: whatever string is accepted is free of metacharacters and traversal."""
    try:
        got = validate_params(SCHEMA, {"label": text})["label"]
    except InvalidParameterError:
        return
    assert not SHELL_METACHARACTERS.intersection(got)
    assert ".." not in got and not got.startswith("/")
    assert len(got) <= 8
