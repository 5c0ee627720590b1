"""What the benchmarks run kubepulse against, and the helpers they share.

- kubelets: N simulated kubelets serving /metrics/resource over TLS, run as
  `python -m bench.sim.kubelets` (started by process.start_simulator);
- server_state: the same cluster as `kubepulse server` holds it, built in process (its
  inventory, a store of its scrapes, the server's process tuning);
- fake_node: a node on disk (cgroup v2 tree, /proc, containerd metadata) for the agent;
- history_data: a cluster's usage as the history receives it, with realistic noise;
- process: the subprocesses the benchmarks start, wait for, read and stop (the
  simulator, `kubepulse server`), BenchError, free_port, cpu_seconds, raise_fd_limit.

Benchmarks import from here, never from each other.
"""
