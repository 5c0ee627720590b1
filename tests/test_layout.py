"""Which package may import which: data flows one way, as in metrics-server's
scraper -> storage -> api -> server, and the command line sits on top of it all."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"


def imports() -> dict[str, set[str]]:
    """Every kubepulse module -> the kubepulse modules it imports (at any depth, and
    `from package import module` as that module)."""
    paths = {
        ".".join(p.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__"): p
        for p in (SRC / "kubepulse").rglob("*.py")
    }
    found: dict[str, set[str]] = defaultdict(set)
    for module, path in paths.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kubepulse"):
                assert node.module is not None
                found[module].add(node.module)
                found[module].update(
                    f"{node.module}.{a.name}"
                    for a in node.names
                    if f"{node.module}.{a.name}" in paths
                )
            elif isinstance(node, ast.Import):
                found[module].update(a.name for a in node.names if a.name.startswith("kubepulse"))
    return found


def package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 else ""  # "" for top-level modules (model, quantity)


def test_nothing_imports_the_command_line() -> None:
    offenders = sorted(
        (m, t)
        for m, targets in imports().items()
        for t in targets
        if package(t) == "cli" and package(m) != "cli" and m != "kubepulse.__main__"
    )
    assert offenders == []


def test_the_store_knows_only_the_model() -> None:
    """store/ keeps live points and rates; it knows nothing of Kubernetes, the API, the
    history or the dashboard."""
    outside = {
        t
        for m, targets in imports().items()
        if package(m) == "store"
        for t in targets
        if package(t) != "store" and t.startswith("kubepulse.")
    }
    assert outside <= {"kubepulse.model"}


def test_the_dashboard_reads_history_only_through_its_sources() -> None:
    used = {
        t
        for m, targets in imports().items()
        if package(m) == "dashboard"
        for t in targets
        if t.startswith("kubepulse.history.")
    }
    assert {t for t in used if not t.startswith("kubepulse.history.sources")} == set()


def test_packages_import_each_other_without_cycles() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for m, targets in imports().items():
        for t in targets:
            if package(m) and package(t) and package(m) != package(t):
                graph[package(m)].add(package(t))
    seen: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> None:
        assert node not in path, f"import cycle: {' -> '.join([*path, node])}"
        if node in seen:
            return
        path.append(node)
        for target in sorted(graph[node]):
            visit(target)
        path.pop()
        seen.add(node)

    for node in sorted(graph):
        visit(node)
    assert "cli" not in {t for targets in graph.values() for t in targets}
