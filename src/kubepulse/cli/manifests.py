"""`kubepulse manifests`: a components.yaml that installs kubepulse as the metrics-server."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import yaml
from cryptography import x509

from kubepulse import __version__
from kubepulse.cli import server
from kubepulse.cli.errors import CommandError
from kubepulse.kube import manifests
from kubepulse.kube.manifests import ManifestError, Options


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Print components.yaml for `kubectl apply -f -`. Arguments after -- "
        "are flags of `kubepulse server`, e.g. -- --kubelet-insecure-tls."
    )
    p.add_argument("-n", "--namespace", default=manifests.DEFAULT_NAMESPACE)
    p.add_argument("--image", default=manifests.DEFAULT_IMAGE)
    p.add_argument(
        "--nodes",
        type=int,
        default=manifests.DEFAULT_NODES,
        help="how many nodes the cluster has: sizes the CPU and memory requests",
    )
    p.add_argument("--ha", action="store_true", help="2 replicas on different nodes, and a PDB")
    p.add_argument(
        "--tls-secret",
        metavar="NAME",
        help="a kubernetes.io/tls Secret with the serving certificate (signed by --ca-bundle)",
    )
    trust = p.add_mutually_exclusive_group()
    trust.add_argument(
        "--ca-bundle",
        type=Path,
        metavar="FILE",
        help="PEM CA that kube-apiserver uses to verify kubepulse's serving certificate",
    )
    trust.add_argument(
        "--insecure-skip-tls-verify",
        action="store_true",
        help="kube-apiserver does not verify kubepulse (as upstream's components.yaml)",
    )
    p.add_argument(
        "--csr-approver",
        action="store_true",
        help="also `kubepulse csr-approver`, to approve kubelet serving-certificate CSRs",
    )
    p.add_argument("-o", "--output", choices=("yaml", "json"), default="yaml")
    p.add_argument(
        "server_args",
        nargs="*",
        metavar="-- SERVER-FLAG",
        help="after --: flags of `kubepulse server`, replacing the defaults they name",
    )
    p.set_defaults(run=run)


class _FlagCheck(argparse.ArgumentParser):
    # No abbreviations: "--kubelet-insecure" in a manifest would break the day the
    # server gets a second flag with that prefix.
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise CommandError(f"flags after -- must be flags of kubepulse server: {message}")


def parse_server_args(args: tuple[str, ...]) -> argparse.Namespace:
    """The flags as `kubepulse server` itself parses and validates them."""
    root = _FlagCheck(prog="kubepulse", add_help=False)
    server.add_arguments(root.add_subparsers().add_parser("server"))
    parsed = root.parse_args(["server", *args])
    server.config(parsed).complete()
    return parsed


def read_ca_bundle(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as err:
        raise CommandError(f"cannot read --ca-bundle {path}: {err.strerror}") from err
    try:
        x509.load_pem_x509_certificates(data)
    except ValueError as err:
        raise CommandError(f"--ca-bundle {path} holds no PEM certificate") from err
    return data


def options(args: argparse.Namespace) -> Options:
    flags = manifests.server_args(args.server_args, tls_secret=args.tls_secret is not None)
    parsed = parse_server_args(flags)
    ca = None if args.ca_bundle is None else read_ca_bundle(args.ca_bundle)
    try:
        return Options(
            namespace=args.namespace,
            image=args.image,
            args=flags,
            secure_port=parsed.secure_port,
            cert_dir=str(parsed.cert_dir),
            nodes=args.nodes,
            ha=args.ha,
            ca_bundle=ca,
            insecure_skip_tls_verify=args.insecure_skip_tls_verify,
            tls_secret=args.tls_secret,
        )
    except ManifestError as err:
        raise CommandError(str(err)) from err


def warnings(opts: Options) -> list[str]:
    if opts.insecure_skip_tls_verify:
        return [
            "warning: --insecure-skip-tls-verify: kube-apiserver will not verify "
            "kubepulse's serving certificate, so whoever answers for the Service can feed "
            "false metrics to the HPA and kubectl top; prefer --ca-bundle with --tls-secret"
        ]
    has_cert = opts.tls_secret is not None or any(
        a.startswith("--tls-cert-file") for a in opts.args
    )
    if opts.ca_bundle is None:
        return [
            "note: the APIService has no caBundle: kube-apiserver verifies kubepulse "
            "against its system roots; give --ca-bundle and --tls-secret, or inject the "
            "CA (e.g. cert-manager's cert-manager.io/inject-ca-from annotation)"
        ]
    if not has_cert:
        return [
            "warning: --ca-bundle without --tls-secret: the server makes its own "
            "certificate at each start, which that CA did not sign"
        ]
    return []


def render(objects: list[manifests.Object], output: str) -> str:
    if output == "json":
        return json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}, indent=4) + "\n"
    header = f"# Made by `kubepulse manifests` (kubepulse {__version__}).\n"
    body = yaml.safe_dump_all(objects, explicit_start=True, sort_keys=False)
    return header + body


async def run(args: argparse.Namespace) -> int:
    opts = options(args)
    for line in warnings(opts):
        print(line, file=sys.stderr)
    objects = manifests.components(opts)
    if args.csr_approver:
        objects += manifests.csr_approver(opts)
    sys.stdout.write(render(objects, args.output))
    return 0
