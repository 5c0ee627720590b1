"""What the benchmarks run kubepulse against, and the helpers they share.

- kubelets: N simulated kubelets serving /metrics/resource over TLS (run as
  `python -m bench.sim.kubelets`), and the same cluster built in this process;
- fake_node: a node on disk (cgroup v2 tree, /proc, containerd metadata) for the agent;
- history_data: a cluster's usage as the history receives it, with realistic noise.
"""
