"""Workload discovery on a fake cgroup tree and a fake /proc."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kubepulse.agent.procfs import CLOCK_TICKS
from kubepulse.agent.workloads import HOST_NAMESPACE
from tests.agent.fakehost import (
    CGROUPFS,
    SYSTEMD,
    UID,
    UPTIME,
    FakeHost,
    Layout,
    hexid,
    make_kube_pod,
    make_processes,
    make_units,
    started,
    v1_cgroup_file,
)

LAYOUTS = [pytest.param(CGROUPFS, id="cgroupfs-driver"), pytest.param(SYSTEMD, id="systemd-driver")]


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
        pytest.param(
            f"system.slice/cri-containerd-{hexid('redis')}.scope",
            "containerd",
            id="containerd-cri-scope",
        ),
        pytest.param(f"system.slice/crio-{hexid('redis')}.scope", "crio", id="cri-o-scope"),
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


def ticks_ago(seconds: float) -> int:
    """The start time, in ticks since boot, of a process that began `seconds` ago."""
    return int((UPTIME - seconds) * CLOCK_TICKS)


def test_young_processes_count_in_the_container_of_their_established_ancestor(
    host: FakeHost,
) -> None:
    """Children that come and go do not add and drop containers: metrics-server would
    leave the pod out of every scrape in which a container was new."""
    host.process(1, "systemd", ppid=0, start_ticks=1)
    host.process(500, "bash", ppid=1, start_ticks=ticks_ago(3_000))
    host.process(501, "make", ppid=500, start_ticks=ticks_ago(120))
    host.process(502, "cc1", ppid=501, start_ticks=ticks_ago(2))
    host.process(503, "sleep", ppid=500, start_ticks=ticks_ago(0.5))

    (pod,) = (p for p in host.discovery().process_trees(set()) if p.name == "bash-500")

    assert [(c.name, c.pids) for c in pod.containers] == [
        ("bash", (500, 503)),
        ("make", (501, 502)),
    ]


def test_a_process_becomes_a_container_of_its_own_once_it_has_run_a_minute(
    host: FakeHost,
) -> None:
    host.process(1, "systemd", ppid=0, start_ticks=1)
    host.process(500, "bash", ppid=1, start_ticks=ticks_ago(3_000))
    host.process(501, "postgres", ppid=500, start_ticks=ticks_ago(30))
    discovery = host.discovery()

    def containers() -> list[str]:
        (pod,) = (p for p in discovery.process_trees(set()) if p.name == "bash-500")
        return [c.name for c in pod.containers]

    assert containers() == ["bash"]
    host.set_uptime(UPTIME + 30)
    assert containers() == ["bash", "postgres"]


@pytest.mark.parametrize(
    ("comm", "exe", "argv", "name"),
    [
        pytest.param("3", "/memfd:app (deleted)", ("/app/agent", "-v"), "agent", id="fexecve"),
        pytest.param(
            "memfd:sealed-91",
            "/memfd:sealed-91 (deleted)",
            ("tools/backend",),
            "backend",
            id="memfd-comm",
        ),
        pytest.param("5", "/memfd:x (deleted)", ("-zsh",), "zsh", id="login-shell"),
        pytest.param("4", "/memfd:x (deleted)", ("sshd: root@pts/0",), "sshd", id="proctitle"),
        pytest.param(
            "sshd", "/usr/sbin/sshd (deleted)", ("sshd: root@pts/0",), "sshd", id="upgraded"
        ),
        pytest.param("7", "/memfd:x (deleted)", (), "7", id="nothing-better"),
        pytest.param("nginx", "/usr/sbin/nginx", ("nginx: master",), "nginx", id="plain"),
    ],
)
def test_trees_are_named_after_the_program_a_person_knows(
    host: FakeHost, comm: str, exe: str, argv: tuple[str, ...], name: str
) -> None:
    host.process(1, "systemd", ppid=0, start_ticks=1)
    host.process(700, comm, ppid=1, start_ticks=ticks_ago(600), exe=exe, argv=argv)
    discovery = host.discovery()

    first = [p.name for p in discovery.process_trees(set()) if p.name.endswith("-700")]
    second = [p.name for p in discovery.process_trees(set()) if p.name.endswith("-700")]

    assert first == second == [f"{name}-700"]


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


WEB_CGROUP = f"/{CGROUPFS.container(hexid('web'))}"


@pytest.mark.parametrize(
    ("memory", "systemd", "in_host_trees"),
    [
        pytest.param(WEB_CGROUP, "/", False, id="memory-cgroup-of-a-kubepods-container"),
        pytest.param(f"/{CGROUPFS.pod_dir}", "/", False, id="memory-cgroup-of-a-kubepods-pod"),
        pytest.param(
            "/system.slice/containerd.service",
            "/system.slice/containerd.service",
            False,
            id="memory-cgroup-of-a-systemd-unit",
        ),
        pytest.param("/user.slice", WEB_CGROUP, True, id="only-the-memory-line-counts"),
        pytest.param("/kubepods/burstable", "/", True, id="a-qos-class-is-not-a-workload"),
        pytest.param("/", "/", True, id="root-cgroup"),
    ],
)
def test_v1_workload_processes_stay_out_of_host_process_trees(
    tmp_path: Path, memory: str, systemd: str, in_host_trees: bool
) -> None:
    host = FakeHost(tmp_path, version=1)
    make_kube_pod(host, CGROUPFS, pid_base=400, metadata=True)
    make_units(host)
    host.cgroup("init.scope")
    host.process(1, "systemd", "init.scope", ppid=0, start_ticks=1)
    host.process(900, "stray", memory, cgroup_file=v1_cgroup_file(memory, systemd))

    pods = host.discovery().pods()

    trees = {p.name: p for p in pods if p.namespace == HOST_NAMESPACE}
    tree_pids = {pid for p in trees.values() for c in p.containers for pid in c.pids}
    assert ("stray-900" in trees) is in_host_trees
    assert (900 in tree_pids) is in_host_trees
    # Every process of the pod and of the units, written the v1 way too, stays out.
    assert tree_pids - {900} == {1}


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
