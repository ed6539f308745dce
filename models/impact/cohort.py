"""Who was taken on when, who could have been taken on instead that day (the risk set), and each person's
outcomes in the windows around a date.

Everything is read from the contract tables (`caseload`, `persons`, `teams`, activity) as of each start date:
the risk set of a date holds the people the team could have taken on that day, described by what their record
showed then (the case-finding score and its terms, age band, sex, team), never by anything later. Windows:
the baseline is [start - baseline months, start), the follow-up (start, start + follow-up months], strictly
after the start.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta

import polars as pl

from data_contracts.dates import add_months
from data_contracts.evaluation_plan import EvaluationPlan
from data_contracts.tables import COSTED_EVENT_DATES
from features.case_finding import TERMS, case_finding_inputs
from features.hospital import EMERGENCY_ADMISSION_METHODS
from features.inputs import Tables, codes_in_group, contract_table, day_of
from models.cohorts import age_band

ADULT_AGE = 18
EMERGENCY_3M_CAP, EMERGENCY_12M_CAP = 2, 4  # bands: 0, 1, 2+ and 0 .. 4+
CARE_HOME_SERVICES = codes_in_group("asc_service_type", "residential", "nursing")
STORED_SCORE_MAX_AGE_DAYS = 35  # a stored weekly score older than this at the start date is not used
COVARIATES: tuple[str, ...] = ("score", *TERMS[:4], "age", "female")
"""What the balance table compares (the score, its count terms, age and sex)."""


def starts(tables: Tables) -> pl.DataFrame:
    """Each person's first case-management start: person_id, team_id, start_date (caseload `taken_on`)."""
    return (
        contract_table(tables, "caseload")
        .filter((pl.col("decision") == "taken_on") & pl.col("case_management_start").is_not_null())
        .sort("case_management_start", "team_id")
        .group_by("person_id", maintain_order=True)
        .first()
        .select("person_id", "team_id", pl.col("case_management_start").alias("start_date"))
        .collect()
        .sort("start_date", "person_id")
    )


def evaluable(first: pl.DataFrame, data_end: date, plan: EvaluationPlan, column: str = "start_date") -> pl.DataFrame:
    """Rows whose whole follow-up lies before data_end (the first day without data)."""
    last = add_months(data_end, -plan.follow_up_months)
    return first.filter(pl.col(column) < last)


def risk_set(tables: Tables, day: date, plan: EvaluationPlan) -> pl.DataFrame:
    """Everyone the teams could have taken on at `day`, with their record then: person_id, team_id, the score and
    its terms, age, age_band, sex, female, the bands matched exactly, and `taken_on` (started that day).

    Could have: an adult alive that day whose practice has a team, never taken on before, not discussed at the
    MDT in the `review_months` before, and not deferred by a draw at the margin in the follow-up months before
    (the people taken on that day are in it whatever their history). With `matching.score = "risk_scores"` the
    score is riskstrat's stored score (the latest of `score_outcome` within 35 days before the day); people
    without one are not in the set."""
    people = case_finding_inputs(tables, day)
    if plan.matching.score == "risk_scores":
        people = people.drop("score").join(_stored_scores(tables, day, plan.matching.score_outcome), on="person_id")
    persons = contract_table(tables, "persons").select("person_id", "date_of_death")
    teams = contract_table(tables, "teams").select("gp_practice", "team_id")
    caseload = contract_table(tables, "caseload")
    before_review = add_months(day, -plan.matching.review_months)
    excluded = (
        caseload.filter(
            ((pl.col("decision") == "taken_on") & (pl.col("case_management_start") < day))
            | ((pl.col("decision_date") >= before_review) & (pl.col("decision_date") < day))
        )
        .select("person_id")
        .unique()
    )
    draws = tables.get("list_draws")
    if draws is not None:
        deferred_since = add_months(day, -plan.follow_up_months)
        deferred = draws.filter(
            ~pl.col("offered") & (pl.col("draw_date") >= deferred_since) & (pl.col("draw_date") < day)
        ).select("person_id")
        excluded = pl.concat([excluded, deferred]).unique()
    taken_today = (
        caseload.filter((pl.col("decision") == "taken_on") & (pl.col("case_management_start") == day))
        .select("person_id", pl.lit(True).alias("taken_on"))
        .unique()
    )
    frame = (
        people.join(persons, on="person_id", how="left")
        .filter(pl.col("date_of_death").is_null() | (pl.col("date_of_death") >= day))
        .filter(pl.col("age") >= ADULT_AGE)
        .join(teams, on="gp_practice", how="inner")
        .join(taken_today, on="person_id", how="left")
        .with_columns(pl.col("taken_on").fill_null(False))
        .join(excluded.with_columns(pl.lit(True).alias("_excluded")), on="person_id", how="left")
        .filter(pl.col("taken_on") | pl.col("_excluded").is_null())
        .drop("_excluded")
        .with_columns(
            age_band(pl.col("age")).alias("age_band"),
            (pl.col("sex") == "2").cast(pl.Float64).alias("female"),
            pl.col("emergency_admissions_3m").clip(upper_bound=EMERGENCY_3M_CAP).alias("emergency_3m_band"),
            pl.col("emergency_admissions_12m").clip(upper_bound=EMERGENCY_12M_CAP).alias("emergency_12m_band"),
            pl.lit(day).alias("index_date"),
        )
        .drop("date_of_death", "gp_practice")
    )
    return frame.collect().sort("person_id")


def _stored_scores(tables: Tables, day: date, outcome: str) -> pl.LazyFrame:
    """person_id, score: each person's latest stored risk of `outcome` from a run before `day` (at most
    STORED_SCORE_MAX_AGE_DAYS old)."""
    stored = tables.get("risk_scores")
    if stored is None:
        return pl.LazyFrame(schema={"person_id": pl.String, "score": pl.Float64})
    since = day - timedelta(days=STORED_SCORE_MAX_AGE_DAYS)
    return (
        stored.filter((pl.col("outcome") == outcome) & (pl.col("as_of") < day) & (pl.col("as_of") >= since))
        .sort("as_of")
        .group_by("person_id")
        .agg(pl.col("risk").last().alias("score"))
    )


def windows(tables: Tables, keys: pl.DataFrame, plan: EvaluationPlan, outcomes: Iterable[str]) -> pl.DataFrame:
    """Per (person_id, index_date) of `keys`: for each outcome `<name>_pre` and `<name>_post`, and the years at
    risk `years_pre` and `years_post` (the follow-up ends at death)."""
    k = keys.select("person_id", "index_date").unique().lazy()
    k = k.with_columns(
        day_of("index_date").alias("t"),
        pl.col("index_date").dt.offset_by(f"-{plan.baseline_months}mo").cast(pl.Int32).alias("pre_start"),
        pl.col("index_date").dt.offset_by(f"{plan.follow_up_months}mo").cast(pl.Int32).alias("post_end"),
    )
    deaths = contract_table(tables, "persons").select("person_id", day_of("date_of_death").alias("death"))
    base = k.join(deaths, on="person_id", how="left").with_columns(
        ((pl.col("t") - pl.col("pre_start")) / 365.25).alias("years_pre"),
        (
            (pl.min_horizontal("post_end", pl.col("death").fill_null(pl.col("post_end"))) - pl.col("t")).clip(
                lower_bound=0
            )
            / 365.25
        ).alias("years_post"),
    )

    def windowed(events: pl.LazyFrame, value: pl.Expr, name: str) -> pl.LazyFrame:
        joined = k.join(events.select("person_id", pl.col("_day"), value.alias("_value")), on="person_id")
        pre = (pl.col("_day") >= pl.col("pre_start")) & (pl.col("_day") < pl.col("t"))
        post = (pl.col("_day") > pl.col("t")) & (pl.col("_day") <= pl.col("post_end"))
        return joined.group_by("person_id", "index_date").agg(
            pl.col("_value").filter(pre).sum().alias(f"{name}_pre"),
            pl.col("_value").filter(post).sum().alias(f"{name}_post"),
        )

    spells = contract_table(tables, "apc_spells").with_columns(day_of("admission_date").alias("_day"))
    sources = {
        "emergency_admissions": lambda: windowed(
            spells.filter(pl.col("admission_method").is_in(EMERGENCY_ADMISSION_METHODS)), pl.lit(1.0), "x"
        ),
        "ae_attendances": lambda: windowed(
            contract_table(tables, "ae_attendances").with_columns(day_of("arrival_date").alias("_day")),
            pl.lit(1.0),
            "x",
        ),
        "bed_days": lambda: windowed(
            spells,
            (day_of("discharge_date") - day_of("admission_date")).fill_null(0).cast(pl.Float64),
            "x",
        ),
        "total_cost": lambda: windowed(
            pl.concat(
                [
                    contract_table(tables, table).select("person_id", day_of(column).alias("_day"), "cost")
                    for table, column in COSTED_EVENT_DATES.items()
                ]
            ),
            pl.col("cost").fill_null(0.0),
            "x",
        ),
        "care_home_admission": lambda: windowed(
            contract_table(tables, "asc_events")
            .filter((pl.col("event_type") == "Service") & pl.col("service_type").is_in(CARE_HOME_SERVICES))
            .with_columns(day_of("event_start_date").alias("_day")),
            pl.lit(1.0),
            "x",
        ),
        "death": lambda: windowed(
            contract_table(tables, "persons")
            .filter(pl.col("date_of_death").is_not_null())
            .with_columns(day_of("date_of_death").alias("_day")),
            pl.lit(1.0),
            "x",
        ),
    }
    out = base
    for name in outcomes:
        part = sources[name]().rename({"x_pre": f"{name}_pre", "x_post": f"{name}_post"})
        out = out.join(part, on=["person_id", "index_date"], how="left").with_columns(
            pl.col(f"{name}_pre").fill_null(0.0), pl.col(f"{name}_post").fill_null(0.0)
        )
    return out.drop("t", "pre_start", "post_end", "death").collect()
