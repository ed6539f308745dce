"""The warehouse's lazy scans: only the columns a query uses are read, and results agree with a full read."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import polars as pl

from features.inputs import day_number, day_of
from pipelines.warehouse import read_tables


def test_scans_read_what_the_query_needs_and_agree_with_a_full_read(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute(
            "CREATE TABLE gp_events AS SELECT 'p' || (i % 7) AS person_id, DATE '2024-01-01' + (i % 900)::INT AS "
            "event_date, CASE WHEN i % 3 = 0 THEN 'a' ELSE 'b' END AS event_type, "
            "CASE WHEN i % 11 = 0 THEN NULL ELSE i * 1.5 END AS cost FROM range(5000) t(i)"
        )
        con.execute("INSERT INTO gp_events VALUES ('p1', NULL, 'a', 1.0)")
    scan = read_tables(db, ["gp_events"])["gp_events"]
    full = scan.collect()
    assert full.height == 5001
    window = (pl.col("event_date") < date(2026, 1, 1)) & (day_of("event_date") >= day_number(date(2025, 3, 1)))

    def query(frame: pl.LazyFrame) -> pl.LazyFrame:
        return (
            frame.filter(window & (pl.col("event_type") == "a"))
            .group_by("person_id")
            .agg(pl.len(), pl.col("cost").sum())
            .sort("person_id")
        )

    assert query(scan).collect().equals(query(full.lazy()).collect())
    assert "PROJECT 1/4 COLUMNS" in scan.select("person_id").explain()
