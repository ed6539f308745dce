"""Assemble the feature frame: one row per eligible person, one column per catalogue feature.

Everything stays lazy until the caller collects. Each source table is read by one feature function (one
group_by producing all its windows); the results are left-joined onto the eligible people, people without a
record get the feature's default (0, false, 'none', or null where "no event" has no number, e.g. days since
the last admission), and the columns come out in catalogue order, rows sorted by person_id.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import polars as pl

from data_contracts.dates import add_months
from features.catalogue import CATALOGUE, Feature
from features.conditions import hospital_diagnosis_scores, long_term_conditions
from features.costs import cost_total_12m
from features.demographics import born_before, demographics
from features.hospital import ae_attendances, hospital_spells, outpatient_appointments, unplanned_trend_6m
from features.inputs import Tables, contract_table
from features.prescribing import prescribing
from features.primary_community import community_contacts, gp_contacts
from features.recency import RECENCY_PARTS, contacts_recency_weighted
from features.social_care import social_care

FeatureFunction = Callable[[Tables, date], pl.LazyFrame]

# Each returns person_id plus some catalogue columns, only for people with a record in its table.
FEATURE_FUNCTIONS: tuple[FeatureFunction, ...] = (
    demographics,
    long_term_conditions,
    hospital_diagnosis_scores,
    hospital_spells,
    ae_attendances,
    outpatient_appointments,
    gp_contacts,
    community_contacts,
    prescribing,
    social_care,
)

# Computed from other features after the join: name -> expression.
DERIVED_FEATURES: dict[str, pl.Expr] = {
    "unplanned_trend_6m": unplanned_trend_6m(),
    "cost_total_12m": cost_total_12m(),
    "contacts_recency_weighted_24m": contacts_recency_weighted(),
}
# Columns feature functions return only for a derived feature to use; dropped from the output.
INTERMEDIATE_COLUMNS: tuple[str, ...] = RECENCY_PARTS

_POLARS_DTYPES: dict[str, pl.DataType] = {
    "int": pl.Int64(),
    "float": pl.Float64(),
    "bool": pl.Boolean(),
    "str": pl.String(),
}


def eligible_people(tables: Tables, as_of: date) -> pl.LazyFrame:
    """person_id of people in persons who were born before as_of (1st of the birth month), were alive at as_of
    (date_of_death < as_of means dead; a death on or after as_of is not visible) and have not opted out.

    Opt-outs apply whatever their recorded date: nobody who has opted out may appear in any output."""
    persons = contract_table(tables, "persons")
    alive = pl.col("date_of_death").is_null() | (pl.col("date_of_death") >= as_of)
    opted_out = contract_table(tables, "opt_outs").select("person_id")
    return persons.filter(born_before(as_of) & alive).select("person_id").join(opted_out, on="person_id", how="anti")


def feature_columns() -> list[str]:
    """Feature column names in output order (person_id not included)."""
    return list(CATALOGUE)


def categorical_columns() -> list[str]:
    return [f.name for f in CATALOGUE.values() if f.kind == "categorical"]


def _finalise(feature: Feature) -> pl.Expr:
    column = pl.col(feature.name).cast(_POLARS_DTYPES[feature.dtype])
    if feature.default is not None:
        column = column.fill_null(pl.lit(feature.default, dtype=_POLARS_DTYPES[feature.dtype]))
    return column.alias(feature.name)


def build_features(
    tables: Tables, as_of: date, people: pl.LazyFrame | None = None, history_start: date | None = None
) -> pl.LazyFrame:
    """Every catalogue feature at as_of for the eligible people (or for those of `people` who are eligible),
    one row per person, columns person_id then catalogue order, sorted by person_id.

    Only events dated before as_of are read; see each feature function for how open spells and services are
    seen at as_of. `history_start` is the first date the data cover: a window reaching back before it is
    unknown, not zero, so such features are null for everyone (see `windows_before_history`)."""
    cohort = eligible_people(tables, as_of)
    if people is not None:
        cohort = cohort.join(people.select("person_id"), on="person_id", how="semi")
    frame = cohort
    for feature_function in FEATURE_FUNCTIONS:
        frame = frame.join(feature_function(tables, as_of), on="person_id", how="left")
    stored = [f for f in CATALOGUE.values() if f.name not in DERIVED_FEATURES]
    frame = frame.select("person_id", *[_finalise(f) for f in stored], *INTERMEDIATE_COLUMNS)
    frame = frame.with_columns(
        [expr.cast(_POLARS_DTYPES[CATALOGUE[name].dtype]).alias(name) for name, expr in DERIVED_FEATURES.items()]
    )
    unknown = windows_before_history(as_of, history_start) if history_start is not None else []
    frame = frame.with_columns(
        [pl.lit(None, dtype=_POLARS_DTYPES[CATALOGUE[name].dtype]).alias(name) for name in unknown]
    )
    return frame.select("person_id", *feature_columns()).sort("person_id")


def windows_before_history(as_of: date, history_start: date) -> list[str]:
    """Features whose look-back window starts before the data do.

    Counted as zero they would read as "no activity" where there is simply no data: a model fitted at early
    index dates would learn that, say, 2 emergency admissions in 24 months (really in 9) mean high risk, and
    over-predict once the full 24 months are there. Null lets the model fit on what was observable."""
    return [
        feature.name
        for feature in CATALOGUE.values()
        if (months := feature.months_of_history_needed) is not None and add_months(as_of, -months) < history_start
    ]
