"""Baselines every model must beat; `models/evaluation.py` fits them on the model's fit rows and evaluates
them with the model, in the same pass and on the same rows.

1. "Last year's top users" (`PriorUseBaseline`): rank people by a prior-use column (e.g. cost_total_12m for
   high_cost, emergency_admissions_12m otherwise). The score is a count or cost, not a probability, so for
   Brier and calibration it is mapped to a probability by an isotonic fit of the outcome on the score over the
   fit rows (the same index dates the model was fitted on). The ranking (AUROC, AUPRC, top-k) uses the raw
   score; ties (many people have 0 admissions) are broken by the seeded random key of `evaluate`, i.e. a
   lottery within a tie, which is what a list built from that column alone would do.
2. A PARR-style logistic regression (`ClassicLogisticBaseline`) on a few classic predictors: age, sex, prior
   emergency admissions, number of long-term conditions (column names passed in), fitted on the fit rows.
3. The oracle (`OracleBaseline`): the true probability column of a synthetic frame, the ceiling.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from models.calibration import IsotonicCalibrator
from models.training import outcome_labels

ORACLE_NAME = "oracle (true probability)"


class PriorUseBaseline:
    """Last year's top users: rank by a prior-use column; isotonic map of that column for probabilities.

    The map is the same smoothed isotonic fit the model's calibrator uses (no exact 0 or 1 probabilities).
    """

    def __init__(self, score_col: str, name: str | None = None) -> None:
        self.score_col = score_col
        self.name = name or f"prior use ({score_col})"
        self.probability_map_: IsotonicCalibrator | None = None

    def fit(self, frame: pl.DataFrame, outcome: str) -> PriorUseBaseline:
        self.probability_map_ = IsotonicCalibrator().fit(self._score(frame), outcome_labels(frame, outcome))
        return self

    def _score(self, frame: pl.DataFrame) -> np.ndarray:
        # Missing prior use counts as none: the person is simply not on last year's list.
        return frame.get_column(self.score_col).cast(pl.Float64).fill_null(0.0).to_numpy()

    def rank_score(self, frame: pl.DataFrame) -> np.ndarray:
        return self._score(frame)

    def predict_proba(self, frame: pl.DataFrame) -> np.ndarray:
        if self.probability_map_ is None:
            raise RuntimeError("baseline is not fitted")
        return self.probability_map_.predict(self._score(frame))


class ClassicLogisticBaseline:
    """PARR-style logistic regression on a handful of classic predictors.

    Numeric columns are standardised (missing -> the fit-rows median); categorical columns are one-hot over
    the categories seen in the fit rows (unseen or missing -> all zeros). Lightly penalised (C=1.0) so that
    rare categories do not produce wild coefficients.
    """

    def __init__(
        self,
        numeric_cols: Sequence[str],
        categorical_cols: Sequence[str] = (),
        name: str = "logistic (classic predictors)",
        seed: int = 0,
    ) -> None:
        self.numeric_cols = list(numeric_cols)
        self.categorical_cols = list(categorical_cols)
        self.name = name
        self.seed = seed
        self.medians_: dict[str, float] = {}
        self.means_: dict[str, float] = {}
        self.scales_: dict[str, float] = {}
        self.categories_: dict[str, list[str]] = {}
        self.coef_: np.ndarray | None = None
        self.intercept_: float | None = None

    def _design(self, frame: pl.DataFrame) -> np.ndarray:
        columns = []
        for name in self.numeric_cols:
            values = frame.get_column(name).cast(pl.Float64).fill_null(self.medians_[name]).to_numpy()
            columns.append((values - self.means_[name]) / self.scales_[name])
        for name in self.categorical_cols:
            values = frame.get_column(name).cast(pl.String).to_numpy()
            for category in self.categories_[name][1:]:  # the first category is the reference
                columns.append((values == category).astype(np.float64))
        return np.column_stack(columns) if columns else np.zeros((frame.height, 0))

    def fit(self, frame: pl.DataFrame, outcome: str) -> ClassicLogisticBaseline:
        from sklearn.linear_model import LogisticRegression

        for name in self.numeric_cols:
            column = frame.get_column(name).cast(pl.Float64)
            median = column.median()
            self.medians_[name] = float(median) if median is not None else 0.0
            filled = column.fill_null(self.medians_[name])
            self.means_[name] = float(filled.mean())  # type: ignore[arg-type]
            std = float(filled.std() or 0.0)  # type: ignore[arg-type]
            self.scales_[name] = std if std > 0 else 1.0
        self.categories_ = {
            name: sorted(frame.get_column(name).cast(pl.String).drop_nulls().unique().to_list())
            for name in self.categorical_cols
        }
        lr = LogisticRegression(C=1.0, max_iter=1000, random_state=self.seed)
        lr.fit(self._design(frame), outcome_labels(frame, outcome).astype(np.int64))
        self.coef_ = lr.coef_[0].copy()
        self.intercept_ = float(lr.intercept_[0])
        return self

    def predict_proba(self, frame: pl.DataFrame) -> np.ndarray:
        if self.coef_ is None or self.intercept_ is None:
            raise RuntimeError("baseline is not fitted")
        z = self.intercept_ + self._design(frame) @ self.coef_
        return 0.5 * (1.0 + np.tanh(0.5 * z))

    def rank_score(self, frame: pl.DataFrame) -> np.ndarray:
        return self.predict_proba(frame)


class OracleBaseline:
    """The true probability, when known (synthetic data): what a perfect model would achieve."""

    def __init__(self, probability_col: str, name: str = ORACLE_NAME) -> None:
        self.probability_col = probability_col
        self.name = name

    def fit(self, frame: pl.DataFrame, outcome: str) -> OracleBaseline:
        return self

    def predict_proba(self, frame: pl.DataFrame) -> np.ndarray:
        return frame.get_column(self.probability_col).cast(pl.Float64).to_numpy()

    def rank_score(self, frame: pl.DataFrame) -> np.ndarray:
        return self.predict_proba(frame)


Baseline = PriorUseBaseline | ClassicLogisticBaseline | OracleBaseline


def standard_baselines(
    outcome: str,
    *,
    prior_use_col: str,
    classic_numeric_cols: Sequence[str],
    classic_categorical_cols: Sequence[str] = (),
    true_probability_col: str | None = None,
    seed: int = 0,
) -> list[Baseline]:
    """The three baselines for one outcome (the oracle only when a true-probability column exists)."""
    baselines: list[Baseline] = [
        PriorUseBaseline(prior_use_col, name="last year's top users"),
        ClassicLogisticBaseline(classic_numeric_cols, classic_categorical_cols, seed=seed),
    ]
    if true_probability_col is not None:
        baselines.append(OracleBaseline(true_probability_col))
    return baselines
