"""`kubepulse manifests`: every object valid for the Kubernetes API, the server flags
valid for `kubepulse server`, and the command's output, warnings and refusals."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml
from kubernetes.client import ApiClient

from kubepulse.cli import main
from kubepulse.kube import manifests
from kubepulse.kube.manifests import ManifestError, Options
from tests.support import KUBECTL, KUBEPULSE

# The official client's model for each (apiVersion, kind) the command emits.
MODELS = {
    ("v1", "Namespace"): "V1Namespace",
    ("v1", "ServiceAccount"): "V1ServiceAccount",
    ("v1", "Service"): "V1Service",
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): "V1ClusterRole",
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): "V1ClusterRoleBinding",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "V1RoleBinding",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("policy/v1", "PodDisruptionBudget"): "V1PodDisruptionBudget",
    ("apiregistration.k8s.io/v1", "APIService"): "V1APIService",
}

CA_PEM = trustme.CA().cert_pem.bytes()

OPTION_SETS = {
    "default": Options(),
    "ha": Options(ha=True),
    "ca-bundle": Options(ca_bundle=CA_PEM, tls_secret="kubepulse-tls"),
    "insecure": Options(insecure_skip_tls_verify=True),
    "namespace": Options(namespace="monitoring", nodes=5000),
}


@pytest.fixture(scope="module")
def api() -> Iterator[ApiClient]:
    client = ApiClient()
    yield client
    client.close()


def round_trip(api: ApiClient, obj: dict[str, Any]) -> Any:
    """The object as the client's model reads and writes it back.

    The model keeps only the fields the API schema has (and checks required ones), so
    a misspelt or misplaced field is missing from the result.
    """
    model = MODELS[obj["apiVersion"], obj["kind"]]
    return api.sanitize_for_serialization(api._ApiClient__deserialize(obj, model))  # type: ignore[attr-defined]


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = (o for o in objects if o["kind"] == kind)
    return found


def container(opts: Options) -> dict[str, Any]:
    spec = manifests.deployment(opts)["spec"]["template"]["spec"]
    (only,) = spec["containers"]
    return dict(only)


@pytest.mark.parametrize("name", OPTION_SETS)
def test_every_object_survives_its_kubernetes_model_unchanged(api: ApiClient, name: str) -> None:
    for obj in manifests.components(OPTION_SETS[name]):
        assert round_trip(api, obj) == obj, f"{obj['kind']} {obj['metadata']['name']}"


@pytest.mark.parametrize(
    ("build", "path", "field"),
    [
        (manifests.deployment, ["spec"], "replica"),
        (manifests.deployment, ["spec", "template", "spec"], "priorityClass"),
        (manifests.service, ["spec", "ports", 0], "target_port"),
        (manifests.api_service, ["spec"], "caBundel"),
        (lambda _: manifests.server_role(), ["rules", 0], "verb"),
    ],
)
def test_schema_check_catches_a_misspelt_field(
    api: ApiClient, build: Any, path: list[str | int], field: str
) -> None:
    obj = build(Options())
    parent = obj
    for key in path:
        parent = parent[key]
    parent[field] = "x"
    assert round_trip(api, obj) != obj


def test_schema_check_catches_a_missing_required_field(api: ApiClient) -> None:
    deployment = manifests.deployment(Options())
    del deployment["spec"]["selector"]
    with pytest.raises(ValueError, match="selector"):
        round_trip(api, deployment)


def test_components_are_upstreams_objects_under_kubepulses_names() -> None:
    got = [(o["kind"], o["metadata"]["name"]) for o in manifests.components(Options())]
    assert got == [
        ("ServiceAccount", "kubepulse"),
        ("ClusterRole", "system:aggregated-metrics-reader"),
        ("ClusterRole", "system:kubepulse"),
        ("RoleBinding", "kubepulse-auth-reader"),
        ("ClusterRoleBinding", "kubepulse:system:auth-delegator"),
        ("ClusterRoleBinding", "system:kubepulse"),
        ("Service", "kubepulse"),
        ("Deployment", "kubepulse"),
        ("APIService", "v1beta1.metrics.k8s.io"),
    ]


def test_rbac_grants_what_metrics_server_is_granted() -> None:
    reader = manifests.aggregated_metrics_reader()
    labels = reader["metadata"]["labels"]
    for role in ("view", "edit", "admin"):
        assert labels[f"rbac.authorization.k8s.io/aggregate-to-{role}"] == "true"
    assert reader["rules"] == [
        {
            "apiGroups": ["metrics.k8s.io"],
            "resources": ["pods", "nodes"],
            "verbs": ["get", "list", "watch"],
        }
    ]
    rules = {
        (res, verb)
        for rule in manifests.server_role()["rules"]
        for res in rule["resources"]
        for verb in rule["verbs"]
    }
    assert rules == {("nodes/metrics", "get")} | {
        (res, verb) for res in ("pods", "nodes") for verb in ("get", "list", "watch")
    }
    roles = {
        o["metadata"]["name"]: o["roleRef"]["name"]
        for o in manifests.components(Options())
        if "roleRef" in o
    }
    assert roles == {
        "kubepulse-auth-reader": "extension-apiserver-authentication-reader",
        "kubepulse:system:auth-delegator": "system:auth-delegator",
        "system:kubepulse": "system:kubepulse",
    }


def test_another_namespace_is_created_and_bound_but_the_auth_reader_stays_in_kube_system() -> None:
    objects = manifests.components(Options(namespace="monitoring"))
    assert objects[0] == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "monitoring"},
    }
    for obj in objects:
        if obj["kind"] in ("ServiceAccount", "Service", "Deployment"):
            assert obj["metadata"]["namespace"] == "monitoring"
        for subject in obj.get("subjects", []):
            assert subject == {
                "kind": "ServiceAccount",
                "name": "kubepulse",
                "namespace": "monitoring",
            }
    assert by_kind(objects, "RoleBinding")["metadata"]["namespace"] == "kube-system"
    assert by_kind(objects, "APIService")["spec"]["service"]["namespace"] == "monitoring"


# The "restricted" Pod Security Standard's container rules, plus a read-only root.
RESTRICTED = [
    ("runAsNonRoot", lambda v: v is True),
    ("runAsUser", lambda v: v == 1000),
    ("allowPrivilegeEscalation", lambda v: v is False),
    ("capabilities", lambda v: v == {"drop": ["ALL"]}),
    ("seccompProfile", lambda v: v == {"type": "RuntimeDefault"}),
    ("readOnlyRootFilesystem", lambda v: v is True),
]


@pytest.mark.parametrize(("field", "rule"), RESTRICTED, ids=[f for f, _ in RESTRICTED])
def test_server_container_meets_the_restricted_pod_security_standard(field: str, rule: Any) -> None:
    for opts in OPTION_SETS.values():
        assert rule(container(opts)["securityContext"].get(field))


def test_server_writes_only_to_its_cert_dir_and_runs_as_cluster_critical() -> None:
    opts = Options()
    c = container(opts)
    pod = manifests.deployment(opts)["spec"]["template"]["spec"]
    assert pod["volumes"] == [{"name": "tmp-dir", "emptyDir": {}}]
    assert c["volumeMounts"] == [{"name": "tmp-dir", "mountPath": "/tmp"}]
    assert "--cert-dir=/tmp" in c["args"]
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert pod["serviceAccountName"] == "kubepulse"


def test_probes_and_service_reach_the_named_https_port() -> None:
    c = container(Options())
    assert c["ports"] == [{"name": "https", "containerPort": 10250, "protocol": "TCP"}]
    for probe, path in ((c["livenessProbe"], "/livez"), (c["readinessProbe"], "/readyz")):
        assert probe["httpGet"] == {"path": path, "port": "https", "scheme": "HTTPS"}
        assert (probe["periodSeconds"], probe["failureThreshold"]) == (10, 3)
    (port,) = manifests.service(Options())["spec"]["ports"]
    assert (port["port"], port["targetPort"], port["appProtocol"]) == (443, "https", "https")
    pod_labels = manifests.deployment(Options())["spec"]["template"]["metadata"]["labels"]
    assert manifests.service(Options())["spec"]["selector"] == pod_labels


def parse_container_args(args: list[str]) -> Any:
    """The container's args as the `kubepulse` command itself parses them."""
    ns = main.build_parser().parse_args(args)
    assert ns.command == "server"
    return ns


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            [],
            {
                "cert_dir": Path("/tmp"),
                "secure_port": 10250,
                "kubelet_preferred_address_types": ("InternalIP", "ExternalIP", "Hostname"),
                "kubelet_use_node_status_port": True,
                "metric_resolution": 15.0,
                "kubelet_insecure_tls": False,
            },
        ),
        (["--kubelet-insecure-tls"], {"kubelet_insecure_tls": True, "secure_port": 10250}),
        (["--metric-resolution=30s"], {"metric_resolution": 30.0}),
        (["--secure-port", "8443"], {"secure_port": 8443}),
        (["-l", "pool=general"], {"node_selector": "pool=general"}),
    ],
)
def test_extra_flags_reach_the_server_and_parse_as_its_flags(
    extra: list[str], expected: dict[str, Any]
) -> None:
    args = manifests.server_args(extra)
    ns = parse_container_args(["server", *args])
    assert {key: getattr(ns, key) for key in expected} == expected
    # A flag given again replaces the default instead of repeating it.
    names = [a.split("=", 1)[0] for a in args if a.startswith("--")]
    assert len(names) == len(set(names))


def test_a_moved_port_or_cert_dir_moves_the_container_port_and_mount(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run_command(capsys, "--", "--secure-port=8443", "--cert-dir=/certs")
    assert code == 0
    c = container_of(yaml_objects(out))
    assert c["ports"][0]["containerPort"] == 8443
    assert c["volumeMounts"] == [{"name": "tmp-dir", "mountPath": "/certs"}]
    assert c["args"].count("--secure-port=8443") == 1
    assert "--secure-port=10250" not in c["args"]


def test_tls_secret_is_mounted_and_given_to_the_server() -> None:
    opts = Options(args=manifests.server_args([], tls_secret=True), tls_secret="kubepulse-tls")
    pod = manifests.deployment(opts)["spec"]["template"]["spec"]
    assert {"name": "tls", "secret": {"secretName": "kubepulse-tls"}} in pod["volumes"]
    c = container(opts)
    assert {"name": "tls", "mountPath": "/etc/kubepulse/tls", "readOnly": True} in c["volumeMounts"]
    ns = parse_container_args(c["args"])
    assert ns.tls_cert_file == Path("/etc/kubepulse/tls/tls.crt")
    assert ns.tls_private_key_file == Path("/etc/kubepulse/tls/tls.key")


@pytest.mark.parametrize(
    ("nodes", "cpu", "memory"),
    [
        (1, "25m", "256Mi"),
        (100, "25m", "256Mi"),
        (101, "26m", "257Mi"),
        (1000, "138m", "490Mi"),  # BENCHMARKS.md measured 104m and 362 MiB here
        (5000, "638m", "1530Mi"),  # and 425-505m and 1,313 MiB here
        (9000, "1000m", "2570Mi"),  # one Python process uses at most one core
    ],
)
def test_requests_scale_with_the_node_count(nodes: int, cpu: str, memory: str) -> None:
    assert manifests.requests(nodes) == {"cpu": cpu, "memory": memory}
    assert container(Options(nodes=nodes))["resources"] == {
        "requests": {"cpu": cpu, "memory": memory}
    }


def test_requests_never_shrink_as_nodes_grow() -> None:
    sizes = [manifests.requests(n) for n in range(1, 6000, 37)]
    cpus = [int(s["cpu"].removesuffix("m")) for s in sizes]
    mems = [int(s["memory"].removesuffix("Mi")) for s in sizes]
    assert cpus == sorted(cpus)
    assert mems == sorted(mems)


@pytest.mark.parametrize("ha", [False, True])
def test_ha_runs_two_replicas_on_two_nodes_with_a_budget(ha: bool) -> None:
    objects = manifests.components(Options(ha=ha))
    spec = by_kind(objects, "Deployment")["spec"]
    assert spec["replicas"] == (2 if ha else 1)
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 1 if ha else 0},
    }
    pdbs = [o for o in objects if o["kind"] == "PodDisruptionBudget"]
    if not ha:
        assert "affinity" not in spec["template"]["spec"]
        assert pdbs == []
        return
    (term,) = spec["template"]["spec"]["affinity"]["podAntiAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"] == spec["template"]["metadata"]["labels"]
    (pdb,) = pdbs
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"] == {"minAvailable": 1, "selector": spec["selector"]}


def test_api_service_registers_metrics_k8s_io_v1beta1() -> None:
    spec = manifests.api_service(Options())["spec"]
    assert spec == {
        "service": {"name": "kubepulse", "namespace": "kube-system", "port": 443},
        "group": "metrics.k8s.io",
        "version": "v1beta1",
        "groupPriorityMinimum": 100,
        "versionPriority": 100,
    }


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"namespace": "Kube_System"}, "invalid namespace"),
        ({"nodes": 0}, "--nodes must be at least 1"),
        ({"image": "a b"}, "invalid image"),
        ({"ca_bundle": CA_PEM, "insecure_skip_tls_verify": True}, "cannot be used together"),
        ({"tls_secret": "Bad_Name"}, "invalid Secret name"),
    ],
)
def test_options_that_cannot_work_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        Options(**options)


# The command.


def run_command(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main.main(["manifests", *argv])
    except SystemExit as exit_:  # argparse's usage errors
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def yaml_objects(out: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(out) if doc is not None]


def container_of(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (c,) = by_kind(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    return dict(c)


def test_output_is_yaml_documents_of_the_components(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_command(capsys)
    assert code == 0
    assert out.splitlines().count("---") == len(manifests.components(Options()))
    assert yaml_objects(out) == manifests.components(Options())
    assert err.startswith("note: the APIService has no caBundle")


def test_json_output_is_a_v1_list(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_command(capsys, "-o", "json", "--ha", "--nodes", "1000")
    assert code == 0
    doc = json.loads(out)
    assert (doc["apiVersion"], doc["kind"]) == ("v1", "List")
    assert doc["items"] == manifests.components(Options(ha=True, nodes=1000))


def test_image_and_namespace_flags_reach_the_objects(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_command(capsys, "--image", "registry.local/kp:dev", "-n", "monitoring")
    assert code == 0
    objects = yaml_objects(out)
    assert container_of(objects)["image"] == "registry.local/kp:dev"
    assert by_kind(objects, "Deployment")["metadata"]["namespace"] == "monitoring"


def test_default_image_is_this_version() -> None:
    from kubepulse import __version__

    assert container(Options())["image"] == f"ghcr.io/kubepulse/kubepulse:{__version__}"


def test_ca_bundle_is_the_base64_of_the_pem(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "ca.crt").write_bytes(CA_PEM)
    code, out, err = run_command(
        capsys, "--ca-bundle", str(tmp_path / "ca.crt"), "--tls-secret", "kubepulse-tls"
    )
    assert code == 0
    spec = by_kind(yaml_objects(out), "APIService")["spec"]
    assert base64.b64decode(spec["caBundle"]) == CA_PEM
    assert "insecureSkipTLSVerify" not in spec
    assert err == ""


def test_ca_bundle_without_a_serving_secret_warns(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "ca.crt").write_bytes(CA_PEM)
    code, _, err = run_command(capsys, "--ca-bundle", str(tmp_path / "ca.crt"))
    assert code == 0
    assert err.startswith("warning: --ca-bundle without --tls-secret")


def test_insecure_skip_tls_verify_is_set_only_on_request_and_warns(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run_command(capsys, "--insecure-skip-tls-verify")
    assert code == 0
    assert by_kind(yaml_objects(out), "APIService")["spec"]["insecureSkipTLSVerify"] is True
    assert err.startswith("warning: --insecure-skip-tls-verify")
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--ca-bundle", "{ca}", "--insecure-skip-tls-verify"],
            "not allowed with argument --ca-bundle",
        ),
        (["-n", "Kube_System"], "invalid namespace"),
        (["--nodes", "0"], "--nodes must be at least 1"),
        (["--nodes", "many"], "invalid int value"),
        (["-o", "xml"], 'output format "xml", allowed formats are: yaml,json'),
        (["--", "--kubelet-insecure-tsl"], "must be flags of kubepulse server"),
        (["--", "--kubelet-insecure"], "must be flags of kubepulse server"),  # no abbreviations
        (["--", "--metric-resolution=fast"], "invalid duration"),
        (
            ["--", "--kubelet-insecure-tls", "--kubelet-certificate-authority=/ca.crt"],
            "cannot use both",
        ),
        (["--ca-bundle", "{missing}"], "cannot read --ca-bundle"),
        (["--ca-bundle", "{not_pem}"], "holds no PEM certificate"),
        (["--tls-secret", "Bad_Name"], "invalid Secret name"),
    ],
)
def test_bad_input_is_one_error_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], message: str
) -> None:
    (tmp_path / "ca.crt").write_bytes(CA_PEM)
    (tmp_path / "not.pem").write_text("hello\n")
    files = {
        "ca": tmp_path / "ca.crt",
        "missing": tmp_path / "no.crt",
        "not_pem": tmp_path / "not.pem",
    }
    code, out, err = run_command(capsys, *(a.format(**files) for a in argv))
    assert code == 1
    assert out == ""
    (line,) = err.splitlines()
    assert line.startswith("error: ")
    assert message in line


def test_the_installed_command_refuses_both_trust_flags_without_a_traceback(
    tmp_path: Path,
) -> None:
    (tmp_path / "ca.crt").write_bytes(CA_PEM)
    proc = subprocess.run(
        [
            *KUBEPULSE,
            "manifests",
            "--insecure-skip-tls-verify",
            "--ca-bundle",
            str(tmp_path / "ca.crt"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.splitlines()) == 1


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not on PATH")
def test_kubectl_reads_the_output_as_a_kustomize_base(tmp_path: Path) -> None:
    # kubectl's create/apply --dry-run=client needs a server for discovery; kustomize
    # does not, and it is how users patch components.yaml.
    proc = subprocess.run(
        [*KUBEPULSE, "manifests", "--ha"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    (tmp_path / "components.yaml").write_text(proc.stdout)
    (tmp_path / "kustomization.yaml").write_text("resources:\n- components.yaml\n")
    built = subprocess.run(
        [KUBECTL, "kustomize", str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert built.returncode == 0, built.stderr

    def key(o: dict[str, Any]) -> tuple[str, str]:
        return o["kind"], o["metadata"]["name"]

    assert sorted(yaml_objects(built.stdout), key=key) == sorted(yaml_objects(proc.stdout), key=key)
