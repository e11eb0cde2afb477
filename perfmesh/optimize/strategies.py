"""The built-in optimization strategies and the policy that guards process targets.

``register_builtin_strategies(engine)`` registers, by exact name:

- ``gc_collect``: ``gc.collect(generation)``; measures the objects the GC tracks.
- ``gc_tune``: sets GC thresholds; reversible (rollback restores the previous
  ``gc.get_threshold()``). Not measured by default: a threshold's effect shows over time,
  not right after the call (pass ``measure=`` to ``apply_optimization`` to judge it).
- ``memory_trim``: glibc ``malloc_trim(0)`` through ctypes where the C library has it,
  else a failure with the reason; measures the resident set size.
- ``cpu_affinity``: pins a process to ``cpus`` (each below ``os.cpu_count()``); reversible.
- ``process_priority``: sets a process's nice value within ``nice_range`` (default 0..19);
  reversible. Lowering a nice value needs root, and so may a rollback that lowers it back.

Process targets (``cpu_affinity``, ``process_priority``): ``pid`` 0 (the default) is the
current process. pid 1 is always refused. Another process must be named together with its
``create_time`` — its start time in clock ticks after boot, field 22 of
``/proc/<pid>/stat`` (see ``process_start_ticks``) — so that a reused pid is refused; and
it must belong to the current user unless ``allow_other_users`` is set.

No psutil, no shell, no import or attribute lookup by name.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from ..errors import ConfigError, InvalidParameterError
from ..model.params import Param


class StrategyRegistry(Protocol):
    """What the built-ins need of an engine: its registry (the engine imports this module,
    never the other way round)."""

    def register_optimization_strategy(self, name: str, fn: Callable[..., Any], **options: Any) -> None:
        ...

PID_MAX = 4_194_304
CPU_MAX = 4095


def process_start_ticks(pid: int, proc_root: str = "/proc") -> int | None:
    """The start time of ``pid`` in clock ticks after boot, or None if it cannot be read."""
    try:
        with open(f"{proc_root}/{int(pid)}/stat", "rb") as fh:
            text = fh.read().decode("ascii", "replace")
        # The command name (field 2) is in parentheses and may itself contain ") ".
        fields = text[text.rindex(")") + 2:].split()
        return int(fields[19])
    except (OSError, ValueError, IndexError):
        return None


def measure_gc_objects() -> dict[str, float]:
    """How many objects the garbage collector tracks."""
    return {"gc_tracked_objects": float(len(gc.get_objects()))}


def measure_rss(proc_root: str = "/proc") -> dict[str, float]:
    """Resident set size of this process in bytes (peak RSS where /proc is missing)."""
    try:
        with open(f"{proc_root}/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return {"rss_bytes": float(pages * os.sysconf("SC_PAGE_SIZE"))}
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return {}
    # ru_maxrss is KiB on Linux (bytes on macOS; this fallback is for non-/proc systems).
    return {"max_rss_bytes": float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)}


def load_malloc_trim() -> tuple[Callable[[int], int] | None, str]:
    """glibc's ``malloc_trim`` via ctypes, or (None, the reason it is unavailable)."""
    path = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(path)
    except OSError as exc:
        return None, f"the C library {path!r} cannot be loaded: {exc}"
    try:
        trim = libc.malloc_trim
    except AttributeError:
        return None, f"the C library {path!r} has no malloc_trim (not glibc)"
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim, ""


@dataclass(frozen=True)
class ProcessPolicy:
    """Which processes the process-targeting strategies may act on."""

    nice_min: int = 0
    nice_max: int = 19
    allow_other_users: bool = False
    proc_root: str = "/proc"

    def __post_init__(self) -> None:
        if not (-20 <= self.nice_min <= self.nice_max <= 19):
            raise ConfigError(
                f"nice range ({self.nice_min}, {self.nice_max}) is not valid; "
                "expected -20 <= min <= max <= 19"
            )

    def target(self, params: dict) -> int:
        """The pid to act on (0 = this process), or InvalidParameterError when refused."""
        pid = params.get("pid") or 0
        if pid == 1:
            raise InvalidParameterError("parameter 'pid': got 1; expected a pid other than 1 (init)")
        if pid in (0, os.getpid()):
            return 0
        create_time = params.get("create_time")
        if create_time is None:
            raise InvalidParameterError(
                f"parameter 'create_time': got None for pid {pid}; expected the process's start "
                "time in clock ticks (field 22 of /proc/<pid>/stat) to guard against pid reuse"
            )
        actual = process_start_ticks(pid, self.proc_root)
        if actual is None:
            raise InvalidParameterError(f"parameter 'pid': got {pid}; expected a running process")
        if actual != create_time:
            raise InvalidParameterError(
                f"parameter 'create_time': got {create_time} for pid {pid}; expected {actual} "
                "(the pid was reused by another process)"
            )
        if not self.allow_other_users:
            try:
                owner = os.stat(f"{self.proc_root}/{pid}").st_uid
            except OSError:
                raise InvalidParameterError(
                    f"parameter 'pid': got {pid}; expected a running process"
                ) from None
            if owner != os.getuid():
                raise InvalidParameterError(
                    f"parameter 'pid': got {pid} owned by uid {owner}; expected a process of "
                    f"uid {os.getuid()} (the policy does not allow other users' processes)"
                )
        return pid


def _target_params() -> dict[str, Param]:
    return {
        "pid": Param(int, default=0, min=0, max=PID_MAX,
                     description="target process; 0 = the current process"),
        "create_time": Param(int, default=None, min=0,
                             description="start time of pid in clock ticks; required for another pid"),
    }


# -- gc ---------------------------------------------------------------------------------------


def gc_collect(config: dict) -> dict[str, Any]:
    generation = config.get("generation", 2)
    return {"collected": gc.collect(generation), "generation": generation}


def gc_tune(config: dict) -> dict[str, Any]:
    previous = gc.get_threshold()
    wanted = tuple(
        previous[i] if config.get(f"threshold{i}") is None else config[f"threshold{i}"]
        for i in range(3)
    )
    gc.set_threshold(*wanted)
    return {"state": previous, "previous": list(previous), "thresholds": list(wanted)}


def gc_tune_rollback(state: tuple[int, int, int]) -> None:
    gc.set_threshold(*state)


# -- memory -----------------------------------------------------------------------------------


def memory_trim(config: dict) -> dict[str, Any]:
    trim, reason = load_malloc_trim()
    if trim is None:
        return {"success": False, "reason": f"malloc_trim is not available: {reason}"}
    return {"released": bool(trim(0))}


# -- process targets --------------------------------------------------------------------------


class _ProcessStrategies:
    """cpu_affinity and process_priority bound to one ProcessPolicy."""

    def __init__(self, policy: ProcessPolicy) -> None:
        self.policy = policy

    def check_affinity(self, params: dict) -> None:
        cpus = params["cpus"]
        count = os.cpu_count() or 1
        if not cpus or any(cpu >= count for cpu in cpus):
            raise InvalidParameterError(
                f"parameter 'cpus': got {cpus!r}; expected a non-empty list of CPUs from 0 to {count - 1}"
            )
        self.policy.target(params)

    def cpu_affinity(self, config: dict) -> dict[str, Any]:
        if not hasattr(os, "sched_setaffinity"):
            return {"success": False, "reason": "cpu affinity is not supported on this platform"}
        pid = self.policy.target(config)
        previous = sorted(os.sched_getaffinity(pid))
        cpus = sorted(set(config["cpus"]))
        os.sched_setaffinity(pid, cpus)
        return {"state": (pid, previous), "previous_cpus": previous, "cpus": cpus}

    @staticmethod
    def affinity_rollback(state: tuple[int, list[int]]) -> None:
        pid, cpus = state
        os.sched_setaffinity(pid, cpus)

    def check_priority(self, params: dict) -> None:
        self.policy.target(params)

    def process_priority(self, config: dict) -> dict[str, Any]:
        if not hasattr(os, "setpriority"):
            return {"success": False, "reason": "process priority is not supported on this platform"}
        pid = self.policy.target(config)
        nice = config["nice"]
        previous = os.getpriority(os.PRIO_PROCESS, pid)
        if nice < previous and os.geteuid() != 0:
            return {"success": False,
                    "reason": f"lowering nice from {previous} to {nice} needs root"}
        os.setpriority(os.PRIO_PROCESS, pid, nice)
        return {"state": (pid, previous), "previous_nice": previous, "nice": nice}

    @staticmethod
    def priority_rollback(state: tuple[int, int]) -> None:
        pid, nice = state
        os.setpriority(os.PRIO_PROCESS, pid, nice)


def register_builtin_strategies(
    engine: StrategyRegistry,
    *,
    nice_range: tuple[int, int] = (0, 19),
    allow_other_users: bool = False,
    proc_root: str = "/proc",
) -> ProcessPolicy:
    """Register the five built-in strategies on ``engine``; return the process policy used."""
    policy = ProcessPolicy(nice_range[0], nice_range[1], allow_other_users, proc_root)
    process = _ProcessStrategies(policy)
    register = engine.register_optimization_strategy
    register(
        "gc_collect", gc_collect,
        schema={"generation": Param(int, default=2, min=0, max=2, description="GC generation")},
        measure=measure_gc_objects,
        description="Run a garbage collection of the given generation.",
    )
    register(
        "gc_tune", gc_tune,
        schema={
            "threshold0": Param(int, min=1, max=1_000_000, description="allocations before a gen-0 collection"),
            "threshold1": Param(int, min=1, max=10_000, description="gen-0 collections before gen 1"),
            "threshold2": Param(int, min=1, max=10_000, description="gen-1 collections before gen 2"),
        },
        rollback=gc_tune_rollback,
        description="Set garbage collector thresholds (unset ones keep their value); reversible.",
    )
    register(
        "memory_trim", memory_trim, schema={},
        measure=lambda: measure_rss(proc_root),
        description="Return free heap memory to the OS with glibc malloc_trim(0).",
    )
    register(
        "cpu_affinity", process.cpu_affinity,
        schema={"cpus": Param(list[int], required=True, min=0, max=CPU_MAX, max_len=CPU_MAX + 1,
                              description="CPU numbers to pin to"),
                **_target_params()},
        check=process.check_affinity,
        rollback=process.affinity_rollback,
        description="Pin a process to a set of CPUs; reversible.",
    )
    register(
        "process_priority", process.process_priority,
        schema={"nice": Param(int, required=True, min=policy.nice_min, max=policy.nice_max,
                              description="nice value"),
                **_target_params()},
        check=process.check_priority,
        rollback=process.priority_rollback,
        description="Set a process's nice value; reversible (lowering it needs root).",
    )
    return policy
