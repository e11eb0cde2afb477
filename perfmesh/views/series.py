"""A long series made short enough to draw: a week of one-second samples is 600 000 points, a
chart is a thousand or two pixels wide (pure)."""

from __future__ import annotations

from typing import Sequence

MAX_POINTS = 2000


def downsample(points: Sequence[Sequence[float]], max_points: int = MAX_POINTS) -> list[list[float]]:
    """``[[t, v], ...]`` in time order -> at most ``max_points`` points: consecutive runs averaged
    (time and value), so the shape stays and every sample counts; short series pass unchanged."""
    n = len(points)
    if n <= max_points:
        return [[p[0], p[1]] for p in points]
    out = []
    for i in range(max_points):
        run = points[i * n // max_points:(i + 1) * n // max_points]
        out.append([sum(p[0] for p in run) / len(run), sum(p[1] for p in run) / len(run)])
    return out
