"""Outcome labels on named scenario people."""

from __future__ import annotations

from datetime import date
from typing import Any

import polars as pl
import pytest

from data_contracts.outcomes import OutcomeSettings
from features.inputs import tables_from_rows
from features.outcomes import LABEL_COLUMNS, horizon_end, label_outcomes

INDEX = date(2025, 4, 1)  # horizon [2025-04-01, 2026-04-01)

Row = dict[str, Any]


def person(person_id: str, date_of_death: date | None = None) -> Row:
    return {
        "person_id": person_id,
        "birth_year": 1940,
        "birth_month": 1,
        "sex": "2",
        "gp_practice": "P1",
        "date_of_death": date_of_death,
    }


def admission(person_id: str, admitted: date, method: str = "21", cost: float = 2710.0) -> Row:
    return {
        "spell_id": f"{person_id}-{admitted}-{method}",
        "person_id": person_id,
        "admission_date": admitted,
        "admission_method": method,
        "cost": cost,
    }


def ae_visit(person_id: str, arrived: date, cost: float = 280.0) -> Row:
    return {
        "attendance_id": f"{person_id}-{arrived}",
        "person_id": person_id,
        "arrival_date": arrived,
        "department_type": "01",
        "cost": cost,
    }


def service(person_id: str, service_type: str, start: date, end: date | None, weekly_cost: float) -> Row:
    return {
        "event_id": f"{person_id}-{service_type}-{start}",
        "person_id": person_id,
        "la_code": "E09000001",
        "event_type": "Service",
        "event_start_date": start,
        "event_end_date": end,
        "service_type": service_type,
        "cost_frequency_unit_type": "Weekly",
        "weekly_cost": weekly_cost,
    }


HOME_CARE = "Long term support: Community"
RESIDENTIAL = "Long term support: Residential care"
NURSING = "Long term support: Nursing care"


def scenario_tables() -> dict[str, pl.LazyFrame]:
    return tables_from_rows(
        {
            "persons": [
                person("frail_90_with_homecare"),
                person("died_in_month_2", date_of_death=date(2025, 5, 15)),
                person("died_without_admission", date_of_death=date(2025, 8, 1)),
                person("died_before_index", date_of_death=date(2025, 3, 31)),
                person("no_contact_at_all"),
                person("already_in_care_home"),
                person("moves_into_nursing_home"),
                person("five_ae_visits"),
                person("three_emergency_admissions"),
                person("admission_on_index_date"),
                person("admission_day_after_horizon"),
            ],
            "apc_spells": [
                admission("frail_90_with_homecare", date(2025, 6, 1), "21", 3000.0),
                admission("frail_90_with_homecare", date(2025, 9, 1), "22", 3000.0),
                admission("frail_90_with_homecare", date(2025, 10, 1), "11", 6685.0),  # elective
                admission("died_in_month_2", date(2025, 5, 1)),
                admission("three_emergency_admissions", date(2025, 5, 1)),
                admission("three_emergency_admissions", date(2025, 7, 1), "2A"),
                admission("three_emergency_admissions", date(2026, 3, 31), "28"),
                admission("admission_on_index_date", INDEX),
                admission("admission_day_after_horizon", date(2025, 3, 31)),  # the day before the index date
                admission("admission_day_after_horizon", date(2026, 4, 1)),
            ],
            "ae_attendances": [
                ae_visit("frail_90_with_homecare", date(2025, 6, 1)),
                ae_visit("died_in_month_2", date(2025, 6, 1)),  # after death: a data error, not counted
                *[ae_visit("five_ae_visits", date(2025, month, 3)) for month in (4, 6, 8, 10, 12)],
            ],
            "asc_events": [
                service("frail_90_with_homecare", HOME_CARE, date(2024, 10, 1), None, 250.0),
                service("already_in_care_home", RESIDENTIAL, date(2023, 1, 1), None, 949.0),
                service("already_in_care_home", NURSING, date(2025, 10, 1), None, 1267.0),
                service("moves_into_nursing_home", RESIDENTIAL, date(2023, 1, 1), date(2024, 1, 1), 949.0),
                service("moves_into_nursing_home", NURSING, date(2026, 3, 4), None, 1267.0),
            ],
        }
    )


def outcomes_by_person(
    tables: dict[str, pl.LazyFrame] | None = None, settings: OutcomeSettings | None = None, index: date = INDEX
) -> dict[str, dict[str, Any]]:
    frame = label_outcomes(tables or scenario_tables(), index, settings or OutcomeSettings()).collect()
    return {row["person_id"]: row for row in frame.to_dicts()}


@pytest.fixture(scope="module")
def outcomes() -> dict[str, dict[str, Any]]:
    return outcomes_by_person()


def test_one_row_per_eligible_person_with_the_outcome_columns() -> None:
    frame = label_outcomes(scenario_tables(), INDEX, OutcomeSettings()).collect()
    assert frame.columns == ["person_id", *LABEL_COLUMNS]
    assert frame["person_id"].to_list() == sorted(frame["person_id"].to_list())
    assert "died_before_index" not in frame["person_id"].to_list()
    assert frame.height == 10
    assert frame.schema["future_cost"] == pl.Float64
    assert frame.schema["care_home_admission"] == pl.Boolean


def test_frail_90_with_homecare(outcomes: dict[str, dict[str, Any]]) -> None:
    o = outcomes["frail_90_with_homecare"]
    assert o["emergency_admission"] is True
    assert o["unplanned_care"] is True
    assert o["frequent_user"] is False  # 2 emergency admissions, 1 A&E visit
    assert o["care_home_admission"] is False
    # Two emergency spells, one elective, one A&E visit, and home care all year (365 days of £250 a week).
    assert o["future_cost"] == pytest.approx(3000 + 3000 + 6685 + 280 + 250 * 365 / 7)
    assert o["died_in_horizon"] is False
    assert o["follow_up_days"] == 365


def test_died_in_month_2(outcomes: dict[str, dict[str, Any]]) -> None:
    o = outcomes["died_in_month_2"]
    assert o["died_in_horizon"] is True
    assert o["follow_up_days"] == (date(2025, 5, 15) - INDEX).days
    assert o["emergency_admission"] is True
    assert o["future_cost"] == 2710.0  # the A&E visit dated after death does not count
    assert o["frequent_user"] is False


def test_no_contact_at_all(outcomes: dict[str, dict[str, Any]]) -> None:
    o = outcomes["no_contact_at_all"]
    assert o == {
        "person_id": "no_contact_at_all",
        "emergency_admission": False,
        "high_cost": False,
        "frequent_user": False,
        "care_home_admission": False,
        "unplanned_care": False,
        "future_cost": 0.0,
        "died_in_horizon": False,
        "follow_up_days": 365,
    }


def test_already_in_care_home_has_no_care_home_admission_label(outcomes: dict[str, dict[str, Any]]) -> None:
    assert outcomes["already_in_care_home"]["care_home_admission"] is None


def test_moves_into_nursing_home_is_a_new_placement(outcomes: dict[str, dict[str, Any]]) -> None:
    o = outcomes["moves_into_nursing_home"]
    assert o["care_home_admission"] is True
    assert o["future_cost"] == pytest.approx(1267.0 * 28 / 7)  # 4 March to 1 April 2026


def test_five_ae_visits_is_a_frequent_user(outcomes: dict[str, dict[str, Any]]) -> None:
    o = outcomes["five_ae_visits"]
    assert (o["frequent_user"], o["unplanned_care"], o["emergency_admission"]) == (True, True, False)


def test_three_emergency_admissions_is_a_frequent_user(outcomes: dict[str, dict[str, Any]]) -> None:
    assert outcomes["three_emergency_admissions"]["frequent_user"] is True


def test_admission_on_index_date_counts(outcomes: dict[str, dict[str, Any]]) -> None:
    assert outcomes["admission_on_index_date"]["emergency_admission"] is True


def test_admissions_the_day_before_index_and_the_day_after_horizon_do_not_count(
    outcomes: dict[str, dict[str, Any]],
) -> None:
    o = outcomes["admission_day_after_horizon"]
    assert (o["emergency_admission"], o["unplanned_care"], o["future_cost"]) == (False, False, 0.0)


def test_high_cost_is_the_costliest_person_by_default(outcomes: dict[str, dict[str, Any]]) -> None:
    flagged = [p for p, o in outcomes.items() if o["high_cost"]]
    assert flagged == ["already_in_care_home"]  # residential care all year plus nursing care from October


def test_death_counts_as_emergency_option() -> None:
    default = outcomes_by_person()["died_without_admission"]
    assert default["emergency_admission"] is False
    assert default["died_in_horizon"] is True
    assert default["follow_up_days"] == (date(2025, 8, 1) - INDEX).days
    sparra = outcomes_by_person(settings=OutcomeSettings(death_counts_as_emergency=True))
    assert sparra["died_without_admission"]["emergency_admission"] is True
    assert sparra["no_contact_at_all"]["emergency_admission"] is False
    # The option changes nothing else.
    assert sparra["died_without_admission"]["unplanned_care"] is False


def costs_tables(costs: list[float]) -> dict[str, pl.LazyFrame]:
    people = [f"p{i:02d}" for i in range(len(costs))]
    return tables_from_rows(
        {
            "persons": [person(p) for p in people],
            "gp_events": [
                {"event_id": p, "person_id": p, "event_date": date(2025, 5, 1), "event_type": "telephone", "cost": c}
                for p, c in zip(people, costs, strict=True)
            ],
        }
    )


def high_cost_people(costs: list[float], top_fraction: float) -> list[str]:
    settings = OutcomeSettings(high_cost_top_fraction=top_fraction)
    return [p for p, o in outcomes_by_person(costs_tables(costs), settings).items() if o["high_cost"]]


def test_high_cost_takes_the_top_fraction() -> None:
    costs = [float(c) for c in range(1, 21)]
    assert high_cost_people(costs, 0.05) == ["p19"]
    assert high_cost_people(costs, 0.10) == ["p18", "p19"]


def test_high_cost_includes_ties_at_the_threshold_but_never_zero_cost() -> None:
    assert high_cost_people([0.0] * 17 + [5.0, 5.0, 5.0], 0.05) == ["p17", "p18", "p19"]
    assert high_cost_people([0.0] * 19 + [1.0], 0.5) == ["p19"]
    assert high_cost_people([0.0] * 5, 0.05) == []


def test_high_cost_flags_at_least_one_person_in_a_tiny_population() -> None:
    assert high_cost_people([1.0, 2.0, 3.0], 0.05) == ["p02"]


def test_horizon_is_in_calendar_months_clamped_to_month_end() -> None:
    index = date(2025, 8, 31)
    settings = OutcomeSettings(horizon_months=6)
    assert horizon_end(index, settings) == date(2026, 2, 28)
    tables = tables_from_rows(
        {
            "persons": [person("last_day_in"), person("first_day_out")],
            "apc_spells": [admission("last_day_in", date(2026, 2, 27)), admission("first_day_out", date(2026, 2, 28))],
        }
    )
    outcomes = outcomes_by_person(tables, settings, index)
    assert outcomes["last_day_in"]["emergency_admission"] is True
    assert outcomes["first_day_out"]["emergency_admission"] is False
    assert outcomes["last_day_in"]["follow_up_days"] == 181


def test_missing_tables_give_negative_outcomes() -> None:
    outcomes = outcomes_by_person(tables_from_rows({"persons": [person("alone")]}))
    assert outcomes["alone"]["unplanned_care"] is False
    assert outcomes["alone"]["future_cost"] == 0.0
