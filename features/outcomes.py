"""Outcome labels: what happened to each eligible person in the horizon after an index date.

The outcomes, who is at risk of each and the definitions' parameters are declared once in
`data_contracts/outcomes.py` (`OUTCOMES`, `OutcomeSettings`); this module computes them on the published tables.

The horizon is [index_date, index_date + horizon_months), in calendar months: the day of the month is kept and
clamped to the end of a shorter month (31 August + 6 months = 28/29 February), as relativedelta and Polars
`dt.offset_by("6mo")` do.

People: those eligible at index_date (`features.build.eligible_people`: born, alive and not opted out at
index_date). Every one of them keeps a row.

Deaths: a person who dies in the horizon keeps the row. Only events dated on or before the date of death count
(a later event is a data error); `died_in_horizon` flags them and `follow_up_days` is the days observed, from
index_date to the date of death (or to the horizon end for everyone else). With
`OutcomeSettings.death_counts_as_emergency` a death in the horizon also counts as an emergency admission, as in
SPARRA (which predicts "emergency admission or death"); otherwise a death without an admission is a negative,
which under-counts need among people who die suddenly.

People who leave: the contracts carry no deregistration or moving-out date, so everyone alive is assumed to be
observed for the whole horizon. Someone who moves away shows no further events and is labelled negative; this
biases outcomes slightly towards "nothing happened" for a mobile minority (registration history would fix it).

Costs: `future_cost` is the total health and social care cost in the horizon: hospital spells admitted in the
horizon (whole spell cost, even if discharged after it), A&E, outpatient, GP, community and prescription costs
dated in the horizon (a missing cost counts 0), and social care by the CLD rule (weekly cost times the weeks of
the service inside the horizon, up to its end date or death, one-off costs once when they start in the horizon).
"""

from __future__ import annotations

from datetime import date

import polars as pl

from data_contracts.dates import add_months, day_number
from data_contracts.outcomes import NOT_IN_CARE_HOME, OUTCOME_NAMES, OUTCOMES, OutcomeSettings
from data_contracts.tables import COSTED_EVENT_DATES
from features.build import eligible_people
from features.costs import social_care_cost_in_period, social_care_services
from features.hospital import EMERGENCY_ADMISSION_METHODS
from features.inputs import Tables, contract_table, day_of, exact_sum
from features.social_care import CARE_HOME_GROUPS, service_group

# Beside each declared outcome's label, what the horizon held.
HORIZON_COLUMNS: tuple[str, ...] = ("future_cost", "died_in_horizon", "follow_up_days")
LABEL_COLUMNS: tuple[str, ...] = (*OUTCOME_NAMES, *HORIZON_COLUMNS)


def horizon_end(index_date: date, settings: OutcomeSettings) -> date:
    """First day after the horizon."""
    return add_months(index_date, settings.horizon_months)


def _events_in_horizon(tables: Tables, table: str, deaths: pl.LazyFrame, start: int, end: int) -> pl.LazyFrame:
    """Rows of an activity table dated in [start, end) and not after the person's death, eligible people only."""
    day = day_of(COSTED_EVENT_DATES[table])
    return (
        contract_table(tables, table)
        .filter((day >= start) & (day < end))
        .join(deaths, on="person_id", how="inner")
        .filter(pl.col("death_day").is_null() | (day <= pl.col("death_day")))
    )


def label_outcomes(tables: Tables, index_date: date, settings: OutcomeSettings) -> pl.LazyFrame:
    """One row per person eligible at index_date, sorted by person_id, with the columns of `LABEL_COLUMNS`
    (null for a person not at risk of an outcome, see `Outcome.at_risk`):

    - emergency_admission: at least one emergency admission (admission method group "emergency") admitted in the
      horizon; with `death_counts_as_emergency`, or a death in the horizon.
    - high_cost: future_cost in the top `high_cost_top_fraction` of the eligible people: future_cost >= the
      (1 - fraction) quantile (interpolation "higher", so the threshold is a real person's cost and the costliest
      person always qualifies) and future_cost > 0. Ties at the threshold are all included, so the share can
      exceed the fraction; at least one person is flagged whenever anyone has a cost (nobody when nobody has).
    - frequent_user: at least `frequent_emergency_admissions` emergency admissions or at least
      `frequent_ae_attendances` A&E attendances in the horizon.
    - care_home_admission: a new long-term residential or nursing care service (CLD service type group
      residential or nursing) started in the horizon; null for people already in one at index_date.
    - unplanned_care: at least one A&E attendance or emergency admission in the horizon.
    - future_cost (GBP), died_in_horizon, follow_up_days.
    """
    start = day_number(index_date)
    end = day_number(horizon_end(index_date, settings))
    persons = contract_table(tables, "persons").select("person_id", day_of("date_of_death").alias("death_day"))
    people = eligible_people(tables, index_date).join(persons, on="person_id", how="left")
    deaths = people.select("person_id", "death_day")

    spells = _events_in_horizon(tables, "apc_spells", deaths, start, end)
    emergency = spells.group_by("person_id").agg(
        pl.col("admission_method").is_in(EMERGENCY_ADMISSION_METHODS).sum().cast(pl.Int64).alias("emergencies")
    )
    ae = (
        _events_in_horizon(tables, "ae_attendances", deaths, start, end)
        .group_by("person_id")
        .agg(pl.len().alias("ae_visits"))
    )
    costs = pl.concat(
        [
            _events_in_horizon(tables, table, deaths, start, end).select(
                "person_id", pl.col("cost").fill_null(0.0).cast(pl.Float64)
            )
            for table in COSTED_EVENT_DATES
        ]
    )

    services = (
        social_care_services(tables)
        .join(deaths, on="person_id", how="inner")
        .with_columns(service_group().alias("group"))
    )
    # A service stops at its end date, at death, or (still running) after the horizon.
    service_end = pl.min_horizontal(pl.col("end_day").fill_null(end), pl.col("death_day").fill_null(end), pl.lit(end))
    social_care_costs = services.select(
        "person_id", social_care_cost_in_period(start, end, service_end).fill_null(0.0).alias("cost")
    )
    in_care_home = pl.col("group").is_in(CARE_HOME_GROUPS)
    placements = services.group_by("person_id").agg(
        (in_care_home & (pl.col("start_day") < start) & (pl.col("end_day").is_null() | (pl.col("end_day") >= start)))
        .any()
        .alias("in_care_home_at_index"),
        (
            in_care_home
            & (pl.col("start_day") >= start)
            & (pl.col("start_day") < end)
            & (pl.col("death_day").is_null() | (pl.col("start_day") <= pl.col("death_day")))
        )
        .any()
        .alias("new_placement"),
    )
    future_cost = (
        pl.concat([costs, social_care_costs]).group_by("person_id").agg(exact_sum(pl.col("cost")).alias("future_cost"))
    )

    died = (pl.col("death_day") >= start) & (pl.col("death_day") < end)
    emergencies = pl.col("emergencies").fill_null(0)
    ae_visits = pl.col("ae_visits").fill_null(0)
    cost = pl.col("future_cost").fill_null(0.0)
    threshold = cost.quantile(1 - settings.high_cost_top_fraction, interpolation="higher")
    emergency_admission = emergencies >= 1
    if settings.death_counts_as_emergency:
        emergency_admission = emergency_admission | died.fill_null(False)
    happened = {
        "emergency_admission": emergency_admission,
        "high_cost": (cost >= threshold) & (cost > 0),
        "frequent_user": (emergencies >= settings.frequent_emergency_admissions)
        | (ae_visits >= settings.frequent_ae_attendances),
        "care_home_admission": pl.col("new_placement").fill_null(False),
        "unplanned_care": (emergencies >= 1) | (ae_visits >= 1),
    }
    in_care_home = pl.col("in_care_home_at_index").fill_null(False)
    labels = [
        (
            pl.when(in_care_home).then(None).otherwise(happened[o.name])
            if o.at_risk == NOT_IN_CARE_HOME
            else happened[o.name]
        ).alias(o.name)
        for o in OUTCOMES
    ]
    return (
        people.join(emergency, on="person_id", how="left")
        .join(ae, on="person_id", how="left")
        .join(future_cost, on="person_id", how="left")
        .join(placements, on="person_id", how="left")
        .select(
            "person_id",
            *labels,
            cost.alias("future_cost"),
            died.fill_null(False).alias("died_in_horizon"),
            (pl.min_horizontal(pl.col("death_day").fill_null(end), pl.lit(end)) - start)
            .cast(pl.Int64)
            .alias("follow_up_days"),
        )
        .sort("person_id")
    )
