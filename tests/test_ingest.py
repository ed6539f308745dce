"""Ingest of batch folders into DuckDB: reconciliation, quarantine, opt-outs, corrections, atomicity,
idempotency and whole-file rejection. Batches are tiny, hand-built and written to tmp_path."""

from __future__ import annotations

import copy
import csv
import gzip
import io
import json
import logging
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from data_contracts.batch import BatchRejected, table_file
from data_contracts.batch import write_batch as batch_writer
from data_contracts.reference import unit_cost
from data_contracts.settings import IngestSettings
from data_contracts.tables import TABLES
from data_contracts.validation import ValidationResult, clean_text, parse_text, validate_table
from pipelines import ingest as ingest_module
from pipelines.ingest import InjectedFailure, ReconciliationError, ingest_batch

Rows = dict[str, list[dict[str, str]]]

EXTRACT_DATE = "2025-01-01"


def clean_rows() -> Rows:
    """One valid batch: `alive_person` with activity in every table, `opted_out_person` who objected
    (with a persons row and activity that must not load) and `young_person` born in June 2000."""
    return copy.deepcopy(
        {
            "persons": [
                _person("alive_person", "1950", "3"),
                _person("opted_out_person", "1960", "7"),
                _person("young_person", "2000", "6"),
            ],
            "opt_outs": [
                {
                    "person_id": "opted_out_person",
                    "opt_out_type": "national_data_opt_out",
                    "recorded_date": "2024-02-01",
                }
            ],
            "teams": [{"gp_practice": "A81001", "team_id": "T1", "team_name": "North team", "capacity": "500"}],
            "conditions": [
                {"person_id": "alive_person", "condition": "diabetes", "recorded_date": "2020-01-01"},
                {"person_id": "opted_out_person", "condition": "copd", "recorded_date": "2021-01-01"},
            ],
            "apc_spells": [_spell("S1", "alive_person"), _spell("S2", "opted_out_person")],
            "ae_attendances": [
                {
                    "attendance_id": "AE1",
                    "person_id": "alive_person",
                    "arrival_date": "2024-04-01",
                    "department_type": "01",
                    "discharge_destination_group": "home",
                    "cost": "",
                }
            ],
            "op_appointments": [
                _appointment("OP1", "5"),  # attended
                _appointment("OP2", "3"),  # did not attend
            ],
            "gp_events": [
                {
                    "event_id": "GP1",
                    "person_id": "alive_person",
                    "event_date": "2024-06-01",
                    "event_type": "face_to_face",
                    "staff_role": "gp",
                    "cost": "",
                }
            ],
            "community_contacts": [
                {
                    "contact_id": "C1",
                    "person_id": "alive_person",
                    "contact_date": "2024-06-02",
                    "service": "district_nursing",
                    "attended": "true",
                    "cost": "",
                }
            ],
            "prescriptions": [
                {
                    "prescription_id": "RX1",
                    "person_id": "alive_person",
                    "issue_date": "2024-06-03",
                    "bnf_code": "0212000AA",
                    "items": "1",
                    "cost": "",
                }
            ],
            "asc_events": [asc_event("ASC1", unit_cost="900", frequency="Weekly")],
            "caseload": [
                {
                    "person_id": "alive_person",
                    "team_id": "T1",
                    "decision": "taken_on",
                    "discussed_date": "2024-06-10",
                    "decision_date": "2024-06-10",
                    "reason_code": "",
                    "case_management_start": "2024-06-17",
                    "case_management_end": "",
                }
            ],
        }
    )


def _person(person_id: str, year: str, month: str) -> dict[str, str]:
    return {
        "person_id": person_id,
        "birth_year": year,
        "birth_month": month,
        "sex": "2",
        "ethnicity_group": "White",
        "lsoa": "E01000001",
        "imd_decile": "3",
        "gp_practice": "A81001",
        "date_of_death": "",
    }


def _spell(spell_id: str, person_id: str, method: str = "21", cost: str = "") -> dict[str, str]:
    return {
        "spell_id": spell_id,
        "person_id": person_id,
        "admission_date": "2024-03-01",
        "discharge_date": "2024-03-05",
        "admission_method": method,
        "discharge_method": "1",
        "discharge_destination": "19",
        "primary_diagnosis": "I500",
        "secondary_diagnoses": "E119;I10",
        "treatment_function_code": "300",
        "discharge_ready_date": "2024-03-04",
        "cost": cost,
    }


def _appointment(appointment_id: str, status: str) -> dict[str, str]:
    return {
        "appointment_id": appointment_id,
        "person_id": "alive_person",
        "appointment_date": "2024-05-01",
        "attendance_status": status,
        "first_attendance": "true",
        "treatment_function_code": "110",
        "cost": "",
    }


def asc_event(
    event_id: str,
    unit_cost: str = "",
    frequency: str = "",
    planned: str = "",
    service_type: str = "Long term support: Residential care",
    event_type: str = "Service",
) -> dict[str, str]:
    return {
        "event_id": event_id,
        "person_id": "alive_person",
        "la_code": "E09000001",
        "event_type": event_type,
        "event_start_date": "2024-07-01",
        "event_end_date": "",
        "service_type": service_type,
        "service_component": "Long term residential care",
        "primary_support_reason": "Physical support: Personal care support",
        "event_outcome": "",
        "unit_cost": unit_cost,
        "cost_frequency_unit_type": frequency,
        "planned_units_per_week": planned,
    }


def csv_bytes(rows: list[dict[str, str]]) -> bytes:
    """CSV text with the cells as given."""
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue().encode("utf-8")


def write_batch(
    root: Path,
    name: str,
    tables: Rows,
    fmt: str = "csv",
    typed_parquet: bool = True,
    extract_date: str | None = EXTRACT_DATE,
    files: dict[str, tuple[bytes, int]] | None = None,
) -> Path:
    """Write a complete batch folder through the batch writer. CSV cells are written as given; Parquet columns
    are typed per the contract (or all strings with typed_parquet=False). `files` adds table files as given:
    name -> (bytes, the rows the manifest lists)."""
    folder = root / name
    written = date.fromisoformat(extract_date) if extract_date else None
    with batch_writer(folder, name, written, None, None) as batch:
        for table, rows in tables.items():
            if fmt == "csv":
                batch.add_file(f"{table}.csv", table, csv_bytes(rows), len(rows))
                continue
            frame = pl.DataFrame(rows, schema=dict.fromkeys(rows[0], pl.String))
            if typed_parquet:
                contract = TABLES[table]
                frame = frame.with_columns(
                    parse_text(clean_text(pl.col(c)), contract.column(c).type).cast(contract.column(c).polars_type)
                    for c in frame.columns
                )
            buffer = io.BytesIO()
            frame.write_parquet(buffer)
            batch.add_file(f"{table}.parquet", table, buffer.getvalue(), frame.height)
        for file_name, (data, rows_listed) in (files or {}).items():
            found = table_file(file_name)
            assert found is not None, file_name
            batch.add_file(file_name, found[0], data, rows_listed)
    return folder


def snapshot(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's full contents, order-independent."""
    if not db.exists():
        return {}
    with duckdb.connect(str(db), read_only=True) as con:
        names = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()]
        return {n: sorted(con.execute(f"SELECT * FROM {n}").fetchall(), key=repr) for n in sorted(names)}


def query(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchall()


def counts_by_table(report: Any) -> dict[str, Any]:
    return {t.table: t for t in report.tables}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "riskstrat.duckdb"


@pytest.fixture(scope="module")
def loaded_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The clean batch folder and a database with it loaded, built once per module (copied per test)."""
    root = tmp_path_factory.mktemp("template")
    folder = write_batch(root, "b1", clean_rows())
    ingest_batch(root / "template.duckdb", folder)
    return folder, root / "template.duckdb"


@pytest.fixture
def first_batch(loaded_template: tuple[Path, Path], db: Path) -> Path:
    """The clean batch (folder shared, do not modify), already loaded into this test's `db`."""
    folder, template = loaded_template
    shutil.copyfile(template, db)
    return folder


# ---------------------------------------------------------------------------------------------- clean loads


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_clean_batch_loads_every_table_and_reconciles(tmp_path: Path, db: Path, fmt: str) -> None:
    report = ingest_batch(db, write_batch(tmp_path, "b1", clean_rows(), fmt=fmt))
    counts = counts_by_table(report)
    assert report.status == "loaded" and report.batch_id == "b1"
    assert set(counts) == set(TABLES)
    for c in counts.values():
        assert c.rows_read == c.rows_loaded + c.rows_quarantined + c.rows_excluded
        assert c.rows_quarantined == 0 and len(c.sha256 or "") == 64
    assert report.quarantine_reasons == {}
    assert query(db, "SELECT count(*), min(batch_id), max(batch_id) FROM apc_spells") == [(1, "b1", "b1")]
    assert query(db, "SELECT typeof(admission_date), typeof(cost) FROM apc_spells") == [("DATE", "DOUBLE")]


def test_parquet_with_string_columns_is_cast_like_csv(tmp_path: Path, db: Path) -> None:
    rows = clean_rows()
    rows["apc_spells"][0]["cost"] = "not a number"
    report = ingest_batch(db, write_batch(tmp_path, "b1", rows, fmt="parquet", typed_parquet=False))
    assert report.quarantine_reasons == {("apc_spells", "bad_type"): 1}
    assert query(db, "SELECT count(*) FROM persons") == [(2,)]


def test_ingest_log_and_batches_record_counts_checksums_and_extract_date(db: Path, first_batch: Path) -> None:
    log_rows = query(
        db,
        "SELECT table_name, file_name, length(sha256), rows_read, rows_loaded, rows_quarantined, rows_excluded, "
        "rows_removed, extract_date::VARCHAR, loaded_at IS NOT NULL FROM ingest_log WHERE table_name = 'persons'",
    )
    assert log_rows == [("persons", "persons.csv", 64, 3, 2, 0, 1, 0, EXTRACT_DATE, True)]
    assert query(db, "SELECT batch_id, extract_date::VARCHAR, length(files_sha256) FROM batches") == [
        ("b1", EXTRACT_DATE, 64)
    ]
    assert query(db, "SELECT count(*) FROM ingest_log") == [(len(TABLES),)]


def test_extract_date_never_comes_from_the_data(tmp_path: Path, db: Path) -> None:
    rows = clean_rows()
    rows["ae_attendances"][0]["arrival_date"] = "2099-01-01"  # one row far in the future moves nothing
    folder = write_batch(tmp_path, "week_45", rows, extract_date=None)
    with pytest.raises(BatchRejected, match=r"^batch\.json in week_45 gives no extract_date; [^\n]*$"):
        ingest_batch(db, folder)
    assert not db.exists() or query(db, "SELECT count(*) FROM batches") == [(0,)]
    report = ingest_batch(db, write_batch(tmp_path, "week_46", rows))
    assert query(db, "SELECT extract_date::VARCHAR FROM batches") == [(EXTRACT_DATE,)]
    assert report.quarantine_reasons[("ae_attendances", "future_date")] == 1


# ---------------------------------------------------------------------------------------------- quarantine


def test_quarantine_row_carries_source_row_column_reasons_and_raw_values(tmp_path: Path, db: Path) -> None:
    rows = clean_rows()
    rows["apc_spells"][0]["cost"] = "-5"
    rows["apc_spells"][0]["admission_method"] = "99"
    report = ingest_batch(db, write_batch(tmp_path, "b1", rows))
    [(batch_id, table, source_row, column, reason, all_reasons, raw)] = query(db, "SELECT * FROM quarantine")
    assert (batch_id, table, source_row, column, reason) == ("b1", "apc_spells", 1, "admission_method", "unknown_code")
    assert all_reasons == "unknown_code:admission_method;out_of_range:cost"
    assert json.loads(raw)["cost"] == "-5" and json.loads(raw)["spell_id"] == "S1"
    assert report.quarantine_reasons == {("apc_spells", "unknown_code"): 1}
    apc = counts_by_table(report)["apc_spells"]
    assert (apc.rows_read, apc.rows_loaded, apc.rows_quarantined, apc.rows_excluded) == (2, 0, 1, 1)


def test_messy_batch_reconciles_for_every_table(tmp_path: Path, db: Path) -> None:
    rows = clean_rows()
    rows["persons"].append(_person("imd_eleven_person", "1970", "1") | {"imd_decile": "11"})
    rows["apc_spells"] += [_spell("S3", "nobody_person"), _spell("S1", "alive_person"), _spell("S4", "alive_person")]
    rows["apc_spells"][-1]["discharge_date"] = "2024-02-01"
    rows["gp_events"].append(rows["gp_events"][0] | {"event_id": "GP2", "event_date": "2031-01-01"})
    report = ingest_batch(db, write_batch(tmp_path, "b1", rows))
    for c in report.tables:
        assert c.rows_read == c.rows_loaded + c.rows_quarantined + c.rows_excluded, c.table
    assert report.quarantine_reasons == {
        ("persons", "out_of_range"): 1,
        ("apc_spells", "unlinked_person"): 1,
        ("apc_spells", "duplicate_row"): 1,
        ("apc_spells", "discharge_before_admission"): 1,
        ("gp_events", "future_date"): 1,
    }
    assert query(db, "SELECT count(*) FROM quarantine") == [(5,)]


def test_before_birth_and_linkage_use_persons_already_in_the_database(
    tmp_path: Path, db: Path, first_batch: Path
) -> None:
    tables: Rows = {
        "ae_attendances": [
            clean_rows()["ae_attendances"][0] | {"attendance_id": "AE2", "person_id": "young_person"},
            clean_rows()["ae_attendances"][0]
            | {"attendance_id": "AE3", "person_id": "young_person", "arrival_date": "2000-05-31"},
            clean_rows()["ae_attendances"][0] | {"attendance_id": "AE4", "person_id": "unknown_person"},
        ]
    }
    report = ingest_batch(db, write_batch(tmp_path, "b2", tables))
    assert report.quarantine_reasons == {
        ("ae_attendances", "before_birth"): 1,
        ("ae_attendances", "unlinked_person"): 1,
    }
    assert query(db, "SELECT attendance_id FROM ae_attendances ORDER BY 1") == [("AE1",), ("AE2",)]


def test_quarantine_cap_stores_fewer_rows_but_counts_all(tmp_path: Path, db: Path) -> None:
    rows = clean_rows()
    rows["gp_events"] = [rows["gp_events"][0] | {"event_id": f"GP{i}", "event_type": "séance"} for i in range(5)]
    report = ingest_batch(db, write_batch(tmp_path, "b1", rows), IngestSettings(quarantine_cap_per_reason=2))
    assert report.quarantine_reasons == {("gp_events", "unknown_code"): 5}
    assert counts_by_table(report)["gp_events"].rows_quarantined == 5
    assert query(db, "SELECT count(*) FROM quarantine") == [(2,)]


# ---------------------------------------------------------------------------------------------- opt-outs


def test_opted_out_person_is_excluded_at_first_load(db: Path, first_batch: Path) -> None:
    assert query(db, "SELECT count(*) FROM persons WHERE person_id = 'opted_out_person'") == [(0,)]
    for table in ("apc_spells", "conditions"):
        assert query(db, f"SELECT count(*) FROM {table} WHERE person_id = 'opted_out_person'") == [(0,)]
    assert query(db, "SELECT person_id FROM opt_outs") == [("opted_out_person",)]
    excluded = dict(query(db, "SELECT table_name, rows_excluded FROM ingest_log WHERE rows_excluded > 0"))
    assert excluded == {"persons": 1, "apc_spells": 1, "conditions": 1}
    assert query(db, "SELECT count(*) FROM quarantine") == [(0,)]


def test_opted_out_activity_is_excluded_not_unlinked(tmp_path: Path, db: Path) -> None:
    rows = clean_rows()
    rows["persons"] = [r for r in rows["persons"] if r["person_id"] != "opted_out_person"]
    report = ingest_batch(db, write_batch(tmp_path, "b1", rows))
    assert report.quarantine_reasons == {}
    assert counts_by_table(report)["apc_spells"].rows_excluded == 1


def test_later_opt_out_removes_rows_already_loaded(tmp_path: Path, db: Path, first_batch: Path) -> None:
    ae = clean_rows()["ae_attendances"][0] | {"attendance_id": "AE9", "person_id": "unknown_person"}
    ingest_batch(db, write_batch(tmp_path, "b2", {"ae_attendances": [ae]}))  # one quarantined row
    opt_out = {"person_id": "alive_person", "opt_out_type": "gp_type_1", "recorded_date": "2024-12-01"}
    late_spell = _spell("S7", "alive_person")
    report = ingest_batch(db, write_batch(tmp_path, "b3", {"opt_outs": [opt_out], "apc_spells": [late_spell]}))
    removed = {t.table: t.rows_removed for t in report.tables if t.rows_removed}
    assert removed == {
        "persons": 1,
        "conditions": 1,
        "apc_spells": 1,
        "ae_attendances": 1,
        "op_appointments": 2,
        "gp_events": 1,
        "community_contacts": 1,
        "prescriptions": 1,
        "asc_events": 1,
        "caseload": 1,
    }
    assert counts_by_table(report)["apc_spells"].rows_excluded == 1
    for table in ("persons", *(n for n, t in TABLES.items() if t.person_linked)):
        assert query(db, f"SELECT count(*) FROM {table} WHERE person_id = 'alive_person'") == [(0,)], table
    logged = dict(query(db, "SELECT table_name, rows_removed FROM ingest_log WHERE batch_id = 'b3'"))
    assert logged["persons"] == 1 and logged["op_appointments"] == 2
    assert query(db, "SELECT count(*) FROM quarantine") == [(1,)]  # the unknown person's row stays
    assert query(db, "SELECT count(*) FROM persons") == [(1,)]  # young_person


def test_later_opt_out_removes_that_persons_quarantine_rows(tmp_path: Path, db: Path, first_batch: Path) -> None:
    bad = clean_rows()["ae_attendances"][0] | {"attendance_id": "AE8", "person_id": "young_person", "cost": "x"}
    ingest_batch(db, write_batch(tmp_path, "b2", {"ae_attendances": [bad]}))
    opt_out = {"person_id": "young_person", "opt_out_type": "gp_type_1", "recorded_date": "2024-12-01"}
    ingest_batch(db, write_batch(tmp_path, "b3", {"opt_outs": [opt_out]}))
    assert query(db, "SELECT count(*) FROM quarantine") == [(0,)]


def test_deleted_rows_are_not_left_in_the_database_file(
    tmp_path: Path, db: Path, first_batch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A quarantined raw row of the person, holding a value nothing else holds (the person id itself stays, in
    # the opt-out that records the objection).
    secret = b"AE-only-in-this-row"
    bad = clean_rows()["ae_attendances"][0] | {
        "attendance_id": secret.decode(),
        "person_id": "young_person",
        "cost": "x",
    }
    ingest_batch(db, write_batch(tmp_path, "b2", {"ae_attendances": [bad]}))
    assert secret in db.read_bytes()
    opt_out = {"person_id": "young_person", "opt_out_type": "gp_type_1", "recorded_date": "2024-12-01"}
    without = tmp_path / "uncompacted.duckdb"
    import shutil

    shutil.copy(db, without)
    monkeypatch.setattr(ingest_module, "compact", lambda path: None)
    ingest_batch(without, write_batch(tmp_path, "b3", {"opt_outs": [opt_out]}))
    assert secret in without.read_bytes()  # deleted from the tables, still readable in the file: the leak
    monkeypatch.undo()
    ingest_batch(db, write_batch(tmp_path / "again", "b3", {"opt_outs": [opt_out]}))
    assert secret not in db.read_bytes()
    assert query(db, "SELECT count(*) FROM persons") == query(without, "SELECT count(*) FROM persons")


# ------------------------------------------------------------------------------------ idempotency and corrections


def test_second_ingest_of_the_same_batch_changes_nothing(db: Path, first_batch: Path) -> None:
    before = snapshot(db)
    report = ingest_batch(db, first_batch)
    assert report.status == "skipped_already_loaded" and report.tables == []
    assert snapshot(db) == before


def test_same_batch_id_with_different_files_is_rejected(tmp_path: Path, db: Path, first_batch: Path) -> None:
    before = snapshot(db)
    rows = clean_rows()
    rows["teams"][0]["capacity"] = "600"
    changed = write_batch(tmp_path, "b1", rows)
    with pytest.raises(BatchRejected, match="b1 was already loaded from different files"):
        ingest_batch(db, changed)
    assert snapshot(db) == before


def test_later_batch_correction_replaces_the_row_by_key(tmp_path: Path, db: Path, first_batch: Path) -> None:
    corrected = _spell("S1", "alive_person", method="11", cost="1234.5")
    report = ingest_batch(db, write_batch(tmp_path, "b2", {"apc_spells": [corrected]}))
    assert counts_by_table(report)["apc_spells"].rows_loaded == 1
    assert query(db, "SELECT spell_id, admission_method, cost, cost_imputed, batch_id FROM apc_spells") == [
        ("S1", "11", 1234.5, False, "b2")
    ]
    person = _person("alive_person", "1950", "3") | {"date_of_death": "2024-12-24"}
    ingest_batch(db, write_batch(tmp_path, "b3", {"persons": [person]}))
    assert query(db, "SELECT count(*), max(date_of_death)::VARCHAR FROM persons WHERE person_id = 'alive_person'") == [
        (1, "2024-12-24")
    ]


# ---------------------------------------------------------------------------------------- atomicity and rejection


@pytest.mark.parametrize("table", ["opt_outs", "persons", "apc_spells", "asc_events"])
def test_failure_after_a_table_rolls_the_whole_batch_back(
    tmp_path: Path, db: Path, first_batch: Path, table: str
) -> None:
    before = snapshot(db)
    rows = clean_rows()
    rows["opt_outs"][0]["person_id"] = "alive_person"  # would delete rows loaded by b1
    rows["persons"].append(_person("new_person", "1980", "1"))
    rows["apc_spells"].append(_spell("S9", "new_person", cost="-1"))  # would add a quarantine row
    with pytest.raises(InjectedFailure):
        ingest_batch(db, write_batch(tmp_path, "b2", rows), fail_after_table=table)
    assert snapshot(db) == before


def test_counts_that_do_not_reconcile_abort_the_batch(
    tmp_path: Path, db: Path, first_batch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = snapshot(db)

    def losing_a_row(*args: Any, **kwargs: Any) -> ValidationResult:
        result = validate_table(*args, **kwargs)
        result.valid = result.valid.head(result.valid.height - 1)  # a row silently lost
        return result

    monkeypatch.setattr(ingest_module, "validate_table", losing_a_row)
    rows = {"apc_spells": [_spell("S5", "alive_person"), _spell("S6", "alive_person")]}
    with pytest.raises(ReconciliationError, match="apc_spells"):
        ingest_batch(db, write_batch(tmp_path, "b2", rows))
    assert snapshot(db) == before


def test_failure_on_a_fresh_database_leaves_no_tables(tmp_path: Path, db: Path) -> None:
    with pytest.raises(InjectedFailure):
        ingest_batch(db, write_batch(tmp_path, "b1", clean_rows()), fail_after_table="teams")
    assert snapshot(db) == {}


def test_missing_required_column_rejects_the_whole_batch(tmp_path: Path, db: Path, first_batch: Path) -> None:
    before = snapshot(db)
    rows = clean_rows()
    for spell in rows["apc_spells"]:
        del spell["admission_date"], spell["admission_method"]
    with pytest.raises(
        BatchRejected, match=r"apc_spells\.csv: missing required column\(s\) admission_date, admission_method"
    ):
        ingest_batch(db, write_batch(tmp_path, "b2", rows))
    assert snapshot(db) == before


def test_unreadable_file_rejects_the_whole_batch(tmp_path: Path, db: Path, first_batch: Path) -> None:
    before = snapshot(db)
    rows = clean_rows()
    del rows["gp_events"]
    folder = write_batch(tmp_path, "b2", rows, fmt="parquet", files={"gp_events.parquet": (b"not parquet", 1)})
    with pytest.raises(BatchRejected, match=r"gp_events\.parquet: cannot be read"):
        ingest_batch(db, folder)
    assert snapshot(db) == before


def test_ragged_csv_rejects_the_whole_batch_naming_the_file(tmp_path: Path, db: Path) -> None:
    rows = clean_rows()
    ragged = csv_bytes(rows.pop("teams")) + b"A81002,T2,South team,10,surplus,cells\n"
    folder = write_batch(tmp_path, "b1", rows, files={"teams.csv": (ragged, 2)})
    with pytest.raises(BatchRejected, match=r"teams\.csv"):
        ingest_batch(db, folder)
    assert snapshot(db) == {}  # the rollback also undid the schema of this fresh database


# ---------------------------------------------------------------------------------------------- batch folder


def _copy_partly(folder: Path, target: Path, cut: str | None = None, skip: tuple[str, ...] = ()) -> Path:
    """A copy of a batch folder as a copy still under way leaves it: `cut` holds half its bytes, `skip` absent."""
    target.mkdir(parents=True)
    for path in folder.iterdir():
        if path.name in skip:
            continue
        data = path.read_bytes()
        (target / path.name).write_bytes(data[: len(data) // 2] if path.name == cut else data)
    return target


def test_half_copied_batch_waits(tmp_path: Path, db: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = write_batch(tmp_path / "written", "b1", clean_rows())
    arriving = tmp_path / "batches"
    cases = {  # what a copy still under way leaves -> the reason it waits
        "no_marker": ({"skip": ("batch.complete",)}, "no batch.complete marker yet"),
        "cut_file": ({"cut": "apc_spells.csv"}, "apc_spells.csv: its checksum differs from batch.json"),
        "missing_file": ({"skip": ("persons.csv",)}, "persons.csv, listed in batch.json, is not there yet"),
        "cut_manifest": ({"cut": "batch.json"}, "batch.complete marks another batch.json"),
    }
    for case, (copy_args, reason) in cases.items():
        partial = _copy_partly(folder, arriving / case, **copy_args)  # type: ignore[arg-type]
        with caplog.at_level(logging.WARNING, logger="riskstrat.ingest"):
            report = ingest_batch(db, partial)
        assert (report.status, report.tables) == ("waiting", []), case
        assert report.reason is not None and reason in report.reason, (case, report.reason)
        assert f"batch folder {case} waits: {reason}" in caplog.text
    assert not db.exists() or query(db, "SELECT count(*) FROM batches") == [(0,)]  # not loaded, not rejected
    # Once the copy has finished the same folder loads in full, reconciles, and loads once.
    shutil.rmtree(arriving / "cut_file")
    shutil.copytree(folder, arriving / "cut_file")
    report = ingest_batch(db, arriving / "cut_file")
    assert report.status == "loaded" and all(c.reconciles() for c in report.tables)
    assert sum(c.rows_read for c in report.tables) == sum(len(r) for r in clean_rows().values())
    assert ingest_batch(db, arriving / "cut_file").status == "skipped_already_loaded"


def test_flipped_byte_in_a_parquet_file_is_not_loaded(tmp_path: Path, db: Path) -> None:
    folder = write_batch(tmp_path, "b1", clean_rows(), fmt="parquet")
    data = bytearray((folder / "apc_spells.parquet").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "apc_spells.parquet").write_bytes(bytes(data))
    report = ingest_batch(db, folder)
    assert report.status == "waiting" and "apc_spells.parquet: its checksum differs" in (report.reason or "")


def test_a_later_batch_waits_behind_one_that_is_not_whole() -> None:
    from pipelines.ingest import held_back

    loaded = {"batch_id": "b1", "status": "loaded", "reason": None, "tables": []}
    waiting = {"batch_id": "b2", "status": "waiting", "reason": "no batch.complete marker yet", "tables": []}
    assert held_back(Path("b2"), [loaded]) is None
    held = held_back(Path("b3"), [loaded, waiting])
    assert held is not None and (held["batch_id"], held["status"], held["tables"]) == ("b3", "waiting", [])
    assert "behind b2" in held["reason"]


def test_empty_batch_folder_does_not_crash(tmp_path: Path, db: Path) -> None:
    (tmp_path / "empty").mkdir()
    report = ingest_batch(db, tmp_path / "empty")  # a folder made, nothing copied into it yet
    assert report.status == "waiting" and "no batch.complete marker" in (report.reason or "")
    report = ingest_batch(db, write_batch(tmp_path, "nothing_this_week", {}))  # a whole batch of no tables
    assert (report.status, report.tables) == ("loaded", [])
    assert query(db, "SELECT batch_id, extract_date::VARCHAR FROM batches") == [("nothing_this_week", EXTRACT_DATE)]
    assert query(db, "SELECT count(*) FROM ingest_log") == [(0,)]
    assert ingest_batch(db, tmp_path / "nothing_this_week").status == "skipped_already_loaded"


def test_table_file_names_not_exact_are_matched_and_gzip_csv_is_read(tmp_path: Path, db: Path) -> None:
    rows = clean_rows()
    named = {
        "OPT_OUTS.CSV": (csv_bytes(rows.pop("opt_outs")), 1),
        "Persons.csv.gz": (gzip.compress(csv_bytes(rows.pop("persons"))), 3),
    }
    report = ingest_batch(db, write_batch(tmp_path, "b1", rows, files=named))
    counts = counts_by_table(report)
    assert (counts["opt_outs"].file, counts["opt_outs"].rows_loaded) == ("OPT_OUTS.CSV", 1)
    assert (counts["persons"].rows_read, counts["persons"].rows_loaded, counts["persons"].rows_excluded) == (3, 2, 1)
    assert counts["apc_spells"].rows_excluded == 1  # the opt-out was applied
    assert query(db, "SELECT count(*) FROM persons WHERE person_id = 'opted_out_person'") == [(0,)]


@pytest.mark.parametrize(
    ("dropped_in", "named"),
    [
        ("opt_outs.txt", "files that are not table files (<table>.csv, .csv.gz or .parquet): opt_outs.txt"),
        (
            "extra/opt_outs.csv",
            "files in a subfolder (table files belong at the top of the folder): extra/opt_outs.csv",
        ),
        ("opt_outs.CSV", "table files not listed in batch.json: opt_outs.CSV"),
    ],
)
def test_unknown_table_file_is_refused_by_name(tmp_path: Path, db: Path, dropped_in: str, named: str) -> None:
    rows = clean_rows()
    opt_outs = csv_bytes(rows.pop("opt_outs"))
    folder = write_batch(tmp_path, "b1", rows)
    (folder / dropped_in).parent.mkdir(exist_ok=True)
    (folder / dropped_in).write_bytes(opt_outs)
    with pytest.raises(BatchRejected, match=r"^batch folder b1 holds (.*); nothing in it was loaded$") as refused:
        ingest_batch(db, folder)
    assert named in str(refused.value)
    assert snapshot(db) == {}


def test_rows_differing_from_the_manifest_are_refused(tmp_path: Path, db: Path) -> None:
    rows = clean_rows()
    folder = write_batch(tmp_path, "b1", rows, files={"teams.csv": (csv_bytes(rows.pop("teams")), 2)})
    with pytest.raises(BatchRejected, match=r"teams\.csv holds 1 rows but batch\.json lists 2"):
        ingest_batch(db, folder)
    assert snapshot(db) == {}


# ---------------------------------------------------------------------------------------------- derived columns


def test_codes_aliases_and_costs_are_derived_on_load(tmp_path: Path, db: Path) -> None:
    rows = clean_rows()
    rows["asc_events"] = [
        asc_event("R1", service_type="Long Term Support: Nursing Care"),  # Release 1 spelling, no cost
        asc_event(
            "HOURLY", unit_cost="20", frequency="Hourly", planned="10", service_type="Long term support: Community"
        ),
    ]
    ingest_batch(db, write_batch(tmp_path, "b1", rows))
    asc = dict(
        (r[0], r[1:]) for r in query(db, "SELECT event_id, service_type, weekly_cost, cost_imputed FROM asc_events")
    )
    assert asc["R1"] == ("Long term support: Nursing care", unit_cost("nursing_care"), True)
    assert asc["HOURLY"] == ("Long term support: Community", 200.0, False)
    costs = dict(query(db, "SELECT appointment_id, cost FROM op_appointments"))
    assert costs == {"OP1": unit_cost("outpatient_attendance"), "OP2": 0.0}
    assert query(db, "SELECT cost, cost_imputed FROM apc_spells") == [(unit_cost("emergency_admission"), True)]
    assert query(db, "SELECT cost, cost_imputed FROM prescriptions") == [(None, False)]


# ---------------------------------------------------------------------------------------------- logging


def test_log_messages_carry_counts_not_person_ids(tmp_path: Path, db: Path, caplog: pytest.LogCaptureFixture) -> None:
    rows = clean_rows()
    rows["apc_spells"].append(_spell("S5", "nobody_person"))
    folder = write_batch(tmp_path, "b1", rows)
    with caplog.at_level(logging.DEBUG, logger="riskstrat.ingest"):
        ingest_batch(db, folder)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "quarantined" in text and "loaded" in text
    for value in ("alive_person", "opted_out_person", "nobody_person", "S5", "I500"):
        assert value not in text


def test_an_opt_out_row_that_fails_validation_is_still_honoured(tmp_path: Path, db: Path, first_batch: Path) -> None:
    bad_opt_out = {"person_id": "alive_person", "opt_out_type": "not_a_type", "recorded_date": "2024-12-01"}
    late_spell = _spell("S8", "alive_person")
    report = ingest_batch(db, write_batch(tmp_path, "b3", {"opt_outs": [bad_opt_out], "apc_spells": [late_spell]}))
    counts = counts_by_table(report)
    assert counts["opt_outs"].rows_quarantined == 1
    assert counts["apc_spells"].rows_excluded == 1  # new activity is excluded ...
    assert counts["persons"].rows_removed == 1  # ... and what was loaded before is removed
    for table in ("persons", *(n for n, t in TABLES.items() if t.person_linked)):
        assert query(db, f"SELECT count(*) FROM {table} WHERE person_id = 'alive_person'") == [(0,)], table
    assert query(db, "SELECT person_id FROM opt_outs_unverified") == [("alive_person",)]
    # and every read of the warehouse treats the person as opted out
    from pipelines.warehouse import read_tables

    opt_outs = read_tables(db, ["opt_outs"])["opt_outs"].collect()
    assert "alive_person" in opt_outs["person_id"].to_list()


def test_a_later_opt_out_scrubs_stored_scores_and_past_lists(tmp_path: Path, db: Path, first_batch: Path) -> None:
    import duckdb

    with duckdb.connect(str(db)) as con:  # the warehouse created both tables at the first ingest
        con.execute(
            "INSERT INTO risk_scores (run_id, person_id, risk) VALUES ('r1', 'alive_person', 0.4), "
            "('r1', 'young_person', 0.1)"
        )
        con.execute(
            "INSERT INTO team_list_history (run_id, team_id, person_id, rank) VALUES ('r1', 'T1', 'alive_person', 1), "
            "('r1', 'T1', 'young_person', 2)"
        )
    opt_out = {"person_id": "alive_person", "opt_out_type": "gp_type_1", "recorded_date": "2024-12-01"}
    ingest_batch(db, write_batch(tmp_path, "b3", {"opt_outs": [opt_out]}))
    assert query(db, "SELECT person_id FROM risk_scores") == [("young_person",)]
    assert query(db, "SELECT person_id, rank FROM team_list_history ORDER BY rank") == [(None, 1), ("young_person", 2)]
