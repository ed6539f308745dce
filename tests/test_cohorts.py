"""Tiers, capacity-cut team lists and week-on-week changes on named scenario people."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from models.cohorts import age_band, assign_tiers, rising_risk, team_lists, unassigned_count, week_on_week

PYRAMID = {"very high": 0.005, "high": 0.05, "moderate": 0.20, "low": 1.0}


def _population(n: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "person_id": [f"p{i:05d}" for i in range(n)],
            "risk": [1.0 - i / n for i in range(n)],
            "gp_practice": [f"P{i % 3}" for i in range(n)],
        }
    )


def test_tiers_follow_the_pyramid_shares() -> None:
    tiered = assign_tiers(_population(1000), "risk", PYRAMID)
    counts = dict(tiered.group_by("tier").len().iter_rows())
    assert counts == {"very high": 5, "high": 45, "moderate": 150, "low": 800}
    assert (
        tiered.filter(pl.col("tier") == "very high")["risk"].min()
        > tiered.filter(pl.col("tier") == "high")["risk"].max()
    )


def test_tiers_must_cover_the_population() -> None:
    with pytest.raises(ValueError, match="whole population"):
        assign_tiers(_population(10), "risk", {"top": 0.1})


def test_ties_are_broken_deterministically() -> None:
    tied = pl.DataFrame({"person_id": ["b", "a", "c"], "risk": [0.5, 0.5, 0.5]})
    assert assign_tiers(tied, "risk", PYRAMID)["person_id"].to_list() == ["a", "b", "c"]


def test_team_list_never_exceeds_capacity_and_is_ordered_by_risk() -> None:
    teams = pl.DataFrame(
        {"gp_practice": ["P0", "P1"], "team_id": ["T1", "T1"], "team_name": ["North", "North"], "capacity": [7, 7]}
    )
    scored = _population(300)
    lists = team_lists(scored, teams, "risk")
    assert lists.height == 7
    assert lists["rank"].to_list() == list(range(1, 8))
    assert lists["risk"].is_sorted(descending=True)
    assert set(lists["gp_practice"]) <= {"P0", "P1"}
    assert unassigned_count(scored, teams) == 100  # practice P2 has no team


def test_week_on_week_change_categories_on_scenario_people() -> None:
    previous = pl.DataFrame(
        {
            "team_id": ["T1"] * 6,
            "person_id": ["steady_sam", "rising_rita", "falling_fred", "died_dora", "opted_out_olga", "moved_mo"],
            "rank": [1, 2, 3, 4, 5, 6],
            "risk": [0.50, 0.30, 0.40, 0.45, 0.35, 0.33],
        }
    )
    current = pl.DataFrame(
        {
            "team_id": ["T1"] * 4,
            "person_id": ["rising_rita", "steady_sam", "falling_fred", "new_nina"],
            "rank": [1, 2, 3, 4],
            "risk": [0.55, 0.505, 0.30, 0.29],
        }
    )
    status = pl.DataFrame(
        {
            "person_id": ["died_dora", "opted_out_olga", "moved_mo", "quiet_quentin"],
            "died": [True, False, False, False],
            "opted_out": [False, True, False, False],
            "team_id_now": [None, None, "T2", "T1"],
        }
    )
    marked, leavers = week_on_week(current, previous, status, "risk")
    change = dict(marked.select("person_id", "change").iter_rows())
    assert change == {"rising_rita": "rising", "steady_sam": "steady", "falling_fred": "falling", "new_nina": "new"}
    reasons = leavers.select("person_id", "reason").to_dicts()
    assert {"person_id": "died_dora", "reason": "died"} in reasons
    assert {"person_id": "moved_mo", "reason": "moved team"} in reasons
    # opted-out people may be counted but never named
    assert {"person_id": None, "reason": "opted out"} in reasons
    assert "opted_out_olga" not in leavers["person_id"].to_list()


def test_first_week_everyone_is_new() -> None:
    current = pl.DataFrame({"team_id": ["T1"], "person_id": ["a"], "rank": [1], "risk": [0.2]})
    marked, leavers = week_on_week(current, None, pl.DataFrame(), "risk")
    assert marked["change"].to_list() == ["new"] and leavers.height == 0


def test_age_bands() -> None:
    bands = (
        pl.DataFrame({"age": [0, 9, 10, 64, 89, 90, 104]})
        .select(age_band(pl.col("age")).alias("band"))["band"]
        .to_list()
    )
    assert bands == ["0-9", "0-9", "10-19", "60-69", "80-89", "90+", "90+"]


def test_a_leaver_whose_id_was_anonymised_after_opting_out_is_counted_as_opted_out() -> None:
    # After an opt-out, ingest sets the person's id on past lists to null (see pipelines.warehouse.erase_people).
    previous = pl.DataFrame(
        {"team_id": ["T1", "T1"], "person_id": ["steady_sam", None], "rank": [1, 2], "risk": [0.5, 0.4]},
        schema={"team_id": pl.String, "person_id": pl.String, "rank": pl.Int64, "risk": pl.Float64},
    )
    current = pl.DataFrame({"team_id": ["T1"], "person_id": ["steady_sam"], "rank": [1], "risk": [0.5]})
    status = pl.DataFrame({"person_id": ["steady_sam"], "died": [False], "opted_out": [False], "team_id_now": ["T1"]})
    _, leavers = week_on_week(current, previous, status, "risk")
    assert leavers.select("person_id", "reason").to_dicts() == [{"person_id": None, "reason": "opted out"}]


def test_rising_risk_keeps_unlisted_people_whose_risk_rose_most() -> None:
    now = pl.DataFrame(
        {
            "person_id": ["listed", "jumped", "crept", "steady", "new_here", "other_team"],
            "gp_practice": ["P1", "P1", "P1", "P1", "P1", "P2"],
            "risk_x": [0.60, 0.30, 0.125, 0.20, 0.40, 0.50],
            "tier": ["very high", "high", "moderate", "moderate", "high", "high"],
            "age": [80, 70, 65, 50, 40, 75],
            "sex": ["2", "1", "2", "1", "2", "1"],
        }
    )
    then = pl.DataFrame(
        {
            "person_id": ["listed", "jumped", "crept", "steady", "other_team"],
            "risk": [0.10, 0.05, 0.10, 0.195, 0.10],
            "tier": ["moderate", "low", "moderate", "moderate", "moderate"],
            "as_of": [date(2026, 10, 5)] * 5,
        }
    )
    teams = pl.DataFrame({"gp_practice": ["P1", "P2"], "team_id": ["A", "B"]})
    listed = pl.DataFrame({"team_id": ["A"], "person_id": ["listed"]})
    view = rising_risk(now, then, listed, teams, "risk_x", min_rise=0.02, per_team=5)
    # On the list already, no earlier score, or a rise under the threshold: not in the view.
    assert view.select("team_id", "person_id", "rising_rank").rows() == [
        ("A", "jumped", 1),
        ("A", "crept", 2),
        ("B", "other_team", 1),
    ]
    assert view.filter(pl.col("person_id") == "jumped").select("earlier_tier", "tier").row(0) == ("low", "high")
    top_one = rising_risk(now, then, listed, teams, "risk_x", min_rise=0.02, per_team=1)
    assert top_one["person_id"].to_list() == ["jumped", "other_team"]
    assert rising_risk(now, None, listed, teams, "risk_x", 0.02, 5).is_empty()
