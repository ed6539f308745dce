"""Adult social care features from the Client Level Data (CLD) events.

As at as_of a service that started before as_of is current unless it ended before as_of: a later end date
must not be visible, so it reads as "ongoing".
"""

from __future__ import annotations

from datetime import date

import polars as pl

from data_contracts.dates import day_number
from features.catalogue import ASC_SERVICE_PRIORITY
from features.costs import ONE_OFF_FREQUENCIES, social_care_cost_in_period
from features.inputs import Tables, contract_table, day_of, exact_sum, group_of_code, window_start

CARE_HOME_GROUPS = ("residential", "nursing")
HOURLY_FREQUENCY = "Hourly"
REABLEMENT_COMPONENT = "Reablement"


def service_group() -> pl.Expr:
    """asc_service_type group (nursing, residential, community, reablement, ...); 'unknown' when not coded."""
    return pl.col("service_type").replace_strict(group_of_code("asc_service_type"), default="unknown")


def social_care(tables: Tables, as_of: date) -> pl.LazyFrame:
    """asc_current_service, asc_weekly_cost_now, asc_planned_hours_per_week_now, in_residential_or_nursing_care,
    asc_reablement_12m, asc_carer_support_12m, asc_assessments_12m, asc_requests_12m, cost_social_care_12m."""
    as_of_day = day_number(as_of)
    start_12m = window_start(as_of, 12)
    ended_before_as_of = (day_of("event_end_date") < as_of_day).fill_null(False)
    events = (
        contract_table(tables, "asc_events")
        .filter(pl.col("event_start_date") < as_of)
        .select(
            "person_id",
            "event_type",
            day_of("event_start_date").alias("start_day"),
            # The day the event stopped as seen at as_of (exclusive); as_of while it is still running.
            pl.when(ended_before_as_of).then(day_of("event_end_date")).otherwise(as_of_day).alias("end_day"),
            (pl.col("event_type") == "Service").alias("service"),
            ((pl.col("event_type") == "Service") & ~ended_before_as_of).alias("current"),
            service_group().alias("group"),
            (pl.col("service_component") == REABLEMENT_COMPONENT).fill_null(False).alias("reablement_component"),
            pl.col("cost_frequency_unit_type").is_in(ONE_OFF_FREQUENCIES).fill_null(False).alias("one_off"),
            (pl.col("cost_frequency_unit_type") == HOURLY_FREQUENCY).fill_null(False).alias("hourly"),
            "weekly_cost",
            "planned_units_per_week",
        )
        .with_columns(
            pl.col("group")
            .replace_strict({g: rank for rank, g in enumerate(ASC_SERVICE_PRIORITY)}, return_dtype=pl.Int32)
            .alias("priority")
        )
    )
    service, current, group = pl.col("service"), pl.col("current"), pl.col("group")
    # Inclusive of the end day: a service that ended on the window's first day ran inside the window.
    ran_in_12m = service & (pl.col("end_day") >= start_12m)
    started_in_12m = pl.col("start_day") >= start_12m
    return (
        events.group_by("person_id")
        .agg(
            pl.col("priority").filter(current).min().alias("current_priority"),
            exact_sum(pl.col("weekly_cost").filter(current & ~pl.col("one_off"))).alias("asc_weekly_cost_now"),
            exact_sum(pl.col("planned_units_per_week").filter(current & pl.col("hourly"))).alias(
                "asc_planned_hours_per_week_now"
            ),
            (current & group.is_in(CARE_HOME_GROUPS)).any().alias("in_residential_or_nursing_care"),
            (ran_in_12m & ((group == "reablement") | pl.col("reablement_component"))).any().alias("asc_reablement_12m"),
            (ran_in_12m & (group == "carer")).any().alias("asc_carer_support_12m"),
            ((pl.col("event_type") == "Assessment") & started_in_12m).sum().cast(pl.Int64).alias("asc_assessments_12m"),
            ((pl.col("event_type") == "Request") & started_in_12m).sum().cast(pl.Int64).alias("asc_requests_12m"),
            exact_sum(social_care_cost_in_period(start_12m, as_of_day, pl.col("end_day")).filter(service)).alias(
                "cost_social_care_12m"
            ),
        )
        .select(
            "person_id",
            pl.col("current_priority")
            .replace_strict(dict(enumerate(ASC_SERVICE_PRIORITY)), default="none", return_dtype=pl.String)
            .alias("asc_current_service"),
            pl.exclude("person_id", "current_priority"),
        )
    )
