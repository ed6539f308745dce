"""The `omop` mapping: an OMOP CDM export (v5.3 or v5.4, CSV or Parquet) becomes a contract batch, visits routed by
visit concept (and provider specialty where the concept is coarse), every source row accounted for."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest

from data_contracts.importer import import_source
from pipelines.ingest import ingest_batch
from tests.shared_data import shared_data

TINY_53 = Path(__file__).parent / "data" / "omop_tiny_5.3"
SHARED_OMOP = shared_data("omop") / "eunomia_synthea27nj_5.4"


def _rows(batch: Path, table: str, key: str, value: str) -> dict[str, str]:
    frame = pl.read_csv(batch / f"{table}.csv", infer_schema=False)
    return dict(zip(frame[key], frame[value], strict=True))


def _check_tiny(batch: Path) -> None:
    assert _rows(batch, "apc_spells", "spell_id", "admission_method") == {
        "102": "21",  # 10 hours after the same person's emergency room visit
        "103": "11",
        "104": "21",  # admitted from the emergency room (v5.3 admitting_source_concept_id)
        "105": "21",  # emergency room and inpatient visit ...
    }
    assert _rows(batch, "ae_attendances", "attendance_id", "department_type") == {"101": "01", "105": "01"}  # ... both
    assert _rows(batch, "gp_events", "event_id", "event_type") == {
        "106": "face_to_face",  # ambulatory, general practice provider
        "108": "online",
        "109": "home_visit",
    }
    assert sorted(_rows(batch, "op_appointments", "appointment_id", "attendance_status")) == ["107", "110", "112"]
    assert _rows(batch, "apc_spells", "spell_id", "cost")["102"] == "3100.0"
    persons = pl.read_csv(batch / "persons.csv", infer_schema=False)
    assert persons.select("person_id", "sex", "ethnicity_group", "date_of_death").rows() == [
        ("1", "1", "White", None),
        ("2", "2", "Black", None),
        ("3", "2", "Unknown", "2018-04-30"),
    ]
    conditions = pl.read_csv(batch / "conditions.csv", infer_schema=False)
    assert conditions.select("person_id", "condition", "recorded_date").rows() == [
        ("1", "hypertension", "2016-05-01"),  # SNOMED concept code
        ("2", "af", "2018-02-02"),  # ICD-10-CM source concept I48.0
        ("3", "diabetes", "2017-01-01"),  # unmapped concept, source value that is an ICD-10 category
    ]
    assert _rows(batch, "prescriptions", "prescription_id", "bnf_code") == {"1": "0205", "2": "0209"}
    assert _rows(batch, "prescriptions", "prescription_id", "cost") == {"1": "4.2", "2": None}


def test_a_v53_cdm_is_routed_by_visit_concept_and_provider_specialty(tmp_path: Path) -> None:
    batch = tmp_path / "omop"
    report = import_source("omop", TINY_53, batch, extract_date=date(2018, 5, 5))
    _check_tiny(batch)
    visits = next(f for f in report.files if f.file == "VISIT_OCCURRENCE.csv")
    assert visits.rows_read == 12
    assert visits.not_taken == {
        "no rule takes visit_concept_id = 32036, ADMITTED_FROM = 0, FOLLOWS_EMERGENCY_WITHIN_24H = no, "
        "PROVIDER_SPECIALTY = 38004446": 1
    }
    taken = {(r.table, r.rule): r.rows for r in visits.rules if r.rows}
    assert taken[("apc_spells", "emergency room and inpatient visit")] == 1
    assert taken[("ae_attendances", "emergency room visit")] == 2
    assert taken[("op_appointments", "ambulatory visit, provider not in primary care")] == 2
    # Every visit row: taken by exactly one rule, except the emergency room and inpatient visit, which feeds two.
    assert sum(r.rows for r in visits.rules) + sum(visits.not_taken.values()) == 12 + 1
    assert report.unused_files["OBSERVATION.csv"] == "observations are not activity and carry no cost"
    conditions = next(t for t in report.tables if t.table == "conditions")
    assert conditions.dropped == {
        "neither the SNOMED concept nor the ICD-10 category is on the long-term condition list": 1,
        "another row for the same person_id, condition was kept (first by condition_start_date)": 1,
    }
    assert not report.warnings
    db = tmp_path / "omop.duckdb"
    ingested = ingest_batch(db, batch)
    assert all(t.reconciles() and t.rows_quarantined == 0 for t in ingested.tables), ingested.tables
    with duckdb.connect(str(db), read_only=True) as con:
        imputed = con.execute("SELECT count(*) FROM apc_spells WHERE cost_imputed").fetchone()
    assert imputed == (3,)  # GBP: the spells without a COST row get unit costs


def test_parquet_files_in_lower_case_are_read_like_the_csv_export(tmp_path: Path) -> None:
    source = tmp_path / "parquet_export"
    source.mkdir()
    for path in TINY_53.glob("*.csv"):
        pl.read_csv(path, infer_schema=False).write_parquet(source / f"{path.stem.lower()}.parquet")
    batch = tmp_path / "omop"
    report = import_source("omop", source, batch, extract_date=date(2018, 5, 5))
    _check_tiny(batch)
    assert report.unused_files["OBSERVATION.csv"] == "observations are not activity and carry no cost"
    assert {f.file for f in report.files} == {
        "PERSON.csv",
        "VISIT_OCCURRENCE.csv",
        "CONDITION_OCCURRENCE.csv",
        "DRUG_EXPOSURE.csv",
    }


def test_a_cdm_in_a_duckdb_database_is_read_straight_from_its_tables(tmp_path: Path) -> None:
    database = tmp_path / "eunomia.duckdb"
    with duckdb.connect(str(database)) as con:
        con.execute("CREATE SCHEMA cdm")
        for path in TINY_53.glob("*.csv"):  # typed columns, as a database holds them
            con.execute(f"CREATE TABLE cdm.{path.stem.lower()} AS SELECT * FROM read_csv_auto('{path}')")
    batch = tmp_path / "omop"
    report = import_source("omop", database, batch, extract_date=date(2018, 5, 5))
    _check_tiny(batch)
    assert report.unused_files["OBSERVATION.csv"] == "observations are not activity and carry no cost"


@pytest.mark.skipif(not SHARED_OMOP.is_dir(), reason="the shared OMOP sample is not beside this checkout")
def test_the_shared_omop_sample_converts_and_ingests_with_every_row_accounted_for(tmp_path: Path) -> None:
    batch = tmp_path / "omop"
    report = import_source("omop", SHARED_OMOP, batch, extract_date=date(2022, 10, 10))
    for account in report.files:
        rows = pl.read_csv(SHARED_OMOP / account.file, infer_schema=False).height
        assert rows == account.rows_read == sum(r.rows for r in account.rules) + sum(account.not_taken.values())
    for table in report.tables:
        assert table.rows_in == table.rows_written + sum(table.dropped.values()), table
    written = {t.table: t.rows_written for t in report.tables}
    assert (written["persons"], written["apc_spells"], written["ae_attendances"], written["gp_events"]) == (
        28,
        13,
        56,
        1722,
    )
    # ETL-Synthea gives every visit a general-practice provider: no outpatient appointments, and a warning says so.
    assert [(w.kind, w.table) for w in report.warnings] == [("empty_table", "op_appointments")]
    ingested = ingest_batch(tmp_path / "omop.duckdb", batch)
    for counts in ingested.tables:
        assert counts.reconciles() and counts.rows_read == written[counts.table], counts
    assert [w.table for w in ingested.data_quality_warnings] == ["op_appointments"]
    assert json.loads((batch / "batch.json").read_text())["currency"] == "GBP"
