"""Running the data-quality gates (data_contracts.quality) on loaded batches: reads the counts and latest event
dates from the warehouse, stores each batch's results in `quality_checks` (replacing an earlier check of the
same batch) and applies the policy for errors (`quality.on_error`).

The decision covers the batches loaded by this run and the newest batch in the warehouse, so re-running a
weekly run that failed does not score silently: it fails again until a good batch arrives, or the setting
says to score with the errors stated.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl

from data_contracts.quality import (
    CheckResult,
    DataQualityError,
    GateDecision,
    decide,
    freshness_checks,
    quarantine_checks,
    results_frame,
    volume_checks,
)
from data_contracts.settings import QualitySettings
from data_contracts.tables import TABLES
from pipelines.warehouse import WAREHOUSE_TABLES, connect, tables_present

log = logging.getLogger("riskstrat.quality")


def check_batch(db_path: Path, batch_id: str, settings: QualitySettings) -> list[CheckResult]:
    """Every gate for one loaded batch (nothing when the batch is the history load or has no extract date)."""
    with connect(db_path) as con:
        batches = con.execute("SELECT batch_id, extract_date FROM batches ORDER BY extract_date, batch_id").fetchall()
        order = [b for b, _ in batches]
        if batch_id not in order:
            raise ValueError(f"batch {batch_id} is not loaded in {db_path}")
        extract_date: date | None = dict(batches)[batch_id]
        position = order.index(batch_id)
        if position == 0 or extract_date is None:
            return []  # the history load: no earlier weeks to compare with
        # A row without a file records only rows an opt-out removed: the feed sent nothing.
        log_rows = con.sql(
            'SELECT batch_id, table_name AS "table", rows_read, rows_quarantined FROM ingest_log '
            "WHERE file_name IS NOT NULL"
        ).pl()
        latest = {}
        for table in settings.feeds:
            column = TABLES[table].dated_by
            if column is None or table not in tables_present(con):
                continue
            latest[table] = con.execute(
                f"SELECT max({column}) FROM {table} WHERE {column} <= ?", [extract_date]
            ).fetchall()[0][0]
    this = log_rows.filter(pl.col("batch_id") == batch_id)
    current = {r["table"]: int(r["rows_read"]) for r in this.iter_rows(named=True)}
    previous = [
        {r["table"]: int(r["rows_read"]) for r in log_rows.filter(pl.col("batch_id") == b).iter_rows(named=True)}
        for b in order[1:position]
    ]
    return [
        *quarantine_checks(batch_id, this, settings),
        *volume_checks(batch_id, current, previous, settings),
        *freshness_checks(batch_id, extract_date, latest, settings),
    ]


def store_checks(db_path: Path, batch_id: str, results: list[CheckResult]) -> None:
    """Replace the stored results of `batch_id` (atomic)."""
    at = datetime.now(UTC).replace(tzinfo=None)
    frame = results_frame(results)
    with connect(db_path, read_only=False) as con:
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(WAREHOUSE_TABLES["quality_checks"].ddl())
            extract_date = con.execute("SELECT extract_date FROM batches WHERE batch_id = ?", [batch_id]).fetchall()
            con.execute("DELETE FROM quality_checks WHERE batch_id = ?", [batch_id])
            con.register("_checks", frame.to_arrow())
            con.execute(
                'INSERT INTO quality_checks SELECT batch_id, ?, "table", "check", status, value, threshold, message, ? '
                "FROM _checks",
                [extract_date[0][0] if extract_date else None, at],
            )
            con.unregister("_checks")
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise


def stored_checks(db_path: Path) -> pl.DataFrame:
    """Every stored check, newest batch first (empty when no check ran yet)."""
    with connect(db_path) as con:
        if "quality_checks" not in tables_present(con):
            return results_frame([]).with_columns(extract_date=pl.lit(None, pl.Date))
        return con.sql(
            'SELECT batch_id, extract_date, table_name AS "table", check_name AS "check", status, value, threshold, '
            "message FROM quality_checks ORDER BY extract_date DESC, table_name, check_name"
        ).pl()


def gate(db_path: Path, loaded_batch_ids: list[str], settings: QualitySettings) -> GateDecision:
    """Check and store the batches loaded now; decide on them and on the newest batch in the warehouse."""
    with connect(db_path) as con:
        newest = con.execute(
            "SELECT batch_id FROM batches ORDER BY extract_date DESC, batch_id DESC LIMIT 1"
        ).fetchall()
    judged = list(dict.fromkeys([*loaded_batch_ids, *(r[0] for r in newest)]))
    results: list[CheckResult] = []
    for batch_id in judged:
        checks = check_batch(db_path, batch_id, settings)
        store_checks(db_path, batch_id, checks)
        results.extend(checks)
    decision = decide(results)
    for r in [*decision.errors, *decision.warnings]:
        log.warning("data quality %s: batch %s %s %s: %s", r.status, r.batch_id, r.table, r.check, r.message)
    log.info("data quality: %d checks on %d batches, %s", len(results), len(judged), decision.status)
    return decision


def apply_policy(decision: GateDecision, settings: QualitySettings) -> str | None:
    """Raise DataQualityError on errors when the policy is "fail"; otherwise return the statement every output
    carries (None when there are no errors)."""
    statement = decision.statement()
    if statement is not None and settings.on_error == "fail":
        raise DataQualityError(
            f'{statement}. Scoring stopped (quality.on_error = "fail"): fix or resend the feeds, or set '
            'quality.on_error = "flag" to score with the errors stated'
        )
    return statement
