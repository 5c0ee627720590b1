"""The OCI archive writer: the same bytes from the same files, readable by skopeo."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from release import oci

CREATED = 1_700_000_000


def config(**changes: object) -> oci.ImageConfig:
    base = oci.ImageConfig(
        reference="ghcr.io/kubepulse/kubepulse:0.1.0",
        created=CREATED,
        entrypoint=("/usr/local/bin/kubepulse",),
        labels={"org.opencontainers.image.version": "0.1.0"},
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def small_rootfs(root: Path, names: list[str], mtime: int) -> Path:
    """A root with files made in the order given, all with one modification time."""
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"contents of {name}\n")
    (root / "usr/bin").mkdir(parents=True, exist_ok=True)
    (root / "usr/bin/python3").symlink_to("python3.11")
    (root / "tmp").mkdir(exist_ok=True)
    (root / "tmp").chmod(0o1777)
    os.mkfifo(root / "fifo")  # not something an image carries
    for path in [root, *root.rglob("*")]:
        os.utime(path, (mtime, mtime), follow_symlinks=False)
    return root


NAMES = ["usr/bin/python3.11", "etc/passwd", "usr/lib/b.py", "usr/lib/a.py"]


def test_the_same_files_made_in_another_order_at_another_time_give_the_same_digest(
    tmp_path: Path,
) -> None:
    one = small_rootfs(tmp_path / "one", NAMES, CREATED + 100)
    two = small_rootfs(tmp_path / "two", list(reversed(NAMES)), CREATED + 999_999)
    (tmp_path / "out1").mkdir()
    (tmp_path / "out2").mkdir()
    a = oci.write_archive(one, config(), tmp_path / "out1/image.tar")
    b = oci.write_archive(two, config(), tmp_path / "out2/image.tar")
    assert a.manifest_digest == b.manifest_digest
    assert (tmp_path / "out1/image.tar").read_bytes() == (tmp_path / "out2/image.tar").read_bytes()


def test_a_changed_file_or_label_changes_the_digest(tmp_path: Path) -> None:
    root = small_rootfs(tmp_path / "root", NAMES, CREATED)
    first = oci.write_archive(root, config(), tmp_path / "a.tar")
    relabelled = oci.write_archive(root, config(labels={"x": "y"}), tmp_path / "b.tar")
    (root / "etc/passwd").write_text("changed\n")
    changed = oci.write_archive(root, config(), tmp_path / "c.tar")
    assert len({first.manifest_digest, relabelled.manifest_digest, changed.manifest_digest}) == 3


def test_layer_entries_are_sorted_root_owned_and_no_newer_than_created(tmp_path: Path) -> None:
    root = small_rootfs(tmp_path / "root", NAMES, CREATED + 5000)
    os.utime(root / "etc/passwd", (CREATED - 10, CREATED - 10))
    oci.write_archive(root, config(), tmp_path / "image.tar")
    image = oci.read_archive(tmp_path / "image.tar")
    (layer,) = image.layers
    with tarfile.open(fileobj=io.BytesIO(layer), mode="r:gz") as tar:
        members = {m.name: m for m in tar.getmembers()}
        names = [m.name for m in tar.getmembers()]
    assert names == [
        "etc", "etc/passwd", "tmp", "usr", "usr/bin", "usr/bin/python3", "usr/bin/python3.11",
        "usr/lib", "usr/lib/a.py", "usr/lib/b.py",
    ]  # fmt: skip
    assert "fifo" not in members
    assert {(m.uid, m.gid, m.uname) for m in members.values()} == {(0, 0, "root")}
    assert members["etc/passwd"].mtime == CREATED - 10  # older times are kept
    assert members["usr/lib/a.py"].mtime == CREATED  # newer ones clamped
    assert members["tmp"].mode == 0o1777
    assert members["usr/bin/python3"].issym()
    assert members["usr/bin/python3"].linkname == "python3.11"


def test_the_archive_is_an_oci_layout_with_docker_manifest_and_names(tmp_path: Path) -> None:
    root = small_rootfs(tmp_path / "root", NAMES, CREATED)
    built = oci.write_archive(root, config(), tmp_path / "image.tar")
    with tarfile.open(tmp_path / "image.tar") as tar:
        layout = json.loads(tar.extractfile("oci-layout").read())  # type: ignore[union-attr]
        index = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
        docker = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        names = set(tar.getnames())
    assert layout == {"imageLayoutVersion": "1.0.0"}
    (entry,) = index["manifests"]
    assert entry["digest"] == built.manifest_digest
    assert entry["annotations"] == {
        "io.containerd.image.name": "ghcr.io/kubepulse/kubepulse:0.1.0",
        "org.opencontainers.image.ref.name": "ghcr.io/kubepulse/kubepulse:0.1.0",
    }
    assert docker[0]["RepoTags"] == ["ghcr.io/kubepulse/kubepulse:0.1.0"]
    assert {docker[0]["Config"], *docker[0]["Layers"]} <= names
    image = oci.read_archive(tmp_path / "image.tar")
    assert image.config["config"]["User"] == "65534:65534"
    assert image.config["config"]["Entrypoint"] == ["/usr/local/bin/kubepulse"]
    assert image.config["config"]["Labels"] == {"org.opencontainers.image.version": "0.1.0"}
    assert image.config["created"] == "2023-11-14T22:13:20Z"
    assert image.manifest["layers"][0]["mediaType"] == oci.MEDIA_LAYER


def test_a_blob_that_does_not_match_its_digest_is_refused(tmp_path: Path) -> None:
    root = small_rootfs(tmp_path / "root", NAMES, CREATED)
    oci.write_archive(root, config(), tmp_path / "image.tar")
    with (
        tarfile.open(tmp_path / "image.tar") as src,
        tarfile.open(tmp_path / "bad.tar", "w") as dst,
    ):
        config_digest = oci.read_archive(tmp_path / "image.tar").manifest["config"]["digest"]
        for member in src.getmembers():
            data = src.extractfile(member) if member.isreg() else None
            if member.name.endswith(config_digest.split(":")[1]):
                body = b'{"forged":true}'
                member.size = len(body)
                data = io.BytesIO(body)
            dst.addfile(member, data)
    with pytest.raises(ValueError, match="does not match its digest"):
        oci.read_archive(tmp_path / "bad.tar")


def test_unpacked_layers_give_back_the_root(tmp_path: Path) -> None:
    root = small_rootfs(tmp_path / "root", NAMES, CREATED)
    oci.write_archive(root, config(), tmp_path / "image.tar")
    oci.unpack(oci.read_archive(tmp_path / "image.tar"), tmp_path / "unpacked")
    assert (tmp_path / "unpacked/usr/lib/a.py").read_text() == "contents of usr/lib/a.py\n"
    assert os.readlink(tmp_path / "unpacked/usr/bin/python3") == "python3.11"


def test_skopeo_reads_the_archive_as_an_oci_image(tmp_path: Path) -> None:
    skopeo = shutil.which("skopeo")
    assert skopeo, "skopeo (Debian package) is needed: make system-deps installs it"
    root = small_rootfs(tmp_path / "root", NAMES, CREATED)
    built = oci.write_archive(root, config(), tmp_path / "image.tar")
    inspected = subprocess.run(
        [skopeo, "inspect", f"oci-archive:{tmp_path / 'image.tar'}"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    info = json.loads(inspected.stdout)
    assert info["Digest"] == built.manifest_digest
    assert info["Labels"] == {"org.opencontainers.image.version": "0.1.0"}
    assert info["Architecture"] == "amd64"
    # And as the docker-archive `docker load` reads, through its manifest.json.
    docker = subprocess.run(
        [skopeo, "inspect", "--config", f"docker-archive:{tmp_path / 'image.tar'}"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert json.loads(docker.stdout)["config"]["User"] == "65534:65534"
