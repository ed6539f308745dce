"""Did case management work? The statistics of the evaluation, on the contract tables as of a date.

    result = evaluate_impact(tables, plan, data_end)

`cohort` builds who was taken on when, the risk set of each start date (the people who could have been taken
on that day, described by their record then) and the outcome windows; `estimate` matches, checks balance and
estimates the effect three ways (naive before-and-after, matched difference-in-differences, randomised at the
margin) with seeded bootstrap intervals; `power` is there too. Nothing here reads files or the warehouse: the
pipeline (pipelines/evaluate.py) passes the tables in, a benchmark passes the generator's frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import polars as pl

from data_contracts.evaluation_plan import EvaluationPlan
from features.inputs import Tables
from models.impact.cohort import evaluable, risk_set, starts, windows
from models.impact.estimate import Estimate, balance, match, matched_did, naive_before_after, randomised, set_sums

__all__ = ["ImpactResult", "evaluate_impact"]


@dataclass
class ImpactResult:
    plan: EvaluationPlan
    data_end: date
    taken_on: int  # people taken on (first starts)
    evaluable: int  # of them, with a whole follow-up before data_end
    matched: int  # of those, with at least one comparison
    estimates: list[Estimate]
    balance: pl.DataFrame
    sets: pl.DataFrame  # matched set members (set_id, person_id, index_date, treated, weight, distance)
    draws: int = 0
    notes: list[str] = field(default_factory=list)

    def estimate(self, method: str, outcome: str | None = None) -> Estimate | None:
        outcome = outcome or self.plan.primary_outcome
        return next((e for e in self.estimates if e.method == method and e.outcome == outcome), None)


def evaluate_impact(tables: Tables, plan: EvaluationPlan, data_end: date) -> ImpactResult:
    """Every estimate the plan asks for, for the people taken on with a whole follow-up before data_end.

    `tables` holds the contract tables and, where a team randomised at the margin, `list_draws` (person_id,
    team_id, draw_date, list_rank, offered)."""
    first = starts(tables)
    ready = evaluable(first, data_end, plan)
    notes: list[str] = []
    if first.height > ready.height:
        notes.append(f"{first.height - ready.height} people taken on have no whole follow-up yet (not counted)")
    days = sorted(set(ready["start_date"].to_list()))
    sets_frames = [risk_set(tables, day, plan) for day in days]
    risk_sets = pl.concat(sets_frames) if sets_frames else pl.DataFrame()
    estimates: list[Estimate] = []
    sets = match(risk_sets, plan) if risk_sets.height else pl.DataFrame()
    table = balance(risk_sets, sets, plan.matching.balance_threshold) if sets.height else pl.DataFrame()
    matched = int(sets["treated"].sum()) if sets.height else 0
    if ready.height > matched:
        notes.append(f"{ready.height - matched} people taken on had no comparison within the caliper (left out)")
    if sets.height:
        outcomes = windows(tables, sets, plan, plan.outcomes)
        comparisons = sets.filter(~pl.col("treated")).height
        for outcome in plan.outcomes:
            sums = set_sums(sets, outcomes, outcome)
            if "naive_before_after" in plan.comparisons and outcome == plan.primary_outcome:
                estimates.append(naive_before_after(sums, outcome, plan))
            if "matched_did" in plan.comparisons:
                estimates.append(matched_did(sums, outcome, plan, comparisons))
    n_draws = 0
    drawn = tables.get("list_draws")
    if "randomised_margin" in plan.comparisons and drawn is not None:
        first_draws = evaluable(
            drawn.sort("draw_date").group_by("person_id", maintain_order=True).first().collect(),
            data_end,
            plan,
            "draw_date",
        ).select("person_id", "team_id", pl.col("draw_date").alias("index_date"), "offered")
        n_draws = first_draws.height
        if n_draws:
            outcomes = windows(tables, first_draws, plan, [plan.primary_outcome])
            found = randomised(first_draws, outcomes, first, plan.primary_outcome, plan)
            if found is not None:
                estimates.append(found)
    return ImpactResult(plan, data_end, first.height, ready.height, matched, estimates, table, sets, n_draws, notes)
