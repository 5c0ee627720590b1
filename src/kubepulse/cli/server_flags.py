"""Every flag of metrics-server, in the groups its --help prints, with kubepulse's own
after them. Names, value types and defaults are metrics-server's, except where the
README says why kubepulse's default differs (--metric-resolution,
--kubelet-preferred-address-types).

A flag in IGNORED is accepted and means nothing here; giving it logs one WARNING with
the reason (ServerConfig.ignored_flags).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from kubepulse import __version__
from kubepulse.api.authz import DEFAULT_ALWAYS_ALLOW_PATHS
from kubepulse.cli import flags
from kubepulse.cli.flags import add
from kubepulse.scrape.endpoint import DEFAULT_PREFERRED_ADDRESS_TYPES

SUMMARY = "Serve metrics.k8s.io from kubelet resource metrics: a drop-in metrics-server."

ONE_VERSION = "kubepulse serves one version of each API it has"
NO_HTTP2 = "kubepulse serves HTTP/1.1 with keep-alive, never HTTP/2"
NO_WATCH = "the metrics API has no watch requests"
NO_PPROF = "Go's pprof has no Python equivalent here; nothing is served at /debug/pprof"

# The audit flags kubepulse carries out: (flag, pflag type, default, help).
AUDIT: list[tuple[str, str, Any, str]] = [
    ("--audit-log-batch-buffer-size", "int", 10000, "events queued in batch mode"),
    ("--audit-log-batch-max-size", "int", 1, "events written at once in batch mode"),
    ("--audit-log-batch-max-wait", "duration", 0.0, "longest wait for a batch to fill"),
    ("--audit-log-compress", "bool", None, "gzip the rotated files"),
    ("--audit-log-format", "string", "json", 'json (audit.k8s.io/v1 Events) or "legacy" lines'),
    ("--audit-log-maxage", "int", 366, "days rotated files are kept, by the time in their name"),
    ("--audit-log-maxbackup", "int", 100, "rotated files kept (0: all)"),
    ("--audit-log-maxsize", "int", 100, "megabytes before the file is rotated (0: never)"),
    ("--audit-log-mode", "string", "blocking", "blocking, blocking-strict or batch"),
    ("--audit-log-path", "string", None, "audit log file; '-' is standard output"),
    ("--audit-log-version", "string", "audit.k8s.io/v1", "the only version written"),
    ("--audit-policy-file", "string", None, "audit.k8s.io/v1 Policy: what is recorded, how"),
    ("--audit-webhook-batch-buffer-size", "int", 10000, "events queued in batch mode"),
    ("--audit-webhook-batch-max-size", "int", 400, "events sent at once in batch mode"),
    ("--audit-webhook-batch-max-wait", "duration", 30.0, "longest wait for a batch to fill"),
    (
        "--audit-webhook-config-file",
        "string",
        None,
        "kubeconfig naming the webhook that gets EventLists",
    ),
    (
        "--audit-webhook-initial-backoff",
        "duration",
        10.0,
        "wait before a failed batch is sent again (then 1.5 times longer, 5 tries)",
    ),
    ("--audit-webhook-mode", "string", "batch", "blocking, blocking-strict or batch"),
    ("--audit-webhook-version", "string", "audit.k8s.io/v1", "the only version sent"),
]
AUDIT += [
    (f"--audit-{backend}-batch-throttle-{name}", kind, default, text)
    for backend, defaults in (("log", (0, None, 0.0)), ("webhook", (15, True, 10.0)))
    for name, kind, default, text in (
        ("burst", "int", defaults[0], "batches sent at once before the rate limit applies"),
        ("enable", "bool", defaults[1], "rate-limit the batches (batch mode)"),
        ("qps", "float32", defaults[2], "batches a second at most when rate-limited"),
    )
]
AUDIT += [
    (f"--audit-{backend}-truncate-{name}", kind, default, text)
    for backend in ("log", "webhook")
    for name, kind, default, text in (
        ("enabled", "bool", None, "slim or drop events, split batches, above the sizes below"),
        ("max-batch-size", "int", 10485760, "bytes of a batch, beyond which it is split"),
        (
            "max-event-size",
            "int",
            102400,
            "bytes of an event, beyond which its objects are dropped",
        ),
    )
]

# (flag, pflag type, upstream default, why it means nothing here), by group.
IGNORED: dict[str, list[tuple[str, str, Any, str]]] = {
    "Generic flags": [
        (
            "--advertise-address",
            "ip",
            None,
            "nothing is advertised: the APIService names the Service in front of the server",
        ),
        (
            "--cors-allowed-origins",
            "strings",
            None,
            "no CORS headers are sent: the API is "
            "for kubectl and the aggregator, not for browsers of other origins",
        ),
        ("--emulated-version", "strings", None, ONE_VERSION),
        ("--emulation-forward-compatible", "bool", None, ONE_VERSION),
        ("--external-hostname", "string", None, "no URLs for outside clients are generated"),
        (
            "--feature-gates",
            "colonSeparatedMultimapStringString",
            None,
            "kubepulse has no feature gates",
        ),
        ("--goaway-chance", "float", 0.0, NO_HTTP2),
        ("--livez-grace-period", "duration", 0.0, "there are no post-start hooks to wait for"),
        ("--max-mutating-requests-inflight", "int", 200, "the metrics API is read-only"),
        (
            "--max-requests-inflight",
            "int",
            400,
            "open connections are bounded by --max-connections instead",
        ),
        ("--min-compatibility-version", "strings", None, ONE_VERSION),
        ("--min-request-timeout", "int", 1800, NO_WATCH),
        (
            "--request-timeout",
            "duration",
            60.0,
            "answers come from memory at once; --kubelet-request-timeout bounds what waits",
        ),
        ("--runtime-config-emulation-forward-compatible", "bool", None, ONE_VERSION),
        ("--shutdown-delay-duration", "duration", 0.0, "the server stops serving at SIGTERM"),
        ("--shutdown-send-retry-after", "bool", None, "the server stops serving at SIGTERM"),
        ("--shutdown-watch-termination-grace-period", "duration", 0.0, NO_WATCH),
        (
            "--storage-initialization-timeout",
            "duration",
            60.0,
            "there is no storage to initialize; --cache-sync-timeout bounds the start",
        ),
        (
            "--strict-transport-security-directives",
            "strings",
            None,
            "no Strict-Transport-Security header is sent",
        ),
    ],
    "Kubelet client flags": [],
    "Apiserver secure serving flags": [
        ("--http2-max-streams-per-connection", "int", 0, NO_HTTP2),
        (
            "--tls-curve-preferences",
            "int32Slice",
            None,
            "key exchange uses OpenSSL's default groups (X25519, P-256, P-384, ...)",
        ),
    ],
    "Apiserver authentication flags": [
        (
            "--requestheader-uid-headers",
            "strings",
            None,
            "UIDs are not read from "
            "front-proxy headers (upstream too needs a feature gate for that)",
        ),
    ],
    "Apiserver authorization flags": [],
    "Apiserver audit log flags": [],
    "Features flags": [
        ("--contention-profiling", "bool", None, NO_PPROF),
        ("--debug-socket-path", "string", None, NO_PPROF),
        (
            "--enable-priority-and-fairness",
            "bool",
            True,
            "requests are not queued by priority: the metrics API answers from memory",
        ),
        ("--profiling", "bool", True, NO_PPROF),
    ],
    "Logging flags": [
        ("--log-json-info-buffer-size", "quantity", 0.0, "log lines are not buffered"),
        ("--log-text-info-buffer-size", "quantity", 0.0, "log lines are not buffered"),
    ],
}

IGNORED_REASONS = {flag: why for rows in IGNORED.values() for flag, _, _, why in rows}


def add_server_flags(p: argparse.ArgumentParser) -> dict[str, argparse._ArgumentGroup]:
    """metrics-server's flags, by group; returns the groups by title."""
    titles = ["Metrics server flags", *IGNORED]
    groups = {title: p.add_argument_group(title) for title in titles}
    _metrics_server(groups["Metrics server flags"])
    _kubelet_client(groups["Kubelet client flags"])
    _secure_serving(groups["Apiserver secure serving flags"])
    _authentication(groups["Apiserver authentication flags"])
    _authorization(groups["Apiserver authorization flags"])
    for flag, value_type, default, help_text in AUDIT:
        path = {"type": Path} if flag.endswith(("-policy-file", "-config-file")) else {}
        add(groups["Apiserver audit log flags"], flag, value_type, help_text, default, **path)
    flags.add_logging_flags(groups["Logging flags"])
    for title, rows in IGNORED.items():
        for flag, value_type, default, why in rows:
            add(groups[title], flag, value_type, f"accepted, no effect: {why}", default)
    return groups


def _metrics_server(g: argparse._ArgumentGroup) -> None:
    add(
        g,
        "--kubeconfig",
        "string",
        "kubeconfig of the cluster whose nodes and pods are "
        "scraped, and which authenticates and authorizes requests (default: the pod's "
        "service account)",
        type=Path,
    )
    add(
        g,
        "--metric-resolution",
        "duration",
        "how often kubelets are scraped; at least 10s is advised",
        15.0,
    )
    g.add_argument(
        "--version",
        action="version",
        version=f"kubepulse {__version__}",
        help="print the version and exit",
    )


def _kubelet_client(g: argparse._ArgumentGroup) -> None:
    add(g, "--kubelet-certificate-authority-text", "string", "the same CA as PEM text")
    add(
        g,
        "--deprecated-kubelet-completely-insecure",
        "bool",
        "plain HTTP to kubelets, sending no credentials (logs a warning: anyone on the "
        "path can read and forge metrics)",
    )
    add(
        g,
        "--kubelet-certificate-authority",
        "string",
        "CA file that verifies kubelet serving certificates",
        type=Path,
    )
    add(
        g,
        "--kubelet-client-certificate",
        "string",
        "client certificate shown to kubelets",
        type=Path,
    )
    add(g, "--kubelet-client-key", "string", "key of --kubelet-client-certificate", type=Path)
    add(
        g,
        "--kubelet-insecure-tls",
        "bool",
        "do not verify kubelet serving certificates (testing only; logs a warning)",
    )
    add(g, "--kubelet-port", "int", "kubelet port, unless --kubelet-use-node-status-port", 10250)
    add(
        g,
        "--kubelet-preferred-address-types",
        "strings",
        "node address types, tried in this order",
        DEFAULT_PREFERRED_ADDRESS_TYPES,
    )
    add(g, "--kubelet-request-timeout", "duration", "how long one kubelet request may take", 10.0)
    add(
        g,
        "--kubelet-use-node-status-port",
        "bool",
        "use the port each Node's status gives (daemonEndpoints) instead of --kubelet-port",
    )
    add(
        g,
        "--node-selector",
        "string",
        "scrape only the nodes with these labels (=, ==, !=), e.g. -l pool=blue",
        "",
        names=("-l", "--node-selector"),
    )


def _secure_serving(g: argparse._ArgumentGroup) -> None:
    add(
        g,
        "--bind-address",
        "ip",
        "address to serve on; 0.0.0.0 or :: for every interface",
        "0.0.0.0",
    )
    add(
        g,
        "--cert-dir",
        "string",
        "where a self-signed serving certificate is made when --tls-cert-file is not given",
        Path("apiserver.local.config/certificates"),
        type=Path,
    )
    add(
        g,
        "--disable-http2-serving",
        "bool",
        "HTTP/2 is not served in any case (HTTP/1.1 with keep-alive)",
    )
    add(
        g,
        "--permit-address-sharing",
        "bool",
        "bind with SO_REUSEADDR (always set here, as Go sets it for every listener)",
    )
    add(
        g,
        "--permit-port-sharing",
        "bool",
        "bind with SO_REUSEPORT, so that several servers may listen on one address and port",
    )
    add(g, "--secure-port", "int", "HTTPS port", 443)
    add(
        g,
        "--tls-cert-file",
        "string",
        "serving certificate (PEM; intermediates after it); without it one is made in --cert-dir",
        type=Path,
    )
    add(
        g,
        "--tls-cipher-suites",
        "strings",
        "TLS 1.2 cipher suites, by Go's names "
        "(TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, ...);\nTLS 1.3 names are accepted and "
        "all TLS 1.3 suites stay on, as in Go; insecure suites log a warning",
    )
    add(
        g,
        "--tls-min-version",
        "string",
        "lowest TLS version served: VersionTLS10, VersionTLS11, VersionTLS12 (empty), VersionTLS13",
    )
    add(g, "--tls-private-key-file", "string", "key of --tls-cert-file", type=Path)
    add(
        g,
        "--tls-sni-cert-key",
        "namedCertKey",
        "CERT,KEY[:NAME,...]: a certificate "
        'served to clients asking for NAME ("*.example.com" patterns; without names,\n'
        "the certificate's own); repeat for several. Exact names win over wildcards, "
        "given names over the certificate's",
    )


def _authentication(g: argparse._ArgumentGroup) -> None:
    add(
        g,
        "--authentication-kubeconfig",
        "string",
        "kubeconfig of the cluster that reviews tokens (TokenReview)",
        type=Path,
    )
    add(
        g,
        "--authentication-skip-lookup",
        "bool",
        "do not read missing client CAs from kube-system/extension-apiserver-authentication",
    )
    add(
        g,
        "--authentication-token-webhook-cache-ttl",
        "duration",
        "how long token reviews are cached",
        10.0,
    )
    add(
        g,
        "--authentication-tolerate-lookup-failure",
        "bool",
        "start even when that ConfigMap cannot be read (then only tokens are reviewed)",
    )
    add(
        g,
        "--client-ca-file",
        "string",
        "CA of accepted client certificates (user: CN, groups: O)",
        type=Path,
    )
    add(
        g,
        "--requestheader-allowed-names",
        "strings",
        "common names the front proxy's certificate may have (empty: any)",
    )
    add(
        g,
        "--requestheader-client-ca-file",
        "string",
        "CA of the front proxy's client certificate; its requests carry the user in headers",
        type=Path,
    )
    add(
        g,
        "--requestheader-extra-headers-prefix",
        "strings",
        "header prefixes of the user's extra attributes",
        ("X-Remote-Extra-",),
    )
    add(
        g,
        "--requestheader-group-headers",
        "strings",
        "headers with the user's groups",
        ("X-Remote-Group",),
    )
    add(
        g,
        "--requestheader-username-headers",
        "strings",
        "headers with the user's name",
        ("X-Remote-User",),
    )


def _authorization(g: argparse._ArgumentGroup) -> None:
    add(
        g,
        "--authorization-always-allow-paths",
        "strings",
        "paths served without authentication or authorization",
        DEFAULT_ALWAYS_ALLOW_PATHS,
    )
    add(
        g,
        "--authorization-kubeconfig",
        "string",
        "kubeconfig of the cluster that authorizes requests (SubjectAccessReview)",
        type=Path,
    )
    add(
        g,
        "--authorization-webhook-cache-authorized-ttl",
        "duration",
        "how long an allowed answer is cached",
        10.0,
    )
    add(
        g,
        "--authorization-webhook-cache-unauthorized-ttl",
        "duration",
        "how long a denied answer is cached",
        10.0,
    )
