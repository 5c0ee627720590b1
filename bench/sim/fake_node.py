"""A fake Kubernetes node on disk: a cgroup v2 tree, a /proc root and containerd metadata.

The tree follows what the kubelet's systemd cgroup driver and containerd make on a real
node (pkg/kubelet/cm/cgroup_manager_linux.go):

    kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_>.slice/
        cri-containerd-<64 hex>.scope

Every cgroup holds the files the agent reads, with contents shaped like the kernel's
(key order and key set of a 6.x kernel), so that the agent parses as much as it would on
a real node. Each pod also has its pause sandbox scope, as containerd makes one; the
agent must skip it, which the benchmark checks by counting the containers it reports.
Values come from a seeded generator so that every run builds the same node.
"""

from __future__ import annotations

import json
import random
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

CONTAINERD_TASKS = Path("run/containerd/io.containerd.runtime.v2.task/k8s.io")
KUBEPODS = Path("kubepods.slice")
BURSTABLE = KUBEPODS / "kubepods-burstable.slice"

NAMESPACES = ("default", "kube-system", "monitoring", "ingress", "shop", "payments")
APPS = ("web", "api", "worker", "cache", "exporter", "gateway", "scheduler", "search")
CONTAINER_NAMES = ("app", "sidecar")

# Byte-valued keys of memory.stat, then event counters, in the kernel's order
# (mm/memcontrol.c, memory_stats[] and memcg_vm_event_stat[]).
_MEMORY_BYTES = (
    "anon",
    "file",
    "kernel",
    "kernel_stack",
    "pagetables",
    "sec_pagetables",
    "percpu",
    "sock",
    "vmalloc",
    "shmem",
    "zswap",
    "zswapped",
    "file_mapped",
    "file_dirty",
    "file_writeback",
    "swapcached",
    "anon_thp",
    "file_thp",
    "shmem_thp",
    "inactive_anon",
    "active_anon",
    "inactive_file",
    "active_file",
    "unevictable",
    "slab_reclaimable",
    "slab_unreclaimable",
    "slab",
)
_MEMORY_EVENTS = (
    "workingset_refault_anon",
    "workingset_refault_file",
    "workingset_activate_anon",
    "workingset_activate_file",
    "workingset_restore_anon",
    "workingset_restore_file",
    "workingset_nodereclaim",
    "pgdemote_kswapd",
    "pgdemote_direct",
    "pgdemote_khugepaged",
    "pgscan",
    "pgsteal",
    "pgscan_kswapd",
    "pgscan_direct",
    "pgscan_khugepaged",
    "pgsteal_kswapd",
    "pgsteal_direct",
    "pgsteal_khugepaged",
    "pgfault",
    "pgmajfault",
    "pgrefill",
    "pgactivate",
    "pgdeactivate",
    "pglazyfree",
    "pglazyfreed",
    "zswpin",
    "zswpout",
    "zswpwb",
    "thp_fault_alloc",
    "thp_collapse_alloc",
    "thp_swpout",
    "thp_swpout_fallback",
)


@dataclass(frozen=True, slots=True)
class ExpectedContainer:
    """What the agent should report for one container: its series' label values."""

    namespace: str
    pod: str
    container: str


@dataclass(frozen=True, slots=True)
class FakeNode:
    proc_root: Path
    runtime_root: Path
    cgroup_root: Path
    containers: frozenset[ExpectedContainer]
    pods: int


def build(base: Path, pods: int, containers_per_pod: int, seed: int = 1) -> FakeNode:
    """Write a node with `pods` pods of `containers_per_pod` containers under base."""
    rng = random.Random(seed)
    cgroup_root, proc_root, runtime_root = base / "cgroup", base / "proc", base / "runtime"
    _write_root(cgroup_root)
    _write_cgroup(cgroup_root / KUBEPODS, rng, cpu_max="max 100000", weight=100)
    _write_cgroup(cgroup_root / BURSTABLE, rng, cpu_max="max 100000", weight=10)
    expected: set[ExpectedContainer] = set()
    for index in range(pods):
        expected |= _write_pod(cgroup_root, runtime_root, rng, index, containers_per_pod)
    _write_proc(proc_root, cgroup_root, uuid.UUID(int=rng.getrandbits(128), version=4))
    return FakeNode(proc_root, runtime_root, cgroup_root, frozenset(expected), pods)


def _write_pod(
    cgroup_root: Path, runtime_root: Path, rng: random.Random, index: int, containers: int
) -> set[ExpectedContainer]:
    uid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    namespace = NAMESPACES[index % len(NAMESPACES)]
    pod = f"{APPS[index % len(APPS)]}-{rng.getrandbits(40):010x}-{index:03d}"
    pod_dir = cgroup_root / BURSTABLE / f"kubepods-burstable-pod{uid.replace('-', '_')}.slice"
    _write_cgroup(pod_dir, rng, cpu_max="max 100000", weight=rng.randint(4, 40))
    sandbox_id = _container_id(rng)
    # The pause container: containerd marks it as the sandbox, the agent must skip it.
    _write_cgroup(pod_dir / f"cri-containerd-{sandbox_id}.scope", rng, "max 100000", 2)
    _write_config(runtime_root, sandbox_id, sandbox_id, pod, namespace, uid, "POD", "sandbox")
    expected: set[ExpectedContainer] = set()
    for name in _container_names(containers):
        container_id = _container_id(rng)
        cpu_max = rng.choice(("max 100000", "50000 100000", "200000 100000"))
        _write_cgroup(pod_dir / f"cri-containerd-{container_id}.scope", rng, cpu_max, 4)
        _write_config(runtime_root, container_id, sandbox_id, pod, namespace, uid, name)
        expected.add(ExpectedContainer(namespace, pod, name))
    return expected


def _container_names(count: int) -> list[str]:
    return [CONTAINER_NAMES[i] if i < len(CONTAINER_NAMES) else f"c{i}" for i in range(count)]


def _container_id(rng: random.Random) -> str:
    return f"{rng.getrandbits(256):064x}"


def _write_root(root: Path) -> None:
    """The root cgroup has no memory.current, cpu.max or cpu.weight, as on a real host."""
    root.mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma misc\n")
    (root / "cgroup.procs").write_text("")
    usage = 987_654_321_000
    (root / "cpu.stat").write_text(
        f"usage_usec {usage}\nuser_usec {usage * 2 // 3}\nsystem_usec {usage // 3}\n"
    )
    (root / "memory.stat").write_text(_memory_stat(random.Random(0), 12 << 30))


def _write_cgroup(path: Path, rng: random.Random, cpu_max: str, weight: int) -> None:
    """One non-root cgroup with the accounting and limit files the agent reads."""
    path.mkdir(parents=True)
    current = rng.randint(8 << 20, 900 << 20)
    usage_usec = rng.randint(1_000_000, 50_000_000_000)
    (path / "cgroup.procs").write_text("")
    (path / "cpu.stat").write_text(_cpu_stat(rng, usage_usec))
    (path / "memory.current").write_text(f"{current}\n")
    (path / "memory.stat").write_text(_memory_stat(rng, current))
    (path / "memory.max").write_text(rng.choice(("max", str(current * 2), str(1 << 30))) + "\n")
    (path / "cpu.max").write_text(cpu_max + "\n")
    (path / "cpu.weight").write_text(f"{weight}\n")


def _cpu_stat(rng: random.Random, usage_usec: int) -> str:
    user = usage_usec * rng.randint(50, 90) // 100
    periods = rng.randint(0, 500_000)
    throttled = periods // rng.randint(5, 50)
    return (
        f"usage_usec {usage_usec}\nuser_usec {user}\nsystem_usec {usage_usec - user}\n"
        f"core_sched.force_idle_usec 0\nnr_periods {periods}\nnr_throttled {throttled}\n"
        f"throttled_usec {throttled * 1200}\nnr_bursts 0\nburst_usec 0\n"
    )


def _memory_stat(rng: random.Random, current: int) -> str:
    """memory.stat whose anon + file + kernel add up to about memory.current."""
    anon = current * rng.randint(40, 80) // 100
    file = current * rng.randint(10, 40) // 100
    inactive_file = file * rng.randint(20, 80) // 100
    values = {key: rng.randint(0, 1 << 20) for key in _MEMORY_BYTES}
    values |= {
        "anon": anon,
        "file": file,
        "inactive_anon": anon,
        "active_anon": 0,
        "inactive_file": inactive_file,
        "active_file": file - inactive_file,
    }
    values |= {key: rng.randint(0, 10_000_000) for key in _MEMORY_EVENTS}
    return "".join(f"{key} {values[key]}\n" for key in (*_MEMORY_BYTES, *_MEMORY_EVENTS))


def _write_config(
    runtime_root: Path,
    container_id: str,
    sandbox_id: str,
    pod: str,
    namespace: str,
    uid: str,
    name: str,
    kind: str = "container",
) -> None:
    """containerd's task bundle config.json: an OCI spec carrying the CRI annotations.

    The agent parses the whole file, so it gets the body of a real spec too (process,
    mounts, namespaces), not only the annotations, to cost what parsing a real one does.
    """
    annotations = {
        "io.kubernetes.cri.container-type": kind,
        "io.kubernetes.cri.sandbox-id": sandbox_id,
        "io.kubernetes.cri.sandbox-name": pod,
        "io.kubernetes.cri.sandbox-namespace": namespace,
        "io.kubernetes.cri.sandbox-uid": uid,
    }
    if kind == "container":
        annotations["io.kubernetes.cri.container-name"] = name
        annotations["io.kubernetes.cri.image-name"] = f"registry.example/{name}:1.2.3"
    spec = {
        "ociVersion": "1.1.0",
        "process": {
            "user": {"uid": 65532, "gid": 65532},
            "args": [f"/usr/local/bin/{name}", "--config=/etc/app/config.yaml"],
            "env": [f"KUBERNETES_SERVICE_PORT_{i}=443" for i in range(24)],
            "cwd": "/",
            "capabilities": {"bounding": ["CAP_CHOWN", "CAP_NET_BIND_SERVICE", "CAP_KILL"]},
            "oomScoreAdj": 999,
        },
        "root": {"path": "rootfs"},
        "hostname": pod,
        "mounts": [
            {"destination": f"/mnt/{i}", "type": "bind", "source": f"/var/lib/kubelet/{i}"}
            for i in range(12)
        ],
        "annotations": annotations,
        "linux": {
            "cgroupsPath": f"kubepods-burstable-pod{uid.replace('-', '_')}.slice:cri-containerd:"
            f"{container_id}",
            "namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount", "network")],
            "maskedPaths": ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/timer_list"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys"],
        },
    }
    bundle = runtime_root / CONTAINERD_TASKS / container_id
    bundle.mkdir(parents=True)
    (bundle / "config.json").write_text(json.dumps(spec))


def _write_proc(proc_root: Path, cgroup_root: Path, boot_id: uuid.UUID) -> None:
    """A /proc with no process directories: the agent then reports only kubepods.

    The host's own stat and meminfo are copied because the agent takes the CPU count
    and boot time from stat and the memory capacity from meminfo.
    """
    (proc_root / "self").mkdir(parents=True)
    (proc_root / "sys" / "kernel" / "random").mkdir(parents=True)
    mount_point = str(cgroup_root).replace(" ", "\\040")
    (proc_root / "self" / "mountinfo").write_text(
        f"35 24 0:30 / {mount_point} rw,nosuid,nodev,noexec,relatime shared:9 "
        "- cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n"
    )
    shutil.copyfile("/proc/stat", proc_root / "stat")
    shutil.copyfile("/proc/meminfo", proc_root / "meminfo")
    (proc_root / "sys" / "kernel" / "pid_max").write_text("4194304\n")
    (proc_root / "sys" / "kernel" / "random" / "boot_id").write_text(f"{boot_id}\n")
