"""A device profile's limits applied to a host measurement: thread count (capped at the
host's cores), CPU affinity, and the app memory budget (checked and reported, never enforced
by killing the run)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from edgekit.devices import DeviceProfile

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


@dataclass(frozen=True)
class HostLimits:
    """What a device profile becomes on this host."""

    device: str
    threads: int  # the profile's threads, capped at the CPUs this process may use
    profile_threads: int
    cpus: tuple[int, ...]  # the CPUs the measurement is pinned to
    memory_budget_mib: float


def host_cpus() -> tuple[int, ...]:
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return tuple(sorted(os.sched_getaffinity(0)))
    return tuple(range(os.cpu_count() or 1))


def limits_for(device: DeviceProfile) -> HostLimits:
    """The host limits that stand in for `device`: min(profile threads, host CPUs) threads,
    pinned to that many CPUs, and the profile's app memory budget."""
    cpus = host_cpus()
    threads = max(1, min(device.threads, len(cpus)))
    return HostLimits(device.key, threads, device.threads, cpus[:threads],
                      device.app_memory_budget_mib)


@contextmanager
def pinned(limits: HostLimits) -> Iterator[None]:
    """Run the block with this process pinned to `limits.cpus`; the old affinity is restored."""
    if not hasattr(os, "sched_setaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, limits.cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def rss_mib(pid: int | None = None) -> float:
    """Resident set size of this process (or of process `pid`) now, MiB; 0 when unknown."""
    return _status_kib("VmRSS", pid) / 1024


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (Linux clear_refs 5); False where that is not possible."""
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mib() -> float:
    """Peak resident set size of this process since the last reset (or since start), MiB."""
    peak = _status_kib("VmHWM")
    if peak:
        return peak / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def over_budget(used_mib: float, limits: HostLimits) -> bool:
    """Whether `used_mib` exceeds the profile's app memory budget."""
    return used_mib > limits.memory_budget_mib


def _status_kib(key: str, pid: int | None = None) -> int:
    status = _STATUS if pid is None else Path(f"/proc/{pid}/status")
    with contextlib.suppress(OSError):  # no /proc (not Linux), or the process has exited: 0
        for line in status.read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0
