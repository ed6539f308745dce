"""Reading the DuckDB warehouse into Polars for the feature layer (the only place features' inputs are read)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
from polars.io.plugins import register_io_source

from data_contracts.errors import NotReadyError
from data_contracts.tables import COSTED_EVENT_DATES, TABLES
from features.inputs import contract_schema


def connect(db_path: Path, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    if read_only and not Path(db_path).exists():
        raise NotReadyError(f"no riskstrat database at {db_path}: run `riskstrat ingest` first")
    return duckdb.connect(str(db_path), read_only=read_only)


def read_tables(db_path: Path, names: Iterable[str] | None = None) -> dict[str, pl.LazyFrame]:
    """Contract tables as Polars LazyFrames (empty frames with the contract's columns for absent tables).

    Each frame is a lazy scan of the warehouse (`scan_query`): nothing is read until a query is collected, and
    then only the columns that query uses. Every collect reads the database as it is at that moment."""
    wanted = list(names) if names is not None else list(TABLES)
    frames: dict[str, pl.LazyFrame] = {}
    with connect(db_path) as con:
        present = {row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        for name in wanted:
            if name == "opt_outs" and "opt_outs_unverified" in present:
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


# Opt-out rows that failed validation still exclude the person (see pipelines.ingest).
_ALL_OPT_OUTS = (
    "SELECT * FROM opt_outs UNION ALL BY NAME "
    "SELECT person_id, 'unverified' AS opt_out_type, NULL::DATE AS recorded_date, batch_id FROM opt_outs_unverified"
)


def empty_table(name: str) -> pl.DataFrame:
    return pl.DataFrame(schema=contract_schema(name))


def latest_extract_date(db_path: Path) -> date | None:
    """The newest batch's extract date: the default "as of" for scoring."""
    with connect(db_path) as con:
        return con.execute("SELECT max(extract_date) FROM batches").fetchall()[0][0]


def earliest_event_date(db_path: Path) -> date | None:
    """The first admission, attendance or contact date loaded: where usable history begins."""
    with connect(db_path) as con:
        present = {row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        firsts = [
            con.execute(f"SELECT min({column}) FROM {table}").fetchall()[0][0]
            for table, column in COSTED_EVENT_DATES.items()
            if table in present
        ]
    dates = [d for d in firsts if d is not None]
    return min(dates) if dates else None


def batch_ids(db_path: Path) -> list[str]:
    """Every batch loaded so far, in load order: the data behind a run."""
    with connect(db_path) as con:
        return [row[0] for row in con.execute("SELECT batch_id FROM batches ORDER BY batch_id").fetchall()]
