"""-o patch is taken as it is by the real kubectl (1.32): `kubectl patch --local --type
strategic`, `kubectl patch --dry-run=client` against the cluster (the fake API), and a
kustomize `patches:` entry (kubectl kustomize)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tests.fakeapi.fixtures import kubectl
from tests.fakeapi.server import FakeKubeAPI
from tests.recommend.cluster import NS, history_rows, shop
from tests.recommend.support import recommend, write_history


def containers(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj["spec"]["template"]["spec"]
    return {c["name"]: c.get("resources") for c in spec["containers"]}


def test_patches_apply_with_kubectl_patch_local_and_dry_run_and_kustomize_as_printed(
    tmp_path: Path, fake_api: FakeKubeAPI, fake_kubeconfig: Path
) -> None:
    deployment = shop(fake_api)
    history = write_history(tmp_path / "h.db", history_rows())
    found = recommend(
        "--history", str(history), "--kubeconfig", str(fake_kubeconfig), "-n", NS, "-o", "json"
    )
    assert found.returncode == 0, found.stderr
    web = next(i for i in json.loads(found.stdout)["items"] if i["workload"]["name"] == "web")
    out = recommend(
        "--history", str(history), "--kubeconfig", str(fake_kubeconfig), "-n", NS, "-o", "patch"
    )
    assert out.returncode == 0, out.stderr
    assert "pod/debug: a Pod's resources are set through its controller" in out.stderr
    patches = {d["kind"]: d for d in yaml.safe_load_all(out.stdout)}
    assert set(patches) == {"Deployment", "StatefulSet"}

    target = tmp_path / "deployment.yaml"
    target.write_text(yaml.safe_dump(deployment))
    patched = kubectl(
        fake_kubeconfig,
        "patch",
        "--local",
        "-f",
        str(target),
        "--type",
        "strategic",
        "-p",
        json.dumps(patches["Deployment"]),
        "-o",
        "yaml",
    )
    assert patched.returncode == 0, patched.stderr
    want = web["recommended"]["requests"]
    resources = containers(yaml.safe_load(patched.stdout))["app"]
    assert resources["requests"] == want
    # simple: memory limit = request, and the CPU limit the Deployment had is removed.
    assert resources["limits"] == {"memory": want["memory"]}

    # Against the cluster (the fake API): kubectl reads the object and patches it client-side.
    (tmp_path / "db.json").write_text(json.dumps(patches["StatefulSet"]))
    (tmp_path / "web.json").write_text(json.dumps(patches["Deployment"]))
    dry: dict[str, dict[str, Any]] = {}
    for kind, name, patch_file in (
        ("deployment", "web", tmp_path / "web.json"),
        ("statefulset", "db", tmp_path / "db.json"),
    ):
        out_dry = kubectl(
            fake_kubeconfig,
            "patch",
            kind,
            name,
            "-n",
            NS,
            "--type",
            "strategic",
            "--patch-file",
            str(patch_file),
            "--dry-run=client",
            "-o",
            "yaml",
        )
        assert out_dry.returncode == 0, out_dry.stderr
        dry[kind] = yaml.safe_load(out_dry.stdout)
    assert containers(dry["deployment"])["app"] == resources
    db = next(i for i in json.loads(found.stdout)["items"] if i["workload"]["name"] == "db")
    assert containers(dry["statefulset"])["postgres"]["requests"] == db["recommended"]["requests"]

    # The same patch as a kustomize `patches:` entry.
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump({"resources": ["deployment.yaml"], "patches": [{"path": "patch.yaml"}]})
    )
    (tmp_path / "patch.yaml").write_text(yaml.safe_dump(patches["Deployment"]))
    built = kubectl(fake_kubeconfig, "kustomize", str(tmp_path))
    assert built.returncode == 0, built.stderr
    assert containers(yaml.safe_load(built.stdout))["app"] == resources
