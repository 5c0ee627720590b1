"""A root filesystem as a one-layer OCI image, in an archive every runtime loads.

The archive is an OCI image layout (image-spec v1.1 `image-layout.md`: `oci-layout`,
`index.json`, `blobs/sha256/`) that also carries Docker's `manifest.json`, as
`docker save` writes since Docker 25, so `podman load`, `docker load` (old and new),
`ctr images import` and `kind load image-archive` all take it. Every byte is a function
of the root filesystem's contents and `created`: entries sorted, times clamped to
`created`, owners root, gzip without a timestamp; so one input gives one digest.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
# containerd (and Docker 25+, kind) name an imported image by this annotation; podman and
# skopeo by the OCI one. Both carry the full reference.
CONTAINERD_NAME = "io.containerd.image.name"
REF_NAME = "org.opencontainers.image.ref.name"


@dataclass(frozen=True)
class ImageConfig:
    """What `docker inspect` shows under Config, and the image's metadata."""

    reference: str  # e.g. ghcr.io/kubepulse/kubepulse:0.1.0
    created: int  # seconds since the epoch: SOURCE_DATE_EPOCH
    entrypoint: tuple[str, ...]
    user: str = "65534:65534"
    env: tuple[str, ...] = ("PATH=/usr/local/bin:/usr/bin:/bin",)
    labels: Mapping[str, str] = field(default_factory=dict)
    architecture: str = "amd64"
    history: str = ""


@dataclass(frozen=True)
class Blob:
    digest: str  # sha256:...
    size: int
    path: Path


@dataclass(frozen=True)
class Built:
    manifest_digest: str
    layer_size: int  # compressed bytes
    rootfs_size: int  # uncompressed layer bytes


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _iso(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def walk(root: Path) -> Iterator[Path]:
    """Every path under root, parents before children, siblings in byte order."""
    for name in sorted(os.listdir(root), key=os.fsencode):
        path = root / name
        yield path
        if path.is_dir() and not path.is_symlink():
            yield from walk(path)


def _layer_entry(tar: tarfile.TarFile, path: Path, name: str, created: int) -> tarfile.TarInfo:
    info = tar.gettarinfo(str(path), name)
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = min(int(info.mtime), created)
    return info


def write_layer(rootfs: Path, out: Path, created: int) -> None:
    """The rootfs as an uncompressed tar. Device nodes, sockets and FIFOs are left out:
    the runtime mounts its own /dev."""
    with tarfile.open(out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for path in walk(rootfs):
            mode = path.lstat().st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
                continue
            info = _layer_entry(tar, path, path.relative_to(rootfs).as_posix(), created)
            if info.isreg():
                with path.open("rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _blob_file(blobs: Path, data_path: Path) -> Blob:
    hexdigest = sha256_file(data_path)
    target = blobs / hexdigest
    data_path.replace(target)
    return Blob(f"sha256:{hexdigest}", target.stat().st_size, target)


def _blob_bytes(blobs: Path, data: bytes) -> Blob:
    hexdigest = hashlib.sha256(data).hexdigest()
    target = blobs / hexdigest
    target.write_bytes(data)
    return Blob(f"sha256:{hexdigest}", len(data), target)


def config_json(cfg: ImageConfig, diff_id: str) -> bytes:
    """The image configuration (image-spec `config.md`)."""
    return _canonical(
        {
            "architecture": cfg.architecture,
            "os": "linux",
            "created": _iso(cfg.created),
            "config": {
                "User": cfg.user,
                "Entrypoint": list(cfg.entrypoint),
                "Env": list(cfg.env),
                "WorkingDir": "/",
                "Labels": dict(cfg.labels),
            },
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created": _iso(cfg.created), "created_by": cfg.history}],
        }
    )


def _descriptor(media_type: str, blob: Blob, **annotations: str) -> dict[str, Any]:
    d: dict[str, Any] = {"mediaType": media_type, "digest": blob.digest, "size": blob.size}
    if annotations:
        d["annotations"] = annotations
    return d


def write_archive(rootfs: Path, cfg: ImageConfig, out: Path) -> Built:
    """Write rootfs as a one-layer image to `out` (an OCI layout in a tar archive)."""
    with tempfile.TemporaryDirectory(prefix="oci-", dir=out.parent) as tmp:
        layout = Path(tmp) / "layout"
        blobs = layout / "blobs" / "sha256"
        blobs.mkdir(parents=True)
        raw = Path(tmp) / "layer.tar"
        write_layer(rootfs, raw, cfg.created)
        diff_id, rootfs_size = f"sha256:{sha256_file(raw)}", raw.stat().st_size
        packed = Path(tmp) / "layer.tar.gz"
        # mtime=0 and no file name: the gzip header carries nothing of the build.
        with (
            raw.open("rb") as src,
            packed.open("wb") as dst,
            gzip.GzipFile(filename="", mode="wb", fileobj=dst, mtime=0, compresslevel=9) as gz,
        ):
            shutil.copyfileobj(src, gz, 1 << 20)
        raw.unlink()
        layer = _blob_file(blobs, packed)
        config = _blob_bytes(blobs, config_json(cfg, diff_id))
        manifest = _blob_bytes(
            blobs,
            _canonical(
                {
                    "schemaVersion": 2,
                    "mediaType": MEDIA_MANIFEST,
                    "config": _descriptor(MEDIA_CONFIG, config),
                    "layers": [_descriptor(MEDIA_LAYER, layer)],
                    "annotations": {
                        "org.opencontainers.image.created": _iso(cfg.created),
                        **cfg.labels,
                    },
                }
            ),
        )
        names = {CONTAINERD_NAME: cfg.reference, REF_NAME: cfg.reference}
        index = {
            "schemaVersion": 2,
            "mediaType": MEDIA_INDEX,
            "manifests": [_descriptor(MEDIA_MANIFEST, manifest, **names)],
        }
        docker = [
            {
                "Config": f"blobs/sha256/{config.path.name}",
                "RepoTags": [cfg.reference],
                "Layers": [f"blobs/sha256/{layer.path.name}"],
            }
        ]
        (layout / "oci-layout").write_bytes(_canonical({"imageLayoutVersion": "1.0.0"}))
        (layout / "index.json").write_bytes(_canonical(index))
        (layout / "manifest.json").write_bytes(_canonical(docker))
        partial = out.with_name(out.name + ".tmp")
        with tarfile.open(partial, "w", format=tarfile.GNU_FORMAT) as tar:
            for path in walk(layout):
                info = _layer_entry(tar, path, path.relative_to(layout).as_posix(), cfg.created)
                info.mtime = cfg.created
                info.mode = 0o755 if info.isdir() else 0o644
                if info.isreg():
                    with path.open("rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
        partial.replace(out)
    return Built(manifest.digest, layer.size, rootfs_size)


@dataclass(frozen=True)
class Image:
    """An image read back from an archive, for checks and for running it unpacked."""

    reference: str
    manifest_digest: str
    manifest: dict[str, Any]
    config: dict[str, Any]
    layers: tuple[bytes, ...]  # compressed layer blobs, base first


def _member(tar: tarfile.TarFile, name: str) -> bytes:
    f = tar.extractfile(name)
    if f is None:
        raise ValueError(f"{name} is not a file in the archive")
    return f.read()


def _blob(tar: tarfile.TarFile, digest: str) -> bytes:
    algorithm, hexdigest = digest.split(":", 1)
    data = _member(tar, f"blobs/{algorithm}/{hexdigest}")
    if hashlib.sha256(data).hexdigest() != hexdigest:
        raise ValueError(f"blob {digest} does not match its digest")
    return data


def read_archive(path: Path) -> Image:
    """The image an archive's index.json names, every blob checked against its digest."""
    with tarfile.open(path) as tar:
        index = json.loads(_member(tar, "index.json"))
        (entry,) = index["manifests"]
        manifest = json.loads(_blob(tar, entry["digest"]))
        config = json.loads(_blob(tar, manifest["config"]["digest"]))
        layers = tuple(_blob(tar, layer["digest"]) for layer in manifest["layers"])
    return Image(entry["annotations"][REF_NAME], entry["digest"], manifest, config, layers)


def unpack(image: Image, dest: Path) -> None:
    """Extract the image's layers into dest, as a runtime lays out its root filesystem."""
    for layer in image.layers:
        with tarfile.open(fileobj=io.BytesIO(layer), mode="r:gz") as tar:
            tar.extractall(dest, filter="fully_trusted")
