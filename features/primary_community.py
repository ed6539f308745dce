"""Primary care (GP practice contacts) and community health service features."""

from __future__ import annotations

from datetime import date

import polars as pl

from features.catalogue import gp_event_feature_stems
from features.inputs import WINDOW_MONTHS, Tables, codes_in_group, contract_table, day_of, exact_sum, window_start
from features.recency import recency_weighted_count

GP_CONTACT_TYPES = codes_in_group("gp_event_type", "contact")


def gp_contacts(tables: Tables, as_of: date) -> pl.LazyFrame:
    """GP practice contacts of each type per window (`gp_face_to_face_3m`, `gp_dnas_12m`, ...) and the GP
    practice cost in 12 months."""
    earliest = window_start(as_of, max(WINDOW_MONTHS))
    events = (
        contract_table(tables, "gp_events")
        .filter((pl.col("event_date") < as_of) & (day_of("event_date") >= earliest))
        .select("person_id", day_of("event_date").alias("day"), "event_type", "cost")
    )
    stems = gp_event_feature_stems()
    # One string comparison per type and one integer comparison per window, then cheap boolean ANDs per pair.
    events = events.with_columns(
        *[(pl.col("event_type") == code).alias(f"is_{code}") for code in stems],
        *[(pl.col("day") >= window_start(as_of, months)).alias(f"in_{months}m") for months in WINDOW_MONTHS],
    )
    windows = [
        (pl.col(f"is_{code}") & pl.col(f"in_{months}m")).sum().cast(pl.Int64).alias(f"{stem}_{months}m")
        for code, stem in stems.items()
        for months in WINDOW_MONTHS
    ]
    return events.group_by("person_id").agg(
        *windows,
        exact_sum(pl.col("cost").filter(pl.col("in_12m"))).alias("cost_gp_12m"),
        recency_weighted_count(
            pl.col("day"), as_of, pl.col("event_type").is_in(GP_CONTACT_TYPES), "_recent_gp_contacts"
        ),
    )


def community_contacts(tables: Tables, as_of: date) -> pl.LazyFrame:
    """Community health contacts where the person was seen, per window, and the community cost in 12 months.

    `attended` null counts as seen: providers that do not record it report contacts that took place."""
    earliest = window_start(as_of, max(WINDOW_MONTHS))
    contacts = (
        contract_table(tables, "community_contacts")
        .filter((pl.col("contact_date") < as_of) & (day_of("contact_date") >= earliest))
        .select("person_id", day_of("contact_date").alias("day"), pl.col("attended").fill_null(True), "cost")
    )
    day = pl.col("day")
    return contacts.group_by("person_id").agg(
        *[
            (pl.col("attended") & (day >= window_start(as_of, months)))
            .sum()
            .cast(pl.Int64)
            .alias(f"community_contacts_{months}m")
            for months in WINDOW_MONTHS
        ],
        exact_sum(pl.col("cost").filter(day >= window_start(as_of, 12))).alias("cost_community_12m"),
        recency_weighted_count(day, as_of, pl.col("attended"), "_recent_community_contacts"),
    )
