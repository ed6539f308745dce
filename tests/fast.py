"""Training settings and the time split for fast test fits, shared by the model and registry tests."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import polars as pl

from models.settings import LightGBMParams, TrainingSettings
from models.split import INDEX_DATE_COL, TimeSplit
from models.synthetic import CATEGORICAL_FEATURES, FEATURES
from models.training import TrainedModel, train_outcome


def fast_training_settings(**changes: object) -> TrainingSettings:
    """One thread: on a shared 2-core machine two OpenMP threads contend badly with other jobs. A higher
    learning rate and fewer bootstrap replicates keep the tests fast; the code paths are the same. Isotonic
    calibration by name: tests exercise it directly, and `auto` has its own test."""
    settings = TrainingSettings(
        bootstrap_samples=50, calibration="isotonic", lgbm=LightGBMParams(num_threads=1, learning_rate=0.1)
    )
    return replace(settings, **changes)  # type: ignore[arg-type]


def latest_split(frame: pl.DataFrame, eval_index_date: date, horizon_months: int = 12) -> TimeSplit:
    """The split the model tests fit with: the latest eligible index dates of `frame` before the evaluation date."""
    dates = frame.get_column(INDEX_DATE_COL).unique().to_list()
    return TimeSplit.latest_eligible(dates, eval_index_date, horizon_months, TrainingSettings().max_fit_index_dates)


def fit_on_synthetic_frame(frame: pl.DataFrame, outcome: str, eval_index_date: date) -> TrainedModel:
    """The full-feature model of the synthetic training frame, with the fast settings and the latest split."""
    return train_outcome(
        frame,
        outcome,
        FEATURES,
        CATEGORICAL_FEATURES,
        latest_split(frame, eval_index_date),
        fast_training_settings(),
    )
