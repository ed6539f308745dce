"""Row validation against the contracts (pure Polars) and the derived cost columns."""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from data_contracts.costs import REABLEMENT_EPISODE_WEEKS, add_derived_costs, settings_used
from data_contracts.reference import unit_cost, unit_costs
from data_contracts.tables import TABLES
from data_contracts.validation import (
    CHECK_ORDER,
    PERSON_LOOKUP_COLUMNS,
    ValidationResult,
    read_table_file,
    validate_table,
)
from tests.test_ingest import asc_event, clean_rows

Row = dict[str, str]
EXTRACT = date(2025, 1, 1)


def write_csv(path: Path, rows: list[Row]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def known_persons() -> pl.DataFrame:
    persons = pl.DataFrame(clean_rows()["persons"])
    return persons.select(pl.col("person_id"), pl.col("birth_year", "birth_month").cast(pl.Int64))


def validate(tmp_path: Path, table: str, rows: list[Row], opted_out: tuple[str, ...] = ()) -> ValidationResult:
    raw = read_table_file(write_csv(tmp_path / f"{table}.csv", rows), TABLES[table])
    persons = known_persons() if TABLES[table].person_linked else None
    return validate_table(raw, TABLES[table], EXTRACT, persons, pl.Series(opted_out, dtype=pl.String))


def first_row(table: str) -> Row:
    return clean_rows()[table][0]


def test_clean_rows_are_all_valid_and_typed(tmp_path: Path) -> None:
    for table, rows in clean_rows().items():
        result = validate(tmp_path, table, rows)
        assert result.rows_quarantined == 0, (table, result.quarantine.to_dicts())
        assert result.rows_valid + result.rows_excluded == len(rows)
        assert result.valid.columns == [c.name for c in TABLES[table].input_columns]
    spells = validate(tmp_path, "apc_spells", clean_rows()["apc_spells"]).valid
    assert spells.schema["admission_date"] == pl.Date and spells.schema["cost"] == pl.Float64


# One case per bad-input class: (table, changes to the table's first clean row, reason, column).
BAD_INPUTS: dict[str, tuple[str, Row, str, str]] = {
    "missing_required": ("apc_spells", {"admission_date": ""}, "missing_required", "admission_date"),
    "missing_required_blank": ("gp_events", {"event_type": "   "}, "missing_required", "event_type"),
    "bad_type_float": ("ae_attendances", {"cost": "12,50"}, "bad_type", "cost"),
    "bad_type_nan": ("ae_attendances", {"cost": "NaN"}, "bad_type", "cost"),
    "bad_type_int": ("prescriptions", {"items": "1.5"}, "bad_type", "items"),
    "bad_type_date": ("gp_events", {"event_date": "01/06/2024"}, "bad_type", "event_date"),
    "bad_date_impossible_date": ("gp_events", {"event_date": "2024-02-30"}, "bad_date", "event_date"),
    "bad_date_not_a_leap_year": ("gp_events", {"event_date": "2025-02-29"}, "bad_date", "event_date"),
    "bad_type_bool": ("community_contacts", {"attended": "perhaps"}, "bad_type", "attended"),
    "unknown_code": ("gp_events", {"event_type": "video_call"}, "unknown_code", "event_type"),
    "unknown_code_current_list": (
        "asc_events",
        {"service_type": "Long term support: Spa"},
        "unknown_code",
        "service_type",
    ),
    "out_of_range_negative_cost": ("ae_attendances", {"cost": "-5"}, "out_of_range", "cost"),
    "out_of_range_imd": ("persons", {"imd_decile": "11"}, "out_of_range", "imd_decile"),
    "out_of_range_birth_month": ("persons", {"birth_month": "13"}, "out_of_range", "birth_month"),
    "bad_format": ("apc_spells", {"primary_diagnosis": "I50.0"}, "bad_format", "primary_diagnosis"),
    "future_date": ("gp_events", {"event_date": "2025-01-02"}, "future_date", "event_date"),
    # Plausibility (issue 17): values a parser accepts but no real record holds.
    "bad_type_unpadded_date": ("gp_events", {"event_date": "2024-6-5"}, "bad_type", "event_date"),
    "bad_type_tiny_date": ("gp_events", {"event_date": "1-1-1"}, "bad_type", "event_date"),
    "out_of_range_huge_cost": ("ae_attendances", {"cost": "1e12"}, "out_of_range", "cost"),
    "out_of_range_largest_float_cost": ("apc_spells", {"cost": "1e308"}, "out_of_range", "cost"),
    "future_date_birth_year": ("persons", {"birth_year": "2026"}, "future_date", "birth_year"),
    "bad_format_id_characters": ("teams", {"team_id": "../../etc/passwd"}, "bad_format", "team_id"),
    "bad_format_id_length": ("persons", {"gp_practice": "P" * 65}, "bad_format", "gp_practice"),
    "bad_format_record_id_too_long": ("gp_events", {"event_id": "e" * 201}, "bad_format", "event_id"),
    "bad_format_million_character_lsoa": ("persons", {"lsoa": "E" * 1_000_000}, "bad_format", "lsoa"),
    "bad_format_nul_in_text": ("teams", {"team_name": "North\x00MDT"}, "bad_format", "team_name"),
    "discharge_before_admission": (
        "apc_spells",
        {"discharge_date": "2024-02-28"},
        "discharge_before_admission",
        "discharge_date",
    ),
    "discharge_ready_before_admission": (
        "apc_spells",
        {"discharge_ready_date": "2024-02-28"},
        "discharge_ready_before_admission",
        "discharge_ready_date",
    ),
    "end_before_start": ("asc_events", {"event_end_date": "2024-06-30"}, "end_before_start", "event_end_date"),
    # Caseload decisions (the grain includes decision_date: a new date is a distinct key).
    "caseload_end_before_start": (
        "caseload",
        {"decision_date": "2024-06-11", "case_management_end": "2024-06-16"},
        "end_before_start",
        "case_management_end",
    ),
    "caseload_decision_before_discussion": (
        "caseload",
        {"decision_date": "2024-06-09"},
        "decision_before_discussion",
        "decision_date",
    ),
    "caseload_not_appropriate_without_reason": (
        "caseload",
        {"decision_date": "2024-06-11", "decision": "not_appropriate", "reason_code": ""},
        "missing_reason",
        "reason_code",
    ),
    "caseload_taken_on_without_start": (
        "caseload",
        {"decision_date": "2024-06-11", "case_management_start": ""},
        "missing_start",
        "case_management_start",
    ),
    "caseload_unknown_decision": (
        "caseload",
        {"decision_date": "2024-06-11", "decision": "maybe"},
        "unknown_code",
        "decision",
    ),
    "before_birth": (
        "ae_attendances",
        {"person_id": "young_person", "arrival_date": "2000-05-31"},
        "before_birth",
        "arrival_date",
    ),
    "before_birth_own_death": ("persons", {"date_of_death": "1950-02-28"}, "before_birth", "date_of_death"),
    "unlinked_person": ("conditions", {"person_id": "nobody_person"}, "unlinked_person", "person_id"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_each_bad_input_class_is_quarantined_with_its_reason(tmp_path: Path, case: str) -> None:
    table, changes, reason, column = BAD_INPUTS[case]
    good = first_row(table)
    bad = good | changes
    grain = TABLES[table].grain
    if not set(grain) & set(changes):  # a distinct key, so the pair is not also a duplicate_key
        bad[grain[0]] = f"{good[grain[0]]}_bad"
    result = validate(tmp_path, table, [good, bad])
    assert result.rows_valid == 1 and result.rows_quarantined == 1
    [row] = result.quarantine.to_dicts()
    assert (row["source_row"], row["reason"], row["column_name"]) == (2, reason, column)
    assert json.loads(row["raw_values"])[column] == (changes[column] or None)
    assert result.reason_counts == {reason: 1}


def test_before_birth_counts_from_the_first_of_the_birth_month(tmp_path: Path) -> None:
    ae = first_row("ae_attendances") | {"person_id": "young_person"}
    on_the_first = ae | {"attendance_id": "A", "arrival_date": "2000-06-01"}
    day_before = ae | {"attendance_id": "B", "arrival_date": "2000-05-31"}
    result = validate(tmp_path, "ae_attendances", [on_the_first, day_before])
    assert result.valid.get_column("attendance_id").to_list() == ["A"]


def test_first_reason_follows_the_check_order_and_all_reasons_lists_every_failure(tmp_path: Path) -> None:
    spell = first_row("apc_spells") | {
        "person_id": "nobody_person",
        "admission_method": "99",
        "cost": "-1",
        "discharge_date": "2024-02-01",
        "treatment_function_code": "30",
    }
    [row] = validate(tmp_path, "apc_spells", [spell]).quarantine.to_dicts()
    assert row["reason"] == "unknown_code" and row["column_name"] == "admission_method"
    assert row["all_reasons"] == (
        "unknown_code:admission_method;out_of_range:cost;bad_format:treatment_function_code;"
        "discharge_before_admission:discharge_date;unlinked_person:person_id"
    )
    assert CHECK_ORDER.index("unknown_code") < CHECK_ORDER.index("out_of_range") < CHECK_ORDER.index("unlinked_person")


def test_duplicate_key_with_different_values_quarantines_every_copy(tmp_path: Path) -> None:
    first = first_row("gp_events")
    changed = first | {"staff_role": "nurse"}
    other = first | {"event_id": "GP2"}
    result = validate(tmp_path, "gp_events", [first, other, changed])
    assert result.valid.get_column("event_id").to_list() == ["GP2"]
    assert result.quarantine.select("source_row", "reason", "column_name").rows() == [
        (1, "duplicate_key", "event_id"),
        (3, "duplicate_key", "event_id"),
    ]


def test_exact_duplicate_rows_keep_the_first_copy(tmp_path: Path) -> None:
    condition = first_row("conditions")
    result = validate(tmp_path, "conditions", [condition, condition, condition])
    assert result.rows_valid == 1
    assert result.quarantine.select("source_row", "reason", "column_name").rows() == [
        (2, "duplicate_row", "person_id,condition"),
        (3, "duplicate_row", "person_id,condition"),
    ]


def test_opted_out_rows_are_excluded_before_any_check(tmp_path: Path) -> None:
    spell = first_row("apc_spells")
    opted = spell | {"spell_id": "S2", "person_id": "opted_out_person", "cost": "garbage"}
    unknown = spell | {"spell_id": "S3", "person_id": "never_registered"}
    result = validate(
        tmp_path, "apc_spells", [spell, opted, unknown], opted_out=("opted_out_person", "never_registered")
    )
    assert (result.rows_read, result.rows_valid, result.rows_excluded, result.rows_quarantined) == (3, 1, 2, 0)


def test_release_1_codes_are_accepted_and_mapped_to_release_2(tmp_path: Path) -> None:
    r1 = asc_event("E1", service_type="Carer Support: Direct to Carer") | {"service_component": "Home Support"}
    result = validate(tmp_path, "asc_events", [r1])
    assert result.valid.select("service_type", "service_component").row(0) == (
        "Unpaid carer support: Direct to unpaid carer",
        "Home support or domiciliary care",
    )


def test_text_is_trimmed_and_blank_cells_are_missing(tmp_path: Path) -> None:
    row = first_row("gp_events") | {"event_type": " telephone ", "staff_role": " "}
    valid = validate(tmp_path, "gp_events", [row]).valid
    assert valid.select("event_type", "staff_role").row(0) == ("telephone", None)


def test_quarantine_raw_values_keep_the_text_as_read(tmp_path: Path) -> None:
    row = first_row("ae_attendances") | {"cost": " 1e999 "}
    [q] = validate(tmp_path, "ae_attendances", [row]).quarantine.to_dicts()
    assert q["reason"] == "bad_type" and json.loads(q["raw_values"])["cost"] == " 1e999 "


def test_person_lookup_columns_match_the_persons_contract() -> None:
    assert set(PERSON_LOOKUP_COLUMNS) <= {c.name for c in TABLES["persons"].columns}


# ---------------------------------------------------------------------------------------------- costs


def derive(table: str, frame: dict[str, list[object]]) -> pl.DataFrame:
    schema = {c.name: c.polars_type for c in TABLES[table].input_columns if c.name in frame}
    return add_derived_costs(pl.DataFrame(frame, schema=schema), table)


def test_every_cost_setting_named_in_rules_exists_in_unit_costs() -> None:
    assert settings_used() <= set(unit_costs())


def test_apc_cost_is_imputed_by_admission_method_group_and_given_costs_are_kept() -> None:
    out = derive("apc_spells", {"admission_method": ["21", "2A", "11", "31", "81", "22"], "cost": [None] * 5 + [99.0]})
    emergency, elective = unit_cost("emergency_admission"), unit_cost("elective_admission")
    assert out.get_column("cost").to_list() == [emergency, emergency, elective, emergency, emergency, 99.0]
    assert out.get_column("cost_imputed").to_list() == [True] * 5 + [False]


def test_outpatient_cost_only_for_attended_appointments() -> None:
    out = derive("op_appointments", {"attendance_status": ["5", "6", "3", "7", "2", "4"], "cost": [None] * 6})
    price = unit_cost("outpatient_attendance")
    assert out.get_column("cost").to_list() == [price, price, 0.0, 0.0, 0.0, 0.0]
    assert out.get_column("cost_imputed").all()


def test_ae_cost_is_the_attendance_unit_cost() -> None:
    out = derive("ae_attendances", {"department_type": ["01"], "cost": [None]})
    assert out.row(0, named=True)["cost"] == unit_cost("ae_attendance")


def test_gp_cost_by_staff_role_and_zero_for_did_not_attend() -> None:
    out = derive(
        "gp_events",
        {
            "event_type": ["face_to_face", "telephone", "home_visit", "did_not_attend", "online"],
            "staff_role": ["gp", "nurse", "other", "gp", None],
            "cost": [None] * 5,
        },
    )
    gp, nurse = unit_cost("gp_consultation"), unit_cost("practice_nurse_consultation")
    assert out.get_column("cost").to_list() == [gp, nurse, nurse, 0.0, gp]


def test_community_cost_by_service_and_zero_when_not_attended() -> None:
    services = ["district_nursing", "community_matron", "intermediate_care", "therapy", "mental_health", "other"]
    out = derive(
        "community_contacts",
        {"service": [*services, "therapy", "therapy"], "attended": [True] * 6 + [False, None], "cost": [None] * 8},
    )
    expected = [
        unit_cost(s)
        for s in (
            "district_nurse_contact",
            "community_matron_contact",
            "intermediate_care_contact",
            "therapy_contact",
            "district_nurse_contact",
            "district_nurse_contact",
        )
    ]
    assert out.get_column("cost").to_list() == [*expected, 0.0, unit_cost("therapy_contact")]


def test_prescription_cost_is_never_imputed() -> None:
    out = derive("prescriptions", {"items": [1, 2], "cost": [None, 3.5]})
    assert out.select("cost", "cost_imputed").rows() == [(None, False), (3.5, False)]


CLD_CASES: list[tuple[str | None, float | None, float | None, float | None]] = [
    ("Weekly", 100.0, None, 100.0),
    ("Fortnightly", 100.0, None, 50.0),
    ("4 Weekly", 100.0, None, 25.0),
    ("Monthly", 520.0, None, 120.0),  # x 12/52
    ("Quarterly", 520.0, None, 40.0),  # x 4/52
    ("Annually", 520.0, None, 10.0),
    ("One-off", 500.0, None, 500.0),  # counted once, whole
    ("Hourly", 20.0, 10.0, 200.0),
    ("Daily", 50.0, 7.0, 350.0),
    ("Per session", 30.0, 2.0, 60.0),
    ("Hourly", 20.0, None, None),  # no planned units: cannot be costed
    (None, 20.0, None, None),
]


@pytest.mark.parametrize(("frequency", "unit", "planned", "weekly"), CLD_CASES)
def test_cld_weekly_cost_per_frequency_type(
    frequency: str | None, unit: float | None, planned: float | None, weekly: float | None
) -> None:
    out = derive(
        "asc_events",
        {
            "event_type": ["Service"],
            "service_type": ["Long term support: Community"],
            "unit_cost": [unit],
            "cost_frequency_unit_type": [frequency],
            "planned_units_per_week": [planned],
        },
    )
    result = out.get_column("weekly_cost").item()
    assert (result is None) if weekly is None else result == pytest.approx(weekly, rel=1e-9)
    assert out.get_column("cost_imputed").item() is False


def test_asc_missing_unit_cost_is_imputed_by_service_type_group() -> None:
    service_types = [
        "Long term support: Residential care",
        "Long term support: Nursing care",
        "Short term support: ST-Max",
        "Long term support: Community",
        "Long term support: Residential care",
    ]
    out = derive(
        "asc_events",
        {
            "event_type": ["Service", "Service", "Service", "Service", "Assessment"],
            "service_type": service_types,
            "unit_cost": [None] * 5,
            "cost_frequency_unit_type": [None] * 5,
            "planned_units_per_week": [None] * 5,
        },
    )
    reablement_weekly = unit_cost("reablement") / REABLEMENT_EPISODE_WEEKS
    assert out.get_column("weekly_cost").to_list() == [
        unit_cost("residential_care"),
        unit_cost("nursing_care"),
        pytest.approx(reablement_weekly),
        None,
        None,
    ]
    assert out.get_column("cost_imputed").to_list() == [True, True, True, False, False]
