"""How many threads llama.cpp gets by default: one per physical core this process may use.

A hyperthread shares its core's arithmetic units, so a second llama.cpp thread on it adds little and
makes every barrier wait for the slower of the pair; and cores outside the process's CPU affinity or
above its cgroup's CPU quota (a container's `--cpus`) would only be time-sliced against the others.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import psutil

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def cgroup_cpu_limit(cpu_max: Path = CGROUP_CPU_MAX) -> int | None:
    """CPUs' worth of time the cgroup v2 quota allows ("200000 100000" -> 2), None when unlimited."""
    try:
        quota, period = cpu_max.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return max(1, math.ceil(int(quota) / int(period)))


def usable_cpus() -> int:
    """Logical CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def threads_for(logical: int, physical: int, usable: int, quota: int | None) -> int:
    """Physical cores among `usable` logical CPUs (of `logical` on `physical` cores), within `quota` CPUs."""
    per_core = max(1, round(logical / max(1, physical)))
    threads = max(1, usable // per_core)
    return min(threads, quota) if quota else threads


def default_threads() -> int:
    logical = psutil.cpu_count(logical=True) or 1
    physical = psutil.cpu_count(logical=False) or logical
    return threads_for(logical, physical, usable_cpus(), cgroup_cpu_limit())
