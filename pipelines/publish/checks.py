"""Checking a publication before anything is written: column shapes and types, one row per person per team,
ids safe as file names. A bad frame fails here, before a file is started."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import replace

import polars as pl

from data_contracts.outcomes import OUTCOMES
from pipelines.publish.guard import drop_identifiers
from pipelines.publish.publication import (
    SCHEMAS,
    SUMMARY_COLUMNS,
    TEAM_LIST_COLUMNS,
    Provenance,
    Publication,
)

log = logging.getLogger("riskstrat")

# Ids become file names (people/<person_id>.html): refuse anything that could escape the folder.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def checked(
    publication: Publication, reidentification: dict[str, pl.DataFrame]
) -> tuple[Publication, dict[str, pl.DataFrame]]:
    """The publication with every frame conformed to its schema and the list stamped with its provenance, and
    each team's re-identification key conformed."""
    return (
        replace(
            publication,
            team_list=_normalise_list(publication.team_list, publication.provenance),
            explanations=conform(publication.explanations, "explanations"),
            leavers=conform(publication.leavers, "leavers"),
            activity=conform(publication.activity, "activity"),
            population_summary=_checked_summary(publication.population_summary),
            rising_risk=conform(publication.rising_risk, "rising_risk"),
        ),
        {str(k): conform(v, "reidentification") for k, v in reidentification.items()},
    )


def require(frame: pl.DataFrame, name: str, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} is missing columns: {', '.join(missing)}")


def conform(frame: pl.DataFrame, name: str) -> pl.DataFrame:
    """Check columns and cast to the expected types. An empty frame without columns (a first week with no
    leavers, say) becomes an empty frame of the right shape."""
    schema = SCHEMAS[name]
    if frame.height == 0 and not set(schema) <= set(frame.columns):
        return pl.DataFrame(schema=schema)
    require(frame, name, list(schema))
    if name != "reidentification":
        frame = drop_identifiers(frame, name)
    return frame.with_columns(pl.col(c).cast(t) for c, t in schema.items())


def _checked_summary(population_summary: pl.DataFrame) -> pl.DataFrame:
    # Checked now, not when the summary is written, so a bad frame fails before any file is started.
    require(population_summary, "population_summary", SUMMARY_COLUMNS)
    return population_summary


def _normalise_list(team_list: pl.DataFrame, provenance: Provenance) -> pl.DataFrame:
    # A run may model only some outcomes (a small population, say): the others' risk columns stay empty.
    absent = [o.risk_column for o in OUTCOMES if o.risk_column not in team_list.columns]
    team_list = team_list.with_columns(pl.lit(None, dtype=pl.Float64).alias(c) for c in absent)
    require(team_list, "team_list", TEAM_LIST_COLUMNS)
    if team_list.height == 0:
        raise ValueError("team_list is empty: nothing to publish")
    out = drop_identifiers(team_list, "team_list").with_columns(
        *(pl.col(c).cast(pl.String) for c in ("person_id", "team_id")),
        *(pl.lit(v).alias(c) for c, v in provenance.list_columns().items()),
    )
    if out.select("team_id", "person_id").is_duplicated().any():
        raise ValueError("team_list lists someone twice in the same team (one row per person per team)")
    for column in ("team_id", "person_id"):
        if not all(_SAFE_NAME.match(v or "") for v in out[column].to_list()):
            # No value in the message: person ids must not reach logs.
            raise ValueError(f"team_list.{column} has values that are not safe as file names (A-Z a-z 0-9 _ . -)")
    return out


def teams(team_list: pl.DataFrame) -> dict[str, str]:
    """Team id -> team name, sorted by id."""
    pairs = team_list.select("team_id", "team_name").unique(subset="team_id", keep="first").sort("team_id")
    return {str(t): str(n) for t, n in pairs.iter_rows()}


def warn_unknown_reid_teams(reid: dict[str, pl.DataFrame], teams: dict[str, str]) -> None:
    unknown = sorted(set(reid) - set(teams))
    if unknown:
        log.warning("re-identification keys for teams with no list this week were ignored: %s", ", ".join(unknown))
