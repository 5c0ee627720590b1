"""cgroup mount detection and the v1/v2 readers, on mountinfo samples and fake trees."""

# ruff: noqa: E501 - mountinfo lines are quoted whole, as the kernel writes them.

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubepulse.agent import cgroups
from kubepulse.agent.cgroups import CgroupError, Hierarchy
from kubepulse.model import Resources, Usage

# -- mountinfo samples -----------------------------------------------------------------

_COMMON = """\
22 1 253:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,errors=remount-ro
23 22 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
24 22 0:22 / /proc rw,nosuid,nodev,noexec,relatime shared:13 - proc proc rw
25 22 0:5 / /dev rw,nosuid,relatime shared:2 - devtmpfs udev rw,size=4014564k,mode=755
"""

# An OpenRC or container host: one v1 hierarchy per controller, no optional fields.
V1_SEPARATE = (
    _COMMON
    + """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
"""
)

# systemd's legacy layout: cpu and cpuacct share one hierarchy (cpu and cpuacct are symlinks).
V1_SYSTEMD = (
    _COMMON
    + """\
26 23 0:23 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:8 - tmpfs tmpfs ro,mode=755
27 26 0:24 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:9 - cgroup cgroup rw,xattr,name=systemd
30 26 0:27 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,cpuset
31 26 0:28 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,net_cls,net_prio
32 26 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,cpu,cpuacct
33 26 0:30 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,memory
34 26 0:31 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,pids
"""
)

# Ubuntu 18.04-21.04 and RHEL 8: the v1 controllers plus an empty cgroup2 at .../unified.
HYBRID = (
    _COMMON
    + """\
26 23 0:23 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:8 - tmpfs tmpfs ro,mode=755
27 26 0:24 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate
28 26 0:25 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,xattr,name=systemd
32 26 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:14 master:3 - cgroup cgroup rw,cpu,cpuacct
33 26 0:30 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,memory
"""
)

# Fedora 31+, Ubuntu 21.10+, Debian 11+: the unified hierarchy only.
V2 = (
    _COMMON
    + """\
26 23 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:8 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
27 23 0:6 / /sys/kernel/security rw,nosuid,nodev,noexec,relatime shared:9 - securityfs securityfs rw
"""
)

# A container's view of a subtree, mounted after the host's unified hierarchy.
V2_WITH_NSPAWN = (
    V2
    + "812 26 0:23 /machine.slice/systemd-nspawn@web.service/payload /var/lib/machines/web/sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:8 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n"
)

# A cgroup2 mount point with a space, which mountinfo writes as \040.
V2_ESCAPED = (
    _COMMON
    + "40 22 0:41 / /run/my\\040cgroup rw,relatime shared:20 - cgroup2 cgroup2 rw,nsdelegate\n"
)

NO_CGROUPS = _COMMON

# Only the named systemd hierarchy: no controller we can read from.
V1_NAMED_ONLY = (
    _COMMON
    + "27 23 0:24 / /sys/fs/cgroup/systemd rw,relatime shared:9 - cgroup cgroup rw,xattr,name=systemd\n"
)

# A memory controller without cpuacct and without cgroup2.
V1_MEMORY_ONLY = (
    _COMMON + "33 23 0:30 / /sys/fs/cgroup/memory rw,relatime shared:15 - cgroup cgroup rw,memory\n"
)

_CG = Path("/sys/fs/cgroup")


@pytest.mark.parametrize(
    ("mountinfo", "expected"),
    [
        pytest.param(
            V1_SEPARATE,
            Hierarchy(1, "v1", _CG / "cpuacct", _CG / "memory", _CG / "cpu"),
            id="v1-separate-cpu-cpuacct-memory",
        ),
        pytest.param(
            V1_SYSTEMD,
            Hierarchy(1, "v1", _CG / "cpu,cpuacct", _CG / "memory", _CG / "cpu,cpuacct"),
            id="v1-combined-cpu-cpuacct",
        ),
        pytest.param(
            HYBRID,
            Hierarchy(1, "hybrid", _CG / "cpu,cpuacct", _CG / "memory", _CG / "cpu,cpuacct"),
            id="hybrid-v1-controllers-plus-unified",
        ),
        pytest.param(V2, Hierarchy(2, "v2", _CG, _CG, _CG), id="v2-unified"),
        pytest.param(
            V2_WITH_NSPAWN,
            Hierarchy(2, "v2", _CG, _CG, _CG),
            id="v2-first-cgroup2-mount-wins-over-a-container-subtree",
        ),
        pytest.param(
            V2_ESCAPED,
            Hierarchy(2, "v2", *[Path("/run/my cgroup")] * 3),
            id="v2-mount-point-with-escaped-space",
        ),
    ],
)
def test_detect_finds_the_controller_mounts(mountinfo: str, expected: Hierarchy) -> None:
    assert cgroups.detect(mountinfo) == expected


@pytest.mark.parametrize(
    "mountinfo",
    [
        pytest.param(NO_CGROUPS, id="no-cgroup-mounts"),
        pytest.param("", id="empty"),
        pytest.param(V1_NAMED_ONLY, id="only-name-systemd"),
        pytest.param(V1_MEMORY_ONLY, id="v1-memory-without-cpuacct"),
    ],
)
def test_detect_without_usable_cgroup_mounts_raises(mountinfo: str) -> None:
    with pytest.raises(CgroupError):
        cgroups.detect(mountinfo)


def test_detect_host_without_mountinfo_raises_cgroup_error(tmp_path: Path) -> None:
    with pytest.raises(CgroupError):
        cgroups.detect_host(tmp_path)


# -- fake trees ------------------------------------------------------------------------


def write_files(base: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = base / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def kv(**values: int) -> str:
    """A flat keyed file (memory.stat, cpu.stat): one `key value` line each."""
    return "".join(f"{key} {value}\n" for key, value in values.items())


def v2_memory_stat(anon: int, file: int, inactive_file: int, pgfault: int, pgmajfault: int) -> str:
    """memory.stat as a 6.x kernel writes it, in the kernel's order."""
    return kv(
        anon=anon,
        file=file,
        kernel=3_014_656,
        kernel_stack=327_680,
        pagetables=1_056_768,
        sec_pagetables=0,
        percpu=480,
        sock=0,
        vmalloc=8192,
        shmem=0,
        zswap=0,
        zswapped=0,
        file_mapped=12_288_000,
        file_dirty=4096,
        file_writeback=0,
        swapcached=0,
        anon_thp=0,
        file_thp=0,
        shmem_thp=0,
        inactive_anon=anon - 4096,
        active_anon=4096,
        inactive_file=inactive_file,
        active_file=file - inactive_file,
        unevictable=0,
        slab_reclaimable=1_204_064,
        slab_unreclaimable=802_816,
        slab=2_006_880,
        workingset_refault_anon=0,
        workingset_refault_file=17,
        workingset_activate_anon=0,
        workingset_activate_file=3,
        workingset_restore_anon=0,
        workingset_restore_file=0,
        workingset_nodereclaim=0,
        pgscan=0,
        pgsteal=0,
        pgscan_kswapd=0,
        pgscan_direct=0,
        pgsteal_kswapd=0,
        pgsteal_direct=0,
        pgfault=pgfault,
        pgmajfault=pgmajfault,
        pgrefill=0,
        pgactivate=8,
        pgdeactivate=0,
        pglazyfree=0,
        pglazyfreed=0,
        thp_fault_alloc=0,
        thp_collapse_alloc=0,
    )


def v2_cpu_stat(usage_usec: int, leaf: bool = True) -> str:
    user = usage_usec * 2 // 3
    stat = {"usage_usec": usage_usec, "user_usec": user, "system_usec": usage_usec - user}
    if leaf:  # the root has no bandwidth control and so no throttling counters
        stat |= {
            "nr_periods": 1204,
            "nr_throttled": 17,
            "throttled_usec": 903_112,
            "nr_bursts": 0,
            "burst_usec": 0,
        }
    return kv(**stat)


@dataclass(frozen=True)
class V2Cgroup:
    usage_usec: int = 0
    memory_current: int = 0
    anon: int = 0
    file: int = 0
    inactive_file: int = 0
    pgfault: int = 0
    pgmajfault: int = 0
    memory_max: str = "max"
    cpu_max: str = "max 100000"
    cpu_weight: str = "100"
    procs: tuple[int, ...] = ()


def make_v2(base: Path, cgroup: str, spec: V2Cgroup) -> Path:
    """One cgroup directory with the files the kernel puts there; the root has fewer."""
    path = base / cgroup.strip("/") if cgroup.strip("/") else base
    is_root = not cgroup.strip("/")
    files = {
        "cgroup.controllers": "cpuset cpu io memory hugetlb pids rdma misc\n",
        "cgroup.procs": "".join(f"{pid}\n" for pid in spec.procs),
        "cgroup.subtree_control": "cpu memory pids\n",
        "cpu.stat": v2_cpu_stat(spec.usage_usec, leaf=not is_root),
        "memory.stat": v2_memory_stat(
            spec.anon, spec.file, spec.inactive_file, spec.pgfault, spec.pgmajfault
        ),
    }
    if not is_root:
        files |= {
            "cgroup.type": "domain\n",
            "memory.current": f"{spec.memory_current}\n",
            "memory.max": f"{spec.memory_max}\n",
            "memory.min": "0\n",
            "memory.high": "max\n",
            "cpu.max": f"{spec.cpu_max}\n",
            "cpu.weight": f"{spec.cpu_weight}\n",
            "cpu.weight.nice": "0\n",
        }
    write_files(path, files)
    return path


def v2_hierarchy(base: Path) -> Hierarchy:
    return Hierarchy(2, "v2", base, base, base)


@dataclass(frozen=True)
class V1Cgroup:
    cpuacct_usage: int = 0
    usage_in_bytes: int = 0
    total_rss: int = 0
    total_inactive_file: int = 0
    inactive_file: int = 0
    total_pgfault: int = 0
    total_pgmajfault: int = 0
    limit_in_bytes: int = 9223372036854771712
    cfs_quota_us: int = -1
    cfs_period_us: int = 100000
    shares: int = 1024


def v1_hierarchy(base: Path, combined: bool) -> Hierarchy:
    if combined:
        cpu = base / "cpu,cpuacct"
        return Hierarchy(1, "v1", cpu, base / "memory", cpu)
    return Hierarchy(1, "v1", base / "cpuacct", base / "memory", base / "cpu")


def make_v1(h: Hierarchy, cgroup: str, spec: V1Cgroup) -> None:
    write_files(
        h.dir(h.cpuacct, cgroup),
        {
            "cpuacct.usage": f"{spec.cpuacct_usage}\n",
            "cpuacct.usage_user": f"{spec.cpuacct_usage * 3 // 4}\n",
            "cpuacct.usage_sys": f"{spec.cpuacct_usage // 4}\n",
            "cpuacct.stat": "user 1234\nsystem 567\n",
        },
    )
    write_files(
        h.dir(h.cpu, cgroup),
        {
            "cpu.shares": f"{spec.shares}\n",
            "cpu.cfs_quota_us": f"{spec.cfs_quota_us}\n",
            "cpu.cfs_period_us": f"{spec.cfs_period_us}\n",
            "cpu.stat": "nr_periods 0\nnr_throttled 0\nthrottled_time 0\n",
        },
    )
    # The per-cgroup counters come first, then the hierarchical total_* ones.
    stat = kv(
        cache=151_478_272,
        rss=6_721_536,
        rss_huge=0,
        shmem=9_068_544,
        mapped_file=28_278_784,
        dirty=262_144,
        writeback=0,
        swap=0,
        pgpgin=770_313,
        pgpgout=734_256,
        pgfault=858_097,
        pgmajfault=346,
        inactive_anon=499_712,
        active_anon=1_531_904,
        inactive_file=spec.inactive_file,
        active_file=82_747_392,
        unevictable=0,
        hierarchical_memory_limit=spec.limit_in_bytes,
        hierarchical_memsw_limit=9223372036854771712,
        total_cache=237_600_768,
        total_rss=spec.total_rss,
        total_rss_huge=0,
        total_shmem=9_068_544,
        total_mapped_file=32_882_688,
        total_dirty=18_042_880,
        total_writeback=0,
        total_swap=0,
        total_pgpgin=2_072_002,
        total_pgpgout=1_999_923,
        total_pgfault=spec.total_pgfault,
        total_pgmajfault=spec.total_pgmajfault,
        total_inactive_anon=62_779_392,
        total_active_anon=1_581_056,
        total_inactive_file=spec.total_inactive_file,
        total_active_file=138_256_384,
        total_unevictable=0,
    )
    write_files(
        h.dir(h.memory, cgroup),
        {
            "memory.stat": stat,
            "memory.usage_in_bytes": f"{spec.usage_in_bytes}\n",
            "memory.limit_in_bytes": f"{spec.limit_in_bytes}\n",
            "memory.max_usage_in_bytes": f"{spec.usage_in_bytes * 2}\n",
            "cgroup.procs": "",
        },
    )


# -- v2 --------------------------------------------------------------------------------

NOW = 1_700_000_000.25
POD = "kubepods/burstable/pod0d4b9c3e-5f6a-4b7c-8d9e-0a1b2c3d4e5f"
CONTAINER = f"{POD}/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("cgroup", "spec", "expected"),
    [
        pytest.param(
            CONTAINER,
            V2Cgroup(
                usage_usec=123_456_789,
                memory_current=104_857_600,
                anon=73_400_320,
                file=29_360_128,
                inactive_file=20_971_520,
                pgfault=51_234,
                pgmajfault=12,
            ),
            Usage(
                timestamp=NOW,
                cpu_usage_core_nanoseconds=123_456_789_000,
                working_set_bytes=104_857_600 - 20_971_520,
                usage_bytes=104_857_600,
                rss_bytes=73_400_320,
                page_faults=51_234,
                major_page_faults=12,
            ),
            id="container-working-set-is-current-minus-inactive-file",
        ),
        pytest.param(
            CONTAINER,
            V2Cgroup(
                usage_usec=1,
                memory_current=4_096,
                anon=0,
                file=16_384,
                inactive_file=12_288,
                pgfault=3,
                pgmajfault=0,
            ),
            Usage(
                timestamp=NOW,
                cpu_usage_core_nanoseconds=1_000,
                working_set_bytes=0,
                usage_bytes=4_096,
                rss_bytes=0,
                page_faults=3,
                major_page_faults=0,
            ),
            id="working-set-clamped-at-zero-when-inactive-file-exceeds-usage",
        ),
        pytest.param(
            "",
            V2Cgroup(
                usage_usec=987_654_321_012,
                anon=1_073_741_824,
                file=2_147_483_648,
                inactive_file=1_610_612_736,
                pgfault=99_000_000,
                pgmajfault=4_321,
            ),
            Usage(
                timestamp=NOW,
                cpu_usage_core_nanoseconds=987_654_321_012_000,
                working_set_bytes=1_073_741_824 + 2_147_483_648 - 1_610_612_736,
                usage_bytes=1_073_741_824 + 2_147_483_648,
                rss_bytes=1_073_741_824,
                page_faults=99_000_000,
                major_page_faults=4_321,
            ),
            id="root-without-memory-current-uses-anon-plus-file",
        ),
        pytest.param(
            "/",
            V2Cgroup(usage_usec=5, anon=8_192, file=4_096, inactive_file=4_096),
            Usage(
                timestamp=NOW,
                cpu_usage_core_nanoseconds=5_000,
                working_set_bytes=8_192,
                usage_bytes=12_288,
                rss_bytes=8_192,
                page_faults=0,
                major_page_faults=0,
            ),
            id="root-spelled-slash",
        ),
    ],
)
def test_v2_read_usage(tmp_path: Path, cgroup: str, spec: V2Cgroup, expected: Usage) -> None:
    make_v2(tmp_path, "", spec if not cgroup.strip("/") else V2Cgroup())
    if cgroup.strip("/"):
        make_v2(tmp_path, cgroup, spec)
    assert cgroups.read_usage(v2_hierarchy(tmp_path), cgroup, NOW) == expected


@pytest.mark.parametrize(
    ("memory_max", "cpu_max", "expected"),
    [
        pytest.param("max", "max 100000", Resources(), id="max-means-no-limit"),
        pytest.param(
            "536870912",
            "50000 100000",
            Resources(cpu_millicores=500, memory_bytes=536_870_912),
            id="half-core-512Mi",
        ),
        pytest.param(
            "268435456",
            "max 100000",
            Resources(cpu_millicores=None, memory_bytes=268_435_456),
            id="memory-limit-only",
        ),
        pytest.param(
            "max",
            "150000 100000",
            Resources(cpu_millicores=1500, memory_bytes=None),
            id="cpu-limit-only",
        ),
        pytest.param(
            "max",
            "25000 50000",
            Resources(cpu_millicores=500),
            id="non-default-period",
        ),
        pytest.param(
            "9223372036854771712",
            "max 100000",
            Resources(),
            id="page-rounded-int64-max-is-no-limit",
        ),
    ],
)
def test_v2_read_limits(tmp_path: Path, memory_max: str, cpu_max: str, expected: Resources) -> None:
    make_v2(tmp_path, CONTAINER, V2Cgroup(memory_max=memory_max, cpu_max=cpu_max))
    assert cgroups.read_limits(v2_hierarchy(tmp_path), CONTAINER) == expected


@pytest.mark.parametrize(
    ("weight", "expected"),
    [
        # The kubelet writes weight = 1 + (shares - 2) x 9999 / 262142.
        pytest.param("1", None, id="minimum-weight-is-best-effort"),
        pytest.param("10000", 256_000, id="maximum-weight-is-256-cores"),
        pytest.param("39", 975, id="one-core-request"),
        pytest.param("not-a-number", None, id="garbage"),
    ],
)
def test_v2_cpu_request_from_weight(tmp_path: Path, weight: str, expected: int | None) -> None:
    make_v2(tmp_path, CONTAINER, V2Cgroup(cpu_weight=weight))
    assert cgroups.read_cpu_request(v2_hierarchy(tmp_path), CONTAINER) == expected


def kubelet_shares(millicores: int) -> int:
    """MilliCPUToShares (pkg/kubelet/cm/helpers_linux.go)."""
    return min(max(millicores * 1024 // 1000, 2), 262_144)


def runc_weight(shares: int) -> int:
    """The linear ConvertCPUSharesToCgroupV2Value of runc before 1.3.2."""
    return 1 + (shares - 2) * 9999 // 262_142


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(millicores=st.integers(min_value=30, max_value=256_000))
def test_v2_cpu_request_round_trips_within_one_weight_step(tmp_path: Path, millicores: int) -> None:
    make_v2(tmp_path, CONTAINER, V2Cgroup(cpu_weight=str(runc_weight(kubelet_shares(millicores)))))
    decoded = cgroups.read_cpu_request(v2_hierarchy(tmp_path), CONTAINER)
    assert decoded is not None
    # One weight step is 262142 / 9999 shares, about 25.6 millicores; decoding never overshoots.
    assert millicores - 27 <= decoded <= millicores


def test_v2_limits_and_request_of_missing_files_are_unknown(tmp_path: Path) -> None:
    h = v2_hierarchy(tmp_path)
    (tmp_path / CONTAINER).mkdir(parents=True)
    assert cgroups.read_limits(h, CONTAINER) == Resources()
    assert cgroups.read_cpu_request(h, CONTAINER) is None


# -- v1 --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "combined",
    [pytest.param(True, id="combined-cpu-cpuacct"), pytest.param(False, id="separate-mounts")],
)
@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param(
            V1Cgroup(
                cpuacct_usage=357_354_910_000,
                usage_in_bytes=268_435_456,
                total_rss=134_217_728,
                total_inactive_file=67_108_864,
                inactive_file=1_048_576,
                total_pgfault=2_283_169,
                total_pgmajfault=782,
            ),
            Usage(
                timestamp=NOW,
                cpu_usage_core_nanoseconds=357_354_910_000,
                working_set_bytes=268_435_456 - 67_108_864,
                usage_bytes=268_435_456,
                rss_bytes=134_217_728,
                page_faults=2_283_169,
                major_page_faults=782,
            ),
            id="working-set-subtracts-hierarchical-total-inactive-file",
        ),
        pytest.param(
            V1Cgroup(
                cpuacct_usage=1,
                usage_in_bytes=4_096,
                total_inactive_file=8_192,
                inactive_file=0,
            ),
            Usage(
                timestamp=NOW,
                cpu_usage_core_nanoseconds=1,
                working_set_bytes=0,
                usage_bytes=4_096,
                rss_bytes=0,
                page_faults=0,
                major_page_faults=0,
            ),
            id="working-set-clamped-at-zero",
        ),
    ],
)
def test_v1_read_usage(tmp_path: Path, combined: bool, spec: V1Cgroup, expected: Usage) -> None:
    h = v1_hierarchy(tmp_path, combined)
    make_v1(h, CONTAINER, spec)
    assert cgroups.read_usage(h, CONTAINER, NOW) == expected


def test_v1_root_reads_the_controller_mounts(tmp_path: Path) -> None:
    h = v1_hierarchy(tmp_path, combined=False)
    make_v1(h, "", V1Cgroup(cpuacct_usage=42, usage_in_bytes=8_192, total_inactive_file=4_096))
    usage = cgroups.read_usage(h, "/", NOW)
    assert (usage.cpu_usage_core_nanoseconds, usage.working_set_bytes) == (42, 4_096)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param(V1Cgroup(), Resources(), id="int64-max-page-rounded-and-quota-minus-one"),
        pytest.param(
            V1Cgroup(limit_in_bytes=536_870_912, cfs_quota_us=50_000),
            Resources(cpu_millicores=500, memory_bytes=536_870_912),
            id="half-core-512Mi",
        ),
        pytest.param(
            V1Cgroup(limit_in_bytes=(1 << 62) - 4096, cfs_quota_us=200_000, cfs_period_us=50_000),
            Resources(cpu_millicores=4000, memory_bytes=(1 << 62) - 4096),
            id="just-below-the-unlimited-threshold-and-short-period",
        ),
        pytest.param(
            V1Cgroup(limit_in_bytes=1 << 62, cfs_quota_us=-1),
            Resources(),
            id="at-the-unlimited-threshold",
        ),
    ],
)
def test_v1_read_limits(tmp_path: Path, spec: V1Cgroup, expected: Resources) -> None:
    h = v1_hierarchy(tmp_path, combined=True)
    make_v1(h, CONTAINER, spec)
    assert cgroups.read_limits(h, CONTAINER) == expected


@pytest.mark.parametrize(
    ("shares", "expected"),
    [
        pytest.param(2, None, id="best-effort-minimum-shares"),
        pytest.param(1024, 1000, id="one-core"),
        pytest.param(102, 100, id="100m"),
        pytest.param(256, 250, id="250m"),
        pytest.param(262_144, 256_000, id="maximum-shares"),
    ],
)
def test_v1_cpu_request_from_shares(tmp_path: Path, shares: int, expected: int | None) -> None:
    h = v1_hierarchy(tmp_path, combined=False)
    make_v1(h, CONTAINER, V1Cgroup(shares=shares))
    assert cgroups.read_cpu_request(h, CONTAINER) == expected


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(millicores=st.integers(min_value=3, max_value=256_000))
def test_v1_cpu_request_round_trips_exactly(tmp_path: Path, millicores: int) -> None:
    h = v1_hierarchy(tmp_path, combined=True)
    write_files(h.dir(h.cpu, CONTAINER), {"cpu.shares": f"{kubelet_shares(millicores)}\n"})
    assert cgroups.read_cpu_request(h, CONTAINER) == millicores


# -- vanished cgroups ------------------------------------------------------------------


@pytest.mark.parametrize("version", [pytest.param(1, id="v1"), pytest.param(2, id="v2")])
def test_read_usage_of_a_removed_cgroup_raises_oserror(tmp_path: Path, version: int) -> None:
    if version == 2:
        h = v2_hierarchy(tmp_path)
        make_v2(tmp_path, CONTAINER, V2Cgroup(memory_current=1))
        shutil.rmtree(tmp_path / CONTAINER)
    else:
        h = v1_hierarchy(tmp_path, combined=False)
        make_v1(h, CONTAINER, V1Cgroup())
        for controller in (h.cpuacct, h.memory, h.cpu):
            shutil.rmtree(h.dir(controller, CONTAINER))
    with pytest.raises(OSError):
        cgroups.read_usage(h, CONTAINER, NOW)
    with pytest.raises(OSError):
        cgroups.read_pids(h, CONTAINER)
    assert cgroups.read_limits(h, CONTAINER) == Resources()
    assert cgroups.read_cpu_request(h, CONTAINER) is None
    assert list(cgroups.children(h, CONTAINER)) == []


def test_children_lists_directories_only_sorted_and_relative(tmp_path: Path) -> None:
    h = v2_hierarchy(tmp_path)
    make_v2(tmp_path, "", V2Cgroup())
    for child in ("system.slice", "init.scope", "kubepods.slice", "system.slice/cron.service"):
        make_v2(tmp_path, child, V2Cgroup())
    assert list(cgroups.children(h, "")) == ["init.scope", "kubepods.slice", "system.slice"]
    assert list(cgroups.children(h, "/system.slice")) == ["system.slice/cron.service"]
