"""Fit one LightGBM risk model per outcome, out of time, with a grouped split and a separate calibration set.

Time design: each fit index date's outcome window (index date + horizon) ends on or before the evaluation
index date, so no fit label overlaps the evaluation period. The same person may appear at several fit index
dates and again at the evaluation date (out-of-time validation, as SPARRA does); within the fit rows, every
row of a person falls in exactly one of train / early-stopping validation / calibration.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from datetime import date
from typing import Any

import lightgbm as lgb
import numpy as np
import polars as pl

from data_contracts.dates import add_months
from models.metrics import evaluate, subgroup_metrics
from models.settings import TrainingSettings

PERSON_COL = "person_id"
INDEX_DATE_COL = "index_date"
TRAIN, VALIDATION, CALIBRATION = "train", "validation", "calibration"


# --------------------------------------------------------------------------------------------- time split


def split_index_dates(
    index_dates: Iterable[date],
    eval_index_date: date,
    horizon_months: int,
    settings: TrainingSettings,
) -> list[date]:
    """The fit index dates for an evaluation index date, oldest first.

    Eligible: index_date + horizon_months <= eval_index_date (the fit outcome window has closed by the time
    the evaluation period starts). The latest `settings.max_fit_index_dates` eligible dates are kept: recent
    data reflect current practice, and older dates add people-time with diminishing returns.
    """
    distinct = sorted(set(index_dates))
    eligible = [d for d in distinct if add_months(d, horizon_months) <= eval_index_date]
    if not eligible:
        raise ValueError(
            f"no index date has its {horizon_months}-month outcome window closed by {eval_index_date}; "
            f"available: {[str(d) for d in distinct]}"
        )
    return eligible[-settings.max_fit_index_dates :]


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


# --------------------------------------------------------------------------------------------- calibrators


class IsotonicCalibrator:
    """Isotonic map from raw log-odds to probability, stored as breakpoints (JSON-exact).

    Plain isotonic regression gives the extreme blocks a probability of exactly 0 or 1 when a small tail
    block of the calibration set happens to have no events (or only events): a "0% risk" that is never true
    and that wrecks the calibration slope. So each block's rate is estimated as (events + 0.5) / (n + 1)
    (Jeffreys prior, negligible for large blocks) and the block rates are made monotone again by a weighted
    isotonic pass. Predictions interpolate linearly between block end points and are flat beyond them, as
    sklearn's IsotonicRegression(out_of_bounds="clip") does.
    """

    kind = "isotonic"

    def __init__(self, prior_events: float = 0.5, prior_rows: float = 1.0) -> None:
        self.prior_events = prior_events
        self.prior_rows = prior_rows
        self.x_thresholds_: np.ndarray | None = None
        self.y_thresholds_: np.ndarray | None = None

    def fit(self, raw_logodds: np.ndarray, y: np.ndarray) -> IsotonicCalibrator:
        from sklearn.isotonic import IsotonicRegression

        x = np.asarray(raw_logodds, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        order = np.argsort(x, kind="stable")
        x, y = x[order], y[order]
        iso = IsotonicRegression(out_of_bounds="clip", increasing=True).fit(x, y)
        # On its own training points the fit is piecewise constant: runs of equal values are the blocks.
        fitted = iso.predict(x)
        starts = np.flatnonzero(np.r_[True, fitted[1:] != fitted[:-1]])
        ends = np.r_[starts[1:], len(x)] - 1
        rows = np.diff(np.r_[starts, len(x)]).astype(np.float64)
        events = np.add.reduceat(y, starts)
        smoothed = (events + self.prior_events) / (rows + self.prior_rows)
        smoothed = IsotonicRegression(increasing=True).fit_transform(
            np.arange(len(rows), dtype=np.float64), smoothed, sample_weight=rows + self.prior_rows
        )
        # Each block spans [x of its first row, x of its last row]; one point if they coincide.
        x_points = np.column_stack([x[starts], x[ends]]).ravel()
        y_points = np.repeat(smoothed, 2)
        keep = np.r_[True, x_points[1:] != x_points[:-1]]
        self.x_thresholds_ = x_points[keep]
        self.y_thresholds_ = y_points[keep]
        return self

    def predict(self, raw_logodds: np.ndarray) -> np.ndarray:
        if self.x_thresholds_ is None or self.y_thresholds_ is None:
            raise RuntimeError("calibrator is not fitted")
        return np.interp(np.asarray(raw_logodds, dtype=np.float64), self.x_thresholds_, self.y_thresholds_)

    def to_dict(self) -> dict[str, Any]:
        assert self.x_thresholds_ is not None and self.y_thresholds_ is not None
        return {
            "kind": self.kind,
            "prior_events": self.prior_events,
            "prior_rows": self.prior_rows,
            "x": self.x_thresholds_.tolist(),
            "y": self.y_thresholds_.tolist(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IsotonicCalibrator:
        calibrator = cls(float(data["prior_events"]), float(data["prior_rows"]))
        calibrator.x_thresholds_ = np.asarray(data["x"], dtype=np.float64)
        calibrator.y_thresholds_ = np.asarray(data["y"], dtype=np.float64)
        return calibrator


class PlattCalibrator:
    """Logistic recalibration p = sigmoid(a + b * raw_logodds), unpenalised."""

    kind = "platt"

    def __init__(self) -> None:
        self.slope_: float | None = None
        self.intercept_: float | None = None

    def fit(self, raw_logodds: np.ndarray, y: np.ndarray) -> PlattCalibrator:
        from sklearn.linear_model import LogisticRegression

        # C=inf: no penalty (scikit-learn >= 1.8 deprecates penalty="none"/None in favour of this).
        lr = LogisticRegression(C=np.inf, max_iter=1000)
        lr.fit(np.asarray(raw_logodds, dtype=np.float64).reshape(-1, 1), np.asarray(y, dtype=np.int64))
        self.slope_ = float(lr.coef_[0, 0])
        self.intercept_ = float(lr.intercept_[0])
        return self

    def predict(self, raw_logodds: np.ndarray) -> np.ndarray:
        if self.slope_ is None or self.intercept_ is None:
            raise RuntimeError("calibrator is not fitted")
        z = self.intercept_ + self.slope_ * np.asarray(raw_logodds, dtype=np.float64)
        return 0.5 * (1.0 + np.tanh(0.5 * z))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "slope": self.slope_, "intercept": self.intercept_}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PlattCalibrator:
        calibrator = cls()
        calibrator.slope_ = float(data["slope"])
        calibrator.intercept_ = float(data["intercept"])
        return calibrator


Calibrator = IsotonicCalibrator | PlattCalibrator


def calibration_kind(setting: str, calibration_events: int, isotonic_min_events: int) -> str:
    """The calibrator a model gets: the setting, with "auto" resolved by the events available to calibrate."""
    if setting != "auto":
        return setting
    return "isotonic" if calibration_events >= isotonic_min_events else "platt"


def make_calibrator(kind: str) -> Calibrator:
    if kind == "isotonic":
        return IsotonicCalibrator()
    if kind == "platt":
        return PlattCalibrator()
    raise ValueError(f"unknown calibration {kind!r}: use 'isotonic', 'platt' or 'auto'")


def calibrator_from_dict(data: Mapping[str, Any]) -> Calibrator:
    kind = data["kind"]
    if kind == "isotonic":
        return IsotonicCalibrator.from_dict(data)
    if kind == "platt":
        return PlattCalibrator.from_dict(data)
    raise ValueError(f"unknown calibrator kind {kind!r}")


# --------------------------------------------------------------------------------------------- the model


def lightgbm_params(settings: TrainingSettings) -> dict[str, Any]:
    """LightGBM parameters with every seed pinned and deterministic histogram construction."""
    params = asdict(settings.lgbm)
    params.update(
        {
            "metric": "binary_logloss",
            "seed": settings.seed,
            "bagging_seed": settings.seed + 1,
            "feature_fraction_seed": settings.seed + 2,
            "data_random_seed": settings.seed + 3,
            "deterministic": True,
            # deterministic=True needs a fixed row/col-wise choice, otherwise LightGBM picks by timing.
            "force_row_wise": True,
        }
    )
    return params


class TrainedModel:
    """A fitted LightGBM model for one outcome plus its calibrator, encoding and evaluation.

    Parameters (stored as given): outcome, feature_cols, categorical_cols (a subset of feature_cols),
    settings. Learned state ends in `_`: booster_, calibrator_, feature_dtypes_, categories_,
    training_summary_, metrics_, subgroup_metrics_, importance_.

    Categorical columns are encoded as integer codes over the category list seen in the training part
    (sorted, stored in `categories_`); a category unseen at fit time, or null, becomes missing (NaN), which
    LightGBM sends down the "not in the category set" branch, so new categories at scoring time do not fail.
    """

    def __init__(
        self,
        outcome: str,
        feature_cols: Sequence[str],
        categorical_cols: Sequence[str] = (),
        settings: TrainingSettings | None = None,
    ) -> None:
        self.outcome = outcome
        self.feature_cols = list(feature_cols)
        self.categorical_cols = list(categorical_cols)
        self.settings = settings or TrainingSettings()
        unknown = set(self.categorical_cols) - set(self.feature_cols)
        if unknown:
            raise ValueError(f"categorical columns not among the features: {sorted(unknown)}")
        self.booster_: lgb.Booster | None = None
        self.calibrator_: Calibrator | None = None
        self.feature_dtypes_: dict[str, str] = {}
        self.categories_: dict[str, list[str]] = {}
        self.training_summary_: dict[str, Any] = {}
        self.metrics_: dict[str, Any] = {}
        self.subgroup_metrics_: list[dict[str, Any]] = []
        self.importance_: list[dict[str, Any]] = []

    # -- encoding ----------------------------------------------------------------------------------

    def _learn_encoding(self, frame: pl.DataFrame) -> None:
        self.feature_dtypes_ = {name: str(frame.schema[name]) for name in self.feature_cols}
        self.categories_ = {
            name: sorted(frame.get_column(name).cast(pl.String).drop_nulls().unique().to_list())
            for name in self.categorical_cols
        }

    def design_matrix(self, frame: pl.DataFrame) -> np.ndarray:
        """Float64 matrix in feature order: numbers as they are, booleans 0/1, categories as codes, null = NaN."""
        missing = [name for name in self.feature_cols if name not in frame.columns]
        if missing:
            raise ValueError(f"frame lacks feature columns: {missing}")
        exprs = []
        for name in self.feature_cols:
            if name in self.categories_:
                codes = {category: float(code) for code, category in enumerate(self.categories_[name])}
                exprs.append(pl.col(name).cast(pl.String).replace_strict(codes, default=None, return_dtype=pl.Float64))
            else:
                exprs.append(pl.col(name).cast(pl.Float64))
        matrix = frame.select(exprs).to_numpy(allow_copy=True).astype(np.float64, copy=False)
        return matrix

    @property
    def categorical_indices(self) -> list[int]:
        return [self.feature_cols.index(name) for name in self.categorical_cols]

    # -- fitting -----------------------------------------------------------------------------------

    def fit(self, train: pl.DataFrame, validation: pl.DataFrame, calibration: pl.DataFrame) -> TrainedModel:
        """Boost on `train` with early stopping on `validation`, then calibrate on `calibration`."""
        settings = self.settings
        self._learn_encoding(train)
        x_train, y_train = self.design_matrix(train), outcome_labels(train, self.outcome)
        x_valid, y_valid = self.design_matrix(validation), outcome_labels(validation, self.outcome)
        params = lightgbm_params(settings)
        train_set = lgb.Dataset(
            x_train,
            label=y_train,
            feature_name=self.feature_cols,
            categorical_feature=self.categorical_indices,
            params=params,
            free_raw_data=True,
        )
        valid_set = lgb.Dataset(x_valid, label=y_valid, reference=train_set)
        started = time.perf_counter()
        booster = lgb.train(
            params,
            train_set,
            num_boost_round=settings.num_boost_round,
            valid_sets=[valid_set],
            valid_names=["validation"],
            callbacks=[lgb.early_stopping(settings.early_stopping_rounds, first_metric_only=True, verbose=False)],
        )
        train_seconds = time.perf_counter() - started
        best_iteration = int(booster.best_iteration) if booster.best_iteration > 0 else booster.current_iteration()
        # Keep only the trees used for prediction, so the in-memory model is exactly what model.txt holds.
        self.booster_ = lgb.Booster(model_str=booster.model_to_string(num_iteration=best_iteration))

        raw_calibration = self.predict_raw_logodds(calibration)
        calibration_y = outcome_labels(calibration, self.outcome)
        kind = calibration_kind(settings.calibration, int(calibration_y.sum()), settings.isotonic_min_events)
        self.calibrator_ = make_calibrator(kind).fit(raw_calibration, calibration_y)
        self.training_summary_ = {
            "outcome": self.outcome,
            "best_iteration": best_iteration,
            "train_seconds": round(train_seconds, 3),
            "parts": {
                TRAIN: _part_summary(train, self.outcome),
                VALIDATION: _part_summary(validation, self.outcome),
                CALIBRATION: _part_summary(calibration, self.outcome),
            },
            "calibration": kind,
            "lightgbm_version": lgb.__version__,
        }
        return self

    # -- prediction --------------------------------------------------------------------------------

    def _require_booster(self) -> lgb.Booster:
        if self.booster_ is None:
            raise RuntimeError("model is not fitted")
        return self.booster_

    def predict_raw_logodds(self, frame: pl.DataFrame) -> np.ndarray:
        """The booster's output before calibration (log-odds). Rank by this: it breaks calibrator ties."""
        booster = self._require_booster()
        return np.asarray(booster.predict(self.design_matrix(frame), raw_score=True), dtype=np.float64)

    def predict_proba(self, frame: pl.DataFrame) -> np.ndarray:
        """Calibrated probability of the outcome for each row."""
        if self.calibrator_ is None:
            raise RuntimeError("model is not calibrated")
        return self.calibrator_.predict(self.predict_raw_logodds(frame))

    def contributions(self, frame: pl.DataFrame) -> np.ndarray:
        """TreeSHAP contributions on the log-odds scale: n x (features + 1), last column the base value."""
        booster = self._require_booster()
        return np.asarray(booster.predict(self.design_matrix(frame), pred_contrib=True), dtype=np.float64)


def outcome_labels(frame: pl.DataFrame, outcome: str) -> np.ndarray:
    labels = frame.get_column(outcome)
    if labels.null_count():
        raise ValueError(f"{outcome} has null labels: drop rows not at risk first")
    return labels.cast(pl.Int8).to_numpy().astype(np.float64)


def _part_summary(frame: pl.DataFrame, outcome: str) -> dict[str, Any]:
    return {
        "rows": frame.height,
        "people": frame.get_column(PERSON_COL).n_unique(),
        "events": int(frame.get_column(outcome).cast(pl.Int64).sum()),
        "index_dates": sorted(str(d) for d in frame.get_column(INDEX_DATE_COL).unique().to_list()),
    }


def mean_abs_contributions(model: TrainedModel, frame: pl.DataFrame, max_rows: int, seed: int) -> list[dict[str, Any]]:
    """Mean |contribution| per feature (log-odds) on a seeded sample of at most `max_rows` rows."""
    sample = frame if frame.height <= max_rows else frame.sample(n=max_rows, seed=seed)
    contrib = model.contributions(sample)[:, :-1]
    mean_abs = np.abs(contrib).mean(axis=0)
    order = np.argsort(-mean_abs, kind="stable")
    return [
        {"feature": model.feature_cols[i], "mean_abs_contribution": float(mean_abs[i]), "rows": sample.height}
        for i in order
    ]


def train_outcome(
    frame: pl.DataFrame,
    outcome: str,
    feature_cols: Sequence[str],
    categorical_cols: Sequence[str],
    eval_index_date: date,
    settings: TrainingSettings,
    *,
    horizon_months: int = 12,
    subgroup_cols: Sequence[str] = (),
) -> TrainedModel:
    """Fit, calibrate and evaluate the model for `outcome` with the evaluation index date held out.

    Rows whose label is null (not at risk) are dropped for this outcome. `horizon_months` is the outcome
    window (pass the feature layer's OutcomeSettings.horizon_months). `subgroup_cols` are columns of
    `frame` to report subgroup metrics by (e.g. age_band, sex, imd_quintile, ethnicity_group).
    """
    needed = [PERSON_COL, INDEX_DATE_COL, outcome, *feature_cols, *subgroup_cols]
    missing = [name for name in needed if name not in frame.columns]
    if missing:
        raise ValueError(f"training frame lacks columns: {missing}")
    labelled = frame.filter(pl.col(outcome).is_not_null())
    fit_dates = split_index_dates(
        labelled.get_column(INDEX_DATE_COL).unique().to_list(), eval_index_date, horizon_months, settings
    )
    fit_rows = labelled.filter(pl.col(INDEX_DATE_COL).is_in(fit_dates))
    eval_rows = labelled.filter(pl.col(INDEX_DATE_COL) == eval_index_date)
    if eval_rows.height == 0:
        raise ValueError(f"no labelled rows at the evaluation index date {eval_index_date}")

    parts = assign_person_parts(
        fit_rows.get_column(PERSON_COL), settings.validation_fraction, settings.calibration_fraction, settings.seed
    )
    fit_rows = fit_rows.with_columns(pl.Series("_part", parts))
    model = TrainedModel(outcome, feature_cols, categorical_cols, settings)
    model.fit(
        fit_rows.filter(pl.col("_part") == TRAIN).drop("_part"),
        fit_rows.filter(pl.col("_part") == VALIDATION).drop("_part"),
        fit_rows.filter(pl.col("_part") == CALIBRATION).drop("_part"),
    )

    y_eval = outcome_labels(eval_rows, outcome)
    raw_eval = model.predict_raw_logodds(eval_rows)
    assert model.calibrator_ is not None
    p_eval = model.calibrator_.predict(raw_eval)
    model.metrics_ = evaluate(y_eval, p_eval, settings, seed=settings.seed, rank_score=raw_eval)
    if subgroup_cols:
        model.subgroup_metrics_ = subgroup_metrics(
            y_eval,
            p_eval,
            {name: eval_rows.get_column(name) for name in subgroup_cols},
            rank_score=raw_eval,
            flag_fraction=settings.subgroup_flag_fraction,
            min_n=settings.subgroup_min_n,
            min_events=settings.subgroup_min_events,
            seed=settings.seed,
        ).to_dicts()
    model.importance_ = mean_abs_contributions(model, eval_rows, settings.explain_sample_rows, settings.seed)
    model.training_summary_.update(
        {
            "horizon_months": horizon_months,
            "fit_index_dates": [str(d) for d in fit_dates],
            "eval_index_date": str(eval_index_date),
            "fit_rows": fit_rows.height,
            "fit_people": fit_rows.get_column(PERSON_COL).n_unique(),
            "fit_events": int(fit_rows.get_column(outcome).cast(pl.Int64).sum()),
            "eval_rows": eval_rows.height,
            "eval_people": eval_rows.get_column(PERSON_COL).n_unique(),
            "eval_events": int(y_eval.sum()),
            "rows_not_at_risk_all_dates": frame.height - labelled.height,
            "features": len(model.feature_cols),
            "subgroup_cols": list(subgroup_cols),
        }
    )
    return model
