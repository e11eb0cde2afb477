"""Baselines: the rolling mean and deviation of each metric, and comparison against them.

Each metric keeps its last ``window`` values in a bounded deque, so :meth:`update` is O(1) (it
may run for every sample). Mean and sample standard deviation (n - 1) are computed on demand
over the window, two-pass with exact sums (``math.fsum``), and cached until the metric's next
value. A running (sliding Welford) update was measured and rejected: removing a huge value
from the window leaves gross cancellation errors in the variance (even a negative one).

A baseline exists once a metric has ``min_samples`` values. :meth:`BaselineTracker.compare`
calls a value ``'above'`` or ``'below'`` when its z-score is beyond ``z_threshold`` standard
deviations, ``'normal'`` otherwise, and ``'unknown'`` when there is no baseline yet. When the
window is constant (stdev 0) any different value is ``'above'``/``'below'`` and its z-score is
None (it would be infinite).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any, Mapping

from ..errors import ConfigError
from ..model.metric import is_finite_number


@dataclass
class Baseline:
    """The mean and sample standard deviation of a metric's recent values."""

    mean: float
    stdev: float
    samples: int

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "stdev": self.stdev, "samples": self.samples}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Baseline":
        return cls(mean=data["mean"], stdev=data["stdev"], samples=data["samples"])


class _Window:
    """A metric's recent values, with its (mean, stdev) cached until the next value."""

    __slots__ = ("values", "cached")

    def __init__(self, size: int) -> None:
        self.values: deque[float] = deque(maxlen=size)
        self.cached: tuple[float, float] | None = None

    def add(self, value: float) -> None:
        self.values.append(value)
        self.cached = None

    def stats(self) -> tuple[float, float]:
        """Mean and sample stdev, two-pass with exact sums (stable for any magnitudes)."""
        if self.cached is None:
            values = self.values
            n = len(values)
            mean = math.fsum(values) / n
            variance = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
            self.cached = (mean, math.sqrt(variance))
        return self.cached


class BaselineTracker:
    """Rolling baselines per metric name.

    ``window``: how many recent values make the baseline (default 300: five minutes at 1 Hz).
    ``min_samples``: how many values before a baseline exists (default 30, 2..window).
    ``z_threshold``: how many standard deviations away counts as above/below (default 3.0).
    """

    def __init__(self, window: int = 300, min_samples: int = 30,
                 z_threshold: float = 3.0) -> None:
        if isinstance(window, bool) or not isinstance(window, int) or window < 2:
            raise ConfigError(f"baseline window {window!r} is invalid; expected an int >= 2")
        if isinstance(min_samples, bool) or not isinstance(min_samples, int) \
                or not 2 <= min_samples <= window:
            raise ConfigError(f"baseline min_samples {min_samples!r} is invalid; "
                              f"expected an int from 2 to window ({window})")
        if not is_finite_number(z_threshold) or z_threshold <= 0:
            raise ConfigError(
                f"baseline z_threshold {z_threshold!r} is invalid; expected a finite number > 0")
        self.window = window
        self.min_samples = min_samples
        self.z_threshold = float(z_threshold)
        self._windows: dict[str, _Window] = {}

    def update(self, name: str, value: float) -> None:
        """Add one value of ``name`` to its window."""
        if not is_finite_number(value):
            raise ConfigError(
                f"baseline value {value!r} for {name!r} is invalid; expected a finite number")
        window = self._windows.get(name)
        if window is None:
            window = self._windows[name] = _Window(self.window)
        window.add(float(value))

    def update_all(self, latest: Mapping[str, float]) -> None:
        """Add one value per metric."""
        for name, value in latest.items():
            self.update(name, value)

    def names(self) -> list[str]:
        """The metric names seen, sorted."""
        return sorted(self._windows)

    def reset(self, name: str | None = None) -> None:
        """Forget one metric's values, or all of them."""
        if name is None:
            self._windows.clear()
        else:
            self._windows.pop(name, None)

    def baseline(self, name: str) -> Baseline | None:
        """The baseline of ``name``, or None before ``min_samples`` values."""
        window = self._windows.get(name)
        if window is None or len(window.values) < self.min_samples:
            return None
        mean, stdev = window.stats()
        return Baseline(mean=mean, stdev=stdev, samples=len(window.values))

    def compare(self, name: str, value: float) -> dict[str, Any]:
        """How ``value`` stands against the baseline of ``name`` (the value is not added).

        Returns ``{"value", "baseline_mean", "baseline_stdev", "samples", "deviation"
        (value - mean), "z_score", "status"}``; the baseline fields are None when the
        status is 'unknown'.
        """
        if not is_finite_number(value):
            raise ConfigError(
                f"compared value {value!r} for {name!r} is invalid; expected a finite number")
        base = self.baseline(name)
        if base is None:
            window = self._windows.get(name)
            return {"value": value, "baseline_mean": None, "baseline_stdev": None,
                    "samples": 0 if window is None else len(window.values),
                    "deviation": None, "z_score": None, "status": "unknown"}
        deviation = value - base.mean
        if base.stdev > 0.0:
            z_score: float | None = deviation / base.stdev
            beyond = abs(z_score) > self.z_threshold
        else:
            z_score = 0.0 if deviation == 0.0 else None
            beyond = deviation != 0.0
        if not beyond:
            status = "normal"
        else:
            status = "above" if deviation > 0 else "below"
        return {"value": value, "baseline_mean": base.mean, "baseline_stdev": base.stdev,
                "samples": base.samples, "deviation": deviation, "z_score": z_score,
                "status": status}

    def compare_all(self, latest: Mapping[str, float]) -> dict[str, dict[str, Any]]:
        """:meth:`compare` for each name -> value of ``latest``."""
        return {name: self.compare(name, value) for name, value in latest.items()}
