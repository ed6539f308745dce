"""The warehouse: its lazy scans read only the columns a query uses and agree with a full read; every table is
declared once, and erasing a person reaches every table declared to hold person rows."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest

from data_contracts.dates import day_number
from features.inputs import day_of
from pipelines.warehouse import WAREHOUSE_TABLES, PersonRows, WarehouseTable, ensure_schema, erase_people, read_tables


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


def test_a_table_with_person_ids_must_say_how_erasure_reaches_it() -> None:
    with pytest.raises(TypeError, match="caseload holds person ids"):
        WarehouseTable("caseload", (("person_id", "VARCHAR"), ("decision", "VARCHAR")))
    WarehouseTable("caseload", (("person_id", "VARCHAR"),), person_rows=PersonRows())  # declared: accepted


def test_erasing_a_person_reaches_every_table_declared_to_hold_person_rows() -> None:
    con = duckdb.connect()
    ensure_schema(con)
    erasable = {name: t.person_rows for name, t in WAREHOUSE_TABLES.items() if t.person_rows is not None}
    # Every declared table gets a row of the erased person and one of someone else.
    for name, rows in erasable.items():
        for person in ("gone", "kept"):
            if rows.person_id == "person_id":
                con.execute(f"INSERT INTO {name} (person_id) VALUES (?)", [person])
            else:  # the quarantine finds the person inside the raw row
                assert name == "quarantine", f"{name}: extend this test to its person_id expression"
                con.execute("INSERT INTO quarantine (raw_values) VALUES (?)", [f'{{"person_id": "{person}"}}'])
    changed = erase_people(con, pl.DataFrame({"person_id": ["gone"]}))
    assert changed == dict.fromkeys(erasable, 1)
    for name, rows in erasable.items():
        left = con.execute(f"SELECT {rows.person_id} FROM {name} ORDER BY 1 NULLS LAST").fetchall()
        assert left == ([("kept",), (None,)] if rows.keep_row else [("kept",)]), name
    assert {"persons", "apc_spells", "quarantine", "risk_scores", "team_list_history"} <= set(erasable)
    assert "opt_outs" not in erasable  # the objection itself is kept


def test_a_second_writer_is_told_who_holds_the_database_and_a_scheduled_one_waits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess
    import sys
    import time

    from data_contracts.errors import DatabaseBusy
    from pipelines.warehouse import WAIT_ENV, connect

    db = tmp_path / "riskstrat.duckdb"
    connect(db, read_only=False).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(db)!r}); print('held', flush=True); time.sleep(3)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        monkeypatch.setenv(WAIT_ENV, "0")
        with pytest.raises(
            DatabaseBusy, match=rf"another run holds the database .* \(process {holder.pid}, running since "
        ):
            connect(db, read_only=False)
        monkeypatch.setenv(WAIT_ENV, "30")
        started = time.monotonic()
        connect(db, read_only=False).close()  # waits for the holder to finish instead of failing
        assert time.monotonic() - started < 30
    finally:
        holder.wait(timeout=30)


def test_writing_creates_the_database_folder(tmp_path: Path) -> None:
    from pipelines.warehouse import connect

    db = tmp_path / "not" / "yet" / "riskstrat.duckdb"
    connect(db, read_only=False).close()
    assert db.exists()
