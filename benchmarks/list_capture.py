"""How much of next year's need does the weekly list find? Scores everyone as of the latest data (timed), then
compares the top 5% by the model with the top 5% by last year's emergency use ("last year's top users") on the
generator's held-back future year (`truth.parquet`, realised outcomes after the score date).

Usage: python -m benchmarks.list_capture --home var   (after `riskstrat demo` or synth/ingest/train)
Prints figures; not part of the test suite.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np
import polars as pl

from data_contracts.synthetic.truth import read_truth
from pipelines.scoring import score_population
from pipelines.settings import load_settings
from pipelines.warehouse import read_tables


def captured_share(order_score: np.ndarray, tiebreak: np.ndarray, events: np.ndarray, fraction: float) -> float:
    """Share of all events that fall among the top `fraction` of people by score (ties broken by `tiebreak`)."""
    order = np.lexsort((tiebreak, -order_score))
    top = order[: max(1, round(len(order) * fraction))]
    return float(events[top].sum() / max(events.sum(), 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path, default=Path("var"))
    parser.add_argument("--fraction", type=float, default=0.05)
    args = parser.parse_args()
    settings = load_settings(None, {"home": str(args.home)})
    tables = read_tables(settings.db)

    started = time.perf_counter()
    result = score_population(settings, tables=tables)
    as_of = result.publication.provenance.as_of
    seconds = time.perf_counter() - started
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(
        f"scored {result.population.height:,} people and explained {result.publication.team_list.height:,} listed "
        f"people as of {as_of} in {seconds:.1f} s (peak RSS so far {peak_gb:.2f} GB)"
    )

    truth = read_truth(settings.home / "synthetic" / "truth.parquet", settings.outcomes).filter(
        (pl.col("index_date") == as_of) & (pl.col("outcome") == "emergency_admission")
    )
    from features.build import build_features

    prior = build_features(tables, as_of).select("person_id", "emergency_admissions_12m", "cost_total_12m").collect()
    frame = (
        result.population.select("person_id", "ranking_score")
        .join(prior, on="person_id")
        .join(truth.select("person_id", "realised"), on="person_id", how="inner")
    )
    events = frame["realised"].cast(pl.Int64).to_numpy()
    ids = np.arange(frame.height)
    model = captured_share(frame["ranking_score"].to_numpy(), ids, events, args.fraction)
    last_year = captured_share(
        frame["emergency_admissions_12m"].cast(pl.Float64).to_numpy(), ids, events, args.fraction
    )
    print(f"people with truth: {frame.height:,}; with an emergency admission in the held-back year: {events.sum():,}")
    print(
        f"top {args.fraction:.0%} by the model captures {model:.1%} of them; "
        f"by last year's emergency admissions {last_year:.1%} (ratio {model / max(last_year, 1e-9):.2f})"
    )


if __name__ == "__main__":
    main()
