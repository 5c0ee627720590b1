"""`kubepulse top`: kubectl top for any cluster the kubeconfig names, plus -o and a live view.

This module reads and checks the command line as kubectl does; kubepulse/top runs it.
"""

from __future__ import annotations

import argparse

from kubepulse.api.selectors import SelectorError, parse_field_selector, parse_label_selector
from kubepulse.cli.errors import CommandError
from kubepulse.cli.kubeconfig_flags import add_kubeconfig_flags, overrides
from kubepulse.cli.pflag import Given, unknown
from kubepulse.top import query
from kubepulse.top.query import TopRequest

ALIASES = {"node": "node", "nodes": "node", "no": "node", "pod": "pod", "pods": "pod", "po": "pod"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("resource", metavar="node|pod", help="node (nodes, no) or pod (pods, po)")
    p.add_argument("name", nargs="*", help="one node or pod")
    add_kubeconfig_flags(p)
    p.add_argument("-n", "--namespace", default=None)
    p.add_argument("-A", "--all-namespaces", action=Given, nargs=0, default=False)
    p.add_argument("-l", "--selector", default="")
    p.add_argument("--field-selector", action=Given, default="")
    p.add_argument("--sort-by", default="")
    p.add_argument("--containers", action=Given, nargs=0, default=False)
    p.add_argument("--no-headers", action="store_true")
    p.add_argument("--sum", action=Given, nargs=0, default=False)
    p.add_argument("--show-capacity", action=Given, nargs=0, default=False)
    p.add_argument("--use-protocol-buffers", default="true", help=argparse.SUPPRESS)
    p.add_argument(
        "-o",
        "--output",
        default="",
        choices=["", "json", "yaml", "wide"],
        metavar="FORMAT",
        help="json, yaml or wide (default: kubectl's table)",
    )
    p.add_argument("-w", "--watch", action="store_true", help="a live view, refreshed")
    p.add_argument(
        "--interval",
        type=float,
        default=2.0,
        help="seconds between refreshes when the server offers no watch of the metrics",
    )
    p.set_defaults(run=run)


# The flags kubectl has for one form of top only (top_node.go, top_pod.go); given to
# the other form, kubectl refuses them as unknown.
ONLY_FOR = {
    "node": {"--show-capacity"},
    "pod": {"-A", "--all-namespaces", "--containers", "--field-selector", "--sum"},
}


def validate(args: argparse.Namespace) -> TopRequest:
    kind = ALIASES.get(args.resource)
    if kind is None:
        raise CommandError(f'unknown resource "{args.resource}": top shows node or pod')
    other = "pod" if kind == "node" else "node"
    if foreign := [f for f in getattr(args, "given", []) if f in ONLY_FOR[other]]:
        raise CommandError(unknown(foreign[0]))
    if len(args.name) > 1:
        raise CommandError(f"{kind} [NAME | -l label]")  # kubectl's words for extra names
    args.name = args.name[0] if args.name else ""
    if args.sort_by and args.sort_by not in ("cpu", "memory"):
        raise CommandError("--sort-by accepts only cpu or memory")
    if kind == "node" and args.name and args.selector:
        raise CommandError("only one of NAME or --selector can be provided")
    if kind == "pod" and args.name and (args.selector or args.field_selector):
        raise CommandError("only one of NAME or selector can be provided")
    if args.interval <= 0:
        raise CommandError("--interval must be greater than 0")
    # kubectl parses selectors before it sends anything (labels.Parse, fields.ParseSelector).
    try:
        parse_label_selector(args.selector)
        parse_field_selector(args.field_selector)
    except SelectorError as err:
        raise CommandError(str(err)) from err
    return TopRequest(
        kind=kind,
        name=args.name,
        namespace=args.namespace,
        all_namespaces=args.all_namespaces,
        selector=args.selector,
        field_selector=args.field_selector,
        sort_by=args.sort_by,
        containers=args.containers,
        no_headers=args.no_headers,
        sum=args.sum,
        show_capacity=args.show_capacity,
        output=args.output,
        watch=args.watch,
        interval=args.interval,
        kubeconfig=args.kubeconfig,
        context=args.context,
        overrides=overrides(args),
    )


async def run(args: argparse.Namespace) -> int:
    request = validate(args)
    if request.watch:
        from kubepulse.top import live  # curses, only for the live view

        return await live.run(request)
    return await query.run(request)
