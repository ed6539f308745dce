"""The time split of a training run, as one typed object: the index dates a model is fitted on, the index date it
is evaluated on, and which people's fit rows train, stop the boosting early and calibrate.

Time design: each fit index date's outcome window (index date + horizon) ends on or before the evaluation
index date, so no fit label overlaps the evaluation period. The same person may appear at several fit index
dates and again at the evaluation date (out-of-time validation, as SPARRA does); within the fit rows, every
row of a person falls in exactly one of train / early-stopping validation / calibration (`person_parts`).

A `TimeSplit` is planned from the span of the data (`TimeSplit.planned`) or chosen among the index dates a
frame holds (`TimeSplit.latest_eligible`); the fitted model carries it (`TrainedModel.split_`), the
evaluation and the baselines read their rows through it, and the registry stores it with `to_dict` /
`from_dict` (the only place its dates are written as text and read back).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import polars as pl

from data_contracts.dates import add_months
from models.settings import TrainingSettings

PERSON_COL = "person_id"
INDEX_DATE_COL = "index_date"
TRAIN, VALIDATION, CALIBRATION = "train", "validation", "calibration"
PARTS = (TRAIN, VALIDATION, CALIBRATION)


@dataclass(frozen=True)
class TimeSplit:
    """Fit index dates (oldest first) and the evaluation index date, for an outcome window of `horizon_months`."""

    fit_index_dates: tuple[date, ...]
    eval_index_date: date
    horizon_months: int
    # After evaluation the model that scores is refitted on these dates: every labelled period up to and
    # including the evaluation date (empty: no refit, the evaluated model scores).
    refit_index_dates: tuple[date, ...] = ()

    def __post_init__(self) -> None:
        if not self.fit_index_dates:
            raise ValueError("a time split needs at least one fit index date")
        for dates in (self.fit_index_dates, self.refit_index_dates):
            if list(dates) != sorted(set(dates)):
                raise ValueError("fit and refit index dates must be distinct and in order")
        if any(d > self.eval_index_date for d in self.refit_index_dates):
            raise ValueError("refit index dates must have labels: none may come after the evaluation index date")
        late = [d for d in self.fit_index_dates if add_months(d, self.horizon_months) > self.eval_index_date]
        if late:
            raise ValueError(
                f"fit index dates {[str(d) for d in late]} have {self.horizon_months}-month outcome windows that "
                f"overlap the evaluation period starting {self.eval_index_date}"
            )

    @property
    def index_dates(self) -> list[date]:
        """Every index date the split reads (fit, evaluation and refit dates), oldest first."""
        return sorted({*self.fit_index_dates, self.eval_index_date, *self.refit_index_dates})

    @classmethod
    def planned(
        cls, latest_data: date, earliest_data: date, horizon_months: int, settings: TrainingSettings
    ) -> TimeSplit:
        """Evaluate at the latest index date whose outcome window is complete; fit on earlier dates, every
        `settings.index_spacing_months`, whose own windows close by then and which have at least
        `settings.min_history_months` of history before them (at most `settings.max_fit_index_dates`)."""
        eval_index = add_months(latest_data, -horizon_months)
        candidates = _fit_dates(add_months(eval_index, -horizon_months), earliest_data, settings)
        if not candidates:
            raise ValueError(
                f"not enough history to train: data run from {earliest_data} to {latest_data}, and a fit index "
                f"date needs {settings.min_history_months} months of history plus two {horizon_months}-month "
                "windows after it"
            )
        refit = _fit_dates(eval_index, earliest_data, settings) if settings.refit_on_all_labelled else ()
        return cls(candidates, eval_index, horizon_months, refit)

    @classmethod
    def latest_eligible(
        cls, index_dates: Iterable[date], eval_index_date: date, horizon_months: int, max_fit_index_dates: int
    ) -> TimeSplit:
        """The split for an evaluation index date among the index dates a frame holds.

        Eligible: index_date + horizon_months <= eval_index_date (the fit outcome window has closed by the time
        the evaluation period starts). The latest `max_fit_index_dates` eligible dates are kept: recent data
        reflect current practice, and older dates add people-time with diminishing returns.
        """
        distinct = sorted(set(index_dates))
        eligible = [d for d in distinct if add_months(d, horizon_months) <= eval_index_date]
        if not eligible:
            raise ValueError(
                f"no index date has its {horizon_months}-month outcome window closed by {eval_index_date}; "
                f"available: {[str(d) for d in distinct]}"
            )
        return cls(tuple(eligible[-max_fit_index_dates:]), eval_index_date, horizon_months)

    # -- rows --------------------------------------------------------------------------------------

    def fit_rows(self, frame: pl.DataFrame, outcome: str) -> pl.DataFrame:
        """Rows at the fit index dates with a label for `outcome` (people at risk)."""
        return frame.filter(pl.col(outcome).is_not_null() & pl.col(INDEX_DATE_COL).is_in(self.fit_index_dates))

    def refit_rows(self, frame: pl.DataFrame, outcome: str) -> pl.DataFrame:
        """Rows at the refit index dates with a label for `outcome`."""
        return frame.filter(pl.col(outcome).is_not_null() & pl.col(INDEX_DATE_COL).is_in(self.refit_index_dates))

    def eval_rows(self, frame: pl.DataFrame, outcome: str) -> pl.DataFrame:
        """Rows at the evaluation index date with a label for `outcome`."""
        return frame.filter(pl.col(outcome).is_not_null() & (pl.col(INDEX_DATE_COL) == self.eval_index_date))

    # -- storage -----------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "fit_index_dates": [d.isoformat() for d in self.fit_index_dates],
            "eval_index_date": self.eval_index_date.isoformat(),
            "horizon_months": self.horizon_months,
            "refit_index_dates": [d.isoformat() for d in self.refit_index_dates],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TimeSplit:
        return cls(
            tuple(date.fromisoformat(d) for d in data["fit_index_dates"]),
            date.fromisoformat(data["eval_index_date"]),
            int(data["horizon_months"]),
            tuple(date.fromisoformat(d) for d in data.get("refit_index_dates", ())),
        )


def _fit_dates(last_fit: date, earliest_data: date, settings: TrainingSettings) -> tuple[date, ...]:
    """Up to `settings.max_fit_index_dates` dates every `settings.index_spacing_months` back from `last_fit`, each
    with at least `settings.min_history_months` of data before it, oldest first. The latest dates come first
    because they have the most history behind them (their long windows are filled, as at scoring)."""
    candidates: list[date] = []
    step = 0
    while len(candidates) < settings.max_fit_index_dates:
        candidate = add_months(last_fit, -settings.index_spacing_months * step)
        if candidate < add_months(earliest_data, settings.min_history_months):
            break
        candidates.append(candidate)
        step += 1
    return tuple(sorted(candidates))


def assign_person_parts(
    person_ids: Sequence[str] | np.ndarray | pl.Series,
    validation_fraction: float,
    calibration_fraction: float,
    seed: int,
) -> np.ndarray:
    """'train' / 'validation' / 'calibration' per row, the same for all rows of a person.

    People (not rows) are shuffled with a seeded permutation of the sorted distinct ids, so the split is
    deterministic for a given set of people and seed.
    """
    if validation_fraction <= 0 or calibration_fraction <= 0 or validation_fraction + calibration_fraction >= 1:
        raise ValueError("validation and calibration fractions must be > 0 and sum to < 1")
    ids = pl.Series(PERSON_COL, person_ids).cast(pl.String).to_numpy()
    people, row_person = np.unique(ids, return_inverse=True)
    shuffled = np.random.default_rng(seed).permutation(len(people))
    n_validation = math.ceil(validation_fraction * len(people))
    n_calibration = math.ceil(calibration_fraction * len(people))
    person_part = np.full(len(people), TRAIN, dtype=object)
    person_part[shuffled[:n_validation]] = VALIDATION
    person_part[shuffled[n_validation : n_validation + n_calibration]] = CALIBRATION
    return person_part[row_person].astype(str)


def person_parts(fit_rows: pl.DataFrame, settings: TrainingSettings) -> dict[str, pl.DataFrame]:
    """The fit rows cut into train / validation / calibration by person (`assign_person_parts`)."""
    parts = assign_person_parts(
        fit_rows.get_column(PERSON_COL), settings.validation_fraction, settings.calibration_fraction, settings.seed
    )
    marked = fit_rows.with_columns(pl.Series("_part", parts))
    return {part: marked.filter(pl.col("_part") == part).drop("_part") for part in PARTS}
