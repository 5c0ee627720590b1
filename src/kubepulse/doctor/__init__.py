"""`kubepulse doctor`: why metrics are missing, check by check, each with its fix.

The checks follow the pipeline a metrics request takes (reference metrics-pipeline.md,
section 5): the API server and the credentials, the metrics.k8s.io registration, each
node's kubelet (address, DNS, port, serving certificate, pending CSRs), and finally the
metrics themselves (missing nodes and pods, failing scrapes, clock skew).
"""
