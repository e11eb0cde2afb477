"""Running strategies for :meth:`PerformanceManager.optimize_system`: which ones the
bottlenecks recommend, running them through the engine (skipping, with the reason, those that
are not registered or whose parameters are invalid), and the before/after validation report."""

from __future__ import annotations

from typing import Any, Mapping

from ..errors import InvalidParameterError
from ..optimize.engine import OptimizationEngine, OptimizationResult


def recommended_strategies(bottlenecks: list[dict[str, Any]]) -> list[str]:
    """The strategies the bottlenecks recommend, each once, in bottleneck order."""
    return list(dict.fromkeys(b["recommended_strategy"] for b in bottlenecks
                              if b["recommended_strategy"]))


def run_strategies(engine: OptimizationEngine, names: list[str],
                   configs: Mapping[str, Mapping[str, Any]],
                   ) -> tuple[list[OptimizationResult], list[OptimizationResult], list[dict[str, str]]]:
    """Apply each strategy in ``names`` with its config: (applied, failed, skipped)."""
    applied: list[OptimizationResult] = []
    failures: list[OptimizationResult] = []
    skipped: list[dict[str, str]] = []
    for name in names:
        if not engine.has_strategy(name):
            skipped.append({"strategy": name, "reason": "not registered in the engine"})
            continue
        config = configs.get(name, {})
        try:
            engine.validate(name, config)
        except InvalidParameterError as exc:
            skipped.append({"strategy": name, "reason": str(exc)})
            continue
        result = engine.apply_optimization(name, config)
        (applied if result.success else failures).append(result)
    return applied, failures, skipped


def validation_report(before: dict[str, Any], after: dict[str, Any],
                      applied: list[OptimizationResult]) -> dict[str, Any]:
    """Per applied strategy its verdict, improvement and rollback; health and optimization
    potential before and after."""
    return {
        "results": {r.strategy: {"verdict": r.verdict, "improvement": dict(r.improvement),
                                 "rolled_back": r.rolled_back}
                    for r in applied},
        "health_before": before["overall_health"],
        "health_after": after["overall_health"],
        "optimization_potential_before": before["optimization_potential"],
        "optimization_potential_after": after["optimization_potential"],
    }
