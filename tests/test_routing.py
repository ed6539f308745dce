"""Routing rules of a mapping: conditions that combine tests, one table per source row unless the mapping says
otherwise, counts per rule and of rows no rule takes, warnings for empty or implausibly small tables, exact dates;
and Synthea's coarse classes routed by type code."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest

from data_contracts.importer import ACTIVITY_SHARE_FACTOR, import_source
from data_contracts.mapping import MappingError, load_mapping
from data_contracts.sources.synthea import collapse_classes
from pipelines.ingest import ingest_batch
from tests.shared_data import shared_data

SHARED_SYNTHEA = shared_data("synthea")

PEOPLE = "person,born,sex\np1,1950-01-01,M\np2,1960-06-01,F\n"
CODES = "# test code list\ncode,setting\nA1,gp\nA2,gp\nB1,outpatient\nC1,other\n"

# Events: the class is coarse ("amb") for most rows, so the code decides.
EVENTS = [
    ("e1", "p1", "01/03/2025", "amb", "A1"),
    ("e2", "p1", "02/03/2025", "amb", "A2"),
    ("e3", "p2", "03/03/2025", "amb", "B1"),
    ("e4", "p2", "04/03/2025", "clinic", "X9"),
    ("e5", "p2", "05/03/2025", "amb", "C1"),
    ("e6", "p1", "06/03/2025", "phone", "T-17"),
    ("e7", "p1", "07/03/2025", "amb", "Z0"),
]

HEADER = """[source]
description = "a test source"
currency = "GBP"

[tables.persons]
file = "people.csv"
columns = { person_id = "person", sex = "sex" }
date_parts = { birth_year = ["born", "year"] }
constants = { gp_practice = "P1" }

[tables.persons.values.sex]
M = "1"
F = "2"
"""

GP_AND_OUTPATIENTS = """
[tables.gp_events]
file = "events.csv"
columns = { event_id = "id", person_id = "person", event_date = "date" }
dates = { date = "%d/%m/%Y" }

[[tables.gp_events.rules]]
name = "coded GP contacts"
set = { event_type = "face_to_face" }
[tables.gp_events.rules.where]
all = [
  { column = "class", equals = "amb" },
  { column = "code", in_file = "codes.csv", select = { setting = "gp" } },
]

[[tables.gp_events.rules]]
name = "telephone"
where = { any = [{ column = "class", in = ["phone", "tel"] }, { column = "code", pattern = "T-[0-9]+" }] }
set = { event_type = "telephone" }

[tables.op_appointments]
file = "events.csv"
columns = { appointment_id = "id", person_id = "person", appointment_date = "date" }
constants = { attendance_status = "5" }
dates = { date = "%d/%m/%Y" }
{op_where}
"""
OP_BY_CODE = """[tables.op_appointments.where]
any = [
  { column = "class", equals = "clinic" },
  { all = [{ column = "class", equals = "amb" }, { not = { column = "code", in_file = "codes.csv" } }] },
]"""


def _source(tmp_path: Path, events: list[tuple[str, ...]] = EVENTS) -> Path:
    source = tmp_path / "source"
    source.mkdir(exist_ok=True)
    (source / "people.csv").write_text(PEOPLE)
    rows = "\n".join(",".join(e) for e in events)
    (source / "events.csv").write_text(f"id,person,date,class,code\n{rows}\n")
    return source


def _mapping(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "test_mapping.toml"
    path.write_text(text)
    (tmp_path / "codes.csv").write_text(CODES)
    return path


def _line(path: Path, fragment: str, occurrence: int = 1) -> int:
    lines = [i for i, row in enumerate(path.read_text().splitlines(), start=1) if fragment in row]
    return lines[occurrence - 1]


def test_conditions_combine_tests_and_every_row_is_counted_by_rule_or_as_taken_by_none(tmp_path: Path) -> None:
    mapping = _mapping(tmp_path, HEADER + GP_AND_OUTPATIENTS.replace("{op_where}", OP_BY_CODE))
    report = import_source(mapping, _source(tmp_path), tmp_path / "batch", extract_date=date(2025, 3, 7))
    events = next(f for f in report.files if f.file == "events.csv")
    rules = {(r.table, r.rule): r for r in events.rules}
    assert rules["gp_events", "coded GP contacts"].by_value == {
        "class = amb, code = A1": 1,
        "class = amb, code = A2": 1,
    }
    assert rules["gp_events", "telephone"].rows == 1
    # Outpatients: the clinic class, or a coarse class with a code the code list does not know.
    assert rules["op_appointments", "where"].by_value == {"class = amb, code = Z0": 1, "class = clinic, code = X9": 1}
    # e3 (outpatient code, but no rule takes outpatient codes) and e5 (other): taken by no rule, counted by value.
    assert events.not_taken == {"no rule takes class = amb, code = B1": 1, "no rule takes class = amb, code = C1": 1}
    assert events.rows_read == sum(r.rows for r in events.rules) + sum(events.not_taken.values())
    gp = pl.read_csv(tmp_path / "batch" / "gp_events.csv", infer_schema=False)
    assert dict(zip(gp["event_id"], gp["event_type"], strict=True)) == {
        "e1": "face_to_face",
        "e2": "face_to_face",
        "e6": "telephone",
    }
    assert gp["event_date"].to_list() == ["2025-03-01", "2025-03-02", "2025-03-06"]
    manifest = json.loads((tmp_path / "batch" / "batch.json").read_text())
    recorded = next(f for f in manifest["import"]["files"] if f["file"] == "events.csv")
    assert {r["rule"]: r["rows"] for r in recorded["rules"]} == {"coded GP contacts": 2, "telephone": 1, "where": 2}
    assert recorded["not_taken"] == events.not_taken


def test_a_row_two_rules_claim_is_an_error_naming_both_rules_with_file_and_line(tmp_path: Path) -> None:
    # The outpatient rule also takes coarse rows with a GP code: e1 and e2 are claimed twice.
    overlapping = 'where = { column = "class", in = ["clinic", "amb"] }'
    mapping = _mapping(tmp_path, HEADER + GP_AND_OUTPATIENTS.replace("{op_where}", overlapping))
    with pytest.raises(MappingError) as error:
        import_source(mapping, _source(tmp_path), tmp_path / "batch", extract_date=date(2025, 3, 7))
    message = str(error.value)
    gp_line, op_line = _line(mapping, "[[tables.gp_events.rules]]"), _line(mapping, overlapping)
    assert message.startswith(f"{mapping}:{gp_line}:")
    assert f"[tables.gp_events] rule 'coded GP contacts' (line {gp_line})" in message
    assert f"[tables.op_appointments] rule 'where' (line {op_line})" in message
    assert "2 row(s) of events.csv" in message and "class = amb, code = A1" in message
    assert not (tmp_path / "batch").exists()


def test_two_rules_of_one_table_may_not_claim_a_row_either(tmp_path: Path) -> None:
    text = HEADER + GP_AND_OUTPATIENTS.replace("{op_where}", OP_BY_CODE).replace('"T-[0-9]+"', '"[A-Z][0-9]"')
    mapping = _mapping(tmp_path, text)
    with pytest.raises(MappingError, match=r"rule 'coded GP contacts' \(line \d+\) and \[tables.gp_events\] rule"):
        import_source(mapping, _source(tmp_path), tmp_path / "batch", extract_date=date(2025, 3, 7))


def test_rows_feed_two_tables_only_where_the_mapping_declares_it(tmp_path: Path) -> None:
    persons_from_events = """[source]
description = "a test source"
currency = "GBP"

[tables.persons]
file = "events.csv"
{shares}
columns = { person_id = "person" }
constants = { sex = "X", birth_year = "1950", gp_practice = "P1" }
one_row_per = ["person_id"]

[tables.gp_events]
file = "events.csv"
columns = { event_id = "id", person_id = "person", event_date = "date" }
constants = { event_type = "face_to_face" }
dates = { date = "%d/%m/%Y" }
"""
    mapping = _mapping(tmp_path, persons_from_events.replace("{shares}", ""))
    with pytest.raises(MappingError, match="declare shares_rows_with"):
        import_source(mapping, _source(tmp_path), tmp_path / "batch", extract_date=date(2025, 3, 7))
    mapping = _mapping(tmp_path, persons_from_events.replace("{shares}", 'shares_rows_with = ["gp_events"]'))
    report = import_source(mapping, _source(tmp_path), tmp_path / "batch", extract_date=date(2025, 3, 7))
    assert {t.table: (t.rows_in, t.rows_written) for t in report.tables} == {"persons": (7, 2), "gp_events": (7, 7)}


def test_an_empty_routed_table_is_a_warning_naming_the_mapping_line_and_the_ingest_raises_it(tmp_path: Path) -> None:
    nothing = 'where = { column = "class", equals = "outpatient" }'  # no row has this class
    mapping = _mapping(tmp_path, HEADER + GP_AND_OUTPATIENTS.replace("{op_where}", nothing))
    batch = tmp_path / "batch"
    report = import_source(mapping, _source(tmp_path), batch, extract_date=date(2025, 3, 6))
    empty = [w for w in report.warnings if w.kind == "empty_table"]
    assert [w.table for w in empty] == ["op_appointments"]
    assert empty[0].message.startswith(f"{mapping}:{_line(mapping, '[tables.op_appointments]')}:")
    assert "received 0 rows" in empty[0].message
    recorded = json.loads((batch / "batch.json").read_text())["import"]["warnings"]
    assert [(w["kind"], w["table"], w["rows"]) for w in recorded] == [("empty_table", "op_appointments", 0)]
    ingested = ingest_batch(tmp_path / "db.duckdb", batch)
    assert [(w.kind, w.table) for w in ingested.data_quality_warnings] == [("empty_table", "op_appointments")]


def test_a_table_far_below_what_the_other_tables_imply_is_a_warning(tmp_path: Path) -> None:
    # 300 GP contacts and 1 outpatient appointment: national rates imply about 100 appointments.
    events = [(f"g{i}", "p1", "01/03/2025", "amb", "A1") for i in range(300)] + [
        ("o1", "p2", "02/03/2025", "clinic", "X9")
    ]
    mapping = _mapping(tmp_path, HEADER + GP_AND_OUTPATIENTS.replace("{op_where}", OP_BY_CODE))
    report = import_source(mapping, _source(tmp_path, events), tmp_path / "batch", extract_date=date(2025, 3, 2))
    shares = [w for w in report.warnings if w.kind == "activity_share"]
    assert [(w.table, w.rows) for w in shares] == [("op_appointments", 1)]
    assert shares[0].expected is not None and shares[0].expected > ACTIVITY_SHARE_FACTOR
    assert shares[0].message.startswith(f"{mapping}:{_line(mapping, '[tables.op_appointments]')}:")


def test_an_impossible_date_is_never_shifted_but_passed_on_and_quarantined(tmp_path: Path) -> None:
    events = [
        ("e1", "p1", "31/04/2025", "amb", "A1"),  # April has 30 days
        ("e2", "p1", "29/02/2025", "amb", "A1"),  # 2025 is not a leap year
        ("e3", "p1", "28/02/2025", "amb", "A1"),
        ("e4", "p1", "01/03/2025x", "amb", "A1"),  # the format must match the whole value
    ]
    mapping = _mapping(tmp_path, HEADER + GP_AND_OUTPATIENTS.replace("{op_where}", OP_BY_CODE))
    batch = tmp_path / "batch"
    report = import_source(mapping, _source(tmp_path, events), batch, extract_date=date(2025, 2, 28))
    gp = pl.read_csv(batch / "gp_events.csv", infer_schema=False)
    # Impossible days keep their digits (in the contract's order), never moved to a neighbouring day.
    assert gp["event_date"].to_list() == ["2025-04-31", "2025-02-29", "2025-02-28", "01/03/2025x"]
    bad = [w for w in report.warnings if w.kind == "bad_date"]
    assert [(w.table, w.rows) for w in bad] == [("gp_events", 3)]
    assert bad[0].message.startswith(f"{mapping}:{_line(mapping, 'dates = { date')}:")
    assert "'%d/%m/%Y'" in bad[0].message
    db = tmp_path / "db.duckdb"
    ingest_batch(db, batch)
    with duckdb.connect(str(db), read_only=True) as con:
        loaded = con.execute("SELECT event_id, event_date FROM gp_events").fetchall()
        quarantined = con.execute(
            "SELECT reason, column_name FROM quarantine WHERE table_name = 'gp_events'"
        ).fetchall()
    assert [(e, str(d)) for e, d in loaded] == [("e3", "2025-02-28")]
    assert sorted(quarantined) == [("bad_date", "event_date"), ("bad_date", "event_date"), ("bad_type", "event_date")]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('equals = "amb"', 'equal = "amb"', "a test needs a column and exactly one of"),
        ('select = { setting = "gp" }', 'select = { kind = "gp" }', "codes.csv has no column 'kind'"),
        ('select = { setting = "gp" }', 'select = { setting = "nothing" }', "no code of codes.csv is selected"),
        (
            'set = { event_type = "telephone" }',
            'set = { event_type = "chat" }',
            "'chat' is not a code of the gp_event_type",
        ),
        ('pattern = "T-[0-9]+"', 'pattern = "T-[0-9"', "is not a regular expression"),
    ],
)
def test_a_bad_routing_rule_names_the_mapping_file_and_line(tmp_path: Path, old: str, new: str, expected: str) -> None:
    text = HEADER + GP_AND_OUTPATIENTS.replace("{op_where}", OP_BY_CODE)
    assert old in text
    mapping = _mapping(tmp_path, text.replace(old, new, 1))
    headers = [i for i, row in enumerate(mapping.read_text().splitlines(), start=1) if row.endswith(".rules]]")]
    rule_line = max(h for h in headers if h < _line(mapping, new))  # the rule's [[tables.x.rules]] header
    with pytest.raises(MappingError) as error:
        load_mapping(mapping)
    assert str(error.value).startswith(f"{mapping}:{rule_line}:")
    assert expected in str(error.value)


# ---------------------------------------------------------------------------------------------- Synthea by type code


@pytest.mark.skipif(not SHARED_SYNTHEA.is_dir(), reason="the shared Synthea samples are not beside this checkout")
def test_collapsed_classes_give_the_same_outpatients_and_gp_event_types_within_10_percent(tmp_path: Path) -> None:
    source = SHARED_SYNTHEA / "massachusetts_1k_2019"
    collapsed = collapse_classes(source, tmp_path / "collapsed")
    counts = {}
    for name, folder in (("delivered", source), ("collapsed", collapsed)):
        report = import_source("synthea_flat", folder, tmp_path / f"batch_{name}", extract_date=date(2019, 4, 29))
        assert not [w for w in report.warnings if w.kind in ("empty_table", "activity_share")], report.warnings
        gp = pl.read_csv(tmp_path / f"batch_{name}" / "gp_events.csv", infer_schema=False)
        written = {t.table: t.rows_written for t in report.tables}
        counts[name] = {
            "op_appointments": written["op_appointments"],
            **dict(gp["event_type"].value_counts().iter_rows()),
        }
    assert (
        set(counts["collapsed"])
        == set(counts["delivered"])
        == {"op_appointments", "face_to_face", "telephone", "home_visit"}
    )
    for key, delivered in counts["delivered"].items():
        assert abs(counts["collapsed"][key] - delivered) <= 0.10 * delivered, (key, counts)
