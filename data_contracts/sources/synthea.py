"""Transforms for Synthea's CSV export (Walonoski et al., JAMIA 2018, doi:10.1093/jamia/ocx079).

Synthea records what happened but not some things English contracts need, so two rules are computed here:

- `synthea_after_emergency`: Synthea has no admission method. An inpatient encounter that starts within 24 hours
  after the start of an emergency encounter of the same person is read as an emergency admission (the mapping
  codes it); any other inpatient encounter as elective. Starts are used, not stops: some stop times are
  impossible.
- `synthea_medication_claim_share`: the flattened layout (no cost on medication rows) carries each encounter's
  pharmacy claims as the encounter's `MEDICATION_CLAIM_COST`; each medication row of that encounter gets an
  equal share of it.
"""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from data_contracts.sources import Transform

EMERGENCY_ADMISSION_WINDOW = timedelta(hours=24)
ENCOUNTERS_FILE = "encounters.csv"
EMERGENCY_CLASS = "emergency"
FOLLOWS_EMERGENCY = "FOLLOWS_EMERGENCY_WITHIN_24H"
MEDICATION_COST = "MEDICATION_COST_SHARE"


def synthea_timestamp(column: str) -> pl.Expr:
    """Synthea timestamps are ISO 8601 with an offset (`-04:00`) or `Z`; compared in UTC."""
    text = pl.col(column).str.strip_chars().str.replace(r"Z$", "+00:00")
    return text.str.to_datetime("%Y-%m-%dT%H:%M:%S%z", strict=False, time_zone="UTC")


def follows_emergency(encounters: pl.DataFrame, window: timedelta = EMERGENCY_ADMISSION_WINDOW) -> pl.DataFrame:
    """Add `FOLLOWS_EMERGENCY_WITHIN_24H` ("yes"/"no"): an emergency encounter of the same PATIENT started at most
    `window` before this encounter's START (at the same moment counts). Rows keep their order."""
    started = encounters.with_row_index("_row").with_columns(synthea_timestamp("START").alias("_start"))
    emergencies = (
        started.filter(pl.col("ENCOUNTERCLASS").str.strip_chars() == EMERGENCY_CLASS)
        .select("PATIENT", pl.col("_start").alias("_emergency_start"))
        .drop_nulls()
        .sort("PATIENT", "_emergency_start")
    )
    timed = started.filter(pl.col("_start").is_not_null()).sort("PATIENT", "_start")
    latest = timed.join_asof(
        emergencies,
        left_on="_start",
        right_on="_emergency_start",
        by="PATIENT",
        strategy="backward",
        check_sortedness=False,
    ).select("_row", ((pl.col("_start") - pl.col("_emergency_start")) <= window).alias("_follows"))
    return (
        started.join(latest, on="_row", how="left")
        .sort("_row")
        .with_columns(
            pl.when(pl.col("_follows").fill_null(False))
            .then(pl.lit("yes"))
            .otherwise(pl.lit("no"))
            .alias(FOLLOWS_EMERGENCY)
        )
        .drop("_row", "_start", "_follows")
    )


def medication_claim_share(medications: pl.DataFrame, encounters: pl.DataFrame) -> pl.DataFrame:
    """Add `MEDICATION_COST_SHARE`: the encounter's MEDICATION_CLAIM_COST divided equally among its medication
    rows (empty when the encounter is unknown or has no medication claim cost). Rows keep their order."""
    claims = encounters.select(
        pl.col("Id").alias("ENCOUNTER"), pl.col("MEDICATION_CLAIM_COST").cast(pl.Float64, strict=False).alias("_claim")
    ).unique("ENCOUNTER", keep="first")
    share = pl.col("_claim") / pl.len().over("ENCOUNTER")
    return (
        medications.with_row_index("_row")
        .join(claims, on="ENCOUNTER", how="left")
        .sort("_row")
        .with_columns(share.round(2).cast(pl.String).alias(MEDICATION_COST))
        .drop("_row", "_claim")
    )


TRANSFORMS: tuple[Transform, ...] = (
    Transform(
        "synthea_after_emergency",
        lambda rows, source: follows_emergency(rows),
        (FOLLOWS_EMERGENCY,),
        "yes when an emergency encounter of the same person started within the 24 hours before this one",
    ),
    Transform(
        "synthea_medication_claim_share",
        lambda rows, source: medication_claim_share(rows, source.read(ENCOUNTERS_FILE)),
        (MEDICATION_COST,),
        "the encounter's MEDICATION_CLAIM_COST shared equally among its medication rows (flattened layout)",
    ),
)
