"""The information-governance guard, the last line of defence whatever the caller did: opted-out people are
dropped from every frame before anything is written (and counted), leavers who opted out are not mentioned at
all (even a count beside last week's list would name them), and NHS numbers and names come only from a team's
own re-identification key."""

from __future__ import annotations

import logging
from dataclasses import replace

import polars as pl

from pipelines.publish.publication import OPTED_OUT, REID_COLUMNS, Publication

log = logging.getLogger("riskstrat")


def guard(
    publication: Publication, reidentification: dict[str, pl.DataFrame]
) -> tuple[Publication, dict[str, pl.DataFrame], int]:
    """Drop every row about an opted-out person, from every frame and key, and count them. The caller should
    have done this already; this is the final check before anything reaches disk."""
    ids = sorted(publication.opted_out_ids)
    team_list, n_list = _drop_ids(publication.team_list, ids)
    if n_list:
        # Close the gaps: a missing rank 3 would tell the team that someone was hidden, and who, by comparison
        # with last week's list.
        team_list = team_list.sort(["team_id", "rank"]).with_columns(
            rank=pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over("team_id")
        )
    explanations, n_expl = _drop_ids(publication.explanations, ids)
    activity, n_act = _drop_ids(publication.activity, ids)
    population, n_pop = _drop_ids(publication.population_summary, ids)
    rising, n_rising = _drop_ids(publication.rising_risk, ids)
    if n_rising:
        rising = rising.sort(["team_id", "rising_rank"]).with_columns(
            rising_rank=pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over("team_id")
        )
    leavers, n_leave = _drop_opted_out_leavers(publication.leavers, ids)
    reid: dict[str, pl.DataFrame] = {}
    n_reid = 0
    for team_id, key in reidentification.items():
        reid[team_id], n = _drop_ids(key, ids)
        n_reid += n
    guarded = replace(
        publication,
        team_list=team_list,
        explanations=explanations,
        leavers=leavers,
        activity=activity,
        population_summary=population,
        rising_risk=rising,
    )
    return guarded, reid, n_list + n_expl + n_act + n_pop + n_leave + n_rising + n_reid


def drop_identifiers(frame: pl.DataFrame, name: str) -> pl.DataFrame:
    """NHS numbers and names may only come from a team's own key: if a shared frame carries them, they
    would reach every team, so they are dropped."""
    found = [c for c in REID_COLUMNS if c in frame.columns]
    if found:
        log.warning(
            "%s carried identifying columns (%s); dropped: use `reidentification` instead", name, ", ".join(found)
        )
    return frame.drop(found)


def _drop_ids(frame: pl.DataFrame, ids: list[str]) -> tuple[pl.DataFrame, int]:
    if "person_id" not in frame.columns or not ids:
        return frame, 0
    kept = frame.filter(~pl.col("person_id").cast(pl.String).is_in(ids).fill_null(False))
    return kept, frame.height - kept.height


def _drop_opted_out_leavers(leavers: pl.DataFrame, ids: list[str]) -> tuple[pl.DataFrame, int]:
    """Leavers who opted out are dropped, not counted: "1 person left because they opted out" beside last
    week's list tells the team who. A leaver whose id is in the opt-out set goes whatever reason the caller gave,
    and so does one already marked opted out (scoring stores them with no id)."""
    listed = pl.col("person_id").is_in(ids).fill_null(False) if ids else pl.lit(False)
    opted_out = listed | (pl.col("reason") == OPTED_OUT).fill_null(False) | pl.col("person_id").is_null()
    kept = leavers.filter(~opted_out)
    return kept, leavers.height - kept.height
