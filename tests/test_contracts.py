"""The contract declarations drive the DDL and the data dictionary; the code lists carry sources."""

from __future__ import annotations

import duckdb
import pytest

from data_contracts.dictionary import DICTIONARY_PATH, render_data_dictionary
from data_contracts.reference import acsc_condition, acsc_prefixes, codelists, unit_costs
from data_contracts.tables import ACTIVITY_TABLES, TABLES
from pipelines.warehouse import WAREHOUSE_TABLES


def test_data_dictionary_is_generated_from_the_contracts_and_up_to_date() -> None:
    rendered = render_data_dictionary()
    assert DICTIONARY_PATH.read_text(encoding="utf-8") == rendered, "run `riskstrat dictionary` and commit the result"
    for table in TABLES.values():
        assert f"## `{table.name}`" in rendered
        for column in table.all_columns:
            assert f"| `{column.name}` | {column.type} |" in rendered


def test_ddl_creates_every_declared_column_with_its_type() -> None:
    con = duckdb.connect()
    for table in TABLES.values():
        con.execute(WAREHOUSE_TABLES[table.name].ddl())
        described = {row[0]: row[1] for row in con.execute(f"DESCRIBE {table.name}").fetchall()}
        assert described == {c.name: c.duckdb_type for c in table.all_columns}


def test_every_codelist_column_names_a_shipped_list_and_every_list_has_a_source() -> None:
    lists = codelists()
    for table in TABLES.values():
        for column in table.columns:
            if column.codelist:
                assert column.codelist in lists, f"{table.name}.{column.name}"
    for cl in lists.values():
        assert cl.source and cl.year
        assert set(cl.group) <= set(cl.codes), f"{cl.name}: group keys must be codes"
        assert set(cl.aliases.values()) <= set(cl.codes), f"{cl.name}: aliases must map to codes"


def test_unit_costs_carry_price_year_and_source() -> None:
    costs = unit_costs()
    assert {"emergency_admission", "ae_attendance", "residential_care"} <= set(costs)
    assert all(c.cost_gbp > 0 and c.price_year and c.source for c in costs.values())


def test_activity_tables_are_person_linked_and_have_a_grain() -> None:
    assert "persons" not in ACTIVITY_TABLES and "apc_spells" in ACTIVITY_TABLES
    for table in TABLES.values():
        assert all(any(c.name == key for c in table.columns) for key in table.grain)


# NHS Outcomes Framework 2.3.i counts emergency admissions for these eleven chronic conditions.
OUTCOMES_FRAMEWORK_ACSC = {
    "Angina",
    "Asthma",
    "Atrial fibrillation and flutter",
    "Chronic obstructive pulmonary disease",
    "Chronic viral hepatitis B",
    "Congestive heart failure",
    "Convulsions and epilepsy",
    "Dementia",
    "Diabetes complications",
    "Hypertension",
    "Iron deficiency anaemia",
}


def test_the_acsc_code_list_covers_the_outcomes_framework_conditions() -> None:
    assert set(acsc_prefixes().values()) == OUTCOMES_FRAMEWORK_ACSC


@pytest.mark.parametrize(
    ("code", "condition"),
    [
        ("B18.1", "Chronic viral hepatitis B"),
        ("E13.5", "Diabetes complications"),
        ("E11.9", None),  # diabetes without complication is not counted
        ("I25.1", "Angina"),
        ("i50.9", "Congestive heart failure"),
        ("J18.9", None),
        (None, None),
    ],
)
def test_a_primary_diagnosis_is_read_by_its_four_then_three_character_prefix(
    code: str | None, condition: str | None
) -> None:
    assert acsc_condition(code) == condition
