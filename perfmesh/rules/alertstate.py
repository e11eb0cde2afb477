"""The one alert state machine: delay, hysteresis, repeats and severity, per watched series.

Both budget alert handlers (:mod:`.budget`) and alert rules (:mod:`.alerting`) feed it one sample
at a time as a *level* (None when the sample is within its limit, else ``"warning"`` or
``"critical"``) and whether the sample is *cleared* (low enough to resolve a firing alert:
below the clear level, which gives hysteresis). It answers with a :class:`Transition` when the
alert fires, re-fires or resolves; each caller turns that into its own event type.

- **delay**: the alert fires once ``for_samples`` consecutive samples had a level and, with
  ``for_s``, the condition has held that long (since its first sample);
- **hysteresis**: a firing alert resolves on the first sample with no level that is cleared;
  a pending one starts over only on a cleared sample (a sample in between neither counts
  towards the delay nor resets it, so a series hovering around its limit fires once);
- **repeat**: while firing, a sample at least ``repeat_s`` after the last firing re-fires it
  (``repeat`` counts the re-fires of one firing);
- **severity**: with ``follow`` the alert takes the level of the sample that fires it, and a
  change of level while firing re-fires it at once naming the ``previous`` severity (alert
  rules); without, the worst level since the condition began sticks, silently (budgets).

Pure: time comes from ``now``, a function the machine calls only when it needs the time (so a
caller stamping with a clock reads it only then).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..protocol.kinds import FIRING, RESOLVED

RANK = {None: 0, "warning": 1, "critical": 2}


@dataclass(frozen=True)
class AlertPolicy:
    """How one alert fires, repeats and takes its severity (see the module docstring)."""

    for_samples: int = 1
    for_s: float | None = None
    repeat_s: float | None = None
    follow: bool = False


@dataclass(frozen=True)
class Transition:
    """What a sample did to an alert: ``state`` is firing (first or repeat) or resolved."""

    state: str
    severity: str
    started: float
    time: float
    repeat: int
    previous: str | None = None


class AlertState:
    """One alert's state for one series."""

    __slots__ = ("pending", "since", "firing", "severity", "last_sent", "repeats")

    def __init__(self) -> None:
        self.pending = 0
        self.since = 0.0
        self.firing = False
        self.severity: str | None = None
        self.last_sent = 0.0
        self.repeats = 0

    def step(self, policy: AlertPolicy, level: str | None, cleared: bool,
             now: Callable[[], float]) -> Transition | None:
        """Advance by one sample; the transition it causes, if any."""
        if not self.firing:
            if level is None:
                if cleared:                    # in the hysteresis band a pending alert waits
                    self.pending, self.severity = 0, None
                return None
            if self.pending == 0:
                self.since = now()
            self.pending += 1
            if RANK[level] > RANK[self.severity]:
                self.severity = level
            if self.pending < policy.for_samples or (
                    policy.for_s is not None and now() - self.since < policy.for_s):
                return None
            self.firing, self.repeats = True, 0
            if policy.follow:
                self.severity = level          # the level of the sample that fires it
            return self._fire(now(), None)
        if level is None and cleared:
            return self.resolve(now())
        if level is not None and level != self.severity:
            if policy.follow:
                previous, self.severity, self.repeats = self.severity, level, 0
                return self._fire(now(), previous)
            if RANK[level] > RANK[self.severity]:
                self.severity = level
        if policy.repeat_s is not None:
            t = now()
            if t - self.last_sent >= policy.repeat_s:
                self.repeats += 1
                return self._fire(t, None)
        return None

    def resolve(self, now: float) -> Transition:
        """Resolve a firing alert (a cleared sample, or its series went away)."""
        transition = Transition(RESOLVED, self.severity or "warning", self.since, now, self.repeats)
        self.firing, self.pending, self.severity, self.repeats = False, 0, None, 0
        return transition

    def _fire(self, now: float, previous: str | None) -> Transition:
        self.last_sent = now
        return Transition(FIRING, self.severity or "warning", self.since, now, self.repeats, previous)
