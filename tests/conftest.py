"""Shared fixtures. Prefect's test harness (a temporary API server, ~10 s to start) is session-scoped
and only started by tests that ask for it; everything else calls plain functions."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import pipelines  # noqa: F401  (Prefect environment defaults)


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect_home"))
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty folder so no riskstrat.toml or var/ from the developer's tree leaks in."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
