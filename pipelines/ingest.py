"""Validated, atomic, idempotent ingest of one batch folder into DuckDB (plain Python; flows wrap it).

The batch folder, its manifest (`batch.json`) and its reader are `data_contracts.batch`'s: a batch that is not
whole yet (no complete marker, a listed file missing or with another checksum) waits, reported as "waiting" and
neither loaded nor recorded, so the next run reads it again; one without an extract date in its manifest, or
holding a file the manifest does not list, is refused. The extract date always comes from the manifest.

One batch is one DuckDB transaction: any failure rolls everything back. Within it:
1. the batch id is looked up in `batches`: same file checksums -> no-op; different -> BatchRejected;
2. every file's header is checked (a missing required column rejects the whole batch); each file's rows read
   must be the rows its manifest lists;
3. tables load in `LOAD_ORDER`: opt-outs first (and an opt-out erases that person from every warehouse table
   declared to hold person rows, `pipelines.warehouse.erase_people`, counted as `rows_removed`), then persons,
   then the rest, each checked against the persons and opt-outs already in the database (including this
   batch's, loaded just before);
4. each table's valid rows replace any rows with the same grain key (corrections win), rejected rows go
   to `quarantine`, and the counts must reconcile (read = loaded + quarantined + excluded) before commit.

Lookups touch only the person ids present in the batch (semi-joins against a registered frame), so a
weekly batch costs in proportion to its size, apart from the key-replacement deletes, which scan the key
columns of the target table (deliberately no PRIMARY KEY index: see `pipelines.warehouse.WarehouseTable.ddl`).
The tables themselves, their DDL and the currency of a database are the warehouse's (`pipelines.warehouse`).
Log messages carry counts only, never person-level values.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from data_contracts.batch import BATCH_MANIFEST, Batch, BatchIncomplete, BatchRejected, last_changed, read_batch
from data_contracts.costs import add_derived_costs
from data_contracts.errors import DomainError
from data_contracts.importer import ImportWarning, recorded_warnings
from data_contracts.reference import REFERENCE_CURRENCY
from data_contracts.schema import Table
from data_contracts.settings import IngestSettings
from data_contracts.tables import OPT_OUTS, PERSONS, TABLES
from data_contracts.validation import (
    PERSON_LOOKUP_COLUMNS,
    FileRejected,
    ValidationResult,
    check_required_columns,
    clean_text,
    read_table_file,
    validate_table,
)
from pipelines.warehouse import (
    BATCH_UNLOADS,
    INGEST_LOG,
    QUARANTINE,
    WAREHOUSE_TABLES,
    MixedCurrencies,
    compact,
    connect,
    database_currency,
    ensure_schema,
    erase_people,
    loaded_checksum,
    registered,
    rows_changed,
    tables_present,
)

log = logging.getLogger("riskstrat.ingest")

LOAD_ORDER: tuple[str, ...] = (
    OPT_OUTS.name,
    PERSONS.name,
    *(n for n in TABLES if n not in (OPT_OUTS.name, PERSONS.name)),
)
"""Opt-outs before persons before activity: later tables are checked against the earlier ones."""


class UnloadRefused(DomainError):
    """A batch that cannot be unloaded (unknown, or its effects cannot be undone honestly); nothing changed."""


class InjectedFailure(RuntimeError):
    """Raised by the `fail_after_table` test hook."""


class ReconciliationError(RuntimeError):
    """Rows went missing between reading and loading: a bug, so the batch is rolled back."""


@dataclass
class TableCounts:
    table: str
    file: str | None
    sha256: str | None
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    rows_excluded: int = 0
    rows_removed: int = 0
    rows_replaced: int = 0  # earlier batches' rows with the same grain key, replaced (latest batch wins)

    def reconciles(self) -> bool:
        return self.rows_read == self.rows_loaded + self.rows_quarantined + self.rows_excluded


@dataclass
class IngestReport:
    batch_id: str
    status: str  # "loaded" | "skipped_already_loaded" | "waiting" (not whole yet: read again by the next run)
    tables: list[TableCounts] = field(default_factory=list)
    quarantine_reasons: dict[tuple[str, str], int] = field(default_factory=dict)
    seconds: float = 0.0
    data_quality_warnings: list[ImportWarning] = field(default_factory=list)  # from the import, in batch.json
    reason: str | None = None  # why a batch waits

    def summary(self) -> dict[str, Any]:
        """The report as plain data (what flows return): counts and reasons only, never row values."""
        return {
            "batch_id": self.batch_id,
            "status": self.status,
            "reason": self.reason,
            "tables": [vars(t) for t in self.tables],
        }


def check_not_stale(batch_dir: Path, why: str, days: int) -> None:
    """A batch not whole yet waits, but not for ever: when nothing in its folder has changed for `days` days (a copy
    that died half-way), the run fails naming it (`BatchRejected`) rather than hold back every later batch."""
    waited = (time.time() - last_changed(batch_dir)) / 86_400
    if waited >= days:
        raise BatchRejected(
            f"batch folder {batch_dir.name} has not been whole for {waited:.0f} days ({why}; "
            f"ingest.incomplete_batch_days = {days}): finish copying it, or move it out of the batches folder"
        )


def held_back(batch_dir: Path, earlier: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The summary of a batch that waits behind an earlier one in this run (None when none waits). Batches load
    in name order: a later batch loaded first would have its corrections replaced by the older batch's rows."""
    waiting = next((r["batch_id"] for r in earlier if r["status"] == "waiting"), None)
    if waiting is None:
        return None
    reason = f"behind {waiting}, which is not whole yet (batches load in name order)"
    log.warning("batch folder %s waits: %s", Path(batch_dir).name, reason)
    return IngestReport(Path(batch_dir).name, "waiting", reason=reason).summary()


# ---------------------------------------------------------------------------------------------- batch folder


def check_headers(batch: Batch) -> None:
    """Reject the batch before any row is read when a file is unreadable or lacks a required column."""
    for name, path in batch.files.items():
        try:
            extra = check_required_columns(path, TABLES[name])
        except FileRejected as exc:
            raise BatchRejected(f"batch {batch.batch_id}: {exc}") from exc
        if extra:
            log.warning(
                "batch %s: %s has %d column(s) outside the contract, ignored", batch.batch_id, path.name, len(extra)
            )


# ---------------------------------------------------------------------------------------------- database


def _person_ids(raw: pl.DataFrame) -> pl.DataFrame:
    """Distinct person ids in a file, cleaned as validation cleans them."""
    return raw.select(clean_text(pl.col("person_id")).alias("person_id")).drop_nulls().unique()


def lookup_people(
    con: duckdb.DuckDBPyConnection, ids: pl.DataFrame, with_persons: bool
) -> tuple[pl.Series, pl.DataFrame | None]:
    """Which of `ids` opted out, and (with_persons) the birth year and month of those who are known.
    Only the batch's ids are looked up; the database already holds this batch's opt-outs and persons."""
    columns = ", ".join(f"p.{c}" for c in PERSON_LOOKUP_COLUMNS)
    with registered(con, "_batch_person_ids", ids):
        opted_out = con.sql(
            "SELECT DISTINCT o.person_id FROM (SELECT person_id FROM opt_outs UNION ALL "
            "SELECT person_id FROM opt_outs_unverified) o SEMI JOIN _batch_person_ids i ON o.person_id = i.person_id"
        ).pl()
        persons = (
            con.sql(f"SELECT {columns} FROM persons p SEMI JOIN _batch_person_ids i ON p.person_id = i.person_id").pl()
            if with_persons
            else None
        )
    return opted_out.get_column("person_id"), persons


def replace_rows(con: duckdb.DuckDBPyConnection, table: Table, staged: pl.DataFrame) -> tuple[int, int]:
    """Delete rows whose grain key is staged (a join, no index needed), then insert the staged rows.
    Returns (replaced, inserted)."""
    columns = ", ".join(c.name for c in table.all_columns)
    on = " AND ".join(f"t.{k} = s.{k}" for k in table.grain)
    with registered(con, "_staged", staged):
        replaced = rows_changed(con, f"DELETE FROM {table.name} AS t USING _staged AS s WHERE {on}")
        inserted = rows_changed(con, f"INSERT INTO {table.name} ({columns}) SELECT {columns} FROM _staged")
    return replaced, inserted


def remove_opted_out(con: duckdb.DuckDBPyConnection, opted_out: pl.DataFrame) -> dict[str, int]:
    """Erase people who opted out from every table holding their rows (`erase_people`); returns the rows
    changed per table (the contract tables' counts are what `ingest_log.rows_removed` records)."""
    erased = erase_people(con, opted_out.select("person_id"))
    if erased.get(QUARANTINE.name):
        log.info("removed %d quarantine rows of people who opted out", erased[QUARANTINE.name])
    return erased


def honour_quarantined_opt_outs(con: duckdb.DuckDBPyConnection, batch: Batch, result: ValidationResult) -> pl.DataFrame:
    """Person ids of opt-out rows that failed validation: recorded as unverified objections and honoured."""
    ids = (
        result.quarantine.select(
            pl.col("raw_values").str.json_path_match("$.person_id").str.strip_chars().alias("person_id")
        )
        .filter(pl.col("person_id").is_not_null() & (pl.col("person_id") != ""))
        .unique()
    )
    if ids.height:
        with registered(con, "_unverified", ids.with_columns(batch_id=pl.lit(batch.batch_id))):
            con.execute("INSERT INTO opt_outs_unverified SELECT person_id, batch_id FROM _unverified")
        log.info("batch %s: honouring %d opt-outs that failed validation", batch.batch_id, ids.height)
    return ids


def write_quarantine(con: duckdb.DuckDBPyConnection, batch_id: str, table: str, quarantine: pl.DataFrame) -> None:
    if quarantine.is_empty():
        return
    with registered(con, "_quarantine", quarantine):
        rows_changed(
            con,
            "INSERT INTO quarantine "
            "SELECT ?, ?, source_row, column_name, reason, all_reasons, raw_values FROM _quarantine",
            [batch_id, table],
        )


def write_log(con: duckdb.DuckDBPyConnection, batch: Batch, counts: list[TableCounts], at: datetime) -> None:
    """One ingest_log row per table read (none for a batch without table files) and the batch's own row."""
    extract_date = batch.extract_date
    if counts:
        con.executemany(
            INGEST_LOG.insert_values(),
            [
                [
                    batch.batch_id,
                    c.table,
                    c.file,
                    c.sha256,
                    c.rows_read,
                    c.rows_loaded,
                    c.rows_quarantined,
                    c.rows_excluded,
                    c.rows_removed,
                    extract_date,
                    at,
                    c.rows_replaced,
                ]
                for c in counts
            ],
        )
    rows_changed(
        con,
        "INSERT INTO batches (batch_id, extract_date, loaded_at, files_sha256, currency, holds_costs) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [batch.batch_id, extract_date, at, batch.combined_sha256, batch.currency, batch.holds_costs],
    )


def check_currency(con: duckdb.DuckDBPyConnection, batch: Batch) -> None:
    """Costs are never converted, so one database holds one currency: refuse a batch in another. A batch without
    costs (a caseload export, opt-outs) has no currency and goes into any database."""
    if batch.currency is None:
        return
    try:
        held = database_currency(con)
    except MixedCurrencies as exc:
        raise BatchRejected(str(exc)) from exc
    if held is not None and held != batch.currency:
        raise BatchRejected(
            f"batch {batch.batch_id}: its costs are in {batch.currency} but the database holds costs in {held}; "
            "costs are never converted, so load it into a separate database (--db)"
        )


# ---------------------------------------------------------------------------------------------- one table


def validate_file(
    con: duckdb.DuckDBPyConnection,
    batch_id: str,
    path: Path,
    table: Table,
    extract_date: date | None,
    settings: IngestSettings,
) -> ValidationResult:
    """Read a file and validate it against the contract and the persons and opt-outs in the database."""
    try:
        raw = read_table_file(path, table)
    except FileRejected as exc:
        raise BatchRejected(f"batch {batch_id}: {exc}") from exc
    opted_out = persons = None
    if table.person_linked or table.name == PERSONS.name:
        opted_out, persons = lookup_people(con, _person_ids(raw), with_persons=table.person_linked)
    return validate_table(
        raw, table, extract_date, persons, opted_out, quarantine_cap=settings.quarantine_cap_per_reason
    )


def load_table(
    con: duckdb.DuckDBPyConnection,
    batch: Batch,
    table: Table,
    extract_date: date | None,
    settings: IngestSettings,
) -> tuple[TableCounts, ValidationResult]:
    path = batch.files[table.name]
    result = validate_file(con, batch.batch_id, path, table, extract_date, settings)
    if result.rows_read != batch.rows[table.name]:
        raise BatchRejected(
            f"batch {batch.batch_id}: {path.name} holds {result.rows_read} rows but {BATCH_MANIFEST} lists "
            f"{batch.rows[table.name]}"
        )
    staged = add_derived_costs(result.valid, table.name, batch.currency or REFERENCE_CURRENCY).with_columns(
        pl.lit(batch.batch_id).alias("batch_id")
    )
    replaced, inserted = replace_rows(con, table, staged.select(c.name for c in table.all_columns))
    write_quarantine(con, batch.batch_id, table.name, result.quarantine)
    counts = TableCounts(
        table=table.name,
        file=path.name,
        sha256=batch.sha256[table.name],
        rows_read=result.rows_read,
        rows_loaded=inserted,
        rows_quarantined=result.rows_quarantined,
        rows_excluded=result.rows_excluded,
        rows_replaced=replaced,
    )
    if inserted != result.rows_valid or not counts.reconciles():
        raise ReconciliationError(
            f"{table.name}: read {counts.rows_read} != loaded {inserted} (valid {result.rows_valid}) "
            f"+ quarantined {counts.rows_quarantined} + excluded {counts.rows_excluded}"
        )
    log.info(
        "batch %s %s: read %d, loaded %d (%d replaced earlier rows), quarantined %d, excluded %d",
        batch.batch_id,
        table.name,
        counts.rows_read,
        counts.rows_loaded,
        replaced,
        counts.rows_quarantined,
        counts.rows_excluded,
    )
    return counts, result


# ---------------------------------------------------------------------------------------------- one batch


def _load_all_tables(
    con: duckdb.DuckDBPyConnection,
    batch: Batch,
    extract_date: date | None,
    settings: IngestSettings,
    fail_after_table: str | None,
) -> tuple[list[TableCounts], Counter[tuple[str, str]], int]:
    """Every table of the batch in load order: the counts, the quarantine reasons, and how many rows erasing
    opted-out people changed in any table."""
    counts: dict[str, TableCounts] = {}
    reasons: Counter[tuple[str, str]] = Counter()
    erased = 0
    for name in LOAD_ORDER:
        if name in batch.files:
            loaded, result = load_table(con, batch, TABLES[name], extract_date, settings)
            loaded.rows_removed = counts[name].rows_removed if name in counts else 0
            counts[name] = loaded
            reasons.update({(name, reason): n for reason, n in result.reason_counts.items()})
            if name == OPT_OUTS.name:
                objections = pl.concat(
                    [result.valid.select("person_id"), honour_quarantined_opt_outs(con, batch, result)]
                )
                for table, n in remove_opted_out(con, objections).items():
                    erased += n
                    if table in TABLES:
                        counts.setdefault(table, TableCounts(table, None, None)).rows_removed += n
        if name == fail_after_table:
            raise InjectedFailure(f"test hook: failing after table {name}")
    ordered = [counts[n] for n in LOAD_ORDER if n in counts]
    broken = [c.table for c in ordered if not c.reconciles()]
    if broken:
        raise ReconciliationError(f"counts do not reconcile for {broken}")
    return ordered, reasons, erased


def ingest_batch(
    db_path: Path,
    batch_dir: Path,
    settings: IngestSettings | None = None,
    fail_after_table: str | None = None,
) -> IngestReport:
    """Validate and load one batch folder in one transaction (see the module docstring).

    A batch that is not whole yet (`data_contracts.batch.BatchIncomplete`) is not loaded and reported as
    "waiting", with the reason. Raises BatchRejected (nothing loaded) for an unusable file or manifest, a file's
    rows differing from its manifest, or when the batch id was loaded before with different files.
    `fail_after_table` is a test hook raising after that table loads.
    """
    if fail_after_table is not None and fail_after_table not in TABLES:
        raise ValueError(f"fail_after_table: unknown table {fail_after_table!r}")
    started = time.perf_counter()
    settings = settings or IngestSettings()
    try:
        batch = read_batch(batch_dir)
    except BatchIncomplete as exc:
        check_not_stale(Path(batch_dir), str(exc), settings.incomplete_batch_days)
        log.warning("batch folder %s waits: %s; not loaded, read again by the next run", Path(batch_dir).name, exc)
        return IngestReport(Path(batch_dir).name, "waiting", reason=str(exc), seconds=time.perf_counter() - started)
    with _write_transaction(db_path) as con:
        previous = loaded_checksum(con, batch.batch_id)
        if previous == batch.combined_sha256:
            con.rollback()
            log.info("batch %s: already loaded with the same files; nothing to do", batch.batch_id)
            return IngestReport(batch.batch_id, "skipped_already_loaded", seconds=time.perf_counter() - started)
        if previous is not None:
            raise BatchRejected(
                f"batch {batch.batch_id} was already loaded from different files (checksums differ): "
                "give a corrected extract a new batch id"
            )
        check_currency(con, batch)
        check_headers(batch)
        counts, reasons, erased = _load_all_tables(con, batch, batch.extract_date, settings, fail_after_table)
        loaded_at = datetime.now(UTC).replace(tzinfo=None)  # stored as a plain TIMESTAMP, in UTC
        write_log(con, batch, counts, loaded_at)
        con.commit()
    if erased:
        # An erasure: the deleted rows' bytes must leave the file too, not only the tables.
        compact(db_path)
        log.info("batch %s: database compacted after erasing opted-out people", batch.batch_id)
    report = IngestReport(batch.batch_id, "loaded", counts, dict(reasons), time.perf_counter() - started)
    report.data_quality_warnings = recorded_warnings(batch.manifest)
    _log_summary(report)
    return report


@contextmanager
def _write_transaction(db_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A write connection inside an open transaction, the schema ensured; the caller commits. Any failure rolls
    back (a kill -9 too: DuckDB never commits a transaction that was not committed)."""
    con = connect(db_path, read_only=False)
    try:
        con.begin()
        ensure_schema(con)
        yield con
    except BaseException:
        _rollback_quietly(con)
        raise
    finally:
        con.close()


def _rollback_quietly(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back without masking the original error (there may be no open transaction)."""
    try:
        con.rollback()
    except duckdb.Error:
        log.debug("rollback: no open transaction")


def _log_summary(report: IngestReport) -> None:
    for warning in report.data_quality_warnings:
        log.warning(
            "batch %s: data-quality warning (%s, %s rows): %s",
            report.batch_id,
            warning.kind,
            warning.rows,
            warning.message,
        )
    for (table, reason), n in sorted(report.quarantine_reasons.items()):
        log.info("batch %s %s: %d row(s) quarantined for %s", report.batch_id, table, n, reason)
    log.info(
        "batch %s loaded: %d rows read, %d loaded, %d quarantined, %d excluded, %d removed in %.2f s",
        report.batch_id,
        sum(t.rows_read for t in report.tables),
        sum(t.rows_loaded for t in report.tables),
        sum(t.rows_quarantined for t in report.tables),
        sum(t.rows_excluded for t in report.tables),
        sum(t.rows_removed for t in report.tables),
        report.seconds,
    )


# ---------------------------------------------------------------------------------------------- unloading


@dataclass
class UnloadReport:
    batch_id: str
    rows_removed: dict[str, int]  # table -> rows of the batch removed (its bookkeeping rows included)


def _batch_tables(present: set[str]) -> list[str]:
    """Every warehouse table whose rows record the batch they came from (contract tables, quarantine, the logs)."""
    return [
        t.name
        for t in WAREHOUSE_TABLES.values()
        if "batch_id" in t.column_names and t is not BATCH_UNLOADS and t.name in present
    ]


def _refuse_unload(con: duckdb.DuckDBPyConnection, batch_id: str, present: set[str]) -> None:
    """Refuse (one line, counts and table names only) when unloading could not restore the warehouse as if the
    batch had never been loaded."""
    objections = sum(
        con.execute(f"SELECT count(*) FROM {table} WHERE batch_id = ?", [batch_id]).fetchall()[0][0]
        for table in (OPT_OUTS.name, "opt_outs_unverified")
        if table in present
    )
    if objections:
        raise UnloadRefused(
            f"batch {batch_id} delivered {objections} opt-out(s): the rows they erased are gone and an objection "
            "is withdrawn by its source, not by unloading; load a correcting batch instead"
        )
    replaced = con.execute(
        "SELECT table_name, rows_replaced FROM ingest_log WHERE batch_id = ? "
        "AND (rows_replaced IS NULL OR rows_replaced > 0) ORDER BY table_name",
        [batch_id],
    ).fetchall()
    if any(n is None for _, n in replaced):
        raise UnloadRefused(
            f"batch {batch_id} was loaded before riskstrat recorded which earlier rows a batch replaces, so "
            "unloading it cannot tell what to bring back; load a correcting batch instead"
        )
    if replaced:
        where = ", ".join(f"{n} in {table}" for table, n in replaced)
        raise UnloadRefused(
            f"batch {batch_id} replaced earlier batches' rows with the same keys ({where}; latest batch wins) and "
            "the replaced rows are not kept, so unloading cannot bring them back; load a correcting batch instead"
        )
    # People this batch introduced (its persons rows replaced none, checked above) with rows from other batches:
    # without the batch those rows would have been quarantined, so the other batches go first.
    dependants: list[str] = []
    for table in TABLES.values():
        if table.person_linked and table.name in present:
            rows = con.execute(
                f"SELECT DISTINCT t.batch_id FROM {table.name} t SEMI JOIN "
                "(SELECT person_id FROM persons WHERE batch_id = ?) p ON t.person_id = p.person_id "
                "WHERE t.batch_id <> ?",
                [batch_id, batch_id],
            ).fetchall()
            dependants += [r[0] for r in rows]
    if dependants:
        raise UnloadRefused(
            f"batches {', '.join(sorted(set(dependants)))} loaded rows of people batch {batch_id} delivered: "
            "unload them first"
        )


def unload_batch(db_path: Path, batch_id: str) -> UnloadReport:
    """Remove everything one batch loaded, in one transaction, leaving the warehouse as if it had never been
    loaded: its rows in every table that records a batch (contract tables, quarantine, ingest_log, the data-quality
    checks, `batches`), recorded in `batch_unloads`; then the file is compacted (the rows' bytes leave it too).
    The same batch folder can be ingested again afterwards.

    Refused (`UnloadRefused`, nothing changed) for an unknown batch id, and where the warehouse cannot honestly be
    put back: the batch delivered opt-outs (what they erased is gone), replaced earlier batches' rows by key
    (they are not kept), or introduced people whom later batches' rows belong to (unload those first)."""
    with _write_transaction(db_path) as con:
        loaded = con.execute(
            "SELECT extract_date, files_sha256, loaded_at FROM batches WHERE batch_id = ?", [batch_id]
        ).fetchall()
        if not loaded:
            raise UnloadRefused(f"no batch {batch_id!r} is loaded in {db_path}")
        present = tables_present(con)
        _refuse_unload(con, batch_id, present)
        removed = {
            table: n
            for table in _batch_tables(present)
            if (n := rows_changed(con, f"DELETE FROM {table} WHERE batch_id = ?", [batch_id]))
        }
        unloaded_at = datetime.now(UTC).replace(tzinfo=None)
        extract_date, files_sha256, loaded_at = loaded[0]
        con.executemany(
            BATCH_UNLOADS.insert_values(),
            [[batch_id, extract_date, files_sha256, loaded_at, unloaded_at, t, n] for t, n in removed.items()],
        )
        con.commit()
    compact(db_path)
    data_rows = sum(n for table, n in removed.items() if table in TABLES)
    log.info("batch %s unloaded: %d rows removed from %d tables", batch_id, data_rows, len(removed))
    return UnloadReport(batch_id, removed)
