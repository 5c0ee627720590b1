"""A cluster's usage as the history receives it, with the noise of real containers.

What the history compresses is the scrape-to-scrape change of each series, so a model
that moves too little flatters the format and one that moves too much punishes it. This
one follows what kubelets report (numbers chosen, not measured on a fleet):
- CPU of a container: a level drawn log-normal (median 20 millicores; 1 in 20 above
  0.4 cores, clipped to 0.1m-4 cores), times a daily wave (+-30%, each container its own
  phase), times exp(x) where x is an AR(1) process (x' = 0.8x + N(0, 0.15)): rates that
  wander 10-20% from scrape to scrape, as a rate over a 10-15 s window does. Nanocores,
  as the rate is computed.
- memory of a container: a level drawn log-normal (median 100 MiB) in 4 KiB pages; each
  scrape 70% unchanged, 28% a few pages up or down, 2% a jump of a few percent (a
  garbage collection, a cache), pulled back towards the level.
- timestamps: each container's stats are as old as its last cAdvisor housekeeping (every
  15 s at its own phase, +-50 ms), 2% of the time not refreshed since the last scrape
  (the same timestamp again); the node's a second or less before the scrape.
- a pod is the sum of its containers at its earliest container's time; the node the sum
  of its pods plus 5-10% of system use (HistoryRecorder's rules).

Rows of a node come in HistoryRecorder's order: the node, each pod's containers, the
pods. Generated for every node at once with numpy: ~2 ms a scrape of 1,000 nodes.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from kubepulse.history.writer import Batch, SeriesKey

PAGE = 4096
DAY_MS = 86_400_000


class Cluster:
    def __init__(self, nodes: int, pods: int = 30, containers: int = 2, seed: int = 1) -> None:
        self.nodes, self.pods, self.containers = nodes, pods, containers
        rng = self.rng = np.random.default_rng(seed)
        shape = (nodes, pods * containers)
        self.cpu_level = np.clip(rng.lognormal(np.log(2e7), 1.8, shape), 1e5, 4e9)
        self.phase = rng.uniform(0, 2 * np.pi, shape)
        self.wander = np.zeros(shape)
        self.mem_level = np.maximum(1, rng.lognormal(np.log(25_600), 1.0, shape)).astype(np.int64)
        self.mem_pages = self.mem_level.copy()
        self.stamp_phase = rng.integers(0, 15_000, shape)
        self.last_ts = np.zeros(shape, np.int64)
        self.system = rng.uniform(0.05, 0.10, nodes)
        self.keys = [self._keys(n) for n in range(nodes)]

    def _keys(self, node: int) -> tuple[SeriesKey, ...]:
        name = f"node-{node:05d}"
        keys: list[SeriesKey] = [("node", "", name, "")]
        pods = [(f"ns-{p % 10}", f"{name}-pod-{p:02d}") for p in range(self.pods)]
        for ns, pod in pods:
            keys += [("container", ns, pod, f"c{c}") for c in range(self.containers)]
        keys += [("pod", ns, pod, "") for ns, pod in pods]
        return tuple(keys)

    def scrape(self, at_ms: int) -> Iterator[Batch]:
        """Every node's batch of the scrape at `at_ms` (ms since the epoch)."""
        rng = self.rng
        shape = self.cpu_level.shape
        self.wander = 0.8 * self.wander + rng.normal(0, 0.15, shape)
        day = 1 + 0.3 * np.sin(2 * np.pi * (at_ms % DAY_MS) / DAY_MS + self.phase)
        cpu = np.rint(self.cpu_level * day * np.exp(self.wander)).astype(np.int64)
        move = rng.random(shape)
        step = rng.geometric(0.3, shape) * rng.choice([-1, 1], shape)
        jump = np.rint(self.mem_pages * rng.normal(0, 0.04, shape)).astype(np.int64)
        pull = (self.mem_level - self.mem_pages) // 100
        change = np.where(move < 0.70, 0, np.where(move < 0.98, step, jump)) + pull
        self.mem_pages = np.maximum(1, self.mem_pages + change)
        mem = self.mem_pages * PAGE
        # The newest housekeeping at or before the scrape, at each container's phase.
        ts = at_ms - (at_ms - self.stamp_phase) % 15_000 + rng.integers(-50, 50, shape)
        stale = (rng.random(shape) < 0.02) & (self.last_ts > 0)
        ts = np.where(stale, self.last_ts, np.maximum(ts, self.last_ts + 1))
        self.last_ts = ts
        per_pod = (self.nodes, self.pods, self.containers)
        pod_cpu = cpu.reshape(per_pod).sum(axis=2)
        pod_mem = mem.reshape(per_pod).sum(axis=2)
        pod_ts = ts.reshape(per_pod).min(axis=2)
        node_cpu = np.rint(pod_cpu.sum(axis=1) * (1 + self.system)).astype(np.int64)
        node_mem = np.rint(pod_mem.sum(axis=1) * (1 + self.system)).astype(np.int64)
        node_ts = at_ms - rng.integers(0, 1000, self.nodes)
        all_ts = np.hstack([node_ts[:, None], ts, pod_ts]) / 1000
        all_cpu = np.hstack([node_cpu[:, None], cpu, pod_cpu])
        all_mem = np.hstack([node_mem[:, None], mem, pod_mem])
        for n in range(self.nodes):
            yield Batch(self.keys[n][0][2], self.keys[n], all_ts[n], all_cpu[n], all_mem[n])
