"""Observable runs: which failures are retried, task time limits, run names and the weekly summary's content.
The Prefect tests run tasks on the temporary server (`prefect_harness`) with the real retry policy."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest

from data_contracts.batch import BatchRejected
from data_contracts.errors import DatabaseBusy
from data_contracts.quality import DataQualityError
from pipelines.ingest import IngestReport, TableCounts
from pipelines.runs import is_transient, weekly_summary
from pipelines.settings import SettingsError


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (BatchRejected("batch folder x does not exist"), False),
        (DataQualityError("gp_events quarantine rate"), False),
        (SettingsError("riskstrat.toml: synth.people = -5"), False),
        (FileNotFoundError(errno.ENOENT, "missing"), False),
        (PermissionError(errno.EACCES, "denied"), False),
        (ValueError("a bug"), False),
        (KeyError("a bug"), False),
        (ConnectionResetError("peer reset"), True),
        (TimeoutError("read timed out"), True),
        (OSError(errno.EIO, "input/output error"), True),
        (OSError(errno.ENOSPC, "no space left"), False),
        (duckdb.IOException("Could not read from file: Input/output error"), True),
        (DatabaseBusy("another run holds the database var/riskstrat.duckdb"), False),  # connect waited already
    ],
)
def test_only_transient_failures_are_retried(exc: BaseException, transient: bool) -> None:
    assert is_transient(exc) is transient


def test_a_tasks_own_time_limit_is_not_retried() -> None:
    from prefect.task_engine import TaskRunTimeoutError

    assert not is_transient(TaskRunTimeoutError("Scope timed out after 1 second(s)."))


def _report(batch_id: str, status: str, quarantined: int = 0) -> dict[str, Any]:
    tables = [vars(TableCounts("gp_events", "gp_events.csv", None, 10, 10 - quarantined - 1, quarantined, 1))]
    return {
        "batch_id": batch_id,
        "status": status,
        "tables": tables if status == "loaded" else [],
        "quarantine_reasons": [{"table": "gp_events", "reason": "bad_date", "rows": quarantined}]
        if quarantined
        else [],
    }


def test_summary_when_every_batch_was_already_loaded_says_so() -> None:
    text = weekly_summary("2026-11-01", [_report("b0001", "skipped_already_loaded"), _report("b0002", "skipped")])
    assert "# Weekly run, as of 2026-11-01" in text
    assert "**Batches:** 0 loaded, 2 skipped" in text
    assert "| b0001 | skipped already loaded |  |" in text
    assert "No new rows: every batch was already loaded." in text
    assert "No row quarantined." in text
    assert "Not run (stopped before scoring)." in text


def test_summary_counts_rows_reasons_people_and_model_versions() -> None:
    score = {
        "counts": {"people_scored": 12345, "people_listed": 40},
        "model_versions": {"emergency_admission": "v0003"},
        "published": {"folder": "/x/outputs/2026-11-01", "files": 17},
    }
    gates = {
        "status": "error",
        "policy": "flag",
        "counts": {"pass": 10, "warn": 0, "error": 1},
        "problems": [
            {"batch_id": "b0002", "table": "gp_events", "check": "quarantine_rate", "status": "error", "message": "30%"}
        ],
        "statement": "data-quality errors, scored with stale or incomplete feeds: gp_events",
    }
    waiting = {**_report("b0003", "waiting"), "reason": "batch.complete is missing"}
    reports = [_report("b0001", "skipped"), _report("b0002", "loaded", 3), waiting]
    text = weekly_summary("2026-11-01", reports, gates, score)
    assert "**Batches:** 1 loaded, 1 skipped (already loaded with the same files), 1 waiting" in text
    assert "| b0003 | waiting | batch.complete is missing |" in text
    assert "| b0002 | gp_events | 10 | 6 | 3 | 1 |" in text
    assert "| b0002 | gp_events | bad_date | 3 |" in text
    assert "**error**: 10 passed, 0 warned, 1 failed (policy `flag`)" in text
    assert "Stated on every output: data-quality errors" in text
    assert "| people scored | 12,345 |" in text and "| emergency_admission | v0003 |" in text


# ------------------------------------------------------------------------------------------ on Prefect


def _task_runs(flow_run_id: Any) -> list[Any]:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        return client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))


def _ingest(home: Path, batch_dirs: list[str], **runs: int) -> Any:
    from pipelines.flows import ingest

    overrides = {"home": str(home), "runs": {"retry_delay_seconds": 0, **runs}}
    return ingest(batch_dirs=batch_dirs, overrides=overrides, return_state=True)


def test_a_rejected_batch_fails_once_and_is_named_after_its_folder(prefect_harness: None, tmp_path: Path) -> None:
    state = _ingest(tmp_path, [str(tmp_path / "b0042_week_2026-11-01")])
    assert state.is_failed()
    with pytest.raises(BatchRejected, match="does not exist"):
        state.result()
    [run] = _task_runs(state.state_details.flow_run_id)
    assert run.name == "ingest b0042_week_2026-11-01"
    assert run.run_count == 1 and run.state.is_failed()


def test_a_transient_failure_is_retried(prefect_harness: None, tmp_path: Path, flaky_ingest: list[str]) -> None:
    state = _ingest(tmp_path, [str(tmp_path / "b0001")])
    assert state.is_completed(), state
    assert flaky_ingest == ["b0001", "b0001"]
    [run] = _task_runs(state.state_details.flow_run_id)
    assert run.run_count == 2


def test_a_task_over_its_time_limit_fails_without_retry(
    prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pipelines.ingest

    calls: list[str] = []

    def slow(db_path: Path, batch_dir: Path, settings: Any = None) -> IngestReport:
        calls.append(batch_dir.name)
        time.sleep(5)
        return IngestReport(batch_dir.name, "loaded")

    monkeypatch.setattr(pipelines.ingest, "ingest_batch", slow)
    started = time.perf_counter()
    state = _ingest(tmp_path, [str(tmp_path / "b0001")], ingest_timeout_seconds=1)
    assert state.is_failed()
    assert time.perf_counter() - started < 4.5  # stopped at the limit, not after the 5 s sleep
    assert calls == ["b0001"]
    [run] = _task_runs(state.state_details.flow_run_id)
    assert "timeout of 1.0 second" in run.state.message


# ------------------------------------------------------------------------------------------ riskstrat monitor


def _riskstrat(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def test_riskstrat_monitor_writes_the_report_from_stored_weeks_and_prints_where(tmp_path: Path) -> None:
    import polars as pl

    from models.monitoring import Alert
    from pipelines.monitor import MonitorReport, store_report

    done = _riskstrat(tmp_path, "monitor", "--home", "var")
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "run `riskstrat ingest` first" in done.stderr

    db = tmp_path / "var" / "riskstrat.duckdb"
    db.parent.mkdir()
    duckdb.connect(str(db)).close()
    for week, psi in ((date(2026, 10, 25), 0.02), (date(2026, 11, 1), 0.4)):
        drift = pl.DataFrame({"feature": ["gp_face_to_face_3m"], "psi": [psi]})
        alerts = (
            [Alert("feature_drift", "gp_face_to_face_3m", psi, 0.25, "gp_face_to_face_3m drifted")]
            if psi > 0.25
            else []
        )
        store_report(
            db,
            MonitorReport(
                week, "emergency_admission", "v0001", drift, psi / 2, 0.1, {"expected_auroc": 0.7}, {}, [], alerts
            ),
        )
    done = _riskstrat(tmp_path, "monitor", "--home", "var")
    assert done.returncode == 0, done.stderr
    report = tmp_path / "var" / "outputs" / "monitoring" / "index.html"
    assert f"monitoring report: {report}" in done.stderr.replace("\n", "")
    page = report.read_text()
    assert "as of 2026-11-01" in page and "gp_face_to_face_3m drifted" in page and page.count("<svg") == 6
    # The MDT workspace's monitoring page is refreshed from the same history (it never opens the warehouse).
    assert (tmp_path / "var" / "workspace" / "monitoring.json").exists()
