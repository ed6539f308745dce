"""Who does the high-cost model miss? (synthetic data; after `benchmarks.model_quality` or `riskstrat train`)

At the evaluation date, the people who were high cost in the following year split into those the evaluated
model put in its top 5% (caught) and those it did not (missed); beside them the people it listed who were not
high cost (false alarms) and everyone else. For each group: what the records showed at the evaluation date
(means and shares of the cost, hospital and social care features) and what their next year's cost was made of
(the settings' 12-month costs as of the horizon's end, which cover exactly that year: a spell still open then
and its cost are not counted). A gap between caught and missed that a feature could see as of the evaluation
date is a feature to add; a next year's cost that came from nothing on record is not.

Usage: python -m benchmarks.high_cost_misses --home /work/bench-data/model_quality/home/100000_3y [--out FILE]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from features.costs import SETTING_COST_COLUMNS

TOP_FRACTION = 0.05
OUTCOME = "high_cost"

# What the records showed at the evaluation date.
AT_INDEX = (
    "age",
    "cost_total_12m",
    "cost_hospital_12m",
    "cost_social_care_12m",
    "asc_weekly_cost_now",
    "in_residential_or_nursing_care",
    "emergency_admissions_12m",
    "bed_days_12m",
    "ltc_count",
    "hfrs",
    "days_since_last_emergency_admission",
)
# Present only once the cost-trajectory features exist (compare branches on one script).
TRAJECTORY = ("cost_trend_6m", "cost_carried_forward_12m", "long_stay_bed_days_12m", "in_long_stay_now")
SETTINGS_NEXT_YEAR = SETTING_COST_COLUMNS


def profile(home: Path) -> dict[str, Any]:
    from data_contracts.dates import add_months
    from features.build import build_features
    from models.registry import ModelRegistry
    from models.split import TimeSplit
    from pipelines.settings import load_settings
    from pipelines.training import training_frame
    from pipelines.warehouse import earliest_event_date, read_tables

    settings = load_settings(None, {"home": str(home)})
    registry = ModelRegistry(settings.registry)
    version = registry.current_version(OUTCOME)
    assert version is not None, f"no {OUTCOME} model under {settings.registry}"
    summary = json.loads((settings.registry / OUTCOME / version / "training_summary.json").read_text())
    split = TimeSplit.from_dict(summary)
    tables = read_tables(settings.db)
    start = earliest_event_date(settings.db)
    frame = training_frame(tables, [split.eval_index_date], settings.outcomes, history_start=start)
    model = registry.load(OUTCOME, version, evaluated=True)  # the refit saw the evaluation date
    score = model.predict_raw_logodds(frame)
    listed = score >= np.quantile(score, 1 - TOP_FRACTION)
    high = frame.get_column(OUTCOME).cast(pl.Boolean).to_numpy()
    group = np.where(high & listed, "caught", np.where(high, "missed", np.where(listed, "false alarm", "rest")))
    frame = frame.with_columns(pl.Series("group", group))
    horizon_end = add_months(split.eval_index_date, settings.outcomes.horizon_months)
    next_year = (
        build_features(tables, horizon_end, history_start=start)
        .select("person_id", *[pl.col(c).alias(f"next_{c}") for c in SETTINGS_NEXT_YEAR])
        .collect()
    )
    frame = frame.join(next_year, on="person_id", how="left")
    at_index = [c for c in (*AT_INDEX, *TRAJECTORY) if c in frame.columns]
    next_total = pl.sum_horizontal([pl.col(f"next_{c}").fill_null(0) for c in SETTINGS_NEXT_YEAR])
    rows = (
        frame.group_by("group")
        .agg(
            pl.len().alias("people"),
            *[pl.col(c).cast(pl.Float64).mean().alias(c) for c in at_index],
            (pl.col("cost_total_12m") == 0).mean().alias("share_no_cost_12m"),
            (pl.col("asc_weekly_cost_now") > 0).mean().alias("share_package_now"),
            (pl.col("emergency_admissions_12m") == 0).mean().alias("share_no_emergency_12m"),
            pl.col("future_cost").mean().alias("next_year_cost"),
            pl.col("died_in_horizon").cast(pl.Float64).mean().alias("share_died_in_horizon"),
            *[
                (pl.col(f"next_{c}").fill_null(0).sum() / next_total.sum()).alias(
                    f"next_share_{c.removesuffix('_12m')}"
                )
                for c in SETTINGS_NEXT_YEAR
            ],
        )
        .sort("group")
    )
    return {
        "home": str(home),
        "eval_index_date": str(split.eval_index_date),
        "model_version": version,
        "groups": rows.to_dicts(),
    }


def markdown(result: dict[str, Any]) -> str:
    groups = result["groups"]
    names = [g["group"] for g in groups]
    lines = [
        f"High-cost model (evaluated, {result['model_version']}) at {result['eval_index_date']}: top 5% listed.",
        "",
        "| measure | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for key in groups[0]:
        if key == "group":
            continue
        values = [g[key] for g in groups]
        cells = [f"{v:,.3f}" if isinstance(v, float) and abs(v) < 10 else f"{v:,.0f}" for v in values]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    result = profile(args.home)
    print(markdown(result), flush=True)
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
