"""perfmesh.model.metric: the one finite-number check, used by config, rules and views."""

from __future__ import annotations

import math

import pytest

from perfmesh.model.metric import finite_float, is_finite_number


@pytest.mark.parametrize("value, expected", [
    (0, 0.0), (3, 3.0), (-2.5, -2.5), (1e308, 1e308),
    (True, None), (False, None), (math.nan, None), (math.inf, None), (-math.inf, None),
    ("1", None), (None, None), ([1], None),
])
def test_finite_numbers(value, expected):
    """Ints and floats that are finite count (as floats); bools, NaN, infinities and non-numbers do not."""
    assert is_finite_number(value) is (expected is not None)
    assert finite_float(value) == expected
    assert finite_float(value) is None or type(finite_float(value)) is float


def test_every_reader_uses_the_one_check():
    """The config checks, the alert engine and the dashboard read numbers through it."""
    from perfmesh.config import validation as schema
    from perfmesh.rules import alerting
    from perfmesh.views import dashboard
    assert schema._is_number is is_finite_number
    assert alerting.finite_float is dashboard._finite is finite_float
