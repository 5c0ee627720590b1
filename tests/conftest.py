"""Markers that say what a test needs beyond Python, so a quick run can leave it out:

    pytest -m "not e2e"          # seconds, no system packages, no root
    pytest -m "e2e and not browser"

- `kubectl`: runs the real kubectl (v1.32);
- `browser`: drives Debian's Chromium;
- `tmux`: drives a real terminal in tmux;
- `prometheus`: runs Debian's prometheus;
- `root`: makes cgroups, or needs real /proc accounting of processes it starts;
- `e2e`: any of these, or real servers and processes end to end (kubepulse up, the
  dashboard command, many real processes): everything `make test` adds to a quick run.

A module's needs are declared here, where they are seen at once; a test in a mixed
module that runs kubectl is found by its source.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

MARKERS = {
    "kubectl": "runs the real kubectl",
    "browser": "drives Debian's Chromium",
    "tmux": "drives a real terminal in tmux",
    "prometheus": "runs Debian's prometheus",
    "root": "makes cgroups or measures real processes",
    "e2e": "needs system packages, root, or runs real servers end to end",
}

MODULES: dict[str, tuple[str, ...]] = {
    "e2e/test_kubectl_up.py": ("kubectl",),
    "e2e/test_state_dir.py": ("kubectl",),
    "e2e/test_up_credentials.py": ("kubectl",),
    "server/test_connections.py": ("e2e",),
    "server/test_hostile_kubelets.py": ("e2e",),
    "top/test_kubectl_parity.py": ("kubectl",),
    "top/test_upstream_objects.py": ("kubectl",),
    "top/test_cli_errors.py": ("kubectl",),
    "top/test_live.py": ("tmux",),
    "top/test_live_pty.py": ("e2e",),
    "dashboard/test_browser.py": ("browser",),
    "dashboard/test_browser_kube.py": ("browser",),
    "dashboard/test_charts.py": ("browser",),
    "dashboard/test_workloads.py": ("browser",),
    "dashboard/test_live.py": ("browser",),
    "dashboard/test_prometheus_dashboard.py": ("prometheus",),
    "dashboard/test_dashboard_command.py": ("e2e",),
    "history/test_prometheus.py": ("prometheus",),
    "recommend/test_patch.py": ("kubectl",),
    "recommend/test_up.py": ("e2e", "root"),
    "agent/test_agent_real_cgroups.py": ("root",),
    "agent/test_tree_cpu_real.py": ("root",),
    "agent/test_bootstrap.py": ("e2e",),
    "server/test_kube_mode.py": ("e2e",),
    "server/test_kube_mode_errors.py": ("e2e",),
    "server/test_server_cli.py": ("e2e",),
    "server/test_server_flags.py": ("e2e",),
    "server/test_server_logging.py": ("e2e",),
    "server/test_server_tls.py": ("e2e",),
    "fakeapi/test_fakeapi.py": ("kubectl",),
    "fakeapi/test_writable.py": ("kubectl",),
    "kube/test_csr_approver.py": ("e2e",),
    "kube/test_exec_plugins.py": ("kubectl",),
    "api/test_impersonation.py": ("kubectl",),
    "test_command.py": ("e2e",),
    "release/test_image.py": ("root",),
    "release/test_deploy.py": ("kubectl",),
    "release/test_oci.py": ("e2e",),
}

HERE = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def _root_log_level_kept() -> Iterator[None]:
    """A command run in-process sets the root logger's level for its -v: the next test
    starts from the level there was."""
    root = logging.getLogger()
    level = root.level
    yield
    root.setLevel(level)


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")


def _runs_kubectl(item: pytest.Item) -> bool:
    function = getattr(item, "function", None)
    try:
        source = inspect.getsource(function) if function is not None else ""
    except (OSError, TypeError):
        return False
    return "KUBECTL" in source or "kubectl(" in source


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        try:
            module = item.path.resolve().relative_to(HERE).as_posix()
        except ValueError:
            continue
        needs = set(MODULES.get(module, ()))
        if _runs_kubectl(item):
            needs.add("kubectl")
        needs |= {m.name for m in item.iter_markers() if m.name in MARKERS}
        if needs:
            needs.add("e2e")
        for name in sorted(needs - {m.name for m in item.iter_markers()}):
            item.add_marker(getattr(pytest.mark, name))
