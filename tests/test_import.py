"""Source mappings and `riskstrat import`: CLD and Synthea files become contract batches that ingest cleanly, every
source row accounted for, and a broken mapping is reported with its file and line."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest

from data_contracts.batch import BatchRejected
from data_contracts.importer import import_source
from data_contracts.mapping import MAPPINGS_DIR, MappingError, load_mapping
from data_contracts.sources.synthea import FOLLOWS_EMERGENCY, MEDICATION_COST, follows_emergency, medication_claim_share
from pipelines.ingest import ingest_batch
from tests.shared_data import shared_data

DATA = Path(__file__).parent / "data"
CLD_FILE = DATA / "cld_release1_and_2.csv"
SYNTHEA_TINY = DATA / "synthea_flat_tiny"
SHARED_SYNTHEA = shared_data("synthea")


def _cld_source(tmp_path: Path) -> Path:
    source = tmp_path / "cld_extract"
    source.mkdir()
    shutil.copy(CLD_FILE, source / "cld.csv")
    return source


def _ingest_counts(db: Path) -> dict[str, tuple[int, int, int, int]]:
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute(
            "SELECT table_name, rows_read, rows_loaded, rows_quarantined, rows_excluded FROM ingest_log"
        ).fetchall()
    return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}


def _assert_reconciles(report: object) -> None:
    for table in report.tables:  # type: ignore[attr-defined]
        assert table.rows_in == table.rows_written + sum(table.dropped.values()), table


# ---------------------------------------------------------------------------------------------- CLD


def test_cld_mapping_takes_release_1_and_release_2_values(tmp_path: Path) -> None:
    batch = tmp_path / "cld_batch"
    # The extract date of a CLD submission is its reporting period's end.
    report = import_source("cld", _cld_source(tmp_path), batch, extract_date=date(2024, 9, 30))
    _assert_reconciles(report)
    events = report.tables[0]
    assert (events.table, events.rows_in, events.rows_written) == ("asc_events", 7, 6)
    assert events.dropped == {"no traced NHS number: the event cannot be linked to health records": 1}
    persons = next(t for t in report.tables if t.table == "persons")
    assert persons.rows_written == 4  # P001 twice, P002 twice: one row each, the latest event's
    manifest = json.loads((batch / "batch.json").read_text())
    assert manifest["currency"] == "GBP" and manifest["extract_date"] == "2024-09-30"

    written = pl.read_csv(batch / "persons.csv", infer_schema=False)
    by_person = {r["person_id"]: r for r in written.iter_rows(named=True)}
    assert by_person["P001"]["gp_practice"] == "A81001"  # the practice on the latest event
    assert (by_person["P001"]["sex"], by_person["P001"]["ethnicity_group"]) == ("2", "White")  # Release 2 wording
    assert (by_person["P002"]["sex"], by_person["P002"]["ethnicity_group"]) == ("1", "Asian")  # 2001 census wording
    assert (by_person["P003"]["sex"], by_person["P003"]["ethnicity_group"]) == ("X", "Z")  # code: the code list maps it

    db = tmp_path / "cld.duckdb"
    ingest_batch(db, batch)
    counts = _ingest_counts(db)
    assert counts["asc_events"] == (6, 5, 1, 0)  # the unknown service type is quarantined by the ingest
    assert counts["persons"] == (4, 4, 0, 0)
    with duckdb.connect(str(db), read_only=True) as con:
        services = dict(
            con.execute("SELECT event_id, service_type FROM asc_events WHERE event_type = 'Service'").fetchall()
        )
        weekly = dict(con.execute("SELECT event_id, weekly_cost FROM asc_events").fetchall())
        ethnic = dict(con.execute("SELECT person_id, ethnicity_group FROM persons").fetchall())
        currency = con.execute("SELECT currency FROM batches").fetchall()
    assert services["r1-home-support"] == "Long term support: Community"  # Release 1 alias mapped on load
    assert services["r1-carer"] == "Unpaid carer support: Direct to unpaid carer"
    assert services["r2-residential"] == "Long term support: Residential care"
    assert weekly["r1-home-support"] == pytest.approx(250.0)  # 25 an hour x 10 planned hours a week
    assert ethnic["P003"] == "Unknown"
    assert currency == [("GBP",)]


# ---------------------------------------------------------------------------------------------- mapping errors


def _broken_cld_mapping(tmp_path: Path, old: str, new: str) -> tuple[Path, int]:
    text = (MAPPINGS_DIR / "cld.toml").read_text()
    assert old in text
    broken = text.replace(old, new, 1)
    path = tmp_path / "broken_cld.toml"
    path.write_text(broken)
    changed = new.strip().splitlines()[-1]  # the line the error should point at
    line = next(i for i, row in enumerate(broken.splitlines(), start=1) if changed in row)
    return path, line


def test_unknown_source_column_names_the_mapping_file_and_line(tmp_path: Path) -> None:
    mapping, line = _broken_cld_mapping(tmp_path, 'la_code = "LA_Code"', 'la_code = "LA_Cod"')
    with pytest.raises(MappingError) as error:
        import_source(mapping, _cld_source(tmp_path), tmp_path / "batch", extract_date=date(2024, 7, 1))
    message = str(error.value)
    assert message.startswith(f"{mapping}:{line}:")
    assert "unknown column 'LA_Cod'" in message and "cld.csv" in message
    assert not (tmp_path / "batch").exists()


def test_bad_value_map_names_the_mapping_file_and_line(tmp_path: Path) -> None:
    mapping, line = _broken_cld_mapping(tmp_path, '"Indeterminate" = "9"', '"Indeterminate" = "I"')
    with pytest.raises(MappingError) as error:
        load_mapping(mapping)
    assert str(error.value).startswith(f"{mapping}:{line}:")
    assert "'I' is not a code of the sex code list" in str(error.value)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("[tables.persons]\n", "[tables.people]\n", "unknown table 'people'"),
        ('keep = "last"', 'keep = "last"\ntransform = "guess_everything"', "unknown transform 'guess_everything'"),
        ('la_code = "LA_Code"', 'local_authority = "LA_Code"', "'local_authority' is not an input column"),
        ('currency = "GBP"', 'currency = "pounds"', "currency must be an ISO 4217 code"),
    ],
)
def test_other_mapping_errors_name_the_file_and_line(tmp_path: Path, old: str, new: str, expected: str) -> None:
    mapping, line = _broken_cld_mapping(tmp_path, old, new)
    with pytest.raises(MappingError) as error:
        load_mapping(mapping)
    assert str(error.value).startswith(f"{mapping}:{line}:")
    assert expected in str(error.value)


# ---------------------------------------------------------------------------------------------- Synthea transforms


def _encounters(*rows: tuple[str, str, str]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "Id": [f"e{i}" for i in range(len(rows))],
            **dict(zip(("PATIENT", "START", "ENCOUNTERCLASS"), zip(*rows, strict=True), strict=True)),
        }
    )


def test_inpatient_10_hours_after_an_emergency_is_an_emergency_admission() -> None:
    encounters = _encounters(
        ("p1", "2018-01-10T08:00:00-05:00", "emergency"),
        ("p1", "2018-01-10T18:00:00-05:00", "inpatient"),
    )
    assert follows_emergency(encounters)[FOLLOWS_EMERGENCY].to_list() == ["yes", "yes"]


def test_inpatient_30_hours_after_an_emergency_is_elective() -> None:
    encounters = _encounters(
        ("p1", "2018-01-10T08:00:00Z", "emergency"),
        ("p1", "2018-01-11T14:00:00Z", "inpatient"),
    )
    assert follows_emergency(encounters)[FOLLOWS_EMERGENCY].to_list() == ["yes", "no"]


def test_only_the_same_persons_earlier_emergency_counts_and_offsets_are_respected() -> None:
    encounters = _encounters(
        ("p2", "2018-01-10T18:00:00-05:00", "inpatient"),  # before p2's emergency
        ("p2", "2018-01-10T20:00:00-05:00", "emergency"),
        ("p3", "2018-01-10T21:00:00-05:00", "inpatient"),  # another person's emergency
        ("p4", "2018-01-10T23:00:00-05:00", "emergency"),  # 04:00 UTC on the 11th
        ("p4", "2018-01-11T23:30:00Z", "inpatient"),  # 19.5 hours later
    )
    assert follows_emergency(encounters)[FOLLOWS_EMERGENCY].to_list() == ["no", "yes", "no", "yes", "yes"]


def test_an_encounters_medication_claim_is_shared_equally_among_its_medications() -> None:
    medications = pl.DataFrame({"ENCOUNTER": ["a", "a", "b", "missing"], "CODE": ["1", "2", "3", "4"]})
    encounters = pl.DataFrame({"Id": ["a", "b"], "MEDICATION_CLAIM_COST": ["510.0", "255.0"]})
    shared = medication_claim_share(medications, encounters)
    assert shared["CODE"].to_list() == ["1", "2", "3", "4"]
    assert shared[MEDICATION_COST].to_list() == ["255.0", "255.0", "255.0", None]


# ---------------------------------------------------------------------------------------------- Synthea mapping


def test_tiny_synthea_folder_converts_reconciles_and_ingests(tmp_path: Path) -> None:
    batch = tmp_path / "synthea_batch"
    report = import_source("synthea_flat", SYNTHEA_TINY, batch, extract_date=date(2018, 5, 5))
    _assert_reconciles(report)
    encounters = next(f for f in report.files if f.file == "encounters.csv")
    taken = sum(t.rows_in for t in report.tables if t.file == "encounters.csv")
    assert encounters.rows_read == 13 == taken + sum(encounters.not_taken.values())
    assert encounters.not_taken == {"no rule takes ENCOUNTERCLASS = ambulatory, CODE = 424619006": 1}  # prenatal
    by_rule = {(r.table, r.rule): r.rows for r in encounters.rules}
    assert by_rule == {
        ("apc_spells", "where"): 2,
        ("ae_attendances", "emergency"): 2,
        ("ae_attendances", "urgent care"): 1,
        ("ae_attendances", "ambulatory urgent care by type code"): 1,
        ("op_appointments", "outpatient"): 1,
        ("op_appointments", "ambulatory outpatient by type code"): 1,
        ("gp_events", "wellness"): 1,
        ("gp_events", "ambulatory GP contacts by type code"): 3,
    }
    gp_by_code = next(r for r in encounters.rules if r.rule == "ambulatory GP contacts by type code").by_value
    assert gp_by_code == {
        "ENCOUNTERCLASS = ambulatory, CODE = 185317003": 1,
        "ENCOUNTERCLASS = ambulatory, CODE = 185345009": 1,
        "ENCOUNTERCLASS = ambulatory, CODE = 439708006": 1,
    }
    conditions = next(t for t in report.tables if t.table == "conditions")
    assert conditions.rows_written == 2
    assert conditions.dropped == {
        "SNOMED concept not on the long-term condition list": 1,
        "another row for the same person_id, condition was kept (first by START)": 1,
    }
    prescriptions = next(t for t in report.tables if t.table == "prescriptions")
    assert prescriptions.dropped == {"RxNorm concept with no BNF section in the map": 1}
    assert report.unused_files == {"procedures.csv": "procedures are billed inside their encounter's TOTAL_CLAIM_COST"}
    manifest = json.loads((batch / "batch.json").read_text())
    assert manifest["currency"] == "USD" and manifest["extract_date"] == "2018-05-05"

    db = tmp_path / "synthea.duckdb"
    ingest_batch(db, batch)
    assert all(
        read == loaded + quarantined + excluded for read, loaded, quarantined, excluded in _ingest_counts(db).values()
    )
    with duckdb.connect(str(db), read_only=True) as con:
        methods = dict(con.execute("SELECT spell_id, admission_method FROM apc_spells").fetchall())
        types = dict(con.execute("SELECT attendance_id, department_type FROM ae_attendances").fetchall())
        costs = con.execute("SELECT bnf_code, cost FROM prescriptions ORDER BY bnf_code").fetchall()
        conditions_loaded = sorted(r[0] for r in con.execute("SELECT condition FROM conditions").fetchall())
        imputed = con.execute("SELECT count(*) FROM op_appointments WHERE cost_imputed").fetchall()[0][0]
        gp_types = dict(con.execute("SELECT event_id, event_type FROM gp_events").fetchall())
        outpatients = sorted(r[0] for r in con.execute("SELECT appointment_id FROM op_appointments").fetchall())
    assert methods == {"e-inpat-1": "21", "e-inpat-2": "11"}
    assert types == {"e-emerg-1": "01", "e-emerg-2": "01", "e-urgent-1": "03", "e-amb-urgent": "03"}
    assert gp_types == {
        "e-well-1": "face_to_face",
        "e-amb-1": "face_to_face",
        "e-amb-tel": "telephone",
        "e-amb-home": "home_visit",
    }
    assert outpatients == ["e-amb-op", "e-outp-1"]
    assert costs == [("0205", 255.0), ("0212", 255.0)]
    assert conditions_loaded == ["dementia", "hypertension"]
    assert imputed == 0


def test_a_database_refuses_a_batch_in_another_currency(tmp_path: Path) -> None:
    db = tmp_path / "mixed.duckdb"
    synthea_batch = tmp_path / "usd"
    import_source("synthea_flat", SYNTHEA_TINY, synthea_batch, extract_date=date(2018, 5, 5))
    ingest_batch(db, synthea_batch)
    cld_batch = tmp_path / "gbp"
    import_source("cld", _cld_source(tmp_path), cld_batch, extract_date=date(2024, 7, 1))
    with pytest.raises(BatchRejected, match="costs are in GBP but the database holds costs in USD"):
        ingest_batch(db, cld_batch)


def test_a_database_from_before_currencies_gains_the_column_and_counts_as_gbp(tmp_path: Path) -> None:
    db = tmp_path / "old.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute(
            "CREATE TABLE batches (batch_id VARCHAR, extract_date DATE, loaded_at TIMESTAMP, files_sha256 VARCHAR)"
        )
        con.execute("INSERT INTO batches VALUES ('old', DATE '2024-01-01', ?, 'x')", [datetime.now(UTC)])
    batch = tmp_path / "gbp"
    import_source("cld", _cld_source(tmp_path), batch, extract_date=date(2024, 7, 1))
    ingest_batch(db, batch)
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT batch_id, currency FROM batches ORDER BY batch_id").fetchall() == [
            ("gbp", "GBP"),
            ("old", None),
        ]
    usd = tmp_path / "usd"
    import_source("synthea_flat", SYNTHEA_TINY, usd, extract_date=date(2018, 5, 5))
    with pytest.raises(BatchRejected, match="holds costs in GBP"):
        ingest_batch(db, usd)


@pytest.mark.skipif(not SHARED_SYNTHEA.is_dir(), reason="the shared Synthea samples are not beside this checkout")
@pytest.mark.parametrize(
    ("folder", "mapping"), [("massachusetts_1k_2019", "synthea_flat"), ("unmc_nebraska_111", "synthea_native")]
)
def test_shared_synthea_sets_convert_and_ingest_with_every_row_accounted_for(
    tmp_path: Path, folder: str, mapping: str
) -> None:
    source = SHARED_SYNTHEA / folder
    batch = tmp_path / folder
    report = import_source(mapping, source, batch, extract_date=date(2024, 7, 1))
    _assert_reconciles(report)
    for account in report.files:
        rows = pl.read_csv(source / account.file, infer_schema=False).height
        taken = sum(t.rows_in for t in report.tables if t.file == account.file)
        assert rows == account.rows_read == taken + sum(account.not_taken.values()), account
    db = tmp_path / f"{folder}.duckdb"
    ingest_batch(db, batch)
    counts = _ingest_counts(db)
    assert set(counts) == {t.table for t in report.tables}
    for table in report.tables:
        read, loaded, quarantined, excluded = counts[table.table]
        assert read == table.rows_written == loaded + quarantined + excluded
