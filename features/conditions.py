"""Condition features: GP long-term condition registers, and Charlson and HFRS scores from hospital diagnoses.

The Charlson and HFRS code lists are data files under `features/reference/` (see its README for sources).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path

import polars as pl

from data_contracts.dates import day_number
from data_contracts.reference import codelist
from features.catalogue import ltc_feature_name
from features.inputs import Tables, contract_table, exact_sum, window_start

FEATURE_REFERENCE_DIR = Path(__file__).parent / "reference"

# Look-back of the hospital-diagnosis scores. HFRS is defined on 2 years; Charlson uses the same window so that
# both mean the same at training and scoring dates when only about 3 years of history are held.
DIAGNOSIS_LOOKBACK_MONTHS = 24

DAYS_PER_YEAR = 365.25


def long_term_conditions(tables: Tables, as_of: date) -> pl.LazyFrame:
    """ltc_<condition> flags, ltc_count and years_since_first_ltc from conditions recorded before as_of."""
    conditions = list(codelist("long_term_condition").codes)
    as_of_day = day_number(as_of)
    recorded = (
        contract_table(tables, "conditions")
        .filter((pl.col("recorded_date") < as_of) & pl.col("condition").is_in(conditions))
        .select("person_id", "condition", pl.col("recorded_date").cast(pl.Int32).alias("recorded_day"))
    )
    return recorded.group_by("person_id").agg(
        *[(pl.col("condition") == c).any().alias(ltc_feature_name(c)) for c in conditions],
        pl.col("condition").n_unique().alias("ltc_count"),
        ((as_of_day - pl.col("recorded_day").min()) / DAYS_PER_YEAR).alias("years_since_first_ltc"),
    )


@dataclass(frozen=True)
class CharlsonCategory:
    category: str
    label: str
    weight: int
    superseded_by: str | None


@cache
def charlson_categories() -> tuple[CharlsonCategory, ...]:
    with open(FEATURE_REFERENCE_DIR / "charlson_categories.csv", newline="") as fh:
        return tuple(
            CharlsonCategory(
                category=row["category"],
                label=row["label"],
                weight=int(row["weight_charlson_1987"]),
                superseded_by=row["superseded_by"] or None,
            )
            for row in csv.DictReader(fh)
        )


@cache
def charlson_prefixes() -> tuple[tuple[str, str], ...]:
    """(ICD-10 prefix, category) pairs of the Quan 2005 coding."""
    with open(FEATURE_REFERENCE_DIR / "charlson_icd10_quan.csv", newline="") as fh:
        return tuple((row["icd10_prefix"], row["category"]) for row in csv.DictReader(fh))


@cache
def hfrs_weights() -> dict[str, float]:
    with open(FEATURE_REFERENCE_DIR / "hfrs_icd10.csv", newline="") as fh:
        return {row["icd10_3char"]: float(row["weight"]) for row in csv.DictReader(fh)}


def hospital_diagnoses(tables: Tables, as_of: date) -> pl.LazyFrame:
    """(person_id, code) ICD-10 diagnoses of spells admitted in the look-back and discharged before as_of.

    Diagnoses are coded after discharge, so a spell still open at as_of contributes none (no look-ahead)."""
    lookback_start = window_start(as_of, DIAGNOSIS_LOOKBACK_MONTHS)
    as_of_day = day_number(as_of)
    spells = contract_table(tables, "apc_spells").filter(
        (pl.col("admission_date").cast(pl.Int32) >= lookback_start)
        & (pl.col("discharge_date").cast(pl.Int32) < as_of_day)
    )
    return (
        spells.select(
            "person_id",
            pl.concat_str(["primary_diagnosis", "secondary_diagnoses"], separator=";", ignore_nulls=True)
            .str.split(";")
            .alias("code"),
        )
        .explode("code")
        .with_columns(pl.col("code").str.strip_chars().str.to_uppercase())
        .filter(pl.col("code").str.len_chars() >= 3)
    )


def hospital_diagnosis_scores(tables: Tables, as_of: date) -> pl.LazyFrame:
    """charlson_index and hfrs from hospital diagnoses (see `hospital_diagnoses` for which spells count)."""
    categories = charlson_categories()
    # Each Charlson category is one bit, so a person's categories are the bitwise OR of their diagnoses' bits:
    # one integer aggregation instead of a string comparison per category.
    bit_of = {c.category: 1 << position for position, c in enumerate(categories)}
    bits_of_3 = {prefix: bit_of[category] for prefix, category in charlson_prefixes() if len(prefix) == 3}
    bits_of_4 = {prefix: bit_of[category] for prefix, category in charlson_prefixes() if len(prefix) == 4}
    code3 = pl.col("code").str.slice(0, 3)
    code4 = pl.col("code").str.slice(0, 4)
    scored = (
        hospital_diagnoses(tables, as_of)
        .select(
            "person_id",
            code3.alias("code3"),
            code3.replace_strict(hfrs_weights(), default=None, return_dtype=pl.Float64).alias("hfrs_weight"),
            (
                code3.replace_strict(bits_of_3, default=0, return_dtype=pl.Int64)
                | code4.replace_strict(bits_of_4, default=0, return_dtype=pl.Int64)
            ).alias("charlson_bits"),
        )
        .filter(pl.col("hfrs_weight").is_not_null() | (pl.col("charlson_bits") != 0))
    )

    hfrs = (
        scored.filter(pl.col("hfrs_weight").is_not_null())
        .select("person_id", "code3", "hfrs_weight")
        .unique()
        .group_by("person_id")
        .agg(exact_sum(pl.col("hfrs_weight")).alias("hfrs"))
    )

    bits = pl.col("charlson_bits")

    def has(category: str) -> pl.Expr:
        return (bits & bit_of[category]) != 0

    score_terms = []
    for c in categories:
        present = has(c.category)
        if c.superseded_by is not None:
            # Only the more severe of a pair counts (e.g. diabetes with complications, not also without).
            present = present & ~has(c.superseded_by)
        score_terms.append(present.cast(pl.Int64) * c.weight)
    charlson = (
        scored.filter(bits != 0)
        .group_by("person_id")
        .agg(bits.bitwise_or())
        .select("person_id", pl.sum_horizontal(score_terms).alias("charlson_index"))
    )

    return charlson.join(hfrs, on="person_id", how="full", coalesce=True)
