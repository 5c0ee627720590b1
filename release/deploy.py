"""`python -m release.deploy` (`make deploy`): deploy/ from `kubepulse manifests`.

deploy/base holds exactly what `kubepulse manifests` prints (deploy/ itself is that
base, for `kubectl apply -k deploy/`), and deploy/overlays/ha turns it into what
`kubepulse manifests --ha` prints: the objects only --ha has, as resources, and a JSON
patch (RFC 6902) per object --ha changes, replacing each top-level field that differs.
An overlay cannot live inside the base it names (kustomize refuses the cycle), hence
base/ beside overlays/. Both are written from the
command's output, so a change to the manifests shows as a stale deploy/ (the tests
compare them) until this is run again.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
HEADER = "# Made by `make deploy` (python -m release.deploy) from `kubepulse manifests`.\n"
KUSTOMIZATION = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization"}

Object = dict[str, Any]
Key = tuple[str, str, str]  # kind, namespace, name


def manifests(*args: str, output: str = "json") -> str:
    """`kubepulse manifests ARGS -o OUTPUT`, from this checkout."""
    done = subprocess.run(
        [sys.executable, "-m", "kubepulse", "manifests", "-o", output, *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def objects(*args: str) -> list[Object]:
    items: list[Object] = json.loads(manifests(*args))["items"]
    return items


def key(obj: Object) -> Key:
    meta = obj["metadata"]
    return obj["kind"], meta.get("namespace", ""), meta["name"]


def _dump(doc: Any) -> str:
    return yaml.safe_dump(doc, sort_keys=False)


def _patch(base: Object, ha: Object) -> tuple[Object, list[Object]]:
    group_version = ha["apiVersion"].split("/")
    group, version = group_version if len(group_version) == 2 else ("", group_version[0])
    kind, namespace, name = key(ha)
    target = {"group": group, "version": version, "kind": kind, "name": name}
    if namespace:
        target["namespace"] = namespace
    ops = [
        {"op": "replace" if field in base else "add", "path": f"/{field}", "value": ha[field]}
        for field in ha
        if base.get(field) != ha[field]
    ] + [{"op": "remove", "path": f"/{field}"} for field in base if field not in ha]
    return target, ops


def files() -> dict[str, str]:
    """Path under deploy/ -> contents."""
    base = {key(o): o for o in objects()}
    ha = {key(o): o for o in objects("--ha")}
    if missing := sorted(set(base) - set(ha)):
        raise ValueError(f"--ha drops objects the base has, which an overlay cannot: {missing}")
    added = [o for k, o in ha.items() if k not in base]
    out: dict[str, str] = {}
    patches = []
    for k, obj in ha.items():
        if k in base and base[k] != obj:
            target, ops = _patch(base[k], obj)
            name = f"{k[0].lower()}-{k[2]}.patch.yaml"
            out[f"overlays/ha/{name}"] = HEADER + _dump(ops)
            patches.append({"path": name, "target": target})
    overlay = {**KUSTOMIZATION, "resources": ["../../base", "ha.yaml"], "patches": patches}
    return {
        "kustomization.yaml": HEADER + _dump({**KUSTOMIZATION, "resources": ["base"]}),
        "base/components.yaml": manifests(output="yaml"),
        "base/kustomization.yaml": HEADER
        + _dump({**KUSTOMIZATION, "resources": ["components.yaml"]}),
        "overlays/ha/ha.yaml": HEADER + yaml.safe_dump_all(added, sort_keys=False),
        "overlays/ha/kustomization.yaml": HEADER + _dump(overlay),
        **out,
    }


def write(root: Path = DEPLOY) -> list[Path]:
    written = []
    for name, text in files().items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write():
        print(path.relative_to(REPO))
