"""Transforms for Synthea's CSV export (Walonoski et al., JAMIA 2018, doi:10.1093/jamia/ocx079).

Synthea records what happened but not some things English contracts need, so two rules are computed here:

- `synthea_after_emergency`: Synthea has no admission method. An inpatient encounter that starts within 24 hours
  after the start of an emergency encounter of the same person is read as an emergency admission (the mapping
  codes it); any other inpatient encounter as elective. Starts are used, not stops: some stop times are
  impossible.
- `synthea_medication_claim_share`: the flattened layout (no cost on medication rows) carries each encounter's
  pharmacy claims as the encounter's `MEDICATION_CLAIM_COST`; each medication row of that encounter gets an
  equal share of it.

`collapse_classes` copies a Synthea folder with the encounter classes an export of the older kind lacks folded into
`ambulatory`, to check that routing by encounter type code gives the same tables without them.
"""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

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


def follows_emergency(
    encounters: pl.DataFrame,
    window: timedelta = EMERGENCY_ADMISSION_WINDOW,
    *,
    person: str = "PATIENT",
    start: pl.Expr | None = None,
    is_emergency: pl.Expr | None = None,
) -> pl.DataFrame:
    """Add `FOLLOWS_EMERGENCY_WITHIN_24H` ("yes"/"no"): an emergency encounter of the same person started at most
    `window` before this encounter's start (at the same moment counts). Rows keep their order. By default the
    columns are Synthea's (PATIENT, START as a timestamp, ENCOUNTERCLASS emergency); other sources name theirs."""
    start = synthea_timestamp("START") if start is None else start
    is_emergency = (
        pl.col("ENCOUNTERCLASS").str.strip_chars() == EMERGENCY_CLASS if is_emergency is None else is_emergency
    )
    started = encounters.with_row_index("_row").with_columns(start.alias("_start"), is_emergency.alias("_emergency"))
    emergencies = (
        started.filter(pl.col("_emergency").fill_null(False))
        .select(pl.col(person), pl.col("_start").alias("_emergency_start"))
        .drop_nulls()
        .sort(person, "_emergency_start")
    )
    timed = started.filter(pl.col("_start").is_not_null()).sort(person, "_start")
    latest = timed.join_asof(
        emergencies,
        left_on="_start",
        right_on="_emergency_start",
        by=person,
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
        .drop("_row", "_start", "_emergency", "_follows")
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


COARSE_CLASSES = {"wellness": "ambulatory", "outpatient": "ambulatory", "urgentcare": "ambulatory"}
"""Synthea classes that an export of the older kind reports as ambulatory (emergency and inpatient stay)."""


def collapse_classes(source: Path, out: Path) -> Path:
    """A copy of a Synthea folder with its encounter classes collapsed (`COARSE_CLASSES`)."""
    out.mkdir(parents=True)
    for path in source.iterdir():
        if path.is_file() and path.name != "encounters.csv":
            shutil.copy(path, out / path.name)
    encounters = pl.read_csv(source / "encounters.csv", infer_schema=False)
    encounters.with_columns(pl.col("ENCOUNTERCLASS").replace(COARSE_CLASSES)).write_csv(out / "encounters.csv")
    return out


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
