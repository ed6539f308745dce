"""Did case management work? Tiny named scenarios for the evaluation's statistics, and the synthetic service."""

from __future__ import annotations

import dataclasses
from datetime import date

import numpy as np
import polars as pl
import pytest

from data_contracts.evaluation_plan import PlanError, load_plan, plan_from_dict, plan_hash
from data_contracts.outcomes import OutcomeSettings
from data_contracts.settings import CaseManagementSettings, SynthSettings
from data_contracts.synthetic import published_tables, simulate
from data_contracts.synthetic.case_management import CaseManagementService
from features.case_finding import case_finding_inputs
from features.inputs import tables_from_rows
from models.impact import evaluate_impact
from models.impact.cohort import risk_set, starts
from models.impact.estimate import match

START = date(2025, 1, 1)
DATA_END = date(2026, 6, 1)


def plan(**matching: object):
    base, _ = load_plan()
    return dataclasses.replace(
        base,
        matching=dataclasses.replace(base.matching, **matching),
        analysis=dataclasses.replace(base.analysis, bootstrap_replicates=50),
    )


def person(pid: str, sex: str = "2", birth_year: int = 1945, practice: str = "P1") -> dict[str, object]:
    return {"person_id": pid, "birth_year": birth_year, "birth_month": 1, "sex": sex, "gp_practice": practice}


def emergency(pid: str, day: date, n: int = 1) -> list[dict[str, object]]:
    return [
        {
            "spell_id": f"{pid}-{day.isoformat()}-{i}",
            "person_id": pid,
            "admission_date": day,
            "discharge_date": day,
            "admission_method": "21",
        }
        for i in range(n)
    ]


def taken_on(pid: str, day: date = START) -> dict[str, object]:
    return {
        "person_id": pid,
        "team_id": "T1",
        "decision": "taken_on",
        "discussed_date": day,
        "decision_date": day,
        "case_management_start": day,
    }


TEAMS = [{"gp_practice": "P1", "team_id": "T1", "team_name": "Team 1", "capacity": 5}]


def peak_scenario() -> dict[str, pl.LazyFrame]:
    """Ann is taken on at a peak (three emergency admissions in the autumn), Bea had the same peak and was not
    taken on; each has one admission the next year, whatever the service did: no effect."""
    spells = []
    for pid in ("ann", "bea"):
        spells += emergency(pid, date(2024, 10, 15), 2) + emergency(pid, date(2024, 11, 20))
        spells += emergency(pid, date(2025, 6, 1))
    return tables_from_rows(
        {
            "persons": [person("ann"), person("bea")],
            "teams": TEAMS,
            "apc_spells": spells,
            "caseload": [taken_on("ann")],
        }
    )


def test_person_taken_on_at_a_peak_regresses_naive_shows_a_fall_matched_did_none() -> None:
    result = evaluate_impact(peak_scenario(), plan(), DATA_END)
    naive = result.estimate("naive_before_after")
    did = result.estimate("matched_did")
    assert naive is not None and did is not None
    # Three admissions in the 366 days before, one in the 365 after: "-67%" (rates per year at risk).
    assert naive.estimate == pytest.approx((1 / 365) / (3 / 366) - 1)
    assert "regression to the mean" in naive.note
    assert did.estimate == pytest.approx(0.0, abs=1e-9)  # Bea regressed just as much
    assert result.matched == 1 and did.comparisons == 1


def test_matched_pair_is_the_alike_person_eligible_that_day() -> None:
    """Ann is matched to Bea (same team, sex, emergency bands, nearest score), not to Cal (a man), Dee (taken
    on before), Eve (discussed at the MDT a month before) or Fay (older: further in score than Bea)."""
    spells = []
    for pid in ("ann", "bea", "cal", "dee", "eve", "fay"):
        spells += emergency(pid, date(2024, 12, 1))
    rows = {
        "persons": [
            person("ann"),
            person("bea"),
            person("cal", sex="1"),
            person("dee"),
            person("eve"),
            person("fay", birth_year=1925),
        ],
        "teams": TEAMS,
        "apc_spells": spells,
        "caseload": [
            taken_on("ann"),
            taken_on("dee", date(2024, 6, 1)),
            {
                "person_id": "eve",
                "team_id": "T1",
                "decision": "declined",
                "discussed_date": date(2024, 12, 1),
                "decision_date": date(2024, 12, 1),
            },
        ],
    }
    tables = tables_from_rows(rows)
    p = plan(controls_per_person=1, caliper_sd=10.0)
    day_set = risk_set(tables, START, p)
    assert set(day_set["person_id"]) == {"ann", "bea", "cal", "fay"}  # Dee taken on before, Eve discussed
    sets = match(day_set, p)
    assert sets.sort("treated", descending=True)[["person_id", "treated", "weight"]].rows() == [
        ("ann", True, 1.0),
        ("bea", False, 1.0),
    ]
    assert starts(tables)["person_id"].to_list() == ["dee", "ann"]


def test_follow_up_is_strictly_after_the_start() -> None:
    """An admission on the start day itself counts in neither window."""
    rows = {
        "persons": [person("ann"), person("bea")],
        "teams": TEAMS,
        "apc_spells": [
            *emergency("ann", date(2024, 12, 1)),
            *emergency("bea", date(2024, 12, 1)),
            *emergency("ann", START),
        ],
        "caseload": [taken_on("ann")],
    }
    result = evaluate_impact(tables_from_rows(rows), plan(), DATA_END)
    did = result.estimate("matched_did")
    assert did is not None and did.extra["rate_taken_on_after"] == 0.0


def test_people_without_a_whole_follow_up_are_not_counted() -> None:
    result = evaluate_impact(peak_scenario(), plan(), date(2025, 12, 1))
    assert result.taken_on == 1 and result.evaluable == 0 and not result.estimates
    assert "no whole follow-up" in result.notes[0]


def test_plan_is_validated_and_its_hash_ignores_layout() -> None:
    base, text = load_plan()
    assert plan_hash(base) == plan_hash(plan_from_dict(__import__("tomllib").loads(text + "\n# a comment\n"), "x"))
    changed = dataclasses.replace(base, follow_up_months=6)
    assert plan_hash(changed) != plan_hash(base)
    with pytest.raises(PlanError, match="unknown 'readmissions'"):
        plan_from_dict({"id": "p", "title": "t", "question": "q", "outcomes": ["readmissions"]}, "evaluation.toml")
    with pytest.raises(PlanError, match=r"evaluation\.toml: follow_up_months"):
        plan_from_dict({"id": "p", "title": "t", "question": "q", "follow_up_months": 0}, "evaluation.toml")


# ------------------------------------------------------------------------------------------ the synthetic service

SMALL = SynthSettings(people=3000, history_years=3, truth_replicates=1)


def test_service_is_off_by_default() -> None:
    sim = simulate(SMALL, OutcomeSettings(), seed=5)
    assert sim.service is None and sim.frames["caseload"].height == 0


def test_mdt_ranks_by_the_score_the_evaluation_recomputes_from_the_record(monkeypatch: pytest.MonkeyPatch) -> None:
    """The score each meeting ranked people by equals the case-finding score computed from the published
    tables at that date, for everyone: matching can reproduce the selection exactly."""
    seen: list[tuple[int, np.ndarray]] = []
    original = CaseManagementService.scores

    def spy(self: CaseManagementService, period: int, start_day: int) -> dict[str, np.ndarray]:
        values = original(self, period, start_day)
        seen.append((start_day, values["score"]))
        return values

    monkeypatch.setattr(CaseManagementService, "scores", spy)
    settings = dataclasses.replace(SMALL, case_management=CaseManagementSettings(enabled=True))
    sim = simulate(settings, OutcomeSettings(), seed=5)
    tables = {name: frame.lazy() for name, frame in published_tables(sim).items()}
    day, generated = seen[3]
    recomputed = case_finding_inputs(tables, pl.Series([day]).cast(pl.Date)[0]).collect()
    ids = pl.DataFrame({"person_id": sim.population.person_ids, "generated": generated})
    joined = recomputed.join(ids, on="person_id")
    assert joined.height > 2500
    assert (joined["score"] - joined["generated"]).abs().max() < 1e-12
    decisions = tables["caseload"].collect()
    assert set(decisions["decision"]) == {"taken_on", "not_appropriate", "declined"}


def test_planted_effect_multiplies_the_hazard_of_the_people_managed_then() -> None:
    """While case-managed (from the start for duration_months) a person's emergency-admission rate is multiplied
    by 1 - effect; everyone else's, and everyone's after the end, by 1."""
    settings = dataclasses.replace(SMALL, case_management=CaseManagementSettings(enabled=True, effect=0.25))
    sim = simulate(settings, OutcomeSettings(), seed=9)
    service = sim.service
    assert service is not None
    first = starts({name: frame.lazy() for name, frame in published_tables(sim).items()})
    assert first.height > 10
    day = int(pl.Series([date(2025, 3, 1)]).cast(pl.Int32)[0])
    no_meeting = service.last_period + 1
    ratio = service.rate_ratio(no_meeting, day, np.ones(sim.population.size, bool))
    assert ratio is not None
    managed = service.managed_until >= day
    assert managed.sum() > 10 and set(ratio[managed]) == {np.float32(0.75)} and set(ratio[~managed]) == {1.0}
    everyone = np.ones(sim.population.size, bool)
    assert service.rate_ratio(no_meeting, int(service.managed_until.max()) + 1, everyone) is None
    record = service.record()
    assert record["true_effect"]["relative_change"] == -0.25


def test_a_person_taken_on_after_an_earlier_discussion_is_still_evaluated() -> None:
    """Ann was put to 'review later' a month before she was taken on: her history keeps her out of the
    comparisons, not out of the people taken on."""
    tables = dict(peak_scenario())
    review = {
        "person_id": "ann",
        "team_id": "T1",
        "decision": "review_later",
        "discussed_date": date(2024, 12, 1),
        "decision_date": date(2024, 12, 1),
    }
    tables["caseload"] = tables_from_rows({"caseload": [review, taken_on("ann")]})["caseload"]
    day_set = risk_set(tables, START, plan())
    assert day_set.filter(pl.col("taken_on"))["person_id"].to_list() == ["ann"]
    assert evaluate_impact(tables, plan(), DATA_END).matched == 1


def test_matching_on_riskstrats_stored_score_when_the_plan_says_so() -> None:
    """Bea's record is Ann's, but the stored weekly scores put Cal next to Ann: the plan's score decides."""
    spells = []
    for pid in ("ann", "bea", "cal"):
        spells += emergency(pid, date(2024, 11, 20))
    tables = tables_from_rows(
        {
            "persons": [person("ann"), person("bea"), person("cal", birth_year=1970)],
            "teams": TEAMS,
            "apc_spells": spells,
            "caseload": [taken_on("ann")],
        }
    )
    stored = pl.LazyFrame(
        {
            "person_id": ["ann", "bea", "cal", "ann"],
            "as_of": [date(2024, 12, 30), date(2024, 12, 30), date(2024, 12, 30), date(2024, 6, 1)],
            "outcome": ["emergency_admission"] * 4,
            "risk": [0.40, 0.10, 0.38, 0.05],
        }
    )
    tables["risk_scores"] = stored
    by_record = match(risk_set(tables, START, plan(controls_per_person=1, caliper_sd=10.0)), plan())
    stored_plan = plan(controls_per_person=1, caliper_sd=10.0, score="risk_scores")
    day_set = risk_set(tables, START, stored_plan)
    assert dict(zip(day_set["person_id"], day_set["score"], strict=True)) == {"ann": 0.40, "bea": 0.10, "cal": 0.38}
    by_stored = match(day_set, stored_plan)
    assert by_record.filter(~pl.col("treated"))["person_id"].to_list() == ["bea"]
    assert by_stored.filter(~pl.col("treated"))["person_id"].to_list() == ["cal"]
