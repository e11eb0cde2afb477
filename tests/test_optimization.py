"""Tests for perfmesh.optimize.engine: the exact-name registry and validated runs."""

import threading

import pytest

from perfmesh.errors import ConfigError, InvalidParameterError, UnknownStrategyError
from perfmesh.optimize.engine import OptimizationEngine, OptimizationResult, compare_measurements
from perfmesh.model.params import Param


class FakeClock:
    """A clock that advances by ``step`` seconds on every read."""

    def __init__(self, step=0.5):
        self.now = 100.0
        self.step = step

    def __call__(self):
        self.now += self.step
        return self.now


class Measures:
    """A measure() that returns the given dicts in turn."""

    def __init__(self, *values):
        self.values = list(values)

    def __call__(self):
        value = self.values.pop(0)
        if isinstance(value, Exception):
            raise value
        return value


def engine(**kwargs):
    return OptimizationEngine(clock=FakeClock(), register_builtins=False, **kwargs)


def test_issue_example_runs_as_written():
    """The README example: a lambda strategy applied with {'level': 2} succeeds."""
    e = OptimizationEngine()
    e.register_optimization_strategy("my_optimization", lambda optimization_config: True)
    result = e.apply_optimization("my_optimization", {"level": 2})
    assert result.success is True and result.config == {"level": 2} and result.error is None


def test_builtins_are_registered_by_default_and_optional():
    """register_builtins=True gives the five built-ins; False gives an empty registry."""
    assert OptimizationEngine().strategies() == [
        "cpu_affinity", "gc_collect", "gc_tune", "memory_trim", "process_priority"]
    assert engine().strategies() == []


@pytest.mark.parametrize("name", ["", "Upper", "a b", "x" * 65, "a;b", "../x", None, 3])
def test_bad_strategy_names_are_refused(name):
    """Names must be 1-64 characters of [a-z0-9_.-]."""
    with pytest.raises(ConfigError, match="expected 1-64 characters"):
        engine().register_optimization_strategy(name, lambda c: True)


def test_duplicate_name_is_refused():
    """Registering the same name twice raises ConfigError."""
    e = engine()
    e.register_optimization_strategy("a", lambda c: True)
    with pytest.raises(ConfigError, match="'a' is already registered"):
        e.register_optimization_strategy("a", lambda c: True)


def test_non_callables_and_bad_schema_are_refused():
    """fn is required and callable; measure/rollback/check callable; schema values Params."""
    e = engine()
    with pytest.raises(ConfigError, match="fn is required"):
        e.register_optimization_strategy("a", None)
    with pytest.raises(ConfigError, match="measure 5 is not callable"):
        e.register_optimization_strategy("a", lambda c: True, measure=5)
    with pytest.raises(ConfigError, match="schema entry 'x' is 1; expected a Param"):
        e.register_optimization_strategy("a", lambda c: True, schema={"x": 1})
    with pytest.raises(ConfigError, match="history_size 0"):
        OptimizationEngine(register_builtins=False, history_size=0)


def test_unknown_name_error_names_it_and_lists_registered():
    """apply/describe/validate/unregister of an unknown name raise the exact message."""
    e = engine()
    with pytest.raises(UnknownStrategyError, match=r"^unknown optimization strategy 'x'; registered: none$"):
        e.apply_optimization("x")
    e.register_optimization_strategy("b", lambda c: True)
    e.register_optimization_strategy("a", lambda c: True)
    message = r"^unknown optimization strategy 'x'; registered: a, b$"
    for call in (e.apply_optimization, e.describe, e.validate, e.unregister):
        with pytest.raises(UnknownStrategyError, match=message):
            call("x")
    with pytest.raises(UnknownStrategyError):
        e.apply_optimization(["a"])


def test_registry_queries_and_unregister():
    """strategies() is sorted, has_strategy is exact, unregister removes."""
    e = engine()
    e.register_optimization_strategy("zeta", lambda c: True)
    e.register_optimization_strategy("alpha", lambda c: True, description="first")
    assert e.strategies() == ["alpha", "zeta"]
    assert e.has_strategy("alpha") and not e.has_strategy("ALPHA") and not e.has_strategy(None)
    e.unregister("alpha")
    assert e.strategies() == ["zeta"]


def test_describe_is_json_able_schema():
    """describe() reports name, description, reversibility, measurement and param dicts."""
    e = engine()
    e.register_optimization_strategy(
        "s", lambda c: True, schema={"n": Param(int, required=True, min=1)},
        rollback=lambda state: None, description="desc")
    assert e.describe("s") == {
        "name": "s", "description": "desc", "reversible": True, "measured": False,
        "params": {"n": {"type": "int", "required": True, "default": None, "min": 1, "max": None,
                         "choices": None, "max_len": 64, "description": ""}},
    }
    e.register_optimization_strategy("free", lambda c: True)
    assert e.describe("free")["params"] is None


def test_validate_uses_schema_then_check():
    """validate() returns validated params, refuses bad ones, and runs the check hook."""
    seen = []

    def check(params):
        seen.append(params)
        if params["n"] == 13:
            raise InvalidParameterError("parameter 'n': got 13; expected not 13")

    e = engine()
    e.register_optimization_strategy("s", lambda c: True, schema={"n": Param(int, default=1)}, check=check)
    assert e.validate("s") == {"n": 1}
    assert seen == [{"n": 1}]
    with pytest.raises(InvalidParameterError, match="expected not 13"):
        e.apply_optimization("s", {"n": 13})
    with pytest.raises(InvalidParameterError, match="'n': got True"):
        e.validate("s", {"n": True})
    e.register_optimization_strategy("free", lambda c: True)
    with pytest.raises(InvalidParameterError, match="shell metacharacters"):
        e.apply_optimization("free", {"cmd": "x; rm -rf /"})
    assert e.history() == []


def test_strategy_receives_validated_copy_and_result_keeps_config():
    """fn gets the validated params; the result records them and the duration."""
    got = []
    e = engine()
    e.register_optimization_strategy("s", lambda c: got.append(c) or True,
                                     schema={"n": Param(int, default=4)})
    result = e.apply_optimization("s")
    assert got == [{"n": 4}]
    assert result.config == {"n": 4}
    assert result.duration_ms == pytest.approx(500.0)


@pytest.mark.parametrize(
    "outcome, success, error, details",
    [
        (True, True, None, {}),
        (1, True, None, {}),
        (False, False, "strategy returned a false value", {}),
        (None, False, "strategy returned a false value", {}),
        ({"freed": 3}, True, None, {"freed": 3}),
        ({"success": False, "reason": "no libc"}, False, "no libc", {}),
        ({"success": False, "error": "boom", "x": 1}, False, "boom", {"x": 1}),
        ({"success": False}, False, "strategy reported failure", {}),
    ],
)
def test_strategy_outcomes_are_interpreted(outcome, success, error, details):
    """Truthy/falsy/dict outcomes map to success, error and details."""
    e = engine()
    e.register_optimization_strategy("s", lambda c: outcome)
    result = e.apply_optimization("s")
    assert (result.success, result.error, result.details) == (success, error, details)


def test_strategy_exception_is_caught_and_reported():
    """A raising strategy yields success=False with the error text, never propagates."""
    def boom(config):
        raise RuntimeError("disk on fire")

    e = engine()
    e.register_optimization_strategy("s", boom)
    result = e.apply_optimization("s")
    assert result.success is False
    assert result.error == "RuntimeError: disk on fire"
    assert e.history() == [result]


def test_verdict_improved_without_rollback():
    """Lower after-values give 'improved' and the improvement per key (before - after)."""
    rollbacks = []
    e = engine()
    e.register_optimization_strategy(
        "s", lambda c: {"state": "old"}, measure=Measures({"rss": 100.0}, {"rss": 80.0}),
        rollback=rollbacks.append)
    result = e.apply_optimization("s")
    assert (result.before, result.after) == ({"rss": 100.0}, {"rss": 80.0})
    assert result.improvement == {"rss": 20.0}
    assert result.verdict == "improved" and result.rolled_back is False and rollbacks == []


def test_worse_verdict_rolls_back_with_state():
    """A reversible strategy that made things worse is rolled back with its state."""
    rollbacks = []
    e = engine()
    e.register_optimization_strategy(
        "s", lambda c: {"state": ("nice", 0)}, measure=Measures({"t": 10.0}, {"t": 12.0}),
        rollback=rollbacks.append)
    result = e.apply_optimization("s")
    assert result.verdict == "worse" and result.rolled_back is True
    assert rollbacks == [("nice", 0)]
    assert result.improvement == {"t": -2.0}


def test_worse_without_rollback_is_just_reported():
    """An irreversible strategy that made things worse stays applied (rolled_back False)."""
    e = engine()
    e.register_optimization_strategy("s", lambda c: True, measure=Measures({"t": 1.0}, {"t": 2.0}))
    result = e.apply_optimization("s")
    assert (result.verdict, result.rolled_back, result.success) == ("worse", False, True)


def test_failing_rollback_is_reported():
    """A rollback that raises leaves rolled_back False and says why."""
    def bad_rollback(state):
        raise PermissionError("not root")

    e = engine()
    e.register_optimization_strategy("s", lambda c: True, measure=Measures({"t": 1.0}, {"t": 2.0}),
                                     rollback=bad_rollback)
    result = e.apply_optimization("s")
    assert result.rolled_back is False
    assert result.error == "rollback failed: PermissionError: not root"


def test_measure_failures_are_reported():
    """A failing measure before skips the run; after leaves success but no verdict."""
    ran = []
    e = engine()
    e.register_optimization_strategy("before", lambda c: ran.append(1) or True,
                                     measure=Measures(OSError("no /proc")))
    result = e.apply_optimization("before")
    assert ran == [] and result.success is False
    assert result.error == "measurement before the run failed: OSError: no /proc"
    e.register_optimization_strategy("after", lambda c: True,
                                     measure=Measures({"x": 1.0}, ValueError("bad")))
    result = e.apply_optimization("after")
    assert result.success is True and result.verdict is None
    assert result.error == "measurement after the run failed: ValueError: bad"


def test_failed_run_is_not_measured_after():
    """When the strategy fails, no after-measurement and no verdict."""
    measure = Measures({"x": 1.0})
    e = engine()
    e.register_optimization_strategy("s", lambda c: False, measure=measure)
    result = e.apply_optimization("s")
    assert result.after == {} and result.verdict is None and measure.values == []


def test_measure_override_per_run():
    """apply_optimization(measure=...) replaces the strategy's own measure."""
    e = engine()
    e.register_optimization_strategy("s", lambda c: True, measure=Measures())
    result = e.apply_optimization("s", measure=Measures({"m": 5.0}, {"m": 5.0}))
    assert result.verdict == "neutral" and result.improvement == {"m": 0.0}


@pytest.mark.parametrize(
    "before, after, verdict",
    [
        ({"a": 100.0}, {"a": 99.5}, "neutral"),      # within 1 %
        ({"a": 100.0}, {"a": 98.0}, "improved"),
        ({"a": 100.0}, {"a": 102.0}, "worse"),
        ({"a": 100.0, "b": 10.0}, {"a": 90.0, "b": 11.0}, "neutral"),  # mixed
        ({"a": 100.0, "b": 10.0}, {"a": 90.0, "b": 10.0}, "improved"),
        ({"a": 0.0}, {"a": 0.0}, "neutral"),
        ({"a": 0.0}, {"a": 1.0}, "worse"),
        ({"a": 1.0}, {"b": 1.0}, None),              # nothing in common
        ({}, {}, None),
    ],
)
def test_compare_measurements_rule(before, after, verdict):
    """The verdict rule: lower is better, 1 % tolerance, mixed is neutral."""
    improvement, got = compare_measurements(before, after)
    assert got == verdict
    assert improvement == {k: before[k] - after[k] for k in set(before) & set(after)}


def test_result_round_trips_through_dict():
    """OptimizationResult.to_dict/from_dict round-trip exactly."""
    result = OptimizationResult("s", True, {"a": 1.0}, {"a": 0.5}, {"a": 0.5}, "improved",
                                False, None, 1.25, {"n": 1}, {"freed": 2})
    assert OptimizationResult.from_dict(result.to_dict()) == result
    assert OptimizationResult.from_dict({"strategy": "x", "success": False}).verdict is None


def test_history_is_bounded_oldest_first():
    """history() keeps the last history_size results in order."""
    e = engine(history_size=3)
    e.register_optimization_strategy("s", lambda c: True, schema={"i": Param(int)})
    for i in range(5):
        e.apply_optimization("s", {"i": i})
    assert [r.config["i"] for r in e.history()] == [2, 3, 4]


def test_concurrent_applies_are_all_recorded_and_serialised():
    """Many threads applying at once: every run recorded, never two runs at the same time."""
    active = []
    overlaps = []
    lock = threading.Lock()

    def strategy(config):
        with lock:
            active.append(1)
            if len(active) > 1:
                overlaps.append(1)
        with lock:
            active.pop()
        return True

    e = OptimizationEngine(register_builtins=False, history_size=1000)
    e.register_optimization_strategy("s", strategy)
    threads = [threading.Thread(target=lambda: [e.apply_optimization("s") for _ in range(25)])
               for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(e.history()) == 400
    assert overlaps == []
