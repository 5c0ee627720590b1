"""`kubepulse recommend`: right-sizing from the usage history (kubepulse/recommend)."""

from __future__ import annotations

import argparse
from pathlib import Path

from kubepulse.api.selectors import SelectorError, parse_label_selector
from kubepulse.cli.errors import CommandError
from kubepulse.cli.up import default_state_dir
from kubepulse.history.prometheus import check_url
from kubepulse.recommend.run import RecommendRequest
from kubepulse.recommend.run import run as run_request
from kubepulse.recommend.settings import STRATEGIES, Settings
from kubepulse.timefmt import parse_go_duration

OUTPUTS = ("", "table", "wide", "json", "yaml", "patch")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="simple",
        help="simple (KRR's) or vpa (the VPA recommender's)",
    )
    p.add_argument(
        "--history-duration",
        default="14d",
        help="how far back usage is read (default 14d; e.g. 36h, 3m)",
    )
    p.add_argument(
        "--cpu-percentile",
        type=float,
        default=95.0,
        help="simple: the CPU usage percentile that becomes the request (default 95)",
    )
    p.add_argument(
        "--memory-buffer-percentage",
        type=float,
        default=15.0,
        help="simple: added to the peak working set (default 15)",
    )
    p.add_argument(
        "--points-required",
        type=int,
        default=100,
        help="fewer points than this: no recommendation (default 100)",
    )
    p.add_argument("-n", "--namespace", default=None)
    p.add_argument("-A", "--all-namespaces", action="store_true")
    p.add_argument("-l", "--selector", default="", help="label selector of the pods")
    p.add_argument(
        "-o",
        "--output",
        default="",
        choices=OUTPUTS,
        metavar="FORMAT",
        help="table (the default), wide, json, yaml, or patch (for kubectl patch)",
    )
    p.add_argument(
        "--state-dir",
        type=Path,
        default=default_state_dir(),
        help="where `kubepulse up` keeps history.db",
    )
    p.add_argument(
        "--history", type=Path, default=None, help="the history file (default STATE_DIR/history.db)"
    )
    p.add_argument(
        "--prometheus-url",
        default=None,
        help="read usage from this Prometheus (scraping /metrics/usage) instead",
    )
    p.add_argument(
        "--kubeconfig",
        default=None,
        help="the cluster whose pods are pooled by owner (default: $KUBECONFIG, "
        "~/.kube/config; without one, each pod is its own workload)",
    )
    p.add_argument("--context", default=None)
    p.set_defaults(run=run)


def history_seconds(text: str) -> float:
    """14d, 36h, 90m, 1h30m: days on top of Go's durations."""
    days, sep, rest = text.partition("d")
    try:
        seconds = (float(days) * 86400 if sep else 0.0) + (
            parse_go_duration(rest if sep else text) if (rest if sep else text) else 0.0
        )
    except ValueError:
        raise CommandError(
            f"invalid --history-duration {text!r} (want e.g. 14d, 36h, 3m)"
        ) from None
    if seconds <= 0:
        raise CommandError("--history-duration must be greater than 0")
    return seconds


def validate(args: argparse.Namespace) -> RecommendRequest:
    if not 0 < args.cpu_percentile <= 100:
        raise CommandError("--cpu-percentile must be in (0, 100]")
    if args.memory_buffer_percentage < 0:
        raise CommandError("--memory-buffer-percentage must not be negative")
    if args.points_required < 1:
        raise CommandError("--points-required must be at least 1")
    if args.all_namespaces and args.namespace:
        raise CommandError("-n and -A cannot be used together")
    if args.prometheus_url is not None and args.history is not None:
        raise CommandError("--prometheus-url and --history cannot be used together")
    if args.prometheus_url is not None:
        try:
            check_url(args.prometheus_url)
        except ValueError as err:
            raise CommandError(f"--prometheus-url: {err}") from err
    try:
        parse_label_selector(args.selector)
    except SelectorError as err:
        raise CommandError(str(err)) from err
    return RecommendRequest(
        settings=Settings(
            strategy=args.strategy,
            history_seconds=history_seconds(args.history_duration),
            cpu_percentile=args.cpu_percentile,
            memory_buffer_percentage=args.memory_buffer_percentage,
            points_required=args.points_required,
        ),
        output="" if args.output == "table" else args.output,
        namespace=args.namespace,
        all_namespaces=args.all_namespaces,
        selector=args.selector,
        history=None if args.prometheus_url else (args.history or args.state_dir / "history.db"),
        prometheus_url=args.prometheus_url,
        kubeconfig=args.kubeconfig,
        context=args.context,
    )


async def run(args: argparse.Namespace) -> int:
    return await run_request(validate(args))
