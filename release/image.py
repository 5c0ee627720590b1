"""`python -m release.image`: build dist/kubepulse-VERSION.oci.tar, or refresh the lock.

python -m release.image build [--out dist] [--reference REF]
python -m release.image lock    # release/requirements.lock from pyproject's dependencies
python -m release.image site --root DIR --site-packages PATH --python PATH
                                # only the Python part, for the Containerfile
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from release import oci, rootfs
from release.rootfs import BuildError

REPO = Path(__file__).resolve().parent.parent
LOCK = Path(__file__).resolve().parent / "requirements.lock"
WORK = REPO / "build" / "image"


@dataclass(frozen=True)
class Project:
    name: str
    version: str
    license: str
    source: str
    dependencies: tuple[str, ...]

    @property
    def reference(self) -> str:
        return f"ghcr.io/kubepulse/{self.name}:{self.version}"

    @property
    def archive_name(self) -> str:
        return f"{self.name}-{self.version}.oci.tar"


def project(pyproject: Path = REPO / "pyproject.toml") -> Project:
    meta = tomllib.loads(pyproject.read_text())["project"]
    return Project(
        meta["name"],
        meta["version"],
        meta["license"],
        meta["urls"]["Source"],
        tuple(meta["dependencies"]),
    )


def source_date_epoch() -> int:
    """SOURCE_DATE_EPOCH, else the last commit's time: the same for every build of it;
    1980-01-01, zip's earliest date, where there is no git (a Containerfile's context)."""
    if "SOURCE_DATE_EPOCH" in os.environ:
        return int(os.environ["SOURCE_DATE_EPOCH"])
    if not (REPO / ".git").exists():
        return 315_532_800
    out = subprocess.run(
        ["git", "-C", str(REPO), "log", "-1", "--format=%ct"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout)


def revision() -> str:
    out = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def labels(proj: Project, commit: str) -> dict[str, str]:
    """The OCI pre-defined annotations (image-spec `annotations.md`) the image carries."""
    return {
        "org.opencontainers.image.title": proj.name,
        "org.opencontainers.image.source": proj.source,
        "org.opencontainers.image.version": proj.version,
        "org.opencontainers.image.revision": commit,
        "org.opencontainers.image.licenses": proj.license,
        "org.opencontainers.image.base.name": f"debian:{rootfs.SUITE}",
    }


def build_wheel(out: Path, epoch: int) -> Path:
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch)}
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out)]
    rootfs.run([*pip, str(REPO)], env=env)
    (wheel,) = out.glob("*.whl")
    return wheel


def build(out_dir: Path, reference: str | None, work: Path = WORK) -> tuple[Path, oci.Built]:
    proj = project()
    epoch = source_date_epoch()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    root = work / "rootfs"
    rootfs.debian(root, epoch)
    rootfs.slim(root)
    rootfs.accounts(root)
    wheel = build_wheel(work / "wheel", epoch)
    rootfs.python_packages(root, LOCK, wheel, [sys.executable, "-m", "pip"])
    rootfs.strip_debug_info(root)
    rootfs.compile_bytecode(root)
    cfg = oci.ImageConfig(
        reference=reference or proj.reference,
        created=epoch,
        entrypoint=(f"/{rootfs.ENTRYPOINT}",),
        user=f"{rootfs.NOBODY}:{rootfs.NOBODY}",
        labels=labels(proj, revision()),
        history=f"release.image: Debian {rootfs.SUITE} python3, {proj.name} {proj.version}",
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    archive = out_dir / proj.archive_name
    built = oci.write_archive(root, cfg, archive)
    return archive, built


def lock(dependencies: tuple[str, ...]) -> str:
    """Pinned versions with their wheels' hashes, resolved for the image's platform."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        rootfs.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--dry-run",
                "--ignore-installed",
                "--quiet",
                "--report",
                report,
                "--target",
                Path(tmp) / "t",
                *rootfs.WHEEL_TARGET,
                *dependencies,
            ]
        )
        installs = json.loads(report.read_text())["install"]
    lines = [
        "# The image's Python dependencies: `python -m release.image lock` writes this file.",
    ]
    for item in sorted(installs, key=lambda i: i["metadata"]["name"].lower()):
        hashes = item["download_info"]["archive_info"]["hashes"]
        lines.append(f"{item['metadata']['name']}=={item['metadata']['version']} \\")
        lines.append(f"    --hash=sha256:{hashes['sha256']}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m release.image")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build dist/kubepulse-VERSION.oci.tar")
    b.add_argument("--out", type=Path, default=REPO / "dist")
    b.add_argument("--reference", help="the name the image loads as (default: the release's)")
    sub.add_parser("lock", help=f"rewrite {LOCK.name} from pyproject.toml's dependencies")
    site = sub.add_parser("site", help="install kubepulse and the locked wheels under --root")
    site.add_argument("--root", type=Path, required=True)
    site.add_argument("--site-packages", default=rootfs.SITE_PACKAGES, help="under --root")
    site.add_argument("--python", default=rootfs.INTERPRETER, help="the launcher's interpreter")
    args = parser.parse_args(argv)
    try:
        if args.command == "lock":
            LOCK.write_text(lock(project().dependencies))
            print(f"wrote {LOCK}")
            return 0
        if args.command == "site":
            with tempfile.TemporaryDirectory() as tmp:
                wheel = build_wheel(Path(tmp), source_date_epoch())
                pip = [sys.executable, "-m", "pip"]
                rootfs.python_packages(args.root, LOCK, wheel, pip, args.site_packages, args.python)
            return 0
        started = time.monotonic()
        archive, built = build(args.out, args.reference)
    except (BuildError, subprocess.CalledProcessError, OSError) as err:
        print(f"release.image: {err}", file=sys.stderr)
        return 1
    print(
        f"{archive}: {built.manifest_digest}, layer {built.layer_size / 1e6:.1f} MB "
        f"compressed, {built.rootfs_size / 1e6:.1f} MB unpacked, "
        f"built in {time.monotonic() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
