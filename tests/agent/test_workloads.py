"""Workload discovery and the collector, on a fake cgroup v2 tree and a fake /proc."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kubepulse.agent.cgroups import Hierarchy
from kubepulse.agent.collector import Collector
from kubepulse.agent.procfs import CLOCK_TICKS, PAGE_SIZE, ProcFS
from kubepulse.agent.workloads import (
    HOST_NAMESPACE,
    Discovery,
    PodRef,
    RuntimeMetadata,
)

BTIME = 1_700_000_000
USER_FLAGS = 0x00400100  # PF_RANDOMIZE | PF_SUPERPRIV, as on an ordinary process
KTHREAD_FLAGS = 0x00208040  # PF_KTHREAD | PF_NOFREEZE | PF_FORKNOEXEC, as on kthreadd
CONTAINERD_TASKS = "run/containerd/io.containerd.runtime.v2.task/k8s.io"


def hexid(seed: str) -> str:
    """A 64-hex container ID, different for every seed."""
    return (seed.encode().hex() * 64)[:64]


def proc_stat_line(
    pid: int,
    comm: str,
    ppid: int,
    flags: int,
    start_ticks: int,
    utime: int,
    stime: int,
    rss_pages: int,
) -> str:
    """/proc/<pid>/stat with all 52 fields of proc(5)."""
    fields: list[object] = [
        pid, f"({comm})", "S", ppid, pid, pid, 0, -1, flags,  # 1-9: ... flags
        1523, 0, 2, 0,  # 10-13: minflt cminflt majflt cmajflt
        utime, stime, 7, 3,  # 14-17: utime stime cutime cstime
        20, 0, 1, 0, start_ticks,  # 18-22: priority nice num_threads itrealvalue starttime
        12_345_678, rss_pages, 18446744073709551615,  # 23-25: vsize rss rsslim
        94_371_000, 94_372_000, 140_721_371_967_104, 0, 0,  # 26-30
        0, 0, 4096, 1256, 0, 0, 0, 17, 3, 0, 0, 0, 0, 0,  # 31-44
        94_373_000, 94_374_000, 94_375_000,  # 45-47
        140_721_371_970_275, 140_721_371_970_295, 140_721_371_970_295,  # 48-50
        140_721_371_971_563, 0,  # 51-52
    ]  # fmt: skip
    assert len(fields) == 52
    return " ".join(str(f) for f in fields) + "\n"


@dataclass
class FakeHost:
    """A cgroup v2 hierarchy, a /proc and a root file system, all under one directory."""

    base: Path
    cgroup_root: Path = field(init=False)
    proc_root: Path = field(init=False)
    fs_root: Path = field(init=False)

    def __post_init__(self) -> None:
        self.cgroup_root = self.base / "sys-fs-cgroup"
        self.proc_root = self.base / "proc"
        self.fs_root = self.base / "rootfs"
        for path in (self.cgroup_root, self.proc_root, self.fs_root):
            path.mkdir()
        (self.proc_root / "stat").write_text(
            "cpu  19416 0 5190 1815308 264 0 283 2724 0 0\n"
            "cpu0 5863 0 1676 912731 12 0 105 1309 0 0\n"
            "cpu1 13552 0 3513 902577 251 0 177 1414 0 0\n"
            "intr 3015236 19 9 0 0 0 0 0 0 0\n"
            "ctxt 5462871\n"
            f"btime {BTIME}\n"
            "processes 5312\n"
            "procs_running 2\n"
            "procs_blocked 0\n"
        )
        (self.proc_root / "meminfo").write_text(
            "MemTotal:        8041672 kB\nMemFree:         2035336 kB\n"
            "MemAvailable:    6218396 kB\nHugePages_Total:       0\n"
        )
        kernel = self.proc_root / "sys" / "kernel"
        (kernel / "random").mkdir(parents=True)
        (kernel / "pid_max").write_text("4194304\n")
        (kernel / "random" / "boot_id").write_text("0f4c6a9e-9a3b-4c59-8a4e-7d2f9b1c3e55\n")
        self.cgroup("")

    def hierarchy(self) -> Hierarchy:
        return Hierarchy(2, "v2", self.cgroup_root, self.cgroup_root, self.cgroup_root)

    def procfs(self) -> ProcFS:
        return ProcFS(self.proc_root)

    def discovery(self) -> Discovery:
        return Discovery(self.hierarchy(), self.procfs(), RuntimeMetadata(self.fs_root))

    def dir(self, cgroup: str) -> Path:
        return self.hierarchy().dir(self.cgroup_root, cgroup)

    def cgroup(self, path: str, usage_usec: int = 1_000, memory_current: int = 8_388_608) -> Path:
        """A cgroup directory with the files the kernel makes in it (fewer at the root)."""
        d = self.dir(path)
        d.mkdir(parents=True, exist_ok=True)
        files = {
            "cgroup.controllers": "cpuset cpu io memory pids\n",
            "cgroup.procs": "",
            "cpu.stat": f"usage_usec {usage_usec}\nuser_usec {usage_usec}\nsystem_usec 0\n",
            "memory.stat": (
                f"anon {memory_current // 2}\nfile {memory_current // 2}\nkernel 8192\n"
                f"inactive_anon 0\nactive_anon {memory_current // 2}\n"
                f"inactive_file 4096\nactive_file {memory_current // 2 - 4096}\n"
                "pgfault 100\npgmajfault 1\n"
            ),
        }
        if path.strip("/"):
            files |= {
                "memory.current": f"{memory_current}\n",
                "memory.max": "max\n",
                "cpu.max": "max 100000\n",
                "cpu.weight": "100\n",
            }
        for name, text in files.items():
            (d / name).write_text(text)
        return d

    def set_cpu(self, path: str, usage_usec: int) -> None:
        (self.dir(path) / "cpu.stat").write_text(
            f"usage_usec {usage_usec}\nuser_usec {usage_usec}\nsystem_usec 0\n"
        )

    def process(
        self,
        pid: int,
        comm: str,
        cgroup: str = "/",
        ppid: int = 1,
        start_ticks: int = 1_000,
        kernel_thread: bool = False,
        env: dict[str, str] | None = None,
        utime: int = 50,
        stime: int = 20,
        rss_pages: int = 256,
    ) -> None:
        """A process in /proc, listed in its cgroup's cgroup.procs."""
        d = self.proc_root / str(pid)
        d.mkdir()
        flags = KTHREAD_FLAGS if kernel_thread else USER_FLAGS
        (d / "stat").write_text(
            proc_stat_line(pid, comm, ppid, flags, start_ticks, utime, stime, rss_pages)
        )
        (d / "cgroup").write_text(f"0::/{cgroup.strip('/')}\n")
        environ = env if env is not None else {"PATH": "/usr/bin:/bin"}
        (d / "environ").write_bytes(b"".join(f"{k}={v}\0".encode() for k, v in environ.items()))
        if not kernel_thread:
            with (self.dir(cgroup) / "cgroup.procs").open("a") as procs:
                procs.write(f"{pid}\n")

    def containerd(self, container_id: str, annotations: dict[str, str]) -> None:
        """The OCI spec containerd writes for a CRI task."""
        d = self.fs_root / CONTAINERD_TASKS / container_id
        d.mkdir(parents=True)
        spec = {"ociVersion": "1.1.0", "process": {"args": ["/pause"]}, "annotations": annotations}
        (d / "config.json").write_text(json.dumps(spec))


def started(ticks: int) -> float:
    return BTIME + ticks / CLOCK_TICKS


def cri(kind: str, name: str, pod: str, namespace: str, uid: str) -> dict[str, str]:
    annotations = {
        "io.kubernetes.cri.container-type": kind,
        "io.kubernetes.cri.sandbox-name": pod,
        "io.kubernetes.cri.sandbox-namespace": namespace,
        "io.kubernetes.cri.sandbox-uid": uid,
        "io.kubernetes.cri.sandbox-id": hexid(pod + "sandbox"),
    }
    if kind == "container":
        annotations["io.kubernetes.cri.container-name"] = name
        annotations["io.kubernetes.cri.image-name"] = f"registry.k8s.io/{name}:1.0"
    return annotations


@pytest.fixture
def host(tmp_path: Path) -> FakeHost:
    return FakeHost(tmp_path)


# -- kubepods --------------------------------------------------------------------------

UID = "0d4b9c3e-5f6a-4b7c-8d9e-0a1b2c3d4e5f"


@dataclass(frozen=True)
class Layout:
    """Where a cgroup driver puts a Burstable pod and its containers."""

    parents: tuple[str, ...]
    pod_dir: str
    container: Callable[[str], str]


CGROUPFS = Layout(
    ("kubepods", "kubepods/burstable"),
    f"kubepods/burstable/pod{UID}",
    lambda cid: f"kubepods/burstable/pod{UID}/{cid}",
)
SYSTEMD_POD = (
    f"kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID.replace('-', '_')}.slice"
)
SYSTEMD = Layout(
    ("kubepods.slice", "kubepods.slice/kubepods-burstable.slice"),
    SYSTEMD_POD,
    lambda cid: f"{SYSTEMD_POD}/cri-containerd-{cid}.scope",
)
LAYOUTS = [pytest.param(CGROUPFS, id="cgroupfs-driver"), pytest.param(SYSTEMD, id="systemd-driver")]


def make_kube_pod(host: FakeHost, layout: Layout, pid_base: int, metadata: bool) -> None:
    """A Burstable pod: a pause sandbox and two app containers, web and sidecar."""
    for parent in layout.parents:
        host.cgroup(parent)
    host.cgroup(layout.pod_dir)
    sandbox, web, sidecar = hexid("sandbox"), hexid("web"), hexid("sidecar")
    for cid, comm, offset in ((sandbox, "pause", 0), (web, "nginx", 1), (sidecar, "envoy", 3)):
        host.cgroup(layout.container(cid))
        host.process(
            pid_base + offset,
            comm,
            layout.container(cid),
            start_ticks=5_000 + offset,
            env={"HOSTNAME": "shop-web-7d4b9c-xk2lp", "PATH": "/usr/bin"},
        )
    host.process(pid_base + 2, "nginx", layout.container(web), ppid=pid_base + 1, start_ticks=5_010)
    if metadata:
        host.containerd(sandbox, cri("sandbox", "", "shop-web-7d4b9c-xk2lp", "shop", UID))
        host.containerd(web, cri("container", "web", "shop-web-7d4b9c-xk2lp", "shop", UID))
        host.containerd(sidecar, cri("container", "mesh", "shop-web-7d4b9c-xk2lp", "shop", UID))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(
    ("metadata", "names", "namespace"),
    [
        pytest.param(True, ["mesh", "web"], "shop", id="names-from-containerd-annotations"),
        pytest.param(False, ["envoy", "nginx"], "default", id="names-from-commands"),
    ],
)
def test_kubepods_pod_is_found_with_its_containers_and_without_pause(
    host: FakeHost, layout: Layout, metadata: bool, names: list[str], namespace: str
) -> None:
    make_kube_pod(host, layout, pid_base=400, metadata=metadata)

    pods = host.discovery().kubepods()

    assert len(pods) == 1
    pod = pods[0]
    assert (pod.namespace, pod.name, pod.uid) == (namespace, "shop-web-7d4b9c-xk2lp", UID)
    assert pod.kubepods is True
    assert pod.cgroup == layout.pod_dir
    assert pod.start_time == os.stat(host.dir(layout.pod_dir)).st_ctime
    assert [c.name for c in pod.containers] == names
    by_cgroup = {c.cgroup: c for c in pod.containers}
    web = by_cgroup[layout.container(hexid("web"))]
    assert web.start_time == started(5_001)  # the earliest of its processes
    assert by_cgroup[layout.container(hexid("sidecar"))].start_time == started(5_003)
    assert layout.container(hexid("sandbox")) not in by_cgroup


@pytest.mark.parametrize(
    "sandbox_state",
    [
        pytest.param("empty", id="sandbox-cgroup-without-processes"),
        pytest.param("other-command", id="sandbox-process-not-named-pause"),
    ],
)
def test_kubepods_sandbox_known_from_its_annotation_alone_is_skipped(
    host: FakeHost, sandbox_state: str
) -> None:
    make_kube_pod(host, CGROUPFS, pid_base=400, metadata=True)
    sandbox = host.dir(CGROUPFS.container(hexid("sandbox")))
    if sandbox_state == "empty":
        (sandbox / "cgroup.procs").write_text("")
    else:
        stat = host.proc_root / "400" / "stat"
        stat.write_text(stat.read_text().replace("(pause)", "(sleep)"))

    (pod,) = host.discovery().kubepods()

    assert [c.name for c in pod.containers] == ["mesh", "web"]


@pytest.mark.parametrize(
    ("pod_dir", "uid"),
    [
        pytest.param(f"kubepods/pod{UID}", UID, id="cgroupfs-guaranteed"),
        pytest.param(f"kubepods/besteffort/pod{UID}", UID, id="cgroupfs-besteffort"),
        pytest.param(
            f"kubepods.slice/kubepods-pod{UID.replace('-', '_')}.slice",
            UID,
            id="systemd-guaranteed",
        ),
        pytest.param(
            "kubepods.slice/kubepods-besteffort.slice/"
            f"kubepods-besteffort-pod{UID.replace('-', '_')}.slice",
            UID,
            id="systemd-besteffort",
        ),
    ],
)
def test_kubepods_qos_classes_and_uid_from_the_pod_directory(
    host: FakeHost, pod_dir: str, uid: str
) -> None:
    host.cgroup(pod_dir)
    container = f"{pod_dir}/{hexid('app')}"
    host.cgroup(container)
    host.process(300, "redis-server", container)

    pods = host.discovery().kubepods()

    assert [(p.uid, p.cgroup, [c.name for c in p.containers]) for p in pods] == [
        (uid, pod_dir, ["redis-server"])
    ]


def test_kubepods_namespace_from_service_account_when_there_is_no_metadata(
    host: FakeHost,
) -> None:
    make_kube_pod(host, CGROUPFS, pid_base=400, metadata=False)
    for pid in (401, 402, 403):  # the app containers' processes, not the sandbox's
        secret = host.proc_root / str(pid) / "root/var/run/secrets/kubernetes.io/serviceaccount"
        secret.mkdir(parents=True)
        (secret / "namespace").write_text("payments\n")

    (pod,) = host.discovery().kubepods()

    assert (pod.namespace, pod.name) == ("payments", "shop-web-7d4b9c-xk2lp")


def test_kubepods_pod_directory_that_is_not_a_pod_is_ignored(host: FakeHost) -> None:
    host.cgroup("kubepods/burstable/not-a-pod")
    host.cgroup(f"kubepods/burstable/pod{UID[:-1]}")  # one character short
    assert host.discovery().kubepods() == []


# -- systemd units and container scopes -------------------------------------------------


def make_units(host: FakeHost) -> None:
    host.cgroup("system.slice")
    host.cgroup("system.slice/containerd.service")
    host.process(200, "containerd", "system.slice/containerd.service", start_ticks=300)
    host.process(201, "containerd-shim", "system.slice/containerd.service", start_ticks=250)
    host.cgroup("system.slice/system-getty.slice")
    host.cgroup("system.slice/system-getty.slice/getty@tty1.service")
    host.process(210, "agetty", "system.slice/system-getty.slice/getty@tty1.service")
    host.cgroup("system.slice/emptied.service")  # nothing runs there any more
    host.cgroup("user.slice")
    host.cgroup("user.slice/user-1000.slice")
    host.cgroup("user.slice/user-1000.slice/session-3.scope")
    host.process(230, "sshd", "user.slice/user-1000.slice/session-3.scope", start_ticks=900)


def test_units_become_pods_in_the_namespace_of_their_top_slice(host: FakeHost) -> None:
    make_units(host)

    pods = host.discovery().units()

    found = sorted((p.namespace, p.name, p.cgroup, p.start_time) for p in pods)
    assert found == [
        ("system", "containerd", "system.slice/containerd.service", started(250)),
        (
            "system",
            "getty-tty1",
            "system.slice/system-getty.slice/getty@tty1.service",
            started(1_000),
        ),
        ("user", "session-3", "user.slice/user-1000.slice/session-3.scope", started(900)),
    ]
    for pod in pods:
        assert pod.kubepods is False
        assert [(c.name, c.cgroup) for c in pod.containers] == [(pod.name, pod.cgroup)]


@pytest.mark.parametrize(
    ("cgroup", "namespace"),
    [
        pytest.param(f"system.slice/docker-{hexid('redis')}.scope", "docker", id="docker-scope"),
        pytest.param(
            f"machine.slice/libpod-{hexid('redis')}.scope", "podman", id="podman-libpod-scope"
        ),
        pytest.param(f"docker/{hexid('redis')}", "docker", id="docker-cgroupfs-driver"),
    ],
)
def test_container_scopes_outside_kubernetes(host: FakeHost, cgroup: str, namespace: str) -> None:
    host.cgroup(cgroup.split("/")[0])
    host.cgroup(cgroup)
    host.process(700, "redis-server", cgroup, env={"HOSTNAME": "cache", "HOME": "/data"})
    host.process(701, "redis-check", cgroup, ppid=700)

    (pod,) = host.discovery().units()

    assert (pod.namespace, pod.name, pod.cgroup) == (namespace, "cache", cgroup)
    assert [(c.name, c.cgroup) for c in pod.containers] == [("redis-server", cgroup)]


def test_docker_scope_without_hostname_is_named_after_the_short_id(host: FakeHost) -> None:
    cgroup = f"system.slice/docker-{hexid('redis')}.scope"
    host.cgroup("system.slice")
    host.cgroup(cgroup)
    host.process(700, "redis-server", cgroup, env={})

    (pod,) = host.discovery().units()

    assert pod.name == hexid("redis")[:12]


# -- process trees ------------------------------------------------------------------------


def make_processes(host: FakeHost) -> None:
    """init, two kernel threads, a tmux tree and a lone daemon, all outside any unit."""
    host.process(1, "systemd", "init.scope", ppid=0, start_ticks=1)
    host.process(2, "kthreadd", ppid=0, start_ticks=1, kernel_thread=True)
    host.process(9, "kworker/0:1-events", ppid=2, start_ticks=2, kernel_thread=True)
    host.process(500, "tmux: server", ppid=1, start_ticks=2_000)
    host.process(501, "bash", ppid=500, start_ticks=2_100)
    host.process(502, "bash", ppid=500, start_ticks=2_050)
    host.process(503, "python3", ppid=501, start_ticks=2_200)
    host.process(600, "(sd-pam)", ppid=1, start_ticks=1_500)


def test_process_trees_become_host_pods_grouped_by_command(host: FakeHost) -> None:
    host.cgroup("init.scope")
    make_processes(host)

    pods = host.discovery().process_trees(set())

    summary = {
        p.name: (p.namespace, p.start_time, [(c.name, c.pids, c.start_time) for c in p.containers])
        for p in pods
    }
    assert summary == {
        "sd-pam-600": (HOST_NAMESPACE, started(1_500), [("sd-pam", (600,), started(1_500))]),
        "systemd-1": (HOST_NAMESPACE, started(1), [("systemd", (1,), started(1))]),
        "tmux-server-500": (
            HOST_NAMESPACE,
            started(2_000),
            [
                ("bash", (501, 502), started(2_050)),
                ("python3", (503,), started(2_200)),
                ("tmux-server", (500,), started(2_000)),
            ],
        ),
    }
    assert [p.name for p in pods] == sorted(summary)
    assert all(c.cgroup is None for p in pods for c in p.containers)


def test_everything_together_each_process_is_reported_once(host: FakeHost) -> None:
    make_kube_pod(host, SYSTEMD, pid_base=400, metadata=True)
    make_units(host)
    host.cgroup("init.scope")
    make_processes(host)

    pods = host.discovery().pods()

    assert [(p.namespace, p.name) for p in pods] == [
        ("shop", "shop-web-7d4b9c-xk2lp"),
        ("system", "containerd"),
        ("system", "getty-tty1"),
        ("user", "session-3"),
        (HOST_NAMESPACE, "sd-pam-600"),
        (HOST_NAMESPACE, "systemd-1"),
        (HOST_NAMESPACE, "tmux-server-500"),
    ]
    tree_pids = {pid for p in pods for c in p.containers for pid in c.pids}
    assert tree_pids == {1, 500, 501, 502, 503, 600}  # no kernel threads, no unit or pod pids
    assert len({p.uid for p in pods}) == len(pods)


def test_uids_are_stable_across_discoveries(host: FakeHost) -> None:
    make_kube_pod(host, CGROUPFS, pid_base=400, metadata=True)
    make_units(host)
    host.cgroup(f"system.slice/docker-{hexid('redis')}.scope")
    host.process(700, "redis-server", f"system.slice/docker-{hexid('redis')}.scope")
    host.cgroup("init.scope")
    make_processes(host)

    first = {(p.namespace, p.name): p.uid for p in host.discovery().pods()}
    second = {(p.namespace, p.name): p.uid for p in host.discovery().pods()}

    assert first == second
    assert len(set(first.values())) == len(first) == 8


# -- the collector on the fake tree ---------------------------------------------------------


@dataclass
class Clock:
    now: float = 1_700_000_100.0

    def __call__(self) -> float:
        return self.now


def make_collected_host(host: FakeHost) -> None:
    """Two kubepods pods (web with two containers, db with one), a unit and a process tree."""
    make_kube_pod(host, CGROUPFS, pid_base=400, metadata=True)
    db_uid = "9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d"
    db = f"kubepods/burstable/pod{db_uid}"
    host.cgroup(db)
    host.cgroup(f"{db}/{hexid('db')}")
    host.process(450, "postgres", f"{db}/{hexid('db')}")
    host.containerd(hexid("db"), cri("container", "postgres", "db-0", "shop", db_uid))
    make_units(host)
    host.cgroup("init.scope")
    make_processes(host)


def collected(host: FakeHost, clock: Clock) -> Collector:
    return Collector(
        "node-a",
        host.hierarchy(),
        host.procfs(),
        RuntimeMetadata(host.fs_root),
        clock=clock,
    )


def names(collector: Collector) -> dict[str, list[str]]:
    stats = collector.collect()
    return {f"{p.namespace}/{p.name}": [c.name for c in p.containers] for p in stats.pods}


ALL_PODS = {
    "shop/shop-web-7d4b9c-xk2lp": ["mesh", "web"],
    "shop/db-0": ["postgres"],
    "system/containerd": ["containerd"],
    "system/getty-tty1": ["getty-tty1"],
    "user/session-3": ["session-3"],
    "host/sd-pam-600": ["sd-pam"],
    "host/systemd-1": ["systemd"],
    "host/tmux-server-500": ["bash", "python3", "tmux-server"],
}


def remove_cgroup(path: str) -> Callable[[FakeHost], None]:
    return lambda host: shutil.rmtree(host.dir(path))


def remove_processes(*pids: int) -> Callable[[FakeHost], None]:
    def remove(host: FakeHost) -> None:
        for pid in pids:
            shutil.rmtree(host.proc_root / str(pid))

    return remove


@pytest.mark.parametrize(
    ("vanish", "skipped", "gone", "shrunk"),
    [
        pytest.param(
            remove_cgroup(CGROUPFS.pod_dir),
            2,
            "shop/shop-web-7d4b9c-xk2lp",
            {},
            id="whole-pod-removed-skips-both-containers",
        ),
        pytest.param(
            remove_cgroup(CGROUPFS.container(hexid("sidecar"))),
            1,
            None,
            {"shop/shop-web-7d4b9c-xk2lp": ["web"]},
            id="one-container-removed-keeps-the-pod",
        ),
        pytest.param(
            remove_cgroup("system.slice/containerd.service"),
            1,
            "system/containerd",
            {},
            id="unit-stopped",
        ),
        pytest.param(
            remove_processes(500, 501, 502, 503),
            3,
            "host/tmux-server-500",
            {},
            id="process-tree-exited",
        ),
    ],
)
def test_collector_skips_workloads_that_vanish_after_discovery(
    host: FakeHost,
    monkeypatch: pytest.MonkeyPatch,
    vanish: Callable[[FakeHost], None],
    skipped: int,
    gone: str | None,
    shrunk: dict[str, list[str]],
) -> None:
    make_collected_host(host)
    collector = collected(host, Clock())
    discover = collector.discovery.pods

    def discover_then_vanish() -> list[PodRef]:
        found = discover()
        vanish(host)
        return found

    monkeypatch.setattr(collector.discovery, "pods", discover_then_vanish)

    result = names(collector)

    expected = {k: shrunk.get(k, v) for k, v in ALL_PODS.items() if k != gone}
    assert result == expected
    assert collector.skipped_reads == skipped


def test_collector_reads_every_workload_when_nothing_vanishes(host: FakeHost) -> None:
    make_collected_host(host)
    collector = collected(host, Clock())
    assert names(collector) == ALL_PODS
    assert collector.skipped_reads == 0


WEB = CGROUPFS.container(hexid("web"))


@pytest.mark.parametrize(
    ("before_usec", "after_usec", "seconds", "nanocores"),
    [
        pytest.param(5_000_000, 10_000_000, 10.0, 500_000_000, id="half-a-core"),
        pytest.param(5_000_000, 35_000_000, 15.0, 2_000_000_000, id="two-cores"),
        pytest.param(5_000_000, 5_000_000, 10.0, 0, id="idle"),
        pytest.param(10_000_000, 5_000_000, 10.0, None, id="counter-reset-gives-no-rate"),
        pytest.param(5_000_000, 10_000_000, 0.0, None, id="no-time-passed-gives-no-rate"),
    ],
)
def test_collector_reports_a_cpu_rate_from_the_second_collect(
    host: FakeHost, before_usec: int, after_usec: int, seconds: float, nanocores: int | None
) -> None:
    make_kube_pod(host, CGROUPFS, pid_base=400, metadata=True)
    host.set_cpu(WEB, before_usec)
    host.set_cpu(CGROUPFS.pod_dir, before_usec)
    host.set_cpu("", before_usec)
    clock = Clock()
    collector = collected(host, clock)

    first = collector.collect()
    host.set_cpu(WEB, after_usec)
    host.set_cpu(CGROUPFS.pod_dir, after_usec)
    host.set_cpu("", after_usec)
    clock.now += seconds
    second = collector.collect()

    (pod1,), (pod2,) = first.pods, second.pods
    web1 = next(c for c in pod1.containers if c.name == "web")
    web2 = next(c for c in pod2.containers if c.name == "web")
    assert (web1.cpu_usage_nanocores, pod1.cpu_usage_nanocores) == (None, None)
    assert first.node.cpu_usage_nanocores is None
    assert web2.usage.cpu_usage_core_nanoseconds == after_usec * 1000
    assert web2.usage.timestamp == clock.now
    assert web2.cpu_usage_nanocores == nanocores
    assert pod2.cpu_usage_nanocores == nanocores
    assert second.node.cpu_usage_nanocores == nanocores


def test_collector_requests_and_limits_only_for_kubelet_cgroups(host: FakeHost) -> None:
    make_kube_pod(host, CGROUPFS, pid_base=400, metadata=True)
    (host.dir(WEB) / "cpu.weight").write_text("39\n")  # the kubelet's weight for 1 core
    (host.dir(WEB) / "cpu.max").write_text("200000 100000\n")
    (host.dir(WEB) / "memory.max").write_text("268435456\n")
    make_units(host)
    (host.dir("system.slice/containerd.service") / "cpu.weight").write_text("39\n")

    stats = collected(host, Clock()).collect()

    pods = {p.name: p for p in stats.pods}
    web = next(c for c in pods["shop-web-7d4b9c-xk2lp"].containers if c.name == "web")
    assert web.requests.cpu_millicores == 975
    assert (web.limits.cpu_millicores, web.limits.memory_bytes) == (2000, 268_435_456)
    (containerd,) = pods["containerd"].containers
    assert containerd.requests.cpu_millicores is None


def test_collector_node_and_process_tree_usage(host: FakeHost) -> None:
    host.cgroup("init.scope")
    make_processes(host)
    (host.proc_root / "501" / "smaps_rollup").write_text(
        "55d4a000000-7ffd2ab000 ---p 00000000 00:00 0    [rollup]\n"
        "Rss:                4096 kB\nPss:                1024 kB\nPss_Anon:            512 kB\n"
    )
    clock = Clock()

    stats = collected(host, clock).collect()

    node = stats.node
    assert (node.name, node.start_time, node.max_pid) == ("node-a", float(BTIME), 4_194_304)
    assert node.capacity.cpu_millicores == 2000
    assert node.capacity.memory_bytes == 8_041_672 * 1024
    assert node.usage.timestamp == clock.now
    tmux = next(p for p in stats.pods if p.name == "tmux-server-500")
    bash = next(c for c in tmux.containers if c.name == "bash")
    # Each process: utime 50 + stime 20 + cutime 7 + cstime 3 ticks.
    assert bash.usage.cpu_usage_core_nanoseconds == 2 * (80 * 1_000_000_000 // CLOCK_TICKS)
    assert bash.usage.rss_bytes == 2 * 256 * PAGE_SIZE
    # PSS where smaps_rollup has it (pid 501), RSS otherwise (pid 502).
    assert bash.usage.working_set_bytes == 1024 * 1024 + 256 * PAGE_SIZE
    assert tmux.process_count == 4
    assert node.process_count == sum(p.process_count or 0 for p in stats.pods)
