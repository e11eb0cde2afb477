"""Analysis: name the bottleneck, judge overall health, score the optimization potential.

Everything here is a pure function of the latest aggregate values (metric name -> value, no
labels), the budget violations and the bottlenecks found.

Bottleneck rules (thresholds in :data:`DEFAULT_THRESHOLDS`, each overridable):

========================  ==========================================================  ==========
kind                      fires when (warning / critical)                             strategy
========================  ==========================================================  ==========
cpu_bound                 cpu_percent >= 85 / >= 95                                   process_priority
memory_pressure           memory_percent >= 85 / >= 95, or                            memory_trim
                          memory_growth_mb_per_min >= 100 (warning)                   (gc_collect when
                                                                                      growth fired it)
swap_thrashing            swap_percent >= 50 / >= 80, while memory_percent >= 90      memory_trim
io_wait                   cpu_iowait_percent >= 20 / >= 40                            None
disk_saturation           disk_busy_percent >= 80 / >= 95                             None
network_saturation        net errors + drops (in and out) per s >= 10 / >= 100, or    None
                          max(recv, sent bytes/s) / net_link_bytes_per_s >= 80 % /
                          95 % (only when net_link_bytes_per_s is set; default None)
========================  ==========================================================  ==========

A missing metric never fires a rule. Bottlenecks are returned critical first, then in the
order of :data:`BOTTLENECK_KINDS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from .budget import BudgetViolation
from ..errors import ConfigError
from ..model.metric import is_finite_number

BOTTLENECK_KINDS = ("cpu_bound", "memory_pressure", "swap_thrashing", "io_wait",
                    "disk_saturation", "network_saturation")
BOTTLENECK_CATEGORIES: dict[str, str] = {
    "cpu_bound": "cpu", "memory_pressure": "memory", "swap_thrashing": "memory",
    "io_wait": "io", "disk_saturation": "io", "network_saturation": "network",
}
"""The metric category of each bottleneck kind. ``io_wait`` is I/O: the CPUs are idle,
waiting on disk, so the cause (and the culprit) is the I/O, not the CPU."""
BUILTIN_STRATEGIES = ("gc_collect", "gc_tune", "memory_trim", "cpu_affinity",
                      "process_priority")
BOTTLENECK_SEVERITIES = ("warning", "critical")

DEFAULT_THRESHOLDS: dict[str, float | None] = {
    "cpu_percent_warning": 85.0,
    "cpu_percent_critical": 95.0,
    "memory_percent_warning": 85.0,
    "memory_percent_critical": 95.0,
    "memory_growth_mb_per_min_warning": 100.0,
    "swap_percent_warning": 50.0,
    "swap_percent_critical": 80.0,
    "swap_thrashing_memory_percent": 90.0,
    "cpu_iowait_percent_warning": 20.0,
    "cpu_iowait_percent_critical": 40.0,
    "disk_busy_percent_warning": 80.0,
    "disk_busy_percent_critical": 95.0,
    "net_faults_per_s_warning": 10.0,
    "net_faults_per_s_critical": 100.0,
    "net_link_bytes_per_s": None,
    "net_utilization_percent_warning": 80.0,
    "net_utilization_percent_critical": 95.0,
}

ELEVATED_PERCENT = 70.0
"""cpu_percent or memory_percent at or above this, without a bottleneck, adds potential."""

_NET_FAULTS = ("net_errors_in_per_s", "net_errors_out_per_s", "net_drops_in_per_s",
               "net_drops_out_per_s")
_SEVERITY_RANK = {"warning": 1, "critical": 2}
_HEALTH = ("good", "warning", "critical")
_LABELS = {
    "cpu_bound": "CPU bound",
    "memory_pressure": "Memory pressure",
    "swap_thrashing": "Swap thrashing",
    "io_wait": "I/O wait",
    "disk_saturation": "Disk saturation",
    "network_saturation": "Network saturation",
}
_ADVICE = {
    "cpu_bound": "lower the priority of background work or spread it over more CPUs",
    "memory_pressure": "free memory: release caches and return freed heap to the OS",
    "swap_thrashing": "reduce the working set or add memory; swapping is slowing the host",
    "io_wait": "find the processes waiting on disk; batch or defer their I/O",
    "disk_saturation": "spread or reduce disk I/O, or move it to faster storage",
    "network_saturation": "check the links for errors and drops, or spread the traffic",
}


@dataclass
class Bottleneck:
    """A named cause of poor performance, with the values that show it."""

    kind: str
    severity: str
    evidence: dict[str, float] = field(default_factory=dict)
    recommended_strategy: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.kind not in BOTTLENECK_KINDS:
            raise ConfigError(f"bottleneck kind {self.kind!r} is not one of {BOTTLENECK_KINDS}")
        if self.severity not in BOTTLENECK_SEVERITIES:
            raise ConfigError(
                f"bottleneck severity {self.severity!r} is not one of {BOTTLENECK_SEVERITIES}")
        if self.recommended_strategy is not None \
                and self.recommended_strategy not in BUILTIN_STRATEGIES:
            raise ConfigError(f"recommended strategy {self.recommended_strategy!r} is not one "
                              f"of {BUILTIN_STRATEGIES} or None")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "severity": self.severity,
            "evidence": dict(self.evidence),
            "recommended_strategy": self.recommended_strategy,
            "description": self.description,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Bottleneck":
        return cls(
            kind=data["kind"],
            severity=data["severity"],
            evidence=dict(data.get("evidence", {})),
            recommended_strategy=data.get("recommended_strategy"),
            description=data.get("description", ""),
        )


def resolve_thresholds(overrides: Mapping[str, float | None] | None = None
                       ) -> dict[str, float | None]:
    """:data:`DEFAULT_THRESHOLDS` with ``overrides`` applied, validated.

    Unknown keys and values that are not finite numbers >= 0 raise ConfigError;
    ``net_link_bytes_per_s`` may also be None (link capacity unknown).
    """
    thresholds = dict(DEFAULT_THRESHOLDS)
    for key, value in (overrides or {}).items():
        if key not in DEFAULT_THRESHOLDS:
            raise ConfigError(f"unknown bottleneck threshold {key!r}; expected one of "
                              f"{', '.join(DEFAULT_THRESHOLDS)}")
        if value is None and key == "net_link_bytes_per_s":
            thresholds[key] = None
            continue
        if not is_finite_number(value) or value < 0:
            raise ConfigError(
                f"bottleneck threshold {key}={value!r} is invalid; expected a finite number >= 0")
        thresholds[key] = float(value)
    return thresholds


def _grade(value: float | None, warning: float, critical: float) -> str | None:
    """'critical', 'warning' or None for a value against two thresholds."""
    if value is None or value < warning:
        return None
    return "critical" if value >= critical else "warning"


def _n(value: float | None) -> str:
    """A measured value in a description, to one decimal."""
    return "n/a" if value is None else f"{value:.1f}"


def _evidence(latest: Mapping[str, float], names: Iterable[str]) -> dict[str, float]:
    return {name: latest[name] for name in names if name in latest}


def detect_bottlenecks(latest: Mapping[str, float],
                       thresholds: Mapping[str, float | None] | None = None
                       ) -> list[Bottleneck]:
    """The bottlenecks the latest aggregate values show (see the module's rule table)."""
    t = resolve_thresholds(thresholds)
    get = latest.get
    found: list[Bottleneck] = []

    def add(kind: str, severity: str | None, evidence: Iterable[str], strategy: str | None,
            reason: str) -> None:
        if severity is not None:
            found.append(Bottleneck(kind, severity, _evidence(latest, evidence), strategy,
                                    f"{_LABELS[kind]} ({severity}): {reason}"))

    cpu = get("cpu_percent")
    add("cpu_bound", _grade(cpu, t["cpu_percent_warning"], t["cpu_percent_critical"]),
        ("cpu_percent", "load_1m", "cpu_count"), "process_priority",
        f"cpu_percent {_n(cpu)} >= {t['cpu_percent_warning']}")

    memory = get("memory_percent")
    growth = get("memory_growth_mb_per_min")
    memory_grade = _grade(memory, t["memory_percent_warning"], t["memory_percent_critical"])
    growth_fired = growth is not None and growth >= t["memory_growth_mb_per_min_warning"]
    if memory_grade is not None:
        reason = f"memory_percent {_n(memory)} >= {t['memory_percent_warning']}"
    else:
        reason = (f"memory_growth_mb_per_min {_n(growth)} >= "
                  f"{t['memory_growth_mb_per_min_warning']}")
    add("memory_pressure", memory_grade or ("warning" if growth_fired else None),
        ("memory_percent", "memory_available_bytes", "memory_growth_mb_per_min"),
        "gc_collect" if growth_fired and memory_grade is None else "memory_trim", reason)

    swap = get("swap_percent")
    thrashing = memory is not None and memory >= t["swap_thrashing_memory_percent"]
    add("swap_thrashing",
        _grade(swap, t["swap_percent_warning"], t["swap_percent_critical"]) if thrashing
        else None,
        ("swap_percent", "memory_percent"), "memory_trim",
        f"swap_percent {_n(swap)} >= {t['swap_percent_warning']} with memory_percent {_n(memory)} >= "
        f"{t['swap_thrashing_memory_percent']}")

    iowait = get("cpu_iowait_percent")
    add("io_wait",
        _grade(iowait, t["cpu_iowait_percent_warning"], t["cpu_iowait_percent_critical"]),
        ("cpu_iowait_percent", "cpu_percent", "load_1m"), None,
        f"cpu_iowait_percent {_n(iowait)} >= {t['cpu_iowait_percent_warning']}")

    busy = get("disk_busy_percent")
    add("disk_saturation",
        _grade(busy, t["disk_busy_percent_warning"], t["disk_busy_percent_critical"]),
        ("disk_busy_percent", "disk_read_bytes_per_s", "disk_write_bytes_per_s"), None,
        f"disk_busy_percent {_n(busy)} >= {t['disk_busy_percent_warning']}")

    _detect_network(latest, t, add)
    found.sort(key=lambda b: (-_SEVERITY_RANK[b.severity], BOTTLENECK_KINDS.index(b.kind)))
    return found


def _detect_network(latest: Mapping[str, float], t: Mapping[str, float | None],
                    add: Callable[..., None]) -> None:
    """Network saturation from faults per second, or from utilization of a known link."""
    faults_present = [name for name in _NET_FAULTS if name in latest]
    faults = sum(latest[name] for name in faults_present) if faults_present else None
    fault_grade = _grade(faults, t["net_faults_per_s_warning"], t["net_faults_per_s_critical"])
    link = t["net_link_bytes_per_s"]
    traffic = [latest[n] for n in ("net_recv_bytes_per_s", "net_sent_bytes_per_s")
               if n in latest]
    utilization = max(traffic) / link * 100.0 if link and traffic else None
    use_grade = _grade(utilization, t["net_utilization_percent_warning"],
                       t["net_utilization_percent_critical"])
    reasons = []
    if fault_grade:
        reasons.append(f"errors + drops {_n(faults)}/s >= {t['net_faults_per_s_warning']}/s")
    if use_grade:
        reasons.append(f"link utilization {utilization:.1f}% >= "
                       f"{t['net_utilization_percent_warning']}%")
    severity = max((g for g in (fault_grade, use_grade) if g), key=_SEVERITY_RANK.get,
                   default=None)
    add("network_saturation", severity,
        ("net_recv_bytes_per_s", "net_sent_bytes_per_s") + _NET_FAULTS, None,
        "; ".join(reasons))


def _worst_per_metric(violations: Iterable[BudgetViolation]) -> list[BudgetViolation]:
    """The most severe violation of each metric (the first one among equals), in order."""
    worst: dict[str, BudgetViolation] = {}
    for v in violations:
        seen = worst.get(v.metric)
        if seen is None or _SEVERITY_RANK[v.severity] > _SEVERITY_RANK[seen.severity]:
            worst[v.metric] = v
    return list(worst.values())


def overall_health(violations: Iterable[BudgetViolation],
                   bottlenecks: Iterable[Bottleneck]) -> str:
    """'critical' when any violation or bottleneck is critical, 'warning' when there is any
    at all, else 'good'."""
    severities = [v.severity for v in violations] + [b.severity for b in bottlenecks]
    return _HEALTH[max((_SEVERITY_RANK[s] for s in severities), default=0)]


# Points added to the optimization potential score.
POTENTIAL_POINTS = {
    "actionable_bottleneck": {"warning": 20.0, "critical": 30.0},
    "other_bottleneck": {"warning": 10.0, "critical": 15.0},
    "violation": {"warning": 10.0, "critical": 15.0},
    "elevated": 5.0,
}


def optimization_potential(latest: Mapping[str, float], violations: Iterable[BudgetViolation],
                           bottlenecks: Iterable[Bottleneck]) -> tuple[float, list[str]]:
    """A 0-100 score of how much tuning could gain, with one reason per contribution.

    Points (:data:`POTENTIAL_POINTS`): a bottleneck with a recommended strategy 20 (warning)
    or 30 (critical); one without 10 / 15; each budget violation (worst per metric) 10 / 15;
    cpu_percent or memory_percent at or above :data:`ELEVATED_PERCENT` with no bottleneck of
    its own (cpu_bound, memory_pressure) 5. The sum is capped at 100.
    """
    score = 0.0
    reasons: list[str] = []
    kinds = set()
    for b in bottlenecks:
        kinds.add(b.kind)
        group = "actionable_bottleneck" if b.recommended_strategy else "other_bottleneck"
        points = POTENTIAL_POINTS[group][b.severity]
        score += points
        fix = f"; try {b.recommended_strategy}" if b.recommended_strategy else ""
        reasons.append(f"+{points:g}: {_LABELS[b.kind]} ({b.severity}){fix}")
    for v in _worst_per_metric(violations):
        points = POTENTIAL_POINTS["violation"][v.severity]
        score += points
        reasons.append(f"+{points:g}: {v.metric} {v.value:g} is over its budget "
                       f"{v.limit:g} ({v.severity})")
    for name, kind in (("cpu_percent", "cpu_bound"), ("memory_percent", "memory_pressure")):
        value = latest.get(name)
        if value is not None and value >= ELEVATED_PERCENT and kind not in kinds:
            points = POTENTIAL_POINTS["elevated"]
            score += points
            reasons.append(f"+{points:g}: {name} {value:g}% is elevated "
                           f"(>= {ELEVATED_PERCENT:g}%)")
    return min(score, 100.0), reasons


def recommendations(bottlenecks: Iterable[Bottleneck],
                    violations: Iterable[BudgetViolation]) -> list[str]:
    """Plain-language advice: one line per bottleneck, then one per over-budget metric
    (its worst violation). Empty when there is nothing to act on."""
    advice: list[str] = []
    for b in bottlenecks:
        fix = f" (strategy: {b.recommended_strategy})" if b.recommended_strategy else ""
        advice.append(f"{_LABELS[b.kind]} ({b.severity}): {_ADVICE[b.kind]}{fix}")
    for v in _worst_per_metric(violations):
        advice.append(f"Bring {v.metric} back under its budget {v.limit:g} "
                      f"(last {v.value:g}, {v.severity})")
    return advice
