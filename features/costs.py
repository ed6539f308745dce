"""Costs: the adult social care costing rule shared by features and outcomes, and the total cost feature.

Each activity table's 12-month cost is computed in the same pass as its counts (see hospital.py and friends);
this module holds what spans tables.
"""

from __future__ import annotations

import polars as pl

from features.inputs import Tables, codes_in_group, contract_table, day_of

DAYS_PER_WEEK = 7

ONE_OFF_FREQUENCIES = codes_in_group("asc_cost_frequency", "once")

SETTING_COST_COLUMNS: tuple[str, ...] = (
    "cost_hospital_12m",
    "cost_ae_12m",
    "cost_outpatient_12m",
    "cost_gp_12m",
    "cost_community_12m",
    "cost_prescribing_12m",
    "cost_social_care_12m",
)


def social_care_services(tables: Tables) -> pl.LazyFrame:
    """Adult social care Service events with day numbers: start_day, end_day (null = ongoing), weekly_cost,
    one_off (a one-off cost: `weekly_cost` holds the whole cost)."""
    return (
        contract_table(tables, "asc_events")
        .filter(pl.col("event_type") == "Service")
        .with_columns(
            day_of("event_start_date").alias("start_day"),
            day_of("event_end_date").alias("end_day"),
            pl.col("cost_frequency_unit_type").is_in(ONE_OFF_FREQUENCIES).fill_null(False).alias("one_off"),
        )
    )


def social_care_cost_in_period(period_start: int, period_end: int, service_end: pl.Expr) -> pl.Expr:
    """Cost of a social care service row within the days [period_start, period_end) by the CLD rule: weekly cost
    times the weeks of [start_day, service_end) inside the period; a one-off cost counts once, when it starts
    inside the period. `service_end` is the day the service stopped (exclusive), never null."""
    start = pl.col("start_day")
    overlap_days = pl.min_horizontal(service_end, pl.lit(period_end)) - pl.max_horizontal(start, pl.lit(period_start))
    recurring = pl.col("weekly_cost") * overlap_days.clip(lower_bound=0) / DAYS_PER_WEEK
    once = pl.when((start >= period_start) & (start < period_end)).then(pl.col("weekly_cost")).otherwise(0.0)
    return pl.when(pl.col("one_off")).then(once).otherwise(recurring)


def cost_total_12m() -> pl.Expr:
    """Sum of the setting costs in the last 12 months (each already 0 when there is no activity)."""
    return pl.sum_horizontal([pl.col(c) for c in SETTING_COST_COLUMNS]).alias("cost_total_12m")
