"""deploy/: the kustomize base and ha overlay are `kubepulse manifests`, object for object."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from release import deploy
from tests.support import KUBECTL


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
