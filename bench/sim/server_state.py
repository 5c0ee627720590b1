"""What `kubepulse server` holds for the kubelet simulator's cluster, built in this
process without YAML or the network: its inventory, a store of its scrapes, and the
process settings the server applies once its targets are loaded."""

from __future__ import annotations

import gc
import random
import time

from bench.sim.kubelets import Cluster, build_cluster, node_object, node_stats, pod_object
from kubepulse.kube.inventory import StaticInventory
from kubepulse.kube.objects import node_from_object, pod_from_object
from kubepulse.server import assemble as server_assembly
from kubepulse.store.points import MetricsStore

RESOLUTION = 15.0


def inventory(cluster: Cluster, keep_raw: bool = True) -> StaticInventory:
    """The cluster's nodes and pods as Node and Pod objects, as from its targets file.

    keep_raw=False: what `kubepulse server` keeps (it does not serve the core API)."""
    nodes = cluster.nodes
    return StaticInventory(
        [node_from_object(node_object(n), keep_raw) for n in nodes],
        [pod_from_object(pod_object(p, n), keep_raw) for n in nodes for p in n.pods],
    )


def tune_like_the_server() -> str:
    """Apply the process settings `kubepulse server` applies after loading its targets
    (kubepulse.server.assemble.tune_for_many_nodes, when this revision has it)."""
    tune = getattr(server_assembly, "tune_for_many_nodes", None)
    if tune is None:
        return "server tuning: none in this revision"
    tune()
    return f"server tuning applied: {tune.__name__}() (GC thresholds now {gc.get_threshold()})"


class Scraper:
    """Stores a scrape of every simulated node into a MetricsStore, `resolution` apart."""

    def __init__(
        self, nodes: int, pods: int, containers: int, resolution: float = RESOLUTION
    ) -> None:
        self.cluster = build_cluster(nodes, pods, containers)
        self.resolution = resolution
        self.store = MetricsStore(resolution)
        self.at = time.time() - 2 * resolution
        self.rng = random.Random(2)

    def scrape(self) -> None:
        self.at += self.resolution
        uniform = self.rng.uniform
        for n in self.cluster.nodes:
            stats = node_stats(n, self.at, self.cluster.epoch)
            pods = tuple(
                pod._replace(
                    containers=tuple(
                        c._replace(
                            usage=c.usage._replace(timestamp=round(self.at - uniform(0, 5), 3))
                        )
                        for c in pod.containers
                    )
                )
                for pod in stats.pods
            )
            self.store.store(n.name, stats.node, pods)


def build(nodes: int, pods: int, containers: int) -> tuple[Scraper, StaticInventory]:
    """The inventory and a store holding two scrapes of every node."""
    scraper = Scraper(nodes, pods, containers)
    scraper.scrape()
    scraper.scrape()
    return scraper, inventory(scraper.cluster)
