"""Assembling each team's files: its rows, reasons, leavers and activity (joined on the team too, so one
team's reasons never land in another team's files), its own re-identification key applied to its own folder
only, then the CSV, the workbook and the pages; at scale, teams are shared out between worker processes."""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.publish import excel, html
from pipelines.publish.cells import csv_text
from pipelines.publish.folder import Folder, Written
from pipelines.publish.publication import (
    LIST_COLUMNS,
    PROVENANCE_COLUMNS,
    REID_COLUMNS,
    SCHEMAS,
    TECHNICAL_COLUMNS,
    Provenance,
    Publication,
)

log = logging.getLogger("riskstrat")

PARALLEL_MIN_PEOPLE = 5_000
"""Below this many listed people, starting worker processes (about a second each) costs more than it saves."""


@dataclass(frozen=True)
class TeamData:
    team_id: str
    team_name: str
    rows: pl.DataFrame  # the list, sorted by rank (with nhs_number, name when the team holds a key)
    reasons: pl.DataFrame
    leavers: pl.DataFrame
    activity: pl.DataFrame
    reidentified: bool
    # People not on the list whose risk rose most since a month or so ago (empty before there is such a run).
    rising: pl.DataFrame


def team_data(
    publication: Publication,
    reidentification: dict[str, pl.DataFrame],
    team_id: str,
    team_name: str,
    window: tuple[date, date],
) -> TeamData:
    rows = publication.team_list.filter(pl.col("team_id") == team_id).sort("rank")
    keys = rows.select("person_id", "team_id", "rank")
    # Join on team too: one team's reasons never land in another team's files.
    reasons = publication.explanations.join(keys, on=["person_id", "team_id"], how="inner").sort(
        ["rank", "reason_rank"]
    )
    leavers = publication.leavers.filter(pl.col("team_id") == team_id).sort("previous_rank", nulls_last=True)
    activity = publication.activity.join(rows.select("person_id").unique(), on="person_id", how="semi").filter(
        pl.col("event_date").is_between(window[0], window[1])
    )
    rising = publication.rising_risk.filter(pl.col("team_id") == team_id).sort("rising_rank")
    key = reidentification.get(team_id)
    if key is not None:
        key = _reid_key(key)
        rows, reasons, leavers, rising = (_reidentify(f, key) for f in (rows, reasons, leavers, rising))
    return TeamData(team_id, team_name, rows, reasons, leavers, activity, key is not None, rising)


def _reid_key(key: pl.DataFrame) -> pl.DataFrame:
    unique = key.select("person_id", *REID_COLUMNS).unique(subset="person_id", keep="first")
    if unique.height < key.height:
        log.warning(
            "re-identification key had %d duplicate person ids; kept the first of each", key.height - unique.height
        )
    return unique


def _reidentify(frame: pl.DataFrame, key: pl.DataFrame) -> pl.DataFrame:
    joined = frame.join(key, on="person_id", how="left")
    cols = list(frame.columns)
    at = cols.index("person_id") + 1
    return joined.select(*cols[:at], *REID_COLUMNS, *cols[at:])


def publish_teams(
    folder: Folder,
    publication: Publication,
    reidentification: dict[str, pl.DataFrame],
    teams: dict[str, str],
    window: tuple[date, date],
    workers: int | None,
    templates: Path | None = None,
) -> None:
    """Every team's files. Writing a team is pure Python (workbook XML, HTML pages), so at scale the teams are
    shared out between processes; each worker gets only its team's rows and reports what it wrote."""
    prov = publication.provenance
    if workers is None:
        workers = (os.cpu_count() or 1) if publication.team_list.height >= PARALLEL_MIN_PEOPLE else 1
    workers = min(workers, len(teams))
    if workers <= 1:
        for team_id, team_name in teams.items():
            team = team_data(publication, reidentification, team_id, team_name, window)
            publish_team(folder, team, prov, window, templates)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # "spawn": the parent holds Polars and DuckDB thread pools, which a forked child must not inherit.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [
            pool.submit(
                _publish_team_in_worker,
                folder.root,
                team_data(publication, reidentification, team_id, team_name, window),
                prov,
                window,
                templates,
            )
            for team_id, team_name in teams.items()
        ]
        for future in futures:
            folder.written.extend(future.result())


def _publish_team_in_worker(
    root: Path, team: TeamData, prov: Provenance, window: tuple[date, date], templates: Path | None
) -> list[Written]:
    folder = Folder(root)
    publish_team(folder, team, prov, window, templates)
    return folder.written


def publish_team(
    folder: Folder, team: TeamData, prov: Provenance, window: tuple[date, date], templates: Path | None = None
) -> None:
    team_id = team.team_id
    base = f"teams/{team_id}/"
    folder.write(f"{base}{team_id}_list.csv", _list_csv(team.rows), team.rows.height)
    folder.write(f"{base}{team_id}_technical.csv", _technical_csv(team.rows), team.rows.height)
    folder.write(f"{base}{team_id}_rising_risk.csv", _rising_csv(team.rising, prov), team.rising.height)
    workbook, sheets = excel.workbook(team, prov)
    folder.write(f"{base}{team_id}_list.xlsx", workbook, team.rows.height, sheets)
    folder.write(f"{base}index.html", html.team_page(team, prov, templates), team.rows.height)
    reasons_by = _rows_by_person(team.reasons)
    activity_by = _rows_by_person(team.activity)
    for row in team.rows.iter_rows(named=True):
        pid = row["person_id"]
        page = html.person_page(row, reasons_by.get(pid, []), activity_by.get(pid, []), team, prov, window, templates)
        folder.write(f"{base}people/{pid}.html", page, 1)


def _rows_by_person(frame: pl.DataFrame) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in frame.iter_rows(named=True):
        grouped[row["person_id"]].append(row)
    return grouped


def _list_csv(rows: pl.DataFrame) -> str:
    """Known columns in reading order, then anything extra; the provenance columns are on every row."""
    front = ["rank", "person_id", *[c for c in REID_COLUMNS if c in rows.columns]]
    rest = [c for c in LIST_COLUMNS if c in rows.columns and c not in front]
    # An allow-list, not "everything the frame holds": a column added upstream (a postcode, a date of birth)
    # must not reach the teams' files without someone deciding it should.
    ordered = rows.select(*front, *[c for c in rest if c not in PROVENANCE_COLUMNS], *PROVENANCE_COLUMNS)
    return csv_text(ordered)


def _rising_csv(rising: pl.DataFrame, prov: Provenance) -> str:
    """The rising-risk view: the team's id, who, the risk then and now; the run's provenance on every row."""
    front = ["rising_rank", "person_id", *[c for c in REID_COLUMNS if c in rising.columns]]
    rest = [c for c in SCHEMAS["rising_risk"] if c not in front and c != "team_id"]
    stamped = {c: v for c, v in prov.list_columns().items() if c in PROVENANCE_COLUMNS}
    return csv_text(
        rising.select("team_id", *front, *rest).with_columns(pl.lit(v).alias(c) for c, v in stamped.items())
    )


def _technical_csv(rows: pl.DataFrame) -> str:
    """The model's numbers behind each listed person (pseudonymised ids only), for whoever checks the model."""
    columns = [c for c in TECHNICAL_COLUMNS if c in rows.columns]
    return csv_text(rows.select(*columns, *PROVENANCE_COLUMNS))
