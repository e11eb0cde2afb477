"""perfmesh: performance monitoring, budgets, analysis and optimization.

The library works in one process with no sockets (``PerformanceManager`` and friends);
importing it starts nothing and imports neither zmq nor msgpack.
"""

from .rules.analysis import Bottleneck
from .rules.baseline import Baseline, BaselineTracker
from .inproc.budget import PerformanceBudget
from .rules.budget import DEFAULT_BUDGETS, AlertEvent, BudgetViolation
from .collect.collection import MetricsCollector
from .errors import (
    ConfigError,
    InvalidParameterError,
    PerfmeshError,
    UnknownMetricError,
    UnknownStrategyError,
    WireError,
)
from .inproc.manager import PerformanceManager
from .model.metric import PerformanceMetric, PerformanceProfile
from .optimize.engine import OptimizationEngine, OptimizationResult
from .inproc.timing import PerformanceContext, PerformanceUtils

__version__ = "0.1.0"

__all__ = [
    "AlertEvent",
    "Baseline",
    "BaselineTracker",
    "Bottleneck",
    "BudgetViolation",
    "ConfigError",
    "DEFAULT_BUDGETS",
    "InvalidParameterError",
    "MetricsCollector",
    "OptimizationEngine",
    "OptimizationResult",
    "PerfmeshError",
    "PerformanceBudget",
    "PerformanceContext",
    "PerformanceManager",
    "PerformanceMetric",
    "PerformanceProfile",
    "PerformanceUtils",
    "UnknownMetricError",
    "UnknownStrategyError",
    "WireError",
    "__version__",
]
