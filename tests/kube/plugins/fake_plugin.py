"""A client-go credential plugin for the tests: prints an ExecCredential, as
`aws eks get-token` or kubelogin print theirs.

Run as `python fake_plugin.py [options]`. Each run appends one JSON line to --log with
what the plugin was given (KUBERNETES_EXEC_INFO, its env, whether stdin is a terminal),
so that a test can count the runs and check what kubectl and kubepulse pass.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument(
        "--token-file",
        type=Path,
        help="tokens, one a line: each run gives the first and removes it, the last stays",
    )
    p.add_argument("--cert", type=Path, help="a client certificate (PEM) to give")
    p.add_argument("--key", type=Path, help="its key (PEM)")
    p.add_argument("--expires-in", type=float, help="seconds until the credential expires")
    p.add_argument("--fail", help="say this on stderr and exit 3")
    p.add_argument("--warn", help="say this on stderr and give the credential all the same")
    p.add_argument("--log", type=Path, help="append one JSON line per run here")
    p.add_argument("--api-version", help="answer with this apiVersion (default: the one asked)")
    args = p.parse_args()
    info = json.loads(os.environ.get("KUBERNETES_EXEC_INFO") or "{}")
    if args.log is not None:
        seen = {
            "info": info,
            "env": {k: v for k, v in os.environ.items() if k.startswith("FAKE_PLUGIN_")},
            "stdin_tty": os.isatty(0),
        }
        with args.log.open("a") as log:
            log.write(json.dumps(seen) + "\n")
    if args.fail:
        print(args.fail, file=sys.stderr)
        return 3
    if args.warn:
        print(args.warn, file=sys.stderr)
    status: dict[str, str] = {}
    if args.token_file is not None:
        tokens = args.token_file.read_text().split()
        status["token"] = tokens[0]
        if len(tokens) > 1:
            args.token_file.write_text("\n".join(tokens[1:]) + "\n")
    if args.cert is not None and args.key is not None:
        status["clientCertificateData"] = args.cert.read_text()
        status["clientKeyData"] = args.key.read_text()
    if args.expires_in is not None:
        at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=args.expires_in)
        status["expirationTimestamp"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    api_version = args.api_version or info.get("apiVersion", "client.authentication.k8s.io/v1")
    print(json.dumps({"apiVersion": api_version, "kind": "ExecCredential", "status": status}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
