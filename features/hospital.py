"""Hospital features: admitted patient care spells, A&E attendances and outpatient appointments.

One group_by per table produces every window: the table is filtered to events before as_of once, and each
window is a conditional sum over integer day numbers.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from data_contracts.dates import day_number
from features.inputs import WINDOW_MONTHS, Tables, codes_in_group, contract_table, day_of, exact_sum, window_start
from features.recency import recency_weighted_count

EMERGENCY_ADMISSION_METHODS = codes_in_group("admission_method", "emergency")
ELECTIVE_ADMISSION_METHODS = codes_in_group("admission_method", "elective")
CARE_HOME_DESTINATIONS = codes_in_group("apc_discharge_destination", "care_home")
OP_ATTENDED = codes_in_group("op_attendance_status", "attended")
OP_DID_NOT_ATTEND = codes_in_group("op_attendance_status", "dna")


def hospital_spells(tables: Tables, as_of: date) -> pl.LazyFrame:
    """Emergency and elective admissions and bed days per window, days since the last emergency admission,
    delayed-discharge days and discharge to a care home in 12 months, and the hospital cost in 12 months.

    A spell admitted before as_of but not discharged before it is seen as it was at as_of: still open, its bed
    days counted up to as_of, and its discharge date, destination, discharge-ready date and cost not used."""
    as_of_day = day_number(as_of)
    start_12m = window_start(as_of, 12)
    discharged = (day_of("discharge_date") < as_of_day).fill_null(False)
    spells = (
        contract_table(tables, "apc_spells")
        .filter(pl.col("admission_date") < as_of)
        .select(
            "person_id",
            day_of("admission_date").alias("admitted"),
            pl.when(discharged).then(day_of("discharge_date")).otherwise(as_of_day).alias("stay_end"),
            discharged.alias("discharged"),
            pl.when(discharged).then(day_of("discharge_ready_date")).alias("ready"),
            pl.col("admission_method").is_in(EMERGENCY_ADMISSION_METHODS).alias("emergency"),
            pl.col("admission_method").is_in(ELECTIVE_ADMISSION_METHODS).alias("elective"),
            (discharged & pl.col("discharge_destination").is_in(CARE_HOME_DESTINATIONS)).alias("to_care_home"),
            pl.when(discharged).then(pl.col("cost")).alias("known_cost"),
        )
    )
    admitted, stay_end = pl.col("admitted"), pl.col("stay_end")
    discharged_in_12m = pl.col("discharged") & (stay_end >= start_12m)
    windows = []
    for months in WINDOW_MONTHS:
        start = window_start(as_of, months)
        in_window = admitted >= start
        windows += [
            (pl.col("emergency") & in_window).sum().cast(pl.Int64).alias(f"emergency_admissions_{months}m"),
            (pl.col("elective") & in_window).sum().cast(pl.Int64).alias(f"elective_admissions_{months}m"),
            # Nights inside [start, as_of); stay_end never exceeds as_of.
            (stay_end - pl.max_horizontal(admitted, pl.lit(start)))
            .clip(lower_bound=0)
            .sum()
            .cast(pl.Int64)
            .alias(f"bed_days_{months}m"),
        ]
    return spells.group_by("person_id").agg(
        *windows,
        (as_of_day - admitted.filter(pl.col("emergency")).max())
        .cast(pl.Int64)
        .alias("days_since_last_emergency_admission"),
        pl.when(discharged_in_12m)
        .then((stay_end - pl.col("ready")).clip(lower_bound=0))
        .sum()
        .cast(pl.Int64)
        .alias("delayed_discharge_days_12m"),
        (discharged_in_12m & pl.col("to_care_home")).any().alias("discharged_to_care_home_12m"),
        exact_sum(pl.col("known_cost").filter(admitted >= start_12m)).alias("cost_hospital_12m"),
        recency_weighted_count(admitted, as_of, pl.col("emergency"), "_recent_emergency_admissions"),
    )


def ae_attendances(tables: Tables, as_of: date) -> pl.LazyFrame:
    """A&E attendances per window, days since the last attendance and the A&E cost in 12 months."""
    as_of_day = day_number(as_of)
    arrivals = (
        contract_table(tables, "ae_attendances")
        .filter(pl.col("arrival_date") < as_of)
        .select("person_id", day_of("arrival_date").alias("arrived"), "cost")
    )
    arrived = pl.col("arrived")
    return arrivals.group_by("person_id").agg(
        *[
            (arrived >= window_start(as_of, m)).sum().cast(pl.Int64).alias(f"ae_attendances_{m}m")
            for m in WINDOW_MONTHS
        ],
        (as_of_day - arrived.max()).cast(pl.Int64).alias("days_since_last_ae_attendance"),
        exact_sum(pl.col("cost").filter(arrived >= window_start(as_of, 12))).alias("cost_ae_12m"),
        recency_weighted_count(arrived, as_of, pl.lit(True), "_recent_ae_attendances"),
    )


def outpatient_appointments(tables: Tables, as_of: date) -> pl.LazyFrame:
    """Outpatient attendances and missed appointments per window, and the outpatient cost in 12 months."""
    earliest = window_start(as_of, max(WINDOW_MONTHS))
    appointments = (
        contract_table(tables, "op_appointments")
        .filter((pl.col("appointment_date") < as_of) & (day_of("appointment_date") >= earliest))
        .select(
            "person_id",
            day_of("appointment_date").alias("day"),
            pl.col("attendance_status").is_in(OP_ATTENDED).alias("attended"),
            pl.col("attendance_status").is_in(OP_DID_NOT_ATTEND).alias("missed"),
            "cost",
        )
    )
    day = pl.col("day")
    windows = []
    for months in WINDOW_MONTHS:
        in_window = day >= window_start(as_of, months)
        windows += [
            (pl.col("attended") & in_window).sum().cast(pl.Int64).alias(f"op_attendances_{months}m"),
            (pl.col("missed") & in_window).sum().cast(pl.Int64).alias(f"op_dnas_{months}m"),
        ]
    return appointments.group_by("person_id").agg(
        *windows,
        exact_sum(pl.col("cost").filter(day >= window_start(as_of, 12))).alias("cost_outpatient_12m"),
        recency_weighted_count(day, as_of, pl.col("attended"), "_recent_op_attendances"),
    )


def unplanned_trend_6m() -> pl.Expr:
    """Emergency admissions + A&E attendances in the last 6 months minus those in the 6 months before, from the
    6- and 12-month counts: last6 - (last12 - last6)."""
    last_6 = pl.col("emergency_admissions_6m") + pl.col("ae_attendances_6m")
    last_12 = pl.col("emergency_admissions_12m") + pl.col("ae_attendances_12m")
    return (2 * last_6 - last_12).alias("unplanned_trend_6m")
