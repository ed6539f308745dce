"""Recent contact intensity: every health service contact of the last 24 months, the recent ones weighted most.

A person's need drifts month to month and tends back to their usual level, so last month's contacts say more
about the coming year than contacts a year ago, and contacts of every kind carry some of that signal. Counts in
fixed windows see this only in steps; one decayed sum over all contact types gives the model (and a clinician
reading the explanation) a single smooth measure of how much care someone is using now.

Each source's feature function adds its partial sum (a private `_recent_*` column) in its own pass over its
table; `build_features` adds them up into `contacts_recency_weighted_24m` and drops the parts.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from data_contracts.dates import day_number
from features.inputs import exact_sum, window_start

# A contact one month earlier counts 0.9 as much: one a year ago counts 0.28, two years ago 0.08.
RECENCY_DECAY_PER_MONTH = 0.9
RECENCY_WINDOW_MONTHS = 24
DAYS_PER_MONTH = 365.25 / 12
RECENCY_SCALE = 10**12

RECENCY_PARTS: tuple[str, ...] = (
    "_recent_emergency_admissions",
    "_recent_ae_attendances",
    "_recent_op_attendances",
    "_recent_gp_contacts",
    "_recent_community_contacts",
)


def recency_weighted_count(day: pl.Expr, as_of: date, counted: pl.Expr, part: str) -> pl.Expr:
    """Aggregation: sum of RECENCY_DECAY_PER_MONTH ** (whole months before as_of) over the rows where `counted`
    holds and `day` (a day number before as_of) is inside the recency window."""
    if part not in RECENCY_PARTS:
        raise ValueError(f"{part} is not one of {RECENCY_PARTS}")
    months_before = ((day_number(as_of) - day) / DAYS_PER_MONTH).floor()
    weight = pl.lit(RECENCY_DECAY_PER_MONTH, dtype=pl.Float64).pow(months_before)
    inside = counted & (day >= window_start(as_of, RECENCY_WINDOW_MONTHS))
    # Fine fixed point: weights are powers of 0.9, not decimals.
    return exact_sum(pl.when(inside).then(weight).otherwise(0.0), scale=RECENCY_SCALE).alias(part)


def contacts_recency_weighted() -> pl.Expr:
    """The derived feature: the parts added up (each 0 for a person without a record in its table)."""
    return pl.sum_horizontal([pl.col(part).fill_null(0.0) for part in RECENCY_PARTS]).alias(
        "contacts_recency_weighted_24m"
    )
