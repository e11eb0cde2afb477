"""Percentiles: the one definition, used by timings, application metrics and reports.

Linear interpolation between closest ranks (the "inclusive" or type-7 definition: numpy's and
spreadsheet's default, ``statistics.quantiles(method="inclusive")``): the q-th percentile of
``n`` sorted values sits at position ``(n - 1) * q / 100``; between two ranks it is the
straight line between their values. It never leaves the range of the data, the 0th is the
minimum, the 100th the maximum, and a single value is every percentile.
"""

from __future__ import annotations

import math
from typing import Sequence


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) of already sorted values, linear interpolation; 0.0 for none."""
    if not sorted_values:
        return 0.0
    position = (len(sorted_values) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    fraction = position - low
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * fraction
