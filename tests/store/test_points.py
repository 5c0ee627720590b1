"""MetricsStore keeps metrics-server's storage rules (pkg/storage/{node,pod}.go)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from kubepulse.model import ContainerSample, NodeSample, PodSample, Usage
from kubepulse.store.points import MetricsStore
from kubepulse.store.rates import Point, Rate, rate

RESOLUTION = 15.0
T0 = 1_700_000_000.0
NODE_START = T0 - 86_400.0
POD_START = T0 - 3_600.0
GIB = 1 << 30


def node_sample(
    ts: float, cpu_ns: int, ws: int = GIB, start: float = NODE_START, name: str = "node-a"
) -> NodeSample:
    return NodeSample(name=name, start_time=start, usage=Usage(ts, cpu_ns, ws))


def container(
    name: str, ts: float, cpu_ns: int, ws: int = 64 << 20, start: float = POD_START
) -> ContainerSample:
    return ContainerSample(name=name, start_time=start, usage=Usage(ts, cpu_ns, ws))


def pod(name: str, *containers: ContainerSample, namespace: str = "default") -> PodSample:
    return PodSample(
        namespace=namespace,
        name=name,
        uid=f"uid-{name}",
        start_time=POD_START,
        containers=containers,
    )


def new_store() -> MetricsStore:
    return MetricsStore(RESOLUTION)


# -- first scrape and the plain rate ------------------------------------------------


def test_first_scrape_serves_nothing_and_is_not_ready() -> None:
    store = new_store()
    store.store("node-a", node_sample(T0, 10**9), (pod("web", container("app", T0, 10**9)),))

    assert store.node("node-a") is None
    assert store.pod("node-a", "default", "web") is None
    assert store.pods() == {}
    assert store.ready() is False
    assert store.has_two_points("node-a") is False
    assert store.points() == {"node": 0, "container": 0}


@dataclass(frozen=True)
class TwoScrapes:
    t1: float
    cpu0: int
    cpu1: int
    ws1: int
    want_cpu: int
    want_window: float


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(TwoScrapes(15.0, 0, 7_500_000_000, GIB, 500_000_000, 15.0), id="half-core"),
        pytest.param(
            TwoScrapes(15.0, 10**12, 10**12 + 7_313_372_460, 749_785_088, 487_558_164, 15.0),
            id="metrics-server-example-487558164n",
        ),
        pytest.param(TwoScrapes(30.0, 5, 5, 1024, 0, 30.0), id="idle-is-zero-not-missing"),
        pytest.param(
            TwoScrapes(10.0, 0, 25_000_000_001, 2048, 2_500_000_000, 10.0), id="rate-truncated"
        ),
    ],
)
def test_two_scrapes_give_cpu_rate_and_last_working_set(case: TwoScrapes) -> None:
    store = new_store()
    store.store(
        "node-a",
        node_sample(T0, case.cpu0, ws=1),
        (pod("web", container("app", T0, case.cpu0, ws=1)),),
    )
    t1 = T0 + case.t1
    store.store(
        "node-a",
        node_sample(t1, case.cpu1, ws=case.ws1),
        (pod("web", container("app", t1, case.cpu1, ws=case.ws1)),),
    )

    want = Rate(t1, case.want_window, case.want_cpu, case.ws1)
    assert store.node("node-a") == want
    pod_rates = store.pod("node-a", "default", "web")
    assert pod_rates is not None
    assert (pod_rates.timestamp, pod_rates.window) == (t1, case.want_window)
    assert pod_rates.containers == (("app", want),)
    assert store.ready() is True
    assert store.points() == {"node": 1, "container": 1}


# -- a point that is not newer than the stored last ----------------------------------


@pytest.mark.parametrize(
    ("third_ts", "want_window"),
    [
        pytest.param(T0 + 15, 15.0, id="same-timestamp-keeps-older-prev"),
        pytest.param(T0 + 10, 10.0, id="between-prev-and-last-keeps-prev"),
        pytest.param(T0, None, id="equal-to-prev-drops-prev"),
        pytest.param(T0 - 5, None, id="older-than-prev-drops-prev"),
    ],
)
@pytest.mark.parametrize("kind", ["node", "container"])
def test_point_not_newer_than_last_keeps_prev_only_when_prev_is_older(
    kind: str, third_ts: float, want_window: float | None
) -> None:
    store = new_store()
    for ts, cpu in ((T0, 0), (T0 + 15, 15 * 10**9), (third_ts, 15 * 10**9)):
        store.store("node-a", node_sample(ts, cpu), (pod("web", container("app", ts, cpu)),))

    if kind == "node":
        got = store.node("node-a")
    else:
        rates = store.pod("node-a", "default", "web")
        got = rates.containers[0][1] if rates else None
    if want_window is None:
        assert got is None
    else:
        assert got is not None
        assert got.timestamp == third_ts  # last is always the newest scrape's point
        assert got.window == want_window


def test_newer_point_moves_last_to_prev() -> None:
    store = new_store()
    for i, cpu in enumerate((0, 15 * 10**9, 45 * 10**9)):
        store.store("node-a", node_sample(T0 + 15 * i, cpu), ())
    # prev is the second point, not the first: (45-15) s of CPU over 15 s.
    assert store.node("node-a") == Rate(T0 + 30, 15.0, 2 * 10**9, GIB)


# -- container restarts ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("new_start", "served"),
    [
        pytest.param(POD_START, True, id="same-start-time-keeps-prev"),
        pytest.param(T0 - 0.001, True, id="started-just-before-stored-last-keeps-prev"),
        pytest.param(T0, False, id="started-at-stored-last-drops-prev"),
        pytest.param(T0 + 2, False, id="started-after-stored-last-drops-prev"),
    ],
)
def test_container_restart_drops_prev(new_start: float, served: bool) -> None:
    store = new_store()
    store.store("node-a", None, (pod("web", container("app", T0, 10**9)),))
    # 5 s after the restart: too young for the fresh-container shortcut (>= 10 s).
    t1 = T0 + 5
    store.store("node-a", None, (pod("web", container("app", t1, 2 * 10**9, start=new_start)),))

    rates = store.pod("node-a", "default", "web")
    assert (rates is not None) is served
    if rates is not None:
        assert rates.containers == (("app", Rate(t1, 5.0, 200_000_000, 64 << 20)),)


def test_restarted_container_is_served_again_after_its_second_point() -> None:
    store = new_store()
    store.store("node-a", None, (pod("web", container("app", T0, 50 * 10**9)),))
    restart = T0 + 1
    store.store("node-a", None, (pod("web", container("app", T0 + 3, 10**8, start=restart)),))
    assert store.pod("node-a", "default", "web") is None
    store.store("node-a", None, (pod("web", container("app", T0 + 6, 4 * 10**8, start=restart)),))
    rates = store.pod("node-a", "default", "web")
    assert rates is not None
    assert rates.containers == (("app", Rate(T0 + 6, 3.0, 100_000_000, 64 << 20)),)


# -- decreases are skipped --------------------------------------------------------------


@pytest.mark.parametrize(
    ("second_cpu", "second_start"),
    [
        pytest.param(10**9 - 1, NODE_START, id="cumulative-cpu-decreased"),
        pytest.param(2 * 10**9, NODE_START - 1, id="start-time-decreased"),
    ],
)
def test_node_decrease_skips_node(second_cpu: int, second_start: float) -> None:
    store = new_store()
    store.store("node-a", node_sample(T0, 10**9), ())
    store.store("node-a", node_sample(T0 + 15, second_cpu, start=second_start), ())
    assert store.node("node-a") is None


@pytest.mark.parametrize(
    ("second_cpu", "second_start"),
    [
        pytest.param(10**9 - 1, POD_START, id="cumulative-cpu-decreased"),
        pytest.param(2 * 10**9, POD_START - 1, id="start-time-decreased"),
    ],
)
def test_container_decrease_skips_only_that_container(second_cpu: int, second_start: float) -> None:
    store = new_store()
    store.store(
        "node-a", None, (pod("web", container("app", T0, 10**9), container("side", T0, 10**9)),)
    )
    t1 = T0 + 5
    store.store(
        "node-a",
        None,
        (
            pod(
                "web",
                container("app", t1, second_cpu, start=second_start),
                container("side", t1, 2 * 10**9),
            ),
        ),
    )
    rates = store.pod("node-a", "default", "web")
    assert rates is not None
    assert [name for name, _ in rates.containers] == ["side"]


def test_pod_whose_only_container_decreased_is_not_served() -> None:
    store = new_store()
    store.store("node-a", None, (pod("web", container("app", T0, 10**9)),))
    store.store("node-a", None, (pod("web", container("app", T0 + 5, 1)),))
    assert store.pod("node-a", "default", "web") is None
    assert store.pods() == {}


# -- fresh containers ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "shortcut"),
    [
        pytest.param(9.999, False, id="younger-than-10s"),
        pytest.param(10.0, True, id="exactly-10s"),
        pytest.param(12.5, True, id="between-10s-and-resolution"),
        pytest.param(14.999, True, id="just-under-resolution"),
        pytest.param(15.0, False, id="exactly-resolution"),
        pytest.param(600.0, False, id="old-container"),
        pytest.param(0.0, False, id="start-equals-timestamp"),
        pytest.param(-20.0, False, id="start-after-timestamp"),
    ],
)
def test_fresh_container_has_a_value_after_one_scrape(age: float, shortcut: bool) -> None:
    store = new_store()
    cpu = 3 * 10**9
    start = T0 - age
    store.store("node-a", None, (pod("web", container("app", T0, cpu, ws=4096, start=start)),))

    rates = store.pod("node-a", "default", "web")
    if not shortcut:
        assert rates is None
        return
    assert rates is not None
    window = round(age, 3)
    assert rates.containers == (("app", Rate(T0, window, int(cpu / window), 4096)),)
    assert (rates.timestamp, rates.window) == (T0, window)


def test_fresh_container_shortcut_takes_precedence_over_the_stored_point() -> None:
    store = new_store()
    start = T0 - 11
    store.store("node-a", None, (pod("web", container("app", T0 - 8, 10**9, start=start)),))
    store.store("node-a", None, (pod("web", container("app", T0, 3 * 10**9, start=start)),))
    rates = store.pod("node-a", "default", "web")
    assert rates is not None
    # prev is synthesized at the start time with zero CPU, not the point stored at T0-8.
    assert rates.containers[0][1] == Rate(T0, 11.0, int(3 * 10**9 / 11), 64 << 20)


def test_fresh_container_shortcut_does_not_apply_to_nodes() -> None:
    store = new_store()
    store.store("node-a", node_sample(T0, 10**9, start=T0 - 12), ())
    assert store.node("node-a") is None


# -- pods: all containers, earliest timestamp ---------------------------------------------


def test_pod_is_served_only_when_every_container_has_two_points() -> None:
    store = new_store()
    store.store("node-a", None, (pod("web", container("app", T0, 10**9)),))
    t1 = T0 + 15
    # A sidecar appears in the second scrape: it has one point only.
    store.store(
        "node-a", None, (pod("web", container("app", t1, 2 * 10**9), container("side", t1, 1)),)
    )
    assert store.pod("node-a", "default", "web") is None
    assert store.pods() == {}
    # The one container that has two points still counts as servable.
    assert store.points()["container"] == 1

    t2 = T0 + 30
    store.store(
        "node-a", None, (pod("web", container("app", t2, 3 * 10**9), container("side", t2, 2)),)
    )
    rates = store.pod("node-a", "default", "web")
    assert rates is not None
    assert [name for name, _ in rates.containers] == ["app", "side"]


@pytest.mark.parametrize(
    ("a_times", "b_times", "want"),
    [
        pytest.param((0, 15), (1, 13), (13, 12.0), id="second-container-earlier"),
        pytest.param((2, 12), (0, 15), (12, 10.0), id="first-container-earlier"),
        pytest.param((0, 15), (0, 15), (15, 15.0), id="same-times"),
    ],
)
def test_pod_timestamp_and_window_come_from_earliest_container(
    a_times: tuple[int, int], b_times: tuple[int, int], want: tuple[int, float]
) -> None:
    store = new_store()
    for i in range(2):
        store.store(
            "node-a",
            None,
            (
                pod(
                    "web",
                    container("a", T0 + a_times[i], (i + 1) * 10**9),
                    container("b", T0 + b_times[i], (i + 1) * 10**9),
                ),
            ),
        )
    rates = store.pod("node-a", "default", "web")
    assert rates is not None
    assert (rates.timestamp, rates.window) == (T0 + want[0], want[1])


def test_pod_without_containers_is_not_served() -> None:
    store = new_store()
    store.store("node-a", None, (pod("empty"),))
    store.store("node-a", None, (pod("empty"),))
    assert store.pod("node-a", "default", "empty") is None
    assert store.pods() == {}


def test_pods_are_keyed_by_namespace_and_name_across_nodes() -> None:
    store = new_store()
    for ts in (T0, T0 + 15):
        store.store("node-a", None, (pod("web", container("app", ts, int(ts - T0) * 10**9)),))
        store.store(
            "node-b",
            None,
            (pod("web", container("app", ts, int(ts - T0) * 10**9), namespace="prod"),),
        )
    assert set(store.pods()) == {("default", "web"), ("prod", "web")}
    assert store.pod("node-b", "default", "web") is None
    assert store.pod("node-b", "prod", "web") is not None


# -- readiness ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("with_node", "with_pod", "ready"),
    [
        pytest.param(True, True, True, id="nodes-and-containers"),
        pytest.param(True, False, False, id="nodes-only"),
        pytest.param(False, True, False, id="containers-only"),
    ],
)
def test_ready_needs_two_points_of_a_node_and_of_a_container(
    with_node: bool, with_pod: bool, ready: bool
) -> None:
    store = new_store()
    for i in range(2):
        ts = T0 + 15 * i
        store.store(
            "node-a",
            node_sample(ts, i * 10**9) if with_node else None,
            (pod("web", container("app", ts, i * 10**9)),) if with_pod else (),
        )
    assert store.ready() is ready


# -- node lifecycle ----------------------------------------------------------------------


def _two_scrapes(store: MetricsStore, *nodes: str) -> None:
    for i in range(2):
        ts = T0 + 15 * i
        for n in nodes:
            store.store(
                n, node_sample(ts, i * 10**9, name=n), (pod(f"p-{n}", container("c", ts, i)),)
            )


@pytest.mark.parametrize(
    ("keep", "left"),
    [
        pytest.param({"node-a", "node-b"}, {"node-a", "node-b"}, id="keep-all"),
        pytest.param({"node-a"}, {"node-a"}, id="drop-one"),
        pytest.param(set(), set(), id="drop-all"),
        pytest.param({"node-a", "node-z"}, {"node-a"}, id="unknown-names-ignored"),
    ],
)
def test_retain_drops_nodes_and_their_pods(keep: set[str], left: set[str]) -> None:
    store = new_store()
    _two_scrapes(store, "node-a", "node-b")
    store.retain(keep)

    assert store.node_names() == left
    for n in ("node-a", "node-b"):
        assert (store.node(n) is not None) is (n in left)
        assert (store.pod(n, "default", f"p-{n}") is not None) is (n in left)
    assert {name for _, name in store.pods()} == {f"p-{n}" for n in left}
    assert store.points() == {"node": len(left), "container": len(left)}


def test_node_without_complete_point_is_dropped_but_its_pods_are_kept() -> None:
    store = new_store()
    _two_scrapes(store, "node-a")
    store.store("node-a", None, (pod("p-node-a", container("c", T0 + 30, 2)),))
    assert store.node("node-a") is None
    assert store.pod("node-a", "default", "p-node-a") is not None


def test_pod_gone_from_scrape_is_forgotten() -> None:
    store = new_store()
    _two_scrapes(store, "node-a")
    store.store("node-a", node_sample(T0 + 30, 2 * 10**9), ())
    assert store.pod("node-a", "default", "p-node-a") is None
    assert store.node("node-a") is not None


# -- duplicates ----------------------------------------------------------------------------


def test_duplicate_pod_in_one_scrape_keeps_the_first() -> None:
    store = new_store()
    for i in range(2):
        ts = T0 + 15 * i
        first = pod("web", container("app", ts, i * 15 * 10**9, ws=1024))
        second = pod("web", container("other", ts, i * 30 * 10**9, ws=2048))
        store.store("node-a", None, (first, second))
    rates = store.pod("node-a", "default", "web")
    assert rates is not None
    assert rates.containers == (("app", Rate(T0 + 15, 15.0, 10**9, 1024)),)


def test_duplicate_container_in_one_pod_keeps_the_first() -> None:
    store = new_store()
    for i in range(2):
        ts = T0 + 15 * i
        store.store(
            "node-a",
            None,
            (
                pod(
                    "web",
                    container("app", ts, i * 15 * 10**9, ws=1024),
                    container("app", ts, i * 45 * 10**9, ws=4096),
                ),
            ),
        )
    rates = store.pod("node-a", "default", "web")
    assert rates is not None
    assert rates.containers == (("app", Rate(T0 + 15, 15.0, 10**9, 1024)),)
    assert store.points()["container"] == 1


# -- window -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prev_ts", "last_ts", "want_window"),
    [
        pytest.param(T0, T0 + 15.003, 15.003, id="kubelet-milliseconds"),
        pytest.param(T0 + 0.1, T0 + 0.1 + 14.9999996, 15.0, id="float-noise-rounded"),
        pytest.param(T0, T0 + 15.0004, 15.0, id="sub-millisecond-dropped"),
        pytest.param(T0, T0 + 0.0004, None, id="rounds-to-zero-is-no-rate"),
    ],
)
def test_window_is_rounded_to_milliseconds(
    prev_ts: float, last_ts: float, want_window: float | None
) -> None:
    cpu = 15_003_000_000
    got = rate(Point(last_ts, NODE_START, cpu, 1), Point(prev_ts, NODE_START, 0, 1))
    if want_window is None:
        assert got is None
        return
    assert got is not None
    assert got.window == want_window
    assert got.cpu_nanocores == int(cpu / want_window)


def test_window_rounding_applies_to_stored_points() -> None:
    store = new_store()
    store.store("node-a", node_sample(T0, 0), ())
    store.store("node-a", node_sample(T0 + 15.0029999, 15_003_000_000), ())
    assert store.node("node-a") == Rate(T0 + 15.0029999, 15.003, int(15_003_000_000 / 15.003), GIB)
