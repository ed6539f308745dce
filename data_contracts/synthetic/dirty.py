"""Planted bad rows, so the ingest's quarantine can be tested against known counts.

Every planted row is an extra row (the clean rows are left intact, so the truth still matches the data) with
its own new key and exactly one defect, which the ingest reports as the row's first reason:
unlinked_person, future_date, before_birth, discharge_before_admission, negative_cost (reported as
out_of_range), unknown_code, duplicate_key (a pair of conflicting rows with one new key: both count),
missing_required and, in CSV only, bad_type. Rows are copied from people who never opted out (an
opted-out person's rows are excluded before any check).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from data_contracts.synthetic.population import Population
from data_contracts.synthetic.timeline import pseudonymous_ids
from data_contracts.tables import TABLES

CLASSES = (
    "unlinked_person",
    "future_date",
    "before_birth",
    "discharge_before_admission",
    "negative_cost",
    "unknown_code",
    "duplicate_key",
    "missing_required",
    "bad_type",
)
# Per table: the id column (None: keyed by person), main event date, other event dates, a codelist column
# with an impossible value, and a required column to empty.
ID_COLUMN = {
    "apc_spells": "spell_id",
    "ae_attendances": "attendance_id",
    "op_appointments": "appointment_id",
    "gp_events": "event_id",
    "community_contacts": "contact_id",
    "prescriptions": "prescription_id",
    "asc_events": "event_id",
}
MAIN_DATE = {"persons": "date_of_death", **{name: t.dated_by for name, t in TABLES.items() if t.dated_by}}
OTHER_DATES = {"apc_spells": ("discharge_date", "discharge_ready_date"), "asc_events": ("event_end_date",)}
UNKNOWN_CODE = {
    "persons": ("sex", "Z"),
    "conditions": ("condition", "gout"),
    "apc_spells": ("admission_method", "99"),
    "ae_attendances": ("department_type", "09"),
    "op_appointments": ("attendance_status", "9"),
    "gp_events": ("event_type", "chat"),
    "community_contacts": ("service", "acupuncture"),
    "asc_events": ("event_type", "Visit"),
}
MISSING_REQUIRED = {
    "persons": "gp_practice",
    "conditions": "recorded_date",
    "apc_spells": "admission_date",
    "ae_attendances": "department_type",
    "op_appointments": "attendance_status",
    "gp_events": "event_type",
    "community_contacts": "service",
    "prescriptions": "bnf_code",
    "asc_events": "la_code",
}
BAD_INT_COLUMN = {"persons": "birth_year", "prescriptions": "items"}


def _count(rate: float, height: int) -> int:
    return max(1, round(rate * height))


def _fake_ids(rng: np.random.Generator, count: int, label: str) -> pl.Series:
    """Person ids that exist nowhere (keyed hashes under a salt no real person uses)."""
    key = int(rng.integers(0, 2**31))
    return pl.Series("person_id", pseudonymous_ids(key, count, salt=f"planted-{label}"), dtype=pl.String)


def _new_keys(frame: pl.DataFrame, table: str, label: str, rng: np.random.Generator) -> pl.DataFrame:
    """Give copied rows keys that exist nowhere: a new id, a new person (persons) or a condition the person
    does not have in this batch (conditions)."""
    n = frame.height
    if table in ID_COLUMN:
        column = ID_COLUMN[table]
        prefix = frame[column].str.slice(0, 1)
        numbers = pl.Series([f"X{label[:3].upper()}{i:07d}" for i in range(n)])
        return frame.with_columns((prefix + numbers).alias(column))
    if table == "persons":
        return frame.with_columns(_fake_ids(rng, n, label))
    return frame  # conditions: made unique by _unique_condition_keys


def _unique_condition_keys(planted: pl.DataFrame, existing: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    from data_contracts.synthetic.clinical import CONDITION_CODES

    codes = np.asarray(CONDITION_CODES, dtype=object)[rng.integers(0, len(CONDITION_CODES), planted.height)]
    planted = planted.with_columns(pl.Series("condition", codes, dtype=pl.String))
    return planted.join(existing.select("person_id", "condition"), on=["person_id", "condition"], how="anti").unique(
        ["person_id", "condition"], keep="first", maintain_order=True
    )


def plant_bad_rows(
    frame: pl.DataFrame, table: str, extract_day: int, population: Population, rate: float, rng: np.random.Generator
) -> tuple[pl.DataFrame, dict[str, int]]:
    """`frame` (contract types plus `_person`) with planted rows appended; counts of planted rows by class."""
    never_opted = frame.filter(~pl.Series(population.opted_out[frame["_person"].to_numpy()]))
    if never_opted.height == 0:
        return frame, {}
    birth_floor = pl.Series(population.birth_floor_day).cast(pl.Date)
    extract = pl.lit(extract_day).cast(pl.Date)
    main = MAIN_DATE[table]
    counts: dict[str, int] = {}
    planted: list[pl.DataFrame] = []

    def sample(label: str, size: int) -> pl.DataFrame:
        rows = never_opted[rng.integers(0, never_opted.height, size)]
        rows = _new_keys(rows, table, label, rng)
        if table == "conditions":
            rows = _unique_condition_keys(rows, frame, rng)
        return rows

    def add(label: str, rows: pl.DataFrame) -> None:
        if rows.height:
            planted.append(rows.select(frame.columns))
            counts[label] = counts.get(label, 0) + rows.height

    n = _count(rate, frame.height)
    days = pl.Series(rng.integers(1, 60, n) * 86_400_000, dtype=pl.Int64).cast(pl.Duration("ms"))
    clear_others = [pl.lit(None, dtype=pl.Date).alias(c) for c in OTHER_DATES.get(table, ())]
    if table != "persons":
        rows = sample("unlinked", n)
        add("unlinked_person", rows.with_columns(_fake_ids(rng, rows.height, "unlinked")))
    rows = sample("future", n)
    add("future_date", rows.with_columns((extract + days[: rows.height]).alias(main), *clear_others))
    rows = sample("birth", n)
    floor = birth_floor.gather(rows["_person"])
    before = (floor - days[: rows.height]).alias(main)
    add("before_birth", rows.with_columns(before, *clear_others))
    if table == "apc_spells":
        rows = sample("order", n)
        add(
            "discharge_before_admission",
            rows.with_columns(
                (pl.col("admission_date") - days[: rows.height]).alias("discharge_date"),
                pl.lit(None, dtype=pl.Date).alias("discharge_ready_date"),
            ),
        )
    cost = "unit_cost" if table == "asc_events" else "cost"
    if cost in frame.columns:
        rows = sample("cost", n)
        add("negative_cost", rows.with_columns((-(pl.col(cost).abs().fill_null(10.0)) - 1).alias(cost)))
    if table in UNKNOWN_CODE:
        column, value = UNKNOWN_CODE[table]
        add("unknown_code", sample("code", n).with_columns(pl.lit(value).alias(column)))
    pairs = max(1, n // 2)
    rows = sample("dup", pairs)
    if cost in frame.columns:
        changed = rows.with_columns((pl.col(cost).fill_null(0.0) + 1).alias(cost))
    elif table == "persons":
        changed = rows.with_columns((pl.col("lsoa") + "X").alias("lsoa"))
    else:  # conditions: the copy says it was recorded a day earlier (a day later when that is the birth month)
        earlier = pl.col("recorded_date") - pl.duration(days=1)
        floor = birth_floor.gather(rows["_person"])
        moved = pl.when(earlier >= floor).then(earlier).otherwise(pl.col("recorded_date") + pl.duration(days=1))
        changed = rows.with_columns(moved.alias("recorded_date"))
    add("duplicate_key", pl.concat([rows, changed.select(rows.columns)]))
    column = MISSING_REQUIRED[table]
    add("missing_required", sample("missing", n).with_columns(pl.lit(None, dtype=frame[column].dtype).alias(column)))
    if not planted:
        return frame, counts
    return pl.concat([frame, *planted]), counts


def plant_bad_types(
    frame: pl.DataFrame, table: str, sources: np.ndarray, rate: float, rng: np.random.Generator
) -> tuple[pl.DataFrame, int]:
    """CSV only: every column as text, plus copies of clean rows (`sources`: row positions) with 'not-a-date'
    in a date column or 'abc' in an int column (alternately, where the table has an int column)."""
    text = frame.with_columns(pl.all().cast(pl.String))
    if len(sources) == 0 or table == "conditions":  # conditions: no int column, keyed by person and condition
        return text, 0
    n = _count(rate, len(sources))
    rows = text[sources[rng.integers(0, len(sources), n)]]
    if table == "persons":
        rows = rows.with_columns(_fake_ids(rng, n, "bad_type"))
    else:
        column = ID_COLUMN[table]
        numbers = pl.Series([f"XTYPE{i:07d}" for i in range(n)])
        rows = rows.with_columns((pl.col(column).str.slice(0, 1) + numbers).alias(column))
    int_column = BAD_INT_COLUMN.get(table)
    bad_int = pl.Series(np.arange(n) % 2 == 1) if int_column else pl.Series(np.zeros(n, bool))
    date_column = MAIN_DATE[table]
    rows = rows.with_columns(
        pl.when(bad_int).then(pl.col(date_column)).otherwise(pl.lit("not-a-date")).alias(date_column)
    )
    if int_column:
        rows = rows.with_columns(pl.when(bad_int).then(pl.lit("abc")).otherwise(pl.col(int_column)).alias(int_column))
    return pl.concat([text, rows]), n
