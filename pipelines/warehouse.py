"""The DuckDB warehouse: every table it holds, declared once, and every way the other layers read or write it.

One declaration per table (`WAREHOUSE_TABLES`): the contract tables (columns from `data_contracts.tables`),
ingest's bookkeeping (`quarantine`, `ingest_log`, `batches`, `opt_outs_unverified`) and scoring's history
(`risk_scores`, `team_list_history`). From it come the DDL (`ensure_schema`) and erasure (`erase_people`):
each table that holds rows about a person declares how erasing that person reaches them (`PersonRows`), and a
table with a `person_id` column that declares neither that nor why its ids are kept is refused when the
module loads. A new person-level table (a caseload, an audit trail) joins erasure by being declared here.

Also here: which tables a database holds (`tables_present`), the currency of its costs (`database_currency`,
`cost_currency`), last week's lists (`previous_lists`), storing a run's scores and lists (`scores_stored`, committed
only once the run's folder is published), and reading contract tables into Polars for the feature layer
(`read_tables`: the only place features' inputs are read). Ingest (`pipelines.ingest`) loads batches through
these; training and scoring read through them.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import polars as pl
from polars.io.plugins import register_io_source

from data_contracts.errors import DatabaseBusy, DomainError, NotReadyError
from data_contracts.outcomes import OUTCOMES
from data_contracts.reference import REFERENCE_CURRENCY
from data_contracts.schema import Table
from data_contracts.tables import COSTED_EVENT_DATES, OPT_OUTS, PERSONS, TABLES
from features.inputs import contract_schema

if TYPE_CHECKING:
    from pipelines.scoring import ScoreResult


class MixedCurrencies(DomainError):
    """The database holds costs in more than one currency (costs are never converted)."""


# ---------------------------------------------------------------------------------------------- declarations


@dataclass(frozen=True)
class PersonRows:
    """How erasing a person (an opt-out) reaches a table's rows."""

    person_id: str = "person_id"
    """SQL over the table's columns giving the row's person id."""
    keep_row: bool = False
    """True: the row stays with its person id set to null, so it is still counted but no longer names anyone."""


@dataclass(frozen=True)
class WarehouseTable:
    name: str
    columns: tuple[tuple[str, str], ...]  # (name, DuckDB type), in storage order
    person_rows: PersonRows | None = None
    kept_on_erasure: str = ""  # why a table with person ids keeps them when a person is erased
    migrations: tuple[str, ...] = ()  # brings a table created by an older riskstrat up to these columns

    def __post_init__(self) -> None:
        if "person_id" in self.column_names and self.person_rows is None and not self.kept_on_erasure:
            raise TypeError(
                f"warehouse table {self.name} holds person ids: declare its person_rows or why it keeps ids"
            )

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    def insert_values(self) -> str:
        """An INSERT of one row of every column, in declaration order, as `?` parameters."""
        marks = ", ".join("?" for _ in self.columns)
        return f"INSERT INTO {self.name} ({', '.join(self.column_names)}) VALUES ({marks})"

    def ddl(self) -> str:
        """The grain of a contract table is enforced by the loader (replace-by-key), not by a PRIMARY KEY:
        DuckDB's ART index over tens of millions of string keys costs memory and slows bulk loads."""
        columns = ",\n  ".join(f"{name} {kind}" for name, kind in self.columns)
        return f"CREATE TABLE IF NOT EXISTS {self.name} (\n  {columns}\n)"


def _contract_table(table: Table) -> WarehouseTable:
    # Persons and activity rows are the person's data; opt-outs are the objection itself, kept so that the
    # person stays excluded from every later batch; teams hold no person rows.
    holds_person_rows = table.name == PERSONS.name or table.person_linked
    return WarehouseTable(
        table.name,
        tuple((c.name, c.duckdb_type) for c in table.all_columns),
        person_rows=PersonRows() if holds_person_rows else None,
        kept_on_erasure="the objection: it keeps the person out of every later batch" if table is OPT_OUTS else "",
    )


QUARANTINE = WarehouseTable(
    "quarantine",
    (
        ("batch_id", "VARCHAR"),
        ("table_name", "VARCHAR"),
        ("source_row", "BIGINT"),
        ("column_name", "VARCHAR"),
        ("reason", "VARCHAR"),
        ("all_reasons", "VARCHAR"),
        ("raw_values", "VARCHAR"),
    ),
    # The raw rows rejected by validation are that person's data too.
    person_rows=PersonRows("json_extract_string(raw_values, '$.person_id')"),
)
INGEST_LOG = WarehouseTable(
    "ingest_log",
    (
        ("batch_id", "VARCHAR"),
        ("table_name", "VARCHAR"),
        ("file_name", "VARCHAR"),
        ("sha256", "VARCHAR"),
        ("rows_read", "BIGINT"),
        ("rows_loaded", "BIGINT"),
        ("rows_quarantined", "BIGINT"),
        ("rows_excluded", "BIGINT"),
        ("rows_removed", "BIGINT"),
        ("extract_date", "DATE"),
        ("loaded_at", "TIMESTAMP"),
        # Rows of earlier batches this table's rows replaced by grain key (latest batch wins); what unloading the
        # batch could not bring back. Null on rows logged before it was kept.
        ("rows_replaced", "BIGINT"),
    ),
    migrations=("ALTER TABLE ingest_log ADD COLUMN IF NOT EXISTS rows_replaced BIGINT",),
)
BATCHES = WarehouseTable(
    "batches",
    (
        ("batch_id", "VARCHAR"),
        ("extract_date", "DATE"),
        ("loaded_at", "TIMESTAMP"),
        ("files_sha256", "VARCHAR"),
        ("currency", "VARCHAR"),  # of its costs; null for a batch without costs (or loaded before it was kept)
        ("holds_costs", "BOOLEAN"),  # false: no cost column, so its (null) currency binds nothing
    ),
    # Databases created before batches recorded a currency gain the column (their batches were all GBP), and
    # before they recorded whether they held costs, the flag (null: counted as holding GBP costs, as before).
    migrations=(
        "ALTER TABLE batches ADD COLUMN IF NOT EXISTS currency VARCHAR",
        "ALTER TABLE batches ADD COLUMN IF NOT EXISTS holds_costs BOOLEAN",
    ),
)
# Batches unloaded (`pipelines.ingest.unload_batch`): what each had been and the rows removed, per table.
BATCH_UNLOADS = WarehouseTable(
    "batch_unloads",
    (
        ("batch_id", "VARCHAR"),
        ("extract_date", "DATE"),
        ("files_sha256", "VARCHAR"),
        ("loaded_at", "TIMESTAMP"),
        ("unloaded_at", "TIMESTAMP"),
        ("table_name", "VARCHAR"),
        ("rows_removed", "BIGINT"),
    ),
)
OPT_OUTS_UNVERIFIED = WarehouseTable(
    "opt_outs_unverified",
    (("person_id", "VARCHAR"), ("batch_id", "VARCHAR")),
    # An opt-out row that fails validation (a bad date, an unknown type) still records an objection: its person
    # id is honoured here, while the row itself stays in quarantine for the data team to fix.
    kept_on_erasure="the objection itself, like opt_outs",
)
RISK_SCORES = WarehouseTable(
    "risk_scores",
    (
        ("run_id", "VARCHAR"),
        ("as_of", "DATE"),
        ("person_id", "VARCHAR"),
        ("outcome", "VARCHAR"),
        ("risk", "DOUBLE"),
        ("tier", "VARCHAR"),
        ("population_rank", "BIGINT"),
    ),
    person_rows=PersonRows(),
)
TEAM_LIST_HISTORY = WarehouseTable(
    "team_list_history",
    (
        ("run_id", "VARCHAR"),
        ("as_of", "DATE"),
        ("team_id", "VARCHAR"),
        ("person_id", "VARCHAR"),
        ("rank", "BIGINT"),
        ("risk", "DOUBLE"),
    ),
    # Next week's changes count a leaver who opted out without naming them.
    person_rows=PersonRows(keep_row=True),
)

# Data-quality gate results per batch and table (data_contracts.quality, run by pipelines.gates).
QUALITY_CHECKS = WarehouseTable(
    "quality_checks",
    (
        ("batch_id", "VARCHAR"),
        ("extract_date", "DATE"),
        ("table_name", "VARCHAR"),
        ("check_name", "VARCHAR"),
        ("status", "VARCHAR"),
        ("value", "DOUBLE"),
        ("threshold", "DOUBLE"),
        ("message", "VARCHAR"),
        ("checked_at", "TIMESTAMP"),
    ),
)
# Weekly drift and performance figures and the refit alerts they raised (pipelines.monitor): aggregates only.
MONITORING_METRICS = WarehouseTable(
    "monitoring_metrics",
    (
        ("as_of", "DATE"),
        ("outcome", "VARCHAR"),
        ("model_version", "VARCHAR"),
        ("metric", "VARCHAR"),
        ("subject", "VARCHAR"),
        ("value", "DOUBLE"),
    ),
)
MONITORING_ALERTS = WarehouseTable(
    "monitoring_alerts",
    (
        ("as_of", "DATE"),
        ("outcome", "VARCHAR"),
        ("model_version", "VARCHAR"),
        ("rule", "VARCHAR"),
        ("subject", "VARCHAR"),
        ("value", "DOUBLE"),
        ("threshold", "DOUBLE"),
        ("message", "VARCHAR"),
    ),
)

# Draws at the margin of each team's list (scoring.randomise_margin): who entered the draw and who was listed.
LIST_DRAWS = WarehouseTable(
    "list_draws",
    (
        ("run_id", "VARCHAR"),
        ("as_of", "DATE"),
        ("team_id", "VARCHAR"),
        ("person_id", "VARCHAR"),
        ("list_rank", "BIGINT"),  # the rank before the draw
        ("offered", "BOOLEAN"),  # drawn onto the list
        ("seed", "BIGINT"),
    ),
    person_rows=PersonRows(),
)
# Evaluation plans of the case-management service as frozen (pipelines/evaluate.py), and each evaluation's
# estimates with the plan they answer.
EVALUATION_PLANS = WarehouseTable(
    "evaluation_plans",
    (
        ("plan_id", "VARCHAR"),
        ("plan_hash", "VARCHAR"),
        ("title", "VARCHAR"),
        ("replaces", "VARCHAR"),
        ("frozen_at", "TIMESTAMP"),
        ("plan_text", "VARCHAR"),
    ),
)
EVALUATION_RESULTS = WarehouseTable(
    "evaluation_results",
    (
        ("plan_hash", "VARCHAR"),
        ("evaluated_at", "TIMESTAMP"),
        ("data_end", "DATE"),
        ("method", "VARCHAR"),
        ("outcome", "VARCHAR"),
        ("estimate", "DOUBLE"),
        ("lo", "DOUBLE"),
        ("hi", "DOUBLE"),
        ("people", "BIGINT"),
        ("comparisons", "BIGINT"),
    ),
)

WAREHOUSE_TABLES: dict[str, WarehouseTable] = {
    t.name: t
    for t in (
        *(_contract_table(table) for table in TABLES.values()),
        QUARANTINE,
        INGEST_LOG,
        BATCHES,
        BATCH_UNLOADS,
        OPT_OUTS_UNVERIFIED,
        RISK_SCORES,
        TEAM_LIST_HISTORY,
        QUALITY_CHECKS,
        MONITORING_METRICS,
        MONITORING_ALERTS,
        LIST_DRAWS,
        EVALUATION_PLANS,
        EVALUATION_RESULTS,
    )
}
"""Every table of the warehouse. Contract tables first, in load order."""


# ---------------------------------------------------------------------------------------------- schema


WAIT_ENV = "RISKSTRAT_DB_WAIT_SECONDS"
"""How long a connection waits for another run's lock before giving up: 0 (fail at once) for a command typed by
a person; `riskstrat serve` sets it for scheduled runs, which should queue behind a long manual run."""
SCHEDULED_WAIT_SECONDS = 3600
_HOLDER = re.compile(r"\(PID (\d+)\)")


def connect(db_path: Path, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """A connection to the warehouse. Writing creates the database (and its folder) if absent. When another
    process holds the lock, waits up to $RISKSTRAT_DB_WAIT_SECONDS, then fails with `DatabaseBusy` naming it."""
    path = Path(db_path)
    if read_only and not path.exists():
        raise NotReadyError(f"no riskstrat database at {db_path}: run `riskstrat ingest` first")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + float(os.environ.get(WAIT_ENV) or 0)
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            if "Could not set lock" not in str(exc):
                raise
            if time.monotonic() >= deadline:
                raise DatabaseBusy(
                    f"another run holds the database {db_path}{_holder(str(exc))}: wait for it to "
                    "finish (scheduled runs wait up to $" + WAIT_ENV + " seconds)"
                ) from None
            time.sleep(1.0)


def _holder(message: str) -> str:
    """ " (process 1234, running since 2026-12-02 14:02:11)" from DuckDB's lock message and /proc, as far as
    they tell."""
    found = _HOLDER.search(message)
    if found is None:
        return ""
    pid = found[1]
    try:
        # Field 22 of /proc/<pid>/stat: start time in clock ticks after boot (the name, field 2, may hold spaces).
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line[:5] == "btime")
        started = datetime.fromtimestamp(boot + ticks / os.sysconf("SC_CLK_TCK")).isoformat(" ", "seconds")
    except (OSError, ValueError, IndexError, StopIteration):
        return f" (process {pid})"
    return f" (process {pid}, running since {started})"


def compact(db_path: Path) -> None:
    """Rewrite the database file with its live rows only, atomically. DuckDB marks deleted rows free but leaves
    their bytes in the file until the space is reused, so after an erasure the opted-out person's rows (their
    quarantined raw rows too) could still be read from the file's bytes; the copy holds none of them."""
    path = Path(db_path)
    fresh = path.with_name(f".{path.name}.compacting")
    fresh.unlink(missing_ok=True)
    quoted = {name: str(p).replace("'", "''") for name, p in (("src", path), ("dst", fresh))}
    try:
        with duckdb.connect(":memory:") as con:
            con.execute(f"ATTACH '{quoted['src']}' AS src (READ_ONLY)")
            con.execute(f"ATTACH '{quoted['dst']}' AS dst")
            con.execute("COPY FROM DATABASE src TO dst")
            con.execute("DETACH dst")
            con.execute("DETACH src")
        with open(fresh, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(fresh, path)
    finally:
        fresh.unlink(missing_ok=True)


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create every warehouse table that is absent (and bring older ones up to date)."""
    for table in WAREHOUSE_TABLES.values():
        con.execute(table.ddl())
        for migration in table.migrations:
            con.execute(migration)


def tables_present(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The tables this database holds (a database written by an older riskstrat may lack some)."""
    return {row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}


@contextmanager
def registered(con: duckdb.DuckDBPyConnection, name: str, frame: pl.DataFrame) -> Iterator[None]:
    """Expose a Polars frame to SQL as `name` for the block (as Arrow: zero-copy and cheap to register)."""
    con.register(name, frame.to_arrow())
    try:
        yield
    finally:
        con.unregister(name)


def rows_changed(con: duckdb.DuckDBPyConnection, statement: str, params: list[object] | None = None) -> int:
    """Run a DELETE, UPDATE or INSERT and return how many rows it changed (fetching all, so no result stays
    open)."""
    rows = con.execute(statement, params or []).fetchall()
    return int(rows[0][0]) if rows else 0


# ---------------------------------------------------------------------------------------------- erasure


def erase_people(con: duckdb.DuckDBPyConnection, person_ids: pl.DataFrame) -> dict[str, int]:
    """Erase the people in `person_ids` (a `person_id` column) from every table declared with `PersonRows`,
    inside the caller's transaction. Returns the rows changed per table (tables with none left out)."""
    changed: dict[str, int] = {}
    if person_ids.is_empty():
        return changed
    erased = person_ids.select(pl.col("person_id").alias("erased_person_id")).unique()
    present = tables_present(con)
    with registered(con, "_erased", erased):
        for table in WAREHOUSE_TABLES.values():
            rows = table.person_rows
            if rows is None or table.name not in present:
                continue
            match = f"{rows.person_id} = _erased.erased_person_id"
            if rows.keep_row:
                statement = f"UPDATE {table.name} SET person_id = NULL FROM _erased WHERE {match}"
            else:
                statement = f"DELETE FROM {table.name} USING _erased WHERE {match}"
            if n := rows_changed(con, statement):
                changed[table.name] = n
    return changed


# ---------------------------------------------------------------------------------------------- currency


def database_currency(con: duckdb.DuckDBPyConnection) -> str | None:
    """The currency of the costs already loaded (None for a database without costs); batches loaded before the
    currency was recorded are GBP, batches without costs (`holds_costs` false) have none."""
    query = "SELECT column_name FROM information_schema.columns WHERE table_name = 'batches'"
    columns = {row[0] for row in con.execute(query).fetchall()}
    if not columns:
        return None
    # Read-only readers of a database from before the columns existed: every batch there is GBP.
    currency = "currency" if "currency" in columns else "NULL"
    costed = "holds_costs IS NOT FALSE" if "holds_costs" in columns else "TRUE"
    rows = con.execute(
        f"SELECT DISTINCT coalesce({currency}, ?) FROM batches WHERE {costed} ORDER BY 1", [REFERENCE_CURRENCY]
    ).fetchall()
    if len(rows) > 1:
        raise MixedCurrencies(f"the database already mixes currencies ({', '.join(r[0] for r in rows)})")
    return rows[0][0] if rows else None


def cost_currency(db_path: Path) -> str:
    """The currency of the costs in a riskstrat database (the unit costs' currency when it holds no batch)."""
    with connect(db_path) as con:
        return database_currency(con) or REFERENCE_CURRENCY


# ---------------------------------------------------------------------------------------------- batches


def loaded_checksum(con: duckdb.DuckDBPyConnection, batch_id: str) -> str | None:
    """The combined checksum a batch id was loaded with (None: never loaded)."""
    rows = con.execute("SELECT files_sha256 FROM batches WHERE batch_id = ?", [batch_id]).fetchall()
    return rows[0][0] if rows else None


def latest_extract_date(db_path: Path) -> date | None:
    """The newest batch's extract date: the default "as of" for scoring."""
    with connect(db_path) as con:
        return con.execute("SELECT max(extract_date) FROM batches").fetchall()[0][0]


def batch_ids(db_path: Path) -> list[str]:
    """Every batch loaded so far, in load order: the data behind a run."""
    with connect(db_path) as con:
        return [row[0] for row in con.execute("SELECT batch_id FROM batches ORDER BY batch_id").fetchall()]


def batch_checksums(db_path: Path) -> dict[str, str]:
    """Every loaded batch's id and the sha256 over its files, in load order."""
    with connect(db_path) as con:
        rows = con.execute("SELECT batch_id, files_sha256 FROM batches ORDER BY batch_id").fetchall()
    return {batch_id: checksum or "" for batch_id, checksum in rows}


def earliest_event_date(db_path: Path) -> date | None:
    """The first admission, attendance or contact date loaded: where usable history begins."""
    with connect(db_path) as con:
        present = tables_present(con)
        firsts = [
            con.execute(f"SELECT min({column}) FROM {table}").fetchall()[0][0]
            for table, column in COSTED_EVENT_DATES.items()
            if table in present
        ]
    dates = [d for d in firsts if d is not None]
    return min(dates) if dates else None


# ---------------------------------------------------------------------------------------------- scores and lists


def previous_lists(db_path: Path, as_of: date) -> pl.DataFrame | None:
    """Last week's lists: the most recent stored run before `as_of`. Opted-out people are stored with a null
    id (see `erase_people`), so they still count as leavers without being named."""
    with connect(db_path) as con:
        if TEAM_LIST_HISTORY.name not in tables_present(con):
            return None
        frame = con.sql(
            "SELECT team_id, person_id, rank, risk FROM team_list_history "
            "WHERE as_of = (SELECT max(as_of) FROM team_list_history WHERE as_of < $1)",
            params=[as_of],
        ).pl()
    return frame if frame.height else None


def earlier_scores(db_path: Path, outcome: str, on_or_before: date) -> pl.DataFrame | None:
    """One outcome's stored scores from the most recent run on or before `on_or_before` (person_id, risk, tier,
    as_of), or None when no run is that old. Opted-out people's scores are erased (see `erase_people`)."""
    with connect(db_path) as con:
        if RISK_SCORES.name not in tables_present(con):
            return None
        frame = con.sql(
            "SELECT person_id, risk, tier, as_of FROM risk_scores WHERE outcome = $1 AND as_of = "
            "(SELECT max(as_of) FROM risk_scores WHERE outcome = $1 AND as_of <= $2) ORDER BY person_id",
            params=[outcome, on_or_before],
        ).pl()
    return frame if frame.height else None


def store_scores(db_path: Path, result: ScoreResult) -> None:
    """Keep a run's scores, lists and draws at the margin in the warehouse, committed at once (see
    `scores_stored`, which the publishing step uses so that only published lists are recorded)."""
    with scores_stored(db_path, result):
        pass


@contextmanager
def scores_stored(db_path: Path, result: ScoreResult) -> Iterator[None]:
    """Keep a run's scores, lists and draws at the margin in the warehouse (next week's changes are measured
    against them; the evaluation of case management reads the draws): written in one transaction on entering,
    committed on leaving the block, rolled back if the block fails. Publishing switches the week's folder in
    inside the block, so the database never describes lists nobody received.
    Idempotent per as-of date: a rerun for the same date replaces that date's rows."""
    prov = result.publication.provenance
    outcome_of = {o.risk_column: o.name for o in OUTCOMES if o.risk_column in result.population.columns}
    scores = result.population.unpivot(
        index=["person_id", "tier", "population_rank"], on=list(outcome_of), variable_name="outcome", value_name="risk"
    ).select(
        pl.lit(prov.run_id).alias("run_id"),
        pl.lit(prov.as_of).alias("as_of"),
        "person_id",
        pl.col("outcome").replace_strict(outcome_of),
        "risk",
        "tier",
        "population_rank",
    )
    history = result.publication.team_list.select(
        pl.lit(prov.run_id).alias("run_id"),
        pl.lit(prov.as_of).alias("as_of"),
        "team_id",
        "person_id",
        "rank",
        pl.col("risk").cast(pl.Float64),
    )
    draws = result.draws.select(
        pl.lit(prov.run_id).alias("run_id"),
        pl.lit(prov.as_of).alias("as_of"),
        "team_id",
        "person_id",
        "list_rank",
        "offered",
        "seed",
    )
    with connect(db_path, read_only=False) as con:
        con.execute("BEGIN TRANSACTION")
        try:
            ensure_schema(con)
            for table, frame in ((RISK_SCORES, scores), (TEAM_LIST_HISTORY, history), (LIST_DRAWS, draws)):
                columns = ", ".join(table.column_names)
                con.execute(f"DELETE FROM {table.name} WHERE as_of = ?", [prov.as_of])
                with registered(con, "_incoming", frame):
                    con.execute(f"INSERT INTO {table.name} ({columns}) SELECT {columns} FROM _incoming")
            yield
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise


# ---------------------------------------------------------------------------------------------- reading


def read_tables(db_path: Path, names: Iterable[str] | None = None) -> dict[str, pl.LazyFrame]:
    """Contract tables as Polars LazyFrames (empty frames with the contract's columns for absent tables).

    Each frame is a lazy scan of the warehouse (`scan_query`): nothing is read until a query is collected, and
    then only the columns that query uses. Every collect reads the database as it is at that moment."""
    wanted = list(names) if names is not None else list(TABLES)
    frames: dict[str, pl.LazyFrame] = {}
    with connect(db_path) as con:
        present = tables_present(con)
        for name in wanted:
            if name == OPT_OUTS.name and OPT_OUTS_UNVERIFIED.name in present:
                frames[name] = scan_query(db_path, _ALL_OPT_OUTS, con)
            elif name in present:
                frames[name] = scan_query(db_path, f"SELECT * FROM {name}", con)
            else:
                frames[name] = empty_table(name).lazy()
    return frames


def scan_query(db_path: Path, query: str, con: duckdb.DuckDBPyConnection) -> pl.LazyFrame:
    """A LazyFrame over a query's rows that reads only the columns Polars' optimiser asks for (projection
    pushdown), through a read-only connection opened for each read. Filters are applied after reading.
    At a million people, reading whole tables held several GiB of columns no feature uses."""
    schema = con.sql(f"SELECT * FROM ({query}) LIMIT 0").pl().schema

    def read(
        with_columns: list[str] | None, predicate: pl.Expr | None, n_rows: int | None, _batch_size: int | None
    ) -> Iterator[pl.DataFrame]:
        columns = list(schema) if with_columns is None else with_columns
        # Zero columns still need the row count: read the narrowest thing there is and drop it below.
        selected = ", ".join(_quoted(c) for c in columns) if columns else "NULL AS _row"
        limit = f" LIMIT {int(n_rows)}" if n_rows is not None else ""
        with connect(db_path) as reader:
            frame = reader.sql(f"SELECT {selected} FROM ({query}){limit}").pl()
        if predicate is not None:
            frame = frame.filter(predicate)
        yield frame.select(columns)

    return register_io_source(read, schema=schema, is_pure=True, explain_name="duckdb")


def _quoted(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


# Opt-out rows that failed validation still exclude the person (see OPT_OUTS_UNVERIFIED).
_ALL_OPT_OUTS = (
    "SELECT * FROM opt_outs UNION ALL BY NAME "
    "SELECT person_id, 'unverified' AS opt_out_type, NULL::DATE AS recorded_date, batch_id FROM opt_outs_unverified"
)


def empty_table(name: str) -> pl.DataFrame:
    return pl.DataFrame(schema=contract_schema(name))
