"""`kubepulse top` and kubectl 1.32 against the same server: the same bytes, the same exit."""

from __future__ import annotations

import copy
import datetime as dt
import io
import itertools
import json
import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from kubepulse.kube.inventory import StaticInventory
from kubepulse.kube.objects import node_from_object, pod_from_object
from tests.api.conftest import NODE_OBJECTS, POD_OBJECTS, filled_store
from tests.support import KUBECTL, KUBEPULSE, free_port
from tests.top.conftest import Cluster, cluster_app, serve

CASES = [
    ["node"],
    ["nodes"],
    ["no"],
    ["nodes", "--no-headers"],
    ["nodes", "--sort-by=cpu"],
    ["nodes", "--sort-by=memory"],
    ["nodes", "--show-capacity"],
    ["node", "node-a"],
    ["node", "node-b", "--show-capacity", "--no-headers"],
    ["nodes", "-l", "topology.kubernetes.io/zone=zone-b"],
    ["nodes", "-l", "topology.kubernetes.io/zone=zone-a"],
    ["nodes", "--selector", "topology.kubernetes.io/zone in (zone-a,zone-b)"],
    ["node", "node-c"],
    ["node", "ghost"],
    ["nodes", "-l", "nothing=here"],
    ["nodes", "--sort-by=name"],
    ["node", "node-a", "-l", "a=b"],
    ["pod"],
    ["pods", "-n", "kube-system"],
    ["po", "-A"],
    ["pods", "-A", "--containers"],
    ["pods", "--containers"],
    ["pods", "-A", "--sum"],
    ["pods", "--sum"],
    ["pods", "-A", "--containers", "--sum"],
    ["pods", "-A", "--sort-by=cpu"],
    ["pods", "-A", "--sort-by=memory"],
    ["pods", "-A", "--containers", "--sort-by=memory"],
    ["pods", "-A", "--no-headers"],
    ["pods", "-A", "-l", "app=web"],
    ["pods", "-A", "-l", "k8s-app=kube-dns"],
    ["pods", "-A", "--field-selector", "metadata.name=web-1"],
    ["pods", "-A", "--field-selector", "metadata.namespace=kube-system"],
    ["pod", "web-1"],
    ["pod", "web-1", "--containers"],
    ["pod", "web-1", "-n", "default", "--no-headers"],
    ["pod", "web-1", "-l", "app=web"],
    ["pod", "ghost"],
    ["pods", "-n", "empty"],
    ["pods", "-A", "-l", "app=nothing"],
    ["pods", "--sort-by=cpu-util"],
    ["pods", "-A", "-l", "app in web"],
    # Flags of the other form, unknown flags and missing values: kubectl's words.
    ["node", "--containers"],
    ["nodes", "-A"],
    ["nodes", "--sum"],
    ["nodes", "--field-selector", "metadata.name=node-a"],
    ["pods", "--show-capacity"],
    ["pods", "--bogus"],
    ["pods", "-Ax"],
    ["nodes", "--sort-by"],
    ["pods", "-l"],
    ["nodes", "node-a", "node-b"],
    ["pods", "web-1", "web-2"],
    # Boolean flags with a value, as pflag takes them (strconv.ParseBool).
    ["pods", "--no-headers=true"],
    ["pods", "-A", "--sum=false"],
    ["nodes", "--show-capacity=1"],
    ["pods", "-A=true", "--containers=T"],
    ["pods", "--no-headers=maybe"],
    ["pods", "-A=x"],
]


def _subsets(flags: list[str]) -> Iterator[list[str]]:
    for n in range(len(flags) + 1):
        for chosen in itertools.combinations(flags, n):
            yield list(chosen)


SORTS: list[list[str]] = [[], ["--sort-by=cpu"], ["--sort-by=memory"]]
# Every combination of top pod's flags, and of top node's: scope, selection, the
# switches and the sort.
COMBINATIONS = [
    [*scope, *selection, *switches, *sort]
    for scope in ([], ["-A"], ["-n", "kube-system"])
    for selection in (
        [],
        ["-l", "app=web"],
        ["--field-selector", "metadata.name=web-1"],
        ["-l", "app=web", "--field-selector", "metadata.namespace=default"],
    )
    for switches in _subsets(["--containers", "--sum", "--no-headers"])
    for sort in SORTS
]
COMBINATIONS = [["pods", *c] for c in COMBINATIONS] + [
    ["nodes", *named, *switches, *sort]
    for named in ([], ["node-a"], ["node-c"], ["-l", "topology.kubernetes.io/zone=zone-a"])
    for switches in _subsets(["--show-capacity", "--no-headers"])
    for sort in SORTS
]


def run(cluster: Cluster, command: list[str], args: list[str]) -> tuple[int, str, str]:
    result = subprocess.run(
        [*command, "--kubeconfig", str(cluster.kubeconfig), "top", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.returncode, result.stdout, result.stderr


def kubectl(cluster: Cluster, args: list[str]) -> tuple[int, str, str]:
    return run(cluster, [KUBECTL], args)


def kubepulse(cluster: Cluster, args: list[str]) -> tuple[int, str, str]:
    # kubepulse takes --kubeconfig after the subcommand, as any flag.
    result = subprocess.run(
        [*KUBEPULSE, "top", *args, "--kubeconfig", str(cluster.kubeconfig)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.returncode, result.stdout, result.stderr


def in_process(cluster: Cluster, args: list[str]) -> tuple[int, str, str]:
    """kubepulse top through its main(), without a new interpreter for each of hundreds."""
    from kubepulse.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(["top", *args, "--kubeconfig", str(cluster.kubeconfig)])
        except SystemExit as exit:
            code = int(exit.code or 0)
    return code, out.getvalue(), err.getvalue()


def assert_same(got: tuple[int, str, str], want: tuple[int, str, str]) -> None:
    assert got[1] == want[1], "stdout differs"
    assert got[0] == want[0], f"exit codes {got[0]} vs {want[0]}: {got[2]}"
    if "\nSee 'kubectl" in want[2]:
        # A usage error: kubectl adds a line pointing at its own help; kubepulse says
        # the same first line and nothing more.
        assert got[2] == want[2].splitlines(keepends=True)[0], "stderr differs"
    else:
        assert got[2] == want[2], "stderr differs"
    assert "Traceback" not in got[2]


@pytest.mark.parametrize("args", CASES, ids=[" ".join(c) for c in CASES])
def test_same_output_as_kubectl(cluster: Cluster, args: list[str]) -> None:
    assert_same(in_process(cluster, args), kubectl(cluster, args))


# The installed command itself, from its own interpreter: output, usage errors, exits.
COMMAND_LINE_CASES = [
    ["pods", "-A", "--containers", "--sum"],
    ["nodes", "--show-capacity"],
    ["node", "ghost"],
    ["pods", "--sort-by=cpu-util"],
    ["nodes", "--sum"],
]


@pytest.mark.parametrize("args", COMMAND_LINE_CASES, ids=[" ".join(c) for c in COMMAND_LINE_CASES])
def test_the_command_line_matches_kubectl(cluster: Cluster, args: list[str]) -> None:
    assert_same(kubepulse(cluster, args), kubectl(cluster, args))


@pytest.mark.parametrize("args", COMBINATIONS, ids=[" ".join(c) for c in COMBINATIONS])
def test_every_flag_combination_matches_kubectl(cluster: Cluster, args: list[str]) -> None:
    assert_same(in_process(cluster, args), kubectl(cluster, args))


def test_the_comparisons_run_kubectl_1_32() -> None:
    out = subprocess.run(
        [KUBECTL, "version", "--client", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert json.loads(out)["clientVersion"]["minor"] == "32"


AGE = re.compile(r"age: [0-9hms.]+")


def test_metrics_not_available_yet(cold_cluster: Cluster) -> None:
    want = kubectl(cold_cluster, ["nodes"])
    assert (
        kubepulse(cold_cluster, ["nodes"]) == want == (1, "", "error: metrics not available yet\n")
    )


@pytest.mark.parametrize("args", [["pods", "-A"], ["pods"], ["pods", "-l", "app=web"]])
def test_pods_without_metrics_are_explained(cold_cluster: Cluster, args: list[str]) -> None:
    want = kubectl(cold_cluster, args)
    got = kubepulse(cold_cluster, args)
    assert got[:2] == want[:2]
    assert want[0] == 1
    # The age runs on between the two commands: compare everything but its digits.
    assert AGE.sub("age: X", got[2]) == AGE.sub("age: X", want[2])
    assert "Metrics not available for pod default/web-1, age: " in got[2]


def test_old_pod_without_metrics_names_it_with_its_age(cold_cluster: Cluster) -> None:
    want = kubectl(cold_cluster, ["pod", "web-2"])
    got = kubepulse(cold_cluster, ["pod", "web-2"])
    assert got[0] == want[0] == 1
    assert got[1] == want[1] == ""
    assert AGE.sub("age: X", got[2]) == AGE.sub("age: X", want[2])


@pytest.mark.parametrize("args", [["nodes"], ["pods", "-A"]])
def test_metrics_api_not_available(no_metrics_api: Cluster, args: list[str]) -> None:
    want = kubectl(no_metrics_api, args)
    got = kubepulse(no_metrics_api, args)
    assert got == want
    assert want == (1, "", "error: Metrics API not available\n")


@pytest.fixture(scope="module")
def namespaced_kubeconfig(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    """The same cluster, through a kubeconfig whose contexts carry namespaces."""
    import yaml

    config = yaml.safe_load(cluster.kubeconfig.read_text())
    context = config["contexts"][0]
    context["context"]["namespace"] = "kube-system"
    config["contexts"].append(
        {"name": "web", "context": {**context["context"], "namespace": "default"}}
    )
    path = tmp_path_factory.mktemp("ns") / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return Cluster(path, cluster.port)


@pytest.mark.parametrize(
    "args",
    [
        ["pods"],
        ["pods", "--context", "web"],
        ["pods", "-n", "default"],
        ["pod", "web-1", "--context", "web"],
    ],
    ids=["context-namespace", "other-context", "flag-beats-context", "name-in-context"],
)
def test_namespace_comes_from_the_context(namespaced_kubeconfig: Cluster, args: list[str]) -> None:
    want = kubectl(namespaced_kubeconfig, args)
    assert kubepulse(namespaced_kubeconfig, args) == want
    assert want[0] == 0 and want[1]


def test_kubeconfig_from_the_environment(cluster: Cluster) -> None:
    env = {**os.environ, "KUBECONFIG": f"/nonexistent:{cluster.kubeconfig}"}
    want = subprocess.run(
        [KUBECTL, "top", "nodes"], capture_output=True, text=True, env=env, timeout=60
    )
    got = subprocess.run(
        [*KUBEPULSE, "top", "nodes"], capture_output=True, text=True, env=env, timeout=60
    )
    assert (got.returncode, got.stdout, got.stderr) == (want.returncode, want.stdout, want.stderr)
    assert "node-a" in got.stdout


@pytest.fixture(scope="module")
def young_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Pods created a moment ago, with no metrics yet: kubectl's "not available yet" case."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    pods = copy.deepcopy(POD_OBJECTS)
    for pod in pods:
        pod["metadata"]["creationTimestamp"] = now
    inv = StaticInventory(
        [node_from_object(n) for n in NODE_OBJECTS], [pod_from_object(p) for p in pods]
    )
    yield from serve(tmp_path_factory.mktemp("young"), cluster_app(filled_store(scrapes=1), inv))


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["pods"], "error: metrics not available yet\n"),
        (["pods", "-A"], "error: metrics not available yet\n"),
        # By name, the server's 404 is the answer.
        (
            ["pod", "web-1"],
            'Error from server (NotFound): pods.metrics.k8s.io "default/web-1" not found\n',
        ),
    ],
)
def test_young_pods_without_metrics_are_not_available_yet(
    young_cluster: Cluster, args: list[str], error: str
) -> None:
    want = kubectl(young_cluster, args)
    assert want == (1, "", error)
    assert_same(kubepulse(young_cluster, args), want)


@pytest.fixture(scope="module")
def unreachable(tmp_path_factory: pytest.TempPathFactory, cluster: Cluster) -> Cluster:
    """The cluster's kubeconfig pointed at a loopback port nothing listens on."""
    port = free_port()
    text = cluster.kubeconfig.read_text().replace(f":{cluster.port}", f":{port}")
    path = tmp_path_factory.mktemp("unreachable") / "kubeconfig"
    path.write_text(text)
    return Cluster(path, port)


@pytest.mark.parametrize(
    ("fixture", "args"),
    [
        ("cluster", ["nodes", "--context", "nowhere"]),
        ("cluster", ["pods", "-l", "=="]),
        ("cluster", ["pods", "--field-selector", "metadata.name"]),
        ("unreachable", ["nodes"]),
        ("unreachable", ["pods", "-A"]),
    ],
    ids=[
        "unknown-context",
        "bad-label-selector",
        "bad-field-selector",
        "closed-port-nodes",
        "closed-port-pods",
    ],
)
def test_errors_before_any_answer_match_kubectl(
    request: pytest.FixtureRequest, fixture: str, args: list[str]
) -> None:
    target: Cluster = request.getfixturevalue(fixture)
    want = kubectl(target, args)
    assert want[0] == 1 and want[2].startswith(("error: ", "The connection")), want
    assert_same(kubepulse(target, args), want)


def test_kubeconfig_files_merge_as_kubectl_merges_them(cluster: Cluster, tmp_path: Path) -> None:
    """KUBECONFIG=contexts:cluster: the first file names the context and its namespace,
    the second holds the cluster and the user it refers to; the first value set wins."""
    import yaml

    config = yaml.safe_load(cluster.kubeconfig.read_text())
    context = config["contexts"][0]["context"]
    first = tmp_path / "contexts"
    first.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "system",
                "contexts": [
                    {"name": "system", "context": {**context, "namespace": "kube-system"}}
                ],
            }
        )
    )
    env = {**os.environ, "KUBECONFIG": f"{first}:{cluster.kubeconfig}"}
    for args in (["pods"], ["pods", "--containers"], ["nodes"]):
        want = subprocess.run(
            [KUBECTL, "top", *args], capture_output=True, text=True, env=env, timeout=60
        )
        got = subprocess.run(
            [*KUBEPULSE, "top", *args], capture_output=True, text=True, env=env, timeout=60
        )
        assert (got.returncode, got.stdout, got.stderr) == (
            want.returncode,
            want.stdout,
            want.stderr,
        )
        assert want.returncode == 0 and want.stdout
    assert "coredns" in got.stdout or "node-a" in got.stdout
