"""The metric model: one measured value, and a profile of many."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import ConfigError
from .serieskey import series_key

METRIC_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.:]{0,127}\Z")
"""A metric name (and a label key): a letter or '_', then letters, digits, '_', '.', ':'; at most 128."""
CATEGORIES = ("cpu", "memory", "io", "network", "process", "application", "custom")
SEVERITIES = ("info", "warning", "critical")


@dataclass
class PerformanceMetric:
    """One measured value. ``context`` holds labels (device, cpu, interface)."""

    name: str
    value: float
    unit: str = ""
    timestamp: float = 0.0
    category: str = "custom"
    severity: str = "info"
    context: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.category not in CATEGORIES:
            raise ConfigError(f"metric category {self.category!r} is not one of {CATEGORIES}")
        if self.severity not in SEVERITIES:
            raise ConfigError(f"metric severity {self.severity!r} is not one of {SEVERITIES}")

    @property
    def key(self) -> str:
        return series_key(self.name, self.context)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "timestamp": self.timestamp,
            "category": self.category,
            "severity": self.severity,
            "context": dict(self.context),
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PerformanceMetric":
        return cls(
            name=data["name"],
            value=data["value"],
            unit=data.get("unit", ""),
            timestamp=data.get("timestamp", 0.0),
            category=data.get("category", "custom"),
            severity=data.get("severity", "info"),
            context=dict(data.get("context", {})),
            metadata=dict(data.get("metadata", {})),
        )


@dataclass
class PerformanceProfile:
    """A component's metrics over a span, with what analysis made of them."""

    component: str
    metrics: list[PerformanceMetric] = field(default_factory=list)
    recommendations: list[str] = field(default_factory=list)
    baseline_comparison: dict[str, Any] = field(default_factory=dict)
    optimization_potential: float = 0.0
    optimization_reasons: list[str] = field(default_factory=list)
    start_time: float = 0.0
    end_time: float = 0.0

    @property
    def duration_s(self) -> float:
        return max(0.0, self.end_time - self.start_time)

    def metric(self, name: str, **labels: str) -> PerformanceMetric | None:
        """The first metric called ``name`` whose context contains ``labels``."""
        for m in self.metrics:
            if m.name == name and all(m.context.get(k) == v for k, v in labels.items()):
                return m
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "metrics": [m.to_dict() for m in self.metrics],
            "recommendations": list(self.recommendations),
            "baseline_comparison": dict(self.baseline_comparison),
            "optimization_potential": self.optimization_potential,
            "optimization_reasons": list(self.optimization_reasons),
            "start_time": self.start_time,
            "end_time": self.end_time,
            "duration_s": self.duration_s,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PerformanceProfile":
        return cls(
            component=data["component"],
            metrics=[PerformanceMetric.from_dict(m) for m in data.get("metrics", [])],
            recommendations=list(data.get("recommendations", [])),
            baseline_comparison=dict(data.get("baseline_comparison", {})),
            optimization_potential=data.get("optimization_potential", 0.0),
            optimization_reasons=list(data.get("optimization_reasons", [])),
            start_time=data.get("start_time", 0.0),
            end_time=data.get("end_time", 0.0),
        )


def is_finite_number(value: Any) -> bool:
    """True for an int or float (not bool) that is finite: the one finite-number check."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def finite_float(value: Any) -> float | None:
    """``value`` as a float when :func:`is_finite_number` holds, else None (for untrusted input)."""
    return float(value) if is_finite_number(value) else None
