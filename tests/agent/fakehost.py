"""A fake host for the agent's tests: a cgroup tree, a /proc and a root file system,
all under one directory, with the workloads the discovery and collector tests share."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kubepulse.agent.cgroups import Hierarchy
from kubepulse.agent.collector import Collector
from kubepulse.agent.procfs import CLOCK_TICKS, ProcFS
from kubepulse.agent.workloads import Discovery, RuntimeMetadata
from kubepulse.model import Resources

BTIME = 1_700_000_000
UPTIME = 3_600.0
"""Seconds since boot: every process the fixtures make has run for most of an hour."""
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


def v1_cgroup_file(memory: str, systemd: str) -> str:
    """/proc/<pid>/cgroup on a hybrid host: v1 controllers, the named systemd hierarchy,
    and last the empty unified one, where systemd mirrors its own path."""
    return (
        f"12:pids:{memory}\n11:memory:{memory}\n4:cpu,cpuacct:{memory}\n"
        f"1:name=systemd:{systemd}\n0::{systemd}\n"
    )


@dataclass
class FakeHost:
    """A cgroup hierarchy, a /proc and a root file system, all under one directory.

    version 1 stands for a hybrid host: the discovery reads every controller from the one
    tree, but processes' /proc/<pid>/cgroup files are written the v1 way."""

    base: Path
    version: int = 2
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
        self.set_uptime(UPTIME)
        kernel = self.proc_root / "sys" / "kernel"
        (kernel / "random").mkdir(parents=True)
        (kernel / "pid_max").write_text("4194304\n")
        (kernel / "random" / "boot_id").write_text("0f4c6a9e-9a3b-4c59-8a4e-7d2f9b1c3e55\n")
        self.cgroup("")

    def hierarchy(self) -> Hierarchy:
        mode = "v2" if self.version == 2 else "hybrid"
        return Hierarchy(self.version, mode, *[self.cgroup_root] * 3)

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

    def set_uptime(self, seconds: float) -> None:
        """/proc/uptime: the clock of the processes' start times (ticks since boot)."""
        (self.proc_root / "uptime").write_text(f"{seconds:.2f} {seconds * 1.9:.2f}\n")

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
        cgroup_file: str | None = None,
        exe: str | None = None,
        argv: tuple[str, ...] = (),
    ) -> None:
        """A process in /proc, listed in its cgroup's cgroup.procs; cgroup_file is its
        /proc/<pid>/cgroup when that should say something else than `cgroup`."""
        d = self.proc_root / str(pid)
        d.mkdir()
        flags = KTHREAD_FLAGS if kernel_thread else USER_FLAGS
        (d / "stat").write_text(
            proc_stat_line(pid, comm, ppid, flags, start_ticks, utime, stime, rss_pages)
        )
        path = f"/{cgroup.strip('/')}"
        if cgroup_file is None:
            cgroup_file = f"0::{path}\n" if self.version == 2 else v1_cgroup_file(path, path)
        (d / "cgroup").write_text(cgroup_file)
        environ = env if env is not None else {"PATH": "/usr/bin:/bin"}
        (d / "environ").write_bytes(b"".join(f"{k}={v}\0".encode() for k, v in environ.items()))
        if exe is not None:
            (d / "exe").symlink_to(exe)
        (d / "cmdline").write_bytes(b"".join(a.encode() + b"\0" for a in argv))
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


def collected(host: FakeHost, clock: Clock, reserved: Resources | None = None) -> Collector:
    return Collector(
        "node-a",
        host.hierarchy(),
        host.procfs(),
        RuntimeMetadata(host.fs_root),
        reserved,
        clock=clock,
    )
