"""The image's root filesystem: Debian's python3 and kubepulse's wheels, nothing else.

`mmdebstrap --variant=extract` unpacks python3 and what it depends on without running a
maintainer script; what a running server never uses is then taken out (dpkg and tar,
which python3-minimal pulls in, documentation but the licences, apt's and dpkg's state),
and each Debian package's control fields go to /var/lib/dpkg/status.d/ as distroless
images keep them, so image scanners still see the packages and their versions. The
wheels' shared objects lose their debug information, which nothing reads at run time.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

SUITE = "bookworm"
PYTHON = "python3.11"
# base-files gives /etc/os-release, which scanners read to know the distribution;
# manylinux wheels (numpy) link against the system libstdc++ (PEP 600).
PACKAGES = ("python3", "base-files", "libstdc++6")
# Unpacked as dependencies of python3-minimal, never run by kubepulse.
DROPPED_PACKAGES = frozenset({"dpkg", "tar", "mawk"})
# Parts of the wheels that a running kubepulse never imports: test suites, type stubs,
# numpy's Fortran and distutils tooling, and zstandard's second (cffi) backend beside
# the C one it loads.
PRUNED_SITE_PACKAGES = (
    "**/tests",
    "**/*.pyi",
    "numpy/f2py",
    "numpy/distutils",
    "zstandard/_cffi.*.so",
    "zstandard/backend_cffi.py",
)
# Debian's python3 puts /usr/local/lib/python3.X/dist-packages on sys.path for what is
# not a Debian package; a python.org build (the Containerfile's base) uses site-packages.
SITE_PACKAGES = f"usr/local/lib/{PYTHON}/dist-packages"
INTERPRETER = f"/usr/bin/{PYTHON}"
ENTRYPOINT = "usr/local/bin/kubepulse"
NOBODY = 65534
# Wheels that run on bookworm's glibc 2.36, named as pip wants every compatible tag
# (it does not widen a given --platform to older manylinux tags itself).
GLIBC_MINOR = 36
WHEEL_TARGET = (
    *(
        arg
        for minor in range(GLIBC_MINOR, 4, -1)
        for arg in ("--platform", f"manylinux_2_{minor}_x86_64")
    ),
    *("--platform", "manylinux2014_x86_64", "--platform", "manylinux2010_x86_64"),
    *("--platform", "manylinux1_x86_64", "--python-version", "3.11", "--implementation", "cp"),
    "--only-binary=:all:",
)

# Build-time state and what only people read (documentation, locales).
REMOVED = (
    "etc/apt",
    "etc/dpkg",
    "etc/alternatives",
    "etc/cron.daily",
    "etc/logrotate.d",
    "etc/fstab",
    "etc/hostname",
    "etc/resolv.conf",
    "var/cache/apt",
    "var/lib/apt",
    "var/lib/dpkg",
    "var/log",
    "usr/share/applications",
    "usr/share/bug",
    "usr/share/doc-base",
    "usr/share/info",
    "usr/share/lintian",
    "usr/share/locale",
    "usr/share/man",
    "usr/share/pixmaps",
    "usr/share/polkit-1",
    # glibc's iconv modules: Python's codecs are its own, and the C.UTF-8 locale Python
    # switches to (PEP 538) is built into glibc, so nothing in the image loads them.
    "usr/lib/x86_64-linux-gnu/gconv",
)

PASSWD = (
    "root:x:0:0:root:/root:/usr/sbin/nologin\n"
    f"nobody:x:{NOBODY}:{NOBODY}:nobody:/nonexistent:/usr/sbin/nologin\n"
)
GROUP = f"root:x:0:\nnogroup:x:{NOBODY}:\n"
# -I: the image's Python ignores PYTHON* variables and the user's site directory.
LAUNCHER = """#!{interpreter} -I
import sys

from kubepulse.cli.main import main

sys.exit(main())
"""


class BuildError(RuntimeError):
    """A build step failed; the message says which and why."""


def run(cmd: Sequence[str | Path], env: dict[str, str] | None = None) -> None:
    result = subprocess.run(
        [str(c) for c in cmd], env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).splitlines()[-20:])
        raise BuildError(f"{Path(str(cmd[0])).name} failed ({result.returncode}):\n{tail}")


DEBS = "var/cache/apt/archives"


def debian(dest: Path, epoch: int, mirror: str | None = None) -> None:
    """Unpack PACKAGES and their dependencies into dest, keeping their .deb files in
    DEBS for `slim` to read."""
    mode = "root" if os.geteuid() == 0 else "unshare"
    run(
        [
            "mmdebstrap",
            f"--mode={mode}",
            "--variant=extract",
            f"--include={','.join(PACKAGES)}",
            "--skip=cleanup/apt/cache",
            SUITE,
            dest,
            *([mirror] if mirror else []),
        ],
        env={**os.environ, "SOURCE_DATE_EPOCH": str(epoch)},
    )


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    control: str  # the control paragraph, as `dpkg-deb --field` prints it


def read_package(deb: Path) -> Package:
    control = subprocess.run(
        ["dpkg-deb", "--field", str(deb)], capture_output=True, text=True, check=True
    ).stdout
    fields = dict(
        line.split(": ", 1) for line in control.splitlines() if ": " in line and line[0] != " "
    )
    return Package(fields["Package"], fields["Version"], control)


def deb_paths(deb: Path) -> list[str]:
    """The files a .deb unpacks, relative to the root."""
    data = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(data.stdout)) as tar:
        return [m.name.removeprefix("./") for m in tar.getmembers() if not m.isdir()]


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _remove_empty_parents(root: Path, paths: Iterable[str]) -> None:
    for parent in sorted({Path(p).parent for p in paths}, key=lambda p: -len(p.parts)):
        full = root / parent
        while full != root and full.is_dir() and not any(full.iterdir()):
            full.rmdir()
            full = full.parent


def slim(root: Path) -> list[Package]:
    """Take out what kubepulse never uses; record the Debian packages that stay."""
    kept: list[Package] = []
    for deb in sorted((root / DEBS).glob("*.deb")):
        package = read_package(deb)
        if package.name in DROPPED_PACKAGES:
            paths = deb_paths(deb)
            for path in paths:
                _remove(root / path)
            _remove_empty_parents(root, paths)
        else:
            kept.append(package)
    for path in REMOVED:
        _remove(root / path)
    for entry in (root / "dev").iterdir():  # the runtime mounts its own /dev
        _remove(entry)
    docs = root / "usr/share/doc"
    for entry in sorted(docs.rglob("*"), reverse=True):
        # Licences stay: Debian's copyright files are what the image redistributes under.
        if entry.name != "copyright" and not (entry.is_dir() and any(entry.iterdir())):
            _remove(entry)
    status = root / "var/lib/dpkg/status.d"
    status.mkdir(parents=True)
    for package in kept:
        (status / package.name).write_text(package.control)
    return kept


def accounts(root: Path) -> None:
    (root / "etc/passwd").write_text(PASSWD)
    (root / "etc/group").write_text(GROUP)
    tmp = root / "tmp"
    tmp.mkdir(exist_ok=True)
    tmp.chmod(0o1777)


def python_packages(
    root: Path,
    lock: Path,
    wheel: Path,
    pip: Sequence[str],
    site_packages: str = SITE_PACKAGES,
    interpreter: str = INTERPRETER,
) -> None:
    """Install the locked dependencies (hashes checked) and kubepulse's wheel into the
    image's site-packages, as binary wheels for the image's Python and glibc, and the
    `kubepulse` launcher that runs them with the image's interpreter."""
    target = root / site_packages
    wheels_for_image: list[str | Path] = [
        "--target", target,
        *WHEEL_TARGET,
        "--no-compile",
        "--no-warn-script-location",
        "--disable-pip-version-check",
        "--quiet",
    ]  # fmt: skip
    run([*pip, "install", "--require-hashes", "--no-deps", "-r", lock, *wheels_for_image])
    run([*pip, "install", "--no-deps", "--upgrade", wheel, *wheels_for_image])
    _remove(target / "bin")  # scripts with the build machine's interpreter in them
    for url_file in target.glob("*.dist-info/direct_url.json"):
        url_file.unlink()  # the build machine's path to the wheel
    for record in target.glob("*.dist-info/RECORD"):
        # RECORD names the files just removed; pip uninstall is not run in the image.
        lines = [
            line
            for line in record.read_text().splitlines()
            if not line.startswith(("../../", "bin/")) and "direct_url.json" not in line
        ]
        record.write_text("\n".join(lines) + "\n")
    for pattern in PRUNED_SITE_PACKAGES:
        for path in sorted(target.glob(pattern)):
            _remove(path)
    launcher = root / ENTRYPOINT
    launcher.parent.mkdir(parents=True, exist_ok=True)
    launcher.write_text(LAUNCHER.format(interpreter=interpreter))
    launcher.chmod(0o755)


def patched_by_auditwheel(path: Path) -> bool:
    """auditwheel vendors libraries into `<name>.libs/` and points the objects that load
    them there with patchelf (an RPATH of $ORIGIN/...); strip rewrites such files into
    ones the loader refuses ("ELF load command address/offset not page-aligned")."""
    if any(part.endswith(".libs") for part in path.parts):
        return True
    dynamic = subprocess.run(
        ["readelf", "--dynamic", str(path)], capture_output=True, text=True, check=True
    ).stdout
    return "(RPATH)" in dynamic or "(RUNPATH)" in dynamic


def strip_debug_info(root: Path) -> None:
    """Drop the debug sections of the wheels' shared objects (zstandard's C backend is
    11 of its 12 MB): `--strip-debug` keeps every symbol the dynamic loader resolves.
    Their RECORD hashes then differ, which only `pip uninstall` would read."""
    for path in sorted((root / SITE_PACKAGES).rglob("*.so*")):
        if path.is_file() and not path.is_symlink() and not patched_by_auditwheel(path):
            run(["strip", "--strip-debug", path])


def compile_bytecode(root: Path) -> None:
    """Byte-compile the standard library and site-packages with the image's own Python.

    The root is read-only at run time, so without this every start compiles everything
    again in memory. unchecked-hash .pyc files carry a hash of the source, not its mtime,
    so they are the same at every build (PEP 552).
    """
    run(
        [
            "chroot",
            root,
            f"/usr/bin/{PYTHON}",
            "-m",
            "compileall",
            "-q",
            "--invalidation-mode",
            "unchecked-hash",
            f"/usr/lib/{PYTHON}",
            f"/{SITE_PACKAGES}",
        ]
    )
