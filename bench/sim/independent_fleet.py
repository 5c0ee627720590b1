#!/usr/bin/env python3
"""A fleet of simulated kubelets (1.30-style /metrics/resource) on loopback.

Written from scratch, without reading bench/sim/kubelets.py, to cross-check what the
server is measured against (bench.fleet_memory runs it).

  python -m bench.sim.independent_fleet gen --nodes N --dir DIR   CA, certs, nodes-N.json
  python -m bench.sim.independent_fleet serve --nodes N --dir DIR [--shard k/K]

Node i (0-based) listens on 127.1.(i // 250).(i % 250 + 1):10250, HTTPS with its own
ECDSA P-256 serving certificate (SAN IP = its address) signed by the fleet CA, and
answers GET /metrics/resource to `Authorization: Bearer <token>` (401 otherwise).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import email.utils
import json
import math
import os
import random
import resource
import secrets
import ssl
import sys
import time
import uuid
import zlib
from decimal import Decimal
from pathlib import Path
from typing import Any

PODS_PER_NODE = 30
PORT = 10250
NODE_CORES = 16
NODE_MEM_KI = 65851340  # ~62.8 GiB, as a 64 GiB machine reports
HOUSEKEEPING = 10.0  # cadvisor's default housekeeping interval: samples are this old at most

# --------------------------------------------------------------------------- addresses


def node_address(i: int) -> str:
    return f"127.1.{i // 250}.{i % 250 + 1}"


def node_name(i: int) -> str:
    return f"kp-worker-{i:04d}"


# --------------------------------------------------------------------------- Go floats


def gofloat_ref(x: float) -> str:
    """strconv.FormatFloat(x, 'g', -1, 64) as Prometheus' expfmt writes it (reference)."""
    if x == 0:
        return "0"
    if x == 1:
        return "1"
    if x == -1:
        return "-1"
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    sign, digits, exp = Decimal(repr(x)).normalize().as_tuple()
    ds = "".join(map(str, digits))
    nd = len(ds)
    dp = nd + exp  # position of the decimal point relative to the digits
    e = dp - 1
    neg = "-" if sign else ""
    if e < -4 or e >= 6:  # shortest: %e when exp < -4 || exp >= 6 (eprec = 6)
        mant = ds[0] + ("." + ds[1:] if nd > 1 else "")
        es = "-" if e < 0 else "+"
        ae = abs(e)
        return f"{neg}{mant}e{es}{ae:02d}"
    if dp <= 0:
        return f"{neg}0.{'0' * (-dp)}{ds}"
    if dp >= nd:
        return f"{neg}{ds}{'0' * (dp - nd)}"
    return f"{neg}{ds[:dp]}.{ds[dp:]}"


def gofloat(x: float) -> str:
    """The same as gofloat_ref, fast: Python's repr is also the shortest round-trip form."""
    if x == 0:
        return "0"
    r = repr(x)
    if "e" in r or "n" in r:  # Python and Go agree on e-notation (2-digit exponent)
        return gofloat_ref(x)
    if r.endswith(".0"):
        r = r[:-2]
    a = -x if x < 0 else x
    if a < 1e6:
        return r  # Go: exponent in [-4, 5] is positional, as Python's repr here
    neg = "-" if x < 0 else ""
    ip, _, fp = r.lstrip("-").partition(".")
    ds = (ip + fp).rstrip("0")
    e = len(ip) - 1
    return f"{neg}{ds[0]}{'.' + ds[1:] if len(ds) > 1 else ''}e+{e:02d}"


# --------------------------------------------------------------------------- layout

SAFE = "bcdfghjklmnpqrstvwxz2456789"  # k8s rand.SafeEncodeString alphabet
HEX = "0123456789abcdef"

NAMESPACES = {
    "default": ["web", "api", "worker"],
    "payments": ["payments-api", "ledger", "fraud-scorer", "refund-worker"],
    "checkout": ["checkout", "cart", "pricing", "promotions"],
    "search": ["search-frontend", "indexer", "query-router"],
    "frontend": ["storefront", "bff", "image-resizer", "ssr-renderer"],
    "auth": ["oauth-proxy", "identity", "session-store"],
    "data": ["etl-runner", "feature-store", "schema-registry"],
    "ml-serving": ["recommender", "ranker", "embedding-svc"],
    "kube-system": ["coredns", "metrics-gateway", "cluster-autoscaler"],
    "monitoring": ["grafana", "alertmanager-proxy", "kube-state-metrics"],
    "ingress-nginx": ["ingress-nginx-controller"],
    "cert-manager": ["cert-manager", "cert-manager-webhook"],
}
STATEFULSETS = [
    ("data", "postgres", ("postgres", "metrics-exporter")),
    ("data", "kafka", ("kafka", "jmx-exporter")),
    ("data", "zookeeper", ("zookeeper", "jmx-exporter")),
    ("default", "redis", ("redis", "redis-exporter")),
    ("search", "elasticsearch", ("elasticsearch", "es-exporter")),
    ("monitoring", "prometheus", ("prometheus", "config-reloader")),
]
SIDECARS = ["istio-proxy", "envoy", "linkerd-proxy", "log-shipper", "oauth2-proxy"]
DAEMONSETS = [
    ("monitoring", "node-exporter", ("node-exporter", "kube-rbac-proxy")),
    ("logging", "fluent-bit", ("fluent-bit", "config-reloader")),
]
JOBS = [("data", "nightly-report"), ("default", "db-migrate"), ("ml-serving", "retrain")]


def rand_str(rng: random.Random, n: int, alphabet: str = SAFE) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


class Container:
    __slots__ = ("hk", "labels", "mem", "name", "period", "phase", "rate", "start")

    def __init__(self, rng: random.Random, name: str, start: float, heavy: bool):
        self.name = name
        self.start = start
        # cores used on average; lognormal, a few busy ones
        self.rate = min(4.0, rng.lognormvariate(math.log(0.25 if heavy else 0.01), 1.0))
        self.mem = rng.lognormvariate(math.log(600e6 if heavy else 40e6), 0.7)
        self.phase = rng.uniform(0, 2 * math.pi)
        self.period = rng.uniform(120, 900)
        self.hk = rng.uniform(0, HOUSEKEEPING)  # its housekeeping phase
        self.labels = ""

    def sample_time(self, now: float) -> float:
        return math.floor((now - self.hk) / HOUSEKEEPING) * HOUSEKEEPING + self.hk

    def cpu_ns(self, t: float) -> int:
        p = self.period
        age = max(t - self.start, 0.0)
        # derivative rate*(1 + 0.3cos) >= 0.7 rate: always increasing
        v = self.rate * (age + 0.3 * p * (math.sin(t / p) - math.sin(self.start / p)))
        return int(v * 1e9)

    def mem_bytes(self, t: float) -> int:
        v = self.mem * (1 + 0.1 * math.sin(t / self.period + self.phase))
        return int(v) // 4096 * 4096


class PodSim:
    __slots__ = ("containers", "hk", "labels", "name", "namespace")

    def __init__(self, namespace: str, name: str, containers: list[Container], hk: float):
        self.namespace = namespace
        self.name = name
        self.containers = containers
        self.hk = hk
        self.labels = f'namespace="{namespace}",pod="{name}"'


def build_cluster(n: int, seed: int, epoch: float) -> list[list[PodSim]]:
    """30 pods of 2 containers per node, names unique across the cluster."""
    rng = random.Random(seed)
    deployments = []  # (ns, name, hash, containers)
    for ns, apps in NAMESPACES.items():
        for app in apps:
            for v in range(max(1, n // 40)):  # one deployment per app and cell at scale
                name = app if v == 0 else f"{app}-cell{v}"
                deployments.append((ns, name, rand_str(rng, 10, HEX), (app, rng.choice(SIDECARS))))
    sts_ordinals: dict[tuple[str, str], int] = {}
    used: set[tuple[str, str]] = set()
    cluster = []
    for _ in range(n):
        pods: list[PodSim] = []
        specs: list[tuple[str, str, tuple[str, str]]] = []
        for ns, ds, cnames in DAEMONSETS:
            specs.append((ns, f"{ds}-{rand_str(rng, 5)}", cnames))
        while len(specs) < PODS_PER_NODE:
            r = rng.random()
            if r < 0.82:
                ns, app, h, cnames = rng.choice(deployments)
                specs.append((ns, f"{app}-{h}-{rand_str(rng, 5)}", cnames))
            elif r < 0.95:
                ns, sts, cnames = rng.choice(STATEFULSETS)
                shard = rng.randrange(max(1, n // 20))
                key = (ns, f"{sts}-{shard}" if shard else sts)
                o = sts_ordinals.get(key, 0)
                sts_ordinals[key] = o + 1
                specs.append((ns, f"{key[1]}-{o}", cnames))
            else:
                ns, job = rng.choice(JOBS)
                specs.append(
                    (
                        ns,
                        f"{job}-{rng.randrange(28_000_000, 29_000_000)}-{rand_str(rng, 5)}",
                        (job, "istio-proxy"),
                    )
                )
        for ns, name, cnames in specs:
            if (ns, name) in used:  # astronomically rare; keep names unique
                name = f"{name}-{rand_str(rng, 3)}"
            used.add((ns, name))
            pod_start = epoch - rng.uniform(3600, 20 * 86400)
            containers = []
            for j, cn in enumerate(cnames):
                c = Container(rng, cn, pod_start + rng.uniform(0.5, 8.0) + j, heavy=(j == 0))
                c.labels = f'container="{cn}",namespace="{ns}",pod="{name}"'
                containers.append(c)
            pods.append(PodSim(ns, name, containers, rng.uniform(0, HOUSEKEEPING)))
        cluster.append(pods)
    return cluster


# --------------------------------------------------------------------------- exposition

HELP = {
    "container_cpu_usage_seconds_total": (
        "[STABLE] Cumulative cpu time consumed by the container in core-seconds",
        "counter",
    ),
    "container_memory_working_set_bytes": (
        "[STABLE] Current working set of the container in bytes",
        "gauge",
    ),
    "container_start_time_seconds": (
        "[STABLE] Start time of the container since unix epoch in seconds",
        "gauge",
    ),
    "container_swap_usage_bytes": (
        "[ALPHA] Current amount of the container swap usage in bytes."
        " Reported only on non-windows systems",
        "gauge",
    ),
    "node_cpu_usage_seconds_total": (
        "[STABLE] Cumulative cpu time consumed by the node in core-seconds",
        "counter",
    ),
    "node_memory_working_set_bytes": ("[STABLE] Current working set of the node in bytes", "gauge"),
    "node_swap_usage_bytes": (
        "[ALPHA] Current swap usage of the node in bytes. Reported only on non-windows systems",
        "gauge",
    ),
    "pod_cpu_usage_seconds_total": (
        "[STABLE] Cumulative cpu time consumed by the pod in core-seconds",
        "counter",
    ),
    "pod_memory_working_set_bytes": ("[STABLE] Current working set of the pod in bytes", "gauge"),
    "pod_swap_usage_bytes": (
        "[ALPHA] Current amount of the pod swap usage in bytes."
        " Reported only on non-windows systems",
        "gauge",
    ),
    "resource_scrape_error": (
        "[STABLE] 1 if there was an error while getting container metrics, 0 otherwise",
        "gauge",
    ),
}


def header(name: str) -> str:
    h, t = HELP[name]
    return f"# HELP {name} {h}\n# TYPE {name} {t}\n"


class NodeSim:
    def __init__(self, i: int, pods: list[PodSim], epoch: float, seed: int):
        rng = random.Random(seed * 1_000_003 + i)
        self.i = i
        self.pods = pods
        # families sort their series by label values (container, namespace, pod)
        self.containers = sorted(
            ((c, p) for p in pods for c in p.containers),
            key=lambda cp: (cp[0].name, cp[1].namespace, cp[1].name),
        )
        self.sorted_pods = sorted(pods, key=lambda p: (p.namespace, p.name))
        self.boot = epoch - 21 * 86400 - rng.uniform(0, 86400)
        self.sys_rate = rng.uniform(0.2, 0.6)
        self.sys_mem = rng.uniform(0.8e9, 1.6e9)
        self.hk = rng.uniform(0, HOUSEKEEPING)
        self.start_lines = "".join(
            f"container_start_time_seconds{{{c.labels}}} {gofloat(c.start)} {int(c.start * 1000)}\n"
            for c, _ in self.containers
        )
        self.scrapes = 0

    def render(self, now: float) -> bytes:
        out = []
        ctimes = {}
        cpu_l, mem_l, swap_l = [], [], []
        for c, _ in self.containers:
            t = c.sample_time(now)
            ctimes[id(c)] = t
            ts = int(t * 1000)
            cpu_l.append(
                f"container_cpu_usage_seconds_total{{{c.labels}}}"
                f" {gofloat(c.cpu_ns(t) / 1e9)} {ts}\n"
            )
            mem_l.append(
                f"container_memory_working_set_bytes{{{c.labels}}}"
                f" {gofloat(float(c.mem_bytes(t)))} {ts}\n"
            )
            swap_l.append(f"container_swap_usage_bytes{{{c.labels}}} 0 {ts}\n")
        out.append(header("container_cpu_usage_seconds_total"))
        out.extend(cpu_l)
        out.append(header("container_memory_working_set_bytes"))
        out.extend(mem_l)
        out.append(header("container_start_time_seconds"))
        out.append(self.start_lines)
        out.append(header("container_swap_usage_bytes"))
        out.extend(swap_l)
        # node: root cgroup
        tn = math.floor((now - self.hk) / HOUSEKEEPING) * HOUSEKEEPING + self.hk
        tsn = int(tn * 1000)
        node_cpu = self.sys_rate * (tn - self.boot) * 1e9 + sum(
            c.cpu_ns(tn) for c, _ in self.containers
        )
        node_mem = self.sys_mem + sum(c.mem_bytes(tn) for c, _ in self.containers)
        out.append(header("node_cpu_usage_seconds_total"))
        out.append(f"node_cpu_usage_seconds_total {gofloat(int(node_cpu) / 1e9)} {tsn}\n")
        out.append(header("node_memory_working_set_bytes"))
        out.append(
            f"node_memory_working_set_bytes {gofloat(float(int(node_mem) // 4096 * 4096))} {tsn}\n"
        )
        out.append(header("node_swap_usage_bytes"))
        out.append(f"node_swap_usage_bytes 0 {tsn}\n")
        pcpu, pmem, pswap = [], [], []
        for p in self.sorted_pods:
            tp = math.floor((now - p.hk) / HOUSEKEEPING) * HOUSEKEEPING + p.hk
            tsp = int(tp * 1000)
            cpu = sum(c.cpu_ns(tp) for c in p.containers) + int((tp - p.containers[0].start) * 2e5)
            mem = sum(c.mem_bytes(tp) for c in p.containers) + 335872  # + the pause container
            pcpu.append(f"pod_cpu_usage_seconds_total{{{p.labels}}} {gofloat(cpu / 1e9)} {tsp}\n")
            pmem.append(f"pod_memory_working_set_bytes{{{p.labels}}} {gofloat(float(mem))} {tsp}\n")
            pswap.append(f"pod_swap_usage_bytes{{{p.labels}}} 0 {tsp}\n")
        out.append(header("pod_cpu_usage_seconds_total"))
        out.extend(pcpu)
        out.append(header("pod_memory_working_set_bytes"))
        out.extend(pmem)
        out.append(header("pod_swap_usage_bytes"))
        out.extend(pswap)
        out.append(header("resource_scrape_error"))
        out.append("resource_scrape_error 0\n")
        return "".join(out).encode()


# --------------------------------------------------------------------------- HTTP


class Stats:
    def __init__(self) -> None:
        self.ok = 0
        self.unauth = 0
        self.other = 0
        self.conns = 0
        self.open = 0
        self.bytes = 0
        self.render_s = 0.0
        self.nodes_seen: set[int] = set()


STATS = Stats()


def http_date() -> str:
    return email.utils.formatdate(usegmt=True)


def chunked(body: bytes, size: int = 4096) -> bytes:
    parts = []
    for k in range(0, len(body), size):
        piece = body[k : k + size]
        parts.append(b"%x\r\n" % len(piece) + piece + b"\r\n")
    parts.append(b"0\r\n\r\n")
    return b"".join(parts)


class KubeletProtocol(asyncio.Protocol):
    MAX_HEAD = 1 << 20

    def __init__(self, node: NodeSim, token: bytes):
        self.node = node
        self.token = token
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport):  # type: ignore[override]
        self.transport = transport
        STATS.conns += 1
        STATS.open += 1

    def connection_lost(self, exc):  # type: ignore[override]
        STATS.open -= 1
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while self.transport is not None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > self.MAX_HEAD:
                    self.transport.close()
                return
            head, self.buf = self.buf[:end], self.buf[end + 4 :]
            self.handle(head)

    def handle(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        try:
            method, target, version = lines[0].split(b" ", 2)
        except ValueError:
            self.reply(400, b"text/plain; charset=utf-8", b"400 Bad Request", close=True)
            return
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            headers[k.strip().lower()] = v.strip()
        if int(headers.get(b"content-length", b"0") or 0):
            self.reply(400, b"text/plain; charset=utf-8", b"400 Bad Request", close=True)
            return
        close = headers.get(b"connection", b"").lower() == b"close" or version == b"HTTP/1.0"
        auth = headers.get(b"authorization", b"")
        if not (
            auth[:7].lower() == b"bearer " and secrets.compare_digest(auth[7:].strip(), self.token)
        ):
            STATS.unauth += 1
            self.reply(
                401,
                b"text/plain; charset=utf-8",
                b"Unauthorized\n",
                close=close,
                extra=b"X-Content-Type-Options: nosniff\r\n",
            )
            return
        path = target.split(b"?", 1)[0]
        if method != b"GET" or path != b"/metrics/resource":
            STATS.other += 1
            self.reply(
                404,
                b"text/plain; charset=utf-8",
                b"404 page not found\n",
                close=close,
                extra=b"X-Content-Type-Options: nosniff\r\n",
            )
            return
        t0 = time.perf_counter()
        body = self.node.render(time.time())
        gz = b"gzip" in headers.get(b"accept-encoding", b"").lower()
        if gz:
            co = zlib.compressobj(6, zlib.DEFLATED, 31)
            body = co.compress(body) + co.flush()
        STATS.render_s += time.perf_counter() - t0
        STATS.ok += 1
        STATS.nodes_seen.add(self.node.i)
        self.node.scrapes += 1
        self.reply(
            200,
            b"text/plain; version=0.0.4; charset=utf-8",
            body,
            close=close,
            extra=(b"Content-Encoding: gzip\r\n" if gz else b"") + b"Vary: Accept-Encoding\r\n",
            chunk=True,
        )

    def reply(
        self,
        code: int,
        ctype: bytes,
        body: bytes,
        close: bool,
        extra: bytes = b"",
        chunk: bool = False,
    ) -> None:
        reason = {200: b"OK", 400: b"Bad Request", 401: b"Unauthorized", 404: b"Not Found"}[code]
        h = [
            b"HTTP/1.1 %d %s\r\n" % (code, reason),
            extra,
            b"Content-Type: " + ctype + b"\r\n",
            b"Date: " + http_date().encode() + b"\r\n",
        ]
        if close:
            h.append(b"Connection: close\r\n")
        if chunk:
            h.append(b"Transfer-Encoding: chunked\r\n\r\n")
            payload = chunked(body)
        else:
            h.append(b"Content-Length: %d\r\n\r\n" % len(body))
            payload = body
        STATS.bytes += len(payload)
        assert self.transport is not None
        self.transport.write(b"".join(h) + payload)
        if close:
            self.transport.close()


# --------------------------------------------------------------------------- gen


def key_usage(ca: bool) -> Any:
    """Signing, and for the CA certificate and CRL signing too."""
    from cryptography import x509

    return x509.KeyUsage(
        digital_signature=True,
        key_cert_sign=ca,
        crl_sign=ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        encipher_only=False,
        decipher_only=False,
    )


def gen(args: argparse.Namespace) -> None:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    d = Path(args.dir)
    pki = d / "pki"
    pki.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_crt, ca_key_p = pki / "ca.crt", pki / "ca.key"
    if ca_crt.exists():
        ca_key = serialization.load_pem_private_key(ca_key_p.read_bytes(), None)
        ca_cert = x509.load_pem_x509_certificate(ca_crt.read_bytes())
    else:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fleet-kubelet-ca")])
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(key_usage(ca=True), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        ca_key_p.write_bytes(
            ca_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        ca_crt.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    made = 0
    for i in range(args.nodes):
        p = pki / f"node-{i}.pem"
        if p.exists():
            continue
        key = ec.generate_private_key(ec.SECP256R1())
        addr = node_address(i)
        cert = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{node_name(i)}@fleet")])
            )
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName(node_name(i)), x509.IPAddress(ipaddress.ip_address(addr))]
                ),
                critical=False,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(key_usage(ca=False), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        p.write_bytes(
            cert.public_bytes(serialization.Encoding.PEM)
            + key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        made += 1
    tok = d / "kubelet-token"
    if not tok.exists():
        tok.write_text(secrets.token_urlsafe(32) + "\n")
    api = d / "tokens.csv"
    if not api.exists():
        api.write_text(
            f'{secrets.token_urlsafe(32)},fleet-admin,uid-fleet-admin,"system:masters"\n'
        )
    meta = d / "meta.json"
    if not meta.exists():
        meta.write_text(json.dumps({"epoch": time.time(), "seed": 20240530}))
    rng = random.Random(7)
    created = (now - dt.timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    zones = ["zone-a", "zone-b", "zone-c"]
    items = []
    for i in range(args.nodes):
        name = node_name(i)
        items.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "uid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    "creationTimestamp": created,
                    "labels": {
                        "beta.kubernetes.io/arch": "amd64",
                        "beta.kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        "kubernetes.io/hostname": name,
                        "kubernetes.io/os": "linux",
                        "node.kubernetes.io/instance-type": "m6i.4xlarge",
                        "topology.kubernetes.io/region": "fleet-1",
                        "topology.kubernetes.io/zone": zones[i % 3],
                    },
                    "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
                },
                "spec": {"podCIDR": f"10.{64 + i // 256}.{i % 256}.0/24"},
                "status": {
                    "addresses": [
                        {"type": "InternalIP", "address": node_address(i)},
                        {"type": "Hostname", "address": name},
                    ],
                    "capacity": {
                        "cpu": str(NODE_CORES),
                        "memory": f"{NODE_MEM_KI}Ki",
                        "pods": "110",
                        "ephemeral-storage": "203070420Ki",
                    },
                    "allocatable": {
                        "cpu": "15890m",
                        "memory": f"{NODE_MEM_KI - 1_800_000}Ki",
                        "pods": "110",
                        "ephemeral-storage": "187149698010",
                    },
                    "daemonEndpoints": {"kubeletEndpoint": {"Port": PORT}},
                    "nodeInfo": {
                        "kubeletVersion": "v1.30.2",
                        "kubeProxyVersion": "v1.30.2",
                        "operatingSystem": "linux",
                        "architecture": "amd64",
                        "containerRuntimeVersion": "containerd://1.7.18",
                    },
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "True",
                            "reason": "KubeletReady",
                            "message": "kubelet is posting ready status",
                            "lastHeartbeatTime": created,
                            "lastTransitionTime": created,
                        }
                    ],
                },
            }
        )
    out = d / f"nodes-{args.nodes}.json"
    out.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "List",
                "metadata": {"resourceVersion": ""},
                "items": items,
            },
            indent=1,
        )
    )
    print(f"made {made} certificates; wrote {out}")


# --------------------------------------------------------------------------- serve


async def serve(args: argparse.Namespace) -> None:
    d = Path(args.dir)
    meta = json.loads((d / "meta.json").read_text())
    token = (d / "kubelet-token").read_text().strip().encode()
    k, kk = (int(x) for x in args.shard.split("/"))
    t0 = time.time()
    cluster = build_cluster(args.nodes, meta["seed"], meta["epoch"])
    names = {(p.namespace, p.name) for pods in cluster for p in pods}
    assert len(names) == args.nodes * PODS_PER_NODE, "pod names not unique"
    loop = asyncio.get_running_loop()
    servers = []
    mine = [i for i in range(args.nodes) if i % kk == k]
    for i in mine:
        node = NodeSim(i, cluster[i], meta["epoch"], meta["seed"])
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(d / "pki" / f"node-{i}.pem")
        srv = await loop.create_server(
            lambda node=node: KubeletProtocol(node, token),
            node_address(i),
            PORT,
            ssl=ctx,
            backlog=128,
            reuse_address=True,
        )
        servers.append(srv)
    print(
        f"shard {k}/{kk}: serving {len(mine)} nodes (of {args.nodes}) in {time.time() - t0:.1f}s "
        f"pid {os.getpid()}",
        flush=True,
    )
    deadline = time.time() + args.duration if args.duration else None
    last = time.time()
    last_cpu = time.process_time()
    while deadline is None or time.time() < deadline:
        await asyncio.sleep(args.report)
        now = time.time()
        cpu = time.process_time()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        lag = time.perf_counter()
        await asyncio.sleep(0)
        lag = time.perf_counter() - lag
        print(
            f"{time.strftime('%H:%M:%S')} shard {k}/{kk}: {STATS.ok} ok"
            f" ({len(STATS.nodes_seen)} distinct nodes), {STATS.unauth} 401, {STATS.other} other,"
            f" open conns {STATS.open} (new {STATS.conns}), "
            f"{STATS.bytes / 1e6:.1f} MB, render {STATS.render_s:.2f}s, "
            f"cpu {cpu - last_cpu:.2f}s/{now - last:.1f}s, maxrss {rss} MiB",
            flush=True,
        )
        STATS.ok = STATS.unauth = STATS.other = STATS.conns = STATS.bytes = 0
        STATS.render_s = 0.0
        STATS.nodes_seen = set()
        last, last_cpu = now, cpu
    for s in servers:
        s.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("--nodes", type=int, required=True)
    g.add_argument("--dir", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--nodes", type=int, required=True)
    s.add_argument("--dir", required=True)
    s.add_argument("--shard", default="0/1")
    s.add_argument("--report", type=float, default=15.0, help="seconds between stats lines")
    s.add_argument("--duration", type=float, default=3 * 3600, help="exit after this many seconds")
    s2 = sub.add_parser("sample")
    s2.add_argument("--nodes", type=int, default=2)
    s2.add_argument("--node", type=int, default=0)
    s2.add_argument("--dir", required=True)
    a = ap.parse_args()
    if a.cmd == "gen":
        gen(a)
    elif a.cmd == "serve":
        asyncio.run(serve(a))
    else:
        meta = json.loads((Path(a.dir) / "meta.json").read_text())
        cluster = build_cluster(a.nodes, meta["seed"], meta["epoch"])
        sys.stdout.write(
            NodeSim(a.node, cluster[a.node], meta["epoch"], meta["seed"])
            .render(time.time())
            .decode()
        )


if __name__ == "__main__":
    main()
