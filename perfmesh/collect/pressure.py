"""Pressure stall information (PSI) from ``/proc/pressure/{cpu,memory,io}``.

Each file has a ``some`` line (share of time at least one task stalled on the resource) and,
for memory and io (and cpu since Linux 5.13), a ``full`` line (all non-idle tasks stalled)::

    some avg10=38.56 avg60=19.54 avg300=8.13 total=63521190

The kernel's averages are percentages over 10, 60 and 300 s; ``total`` is cumulative stall
microseconds, turned here into the stalled share of the time between two samples
(``stall_percent``), which matches the sample interval exactly. PSI is a better signal of
saturation than utilisation: a CPU at 100 % with nobody waiting has no pressure.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any, Mapping

from .processes import read_text
from .procfs import ProcfsError
from .rates import CounterRates

RESOURCES = ("cpu", "memory", "io")
KINDS = ("some", "full")


@dataclass(frozen=True, slots=True)
class PressureLine:
    """One line of a pressure file: averages in percent, total in microseconds."""

    avg10_percent: float
    avg60_percent: float
    avg300_percent: float
    total_us: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PressureLine":
        return cls(**data)


def parse_pressure(text: str) -> dict[str, PressureLine]:
    """A /proc/pressure file as {"some": PressureLine, "full": PressureLine} (full when present)."""
    out: dict[str, PressureLine] = {}
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        kind = fields[0]
        values = dict(f.partition("=")[::2] for f in fields[1:])
        try:
            out[kind] = PressureLine(
                float(values["avg10"]), float(values["avg60"]), float(values["avg300"]),
                int(values["total"]),
            )
        except (KeyError, ValueError):
            raise ProcfsError(
                f"pressure line {line!r} is not 'some|full avg10=F avg60=F avg300=F total=N'"
            ) from None
    if "some" not in out:
        raise ProcfsError(f"pressure text {text[:60]!r} has no 'some' line")
    return out


@dataclass(frozen=True, slots=True)
class Pressure:
    """One resource's pressure at one sample; ``stall_percent`` is None on the first sample."""

    resource: str
    kind: str
    line: PressureLine
    stall_percent: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"resource": self.resource, "kind": self.kind, "line": self.line.to_dict(),
                "stall_percent": self.stall_percent}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Pressure":
        return cls(data["resource"], data["kind"], PressureLine.from_dict(data["line"]),
                   data["stall_percent"])


class PressureCollector:
    """Reads the three pressure files; a missing file (kernel without PSI, or ``psi=0``)
    is simply absent from the sample (``available`` tells which resources have PSI)."""

    def __init__(self, root: str = "/proc") -> None:
        self.dir = os.path.join(root, "pressure")
        self._rates = CounterRates()
        self.available: tuple[str, ...] = ()

    def sample(self, now: float) -> list[Pressure]:
        out: list[Pressure] = []
        available = []
        for resource in RESOURCES:
            try:
                lines = parse_pressure(read_text(os.path.join(self.dir, resource)))
            except (OSError, ProcfsError):
                continue
            available.append(resource)
            for kind in KINDS:
                line = lines.get(kind)
                if line is None:
                    continue
                us_per_s = self._rates.rate((resource, kind), line.total_us, now)
                stall = None if us_per_s is None else min(100.0, us_per_s / 1e4)
                out.append(Pressure(resource, kind, line, stall))
        self.available = tuple(available)
        return out
