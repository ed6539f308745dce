"""How close to the oracle can any model on riskstrat's features get? (synthetic data only)

The oracle (the generator's true probabilities) knows each person's hidden need, which the published activity
shows only partly. To separate "the model is weak" from "the data do not hold it", this fits LightGBM to the
true probabilities themselves (`truth.parquet`'s probability, a far richer target than a yes/no outcome; squared
error, so Monte Carlo noise in the truth averages out rather than biasing the fit) from the features at the
evaluation index date, out of fold (2 folds, rows split at random, one row per person), and reports the AUROC of
that fit against the realised outcomes next to the oracle's. A trained model that comes close to the
fit's AUROC has taken what the features hold; the rest of the gap to the oracle is hidden state.

Usage: python -m benchmarks.oracle_ceiling --home H   (after synth, ingest and train on H)
Prints figures; not part of the test suite.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import lightgbm as lgb
import numpy as np
import polars as pl

from data_contracts.synthetic.truth import read_truth
from features.build import categorical_columns, feature_columns
from models.metrics import auroc_score
from models.registry import ModelRegistry
from models.split import TimeSplit
from pipelines.settings import load_settings
from pipelines.training import training_frame
from pipelines.warehouse import earliest_event_date, latest_extract_date, read_tables

CEILING_PARAMS = {"objective": "regression", "learning_rate": 0.05, "num_leaves": 31, "min_child_samples": 50}
CEILING_ROUNDS = 400


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path, default=Path("var"))
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    settings = load_settings(args.config, {"home": str(args.home)})
    latest, earliest = latest_extract_date(settings.db), earliest_event_date(settings.db)
    if latest is None or earliest is None:
        raise SystemExit(f"{settings.db} holds no data: run synth and ingest first")
    t = settings.training
    plan = TimeSplit.planned(latest, earliest, settings.outcomes.horizon_months, t)
    frame = training_frame(read_tables(settings.db), [plan.eval_index_date], settings.outcomes, earliest)
    truth = read_truth(settings.home / "synthetic" / "truth.parquet", settings.outcomes).filter(
        pl.col("index_date") == plan.eval_index_date
    )
    registry = ModelRegistry(settings.registry)
    categorical = set(categorical_columns())
    design = frame.select(
        [
            pl.col(c).cast(pl.Categorical).to_physical() if c in categorical else pl.col(c).cast(pl.Float64)
            for c in feature_columns()
        ]
    ).to_numpy()
    print(f"evaluation index date {plan.eval_index_date}, {frame.height:,} people")
    print(f"{'outcome':22} {'oracle':>7} {'features->oracle':>17} {'trained model':>14} {'R2 of p':>9}")
    for outcome in t.outcomes:
        rows = frame.select(pl.col(outcome).is_not_null()).to_series().to_numpy()
        joined = (
            frame.filter(rows)
            .select("person_id", outcome)
            .join(
                truth.filter(pl.col("outcome") == outcome).select("person_id", "probability"),
                on="person_id",
                how="left",
            )
        )
        if joined["probability"].null_count() == joined.height:
            continue
        y = joined[outcome].cast(pl.Int8).to_numpy()
        p = joined["probability"].fill_null(0.0).to_numpy()
        x = design[rows]
        fold = np.random.default_rng(args.seed).random(len(y)) < 0.5
        fitted = np.zeros(len(y))
        for held_out in (fold, ~fold):
            booster = lgb.train(
                {**CEILING_PARAMS, "verbose": -1, "num_threads": 2, "seed": args.seed},
                lgb.Dataset(x[~held_out], p[~held_out]),
                CEILING_ROUNDS,
            )
            fitted[held_out] = booster.predict(x[held_out])
        r2 = 1 - np.var(p - fitted) / np.var(p)
        version = registry.current_version(outcome)
        model_auroc = "-"
        if version is not None:
            model = registry.load(outcome, version)
            model_auroc = f"{auroc_score(y, model.predict_raw_logodds(frame.filter(rows))):.3f}"
        print(f"{outcome:22} {auroc_score(y, p):7.3f} {auroc_score(y, fitted):17.3f} {model_auroc:>14} {r2:9.3f}")


if __name__ == "__main__":
    main()
