"""Each published run's read-only snapshot for the workspace, and the atomic switch to a newer one.

The score flow writes the snapshot right after publishing, from the same frames, with the same opt-out guard:
`runs/<run_id>-<nonce>/` (Parquet files and `run.json`) is built in a temporary folder and renamed into place,
then `current.json` is replaced with `os.replace` to name it. Readers never see a half-written run: the pointer
names a complete folder or the previous one. The app holds one `RunSnapshot` in memory and swaps it in a single
assignment when the pointer changes, so a request sees one run from start to end.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl

from features.inputs import add_months
from pipelines.publish.folder import clean_leftovers
from pipelines.publish.publication import Publication

log = logging.getLogger("riskstrat.workspace")

POINTER = "current.json"
RUNS = "runs"
FRAMES = ("team_list", "explanations", "activity", "leavers", "summary")
KEEP_RUNS = 3  # older snapshot folders are deleted when a new one is published
ACTIVITY_MONTHS = 24
IDENTIFYING_COLUMNS = ("nhs_number", "name")  # re-identification is the app's audited action, never a snapshot


@dataclass(frozen=True)
class PublishedRun:
    """What a snapshot is made from: the score step's frames (pseudonymised) and its provenance."""

    provenance: dict[str, str]  # run_id, as_of, model_versions, data_batches, explain_scale, ranking_outcome, ...
    team_list: pl.DataFrame
    explanations: pl.DataFrame
    activity: pl.DataFrame
    leavers: pl.DataFrame
    summary: pl.DataFrame  # the commissioners' aggregate: already suppressed strings
    opted_out_ids: set[str] = field(default_factory=set)


def published_run(publication: Publication) -> PublishedRun:
    """The snapshot's inputs from the run's `Publication` (what publishing wrote, same frames and provenance)."""
    from pipelines.publish import aggregate_summary

    return PublishedRun(
        provenance=publication.provenance.as_dict(),
        team_list=publication.team_list,
        explanations=publication.explanations,
        activity=publication.activity,
        leavers=publication.leavers,
        summary=aggregate_summary(publication.population_summary),
        opted_out_ids=set(publication.opted_out_ids),
    )


def _guarded(frame: pl.DataFrame, opted_out: pl.Series) -> pl.DataFrame:
    """The information-governance guard: no opted-out person's row, no identifying column."""
    frame = frame.drop([c for c in IDENTIFYING_COLUMNS if c in frame.columns])
    if "person_id" not in frame.columns:
        return frame
    # A null person id is a leaver who has opted out since (scoring keeps no id for them): not shown either.
    return frame.filter(~pl.col("person_id").is_in(opted_out.implode()) & pl.col("person_id").is_not_null())


def write_snapshot(workspace_dir: Path, run: PublishedRun) -> Path:
    """Write the run's snapshot and make it the current one (atomically); returns its folder."""
    runs = Path(workspace_dir) / RUNS
    runs.mkdir(parents=True, exist_ok=True)
    opted_out = pl.Series("person_id", sorted(run.opted_out_ids), dtype=pl.String)
    as_of = date.fromisoformat(run.provenance["as_of"])
    activity = run.activity.filter(pl.col("event_date") > add_months(as_of, -ACTIVITY_MONTHS))
    listed = run.team_list.select("person_id")
    frames = {
        "team_list": run.team_list,
        "explanations": run.explanations.join(listed, on="person_id", how="semi"),
        "activity": activity.join(listed, on="person_id", how="semi"),
        "leavers": run.leavers,
        "summary": run.summary,
    }
    name = f"{run.provenance['run_id']}-{uuid.uuid4().hex[:8]}"
    clean_leftovers(runs)  # a killed earlier write leaves a hidden staging folder of person rows
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=runs))
    try:
        for key, frame in frames.items():
            _guarded(frame, opted_out).write_parquet(staging / f"{key}.parquet")
        (staging / "run.json").write_text(json.dumps(run.provenance, indent=2, sort_keys=True), encoding="utf-8")
        os.rename(staging, runs / name)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    pointer_tmp = Path(workspace_dir) / f".{POINTER}.{uuid.uuid4().hex[:8]}"
    pointer_tmp.write_text(json.dumps({"run": name}), encoding="utf-8")
    os.replace(pointer_tmp, Path(workspace_dir) / POINTER)
    _prune(runs, keep=name)
    log.info("workspace snapshot %s: %d people listed", name, run.team_list.height)
    return runs / name


def _prune(runs: Path, keep: str) -> None:
    """Delete all but the newest KEEP_RUNS snapshots (the app has the one it serves in memory)."""
    folders = sorted((p for p in runs.iterdir() if p.is_dir() and not p.name.startswith(".")), key=os.path.getmtime)
    for old in folders[:-KEEP_RUNS]:
        if old.name != keep:
            shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- reading


@dataclass
class RunSnapshot:
    """One run, in memory, indexed for the pages: rows by team, people by (team, person)."""

    folder: str
    provenance: dict[str, str]
    team_rows: dict[str, list[dict[str, Any]]]
    team_names: dict[str, str]
    people: dict[tuple[str, str], dict[str, Any]]
    reasons: dict[str, list[dict[str, Any]]]
    activity: dict[str, list[dict[str, Any]]]
    leavers: dict[str, list[dict[str, Any]]]
    summary: list[dict[str, Any]]

    @property
    def as_of(self) -> date:
        return date.fromisoformat(self.provenance["as_of"])

    @property
    def run_id(self) -> str:
        return self.provenance["run_id"]


def load_snapshot(folder: Path) -> RunSnapshot:
    frames = {key: pl.read_parquet(folder / f"{key}.parquet") for key in FRAMES}
    provenance = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    team_rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    team_names: dict[str, str] = {}
    people: dict[tuple[str, str], dict[str, Any]] = {}
    for row in frames["team_list"].sort("team_id", "rank").iter_rows(named=True):
        team_rows[row["team_id"]].append(row)
        team_names[row["team_id"]] = row["team_name"]
        people[(row["team_id"], row["person_id"])] = row
    reasons: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in frames["explanations"].sort("person_id", "reason_rank").iter_rows(named=True):
        reasons[row["person_id"]].append(row)
    activity: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in frames["activity"].sort("person_id", "event_date").iter_rows(named=True):
        activity[row["person_id"]].append(row)
    leavers: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in frames["leavers"].iter_rows(named=True):
        leavers[row["team_id"]].append(row)
    return RunSnapshot(
        folder=folder.name,
        provenance=provenance,
        team_rows=dict(team_rows),
        team_names=team_names,
        people=people,
        reasons=dict(reasons),
        activity=dict(activity),
        leavers=dict(leavers),
        summary=frames["summary"].to_dicts(),
    )


class SnapshotReader:
    """The current snapshot, reloaded when `current.json` names another run (checked at most every `recheck_s`)."""

    def __init__(self, workspace_dir: Path, recheck_s: float = 1.0) -> None:
        self.workspace_dir = Path(workspace_dir)
        self.recheck_s = recheck_s
        self._current: RunSnapshot | None = None
        self._checked = 0.0
        self._lock = threading.Lock()

    def current(self) -> RunSnapshot | None:
        now = time.monotonic()
        if now - self._checked >= self.recheck_s and self._lock.acquire(blocking=False):
            try:
                self._checked = now
                self._refresh()
            finally:
                self._lock.release()
        return self._current

    def _refresh(self) -> None:
        try:
            name = json.loads((self.workspace_dir / POINTER).read_text(encoding="utf-8"))["run"]
        except (OSError, ValueError, KeyError):
            return  # nothing published yet (or a pointer being replaced): keep what we have
        if self._current is not None and self._current.folder == name:
            return
        try:
            loaded = load_snapshot(self.workspace_dir / RUNS / name)
        except (OSError, pl.exceptions.PolarsError, ValueError) as exc:
            log.warning("workspace snapshot %s could not be read (%s); still serving the previous run", name, exc)
            return
        self._current = loaded  # one assignment: requests see the old run or the new one
        log.info("workspace now serving run %s", loaded.run_id)
