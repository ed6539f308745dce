"""Baselines every model must beat, evaluated exactly like the model.

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

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import polars as pl

from models.calibration import IsotonicCalibrator
from models.metrics import evaluate
from models.settings import TrainingSettings
from models.training import TrainedModel, outcome_labels

MODEL_NAME = "lightgbm"
ORACLE_NAME = "oracle (true probability)"
COMPARISON_SCHEMA = {
    "outcome": pl.String,
    "model": pl.String,
    "metric": pl.String,
    "estimate": pl.Float64,
    "lo": pl.Float64,
    "hi": pl.Float64,
}


class Scorer(Protocol):
    """What `compare` needs from a model or a baseline."""

    name: str

    def predict_proba(self, frame: pl.DataFrame) -> np.ndarray: ...

    def rank_score(self, frame: pl.DataFrame) -> np.ndarray: ...


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


class _ModelScorer:
    """Adapter: a TrainedModel ranks by raw log-odds (no calibrator ties) and reports calibrated p."""

    def __init__(self, model: TrainedModel, name: str = MODEL_NAME) -> None:
        self.model = model
        self.name = name

    def predict_proba(self, frame: pl.DataFrame) -> np.ndarray:
        return self.model.predict_proba(frame)

    def rank_score(self, frame: pl.DataFrame) -> np.ndarray:
        return self.model.predict_raw_logodds(frame)


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


def evaluate_models(
    frame: pl.DataFrame,
    model: TrainedModel,
    baselines: Sequence[Baseline],
    settings: TrainingSettings,
    seed: int | None = None,
) -> dict[str, dict[str, Any]]:
    """Fit the baselines on the model's fit rows and evaluate everything on its evaluation rows.

    The fit and evaluation rows come from the model's own time split (`model.split_`). All evaluations share
    one seed: their bootstrap replicates are paired.
    Returns {name: evaluate(...) result}, the model first.
    """
    seed = settings.seed if seed is None else seed
    outcome = model.outcome
    if model.split_ is None:
        raise ValueError("the model carries no time split: fit it first")
    fit_rows = model.split_.fit_rows(frame, outcome)
    eval_rows = model.split_.eval_rows(frame, outcome)
    y_eval = outcome_labels(eval_rows, outcome)

    scorers: list[Scorer] = [_ModelScorer(model)]
    for baseline in baselines:
        scorers.append(baseline.fit(fit_rows, outcome))
    results: dict[str, dict[str, Any]] = {}
    for scorer in scorers:
        if scorer.name in results:
            raise ValueError(f"two models are called {scorer.name!r}")
        results[scorer.name] = evaluate(
            y_eval, scorer.predict_proba(eval_rows), settings, seed=seed, rank_score=scorer.rank_score(eval_rows)
        )
    return results


def comparison_table(outcome: str, evaluations: Mapping[str, Mapping[str, Any]]) -> pl.DataFrame:
    """Tidy table (outcome, model, metric, estimate, lo, hi) from {name: evaluate result}."""
    rows = [
        {"outcome": outcome, "model": name, "metric": metric, **values}
        for name, evaluation in evaluations.items()
        for metric, values in evaluation["metrics"].items()
    ]
    return pl.DataFrame(rows, schema=COMPARISON_SCHEMA)


def compare(
    frame: pl.DataFrame,
    model: TrainedModel,
    baselines: Sequence[Baseline],
    settings: TrainingSettings,
    seed: int | None = None,
) -> pl.DataFrame:
    """Model and baselines side by side on the model's evaluation rows, as a tidy Polars table."""
    return comparison_table(model.outcome, evaluate_models(frame, model, baselines, settings, seed))


DEFAULT_PRINT_METRICS: tuple[str, ...] = (
    "auroc",
    "auprc",
    "brier",
    "calibration_slope",
    "calibration_intercept",
    "ppv_top_0.5pct",
    "ppv_top_2pct",
    "ppv_top_5pct",
    "ppv_top_20pct",
    "sensitivity_top_5pct",
    "events_captured_top_5pct",
)


def format_estimate(estimate: float | None, lo: float | None, hi: float | None, digits: int = 3) -> str:
    if estimate is None:
        return "n/a"
    if lo is None or hi is None:
        return f"{estimate:.{digits}f}"
    return f"{estimate:.{digits}f} ({lo:.{digits}f}-{hi:.{digits}f})"


def print_comparison(
    table: pl.DataFrame,
    metrics: Sequence[str] = DEFAULT_PRINT_METRICS,
    console: Any | None = None,
) -> None:
    """Print the comparison as one rich table per outcome: metrics down, models across, 95% intervals."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    for outcome in table.get_column("outcome").unique(maintain_order=True).to_list():
        part = table.filter(pl.col("outcome") == outcome)
        models = part.get_column("model").unique(maintain_order=True).to_list()
        rich_table = Table(title=f"{outcome}: estimate (95% bootstrap interval)")
        rich_table.add_column("metric")
        for name in models:
            rich_table.add_column(name, justify="right")
        for metric in metrics:
            cells = []
            for name in models:
                row = part.filter((pl.col("model") == name) & (pl.col("metric") == metric))
                if row.height == 0:
                    cells.append("")
                    continue
                values = row.row(0, named=True)
                digits = 0 if metric.startswith("events_captured") else 3
                cells.append(format_estimate(values["estimate"], values["lo"], values["hi"], digits))
            rich_table.add_row(metric, *cells)
        console.print(rich_table)
