"""The commissioners' summary: counts of people (and expected events) by tier, team, age band and deprivation,
every value suppressed, nothing person-level."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl

from pipelines.publish import html
from pipelines.publish.cells import csv_text
from pipelines.publish.checks import require
from pipelines.publish.folder import Folder
from pipelines.publish.publication import SUMMARY_COLUMNS, Provenance
from pipelines.publish.suppression import suppress, suppress_expected
from pipelines.publish.wording import ALL_TIERS, tier_order


def aggregate_summary(population_summary: pl.DataFrame) -> pl.DataFrame:
    """Counts of people (and expected events) by tier, and by team, age band and deprivation quintile × tier.

    Long format: breakdown, group, tier, people, expected_events; every value a suppressed string. Every
    group × tier cell is present, zeros included, so a missing row never hints at a small number. Only the
    five summary columns are read: any id column the caller left in is never touched.
    """
    pop = _summary_input(population_summary)
    tiers = tier_order(pop["tier"].unique().to_list())
    parts = [
        _crosstab(pop, "all people", None, tiers),
        _crosstab(pop, "team", "team_id", tiers),
        _crosstab(pop, "age band", "age_band", tiers),
        _crosstab(pop, "deprivation quintile", "imd_quintile", tiers),
    ]
    return pl.concat(parts, how="vertical")


def publish_commissioners(
    folder: Folder, pop: pl.DataFrame, prov: Provenance, teams: dict[str, str], templates: Path | None = None
) -> None:
    summary = aggregate_summary(pop)
    stamped = summary.with_columns(
        run_id=pl.lit(prov.run_id),
        as_of=pl.lit(prov.as_of.isoformat()),
        model_versions=pl.lit(prov.model_versions_text),
        data_batches=pl.lit(prov.data_batches_text),
    )
    folder.write("commissioners/summary.csv", csv_text(stamped), stamped.height)
    folder.write("commissioners/summary.html", html.summary_page(summary, prov, teams, templates), summary.height)


def _summary_input(population_summary: pl.DataFrame) -> pl.DataFrame:
    require(population_summary, "population_summary", SUMMARY_COLUMNS)
    return population_summary.select(
        *(pl.col(c).cast(pl.String).fill_null("unknown") for c in ("team_id", "tier", "age_band", "imd_quintile")),
        pl.col("expected_events").cast(pl.Float64).fill_null(0.0),
    )


def _group_sort_key(value: str) -> tuple[int, float, str]:
    match = re.match(r"\d+", value)
    return (0, float(match.group()), value) if match else (1, 0.0, value)


def _crosstab(pop: pl.DataFrame, breakdown: str, by: str | None, tiers: list[str]) -> pl.DataFrame:
    frame = pop.with_columns(group=pl.lit("all people") if by is None else pl.col(by))
    cells = frame.group_by("group", "tier").agg(n=pl.len(), expected=pl.col("expected_events").sum())
    totals = frame.group_by("group").agg(n=pl.len(), expected=pl.col("expected_events").sum())
    counted = {(g, t): (n, e) for g, t, n, e in cells.iter_rows()}
    counted |= {(g, ALL_TIERS): (n, e) for g, n, e in totals.iter_rows()}
    groups = sorted({g for g, _ in counted}, key=_group_sort_key)
    rows = []
    for g in groups:
        for t in [*tiers, ALL_TIERS]:
            n, e = counted.get((g, t), (0, 0.0))
            rows.append(
                {
                    "breakdown": breakdown,
                    "group": g,
                    "tier": t,
                    "people": suppress(n),
                    "expected_events": suppress_expected(n, e),
                }
            )
    return pl.DataFrame(
        rows, schema={c: pl.String for c in ("breakdown", "group", "tier", "people", "expected_events")}
    )
