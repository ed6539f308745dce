"""Demographic features from the persons table."""

from __future__ import annotations

from datetime import date

import polars as pl

from features.inputs import Tables, contract_table

# Birth month when the month is not recorded: mid-year keeps the age error at most about six months.
UNKNOWN_BIRTH_MONTH = 7


def birth_month_or_default() -> pl.Expr:
    return pl.col("birth_month").fill_null(UNKNOWN_BIRTH_MONTH)


def born_before(as_of: date) -> pl.Expr:
    """True when the estimated birthday (1st of the birth month) is before as_of."""
    month = birth_month_or_default()
    return (pl.col("birth_year") < as_of.year) | ((pl.col("birth_year") == as_of.year) & (month < as_of.month))


def age_at(as_of: date) -> pl.Expr:
    """Whole years from the 1st of the birth month to as_of."""
    birthday_not_reached = (birth_month_or_default() > as_of.month).cast(pl.Int64)
    return (pl.lit(as_of.year, dtype=pl.Int64) - pl.col("birth_year") - birthday_not_reached).clip(lower_bound=0)


def demographics(tables: Tables, as_of: date) -> pl.LazyFrame:
    """age, sex, imd_decile, ethnicity_group at as_of (date of death is not read: it must not leak the future)."""
    return contract_table(tables, "persons").select(
        "person_id",
        age_at(as_of).alias("age"),
        "sex",
        "imd_decile",
        "ethnicity_group",
    )
