"""deploy/: the kustomize base and ha overlay are `kubepulse manifests`, object for object."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from release import deploy
from tests.fakeapi import objects
from tests.fakeapi.fixtures import kubectl
from tests.support import KUBECTL

# The kinds the manifests create that the fake's discovery does not list otherwise, as
# kube-apiserver v1.32 lists them: kubectl maps each object to its resource by discovery.
RW = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
INSTALLED_KINDS = {
    "v1": [
        (("serviceaccounts", "ServiceAccount", True, "serviceaccount", ["sa"], []), RW),
        (("services", "Service", True, "service", ["svc"], ["all"]), RW),
    ],
    "rbac.authorization.k8s.io/v1": [
        (("clusterrolebindings", "ClusterRoleBinding", False, "clusterrolebinding", [], []), RW),
        (("clusterroles", "ClusterRole", False, "clusterrole", [], []), RW),
        (("rolebindings", "RoleBinding", True, "rolebinding", [], []), RW),
    ],
    "policy/v1": [
        (
            (
                "poddisruptionbudgets",
                "PodDisruptionBudget",
                True,
                "poddisruptionbudget",
                ["pdb"],
                [],
            ),
            RW,
        ),
    ],
    "apiregistration.k8s.io/v1": [
        (("apiservices", "APIService", False, "apiservice", [], ["api-extensions"]), RW),
    ],
}


def test_deploy_is_what_make_deploy_writes_now() -> None:
    """A stale deploy/ (the manifests changed, `make deploy` not run) fails here."""
    wanted = deploy.files()
    on_disk = {
        p.relative_to(deploy.DEPLOY).as_posix(): p.read_text()
        for p in deploy.DEPLOY.rglob("*")
        if p.is_file()
    }
    assert sorted(on_disk) == sorted(wanted), "run `make deploy`"
    for name, text in wanted.items():
        assert on_disk[name] == text, f"deploy/{name} is stale: run `make deploy`"


def kustomize(path: Path) -> dict[deploy.Key, Any]:
    done = subprocess.run(
        [KUBECTL, "kustomize", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return {deploy.key(o): o for o in yaml.safe_load_all(done.stdout) if o}


@pytest.mark.parametrize(
    ("directory", "flags"), [("", ()), ("overlays/ha", ("--ha",))], ids=["base", "ha"]
)
def test_kustomize_builds_the_objects_kubepulse_manifests_prints(
    directory: str, flags: tuple[str, ...]
) -> None:
    built = kustomize(deploy.DEPLOY / directory)
    printed = {deploy.key(o): o for o in deploy.objects(*flags)}
    assert sorted(built) == sorted(printed)
    for key, obj in printed.items():
        assert built[key] == obj, key
    kinds = {kind for kind, _, _ in built}
    assert ("PodDisruptionBudget" in kinds) == bool(flags)


def test_the_overlay_patches_only_what_ha_changes(tmp_path: Path) -> None:
    written = deploy.write(tmp_path)
    names = sorted(p.relative_to(tmp_path).as_posix() for p in written)
    assert names == [
        "base/components.yaml",
        "base/kustomization.yaml",
        "kustomization.yaml",
        "overlays/ha/deployment-kubepulse.patch.yaml",
        "overlays/ha/ha.yaml",
        "overlays/ha/kustomization.yaml",
    ]
    ops = yaml.safe_load((tmp_path / "overlays/ha/deployment-kubepulse.patch.yaml").read_text())
    assert [(op["op"], op["path"]) for op in ops] == [("replace", "/spec")]
    assert ops[0]["value"]["replicas"] == 2
    added = list(yaml.safe_load_all((tmp_path / "overlays/ha/ha.yaml").read_text()))
    assert [o["kind"] for o in added] == ["PodDisruptionBudget"]


@pytest.mark.parametrize("directory", ["", "overlays/ha"], ids=["base", "ha"])
def test_kubectl_apply_dry_run_accepts_every_object_of_the_kustomization(
    directory: str, fake_kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for group_version, resources in INSTALLED_KINDS.items():
        monkeypatch.setitem(
            objects.GROUPS, group_version, [*objects.GROUPS.get(group_version, []), *resources]
        )
    printed = kustomize(deploy.DEPLOY / directory)
    # --validate=false: the fake serves no OpenAPI document; the objects' schemas are
    # checked against the Kubernetes models in tests/kube/test_manifests.py.
    applied = kubectl(
        fake_kubeconfig, "apply", "--dry-run=client", "--validate=false", "-o", "name",
        "-k", str(deploy.DEPLOY / directory),
    )  # fmt: skip
    assert applied.returncode == 0, applied.stderr
    names = applied.stdout.split()
    assert len(names) == len(printed)
    assert {name.split("/", 1)[1] for name in names} == {name for _, _, name in printed}
