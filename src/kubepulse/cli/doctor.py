"""`kubepulse doctor`: checks a cluster's metrics pipeline and says how to fix each fault.

Against a kubeconfig (--kubeconfig, --context, $KUBECONFIG) or, when none is given and a
`kubepulse up` state dir exists, against that. Exit 0 when nothing fails, 1 when
something does (also for bad input, said in one line on stderr).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from kubepulse.cli import flags
from kubepulse.cli.errors import CommandError
from kubepulse.cli.kubeconfig_flags import add_kubeconfig_flags, overrides
from kubepulse.cli.up import default_state_dir
from kubepulse.doctor import report
from kubepulse.doctor.findings import failed
from kubepulse.doctor.kubelets import KubeletTLS, NodeCheckConfig
from kubepulse.doctor.run import DoctorConfig, diagnose
from kubepulse.kube import kubeconfig
from kubepulse.kube.kubeconfig import Credentials, KubeconfigError


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_kubeconfig_flags(p)
    p.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="a `kubepulse up` state dir, used when no kubeconfig is given "
        "(default: ~/.local/state/kubepulse when it exists)",
    )
    p.add_argument(
        "--kubelet-preferred-address-types",
        default="InternalIP,ExternalIP,Hostname",
        help="as the server's flag: the order in which node address types are tried",
    )
    p.add_argument(
        "--kubelet-port",
        type=int,
        default=10250,
        help="for nodes without status.daemonEndpoints.kubeletEndpoint.Port",
    )
    trust = p.add_mutually_exclusive_group()
    trust.add_argument(
        "--kubelet-certificate-authority",
        type=Path,
        help="CA of kubelet serving certificates (default: the kubeconfig's cluster CA)",
    )
    trust.add_argument(
        "--kubelet-insecure-tls",
        action="store_true",
        help="as the server's flag: certificate problems are warnings, not failures",
    )
    p.add_argument("--metric-resolution", type=flags.duration, default=15.0)
    p.add_argument("--timeout", type=flags.duration, default=5.0, help="per network step")
    p.add_argument("-o", "--output", choices=("text", "json"), default="text")
    p.set_defaults(run=run)


def credentials(args: argparse.Namespace) -> tuple[Credentials, Path | None]:
    """The kubeconfig's credentials, and the state dir's CA when it is a `kubepulse up`."""
    given = args.kubeconfig or args.context or os.environ.get("KUBECONFIG")
    state_dir: Path | None = args.state_dir
    if state_dir is None and not given and (default_state_dir() / "kubeconfig").exists():
        state_dir = default_state_dir()
    try:
        if state_dir is not None and not args.kubeconfig:
            config = state_dir / "kubeconfig"
            if not config.exists():
                raise CommandError(
                    f"{state_dir} is not a `kubepulse up` state dir (no kubeconfig in it)"
                )
            ca = state_dir / "pki" / "ca.crt"
            chosen = kubeconfig.load(str(config), args.context, overrides=overrides(args))
            return chosen, ca if ca.exists() else None
        return kubeconfig.load(args.kubeconfig, args.context, overrides=overrides(args)), None
    except KubeconfigError as err:
        raise CommandError(str(err)) from err


def kubelet_tls(args: argparse.Namespace, creds: Credentials, state_ca: Path | None) -> KubeletTLS:
    """The trust the server has in kubelets: its flag, else the cluster's own CA, as
    metrics-server copies the rest.Config's CA into its kubelet client."""
    if args.kubelet_insecure_tls:
        return KubeletTLS(insecure=True)
    path: Path | None = args.kubelet_certificate_authority or state_ca
    if path is not None:
        try:
            return KubeletTLS(path.read_bytes(), f"--kubelet-certificate-authority {path}")
        except OSError as err:
            raise CommandError(f"cannot read {path}: {err.strerror}") from err
    if creds.insecure:
        return KubeletTLS(insecure=True)
    if creds.ca_pem is not None:
        return KubeletTLS(creds.ca_pem, "the kubeconfig's cluster CA")
    return KubeletTLS()


def config(args: argparse.Namespace) -> DoctorConfig:
    types = tuple(t.strip() for t in args.kubelet_preferred_address_types.split(",") if t.strip())
    if not types:
        raise CommandError("--kubelet-preferred-address-types names no address type")
    if not 0 < args.kubelet_port < 65536:
        raise CommandError(f"invalid --kubelet-port {args.kubelet_port}")
    if args.timeout <= 0 or args.metric_resolution <= 0:
        raise CommandError("--timeout and --metric-resolution must be greater than 0")
    creds, state_ca = credentials(args)
    nodes = NodeCheckConfig(
        preferred_types=types,
        port=args.kubelet_port,
        timeout=args.timeout,
        tls=kubelet_tls(args, creds, state_ca),
    )
    return DoctorConfig(creds, nodes, resolution=args.metric_resolution, timeout=args.timeout)


async def run(args: argparse.Namespace) -> int:
    findings = await diagnose(config(args))
    if args.output == "json":
        sys.stdout.write(report.as_json(findings))
    else:
        encoding = (getattr(sys.stdout, "encoding", None) or "").lower()
        sys.stdout.write(report.text(findings, unicode=encoding.startswith("utf")))
    sys.stdout.flush()
    return 1 if failed(findings) else 0
