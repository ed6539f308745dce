"""One run's publication, end to end: check, guard, then write every team's files, the commissioners' summary
and the manifest into a staging folder that replaces the week's folder only when everything is written."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from features.inputs import add_months
from pipelines.publish import checks, commissioners, teams
from pipelines.publish.erasure import OutputErasure, erase_from_outputs
from pipelines.publish.folder import Folder, staging_dir, write_manifest
from pipelines.publish.guard import guard
from pipelines.publish.publication import ACTIVITY_MONTHS, Publication

log = logging.getLogger("riskstrat")


@dataclass
class PublishReport:
    files: list[Path]
    teams: int
    people_listed: int
    guard_dropped: int
    earlier_outputs: OutputErasure = field(default_factory=OutputErasure)  # erasure in earlier weeks' folders


def publish(
    out_dir: Path,
    publication: Publication,
    reidentification: dict[str, pl.DataFrame] | None = None,
    workers: int | None = None,
    templates: Path | None = None,
    record: Callable[[], AbstractContextManager[object]] | None = None,
) -> PublishReport:
    """Write every team's outputs and the commissioners' summary for one run, atomically, under
    `out_dir/<as_of>/`. `reidentification` maps a team id to that team's own key (person_id, nhs_number, name),
    applied to that team's folder only.

    Teams are written by `workers` processes (default: one per core when at least `teams.PARALLEL_MIN_PEOPLE`
    people are listed, else in this process); the files are the same either way. `templates` is a local folder
    of page templates (and `static/` files) that replace the shipped ones of the same name. `record` keeps the run
    in the caller's store (the warehouse): entered once every file is staged, the folder switched in inside it
    (`folder.staging_dir`), so a failed publish records nothing and a failed record publishes nothing."""
    checked, keys = checks.checked(publication, reidentification or {})
    prov = checked.provenance
    team_names = checks.teams(checked.team_list)  # taken before the guard: a team keeps its (possibly empty) list
    checks.warn_unknown_reid_teams(keys, team_names)
    guarded, keys, dropped = guard(checked, keys)
    dest = Path(out_dir) / prov.as_of.isoformat()
    # People who opted out since an earlier week was published leave that week's files too.
    erased = erase_from_outputs(Path(out_dir), checked.opted_out_ids, skip=[dest.name])
    with staging_dir(dest, record) as staging:
        folder = Folder(staging)
        window = (add_months(prov.as_of, -ACTIVITY_MONTHS), prov.as_of)
        teams.publish_teams(folder, guarded, keys, team_names, window, workers, templates)
        commissioners.publish_commissioners(folder, guarded.population_summary, prov, team_names, templates)
        write_manifest(folder, prov, len(team_names), guarded.team_list.height, dropped)
    log.info(
        "published %d teams, %d people listed; guard dropped %d rows",
        len(team_names),
        guarded.team_list.height,
        dropped,
    )
    files = [dest / w.path for w in folder.written] + [dest / "manifest.json"]
    return PublishReport(
        files=files,
        teams=len(team_names),
        people_listed=guarded.team_list.height,
        guard_dropped=dropped,
        earlier_outputs=erased,
    )
