"""Fit one LightGBM risk model per outcome on the fit rows of its time split, and calibrate it.

Fitting only fits: the time split and the person-grouped parts are `models/split.py`, the calibrators
`models/calibration.py`, and the evaluation of the model beside its baselines `models/evaluation.py`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

import lightgbm as lgb
import numpy as np
import polars as pl

from models.calibration import Calibrator, calibration_kind, make_calibrator, shift_to
from models.metrics import auroc_score, auroc_standard_error
from models.settings import TrainingSettings
from models.split import CALIBRATION, INDEX_DATE_COL, PERSON_COL, TRAIN, VALIDATION, TimeSplit, person_parts

log = logging.getLogger("riskstrat.train")

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
    """A fitted LightGBM model for one outcome plus its calibrator, encoding and time split.

    Parameters (stored as given): outcome, feature_cols, categorical_cols (a subset of feature_cols),
    settings. Learned state ends in `_`: booster_, calibrator_, feature_dtypes_, categories_,
    training_summary_, split_ (the `TimeSplit` it was fitted with).

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
        self.split_: TimeSplit | None = None

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

    def fit(
        self,
        train: pl.DataFrame,
        validation: pl.DataFrame,
        calibration: pl.DataFrame,
        encoding_from: TrainedModel | None = None,
    ) -> TrainedModel:
        """Boost on `train` with early stopping on `validation`, then calibrate on `calibration` and correct the
        calibration in the large on its rows at the newest index date. `encoding_from`: reuse that model's
        category encoding (a refit keeps the evaluated model's, so both read the same features.json)."""
        settings = self.settings
        if encoding_from is None:
            self._learn_encoding(train)
        else:
            self.feature_dtypes_ = dict(encoding_from.feature_dtypes_)
            self.categories_ = {name: list(values) for name, values in encoding_from.categories_.items()}
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

        # Held out from growing the trees: the calibration part, and the validation part (it only chose when to
        # stop boosting).
        raw_part, y_part = self.predict_raw_logodds(calibration), outcome_labels(calibration, self.outcome)
        raw_held, y_held = np.r_[raw_part, self.predict_raw_logodds(validation)], np.r_[y_part, y_valid]
        dates_held = pl.concat([calibration, validation], how="vertical").get_column(INDEX_DATE_COL).to_numpy()
        calibration_events = int(y_part.sum())
        warning = None
        pooled = calibration_events < settings.calibration_min_events
        # Too few events in the calibration part: calibrate on both held-out parts pooled.
        raw_calibration, calibration_y = (raw_held, y_held) if pooled else (raw_part, y_part)
        if pooled:
            warning = calibration_warning(
                self.outcome, calibration_events, int(calibration_y.sum()), settings.calibration_min_events
            )
            log.warning(warning)
        kind = calibration_kind(settings.calibration, int(calibration_y.sum()), settings.isotonic_min_events)
        self.calibrator_ = make_calibrator(kind, settings.calibration_prior_strength).fit(
            raw_calibration, calibration_y
        )
        in_the_large = None
        if settings.recalibrate_in_the_large:
            # The pooled fit dates average over years; the newest one is closest to the year being scored. Its
            # level is read from all its held-out rows, and believed in proportion to the evidence: the shift has
            # a prior sd of `calibration_drift_sd` log-odds, so a few hundred events move it about half way.
            newest = dates_held == dates_held.max()
            before = float(self.calibrator_.predict(raw_held[newest]).sum())
            shift = shift_to(self.calibrator_, raw_held[newest], y_held[newest], settings.calibration_drift_sd**-2)
            in_the_large = {
                "index_date": str(dates_held.max())[:10],
                "rows": int(newest.sum()),
                "events": int(y_held[newest].sum()),
                "expected_before": round(before, 3),
                "shift_logodds": shift,
            }
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
            "calibration_rows": len(calibration_y),
            "calibration_events": int(calibration_y.sum()),
            "calibration_warning": warning,
            "calibration_in_the_large": in_the_large,
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


def calibration_warning(outcome: str, part_events: int, pooled_events: int, min_events: int) -> str:
    """The plain warning a model with too few calibration events carries (card, log, training summary)."""
    return (
        f"The {outcome} risks rest on few events: the calibration part held {part_events} (fewer than "
        f"{min_events}), so it was pooled with the validation part ({pooled_events} events) and the map shrunk "
        "towards the model's own probabilities. Read these risks as approximate: their order is sound, their "
        "level less so."
    )


def scoring_calibration_warning(training_summary: Mapping[str, Any]) -> str | None:
    """The calibration warning of the model that scores, from a registered version's training summary: the
    refit's when the refit scores, else the evaluated model's."""
    refit = training_summary.get("refit") or {}
    if refit.get("refitted"):
        return refit.get("calibration_warning")
    return training_summary.get("calibration_warning")


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


def train_outcome(
    frame: pl.DataFrame,
    outcome: str,
    feature_cols: Sequence[str],
    categorical_cols: Sequence[str],
    split: TimeSplit,
    settings: TrainingSettings,
) -> TrainedModel:
    """Fit and calibrate the model for `outcome` on the fit rows of `split` (its evaluation date held out).

    Rows whose label is null (not at risk) are dropped for this outcome. The model carries `split` as
    `split_`; `models.evaluation.evaluate_outcome` evaluates it.
    """
    needed = [PERSON_COL, INDEX_DATE_COL, outcome, *feature_cols]
    missing = [name for name in needed if name not in frame.columns]
    if missing:
        raise ValueError(f"training frame lacks columns: {missing}")
    fit_rows = split.fit_rows(frame, outcome)
    eval_rows = split.eval_rows(frame, outcome)
    if eval_rows.height == 0:
        raise ValueError(f"no labelled rows at the evaluation index date {split.eval_index_date}")

    parts = person_parts(fit_rows, settings)
    model = TrainedModel(outcome, feature_cols, categorical_cols, settings)
    model.fit(parts[TRAIN], parts[VALIDATION], parts[CALIBRATION])
    model.split_ = split
    model.training_summary_.update(
        {
            "fit_rows": fit_rows.height,
            "fit_people": fit_rows.get_column(PERSON_COL).n_unique(),
            "fit_events": int(fit_rows.get_column(outcome).cast(pl.Int64).sum()),
            "eval_rows": eval_rows.height,
            "eval_people": eval_rows.get_column(PERSON_COL).n_unique(),
            "eval_events": int(eval_rows.get_column(outcome).cast(pl.Int64).sum()),
            "rows_not_at_risk_all_dates": frame.filter(pl.col(outcome).is_null()).height,
            "features": len(model.feature_cols),
        }
    )
    return model


def refit_outcome(frame: pl.DataFrame, evaluated: TrainedModel) -> tuple[TrainedModel | None, dict[str, Any]]:
    """Refit `evaluated` on its split's refit dates (every labelled period up to the evaluation date), for scoring.

    Same features, encoding and settings; its own person parts, early stopping and calibration (corrected in the
    large at the newest date, the evaluation date). The check: on the refit's calibration people at the newest
    refit date (held out from its boosting, and a date the evaluated model never saw), the refit must rank at
    least as well as the evaluated model (AUROC within `promotion_auroc_tolerance` or two standard errors, whichever
    is wider). Returns the refit, or None
    when there are no refit dates or the check fails, and the check's figures (stored and on the model card).
    """
    split = evaluated.split_
    if split is None:
        raise ValueError("fit the model before refitting it")
    settings = evaluated.settings
    outcome = evaluated.outcome
    if not split.refit_index_dates:
        return None, {"refitted": False, "reason": "no refit dates (training.refit_on_all_labelled is off)"}
    rows = split.refit_rows(frame, outcome)
    parts = person_parts(rows, settings)
    refit = TrainedModel(outcome, evaluated.feature_cols, evaluated.categorical_cols, settings)
    refit.fit(parts[TRAIN], parts[VALIDATION], parts[CALIBRATION], encoding_from=evaluated)
    refit.split_ = split
    newest = max(split.refit_index_dates)
    held = parts[CALIBRATION].filter(pl.col(INDEX_DATE_COL) == newest)
    y = outcome_labels(held, outcome)
    both_classes = 0 < y.sum() < len(y)
    auroc_refit = auroc_score(y, refit.predict_raw_logodds(held)) if both_classes else None
    auroc_evaluated = auroc_score(y, evaluated.predict_raw_logodds(held)) if both_classes else None
    # The refit is the same recipe on newer data: the check guards against a broken refit (a bad latest period),
    # so it fails only when the refit is clearly worse, beyond the promotion tolerance and twice the standard
    # error of the AUROC on these rows (Hanley and McNeil 1982; a few hundred people give about 0.02).
    tolerance = settings.promotion_auroc_tolerance
    if auroc_evaluated is not None:
        tolerance = max(tolerance, 2 * auroc_standard_error(auroc_evaluated, int(y.sum()), int(len(y) - y.sum())))
    accepted = auroc_refit is not None and auroc_evaluated is not None and auroc_refit >= auroc_evaluated - tolerance
    check = {
        "refitted": accepted,
        "refit_index_dates": [str(d) for d in split.refit_index_dates],
        "rows": rows.height,
        "events": int(rows.get_column(outcome).cast(pl.Int64).sum()),
        "best_iteration": refit.training_summary_["best_iteration"],
        "check_index_date": str(newest),
        "check_rows": held.height,
        "check_events": int(y.sum()),
        "auroc_refit": auroc_refit,
        "auroc_evaluated": auroc_evaluated,
        "observed_over_expected_evaluated": (
            float(y.sum() / evaluated.predict_proba(held).sum()) if held.height else None
        ),
        "auroc_tolerance": round(tolerance, 4),
        "calibration": refit.training_summary_["calibration"],
        "calibration_warning": refit.training_summary_["calibration_warning"],
        "calibration_in_the_large": refit.training_summary_["calibration_in_the_large"],
        "reason": (
            "the refit ranks its held-out people at the newest date at least as well as the evaluated model"
            if accepted
            else "the refit ranked its held-out people at the newest date worse than the evaluated model (or they "
            "hold one class only): the evaluated model scores"
        ),
    }
    return (refit if accepted else None), check
