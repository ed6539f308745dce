"""Property-based fuzzing of ingest (issue 17): a table file corrupted at random (cut, bytes flipped, bytes
inserted or deleted, a line doubled), in CSV and in Parquet, delivered in a batch whose manifest describes the
corrupted file (as a source system that exported garbage would). Whatever the corruption, the run either
refuses the batch with a reason (a domain error, nothing loaded) or loads it with every table reconciling
(read = loaded + quarantined + excluded). It never crashes and never loads part of a batch."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data_contracts.errors import DomainError
from pipelines.ingest import ingest_batch
from tests.test_ingest import clean_rows, csv_bytes, snapshot, write_batch

TABLES = ("persons", "apc_spells", "gp_events", "asc_events", "opt_outs")
CORRUPTIONS = ("cut", "flip", "insert", "delete", "double_line")


@pytest.fixture(scope="module")
def loaded_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz")
    db = root / "base.duckdb"
    ingest_batch(db, write_batch(root, "b1", clean_rows()))
    return db


def _corrupt(data: bytes, how: str, at: float, noise: bytes) -> bytes:
    pos = min(int(at * len(data)), len(data) - 1)
    if how == "cut":
        return data[:pos]
    if how == "flip":
        return data[:pos] + bytes([data[pos] ^ (noise[0] or 0xFF)]) + data[pos + 1 :]
    if how == "insert":
        return data[:pos] + noise + data[pos:]
    if how == "delete":
        return data[:pos] + data[pos + len(noise) :]
    lines = data.splitlines(keepends=True)
    i = min(int(at * len(lines)), len(lines) - 1)
    return b"".join(lines[: i + 1] + lines[i:])


def _table_bytes(table: str, fmt: str) -> tuple[bytes, int]:
    rows = clean_rows()[table]
    if fmt == "csv":
        return csv_bytes(rows), len(rows)
    buffer = io.BytesIO()
    pl.DataFrame(rows, schema=dict.fromkeys(rows[0], pl.String)).write_parquet(buffer)
    return buffer.getvalue(), len(rows)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    table=st.sampled_from(TABLES),
    fmt=st.sampled_from(("csv", "parquet")),
    how=st.sampled_from(CORRUPTIONS),
    at=st.floats(0, 1),
    noise=st.binary(min_size=1, max_size=8),
)
def test_a_corrupted_file_is_refused_with_a_reason_or_reconciles(
    loaded_db: Path, tmp_path_factory: pytest.TempPathFactory, table: str, fmt: str, how: str, at: float, noise: bytes
) -> None:
    root = tmp_path_factory.mktemp("case")
    db = root / "riskstrat.duckdb"
    shutil.copy(loaded_db, db)
    before = snapshot(db)
    data, rows = _table_bytes(table, fmt)
    batch = write_batch(root, "b2", {}, files={f"{table}.{fmt}": (_corrupt(data, how, at, noise), rows)})
    try:
        report = ingest_batch(db, batch)
    except DomainError as refused:
        assert str(refused) and "\n" not in str(refused)
        assert snapshot(db) == before  # nothing of the batch
        return
    assert report.status in ("loaded", "waiting")
    if report.status == "waiting":
        assert snapshot(db) == before
    for t in report.tables:
        assert t.rows_read == t.rows_loaded + t.rows_quarantined + t.rows_excluded, t
