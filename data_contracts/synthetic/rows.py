"""Small vectorised helpers shared by the row builders (counts to rows, days, ids, costs, date columns)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from data_contracts.synthetic.timeline import NULL_DAY

MISSING_COST_SHARE = 0.02  # costs left empty for the ingest to impute
ID_DIGITS = 10


def expand_counts(
    person: np.ndarray, period: np.ndarray, count: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One row per event: (person, period, rank of the event within its person-period)."""
    rows_person = np.repeat(person, count)
    rows_period = np.repeat(period, count)
    offsets = np.repeat(np.cumsum(count) - count, count)
    rank = np.arange(len(rows_person)) - offsets
    return rows_person, rows_period, rank.astype(np.int32)


def event_days(
    person: np.ndarray, period: np.ndarray, period_starts: np.ndarray, death_day: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """A uniformly random day in each row's period, not after the person's death."""
    start = period_starts[period].astype(np.int64)
    span = (period_starts[period + 1] - start).astype(np.int64)
    death = death_day[person].astype(np.int64)
    dies_here = (death != NULL_DAY) & (death >= start) & (death < start + span)
    span = np.where(dies_here, death - start + 1, span)
    return (start + np.floor(rng.random(len(person)) * span)).astype(np.int32)


def sequential_ids(order_keys: Sequence[np.ndarray]) -> np.ndarray:
    """1-based id numbers in the lexicographic order of `order_keys` (last key most significant, as numpy's
    lexsort): stable given the rows, increasing with the main sort key (the event day)."""
    order = np.lexsort(tuple(order_keys))
    number = np.empty(len(order), dtype=np.int64)
    number[order] = np.arange(1, len(order) + 1)
    return number


def id_column(prefix: str, number: np.ndarray, name: str) -> pl.Series:
    digits = pl.Series(name, number).cast(pl.String).str.zfill(ID_DIGITS)
    return pl.select((pl.lit(prefix) + digits).alias(name)).to_series()


def text_column(name: str, values: np.ndarray) -> pl.Series:
    """String series from an object array that may hold None (an all-None array would infer Object)."""
    if values.dtype == object and (values == None).any():  # noqa: E711 - elementwise comparison
        return pl.Series(name, values.tolist(), dtype=pl.String)
    return pl.Series(name, values, dtype=pl.String)


def date_column(name: str, days: np.ndarray) -> pl.Series:
    """Polars Date series from int day numbers; NULL_DAY becomes empty."""
    values = pl.Series(name, np.asarray(days, dtype=np.int32))
    return pl.select(pl.when(values != NULL_DAY).then(values).cast(pl.Date).alias(name)).to_series()


def mean_one_lognormal(rng: np.random.Generator, sd: float, size: int) -> np.ndarray:
    """Multiplicative noise with mean 1."""
    return rng.lognormal(-(sd**2) / 2, sd, size)


def pick(rng: np.random.Generator, values: Sequence[str], weights: Sequence[float] | None, size: int) -> np.ndarray:
    """Random codes (object array) with the given weights."""
    p = None if weights is None else np.asarray(weights, dtype=float) / np.sum(weights)
    return np.asarray(values, dtype=object)[rng.choice(len(values), size=size, p=p)]


def missing_costs(rng: np.random.Generator, size: int) -> np.ndarray:
    return rng.random(size) < MISSING_COST_SHARE
