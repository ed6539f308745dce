"""Training run: stack features and outcomes over the index dates of the time split, fit each outcome's model,
evaluate it once beside the baselines (and the oracle on synthetic data), refit it on every labelled period for
scoring, and register both.

Plain Python over the warehouse: the `train` flow is a thin wrapper around `train_all`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from data_contracts.errors import NotReadyError
from data_contracts.outcomes import OUTCOMES_BY_NAME, UNPLANNED_CARE_12M, OutcomeSettings
from data_contracts.synthetic.truth import read_truth
from features.build import build_features, categorical_columns, feature_columns
from features.inputs import Tables
from features.outcomes import label_outcomes
from models.cohorts import age_band
from models.settings import TrainingSettings
from models.split import TimeSplit
from pipelines.settings import Settings
from pipelines.warehouse import cost_currency, earliest_event_date, latest_extract_date, read_tables

if TYPE_CHECKING:
    from models.evaluation import Evaluation

log = logging.getLogger("riskstrat.train")

# PARR-style logistic baseline: a few classic predictors.
CLASSIC_NUMERIC = ("age", "emergency_admissions_12m", "ltc_count")
CLASSIC_CATEGORICAL = ("sex",)


# The predictors each protected-characteristic setting governs (features/demographics.py).
PROTECTED_PREDICTORS: dict[str, tuple[str, ...]] = {"ethnicity": ("ethnicity_group",), "deprivation": ("imd_decile",)}


def predictor_columns(ethnicity: bool, deprivation: bool) -> tuple[list[str], list[str]]:
    """The model's features and its categorical ones, with or without ethnic group and area deprivation."""
    dropped = {
        *(() if ethnicity else PROTECTED_PREDICTORS["ethnicity"]),
        *(() if deprivation else PROTECTED_PREDICTORS["deprivation"]),
    }
    return [c for c in feature_columns() if c not in dropped], [c for c in categorical_columns() if c not in dropped]


def predictor_choice_effect(
    frame: pl.DataFrame, split: TimeSplit, outcome: str, settings: TrainingSettings, configured: Evaluation
) -> list[dict[str, Any]]:
    """The configured model beside the same model with each protected-characteristic setting reversed, evaluated on
    the same rows (overall and by ethnic group and deprivation), for the model card."""
    from models.evaluation import SUBGROUP_COLUMNS, evaluate_outcome, predictor_variant
    from models.training import train_outcome

    chosen = {"ethnicity": settings.ethnicity_as_predictor, "deprivation": settings.deprivation_as_predictor}
    variants = [predictor_variant("as configured", chosen, configured)]
    for name in ("ethnicity", "deprivation"):
        other = {**chosen, name: not chosen[name]}
        features, categorical = predictor_columns(other["ethnicity"], other["deprivation"])
        model = train_outcome(frame, outcome, features, categorical, split, settings)
        evaluation = evaluate_outcome(frame, model, (), settings, subgroup_cols=SUBGROUP_COLUMNS)
        label = f"{'with' if other[name] else 'without'} {name} as a predictor"
        variants.append(predictor_variant(label, other, evaluation))
    return variants


def training_frame(
    tables: Tables, index_dates: list[date], outcomes: OutcomeSettings, history_start: date | None = None
) -> pl.DataFrame:
    """Features as of each index date joined with what happened in the horizon after it, stacked. Windows that
    reach back before `history_start` (where the data begin) are null, not zero."""
    frames = []
    for index_date in index_dates:
        features = build_features(tables, index_date, history_start=history_start)
        labels = label_outcomes(tables, index_date, outcomes)
        frames.append(
            features.join(labels, on="person_id", how="inner").with_columns(index_date=pl.lit(index_date)).collect()
        )
    unplanned_12m = pl.col("emergency_admissions_12m") + pl.col("ae_attendances_12m")
    # A join does not keep row order, and LightGBM's bagging depends on it: sort by a stable key so the same
    # database gives the same model.
    stacked = pl.concat(frames, how="vertical").sort("index_date", "person_id")
    return with_subgroups(stacked).with_columns(unplanned_12m.alias(UNPLANNED_CARE_12M))


def with_subgroups(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        age_band=age_band(pl.col("age")),
        imd_quintile=((pl.col("imd_decile") + 1) // 2).cast(pl.String).fill_null("unknown"),
    )


def with_oracle(frame: pl.DataFrame, truth: pl.DataFrame | None, eval_index: date) -> tuple[pl.DataFrame, bool]:
    """Add the generator's true probabilities (`true_p_<outcome>`) to the evaluation rows when they exist."""
    if truth is None:
        return frame, False
    truth = truth.filter(pl.col("index_date") == eval_index)
    if truth.height == 0:
        return frame, False
    wide = truth.pivot(on="outcome", index=["person_id", "index_date"], values="probability")
    wide = wide.rename({c: f"true_p_{c}" for c in wide.columns if c not in ("person_id", "index_date")})
    return frame.join(wide, on=["person_id", "index_date"], how="left"), True


def training_reference(frame: pl.DataFrame, model: Any, eval_index: date, bins: int) -> dict[str, Any]:
    """What monitoring compares each week with: the features and the raw score (out of sample) of the training
    frame's newest rows, at the evaluation index date. The newest rather than every index date because features
    without a window (days since the last A&E attendance) depend on how much history lies behind the date: the
    oldest fit dates see two years less of it than a weekly run, which reads as drift when nothing changed."""
    from models.monitoring import reference_distribution

    eval_rows = frame.filter(pl.col("index_date") == eval_index)
    return reference_distribution(eval_rows, model.feature_cols, model.predict_raw_logodds(eval_rows), bins)


@dataclass
class TrainReport:
    split: TimeSplit
    rows: int
    comparison: pl.DataFrame
    decisions: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def train_all(
    settings: Settings,
    truth_path: Path | None = None,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> TrainReport:
    """Train, compare and register a model for every outcome in `settings.training.outcomes`, beside the oracle
    of the generator's truth at `truth_path` when there is one (refused, before anything else, when it was built
    under other outcome definitions than `settings.outcomes`)."""
    from models.baselines import standard_baselines
    from models.evaluation import SUBGROUP_COLUMNS, evaluate_outcome
    from models.registry import ModelRegistry
    from models.training import refit_outcome, train_outcome

    say = progress or (lambda message: log.info(message))
    timings: dict[str, float] = {}
    started = time.perf_counter()
    truth = read_truth(truth_path, settings.outcomes) if truth_path is not None and truth_path.exists() else None
    tables = read_tables(settings.db)
    currency = cost_currency(settings.db)
    latest, earliest = latest_extract_date(settings.db), earliest_event_date(settings.db)
    if latest is None or earliest is None:
        raise NotReadyError(f"{settings.db} holds no loaded batches: run `riskstrat ingest` first")
    horizon = settings.outcomes.horizon_months
    t = settings.training
    split = TimeSplit.planned(latest, earliest, horizon, t)
    say(f"building features and outcomes at {len(split.index_dates)} index dates (evaluation {split.eval_index_date})")
    frame = training_frame(tables, split.index_dates, settings.outcomes, history_start=earliest)
    frame, has_oracle = with_oracle(frame, truth, split.eval_index_date)
    timings["features"] = time.perf_counter() - started

    registry = ModelRegistry(settings.registry)
    features, categorical = predictor_columns(t.ethnicity_as_predictor, t.deprivation_as_predictor)
    comparisons, decisions = [], {}
    for outcome in t.outcomes:
        step = time.perf_counter()
        say(f"training {outcome}")
        model = train_outcome(frame, outcome, features, categorical, split, t)
        model.training_summary_["cost_currency"] = currency  # stated on the model card
        oracle_col = f"true_p_{outcome}" if has_oracle and f"true_p_{outcome}" in frame.columns else None
        baselines = standard_baselines(
            outcome,
            prior_use_col=OUTCOMES_BY_NAME[outcome].prior_use_column,
            classic_numeric_cols=CLASSIC_NUMERIC,
            classic_categorical_cols=CLASSIC_CATEGORICAL,
            true_probability_col=oracle_col,
            seed=t.seed,
        )
        evaluation = evaluate_outcome(frame, model, baselines, t, subgroup_cols=SUBGROUP_COLUMNS)
        if t.predictor_choice_effect and outcome == settings.scoring.ranking_outcome:
            say(f"{outcome}: the effect of the protected-characteristic predictor settings (two more fits)")
            evaluation.predictor_choice = predictor_choice_effect(frame, split, outcome, t, evaluation)
        # Evaluated; now the model that scores learns from every labelled period, the latest included.
        refit, refit_check = refit_outcome(frame, model)
        model.training_summary_["refit"] = refit_check
        say(f"{outcome}: {'refitted on ' + ', '.join(refit_check['refit_index_dates']) if refit else 'not refitted'}")
        scoring = refit or model
        reference = training_reference(frame, scoring, split.eval_index_date, settings.monitoring.psi_bins)
        decision = registry.save(
            model, evaluation, eval_frame=frame, force_promotion=force, reference=reference, refit=refit
        )
        decisions[outcome] = decision
        comparisons.append(evaluation.comparison())
        timings[outcome] = time.perf_counter() - step
    timings["total"] = time.perf_counter() - started
    return TrainReport(split, frame.height, pl.concat(comparisons), decisions, timings)
