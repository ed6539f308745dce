"""Prescribing features: polypharmacy and items issued."""

from __future__ import annotations

from datetime import date

import polars as pl

from features.inputs import Tables, contract_table, day_of, exact_sum, window_start

BNF_SECTION_CHARACTERS = 4


def prescribing(tables: Tables, as_of: date) -> pl.LazyFrame:
    """bnf_sections_3m, prescription_items_3m, prescription_items_12m and cost_prescribing_12m (a missing cost
    counts as 0: prescriptions carry no imputation rule)."""
    start_3m = window_start(as_of, 3)
    issues = (
        contract_table(tables, "prescriptions")
        .filter((pl.col("issue_date") < as_of) & (day_of("issue_date") >= window_start(as_of, 12)))
        .select(
            "person_id",
            day_of("issue_date").alias("day"),
            # The contract guarantees 4 leading digits: as an integer the distinct count hashes faster.
            pl.col("bnf_code").str.slice(0, BNF_SECTION_CHARACTERS).cast(pl.Int32, strict=False).alias("bnf_section"),
            "items",
            "cost",
        )
    )
    in_3m = pl.col("day") >= start_3m
    return issues.group_by("person_id").agg(
        pl.col("bnf_section").filter(in_3m).drop_nulls().n_unique().cast(pl.Int64).alias("bnf_sections_3m"),
        pl.col("items").filter(in_3m).sum().cast(pl.Int64).alias("prescription_items_3m"),
        pl.col("items").sum().cast(pl.Int64).alias("prescription_items_12m"),
        exact_sum(pl.col("cost")).alias("cost_prescribing_12m"),
    )
