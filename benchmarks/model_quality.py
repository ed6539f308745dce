"""How good, how calibrated and how distinct are the models' risks? (synthetic data only)

For each size and history length: generate a population (seeded; reused from `--data-dir` when already there),
ingest it, train every outcome (the evaluation year's AUROC, AUPRC and PPV in the top 5% with 95% bootstrap
intervals, for the model, the baselines and the generator's oracle), then score everyone at the latest date and
compare with the generator's held-back year, which no model saw (nothing of it is published): observed/expected
events, AUROC and PPV in the top 5% of the scores against "last year's top users" and the oracle. Finally the
share of tied risks among the people on the teams' lists, exactly and as displayed.

Usage: python -m benchmarks.model_quality --people 20000 --history-years 3 [--history-years 5] [--out FILE]
Prints a Markdown summary and writes JSON; not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

SUMMARY_METRICS = ("auroc", "auprc", "ppv_top_5pct", "calibration_slope", "calibration_intercept")


def tie_shares(risks: pl.Series) -> dict[str, float | int]:
    """Share of listed people whose risk equals another listed person's: exactly, and as the pages show it."""
    from pipelines.publish.charts import fmt_pct

    values = risks.drop_nulls()
    n = values.len()
    shown = values.map_elements(fmt_pct, return_dtype=pl.String)
    return {
        "listed": n,
        "distinct_exact": values.n_unique(),
        "tied_share_exact": _tied_share(values),
        "distinct_displayed": shown.n_unique(),
        "tied_share_displayed": _tied_share(shown),
        "tied_share_one_decimal": _tied_share((values * 100).round(1)),
    }


def _tied_share(values: pl.Series) -> float:
    """People whose value another person shares, over all people."""
    if values.len() == 0:
        return 0.0
    counts = values.value_counts()
    tied = counts.filter(pl.col("count") > 1)["count"].sum()
    return float(tied / values.len())


def held_back_year(result: Any, truth_path: Path, settings: Any, features: pl.DataFrame) -> dict[str, Any]:
    """Scores at the latest date against what the generator's unpublished next year held: the model that scores
    (the refit, when there is one) and the evaluated model it was refitted from, on the same people."""
    from data_contracts.outcomes import OUTCOMES_BY_NAME, UNPLANNED_CARE_12M
    from data_contracts.synthetic.truth import read_truth
    from models.metrics import evaluate
    from models.registry import ModelRegistry

    registry = ModelRegistry(settings.registry)

    as_of = result.publication.provenance.as_of
    truth = read_truth(truth_path, settings.outcomes).filter(pl.col("index_date") == as_of)
    out: dict[str, Any] = {"as_of": str(as_of)}
    prior = features.with_columns(
        (pl.col("emergency_admissions_12m") + pl.col("ae_attendances_12m")).alias(UNPLANNED_CARE_12M)
    )
    for outcome in settings.training.outcomes:
        risk_col = OUTCOMES_BY_NAME[outcome].risk_column
        if risk_col not in result.population.columns:
            continue
        rows = (
            result.population.select("person_id", risk_col)
            .join(
                truth.filter(pl.col("outcome") == outcome).select("person_id", "realised", "probability"),
                on="person_id",
            )
            .join(
                prior.select("person_id", pl.col(OUTCOMES_BY_NAME[outcome].prior_use_column).alias("_prior")),
                on="person_id",
            )
            .filter(pl.col("realised").is_not_null())
            .sort("person_id")
        )
        if rows.height == 0:
            continue
        y = rows["realised"].cast(pl.Float64).to_numpy()
        p = rows[risk_col].to_numpy()
        seed = settings.training.seed
        model = evaluate(y, p, settings.training, seed=seed)["metrics"]
        version = registry.current_version(outcome)
        assert version is not None
        evaluated_model = registry.load(outcome, version, evaluated=True)
        scored = features.join(rows.select("person_id"), on="person_id", how="semi").sort("person_id")
        p_evaluated = evaluated_model.predict_proba(scored)
        evaluated = evaluate(y, p_evaluated, settings.training, seed=seed)["metrics"]
        oracle = evaluate(y, rows["probability"].to_numpy(), settings.training, seed=seed)["metrics"]
        prior_score = rows["_prior"].cast(pl.Float64).fill_null(0).to_numpy()
        last_year = evaluate(y, np.clip(prior_score / max(prior_score.max(), 1), 0, 1), settings.training, seed=seed)
        out[outcome] = {
            "people": rows.height,
            "events": int(y.sum()),
            "observed_over_expected": float(y.sum() / p.sum()),
            "model": {m: model[m] for m in SUMMARY_METRICS if m in model},
            "evaluated_model": {m: evaluated[m] for m in SUMMARY_METRICS if m in evaluated},
            "observed_over_expected_evaluated_model": float(y.sum() / p_evaluated.sum()),
            "oracle": {m: oracle[m] for m in ("auroc", "auprc", "ppv_top_5pct")},
            "last_years_top_users": {m: last_year["metrics"][m] for m in ("auroc", "auprc", "ppv_top_5pct")},
        }
    return out


def run_one(
    people: int, history_years: int, data_dir: Path, home: Path, seed: int, teams: int | None = None
) -> dict[str, Any]:
    from data_contracts.synthetic import generate_population
    from features.build import build_features
    from pipelines.ingest import ingest_batch
    from pipelines.scoring import score_population
    from pipelines.settings import load_settings
    from pipelines.training import train_all
    from pipelines.warehouse import earliest_event_date, read_tables

    overrides: dict[str, Any] = {
        "home": str(home),
        "seed": seed,
        "synth": {"people": people, "history_years": history_years, "weekly_batches": 1},
    }
    if teams is not None:  # the demo's layout (`riskstrat demo --teams N`)
        from pipelines.workspace.demo import demo_synth_overrides

        overrides["synth"].update(demo_synth_overrides(people, teams))
    settings = load_settings(None, overrides)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    population_dir = data_dir / (f"{people}_{history_years}y_{seed}" + ("" if teams is None else f"_{teams}teams"))
    truth_path = population_dir / "truth.parquet"
    if not truth_path.exists():
        generate_population(population_dir, settings.synth, settings.outcomes, settings.seed)
    timings["generate"] = time.perf_counter() - started
    step = time.perf_counter()
    home.mkdir(parents=True, exist_ok=True)
    if settings.db.exists():
        settings.db.unlink()
    shutil.rmtree(settings.registry, ignore_errors=True)
    batches = sorted(p for p in (population_dir / "batches").iterdir() if p.is_dir() and not p.name.startswith("."))
    for batch in batches:
        ingest_batch(settings.db, batch, settings.ingest)
    timings["ingest"] = time.perf_counter() - step
    step = time.perf_counter()
    report = train_all(settings, truth_path, force=True)
    timings["train"] = time.perf_counter() - step
    step = time.perf_counter()
    result = score_population(settings)
    timings["score"] = time.perf_counter() - step
    features = build_features(
        read_tables(settings.db), result.publication.provenance.as_of, history_start=earliest_event_date(settings.db)
    ).collect()
    evaluation_year = {
        (row["outcome"], row["model"], row["metric"]): {"estimate": row["estimate"], "lo": row["lo"], "hi": row["hi"]}
        for row in report.comparison.filter(pl.col("metric").is_in(list(SUMMARY_METRICS))).iter_rows(named=True)
    }
    evaluation: dict[str, Any] = {}
    for (outcome, model, metric), value in evaluation_year.items():
        evaluation.setdefault(outcome, {}).setdefault(model, {})[metric] = value
    return {
        "people": people,
        "history_years": history_years,
        "seed": seed,
        "teams": teams,
        "split": report.split.to_dict(),
        "training_rows": report.rows,
        "evaluation_year": evaluation,
        "held_back_year": held_back_year(result, truth_path, settings, features),
        "ties_among_listed": tie_shares(result.publication.team_list["risk"]),
        "seconds": {k: round(v, 1) for k, v in timings.items()},
    }


def _fmt(value: dict[str, float | None] | None) -> str:
    if not value or value.get("estimate") is None:
        return "n/a"
    lo, hi = value.get("lo"), value.get("hi")
    if lo is None or hi is None:
        return f"{value['estimate']:.3f}"
    return f"{value['estimate']:.3f} ({lo:.3f}-{hi:.3f})"


def summary(run: dict[str, Any]) -> str:
    lines = [
        f"### {run['people']:,} people, {run['history_years']} years of history (seed {run['seed']})",
        "",
        f"Split {run['split']}; {run['training_rows']:,} training rows; seconds {run['seconds']}.",
        "",
        f"Ties among listed people: {run['ties_among_listed']}",
        "",
        "| outcome | set | model | AUROC | AUPRC | PPV top 5% | O/E |",
        "|---|---|---|---|---|---|---|",
    ]
    for outcome, models in run["evaluation_year"].items():
        for name, metrics in models.items():
            lines.append(
                f"| {outcome} | evaluation year | {name} | {_fmt(metrics.get('auroc'))} | {_fmt(metrics.get('auprc'))} "
                f"| {_fmt(metrics.get('ppv_top_5pct'))} | |"
            )
    for outcome, held in run["held_back_year"].items():
        if not isinstance(held, dict):
            continue
        for name in ("model", "evaluated_model", "last_years_top_users", "oracle"):
            metrics = held[name]
            oe = {
                "model": f"{held['observed_over_expected']:.3f}",
                "evaluated_model": f"{held['observed_over_expected_evaluated_model']:.3f}",
            }.get(name, "")
            lines.append(
                f"| {outcome} | held-back year | {name} | {_fmt(metrics.get('auroc'))} | {_fmt(metrics.get('auprc'))} "
                f"| {_fmt(metrics.get('ppv_top_5pct'))} | {oe} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument("--history-years", type=int, nargs="+", default=[3])
    parser.add_argument("--seed", type=int, default=20261124)
    parser.add_argument("--data-dir", type=Path, default=Path("/work/bench-data/model_quality"))
    parser.add_argument("--home", type=Path, default=Path("/work/bench-data/model_quality/home"))
    parser.add_argument("--teams", type=int, default=None, help="the demo's layout: this many teams of two practices")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    runs = []
    for years in args.history_years:
        home = args.home / (f"{args.people}_{years}y" + ("" if args.teams is None else f"_{args.teams}teams"))
        run = run_one(args.people, years, args.data_dir, home, args.seed, args.teams)
        runs.append(run)
        print(summary(run), flush=True)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(runs, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
