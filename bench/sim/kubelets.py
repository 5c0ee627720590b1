"""A kubelet simulator: N nodes' /metrics/resource over TLS, in one asyncio process.

Every simulated node listens on its own loopback address, 127.1.B.C port 10250 (node 0
is 127.1.0.1; C runs 1..254, then B moves on), so that a scraper opens one TLS
connection per node, as it would in a cluster. Linux routes all of 127.0.0.0/8 to the
loopback interface, so no setup is needed to bind them.

Each node answers `GET /metrics/resource` with `Authorization: Bearer <token>` only
(401 otherwise), with the text `kubepulse.agent.resource_metrics.render` makes from a
NodeStats of PODS pods x CONTAINERS containers: realistic names (`api-7c9fdb8d4b-x2k9q`
in a handful of namespaces), cumulative CPU = start + rate x elapsed, a working set that
wobbles around a base, container start times hours to weeks ago, and millisecond
timestamps. As a kubelet answers from the stats of its last housekeeping, each node's
answer is rendered every HOUSEKEEPING_S (10 s, cAdvisor's default), the nodes spread
evenly over the interval, from a per-node template that gives byte for byte what
render() gives (checked at start-up), and kept plain and gzip-compressed (level 1), as
the kubelet's promhttp handler compresses when the client accepts gzip. The kubelets
are served by a minimal HTTP/1.1 protocol (keep-alive, answers in order), not aiohttp:
the simulator shares the CPUs with the server under test.

--shape varies what the answers look like (Shape, SHAPES): `kubelet` is a kubelet
1.30's whole answer (the swap families, start times with their own timestamps, sent
chunked as Go does), `unique`
gives every pod its own name prefix, `big` (30 pods of 6 containers,
long names, ~200 KB) and `small`
(20 pods, ~20 KB) change the size, `close` closes the connection after each answer
(a new TLS handshake per scrape), `slow` sends each answer in 8 pieces over 4 s; they
combine with "+". The byte-for-byte check at
start-up holds for every shape (reference_render()).

TLS: one CA, and one serving certificate per node naming its node and IP, as kubelet
serving certificates do (see serving_contexts for why not one shared certificate).

It writes, in --workdir:
- targets.yaml (or .json): one `kind: List` of every Node (InternalIP and Hostname addresses,
  capacity, allocatable, daemonEndpoints.kubeletEndpoint.Port) and every Pod (spec.nodeName,
  containers with requests and limits, labels), as `kubectl get nodes,pods -A -o yaml`
  would, trimmed of fields kubepulse does not read (managedFields, volumes, conditions);
- ca.crt, the CA of the kubelet serving certificates;
- token, the bearer token the kubelets accept;
then prints one line `READY <json>` on stdout and serves until SIGTERM or SIGINT.

A plain-HTTP control endpoint on 127.0.0.1 (`GET /stats`, JSON) reports requests,
refusals and "bursts" of scrape requests separated by more than BURST_GAP_S of silence:
one burst per scrape cycle of the server, which the benchmark uses as cycle boundaries.

Run: .venv/bin/python -m bench.sim.kubelets --nodes 1000 --workdir /tmp/sim
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import ipaddress
import json
import math
import random
import re
import secrets
import signal
import ssl
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from bench.sim.process import raise_fd_limit
from kubepulse import pki
from kubepulse.agent.resource_metrics import _FAMILIES as _AGENT_FAMILIES
from kubepulse.agent.resource_metrics import CONTENT_TYPE, go_float, render
from kubepulse.model import ContainerSample, NodeSample, NodeStats, PodSample, Usage

PODS = 30
CONTAINERS = 2
KUBELET_PORT = 10250
FIRST_ADDRESS = ipaddress.IPv4Address("127.1.0.1")
BURST_GAP_S = 1.0
HOUSEKEEPING_S = 10.0  # cAdvisor's default --housekeeping_interval
HOUSEKEEPING_SLICES = 100
GZIP_LEVEL = 1

NAMESPACES = ("default", "shop", "payments", "search", "monitoring", "ingress", "data")
APPS = (
    "api",
    "web",
    "worker",
    "cart",
    "checkout",
    "catalog",
    "auth",
    "billing",
    "search",
    "indexer",
    "notifier",
    "scheduler",
    "exporter",
    "gateway",
    "cache",
)
SIDECARS = ("istio-proxy", "log-shipper", "envoy", "otel-agent")
# Kubernetes' rand.String alphabet (apimachinery/pkg/util/rand): no vowels, no 0/1/3.
_POD_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

# Long names for the `big` shape: the lengths Kubernetes allows are 63 for a namespace
# and a container (DNS labels) and 253 for a pod (a DNS subdomain); real long ones run
# to 50-120 characters (a Helm release, a chart and a component in one).
LONG_NAMESPACES = tuple(
    f"{team}-{env}-{region}"
    for team in ("payments-platform", "search-relevance", "data-ingestion")
    for env in ("production", "staging")
    for region in ("eu-west-1", "us-east-2")
)
LONG_APPS = tuple(
    f"{release}-{chart}-{component}"
    for release, chart in (
        ("checkout-service-v2", "microservice-chart"),
        ("recommendation-engine", "ml-serving"),
        ("order-events-consumer", "kafka-consumer"),
        ("customer-profile-api", "microservice-chart"),
    )
    for component in ("primary-workload", "background-reconciler", "cache-warmer")
)

# Node overhead beyond its pods: kubelet, container runtime, system daemons.
_SYSTEM_CPU_CORES = 0.15
_SYSTEM_MEMORY = 1_400 * 2**20


# -- shapes ---------------------------------------------------------------------------

# The kubelet's HELP texts for the families the agent's render() leaves out (kubelet
# 1.30, pkg/kubelet/metrics/collectors/resource_metrics.go).
_SWAP_HELP = {
    "container_swap_usage_bytes": "[ALPHA] Current amount of the container swap usage in "
    "bytes. Reported only on non-windows systems",
    "node_swap_usage_bytes": "[ALPHA] Current swap usage of the node in bytes. Reported only "
    "on non-windows systems",
    "pod_swap_usage_bytes": "[ALPHA] Current amount of the pod swap usage in bytes. Reported "
    "only on non-windows systems",
}


@dataclass(frozen=True)
class Shape:
    """What each node's answer looks like: which families, which names, how big.

    Named shapes (SHAPES) combine with "+": `kubelet+unique+big`.
    """

    kubelet: bool = False
    """The whole answer of a kubelet 1.30: the three swap families (zeros, with sample
    timestamps) and container_start_time_seconds with its own timestamp (the start, in
    ms), as the kubelet's collector writes them (NewLazyMetricWithTimestamp), sent
    chunked as Go's net/http sends it (GO_CHUNK). Without it, the answer is what the
    agent's render() writes (no swap, no start timestamps), with a Content-Length."""
    unique: bool = False
    """Every pod its own name prefix: no two pods share a pod-template-hash, so no
    label value repeats across nodes (no replica sets spread over the cluster)."""
    pods: int = PODS
    containers: int = CONTAINERS
    long_names: bool = False
    """Namespaces, apps and containers with names of 30-63 characters, pods of
    110-130 (a Helm release's generated names)."""
    slow: bool = False
    """Every answer sent in SLOW_PIECES pieces over SLOW_SECONDS (a kubelet busy with its
    own work, a congested link): the scraper holds every node's partial answer at once."""
    close: bool = False
    """`Connection: close` on every answer, and the connection closed (an HTTP/1.0-style
    server, or a proxy in front of the kubelet): the scraper makes a new TLS connection,
    with a full handshake, at every scrape of every node."""

    @property
    def name(self) -> str:
        parts = [n for n, s in SHAPES.items() if n != "sim" and s == self]
        if parts:
            return parts[0]
        found = []
        if self.kubelet:
            found.append("kubelet")
        if self.unique:
            found.append("unique")
        if self.long_names and self.containers == SHAPES["big"].containers:
            found.append("big")
        elif self.pods == SHAPES["small"].pods:
            found.append("small")
        if self.slow:
            found.append("slow")
        if self.close:
            found.append("close")
        return "+".join(found) or "sim"


SHAPES = {
    "sim": Shape(),
    "kubelet": Shape(kubelet=True),
    "unique": Shape(unique=True),
    "big": Shape(containers=6, long_names=True),
    "small": Shape(pods=20),
    "close": Shape(close=True),
    "slow": Shape(slow=True),
}
SLOW_PIECES, SLOW_SECONDS = 8, 4.0


def parse_shape(text: str) -> Shape:
    """`sim`, `kubelet`, `unique`, `big`, `small`, or several joined with "+"."""
    fields: dict[str, Any] = {}
    for part in text.split("+"):
        named = SHAPES.get(part.strip())
        if named is None:
            raise ValueError(f"unknown shape {part!r} (known: {', '.join(SHAPES)})")
        for key, value in vars(named).items():
            if value != getattr(SHAPES["sim"], key):
                fields[key] = value
    return Shape(**fields)


# -- the simulated cluster ------------------------------------------------------------


@dataclass(slots=True)
class SimContainer:
    name: str
    start_time: float
    cpu_seconds_at_epoch: float
    """Cumulative CPU at the simulator's epoch (its start), core-seconds."""
    cpu_cores: float
    """Average usage in cores: cumulative CPU grows by this much per second."""
    memory_base: int
    memory_wobble: int
    phase: float
    cpu_request_m: int
    memory_request_mi: int


@dataclass(slots=True)
class SimPod:
    namespace: str
    name: str
    app: str
    template_hash: str
    uid: str
    start_time: float
    containers: list[SimContainer]


@dataclass(slots=True)
class SimNode:
    index: int
    name: str
    address: str
    uid: str
    boot_time: float
    pods: list[SimPod]
    rendered_at: float = 0.0
    cached_plain: bytes = b""
    cached_gzip: bytes = b""
    template: Template | None = None


@dataclass
class Cluster:
    epoch: float
    nodes: list[SimNode]
    by_address: dict[str, SimNode] = field(default_factory=dict)
    shape: Shape = field(default_factory=Shape)

    def __post_init__(self) -> None:
        self.by_address = {n.address: n for n in self.nodes}


def node_address(index: int) -> str:
    """127.1.B.C for node index: 254 nodes per /24, last octet 1..254."""
    block, offset = divmod(index, 254)
    base = int(FIRST_ADDRESS) & ~0xFF
    return str(ipaddress.IPv4Address(base + block * 256 + offset + 1))


def _pod_suffix(rng: random.Random, length: int) -> str:
    return "".join(rng.choice(_POD_ALPHABET) for _ in range(length))


def build_cluster(
    nodes: int,
    pods: int | None = None,
    containers: int | None = None,
    seed: int = 1,
    shape: Shape = SHAPES["sim"],
) -> Cluster:
    """The same cluster for the same arguments: names, rates and sizes are seeded.

    pods and containers (per node, per pod) default to the shape's."""
    pods = shape.pods if pods is None else pods
    containers = shape.containers if containers is None else containers
    rng = random.Random(seed)
    epoch = time.time()
    namespaces, apps = (LONG_NAMESPACES, LONG_APPS) if shape.long_names else (NAMESPACES, APPS)
    # Deployments: (namespace, app, pod-template-hash), each with many replicas spread
    # over the nodes, as a real cluster has.
    deployments = [
        (ns, app, _pod_suffix(rng, 10)) for ns in namespaces for app in apps if rng.random() < 0.7
    ]
    used: set[tuple[str, str]] = set()
    sim_nodes: list[SimNode] = []
    for index in range(nodes):
        name = f"worker-{index:05d}"
        node_pods: list[SimPod] = []
        for _ in range(pods):
            ns, app, template_hash = rng.choice(deployments)
            if shape.unique:
                # A fresh prefix for every pod; the loop below keeps it unique.
                template_hash = _pod_suffix(rng, 10)
            # A long pod name: a generated Deployment name of a Helm release (up to 253).
            prefix = f"{ns}-{app}-deployment" if shape.long_names else app
            while True:
                pod_name = f"{prefix}-{template_hash}-{_pod_suffix(rng, 5)}"
                if (ns, pod_name) not in used:
                    used.add((ns, pod_name))
                    break
            pod_start = epoch - rng.uniform(3600, 21 * 86400)
            sidecar = SIDECARS[int(hashlib.sha1(app.encode()).hexdigest(), 16) % len(SIDECARS)]
            if shape.long_names:
                sidecar = f"{sidecar}-sidecar-for-{app.split('-')[0]}-telemetry"
            names = [app, sidecar, *(f"{app[:50]}-helper-{k}" for k in range(2, containers))]
            sim_containers = []
            for k, cname in enumerate(names[:containers]):
                main = k == 0
                cores = rng.uniform(0.005, 0.6) if main else rng.uniform(0.002, 0.03)
                started = pod_start + rng.uniform(0.5, 5.0)
                base = (
                    rng.randint(60, 900) * 2**20 if main else rng.randint(25, 90) * 2**20
                ) + rng.randint(0, 2**20)
                sim_containers.append(
                    SimContainer(
                        name=cname,
                        start_time=started,
                        cpu_seconds_at_epoch=cores * (epoch - started) * rng.uniform(0.8, 1.2),
                        cpu_cores=cores,
                        memory_base=base,
                        memory_wobble=int(base * rng.uniform(0.01, 0.08)),
                        phase=rng.uniform(0, 2 * math.pi),
                        cpu_request_m=rng.choice((50, 100, 250, 500)) if main else 10,
                        memory_request_mi=rng.choice((128, 256, 512, 1024)) if main else 64,
                    )
                )
            node_pods.append(
                SimPod(
                    namespace=ns,
                    name=pod_name,
                    app=app,
                    template_hash=template_hash,
                    uid=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    start_time=pod_start,
                    containers=sim_containers,
                )
            )
        sim_nodes.append(
            SimNode(
                index=index,
                name=name,
                address=node_address(index),
                uid=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                boot_time=epoch - rng.uniform(86400, 60 * 86400),
                pods=node_pods,
            )
        )
    return Cluster(epoch, sim_nodes, shape=shape)


def node_stats(node: SimNode, now: float, epoch: float) -> NodeStats:
    """What the node's kubelet would report at `now`."""
    elapsed = now - epoch
    pod_samples = []
    node_cpu_ns = int((_SYSTEM_CPU_CORES * (now - node.boot_time)) * 1e9)
    node_memory = _SYSTEM_MEMORY
    for pod in node.pods:
        samples = []
        pod_cpu_ns = 0
        pod_memory = 1_100_000  # the pause container
        for c in pod.containers:
            cpu_ns = int((c.cpu_seconds_at_epoch + c.cpu_cores * elapsed) * 1e9)
            memory = c.memory_base + int(c.memory_wobble * math.sin(now / 90.0 + c.phase))
            pod_cpu_ns += cpu_ns
            pod_memory += memory
            samples.append(
                ContainerSample(
                    name=c.name,
                    start_time=c.start_time,
                    usage=Usage(
                        timestamp=now, cpu_usage_core_nanoseconds=cpu_ns, working_set_bytes=memory
                    ),
                )
            )
        node_cpu_ns += pod_cpu_ns
        node_memory += pod_memory
        pod_samples.append(
            PodSample(
                namespace=pod.namespace,
                name=pod.name,
                uid=pod.uid,
                start_time=pod.start_time,
                containers=tuple(samples),
                usage=Usage(
                    timestamp=now,
                    cpu_usage_core_nanoseconds=pod_cpu_ns + 40_000_000,
                    working_set_bytes=pod_memory,
                ),
            )
        )
    node_sample = NodeSample(
        name=node.name,
        start_time=node.boot_time,
        usage=Usage(
            timestamp=now, cpu_usage_core_nanoseconds=node_cpu_ns, working_set_bytes=node_memory
        ),
    )
    return NodeStats(node_sample, tuple(pod_samples))


def _ms(seconds: float) -> str:
    """A sample timestamp as expfmt writes it: whole milliseconds."""
    return str(round(seconds * 1000))


def _start_ms(seconds: float) -> str:
    """A start time as a timestamp: Go's t.Unix()*1000 + t.Nanosecond()/1e6 truncates."""
    return str(math.floor(seconds * 1000))


def reference_render(node: SimNode, now: float, epoch: float, shape: Shape) -> str:
    """The node's answer computed the slow, obvious way, to check fast_render() against.

    Without shape.kubelet, the agent's own render(). With it, an answer built series by
    series as the kubelet's collector and Prometheus' registry make one: families in
    name order, series in label order, Go's float formatting, the swap families and the
    start times with their own timestamps.
    """
    stats = node_stats(node, now, epoch)
    if not shape.kubelet:
        return render(stats)
    families: dict[str, list[tuple[tuple[str, ...], str, str]]] = {}

    def add(name: str, labels: tuple[str, ...], value: float, stamp: str) -> None:
        families.setdefault(name, []).append((labels, go_float(value), stamp))

    for pod in stats.pods:
        for c in pod.containers:
            labels = (c.name, pod.namespace, pod.name)
            stamp = _ms(c.usage.timestamp)
            add(
                "container_cpu_usage_seconds_total",
                labels,
                c.usage.cpu_usage_core_nanoseconds / 1e9,
                stamp,
            )
            add(
                "container_memory_working_set_bytes",
                labels,
                float(c.usage.working_set_bytes),
                stamp,
            )
            add("container_start_time_seconds", labels, c.start_time, _start_ms(c.start_time))
            add("container_swap_usage_bytes", labels, 0.0, stamp)
        assert pod.usage is not None
        labels, stamp = (pod.namespace, pod.name), _ms(pod.usage.timestamp)
        add(
            "pod_cpu_usage_seconds_total", labels, pod.usage.cpu_usage_core_nanoseconds / 1e9, stamp
        )
        add("pod_memory_working_set_bytes", labels, float(pod.usage.working_set_bytes), stamp)
        add("pod_swap_usage_bytes", labels, 0.0, stamp)
    usage, stamp = stats.node.usage, _ms(stats.node.usage.timestamp)
    add("node_cpu_usage_seconds_total", (), usage.cpu_usage_core_nanoseconds / 1e9, stamp)
    add("node_memory_working_set_bytes", (), float(usage.working_set_bytes), stamp)
    add("node_swap_usage_bytes", (), 0.0, stamp)
    add("resource_scrape_error", (), 0.0, "")
    lines = []
    for name in sorted(families):
        kind, help_text = _FAMILY_TEXTS[name]
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        label_names = (
            ("container", "namespace", "pod")
            if name.startswith("container_")
            else ("namespace", "pod")
        )
        for labels, value, stamp in sorted(families[name]):
            text = ",".join(f'{k}="{v}"' for k, v in zip(label_names, labels, strict=False))
            lines.append(f"{name}{{{text}}} {value}" if labels else f"{name} {value}")
            if stamp:
                lines[-1] += f" {stamp}"
    return "\n".join(lines) + "\n"


_FAMILY_TEXTS: dict[str, tuple[str, str]] = {
    **_AGENT_FAMILIES,
    **{name: ("gauge", text) for name, text in _SWAP_HELP.items()},
}


@dataclass(frozen=True, slots=True)
class Template:
    """A node's answer with everything that does not change precomputed.

    render() sorts the series and builds ~200 model objects per answer; at 5,000 nodes
    scraped every 15 s that alone would take a third of a CPU from the machine the
    server is measured on. The template keeps the order, the label sets, the headers
    and the constant container_start_time_seconds family; fast_render() only formats
    the values. build_templates() checks it against reference_render() byte for byte.
    """

    containers: tuple[tuple[int, int, str], ...]
    """(pod index, container index, label set) in render()'s series order."""
    pods: tuple[tuple[int, str], ...]
    headers: dict[str, str]
    """Family name -> its "# HELP ...\n# TYPE ..." lines."""
    start_block: str
    kubelet: bool


def make_template(node: SimNode, epoch: float, shape: Shape = SHAPES["sim"]) -> Template:
    reference = reference_render(node, epoch, epoch, shape)
    headers: dict[str, str] = {}
    lines = reference.split("\n")
    for i, line in enumerate(lines):
        if line.startswith("# HELP "):
            headers[line.split(" ", 3)[2]] = line + "\n" + lines[i + 1]
    containers = sorted(
        (c.name, pod.namespace, pod.name, p, k)
        for p, pod in enumerate(node.pods)
        for k, c in enumerate(pod.containers)
    )
    container_rows = tuple(
        (p, k, f'{{container="{name}",namespace="{ns}",pod="{pod}"}}')
        for name, ns, pod, p, k in containers
    )
    pods = tuple(
        (p, f'{{namespace="{pod.namespace}",pod="{pod.name}"}}')
        for (_ns, _name), p, pod in sorted(
            ((pod.namespace, pod.name), p, pod) for p, pod in enumerate(node.pods)
        )
    )
    start_name = "container_start_time_seconds"

    def start_line(p: int, k: int, labels: str) -> str:
        start = node.pods[p].containers[k].start_time
        stamp = f" {_start_ms(start)}" if shape.kubelet else ""
        return f"{start_name}{labels} {go_float(start)}{stamp}"

    start_block = "\n".join(
        [headers[start_name]] + [start_line(p, k, labels) for p, k, labels in container_rows]
    )
    return Template(container_rows, pods, headers, start_block, shape.kubelet)


def fast_render(node: SimNode, template: Template, now: float, epoch: float) -> str:
    """What reference_render() returns, computed the same way."""
    elapsed = now - epoch
    ms = f" {_ms(now)}"
    cpu: list[list[int]] = []
    memory: list[list[int]] = []
    pod_cpu: list[int] = []
    pod_memory: list[int] = []
    node_cpu = int((_SYSTEM_CPU_CORES * (now - node.boot_time)) * 1e9)
    node_memory = _SYSTEM_MEMORY
    for pod in node.pods:
        cpus = [int((c.cpu_seconds_at_epoch + c.cpu_cores * elapsed) * 1e9) for c in pod.containers]
        mems = [
            c.memory_base + int(c.memory_wobble * math.sin(now / 90.0 + c.phase))
            for c in pod.containers
        ]
        cpu.append(cpus)
        memory.append(mems)
        total_cpu, total_memory = sum(cpus), 1_100_000 + sum(mems)
        pod_cpu.append(total_cpu + 40_000_000)
        pod_memory.append(total_memory)
        node_cpu += total_cpu
        node_memory += total_memory
    h = template.headers
    swap = template.kubelet
    name = "container_cpu_usage_seconds_total"
    parts = [h[name]]
    parts += [f"{name}{lbl} {go_float(cpu[p][k] / 1e9)}{ms}" for p, k, lbl in template.containers]
    name = "container_memory_working_set_bytes"
    parts.append(h[name])
    parts += [f"{name}{lbl} {go_float(memory[p][k])}{ms}" for p, k, lbl in template.containers]
    parts.append(template.start_block)
    if swap:
        name = "container_swap_usage_bytes"
        parts.append(h[name])
        parts += [f"{name}{lbl} 0{ms}" for _p, _k, lbl in template.containers]
    parts.append(h["node_cpu_usage_seconds_total"])
    parts.append(f"node_cpu_usage_seconds_total {go_float(node_cpu / 1e9)}{ms}")
    parts.append(h["node_memory_working_set_bytes"])
    parts.append(f"node_memory_working_set_bytes {go_float(node_memory)}{ms}")
    if swap:
        parts.append(h["node_swap_usage_bytes"])
        parts.append(f"node_swap_usage_bytes 0{ms}")
    name = "pod_cpu_usage_seconds_total"
    parts.append(h[name])
    parts += [f"{name}{lbl} {go_float(pod_cpu[p] / 1e9)}{ms}" for p, lbl in template.pods]
    name = "pod_memory_working_set_bytes"
    parts.append(h[name])
    parts += [f"{name}{lbl} {go_float(pod_memory[p])}{ms}" for p, lbl in template.pods]
    if swap:
        name = "pod_swap_usage_bytes"
        parts.append(h[name])
        parts += [f"{name}{lbl} 0{ms}" for _p, lbl in template.pods]
    parts.append(h["resource_scrape_error"])
    parts.append("resource_scrape_error 0\n")
    return "\n".join(parts)


def build_templates(cluster: Cluster, checked: int = 20) -> None:
    """A template for every node; the first `checked` must render exactly as
    reference_render() (and so, for the default shape, as the agent's render())."""
    for node in cluster.nodes:
        node.template = make_template(node, cluster.epoch, cluster.shape)
    now = time.time()
    for node in cluster.nodes[:checked]:
        assert node.template is not None
        want = reference_render(node, now, cluster.epoch, cluster.shape)
        got = fast_render(node, node.template, now, cluster.epoch)
        if got != want:
            raise RuntimeError(f"template of {node.name} does not render as render() does")


def payload(node: SimNode, epoch: float, want_gzip: bool) -> bytes:
    """The node's answer as of its last housekeeping (refresh()), at most HOUSEKEEPING_S old."""
    now = time.time()
    if now - node.rendered_at > HOUSEKEEPING_S:
        refresh(node, epoch, now)
    return node.cached_gzip if want_gzip else node.cached_plain


def refresh(node: SimNode, epoch: float, now: float) -> None:
    """One housekeeping of the node: its answer rendered (from its template) and gzipped.

    A kubelet answers from the stats its cAdvisor collected at the last housekeeping
    (every 10 s by default), with that collection's timestamps, not from a fresh read
    per request; so does the simulator, which keeps rendering out of the answers.
    """
    if node.template is None:
        node.template = make_template(node, epoch)
    node.cached_plain = fast_render(node, node.template, now, epoch).encode()
    node.cached_gzip = gzip.compress(node.cached_plain, GZIP_LEVEL, mtime=0)
    node.rendered_at = now


async def housekeeping(cluster: Cluster) -> None:
    """Refresh every node once per HOUSEKEEPING_S, spread evenly over the interval."""
    nodes = cluster.nodes
    step = HOUSEKEEPING_S / HOUSEKEEPING_SLICES
    per_slice = -(-len(nodes) // HOUSEKEEPING_SLICES)
    while True:
        for first in range(0, len(nodes), per_slice):
            now = time.time()
            for node in nodes[first : first + per_slice]:
                refresh(node, cluster.epoch, now)
            await asyncio.sleep(step)


# -- the targets file -------------------------------------------------------------------

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_./-]*")
_YAML_WORDS = frozenset(
    {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~", "nan", "inf"}
)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    if _PLAIN.fullmatch(text) and text.lower() not in _YAML_WORDS:
        return text
    return json.dumps(text)  # a JSON string is a valid YAML double-quoted scalar


def _yaml_lines(value: Any, indent: str) -> Iterator[str]:
    """Block-style YAML, as kubectl writes it; no generic emitter, to stay fast."""
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict) and item:
                yield f"{indent}{key}:"
                yield from _yaml_lines(item, indent + "  ")
            elif isinstance(item, list) and item:
                yield f"{indent}{key}:"
                yield from _yaml_lines(item, indent)
            elif isinstance(item, dict | list):
                yield f"{indent}{key}: {'{}' if isinstance(item, dict) else '[]'}"
            else:
                yield f"{indent}{key}: {_scalar(item)}"
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict | list) and item:
                lines = list(_yaml_lines(item, indent + "  "))
                yield f"{indent}- {lines[0].lstrip()}"
                yield from lines[1:]
            else:
                yield f"{indent}- {_scalar(item)}"
    else:
        yield f"{indent}{_scalar(value)}"


def _rfc3339(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def node_object(node: SimNode) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node.name,
            "uid": node.uid,
            "creationTimestamp": _rfc3339(node.boot_time),
            "labels": {
                "beta.kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": node.name,
                "kubernetes.io/os": "linux",
                "node.kubernetes.io/instance-type": "m6i.2xlarge",
                "topology.kubernetes.io/region": "eu-west-1",
                "topology.kubernetes.io/zone": f"eu-west-1{'abc'[node.index % 3]}",
            },
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {"podCIDR": f"10.{node.index // 256}.{node.index % 256}.0/24"},
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": node.address},
                {"type": "Hostname", "address": node.name},
            ],
            "capacity": {
                "cpu": "8",
                "ephemeral-storage": "104845292Ki",
                "memory": "32386524Ki",
                "pods": "110",
            },
            "allocatable": {
                "cpu": "7910m",
                "ephemeral-storage": "95551679124",
                "memory": "31369692Ki",
                "pods": "110",
            },
            "daemonEndpoints": {"kubeletEndpoint": {"Port": KUBELET_PORT}},
            "nodeInfo": {
                "kubeletVersion": "v1.30.4",
                "containerRuntimeVersion": "containerd://1.7.20",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        },
    }


def pod_object(pod: SimPod, node: SimNode) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod.name,
            "namespace": pod.namespace,
            "uid": pod.uid,
            "creationTimestamp": _rfc3339(pod.start_time - 2),
            "generateName": f"{pod.app}-{pod.template_hash}-",
            "labels": {"app": pod.app, "pod-template-hash": pod.template_hash},
        },
        "spec": {
            "nodeName": node.name,
            "containers": [
                {
                    "name": c.name,
                    "image": f"registry.example.com/{pod.namespace}/{c.name}:1.{k}.{pod.uid[:2]}",
                    "resources": {
                        "requests": {
                            "cpu": f"{c.cpu_request_m}m",
                            "memory": f"{c.memory_request_mi}Mi",
                        },
                        "limits": {"memory": f"{c.memory_request_mi * 2}Mi"},
                    },
                }
                for k, c in enumerate(pod.containers)
            ],
        },
        "status": {
            "phase": "Running",
            "hostIP": node.address,
            "startTime": _rfc3339(pod.start_time),
        },
    }


def write_targets_json(cluster: Cluster, path: Path, pod_objects: bool = True) -> None:
    """The same `kind: List` as JSON, as `kubectl get nodes,pods -A -o json` writes it."""
    with path.open("w") as out:
        out.write('{\n    "apiVersion": "v1",\n    "items": [\n')
        for index, node in enumerate(cluster.nodes):
            out.write(("" if index == 0 else ",\n") + json.dumps(node_object(node), indent=4))
        if pod_objects:
            for node in cluster.nodes:
                for pod in node.pods:
                    out.write(",\n" + json.dumps(pod_object(pod, node), indent=4))
        out.write('\n    ],\n    "kind": "List",\n')
        out.write('    "metadata": {\n        "resourceVersion": ""\n    }\n}\n')


def write_targets(cluster: Cluster, path: Path, pod_objects: bool = True) -> None:
    """One `kind: List` of the nodes, then (unless pod_objects is False) their pods."""
    with path.open("w") as out:
        out.write('apiVersion: v1\nkind: List\nmetadata:\n  resourceVersion: ""\nitems:\n')
        for node in cluster.nodes:
            out.write("\n".join(_yaml_lines([node_object(node)], "")) + "\n")
        if not pod_objects:
            return
        for node in cluster.nodes:
            for pod in node.pods:
                out.write("\n".join(_yaml_lines([pod_object(pod, node)], "")) + "\n")


# -- TLS --------------------------------------------------------------------------------


def serving_contexts(cluster: Cluster, workdir: Path) -> tuple[Path, dict[str, ssl.SSLContext]]:
    """The CA file, and an SSL context for each node address, one certificate per node.

    Each certificate names its node (DNS) and its IP, as a kubelet serving certificate
    does. Not one shared certificate with every IP: a client keeps the decoded peer
    certificate of every connection (asyncio stores it in the transport's extra info),
    so a certificate with hundreds of SANs would inflate the scraper's memory by tens
    of KiB per node, which real kubelets do not.
    """
    ca = pki.new_ca("kubelet-sim-ca")
    ca_file = workdir / "ca.crt"
    ca.write(ca_file, workdir / "ca.key")
    certs = workdir / "kubelets"
    certs.mkdir(exist_ok=True)
    contexts: dict[str, ssl.SSLContext] = {}
    for node in cluster.nodes:
        pair = pki.issue(
            ca, node.name, dns_names=[node.name], ips=[ipaddress.IPv4Address(node.address)]
        )
        cert_file, key_file = certs / f"{node.name}.crt", certs / f"{node.name}.key"
        pair.write(cert_file, key_file)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(cert_file, key_file)
        contexts[node.address] = ctx
    return ca_file, contexts


# -- serving ----------------------------------------------------------------------------


@dataclass
class Stats:
    requests: int = 0
    unauthorized: int = 0
    not_found: int = 0
    gzip: int = 0
    renders_started: int = 0
    bytes_sent: int = 0
    bursts: list[list[float]] = field(default_factory=list)
    """[first request time, last request time, requests] per burst; epoch seconds."""

    def request_at(self, now: float) -> None:
        self.requests += 1
        if self.bursts and now - self.bursts[-1][1] <= BURST_GAP_S:
            burst = self.bursts[-1]
            burst[1] = now
            burst[2] += 1
        else:
            self.bursts.append([now, now, 1])


class Simulator:
    def __init__(self, cluster: Cluster, token: str) -> None:
        self.cluster = cluster
        self.expected = f"Bearer {token}"
        self.stats = Stats()

    def answer(self, node: SimNode | None, head: bytes) -> bytes:
        """The whole HTTP/1.1 answer to one request head (request line and headers)."""
        lines = head.decode("latin-1").split("\r\n")
        method, _, rest = lines[0].partition(" ")
        target = rest.partition(" ")[0]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("authorization") != self.expected:
            self.stats.unauthorized += 1
            return _response(401, "Unauthorized", b"Unauthorized")
        if node is None or method != "GET" or target.partition("?")[0] != "/metrics/resource":
            self.stats.not_found += 1
            return _response(404, "Not Found", b"404 page not found")
        self.stats.request_at(time.time())
        want_gzip = "gzip" in headers.get("accept-encoding", "")
        body = payload(node, self.cluster.epoch, want_gzip)
        self.stats.bytes_sent += len(body)
        if want_gzip:
            self.stats.gzip += 1
        shape = self.cluster.shape
        return _response(200, "OK", body, want_gzip, chunked=shape.kubelet, close=shape.close)

    async def stats_handler(self, _request: web.Request) -> web.Response:
        s = self.stats
        return web.json_response(
            {
                "time": time.time(),
                "requests": s.requests,
                "unauthorized": s.unauthorized,
                "not_found": s.not_found,
                "gzip": s.gzip,
                "bytes_sent": s.bytes_sent,
                "bursts": s.bursts,
            }
        )


GO_CHUNK = 4096
"""Go's net/http sends a body it was not told the length of in chunks of its 4 KiB
response buffer (promhttp sets no Content-Length, so a kubelet's answer is chunked)."""


def _response(
    status: int,
    reason: str,
    body: bytes,
    gzipped: bool = False,
    chunked: bool = False,
    close: bool = False,
) -> bytes:
    encoding = "Content-Encoding: gzip\r\n" if gzipped else ""
    encoding += "Connection: close\r\n" if close else ""
    content_type = CONTENT_TYPE if status == 200 else "text/plain; charset=utf-8"
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(body)}"
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n{encoding}{framing}\r\n\r\n"
    ).encode()
    if not chunked:
        return head + body
    parts = [head]
    for start in range(0, len(body), GO_CHUNK):
        piece = body[start : start + GO_CHUNK]
        parts += (f"{len(piece):x}\r\n".encode(), piece, b"\r\n")
    parts.append(b"0\r\n\r\n")
    return b"".join(parts)


class KubeletProtocol(asyncio.Protocol):
    """One kubelet connection: HTTP/1.1 GETs, kept alive, answered in order.

    A minimal server rather than aiohttp's: 5,000 simulated kubelets share the CPUs
    with the server under test, and what the benchmark measures is the server.
    """

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.node: SimNode | None = None
        self.transport: asyncio.Transport | None = None
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sockname = transport.get_extra_info("sockname")
        self.node = self.sim.cluster.by_address.get(sockname[0]) if sockname else None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
            assert self.transport is not None
            shape = self.sim.cluster.shape
            answer = self.sim.answer(self.node, head)
            if shape.slow:
                self._dribble(answer, shape.close)
                return  # a scraper asks again only once it has the whole answer
            self.transport.write(answer)
            if shape.close:
                self.transport.close()  # after what was written is sent
                return
            if b"\r\nconnection: close" in head.lower():
                self.transport.close()
                return
        if len(self.buffer) > 65536:
            assert self.transport is not None
            self.transport.close()

    def _dribble(self, answer: bytes, close: bool) -> None:
        """The answer in SLOW_PIECES pieces, one every SLOW_SECONDS / SLOW_PIECES."""
        loop = asyncio.get_running_loop()
        size = -(-len(answer) // SLOW_PIECES)
        pieces = [answer[i : i + size] for i in range(0, len(answer), size)]

        def send(i: int) -> None:
            transport = self.transport
            if transport is None or transport.is_closing():
                return
            transport.write(pieces[i])
            if i + 1 < len(pieces):
                loop.call_later(SLOW_SECONDS / SLOW_PIECES, send, i + 1)
            elif close:
                transport.close()

        send(0)


async def serve(args: argparse.Namespace) -> int:
    raise_fd_limit()
    workdir: Path = args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    shape = args.shape
    cluster = build_cluster(args.nodes, args.pods, args.containers, args.seed, shape)
    pods = len(cluster.nodes[0].pods) if cluster.nodes else 0
    containers = len(cluster.nodes[0].pods[0].containers) if pods else 0
    token = secrets.token_hex(16)
    token_file = workdir / "token"
    token_file.write_text(token + "\n")
    targets = workdir / f"targets.{args.targets_format}"
    if args.targets_format == "json":
        write_targets_json(cluster, targets, pod_objects=not args.no_pod_objects)
    else:
        write_targets(cluster, targets, pod_objects=not args.no_pod_objects)
    ca_file, contexts = serving_contexts(cluster, workdir)
    build_templates(cluster)
    sim = Simulator(cluster, token)

    loop = asyncio.get_running_loop()
    servers = []
    for node in cluster.nodes:
        servers.append(
            await loop.create_server(
                lambda: KubeletProtocol(sim),
                node.address,
                args.port,
                ssl=contexts[node.address],
                backlog=64,
            )
        )
    for node in cluster.nodes:
        refresh(node, cluster.epoch, time.time())
    refresher = asyncio.create_task(housekeeping(cluster))

    control_app = web.Application()
    control_app.router.add_get("/stats", sim.stats_handler)
    control = web.AppRunner(control_app, access_log=None, handle_signals=False)
    await control.setup()
    control_site = web.TCPSite(control, "127.0.0.1", args.control_port)
    await control_site.start()
    server = control_site._server
    sockets = getattr(server, "sockets", None) or []
    control_port = sockets[0].getsockname()[1]

    ready = {
        "nodes": args.nodes,
        "pods": args.nodes * pods,
        "containers": args.nodes * pods * containers,
        "pods_per_node": pods,
        "containers_per_pod": containers,
        "shape": shape.name,
        "answer_bytes": len(cluster.nodes[0].cached_plain) if cluster.nodes else 0,
        "targets": str(targets),
        "ca": str(ca_file),
        "token_file": str(token_file),
        "control": f"http://127.0.0.1:{control_port}",
        "first_address": cluster.nodes[0].address if cluster.nodes else None,
        "last_address": cluster.nodes[-1].address if cluster.nodes else None,
        "port": args.port,
        "setup_seconds": round(time.monotonic() - started, 2),
        "targets_bytes": targets.stat().st_size,
        "pod_objects": not args.no_pod_objects,
        "targets_format": args.targets_format,
    }
    print("READY " + json.dumps(ready), flush=True)

    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    refresher.cancel()
    await control.cleanup()
    for kubelet in servers:
        kubelet.close()
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--nodes", type=int, required=True)
    p.add_argument("--workdir", type=Path, required=True)
    p.add_argument("--pods", type=int, help="pods per node (default: the shape's, 30)")
    p.add_argument("--containers", type=int, help="containers per pod (default: the shape's, 2)")
    p.add_argument(
        "--shape",
        type=parse_shape,
        default=SHAPES["sim"],
        help="what each answer looks like: sim (default: the agent's render(), ~31 KB), "
        "kubelet (a kubelet 1.30's whole answer: swap families, start-time timestamps), "
        "unique (no pod name prefix shared by two pods), big (6 containers a pod, long "
        "names, ~200 KB), small (20 pods, ~20 KB); combine with +, e.g. kubelet+unique+big",
    )
    p.add_argument("--port", type=int, default=KUBELET_PORT)
    p.add_argument("--control-port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--targets-format",
        choices=("yaml", "json"),
        default="yaml",
        help="targets file as `kubectl get nodes,pods -A -o yaml` or `-o json` writes it",
    )
    p.add_argument(
        "--no-pod-objects",
        action="store_true",
        help="write only the Node objects to targets.yaml (the server then lists scraped pods)",
    )
    args = p.parse_args(argv)
    if not 1 <= args.nodes <= 254 * 254:
        p.error("--nodes must be between 1 and 64516")
    return args


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(serve(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
