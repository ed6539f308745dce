"""The case-finding score: a transparent points score of what a record shows at a date.

score = sum over terms of weight x min(value, cap), the terms and weights in `reference/case_finding_score.csv`:
emergency admissions in the 12 and 3 months before the date, A&E attendances in 12 months, long-term conditions
recorded before the date and age in decades. The synthetic MDT (data_contracts.synthetic.case_management) ranks
its lists by it, and the evaluation of case management (models/impact) matches on it: both call `points`, the
MDT on its month-by-month counts, the evaluation on the tables through `case_finding_inputs`, so the score a
person was selected on is exactly the score they are matched on.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from datetime import date
from functools import cache
from pathlib import Path
from typing import TypeVar

import numpy as np
import polars as pl

from data_contracts.dates import day_number
from features.demographics import age_at, born_before
from features.hospital import EMERGENCY_ADMISSION_METHODS
from features.inputs import Tables, contract_table, day_of, window_start

SCORE_FILE = Path(__file__).parent / "reference" / "case_finding_score.csv"
TERMS: tuple[str, ...] = (
    "emergency_admissions_12m",
    "emergency_admissions_3m",
    "ae_attendances_12m",
    "long_term_conditions",
    "age_decades",
)

Value = TypeVar("Value", np.ndarray, pl.Expr)


@cache
def weights() -> dict[str, tuple[float, float]]:
    """term -> (weight, cap), from the reference file."""
    with open(SCORE_FILE, newline="") as fh:
        rows = {row["term"]: (float(row["weight"]), float(row["cap"])) for row in csv.DictReader(fh)}
    if set(rows) != set(TERMS):
        raise ValueError(f"{SCORE_FILE.name} must define exactly {TERMS}")
    return rows


def points(values: Mapping[str, Value]) -> Value:
    """The score from each term's value (numpy arrays or Polars expressions alike)."""
    total = None
    for term in TERMS:
        weight, cap = weights()[term]
        value = values[term]
        capped = np.minimum(value, cap) if isinstance(value, np.ndarray) else value.clip(upper_bound=cap)
        part = weight * capped
        total = part if total is None else total + part
    assert total is not None
    return total


def case_finding_inputs(tables: Tables, as_of: date) -> pl.LazyFrame:
    """Per person born before as_of: person_id, age, sex, gp_practice, each term's value and `score` at as_of.

    Only what was recorded before as_of is read (date of death is not: the caller decides who was alive)."""
    as_of_day = day_number(as_of)
    start_12m, start_3m = window_start(as_of, 12), window_start(as_of, 3)
    spells = contract_table(tables, "apc_spells").filter(
        pl.col("admission_method").is_in(EMERGENCY_ADMISSION_METHODS) & (day_of("admission_date") < as_of_day)
    )
    emergency = spells.group_by("person_id").agg(
        (day_of("admission_date") >= start_12m).sum().alias("emergency_admissions_12m"),
        (day_of("admission_date") >= start_3m).sum().alias("emergency_admissions_3m"),
    )
    ae = (
        contract_table(tables, "ae_attendances")
        .filter((day_of("arrival_date") < as_of_day) & (day_of("arrival_date") >= start_12m))
        .group_by("person_id")
        .agg(pl.len().alias("ae_attendances_12m"))
    )
    conditions = (
        contract_table(tables, "conditions")
        .filter(day_of("recorded_date") < as_of_day)
        .group_by("person_id")
        .agg(pl.col("condition").n_unique().alias("long_term_conditions"))
    )
    people = (
        contract_table(tables, "persons")
        .filter(born_before(as_of))
        .select("person_id", age_at(as_of).alias("age"), "sex", "gp_practice")
    )
    counts = ("emergency_admissions_12m", "emergency_admissions_3m", "ae_attendances_12m", "long_term_conditions")
    frame = (
        people.join(emergency, on="person_id", how="left")
        .join(ae, on="person_id", how="left")
        .join(conditions, on="person_id", how="left")
        .with_columns([pl.col(c).fill_null(0).cast(pl.Int64) for c in counts])
        .with_columns((pl.col("age") / 10).alias("age_decades"))
    )
    return frame.with_columns(points({term: pl.col(term) for term in TERMS}).alias("score"))
