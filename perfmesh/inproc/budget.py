"""The in-process budget: :class:`perfmesh.rules.budget.PerformanceBudget` on the wall clock.

``rules/`` never reads the clock; an application using budgets directly
(``from perfmesh import PerformanceBudget``) gets this class, which stamps violations and
alerts with :func:`time.time` when no ``now`` is passed.
"""

from __future__ import annotations

import time
from typing import Callable, Mapping

from ..rules import budget


class PerformanceBudget(budget.PerformanceBudget):
    """Limits per metric name, checked sample by sample, stamped with ``clock`` (default
    :func:`time.time`) when ``now`` is not given."""

    def __init__(self, limits: Mapping[str, float] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(limits, clock)
