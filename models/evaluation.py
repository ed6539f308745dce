"""Evaluate a fitted model and its baselines once, in one pass, on the model's evaluation rows.

`evaluate_outcome` fits the baselines (`models/baselines.py`) on the fit rows of the model's own time split
(`model.split_`), then scores the model and every baseline on the evaluation rows with one seed, so their
bootstrap replicates are paired; it adds the model's subgroup metrics and mean absolute contributions. The
result, an `Evaluation`, is what the registry stores (metrics.json for the model, baselines.json for the
baselines, comparison.csv for both), what the model card shows and what promotion compares.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import polars as pl

from models.baselines import Baseline
from models.metrics import evaluate, subgroup_metrics
from models.settings import TrainingSettings
from models.training import TrainedModel, outcome_labels

MODEL_NAME = "lightgbm"
# Subgroups reported for every model (fairness by age, sex, deprivation and ethnic group).
SUBGROUP_COLUMNS = ("age_band", "sex", "imd_quintile", "ethnicity_group")
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


class _ModelScorer:
    """Adapter: a TrainedModel ranks by raw log-odds (no calibrator ties) and reports calibrated p."""

    def __init__(self, model: TrainedModel, name: str = MODEL_NAME) -> None:
        self.model = model
        self.name = name

    def predict_proba(self, frame: pl.DataFrame) -> np.ndarray:
        return self.model.predict_proba(frame)

    def rank_score(self, frame: pl.DataFrame) -> np.ndarray:
        return self.model.predict_raw_logodds(frame)


@dataclass
class Evaluation:
    """The model and its baselines evaluated on the model's evaluation rows.

    `results` maps a name to an `evaluate()` result, the model (`MODEL_NAME`) first; `subgroups` are the
    model's subgroup metrics, `importance` its mean |contribution| per feature on the evaluation rows.
    """

    outcome: str
    results: dict[str, dict[str, Any]]
    subgroups: list[dict[str, Any]] = field(default_factory=list)
    importance: list[dict[str, Any]] = field(default_factory=list)
    # The effect of the protected-characteristic predictor settings: one entry per variant (as configured first),
    # from `predictor_variant` (empty unless `training.predictor_choice_effect` and the ranking outcome).
    predictor_choice: list[dict[str, Any]] = field(default_factory=list)

    @property
    def model(self) -> dict[str, Any]:
        return self.results[MODEL_NAME]

    @property
    def baselines(self) -> dict[str, dict[str, Any]]:
        return {name: result for name, result in self.results.items() if name != MODEL_NAME}

    def comparison(self) -> pl.DataFrame:
        return comparison_table(self.outcome, self.results)


def evaluate_outcome(
    frame: pl.DataFrame,
    model: TrainedModel,
    baselines: Sequence[Baseline] = (),
    settings: TrainingSettings | None = None,
    *,
    subgroup_cols: Sequence[str] = (),
) -> Evaluation:
    """Fit the baselines on the model's fit rows and evaluate the model and them on its evaluation rows.

    All evaluations share the settings' seed: their bootstrap replicates are paired. `subgroup_cols` are
    columns of `frame` to report the model's subgroup metrics by (e.g. `SUBGROUP_COLUMNS`).
    """
    settings = settings or model.settings
    seed = settings.seed
    outcome = model.outcome
    if model.split_ is None:
        raise ValueError("the model carries no time split: fit it first")
    missing = [name for name in subgroup_cols if name not in frame.columns]
    if missing:
        raise ValueError(f"evaluation frame lacks subgroup columns: {missing}")
    fit_rows = model.split_.fit_rows(frame, outcome)
    eval_rows = model.split_.eval_rows(frame, outcome)
    if eval_rows.height == 0:
        raise ValueError(f"no labelled rows at the evaluation index date {model.split_.eval_index_date}")
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
    subgroups: list[dict[str, Any]] = []
    if subgroup_cols:
        raw_eval = model.predict_raw_logodds(eval_rows)
        subgroups = subgroup_metrics(
            y_eval,
            model.predict_proba(eval_rows),
            {name: eval_rows.get_column(name) for name in subgroup_cols},
            rank_score=raw_eval,
            flag_fraction=settings.subgroup_flag_fraction,
            min_n=settings.subgroup_min_n,
            min_events=settings.subgroup_min_events,
            seed=seed,
        ).to_dicts()
    importance = mean_abs_contributions(model, eval_rows, settings.explain_sample_rows, seed)
    return Evaluation(outcome, results, subgroups, importance)


VARIANT_METRICS = ("auroc", "auprc", "ppv_top_5pct", "calibration_intercept")
VARIANT_GROUPINGS = ("ethnicity_group", "imd_quintile")


def predictor_variant(name: str, predictors: Mapping[str, bool], evaluation: Evaluation) -> dict[str, Any]:
    """One model's figures for the predictor-choice comparison: which protected characteristics it used, its
    overall metrics and its error rates by ethnic group and deprivation."""
    metrics = evaluation.model["metrics"]
    return {
        "variant": name,
        "predictors": dict(predictors),
        "metrics": {m: metrics[m] for m in VARIANT_METRICS if m in metrics},
        "subgroups": [s for s in evaluation.subgroups if s["grouping"] in VARIANT_GROUPINGS],
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


def comparison_table(outcome: str, evaluations: Mapping[str, Mapping[str, Any]]) -> pl.DataFrame:
    """Tidy table (outcome, model, metric, estimate, lo, hi) from {name: evaluate result}."""
    rows = [
        {"outcome": outcome, "model": name, "metric": metric, **values}
        for name, evaluation in evaluations.items()
        for metric, values in evaluation["metrics"].items()
    ]
    return pl.DataFrame(rows, schema=COMPARISON_SCHEMA)


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
