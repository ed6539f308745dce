"""Shared fixtures. Prefect's test harness (a temporary API server, ~10 s to start) is session-scoped
and only started by tests that ask for it; everything else calls plain functions."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


@pytest.fixture
def flaky_ingest(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """pipelines.ingest.ingest_batch replaced by one whose first call fails transiently (a network share gone)
    and whose later calls load; returns the batch names it was called with, in order."""
    import pipelines.ingest
    from pipelines.ingest import IngestReport

    calls: list[str] = []

    def flaky(db_path: Path, batch_dir: Path, settings: Any = None) -> IngestReport:
        calls.append(batch_dir.name)
        if len(calls) == 1:
            raise ConnectionResetError("the network share went away")
        return IngestReport(batch_dir.name, "loaded")

    monkeypatch.setattr(pipelines.ingest, "ingest_batch", flaky)
    return calls
