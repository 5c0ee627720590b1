"""The image `make image` builds, unpacked and run as a runtime would run it.

No container runtime works on these machines (`podman run` fails: setrlimit
RLIMIT_NPROC), so the unpacked root runs under `unshare --mount` + `chroot`, as the
image's user, with the root bind-mounted read-only and a tmpfs on /tmp, as the
Deployment from `kubepulse manifests` runs it (readOnlyRootFilesystem, an emptyDir
on /tmp).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from kubepulse import __version__, pki
from kubepulse.kube.manifests import DEFAULT_IMAGE
from release import image as release_image
from release import oci, rootfs
from tests.server.fleet import NODES, SERVER_TOKEN, Agent, targets_file
from tests.support import KUBECTL, free_port, run_kubepulse, wait_for

CONTAINERFILE = release_image.REPO / "Containerfile"

# A build is mmdebstrap, two pip installs and byte-compiling: 1.5 to 3 minutes here.
pytestmark = pytest.mark.timeout(900)

MB = 1_000_000
WORK = "/tmp/work"  # where the test's files are, inside the image


@dataclass(frozen=True)
class Built:
    archive: Path
    digest: str
    seconds: float
    image: oci.Image
    root: Path  # the layers unpacked


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    base = tmp_path_factory.mktemp("image")
    started = time.monotonic()
    archive, result = release_image.build(base / "dist", None, work=base / "work")
    seconds = time.monotonic() - started
    image = oci.read_archive(archive)
    root = base / "unpacked"
    oci.unpack(image, root)
    return Built(archive, result.manifest_digest, seconds, image, root)


def user(image: oci.Image) -> str:
    return str(image.config["config"]["User"])


def contained(built: Built, host_dir: Path | None = None) -> list[str]:
    """The command that runs the image's entrypoint as its user, read-only root."""
    r = shlex.quote(str(built.root))
    mounts = [
        f"mount --bind {r} {r}",
        f"mount -o remount,bind,ro {r}",
        f"mount -t tmpfs -o mode=1777 tmpfs {r}/tmp",
        f"mount --rbind /proc {r}/proc",
        f"mount --rbind /sys {r}/sys",
        f"mount --rbind /dev {r}/dev",
    ]
    if host_dir is not None:
        mounts += [f"mkdir {r}{WORK}", f"mount --bind {shlex.quote(str(host_dir))} {r}{WORK}"]
    entrypoint = built.image.config["config"]["Entrypoint"]
    script = " && ".join([*mounts, f'exec chroot --userspec={user(built.image)} {r} "$@"'])
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *entrypoint]


def run(built: Built, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*contained(built), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_the_image_is_built_in_minutes_and_is_small(built: Built) -> None:
    layer_bytes = sum(len(layer) for layer in built.image.layers)
    unpacked = sum(
        p.lstat().st_size for p in built.root.rglob("*") if p.is_file() and not p.is_symlink()
    )
    print(f"image {built.digest}: built in {built.seconds:.0f} s, layer {layer_bytes / MB:.1f} MB,")
    print(f"unpacked {unpacked / MB:.1f} MB")
    assert built.seconds < 600
    assert layer_bytes < 60 * MB
    assert unpacked < 150 * MB


def test_a_second_build_elsewhere_gives_the_same_digest(
    built: Built, tmp_path_factory: pytest.TempPathFactory
) -> None:
    again = tmp_path_factory.mktemp("again")
    archive, result = release_image.build(again / "dist", None, work=again / "work")
    assert result.manifest_digest == built.digest
    assert archive.read_bytes() == built.archive.read_bytes()


def test_the_image_is_named_and_labelled_for_this_version(built: Built) -> None:
    assert built.image.reference == DEFAULT_IMAGE == f"ghcr.io/kubepulse/kubepulse:{__version__}"
    assert built.archive.name == f"kubepulse-{__version__}.oci.tar"
    config = built.image.config["config"]
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == __version__
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert labels["org.opencontainers.image.source"].startswith("https://")
    assert config["User"] == "65534:65534"
    assert config["Entrypoint"] == ["/usr/local/bin/kubepulse"]


def test_skopeo_reads_the_built_archive_as_the_image_it_is(built: Built) -> None:
    """skopeo reads an archive with the code podman load and CRI-O use (containers/image)."""
    inspected = subprocess.run(
        ["skopeo", "inspect", f"oci-archive:{built.archive}"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert inspected.returncode == 0, inspected.stderr
    info = json.loads(inspected.stdout)
    assert info["Digest"] == built.digest
    assert info["Labels"] == built.image.config["config"]["Labels"]
    assert (info["Os"], info["Architecture"], len(info["Layers"])) == ("linux", "amd64", 1)


def test_podman_loads_the_archive_under_the_release_name(built: Built) -> None:
    """`podman load` works here (only `podman run` does not), into a store of the test's
    own; its run root must be a short path (podman refuses one over 50 characters)."""
    with tempfile.TemporaryDirectory(prefix="podman-") as store:
        podman = [
            "podman", "--root", f"{store}/root", "--runroot", f"{store}/run",
            "--storage-driver", "vfs",
        ]  # fmt: skip
        loaded = subprocess.run(
            [*podman, "load", "-i", str(built.archive)],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert loaded.returncode == 0, loaded.stderr
        assert f"Loaded image: {DEFAULT_IMAGE}" in loaded.stdout
        inspected = subprocess.run(
            [*podman, "image", "inspect", DEFAULT_IMAGE],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
    (info,) = json.loads(inspected.stdout)
    assert info["Digest"] == built.digest
    assert info["User"] == "65534:65534"
    assert info["Config"]["Entrypoint"] == ["/usr/local/bin/kubepulse"]


def test_the_wheels_shared_objects_carry_no_debug_information(built: Built) -> None:
    """But those auditwheel patched, which strip would break (numpy's, with openblas)."""
    site = built.root / rootfs.SITE_PACKAGES
    with_debug = []
    for path in sorted(site.rglob("*.so*")):
        if path.is_file() and not path.is_symlink() and not rootfs.patched_by_auditwheel(path):
            sections = subprocess.run(
                ["readelf", "--section-headers", "--wide", path],
                capture_output=True, text=True, timeout=30, check=True,
            ).stdout  # fmt: skip
            if ".debug_" in sections:
                with_debug.append(path.relative_to(site).as_posix())
    assert with_debug == []


def test_the_image_has_no_shell_compiler_or_package_manager(built: Built) -> None:
    names = {p.name for p in built.root.rglob("*") if p.is_file() or p.is_symlink()}
    assert not names & {"sh", "bash", "dash", "gcc", "cc", "apt", "apt-get", "dpkg", "pip", "tar"}
    assert not (built.root / "var/cache/apt").exists()
    assert not list(built.root.rglob("*.deb"))
    # Scanners still see the Debian packages and their versions.
    python3 = (built.root / "var/lib/dpkg/status.d/python3").read_text()
    assert "Package: python3\n" in python3 and "Version: " in python3
    assert "Debian GNU/Linux 12" in (built.root / "usr/lib/os-release").read_text()


def test_every_shared_library_in_the_image_finds_what_it_links_against(built: Built) -> None:
    missing = []
    for path in sorted(built.root.rglob("*.so*")):
        if not path.is_file() or path.is_symlink():
            continue
        inside = "/" + path.relative_to(built.root).as_posix()
        listed = subprocess.run(
            ["chroot", built.root, "/lib64/ld-linux-x86-64.so.2", "--list", inside],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        missing += [
            f"{inside}: {line.strip()}"
            for line in listed.stdout.splitlines()
            if "not found" in line
        ]
    assert missing == []


def test_kubepulse_runs_as_nobody_from_the_read_only_root(built: Built) -> None:
    version = run(built, "--version")
    assert (version.returncode, version.stdout, version.stderr) == (
        0,
        f"kubepulse {__version__}\n",
        "",
    )
    usage = run(built, "server", "--help")
    assert usage.returncode == 0, usage.stderr
    assert "--kubelet-preferred-address-types" in usage.stdout
    script = "\n".join(
        [
            "import os, pathlib",
            "print(os.getuid(), os.getgid())",
            "try:",
            "    pathlib.Path('/usr/x').write_text('x')",
            "except OSError as e:",
            "    print(e.strerror)",
            "pathlib.Path('/tmp/x').write_text('x')",
        ]
    )
    probe = subprocess.run(
        [*contained(built)[:-1], "/usr/bin/python3", "-c", script],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert probe.stdout.splitlines() == ["65534 65534", "Read-only file system"], probe.stderr


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """A CA, node-a's serving certificate, the agent's token and the server's tokens,
    readable by the image's user."""
    base = tmp_path / "work"
    base.mkdir()
    ca = pki.new_ca("kubelet-ca")
    ca.write(base / "ca.crt", base / "ca.key")
    ip = NODES["node-a"][0]
    pki.issue(ca, "node-a", dns_names=["node-a"], ips=[ipaddress.ip_address(ip)]).write(
        base / "node-a.crt", base / "node-a.key"
    )
    (base / "agent-token").write_text(secrets.token_hex(16) + "\n")
    (base / "tokens.csv").write_text(f'{SERVER_TOKEN},admin,1,"system:masters"\n')
    for path in [base, *base.iterdir()]:
        os.chown(path, rootfs.NOBODY, rootfs.NOBODY)
    return base


@pytest.fixture
def agent_in_image(built: Built, files: Path, tmp_path: Path) -> Iterator[Agent]:
    ip = NODES["node-a"][0]
    port = free_port(ip)
    args = [
        "agent", "--address", ip, "--port", str(port), "--hostname-override", "node-a",
        "--tls-cert-file", f"{WORK}/node-a.crt", "--tls-private-key-file", f"{WORK}/node-a.key",
        "--cert-dir", f"{WORK}/agent-pki", "--token-file", f"{WORK}/agent-token",
        "--housekeeping-interval", "1s",
    ]  # fmt: skip
    with run_kubepulse(args, tmp_path / "agent.log", contained(built, files)) as running:
        wait_for(
            lambda: "node-a" in running.log() or running.proc.poll() is not None,
            what="the agent in the image to start",
        )
        yield Agent("node-a", ip, port, running)


def test_the_server_in_the_image_scrapes_an_agent_in_the_image_and_kubectl_reads_it(
    built: Built, files: Path, agent_in_image: Agent, tmp_path: Path
) -> None:
    targets_file(files / "targets.yaml", {"node-a": agent_in_image})
    os.chown(files / "targets.yaml", rootfs.NOBODY, rootfs.NOBODY)
    port = free_port()
    args = [
        "server", "--targets", f"{WORK}/targets.yaml", "--bind-address", "127.0.0.1",
        "--secure-port", str(port), "--cert-dir", f"{WORK}/server-pki",
        "--token-auth-file", f"{WORK}/tokens.csv", "--kubelet-token-file", f"{WORK}/agent-token",
        "--kubelet-certificate-authority", f"{WORK}/ca.crt", "--kubelet-use-node-status-port",
        "--metric-resolution", "2s", "--kubelet-request-timeout", "1s",
    ]  # fmt: skip
    with ExitStack() as stack:
        server = stack.enter_context(
            run_kubepulse(args, tmp_path / "server.log", contained(built, files))
        )

        def serving() -> bool:
            if server.proc.poll() is not None or agent_in_image.running.proc.poll() is not None:
                raise AssertionError(f"exited: {server.log()}{agent_in_image.running.log()}")
            return f"kubepulse server: https://127.0.0.1:{port}" in server.log()

        wait_for(serving, what="the server in the image to serve")
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "image",
                            "cluster": {
                                "server": f"https://127.0.0.1:{port}",
                                "certificate-authority": str(files / "server-pki/ca.crt"),
                            },
                        }
                    ],
                    "users": [{"name": "admin", "user": {"token": SERVER_TOKEN}}],
                    "contexts": [
                        {"name": "image", "context": {"cluster": "image", "user": "admin"}}
                    ],
                    "current-context": "image",
                }
            )
        )

        def node_metrics() -> dict[str, object] | None:
            got = subprocess.run(
                [KUBECTL, "--kubeconfig", str(kubeconfig), "get", "--raw",
                 "/apis/metrics.k8s.io/v1beta1/nodes/node-a"],
                capture_output=True, text=True, timeout=30, check=False,
            )  # fmt: skip
            return json.loads(got.stdout) if got.returncode == 0 else None

        metrics = wait_for(node_metrics, timeout=60, what="node-a's metrics through kubectl")
        usage = metrics["usage"]
        assert isinstance(usage, dict)
        assert int(usage["cpu"].rstrip("n")) > 0
        assert usage["memory"].endswith("Ki")


def distributions(site: Path) -> set[str]:
    return {p.name for p in site.glob("*.dist-info")}


def test_the_containerfiles_python_step_installs_what_make_image_does(
    built: Built, tmp_path: Path
) -> None:
    """No registry is reachable here to build the Containerfile; its Python step is
    `python -m release.image site`, run here with the Containerfile's own arguments."""
    step = re.search(
        r"RUN python -m release\.image site (.*?)\n\n", CONTAINERFILE.read_text(), re.S
    )
    assert step is not None
    args = shlex.split(step.group(1).replace("\\\n", " "))
    assert args[:2] == ["--root", "/staging"]
    root = tmp_path / "staging"
    done = subprocess.run(
        [sys.executable, "-m", "release.image", "site", "--root", str(root), *args[2:]],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    site = root / "usr/local/lib/python3.11/site-packages"
    assert distributions(site) == distributions(built.root / rootfs.SITE_PACKAGES)
    launcher = (root / rootfs.ENTRYPOINT).read_text()
    assert launcher.startswith("#!/usr/local/bin/python3.11 -I\n")
    assert (root / rootfs.ENTRYPOINT).stat().st_mode & 0o111
    # The wheels load: the image's Python (3.11, as the base's) imports kubepulse from them.
    inside = f"{WORK}/usr/local/lib/python3.11/site-packages"
    version = subprocess.run(
        [*contained(built, root)[:-1], "/usr/bin/python3", "-I", "-c",
         f"import sys; sys.path.insert(0, {inside!r}); import kubepulse, numpy, zstandard; "
         "print(kubepulse.__file__, kubepulse.__version__)"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert version.stdout == f"{inside}/kubepulse/__init__.py {__version__}\n", version.stderr


def test_kubepulse_up_in_the_image_answers_kubectl_top_nodes(built: Built, tmp_path: Path) -> None:
    """The agent and server of `kubepulse up`, as the image's user on its read-only root,
    read this host's cgroups and /proc; the real kubectl reads them with `top nodes`."""
    work = tmp_path / "work"
    work.mkdir()
    os.chown(work, rootfs.NOBODY, rootfs.NOBODY)
    host = socket.gethostname()
    args = [
        "up", "--state-dir", f"{WORK}/state", "--port", str(free_port()),
        "--agent-port", str(free_port()),
    ]  # fmt: skip
    with run_kubepulse(args, tmp_path / "up.log", contained(built, work)) as up:

        def top_nodes() -> str | None:
            if up.proc.poll() is not None:
                raise AssertionError(f"kubepulse up exited: {up.log()}")
            if not (work / "state/kubeconfig").exists():
                return None
            top = subprocess.run(
                [KUBECTL, "--kubeconfig", str(work / "state/kubeconfig"), "top", "nodes"],
                capture_output=True, text=True, timeout=30, check=False,
            )  # fmt: skip
            return top.stdout if top.returncode == 0 and host in top.stdout else None

        table = wait_for(top_nodes, timeout=60, what="kubectl top nodes from the image's up")
    header, row = table.splitlines()[:2]
    assert header.split()[:3] == ["NAME", "CPU(cores)", "CPU(%)"]
    assert row.split()[0] == host
    assert row.split()[1].endswith("m")
