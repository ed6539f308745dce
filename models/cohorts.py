"""From scores to cohorts: risk tiers, each team's capacity-cut list, and what changed since last week.

Pure Polars over small, explicit frames, so every rule here is testable on named scenario people.
"""

from __future__ import annotations

import zlib

import numpy as np
import polars as pl

UNASSIGNED_TEAM = "unassigned"
DRAW_SCHEMA = {
    "team_id": pl.String,
    "person_id": pl.String,
    "list_rank": pl.Int64,
    "offered": pl.Boolean,
    "seed": pl.Int64,
}


def assign_tiers(scores: pl.DataFrame, score_col: str, tiers: dict[str, float]) -> pl.DataFrame:
    """Rank everyone by `score_col`, highest first (ties broken by person id, so the order is deterministic),
    and cut the ranking into tiers by cumulative population share: {"very high": 0.005, "high": 0.05, ...}."""
    cuts = sorted(tiers.items(), key=lambda kv: kv[1])
    if not cuts or cuts[-1][1] < 1.0:
        raise ValueError("the last tier must reach 1.0 (the whole population)")
    n = scores.height
    ranked = scores.sort([score_col, "person_id"], descending=[True, False]).with_columns(
        population_rank=pl.int_range(1, n + 1, dtype=pl.Int64)
    )
    share = pl.col("population_rank") / max(n, 1)
    tier_expr = pl.when(share <= cuts[0][1]).then(pl.lit(cuts[0][0]))
    for name, cut in cuts[1:]:
        tier_expr = tier_expr.when(share <= cut).then(pl.lit(name))
    return ranked.with_columns(tier=tier_expr.otherwise(pl.lit(cuts[-1][0])))


def team_lists(scored: pl.DataFrame, teams: pl.DataFrame, score_col: str) -> pl.DataFrame:
    """Each team's people ordered by `score_col` (highest first), cut at the team's capacity.

    `scored` needs person_id, gp_practice and `score_col`; `teams` maps gp_practice to team_id,
    team_name and capacity. People whose practice has no team are never listed (they are counted
    under the team id "unassigned" by `unassigned_count`).
    """
    with_team = scored.join(
        teams.select("gp_practice", "team_id", "team_name", "capacity"), on="gp_practice", how="inner"
    )
    ranked = with_team.sort([score_col, "person_id"], descending=[True, False]).with_columns(
        rank=pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over("team_id")
    )
    return ranked.filter(pl.col("rank") <= pl.col("capacity")).sort(["team_id", "rank"])


def team_lists_drawn(
    scored: pl.DataFrame, teams: pl.DataFrame, score_col: str, margin: int, seed: int
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Each team's list cut at capacity, randomised at the margin: the people ranked within `margin` places
    either side of the capacity (ranks capacity - margin + 1 .. capacity + margin) enter a seeded draw and
    `margin` of them, drawn, are listed (so offered first); the others are not listed this time. The list keeps
    the score order and is ranked 1 .. capacity again. Returns (lists, draws: team_id, person_id, list_rank
    before the draw, offered, seed). margin = 0: `team_lists` and no draws.

    Each team's draw has its own stream from (seed, team id), so it does not depend on the other teams."""
    if margin <= 0:
        return team_lists(scored, teams, score_col), pl.DataFrame(schema=DRAW_SCHEMA)
    with_team = scored.join(
        teams.select("gp_practice", "team_id", "team_name", "capacity"), on="gp_practice", how="inner"
    )
    ranked = with_team.sort([score_col, "person_id"], descending=[True, False]).with_columns(
        rank=pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over("team_id")
    )
    listed, draws = [], []
    for (team_id,), part in ranked.group_by(["team_id"], maintain_order=True):
        capacity = int(part["capacity"][0])
        m = min(margin, capacity, max((part.height - capacity), 0))
        if m == 0:
            listed.append(part.filter(pl.col("rank") <= capacity))
            continue
        window = part.filter((pl.col("rank") > capacity - m) & (pl.col("rank") <= capacity + m))
        team_seed = int(np.random.SeedSequence([seed, zlib.crc32(str(team_id).encode())]).generate_state(1)[0])
        won = np.zeros(window.height, bool)
        won[np.random.default_rng(team_seed).permutation(window.height)[:m]] = True
        drawn = window.with_columns(pl.Series("offered", won))
        draws.append(
            drawn.select(
                "team_id", "person_id", pl.col("rank").alias("list_rank"), "offered", pl.lit(team_seed).alias("seed")
            )
        )
        keep = pl.concat([part.filter(pl.col("rank") <= capacity - m), drawn.filter("offered").drop("offered")])
        listed.append(keep.sort("rank").with_columns(rank=pl.int_range(1, pl.len() + 1, dtype=pl.Int64)))
    lists = pl.concat(listed).sort(["team_id", "rank"]) if listed else ranked.head(0)
    return lists, pl.concat(draws).cast(DRAW_SCHEMA) if draws else pl.DataFrame(schema=DRAW_SCHEMA)  # type: ignore[arg-type]


def unassigned_count(scored: pl.DataFrame, teams: pl.DataFrame) -> int:
    return scored.join(teams.select("gp_practice"), on="gp_practice", how="anti").height


def week_on_week(
    current: pl.DataFrame,
    previous: pl.DataFrame | None,
    status: pl.DataFrame,
    risk_col: str,
    rising_threshold: float = 0.02,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Mark each listed person new / rising / falling / steady, and say why last week's people left.

    current:  this week's lists (team_id, person_id, rank, `risk_col`).
    previous: last week's lists (team_id, person_id, rank, risk) or None on the first run.
    status:   one row per person on last week's lists: person_id, died (bool), opted_out (bool),
              team_id_now (str or null). A null person_id on last week's list means "opted out since".
    Reasons for leaving, in order: opted out, died, moved team, risk fell. Opted-out leavers keep no id
    (publishing drops them altogether).
    A change of at least `rising_threshold` (absolute probability) counts as rising or falling.
    """
    if previous is None or previous.height == 0:
        marked = current.with_columns(
            on_last_weeks_list=pl.lit(False), previous_rank=pl.lit(None, pl.Int64), change=pl.lit("new")
        )
        empty = pl.DataFrame(
            schema={"team_id": pl.String, "person_id": pl.String, "previous_rank": pl.Int64, "reason": pl.String}
        )
        return marked, empty
    prev = previous.select(
        "team_id", "person_id", pl.col("rank").alias("previous_rank"), pl.col("risk").alias("previous_risk")
    )
    delta = pl.col(risk_col) - pl.col("previous_risk")
    marked = (
        current.join(prev, on=["team_id", "person_id"], how="left")
        .with_columns(
            on_last_weeks_list=pl.col("previous_rank").is_not_null(),
            change=pl.when(pl.col("previous_rank").is_null())
            .then(pl.lit("new"))
            .when(delta >= rising_threshold)
            .then(pl.lit("rising"))
            .when(delta <= -rising_threshold)
            .then(pl.lit("falling"))
            .otherwise(pl.lit("steady")),
        )
        .drop("previous_risk")
    )
    left = prev.join(current.select("team_id", "person_id"), on=["team_id", "person_id"], how="anti").join(
        status, on="person_id", how="left"
    )
    reason = (
        # Opted out comes first: such a person may never be named, even if they also died. A null id on last
        # week's list is someone who has since opted out (ingest anonymises them there).
        pl.when(pl.col("person_id").is_null() | pl.col("opted_out").fill_null(False))
        .then(pl.lit("opted out"))
        .when(pl.col("died").fill_null(False))
        .then(pl.lit("died"))
        .when(pl.col("team_id_now").is_not_null() & (pl.col("team_id_now") != pl.col("team_id")))
        .then(pl.lit("moved team"))
        .otherwise(pl.lit("risk fell"))
    )
    leavers = (
        left.with_columns(reason=reason)
        .with_columns(person_id=pl.when(pl.col("reason") == "opted out").then(None).otherwise(pl.col("person_id")))
        .select("team_id", "person_id", "previous_rank", "reason")
        .sort(["team_id", "previous_rank"])
    )
    return marked, leavers


def rising_risk(
    population: pl.DataFrame,
    earlier: pl.DataFrame | None,
    listed: pl.DataFrame,
    teams: pl.DataFrame,
    risk_col: str,
    min_rise: float,
    per_team: int,
) -> pl.DataFrame:
    """Each team's people whose risk rose most since an earlier run and who are not on the team's list: the
    ones to consider before they reach it.

    population: everyone scored now (person_id, gp_practice, tier, `risk_col`, age, sex).
    earlier:    the earlier run's scores of the same outcome (person_id, risk, tier, as_of) or None.
    listed:     this week's lists (team_id, person_id): people already on a list are not repeated here.
    A person qualifies with a rise of at least `min_rise` (absolute probability); ties in the rise are broken
    by the current risk, then the person id, so the view is deterministic.
    """
    columns = {
        "team_id": pl.String,
        "person_id": pl.String,
        "rising_rank": pl.Int64,
        "age": pl.Int64,
        "sex": pl.String,
        "risk": pl.Float64,
        "tier": pl.String,
        "earlier_risk": pl.Float64,
        "earlier_tier": pl.String,
        "earlier_as_of": pl.Date,
    }
    if earlier is None or earlier.height == 0 or per_team == 0:
        return pl.DataFrame(schema=columns)
    then = earlier.select(
        "person_id",
        pl.col("risk").alias("earlier_risk"),
        pl.col("tier").alias("earlier_tier"),
        pl.col("as_of").alias("earlier_as_of"),
    )
    candidates = (
        population.join(teams.select("gp_practice", "team_id"), on="gp_practice", how="inner")
        .join(listed.select("team_id", "person_id"), on=["team_id", "person_id"], how="anti")
        .join(then, on="person_id", how="inner")
        .with_columns(risk=pl.col(risk_col))
        .filter(pl.col("risk") - pl.col("earlier_risk") >= min_rise)
    )
    ranked = candidates.sort(
        [pl.col("risk") - pl.col("earlier_risk"), "risk", "person_id"], descending=[True, True, False]
    ).with_columns(rising_rank=pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over("team_id"))
    return (
        ranked.filter(pl.col("rising_rank") <= per_team)
        .select([pl.col(c).cast(t) for c, t in columns.items()])
        .sort(["team_id", "rising_rank"])
    )


def age_band(age: pl.Expr) -> pl.Expr:
    """Ten-year bands, 90+ open-ended: coarse enough for pseudonymised outputs."""
    lower = (age // 10 * 10).clip(0, 90).cast(pl.Int64)
    return pl.when(lower >= 90).then(pl.lit("90+")).otherwise(lower.cast(pl.String) + "-" + (lower + 9).cast(pl.String))
