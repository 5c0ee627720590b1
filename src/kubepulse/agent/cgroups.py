"""Read CPU and memory accounting from cgroup v1, hybrid and v2 hierarchies.

The definitions are the kubelet's (through cAdvisor, lib/container/libcontainer/handler.go):
working set = memory usage - inactive file pages, clamped at zero;
cumulative CPU = cpuacct.usage (v1) or cpu.stat usage_usec x 1000 (v2).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kubepulse.model import CgroupCounters, Resources, Usage

# cAdvisor treats a memory limit above 2^62 as "no limit" (kubelet stats helper.go).
UNLIMITED = 1 << 62


class CgroupError(Exception):
    """The cgroup file system is missing or is laid out in a way we do not know."""


@dataclass(frozen=True, slots=True)
class Hierarchy:
    """Where each controller we read is mounted.

    On v2 every field is the unified mount. On v1 and hybrid (v1 controllers plus an
    empty cgroup2 mount) each controller has its own mount, possibly shared (cpu,cpuacct).
    """

    version: int
    mode: str
    """'v1', 'hybrid' or 'v2'."""
    cpuacct: Path
    memory: Path
    cpu: Path

    def dir(self, controller: Path, cgroup: str) -> Path:
        return controller / cgroup.strip("/") if cgroup.strip("/") else controller


def detect(mountinfo: str) -> Hierarchy:
    """Find the cgroup mounts in the text of /proc/self/mountinfo."""
    v1: dict[str, Path] = {}
    unified: Path | None = None
    for line in mountinfo.splitlines():
        pre, sep, post = line.partition(" - ")
        if not sep:
            continue
        mount_point = Path(pre.split()[4].replace("\\040", " "))
        fs_type, _source, super_options = [*post.split(), "", "", ""][:3]
        if fs_type == "cgroup2" and unified is None:
            unified = mount_point
        elif fs_type == "cgroup":
            for option in super_options.split(","):
                if option in ("cpu", "cpuacct", "memory"):
                    v1.setdefault(option, mount_point)
    if "memory" in v1 and "cpuacct" in v1:
        mode = "hybrid" if unified is not None else "v1"
        return Hierarchy(1, mode, v1["cpuacct"], v1["memory"], v1.get("cpu", v1["cpuacct"]))
    if unified is not None:
        return Hierarchy(2, "v2", unified, unified, unified)
    raise CgroupError("no cgroup v1 memory and cpuacct mounts and no cgroup2 mount found")


def detect_host(proc: Path = Path("/proc")) -> Hierarchy:
    try:
        return detect((proc / "self" / "mountinfo").read_text())
    except OSError as err:
        raise CgroupError(f"cannot read {proc}/self/mountinfo: {err.strerror}") from err


def _read_int(path: Path) -> int:
    return int(path.read_bytes())


def _read_stat(path: Path) -> dict[str, int]:
    values: dict[str, int] = {}
    for line in path.read_bytes().splitlines():
        key, _, value = line.partition(b" ")
        if value:
            values[key.decode()] = int(value)
    return values


def read_usage(h: Hierarchy, cgroup: str, timestamp: float) -> Usage:
    """One reading of a cgroup. Raises OSError when a file is gone or unreadable."""
    memory_dir = h.dir(h.memory, cgroup)
    stat = _read_stat(memory_dir / "memory.stat")
    if h.version == 1:
        cpu_ns = _read_int(h.dir(h.cpuacct, cgroup) / "cpuacct.usage")
        usage = _read_int(memory_dir / "memory.usage_in_bytes")
        inactive_file = stat.get("total_inactive_file", 0)
        rss = stat.get("total_rss", 0)
        faults, major = stat.get("total_pgfault"), stat.get("total_pgmajfault")
    else:
        cpu_ns = _read_stat(h.dir(h.cpuacct, cgroup) / "cpu.stat")["usage_usec"] * 1000
        current = memory_dir / "memory.current"
        # The v2 root has no memory.current; the runtime library uses anon + file there.
        usage = (
            _read_int(current) if cgroup.strip("/") else stat.get("anon", 0) + stat.get("file", 0)
        )
        inactive_file = stat.get("inactive_file", 0)
        rss = stat.get("anon", 0)
        faults, major = stat.get("pgfault"), stat.get("pgmajfault")
    return Usage(
        timestamp=timestamp,
        cpu_usage_core_nanoseconds=cpu_ns,
        working_set_bytes=max(0, usage - inactive_file),
        usage_bytes=usage,
        rss_bytes=rss,
        page_faults=faults,
        major_page_faults=major,
    )


def read_limits(h: Hierarchy, cgroup: str) -> Resources:
    """The CPU quota and memory limit set on a cgroup; None where unlimited."""
    try:
        if h.version == 1:
            memory = _read_int(h.dir(h.memory, cgroup) / "memory.limit_in_bytes")
            quota = _read_int(h.dir(h.cpu, cgroup) / "cpu.cfs_quota_us")
            period = _read_int(h.dir(h.cpu, cgroup) / "cpu.cfs_period_us")
        else:
            raw = (h.dir(h.memory, cgroup) / "memory.max").read_text().strip()
            memory = UNLIMITED if raw == "max" else int(raw)
            quota_s, _, period_s = (h.dir(h.cpu, cgroup) / "cpu.max").read_text().partition(" ")
            quota = -1 if quota_s == "max" else int(quota_s)
            period = int(period_s)
    except (OSError, ValueError):
        return Resources()
    return Resources(
        cpu_millicores=quota * 1000 // period if quota > 0 and period > 0 else None,
        memory_bytes=memory if 0 < memory < UNLIMITED else None,
    )


def read_counters(h: Hierarchy, cgroup: str) -> CgroupCounters | None:
    """OOM kills and CFS throttling, as cAdvisor reads them for container_oom_events_total
    and container_cpu_cfs_(throttled_)periods_total; None when the files cannot be read
    (a kernel before 4.13 counts no oom_kill: 0)."""
    try:
        if h.version == 1:
            oom = _read_stat(h.dir(h.memory, cgroup) / "memory.oom_control")
        else:
            oom = _read_stat(h.dir(h.memory, cgroup) / "memory.events")
        cpu = _read_stat(h.dir(h.cpu, cgroup) / "cpu.stat")
    except (OSError, ValueError):
        return None
    return CgroupCounters(
        oom_events=oom.get("oom_kill", 0),
        cpu_cfs_periods=cpu.get("nr_periods", 0),
        cpu_cfs_throttled_periods=cpu.get("nr_throttled", 0),
    )


def read_cpu_request(h: Hierarchy, cgroup: str) -> int | None:
    """The CPU request in millicores that the kubelet encoded as shares or weight.

    The kubelet writes shares = milliCPU x 1024 / 1000 (pkg/kubelet/cm/helpers_linux.go,
    MilliCPUToShares) and, on v2, weight = 1 + (shares - 2) x 9999 / 262142.
    """
    try:
        if h.version == 1:
            shares = _read_int(h.dir(h.cpu, cgroup) / "cpu.shares")
        else:
            weight = _read_int(h.dir(h.cpu, cgroup) / "cpu.weight")
            shares = 2 + (weight - 1) * 262142 // 9999
    except (OSError, ValueError):
        return None
    # Round up: shares = floor(m x 1.024), so ceil(shares / 1.024) gives m back exactly.
    return None if shares <= 2 else -(-shares * 1000 // 1024)


def read_pids(h: Hierarchy, cgroup: str) -> list[int]:
    """The processes in one cgroup (not its children)."""
    return [int(pid) for pid in (h.dir(h.memory, cgroup) / "cgroup.procs").read_bytes().split()]


def children(h: Hierarchy, cgroup: str) -> Iterator[str]:
    """Child cgroups of a cgroup, as paths relative to the hierarchy root."""
    base = cgroup.strip("/")
    try:
        entries = list(os.scandir(h.dir(h.memory, cgroup)))
    except OSError:
        return
    for entry in sorted(entries, key=lambda e: e.name):
        if entry.is_dir(follow_symlinks=False):
            yield f"{base}/{entry.name}" if base else entry.name


def created_at(h: Hierarchy, cgroup: str) -> float:
    """When the cgroup directory was made: kernfs keeps its ctime from mkdir."""
    return h.dir(h.memory, cgroup).stat().st_ctime
