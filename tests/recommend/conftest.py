from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakeapi.fixtures import fake_api, fake_kubeconfig  # noqa: F401


@pytest.fixture(autouse=True)
def no_default_cluster(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Host mode unless a test gives a kubeconfig: not this machine's ~/.kube/config."""
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
