"""Publishing: each team's weekly list and the commissioners' aggregate, from already-scored frames.

Pure frames in, files out: no model or database code. Layout of one run (one folder per as-of date, so
a re-run for the same week replaces that week's outputs):

    <out_dir>/<as_of>/manifest.json                       every file with rows and sha256, and provenance
    <out_dir>/<as_of>/teams/<team_id>/<team_id>_list.csv  the list, provenance on every row
    <out_dir>/<as_of>/teams/<team_id>/<team_id>_list.xlsx sheets List, Reasons, Changes, About
    <out_dir>/<as_of>/teams/<team_id>/index.html          printable list page
    <out_dir>/<as_of>/teams/<team_id>/people/<person_id>.html  one page per listed person
    <out_dir>/<as_of>/commissioners/summary.csv|.html     suppressed counts only

Information governance is enforced here as the last line of defence, whatever the caller did:
opted-out people are dropped from every frame before anything is written (and counted); opted-out
leavers are only ever counted; re-identification keys are applied to their own team's folder only; the
commissioners see counts through `suppress()` and nothing person-level. The run folder is built in a
temporary sibling folder and renamed into place, so a crash never leaves a half-written week.
"""

from __future__ import annotations

import calendar
import hashlib
import io
import json
import logging
import math
import os
import re
import shutil
import tempfile
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from html import escape
from pathlib import Path
from typing import Any

import polars as pl
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Alignment, Font, NamedStyle, PatternFill
from openpyxl.utils import get_column_letter

from data_contracts.reference import REFERENCE_CURRENCY, money_prefix
from pipelines import html_charts
from pipelines.html_charts import MONTHS, TimelineEvent, WaterfallStep, fmt_pct, tier_colours

log = logging.getLogger("riskstrat")

PROVENANCE_COLUMNS = ("run_id", "as_of", "model_versions", "data_batches")
OUTCOME_RISK_COLUMNS = {
    "risk_emergency_admission": "Emergency admission",
    "risk_high_cost": "High cost",
    "risk_frequent_user": "Frequent user of services",
    "risk_care_home_admission": "Care home admission",
    "risk_unplanned_care": "Unplanned care",
}
LIST_COLUMNS = (
    *PROVENANCE_COLUMNS,
    "team_id",
    "team_name",
    "gp_practice",
    "rank",
    "person_id",
    "age_band",
    "sex",
    "ranking_outcome",
    "risk",
    "tier",
    "reasons",
    *OUTCOME_RISK_COLUMNS,
    "social_care_package",
    "in_care_home",
    "recent_discharge",
    "on_last_weeks_list",
    "change",
    "previous_rank",
    "explain_scale",
    "base_logodds",
)
# The person's total model score on the explanation scale: when given, the waterfall ends exactly there.
OPTIONAL_LIST_COLUMNS = ("logodds",)
SCHEMAS: dict[str, dict[str, Any]] = {
    "explanations": {
        "person_id": pl.String,
        "team_id": pl.String,
        "reason_rank": pl.Int64,
        "feature": pl.String,
        "feature_label": pl.String,
        "value": pl.String,
        "contribution": pl.Float64,
        "phrase": pl.String,
        "direction": pl.String,
    },
    "leavers": {"team_id": pl.String, "person_id": pl.String, "previous_rank": pl.Int64, "reason": pl.String},
    "activity": {
        "person_id": pl.String,
        "event_date": pl.Date,
        "setting": pl.String,
        "detail": pl.String,
        "cost": pl.Float64,
    },
    "population_summary": {
        "team_id": pl.String,
        "tier": pl.String,
        "age_band": pl.String,
        "imd_quintile": pl.Int64,
        "expected_events": pl.Float64,
    },
    "reidentification": {"person_id": pl.String, "nhs_number": pl.String, "name": pl.String},
}
REID_COLUMNS = ("nhs_number", "name")
TIER_ORDER = ("very high", "high", "moderate", "low")
SETTING_ORDER = ("emergency admission", "elective admission", "A&E", "outpatient", "GP", "community", "social care")
ACTIVITY_MONTHS = 24
OPTED_OUT = "opted out"
# Ids become file names (people/<person_id>.html): refuse anything that could escape the folder.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

HOW_TO_READ = (
    "Everyone here is registered with a practice your team covers and is among the people most likely to have "
    "the outcome named at the top in the coming year. Rank 1 is the highest risk in your team.",
    "Risk is a calibrated probability: 30% means that about 3 in 10 people with similar records had the outcome.",
    "Tier shows where the person sits in the whole population: very high, high, moderate or low.",
    "Reasons are the factors that moved this person's score most, in plain words. They describe what the model "
    "noticed in the records, not what caused the risk, and they can be out of date.",
    "Change compares with last week's list: new, rising, falling or steady.",
    "This list supports clinical judgement; it does not replace it. Check the record and what the team knows of "
    "the person before acting.",
)


# ----------------------------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class PublishReport:
    files: list[Path]
    teams: int
    people_listed: int
    guard_dropped: int


def suppress(count: int) -> str:
    """Published-statistics rule for small numbers: 0 stays 0, 1-7 become "*", the rest round to the nearest 5."""
    if count < 0:
        raise ValueError("a count cannot be negative")
    if count == 0:
        return "0"
    if count <= 7:
        return "*"
    return str(_round5(count))


def aggregate_summary(population_summary: pl.DataFrame) -> pl.DataFrame:
    """Counts of people (and expected events) by tier, and by team, age band and deprivation quintile × tier.

    Long format: breakdown, group, tier, people, expected_events; every value a suppressed string. Every
    group × tier cell is present, zeros included, so a missing row never hints at a small number. Only the
    five summary columns are read: any id column the caller left in is never touched.
    """
    pop = _summary_input(population_summary)
    tiers = _tier_order(pop["tier"].unique().to_list())
    parts = [
        _crosstab(pop, "all people", None, tiers),
        _crosstab(pop, "team", "team_id", tiers),
        _crosstab(pop, "age band", "age_band", tiers),
        _crosstab(pop, "deprivation quintile", "imd_quintile", tiers),
    ]
    return pl.concat(parts, how="vertical")


def publish(
    out_dir: Path,
    team_list: pl.DataFrame,
    explanations: pl.DataFrame,
    leavers: pl.DataFrame,
    activity: pl.DataFrame,
    population_summary: pl.DataFrame,
    opted_out_ids: set[str],
    reidentification: dict[str, pl.DataFrame] | None = None,
    workers: int | None = None,
) -> PublishReport:
    """Write every team's outputs and the commissioners' summary for one run, atomically.

    Teams are written by `workers` processes (default: one per core when at least PARALLEL_MIN_PEOPLE people are
    listed, else in this process); the files are the same either way."""
    frames = _Frames(
        team_list=_normalise_list(team_list),
        explanations=_conform(explanations, "explanations"),
        leavers=_conform(leavers, "leavers"),
        activity=_conform(activity, "activity"),
        population_summary=_checked_summary(population_summary),
        reidentification={str(k): _conform(v, "reidentification") for k, v in (reidentification or {}).items()},
    )
    prov = _provenance(frames.team_list)
    teams = _teams(frames.team_list)  # taken before the guard: a team keeps its (possibly empty) list
    _warn_unknown_reid_teams(frames.reidentification, teams)
    guarded, dropped = _guard(frames, {str(i) for i in opted_out_ids})
    dest = Path(out_dir) / prov.as_of.isoformat()
    with _staging_dir(dest) as staging:
        folder = _Folder(staging)
        window = (_months_before(prov.as_of, ACTIVITY_MONTHS), prov.as_of)
        _publish_teams(folder, guarded, teams, prov, window, workers)
        _publish_commissioners(folder, guarded.population_summary, prov, teams)
        _write_manifest(folder, prov, len(teams), guarded.team_list.height, dropped)
    log.info(
        "published %d teams, %d people listed; guard dropped %d rows", len(teams), guarded.team_list.height, dropped
    )
    files = [dest / w.path for w in folder.written] + [dest / "manifest.json"]
    return PublishReport(files=files, teams=len(teams), people_listed=guarded.team_list.height, guard_dropped=dropped)


# ----------------------------------------------------------------------------------------------------------------
# Inputs: shape checks, provenance, the opt-out guard
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Provenance:
    run_id: str
    as_of: date
    model_versions: str
    data_batches: str
    explain_scale: str
    ranking_outcome: str
    cost_currency: str = REFERENCE_CURRENCY

    def as_dict(self) -> dict[str, str]:
        return {
            "run_id": self.run_id,
            "as_of": self.as_of.isoformat(),
            "model_versions": self.model_versions,
            "data_batches": self.data_batches,
            "explain_scale": self.explain_scale,
            "ranking_outcome": self.ranking_outcome,
            "cost_currency": self.cost_currency,
        }


@dataclass(frozen=True)
class _Frames:
    team_list: pl.DataFrame
    explanations: pl.DataFrame
    leavers: pl.DataFrame
    activity: pl.DataFrame
    population_summary: pl.DataFrame
    reidentification: dict[str, pl.DataFrame] = field(default_factory=dict)


def _require(frame: pl.DataFrame, name: str, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} is missing columns: {', '.join(missing)}")


def _conform(frame: pl.DataFrame, name: str) -> pl.DataFrame:
    """Check columns and cast to the expected types. An empty frame without columns (a first week with no
    leavers, say) becomes an empty frame of the right shape."""
    schema = SCHEMAS[name]
    if frame.height == 0 and not set(schema) <= set(frame.columns):
        return pl.DataFrame(schema=schema)
    _require(frame, name, list(schema))
    if name != "reidentification":
        frame = _drop_identifiers(frame, name)
    return frame.with_columns(pl.col(c).cast(t) for c, t in schema.items())


def _checked_summary(population_summary: pl.DataFrame) -> pl.DataFrame:
    # Checked now, not when the summary is written, so a bad frame fails before any file is started.
    _require(population_summary, "population_summary", SUMMARY_COLUMNS)
    return population_summary


def _drop_identifiers(frame: pl.DataFrame, name: str) -> pl.DataFrame:
    """NHS numbers and names may only come from a team's own key: if a shared frame carries them, they
    would reach every team, so they are dropped."""
    found = [c for c in REID_COLUMNS if c in frame.columns]
    if found:
        log.warning(
            "%s carried identifying columns (%s); dropped: use `reidentification` instead", name, ", ".join(found)
        )
    return frame.drop(found)


def _normalise_list(team_list: pl.DataFrame) -> pl.DataFrame:
    # A run may model only some outcomes (a small population, say): the others' risk columns stay empty.
    absent = [c for c in OUTCOME_RISK_COLUMNS if c not in team_list.columns]
    team_list = team_list.with_columns(pl.lit(None, dtype=pl.Float64).alias(c) for c in absent)
    _require(team_list, "team_list", LIST_COLUMNS)
    if team_list.height == 0:
        raise ValueError("team_list is empty: nothing to publish (and no run id to publish it under)")
    casts = [pl.col(c).cast(pl.String) for c in ("person_id", "team_id", "run_id")]
    if team_list.schema["as_of"] != pl.Date:
        casts.append(pl.col("as_of").cast(pl.String).str.to_date())
    out = _drop_identifiers(team_list, "team_list").with_columns(casts)
    if out.select("team_id", "person_id").is_duplicated().any():
        raise ValueError("team_list lists someone twice in the same team (one row per person per team)")
    for column in ("team_id", "person_id"):
        if not all(_SAFE_NAME.match(v or "") for v in out[column].to_list()):
            # No value in the message: person ids must not reach logs.
            raise ValueError(f"team_list.{column} has values that are not safe as file names (A-Z a-z 0-9 _ . -)")
    return out


def _single(frame: pl.DataFrame, column: str) -> str:
    values = frame[column].drop_nulls().unique().to_list()
    if len(values) != 1 or frame[column].null_count():
        raise ValueError(f"team_list.{column} must hold one value on every row (found {len(values)} distinct)")
    return str(values[0])


def _provenance(team_list: pl.DataFrame) -> Provenance:
    outcomes = sorted(team_list["ranking_outcome"].drop_nulls().unique().to_list())
    return Provenance(
        run_id=_single(team_list, "run_id"),
        as_of=date.fromisoformat(_single(team_list, "as_of")),
        model_versions=_single(team_list, "model_versions"),
        data_batches=_single(team_list, "data_batches"),
        explain_scale=_single(team_list, "explain_scale"),
        cost_currency=_single(team_list, "cost_currency")
        if "cost_currency" in team_list.columns
        else REFERENCE_CURRENCY,
        ranking_outcome=", ".join(outcomes),
    )


def _teams(team_list: pl.DataFrame) -> dict[str, str]:
    pairs = team_list.select("team_id", "team_name").unique(subset="team_id", keep="first").sort("team_id")
    return {str(t): str(n) for t, n in pairs.iter_rows()}


def _warn_unknown_reid_teams(reid: dict[str, pl.DataFrame], teams: dict[str, str]) -> None:
    unknown = sorted(set(reid) - set(teams))
    if unknown:
        log.warning("re-identification keys for teams with no list this week were ignored: %s", ", ".join(unknown))


def _guard(frames: _Frames, opted_out: set[str]) -> tuple[_Frames, int]:
    """Drop every row about an opted-out person, from every frame, and count them. The caller should have
    done this already; this is the final check before anything reaches disk."""
    ids = sorted(opted_out)
    team_list, n_list = _drop_ids(frames.team_list, ids)
    if n_list:
        # Close the gaps: a missing rank 3 would tell the team that someone was hidden, and who, by comparison
        # with last week's list.
        team_list = team_list.sort(["team_id", "rank"]).with_columns(
            rank=pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over("team_id")
        )
    explanations, n_expl = _drop_ids(frames.explanations, ids)
    activity, n_act = _drop_ids(frames.activity, ids)
    population, n_pop = _drop_ids(frames.population_summary, ids)
    leavers, n_leave = _anonymise_opted_out_leavers(frames.leavers, ids)
    reid: dict[str, pl.DataFrame] = {}
    n_reid = 0
    for team_id, key in frames.reidentification.items():
        reid[team_id], n = _drop_ids(key, ids)
        n_reid += n
    guarded = _Frames(team_list, explanations, leavers, activity, population, reid)
    return guarded, n_list + n_expl + n_act + n_pop + n_leave + n_reid


def _drop_ids(frame: pl.DataFrame, ids: list[str]) -> tuple[pl.DataFrame, int]:
    if "person_id" not in frame.columns or not ids:
        return frame, 0
    kept = frame.filter(~pl.col("person_id").cast(pl.String).is_in(ids).fill_null(False))
    return kept, frame.height - kept.height


def _anonymise_opted_out_leavers(leavers: pl.DataFrame, ids: list[str]) -> tuple[pl.DataFrame, int]:
    """Opted-out leavers stay in the count but lose their id and previous rank. A leaver whose id is in the
    opt-out set is counted as opted out whatever reason the caller gave: naming them would breach the opt-out."""
    listed = pl.col("person_id").is_in(ids).fill_null(False) if ids else pl.lit(False)
    named_opt_out = (pl.col("reason") == OPTED_OUT) & pl.col("person_id").is_not_null()
    flagged = leavers.with_columns(_anon=listed | named_opt_out)
    n = int(flagged["_anon"].sum())
    anon = pl.col("_anon") | (pl.col("reason") == OPTED_OUT)
    out = flagged.with_columns(
        reason=pl.when(pl.col("_anon")).then(pl.lit(OPTED_OUT)).otherwise(pl.col("reason")),
        person_id=pl.when(anon).then(pl.lit(None, pl.String)).otherwise(pl.col("person_id")),
        previous_rank=pl.when(anon).then(pl.lit(None, pl.Int64)).otherwise(pl.col("previous_rank")),
    ).drop("_anon")
    return out, n


def _months_before(day: date, months: int) -> date:
    year, month0 = divmod(day.year * 12 + day.month - 1 - months, 12)
    last = calendar.monthrange(year, month0 + 1)[1]
    return date(year, month0 + 1, min(day.day, last))


# ----------------------------------------------------------------------------------------------------------------
# Writing: a staging folder renamed into place, and a record of every file for the manifest
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Written:
    path: str
    rows: int
    sha256: str
    bytes: int
    sheets: dict[str, int] | None = None


class _Folder:
    """Writes files under one root and remembers each one (relative path, rows, sha256) for the manifest."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.written: list[_Written] = []
        self._made: set[Path] = set()

    def write(self, rel: str, data: bytes | str, rows: int, sheets: dict[str, int] | None = None) -> None:
        payload = data.encode("utf-8") if isinstance(data, str) else data
        path = self.root / rel
        if path.parent not in self._made:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._made.add(path.parent)
        path.write_bytes(payload)
        digest = hashlib.sha256(payload).hexdigest()
        self.written.append(_Written(rel, rows, digest, len(payload), sheets))


@contextmanager
def _staging_dir(dest: Path) -> Iterator[Path]:
    """Yield a temporary folder next to `dest`; on success swap it in for `dest`, on failure delete it.

    Same parent, so the rename stays on one filesystem. The old folder is moved aside before the new
    one moves in and is restored if that fails, so `dest` is always either the old run or the new one
    (apart from the instant between the two renames: Linux has no portable atomic directory swap)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        yield staging
        _swap_into_place(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _swap_into_place(staging: Path, dest: Path) -> None:
    if not dest.exists():
        os.rename(staging, dest)
        return
    old = dest.parent / f".{dest.name}.old-{uuid.uuid4().hex[:8]}"
    os.rename(dest, old)
    try:
        os.rename(staging, dest)
    except BaseException:
        os.rename(old, dest)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _write_manifest(folder: _Folder, prov: Provenance, teams: int, people: int, dropped: int) -> None:
    files = []
    for w in sorted(folder.written, key=lambda w: w.path):
        entry: dict[str, Any] = {"path": w.path, "rows": w.rows, "sha256": w.sha256, "bytes": w.bytes}
        if w.sheets is not None:
            entry["sheets"] = w.sheets
        files.append(entry)
    manifest = {
        "provenance": prov.as_dict(),
        "teams": teams,
        "people_listed": people,
        "guard_dropped": dropped,
        "files": files,
    }
    (folder.root / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


# ----------------------------------------------------------------------------------------------------------------
# One team
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _TeamData:
    team_id: str
    team_name: str
    rows: pl.DataFrame  # the list, sorted by rank (with nhs_number, name when the team holds a key)
    reasons: pl.DataFrame
    leavers: pl.DataFrame
    activity: pl.DataFrame
    reidentified: bool


def _team_data(frames: _Frames, team_id: str, team_name: str, window: tuple[date, date]) -> _TeamData:
    rows = frames.team_list.filter(pl.col("team_id") == team_id).sort("rank")
    keys = rows.select("person_id", "team_id", "rank")
    # Join on team too: one team's reasons never land in another team's files.
    reasons = frames.explanations.join(keys, on=["person_id", "team_id"], how="inner").sort(["rank", "reason_rank"])
    leavers = frames.leavers.filter(pl.col("team_id") == team_id).sort("previous_rank", nulls_last=True)
    activity = frames.activity.join(rows.select("person_id").unique(), on="person_id", how="semi").filter(
        pl.col("event_date").is_between(window[0], window[1])
    )
    key = frames.reidentification.get(team_id)
    if key is not None:
        key = _reid_key(key)
        rows, reasons, leavers = (_reidentify(f, key) for f in (rows, reasons, leavers))
    return _TeamData(team_id, team_name, rows, reasons, leavers, activity, key is not None)


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


PARALLEL_MIN_PEOPLE = 5_000
"""Below this many listed people, starting worker processes (about a second each) costs more than it saves."""


def _publish_teams(
    folder: _Folder,
    frames: _Frames,
    teams: dict[str, str],
    prov: Provenance,
    window: tuple[date, date],
    workers: int | None,
) -> None:
    """Every team's files. Writing a team is pure Python (workbook XML, HTML pages), so at scale the teams are
    shared out between processes; each worker gets only its team's rows and reports what it wrote."""
    if workers is None:
        workers = (os.cpu_count() or 1) if frames.team_list.height >= PARALLEL_MIN_PEOPLE else 1
    workers = min(workers, len(teams))
    if workers <= 1:
        for team_id, team_name in teams.items():
            _publish_team(folder, _team_data(frames, team_id, team_name, window), prov, window)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # "spawn": the parent holds Polars and DuckDB thread pools, which a forked child must not inherit.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [
            pool.submit(
                _publish_team_in_worker, folder.root, _team_data(frames, team_id, team_name, window), prov, window
            )
            for team_id, team_name in teams.items()
        ]
        for future in futures:
            folder.written.extend(future.result())


def _publish_team_in_worker(root: Path, team: _TeamData, prov: Provenance, window: tuple[date, date]) -> list[_Written]:
    folder = _Folder(root)
    _publish_team(folder, team, prov, window)
    return folder.written


def _publish_team(folder: _Folder, team: _TeamData, prov: Provenance, window: tuple[date, date]) -> None:
    team_id = team.team_id
    base = f"teams/{team_id}/"
    folder.write(f"{base}{team_id}_list.csv", _list_csv(team.rows), team.rows.height)
    workbook, sheets = _workbook(team, prov)
    folder.write(f"{base}{team_id}_list.xlsx", workbook, team.rows.height, sheets)
    folder.write(f"{base}index.html", _team_index_html(team, prov), team.rows.height)
    reasons_by = _rows_by_person(team.reasons)
    activity_by = _rows_by_person(team.activity)
    for row in team.rows.iter_rows(named=True):
        pid = row["person_id"]
        page = _person_page_html(row, reasons_by.get(pid, []), activity_by.get(pid, []), team, prov, window)
        folder.write(f"{base}people/{pid}.html", page, 1)


def _rows_by_person(frame: pl.DataFrame) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in frame.iter_rows(named=True):
        grouped[row["person_id"]].append(row)
    return grouped


def _list_csv(rows: pl.DataFrame) -> str:
    """Known columns in reading order, then anything extra; the provenance columns are on every row. A BOM so
    that Excel reads the £ signs in care packages correctly."""
    front = ["rank", "person_id", *[c for c in REID_COLUMNS if c in rows.columns]]
    rest = [c for c in (*LIST_COLUMNS, *OPTIONAL_LIST_COLUMNS) if c in rows.columns and c not in front]
    # An allow-list, not "everything the frame holds": a column added upstream (a postcode, a date of birth)
    # must not reach the teams' files without someone deciding it should.
    ordered = rows.select(*front, *[c for c in rest if c not in PROVENANCE_COLUMNS], *PROVENANCE_COLUMNS)
    return ordered.write_csv(include_bom=True)


# ----------------------------------------------------------------------------------------------------------------
# Excel workbook
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Col:
    key: str
    header: str
    style: str | None = None  # a named style from _register_styles; "tier" picks the tier's colours
    width: float | None = None


LIST_SHEET = (
    _Col("rank", "Rank", width=7),
    _Col("person_id", "Person ID"),
    _Col("age_band", "Age band", width=10),
    _Col("sex", "Sex", width=9),
    _Col("gp_practice", "GP practice"),
    _Col("tier", "Tier", "tier", width=11),
    _Col("risk", "Risk", "rs_pct", width=9),
    _Col("change", "Change since last week", width=12),
    _Col("previous_rank", "Rank last week", width=9),
    _Col("reasons", "Main reasons", "rs_wrap", width=70),
    *(_Col(c, f"{label} risk", "rs_pct", width=13) for c, label in OUTCOME_RISK_COLUMNS.items()),
    _Col("social_care_package", "Social care package", width=36),
    _Col("in_care_home", "In a care home", width=10),
    _Col("recent_discharge", "Discharged from hospital in last 30 days", width=14),
    _Col("on_last_weeks_list", "On last week's list", width=10),
)
REASONS_SHEET = (
    _Col("rank", "List rank", width=8),
    _Col("person_id", "Person ID"),
    _Col("reason_rank", "Reason", width=8),
    _Col("phrase", "Reason in plain words", width=55),
    _Col("direction", "Effect", width=12),
    _Col("contribution", "Contribution (log-odds)", "rs_signed", width=13),
    _Col("feature_label", "Factor", width=30),
    _Col("value", "Value", width=14),
    _Col("feature", "Model feature", width=28),
)
CHANGES_SHEET = (
    _Col("what", "What changed", width=26),
    _Col("rank", "Rank now", width=9),
    _Col("previous_rank", "Rank last week", width=9),
    _Col("person_id", "Person ID"),
    _Col("tier", "Tier", "tier", width=11),
    _Col("risk", "Risk", "rs_pct", width=9),
    _Col("note", "Note", width=50),
)
CHANGE_WORDS = {
    "new": ("New", "New to the list this week"),
    "rising": ("Rising", "Risk has risen since last week"),
    "falling": ("Falling", "Risk has fallen since last week"),
}
LEAVER_WORDS = {
    "died": "Died",
    "moved team": "Moved to another team's list",
    "risk fell": "Risk fell below this week's cut-off",
}


def _register_styles(wb: Workbook) -> None:
    """Named styles, registered once per workbook: a write-only workbook streams rows, and a named style is
    far cheaper per cell than building fonts and fills for each one (5,000 people: seconds, not minutes)."""
    top = Alignment(vertical="top")
    styles = [
        NamedStyle(
            "rs_header",
            font=Font(bold=True),
            fill=PatternFill("solid", fgColor="E4E9F0"),
            alignment=Alignment(wrap_text=True, vertical="top"),
        ),
        NamedStyle("rs_pct", number_format="0.0%", alignment=top),
        NamedStyle("rs_signed", number_format="+0.00;-0.00;0.00", alignment=top),
        NamedStyle("rs_wrap", alignment=Alignment(wrap_text=True, vertical="top")),
        NamedStyle("rs_label", font=Font(bold=True), alignment=top),
        NamedStyle("rs_note", font=Font(italic=True)),
    ]
    for tier in (*TIER_ORDER, ""):
        bg, fg = tier_colours(tier)
        styles.append(
            NamedStyle(
                _tier_style(tier),
                font=Font(bold=True, color=fg.lstrip("#")),
                fill=PatternFill("solid", fgColor=bg.lstrip("#")),
                alignment=top,
            )
        )
    for style in styles:
        wb.add_named_style(style)


def _tier_style(tier: str | None) -> str:
    return f"rs_tier_{(tier if tier in TIER_ORDER else 'other').replace(' ', '_')}"


def _with_reid_cols(cols: Sequence[_Col], reidentified: bool) -> list[_Col]:
    if not reidentified:
        return list(cols)
    out: list[_Col] = []
    for col in cols:
        out.append(col)
        if col.key == "person_id":
            out += [_Col("nhs_number", "NHS number", width=13), _Col("name", "Name", width=24)]
    return out


def _workbook(team: _TeamData, prov: Provenance) -> tuple[bytes, dict[str, int]]:
    wb = Workbook(write_only=True)
    _register_styles(wb)
    list_rows = [_excel_values(r) for r in team.rows.iter_rows(named=True)]
    _write_table(wb.create_sheet("List"), _with_reid_cols(LIST_SHEET, team.reidentified), list_rows)
    reasons_cols = _with_reid_cols(REASONS_SHEET, team.reidentified)
    _write_table(wb.create_sheet("Reasons"), reasons_cols, list(team.reasons.iter_rows(named=True)))
    changes, opted_out = _change_rows(team)
    ws_changes = wb.create_sheet("Changes")
    _write_table(ws_changes, _with_reid_cols(CHANGES_SHEET, team.reidentified), changes)
    ws_changes.append([])
    ws_changes.append([_styled(ws_changes, _opted_out_sentence(opted_out), "rs_note")])
    _write_about(wb.create_sheet("About"), team, prov)
    buffer = io.BytesIO()
    wb.save(buffer)
    sheets = {"List": team.rows.height, "Reasons": team.reasons.height, "Changes": len(changes) + 1, "About": 0}
    return buffer.getvalue(), sheets


def _excel_values(row: dict[str, Any]) -> dict[str, Any]:
    return {k: ("Yes" if v else "No") if isinstance(v, bool) else v for k, v in row.items()}


def _change_rows(team: _TeamData) -> tuple[list[dict[str, Any]], int]:
    """Movers from this week's list, then the named leavers. Opted-out leavers are only counted."""
    rows: list[dict[str, Any]] = []
    for change, (what, note) in CHANGE_WORDS.items():
        for r in team.rows.filter(pl.col("change") == change).iter_rows(named=True):
            rows.append({**r, "what": what, "note": note})
    named = team.leavers.filter(pl.col("reason") != OPTED_OUT)
    for r in named.iter_rows(named=True):
        reason = r["reason"]
        rows.append({**r, "what": f"Left the list: {reason}", "note": LEAVER_WORDS.get(reason, reason)})
    opted_out = team.leavers.filter(pl.col("reason") == OPTED_OUT).height
    return rows, opted_out


def _opted_out_sentence(n: int) -> str:
    people = "person" if n == 1 else "people"
    return f"{n} {people} left because they opted out (not named)"


def _styled(ws: Any, value: Any, style: str) -> WriteOnlyCell:
    cell = WriteOnlyCell(ws, value)
    cell.style = style
    return cell


def _write_table(ws: Any, cols: Sequence[_Col], records: Sequence[dict[str, Any]]) -> None:
    """Header in bold, frozen below the header and beside the identity columns, autofilter, widths, formats.

    Write-only sheets write widths and panes before the rows, so those are set first."""
    for i, col in enumerate(cols, start=1):
        ws.column_dimensions[get_column_letter(i)].width = col.width or _fit_width(col, records)
    # Freeze the columns that say who the person is, so they stay in view when scrolling right.
    id_cols = [i for i, c in enumerate(cols, start=1) if c.key in ("person_id", *REID_COLUMNS)]
    ws.freeze_panes = f"{get_column_letter((max(id_cols) if id_cols else 0) + 1)}2"
    ws.auto_filter.ref = f"A1:{get_column_letter(len(cols))}{len(records) + 1}"
    ws.append([_styled(ws, c.header, "rs_header") for c in cols])
    for record in records:
        ws.append([_excel_cell(ws, record.get(c.key), c) for c in cols])


def _excel_cell(ws: Any, value: Any, col: _Col) -> Any:
    if col.style is None or value is None:
        return value  # a plain value is much cheaper to stream than a styled cell
    return _styled(ws, value, _tier_style(value) if col.style == "tier" else col.style)


def _fit_width(col: _Col, records: Sequence[dict[str, Any]]) -> float:
    longest = max((len(str(r.get(col.key) or "")) for r in records), default=0)
    return float(min(max(len(col.header), longest) + 2, 50))


def _about_rows(team: _TeamData, prov: Provenance) -> list[tuple[str, str]]:
    rows = [
        ("Team", f"{team.team_name} ({team.team_id})"),
        ("As of", _uk_date(prov.as_of)),
        ("Run id", prov.run_id),
        ("Ranked by risk of", _outcome_words(prov.ranking_outcome)),
        ("Model versions", prov.model_versions),
        ("Data batches", prov.data_batches),
        ("Costs", f"in {prov.cost_currency}, as the source recorded them (never converted)"),
        ("Scale of explanations", f"{prov.explain_scale} (contributions add up from the average person's score)"),
        ("People listed", str(team.rows.height)),
        (
            "Identifiers",
            "Person IDs are pseudonymised. "
            + (
                "Your team's NHS numbers and names were added from your own key."
                if team.reidentified
                else "Re-identify through your practice's own key."
            ),
        ),
    ]
    rows += [("How to read this list" if i == 0 else "", text) for i, text in enumerate(HOW_TO_READ)]
    return rows


def _write_about(ws: Any, team: _TeamData, prov: Provenance) -> None:
    ws.column_dimensions["A"].width = 26
    ws.column_dimensions["B"].width = 110
    for label, text in _about_rows(team, prov):
        ws.append([_styled(ws, label, "rs_label"), _styled(ws, text, "rs_wrap")])


# ----------------------------------------------------------------------------------------------------------------
# HTML pages
# ----------------------------------------------------------------------------------------------------------------

CSS = """
:root{--ink:#1F2933;--muted:#52606D;--line:#D9E2EC;--bg:#F5F7FA;--accent:#005EB8}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;color:var(--ink);
background:#fff}
main{max-width:1240px;margin:0 auto;padding:20px 28px 48px}
a{color:var(--accent)}
.masthead{border-bottom:3px solid var(--accent);padding-bottom:10px;margin-bottom:14px}
.eyebrow{text-transform:uppercase;letter-spacing:.06em;font-size:12px;color:var(--muted);font-weight:600}
h1{font-size:26px;margin:4px 0 2px}
h2{font-size:19px;margin:28px 0 6px}
h3{font-size:13px;margin:0 0 6px;text-transform:uppercase;letter-spacing:.05em;color:var(--muted)}
.meta{color:var(--muted);margin:2px 0}
.caption{color:var(--muted);font-size:13.5px;margin:2px 0 8px;max-width:900px}
.chip{display:inline-block;padding:1px 9px;border-radius:10px;font-size:12.5px;font-weight:600;white-space:nowrap}
.stats{display:flex;flex-wrap:wrap;gap:10px;margin:10px 0}
.stat{border:1px solid var(--line);border-radius:6px;padding:6px 12px;background:var(--bg)}
.stat b{font-size:20px;display:block}
.callout{background:#FFF8E1;border-left:4px solid #F0B400;padding:8px 12px;margin:12px 0;font-size:14px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;vertical-align:top;padding:7px 8px;border-bottom:1px solid var(--line)}
thead th{background:var(--bg);font-size:13px;position:sticky;top:0;white-space:nowrap}
table.sortable thead th{cursor:pointer}
table.sortable thead th::after{content:" \\2195";color:#9AA5B1;font-size:11px}
tbody tr:nth-child(even){background:#FBFCFD}
tbody tr:hover{background:#EEF4FB}
.num{text-align:right;font-variant-numeric:tabular-nums}.nw{white-space:nowrap}
table.compact{width:auto;min-width:520px}table.compact td.num,table.compact th.num{min-width:96px}
.person a{font-weight:600;text-decoration:none}
.person .sub{color:var(--muted);font-size:12.5px}
.riskbar{display:flex;align-items:center;gap:8px;min-width:140px}
.riskbar .track{flex:1;height:9px;background:#E4E7EB;border-radius:5px;overflow:hidden}
.riskbar .fill{display:block;height:100%;background:#B2182B}
.riskbar .pct{width:42px;text-align:right;font-variant-numeric:tabular-nums;font-weight:600}
ul.reasons{margin:0;padding-left:16px;font-size:13.5px;min-width:230px}
.tag{display:inline-block;border:1px solid var(--line);border-radius:4px;padding:0 6px;margin:0 4px 3px 0;
font-size:12px;background:#fff}
.change-new{color:#005EB8;font-weight:600}.change-rising{color:#B2182B;font-weight:600}
.change-falling{color:#2C7BB6}.change-steady{color:var(--muted)}
.person-head{display:grid;grid-template-columns:auto 1fr auto;gap:18px;align-items:center}
.rank-badge{font-size:30px;font-weight:700;background:var(--bg);border:1px solid var(--line);border-radius:8px;
padding:8px 14px;text-align:center}
.rank-badge small{display:block;font-size:11px;color:var(--muted);font-weight:600;text-transform:uppercase}
.riskbox{text-align:right}.riskbox .big{font-size:36px;font-weight:700;line-height:1.1}
.cards{display:grid;grid-template-columns:repeat(3,1fr);gap:14px;margin-top:16px}
.card{border:1px solid var(--line);border-radius:8px;padding:10px 14px}
.card dl{display:grid;grid-template-columns:1fr auto;gap:2px 12px;margin:0}.card dd{margin:0;font-weight:600}
.card ul{margin:0;padding-left:18px}
.chart{border:1px solid var(--line);border-radius:8px;padding:12px 14px}.chart.narrow{max-width:680px}
footer{margin-top:32px;border-top:1px solid var(--line);padding-top:10px;font-size:12px;color:var(--muted)}
@media print{@page{size:A4 landscape;margin:12mm}body{font-size:11px}main{max-width:none;padding:0}
ul.reasons,.tag,.callout,.services{font-size:11px}.stat b{font-size:15px}h1{font-size:20px}
.noprint{display:none}thead th{position:static}table.sortable thead th::after{content:""}
tr,.chart,.card{break-inside:avoid}a{color:inherit;text-decoration:none}
*{-webkit-print-color-adjust:exact;print-color-adjust:exact}}
"""

SORT_SCRIPT = """
document.querySelectorAll('table.sortable').forEach(function(t){
  t.querySelectorAll('thead th').forEach(function(th,i){th.addEventListener('click',function(){
    var body=t.tBodies[0],rows=Array.prototype.slice.call(body.rows),asc=th.dataset.dir!=='asc';
    t.querySelectorAll('thead th').forEach(function(h){delete h.dataset.dir});th.dataset.dir=asc?'asc':'desc';
    rows.sort(function(a,b){var x=a.cells[i].dataset.sort||a.cells[i].textContent,
      y=b.cells[i].dataset.sort||b.cells[i].textContent,nx=parseFloat(x),ny=parseFloat(y);
      var c=(!isNaN(nx)&&!isNaN(ny))?nx-ny:x.localeCompare(y);return asc?c:-c;});
    rows.forEach(function(r){body.appendChild(r)});});});});
"""


def _e(value: Any) -> str:
    return "" if value is None else escape(str(value))


def _uk_date(day: date) -> str:
    # Not strftime: it is locale-dependent and, called for every activity row, noticeably slow.
    return f"{day.day} {MONTHS[day.month - 1]} {day.year}"


def _outcome_words(outcome: str) -> str:
    return outcome.replace("_", " ")


def _page(title: str, body: str, script: str = "") -> str:
    script_tag = f"<script>{script}</script>" if script else ""
    return (
        '<!doctype html><html lang="en-GB"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="robots" content="noindex"><title>{_e(title)}</title><style>{CSS}</style></head>'
        f"<body><main>{body}</main>{script_tag}</body></html>"
    )


def _chip(tier: str | None) -> str:
    bg, fg = tier_colours(tier)
    return f'<span class="chip" style="background:{bg};color:{fg}">{_e(tier)}</span>'


def _risk_bar(risk: float | None) -> str:
    if risk is None:
        return '<span class="change-steady">not scored</span>'
    width = max(0.0, min(1.0, risk)) * 100
    return (
        f'<div class="riskbar"><span class="track"><span class="fill" style="width:{width:.1f}%"></span></span>'
        f'<span class="pct">{_e(fmt_pct(risk))}</span></div>'
    )


def _change_html(change: str | None, previous_rank: int | None) -> str:
    was = f" (was #{previous_rank})" if previous_rank is not None and change != "new" else ""
    words = {"new": "New", "rising": "\u25b2 Rising", "falling": "\u25bc Falling", "steady": "Steady"}
    label = words.get(change or "", change or "")
    return f'<span class="change-{_e(change)}">{_e(label)}</span><span class="sub">{_e(was)}</span>'


def _services(row: dict[str, Any]) -> list[str]:
    items: list[str] = []
    if row.get("in_care_home"):
        items.append("Lives in a care home")
    if row.get("recent_discharge"):
        items.append("Discharged from hospital in the last 30 days")
    if row.get("social_care_package"):
        items.append(f"Social care: {row['social_care_package']}")
    return items


def _footer(prov: Provenance) -> str:
    return (
        f"<footer>Run {_e(prov.run_id)} · as of {_e(prov.as_of.isoformat())} · models {_e(prov.model_versions)} · "
        f"data batches {_e(prov.data_batches)} · explanations on the {_e(prov.explain_scale)} scale · costs in "
        f"{_e(prov.cost_currency)}.<br>"
        "Pseudonymised: re-identify only for direct care by your own team. This list supports clinical "
        "judgement; it does not replace it.</footer>"
    )


def _person_cell(row: dict[str, Any]) -> str:
    pid = row["person_id"]
    name = row.get("name")
    main = _e(name) if name else _e(pid)
    sub = f"NHS {_e(row.get('nhs_number'))} · {_e(pid)}" if name else ""
    return (
        f'<td class="person" data-sort="{_e(name or pid)}"><a href="people/{_e(pid)}.html">{main}</a>'
        f'<div class="sub">{sub}</div></td>'
    )


def _list_row_html(row: dict[str, Any]) -> str:
    reasons = "".join(f"<li>{_e(r)}</li>" for r in (row.get("reasons") or "").split("; ") if r)
    services = "".join(f'<span class="tag">{_e(s)}</span>' for s in _services(row))
    tier_sort = TIER_ORDER.index(row["tier"]) if row.get("tier") in TIER_ORDER else len(TIER_ORDER)
    return (
        f'<tr><td class="num" data-sort="{_e(row["rank"])}">{_e(row["rank"])}</td>{_person_cell(row)}'
        f'<td class="nw">{_e(row.get("age_band"))}</td><td class="nw">{_e(row.get("sex"))}</td>'
        f'<td class="nw">{_e(row.get("gp_practice"))}</td>'
        f'<td data-sort="{tier_sort}">{_chip(row.get("tier"))}</td>'
        f'<td data-sort="{_e(row.get("risk"))}">{_risk_bar(row.get("risk"))}</td>'
        f"<td>{_change_html(row.get('change'), row.get('previous_rank'))}</td>"
        f'<td><ul class="reasons">{reasons}</ul></td><td class="services">{services}</td></tr>'
    )


def _team_stats(team: _TeamData) -> str:
    counts = dict(team.rows.group_by(pl.col("tier").fill_null("unknown")).len().iter_rows())
    changes = dict(team.rows.group_by(pl.col("change").fill_null("unknown")).len().iter_rows())
    stats = [(str(team.rows.height), "people listed")]
    stats += [(str(counts[t]), f"{t} tier") for t in _tier_order(list(counts))]
    stats += [(str(changes.get(c, 0)), f"{c} this week") for c in ("new", "rising", "falling")]
    stats.append((str(team.leavers.height), "left the list"))
    cards = "".join(f'<div class="stat"><b>{_e(n)}</b>{_e(t)}</div>' for n, t in stats)
    return f'<div class="stats">{cards}</div>'


def _leavers_html(team: _TeamData) -> str:
    named = team.leavers.filter(pl.col("reason") != OPTED_OUT)
    opted_out = team.leavers.height - named.height
    rows = "".join(
        f'<tr><td class="num">{_e(r["previous_rank"])}</td><td>{_e(r.get("name") or r["person_id"])}</td>'
        f"<td>{_e(LEAVER_WORDS.get(r['reason'], r['reason']))}</td></tr>"
        for r in named.iter_rows(named=True)
    )
    table = (
        '<table class="compact"><thead><tr><th>Rank last week</th><th>Person</th><th>Why they left</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>"
        if rows
        else f'<p class="caption">No one left the list{" for any other reason" if opted_out else ""}.</p>'
    )
    sentence = _e(_opted_out_sentence(opted_out))
    return f'<h2>Left the list since last week</h2>{table}<p class="caption">{sentence}.</p>'


def _team_index_html(team: _TeamData, prov: Provenance) -> str:
    headers = ("Rank", "Person", "Age", "Sex", "Practice", "Tier", "Risk", "Change", "Main reasons", "Services")
    head = "".join(f"<th>{h}</th>" for h in headers)
    body_rows = "".join(_list_row_html(r) for r in team.rows.iter_rows(named=True))
    how = "".join(f"<li>{_e(t)}</li>" for t in HOW_TO_READ)
    body = (
        '<header class="masthead"><div class="eyebrow">Proactive case management · weekly list</div>'
        f'<h1>{_e(team.team_name)}</h1><p class="meta">As of {_e(_uk_date(prov.as_of))} · ranked by risk of '
        f"{_e(_outcome_words(prov.ranking_outcome))} · team {_e(team.team_id)}</p></header>"
        f"{_team_stats(team)}"
        '<div class="callout">This list supports clinical judgement; it does not replace it. Click a person for '
        "the reasons behind their place on the list and their contact with services over two years.</div>"
        f'<table class="sortable list"><thead><tr>{head}</tr></thead><tbody>{body_rows}</tbody></table>'
        f"{_leavers_html(team)}<h2>How to read this list</h2><ul>{how}</ul>{_footer(prov)}"
    )
    return _page(f"{team.team_name}: weekly list, {prov.as_of.isoformat()}", body, SORT_SCRIPT)


def _waterfall_steps(row: dict[str, Any], reasons: list[dict[str, Any]]) -> list[WaterfallStep]:
    steps = [
        WaterfallStep(
            r["phrase"] or r["feature_label"] or r["feature"],
            float(r["contribution"] or 0.0),
            f"{r['feature_label']}: {r['value']}",
        )
        for r in sorted(reasons, key=lambda r: r["reason_rank"])
    ]
    # With the person's total score we can show everything not in the top reasons as one bar, so the chart
    # ends at their real score; without it the chart ends at base + the shown reasons (and says so).
    if row.get("logodds") is not None:
        shown = sum(s.contribution for s in steps)
        rest = float(row["logodds"]) - float(row["base_logodds"]) - shown
        steps.append(WaterfallStep("All other factors together", rest))
    return steps


def _timeline_events(activity: list[dict[str, Any]], currency: str) -> list[TimelineEvent]:
    events = []
    for a in activity:
        cost = f" · {money_prefix(currency)}{a['cost']:,.0f}" if a.get("cost") is not None else ""
        detail = f" · {a['detail']}" if a.get("detail") else ""
        events.append(
            TimelineEvent(a["event_date"], a["setting"], f"{_uk_date(a['event_date'])} · {a['setting']}{detail}{cost}")
        )
    return events


def _outcome_cards(row: dict[str, Any], prov: Provenance) -> str:
    risks = "".join(
        f"<dt>{_e(label)}{' (ranked on)' if col == f'risk_{prov.ranking_outcome}' else ''}</dt>"
        f"<dd>{_e(fmt_pct(row[col]))}</dd>"
        for col, label in OUTCOME_RISK_COLUMNS.items()
        if row.get(col) is not None
    )
    services = "".join(f"<li>{_e(s)}</li>" for s in _services(row)) or "<li>None recorded</li>"
    on_list = "Was on last week's list" if row.get("on_last_weeks_list") else "Not on last week's list"
    return (
        f'<section class="cards"><div class="card"><h3>Risk of each outcome</h3><dl>{risks}</dl></div>'
        f'<div class="card"><h3>Current services</h3><ul>{services}</ul></div>'
        f'<div class="card"><h3>Since last week</h3><p>{_change_html(row.get("change"), row.get("previous_rank"))}'
        f'</p><p class="caption">{_e(on_list)}</p></div></section>'
    )


def _person_head(row: dict[str, Any], team: _TeamData, prov: Provenance) -> str:
    title = _e(row["name"]) if row.get("name") else f"Person {_e(row['person_id'])}"
    ids = f"NHS number {_e(row.get('nhs_number'))} · " if row.get("name") else ""
    return (
        '<nav class="noprint"><a href="../index.html">\u2190 Back to the list</a></nav>'
        f'<header class="masthead"><div class="eyebrow">{_e(team.team_name)} · as of {_e(_uk_date(prov.as_of))}'
        '</div><div class="person-head">'
        f'<div class="rank-badge"><small>Rank</small>{_e(row["rank"])}</div>'
        f'<div><h1>{title}</h1><p class="meta">{ids}ID {_e(row["person_id"])} · {_e(row.get("age_band"))} · '
        f"{_e(row.get('sex'))} · practice {_e(row.get('gp_practice'))}</p></div>"
        f'<div class="riskbox">{_chip(row.get("tier"))}<div class="big">{_e(fmt_pct(row["risk"]))}</div>'
        f'<div class="meta">risk of {_e(_outcome_words(prov.ranking_outcome))}</div></div></div></header>'
    )


def _person_page_html(
    row: dict[str, Any],
    reasons: list[dict[str, Any]],
    activity: list[dict[str, Any]],
    team: _TeamData,
    prov: Provenance,
    window: tuple[date, date],
) -> str:
    steps = _waterfall_steps(row, reasons)
    complete = row.get("logodds") is not None
    final_label = "This person's score" if complete else "Score from these reasons"
    waterfall = html_charts.waterfall_svg(float(row["base_logodds"]), steps, prov.explain_scale, final_label)
    ending = (
        "ends at this person's score"
        if complete
        else "ends at the score these reasons add up to (smaller factors are left out)"
    )
    events = _timeline_events(activity, prov.cost_currency)
    timeline = html_charts.timeline_svg(events, window[0], window[1], SETTING_ORDER)
    cost = sum(a["cost"] for a in activity if a.get("cost") is not None)
    body = (
        f"{_person_head(row, team, prov)}{_outcome_cards(row, prov)}"
        "<h2>Why this person is on the list</h2>"
        f'<p class="caption">The chart starts from the average person\'s score and adds each main reason: red '
        f"bars raise the risk, blue bars lower it; it {ending}. Scale: {_e(prov.explain_scale)}; +0.7 roughly "
        "doubles the odds. The percentage at the top is the calibrated risk, so it need not match the chart's "
        f'score exactly.</p><div class="chart">{waterfall}</div>'
        "<h2>Contact with services, last 24 months</h2>"
        f'<p class="caption">{len(events)} recorded contacts from {_e(_uk_date(window[0]))} to '
        f"{_e(_uk_date(window[1]))}; recorded cost {_e(money_prefix(prov.cost_currency))}{cost:,.0f}. Hover over a "
        "dot for the details.</p>"
        f'<div class="chart">{timeline}</div>{_footer(prov)}'
    )
    label = row.get("name") or row["person_id"]
    return _page(f"#{row['rank']} {label}: {team.team_name}", body)


# ----------------------------------------------------------------------------------------------------------------
# Commissioners' aggregate
# ----------------------------------------------------------------------------------------------------------------

SUMMARY_COLUMNS = ("team_id", "tier", "age_band", "imd_quintile", "expected_events")
ALL_TIERS = "all tiers"


def _round5(x: float) -> int:
    # Half up, not banker's rounding: 12.5 expected events publish as 15.
    return math.floor(x / 5 + 0.5) * 5


def _suppress_expected(people: int, expected: float) -> str:
    """Expected events follow the people count of their cell: hidden when 1-7 people, else rounded to 5."""
    if people == 0:
        return "0"
    if people <= 7:
        return "*"
    return str(_round5(expected))


def _summary_input(population_summary: pl.DataFrame) -> pl.DataFrame:
    _require(population_summary, "population_summary", SUMMARY_COLUMNS)
    return population_summary.select(
        *(pl.col(c).cast(pl.String).fill_null("unknown") for c in ("team_id", "tier", "age_band", "imd_quintile")),
        pl.col("expected_events").cast(pl.Float64).fill_null(0.0),
    )


def _tier_order(tiers: Sequence[str]) -> list[str]:
    return [t for t in TIER_ORDER if t in tiers] + sorted(set(tiers) - set(TIER_ORDER))


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
                    "expected_events": _suppress_expected(n, e),
                }
            )
    return pl.DataFrame(
        rows, schema={c: pl.String for c in ("breakdown", "group", "tier", "people", "expected_events")}
    )


def _publish_commissioners(folder: _Folder, pop: pl.DataFrame, prov: Provenance, teams: dict[str, str]) -> None:
    summary = aggregate_summary(pop)
    stamped = summary.with_columns(
        run_id=pl.lit(prov.run_id),
        as_of=pl.lit(prov.as_of.isoformat()),
        model_versions=pl.lit(prov.model_versions),
        data_batches=pl.lit(prov.data_batches),
    )
    folder.write("commissioners/summary.csv", stamped.write_csv(include_bom=True), stamped.height)
    folder.write("commissioners/summary.html", _summary_html(summary, prov, teams), summary.height)


def _published_number(text: str) -> float | None:
    return None if text == "*" else float(text)


def _summary_html(summary: pl.DataFrame, prov: Provenance, teams: dict[str, str]) -> str:
    by_tier = summary.filter((pl.col("breakdown") == "all people") & (pl.col("tier") != ALL_TIERS))
    items = [
        html_charts.BarItem(r["tier"], _published_number(r["people"]), r["people"], tier_colours(r["tier"])[0])
        for r in by_tier.iter_rows(named=True)
    ]
    chart = html_charts.bar_chart_svg(items, "People by risk tier (suppressed and rounded counts)")
    tier_rows = "".join(
        f"<tr><td>{_chip(r['tier']) if r['tier'] != ALL_TIERS else 'All tiers'}</td>"
        f'<td class="num">{_e(r["people"])}</td><td class="num">{_e(r["expected_events"])}</td></tr>'
        for r in summary.filter(pl.col("breakdown") == "all people").iter_rows(named=True)
    )
    tables = "".join(
        _crosstab_html(summary, breakdown, title, labeller)
        for breakdown, title, labeller in (
            ("team", "People by team and tier", lambda g: f"{teams.get(g, g)} ({g})"),
            ("age band", "People by age band and tier", str),
            ("deprivation quintile", "People by deprivation quintile (IMD) and tier", _quintile_label),
        )
    )
    body = (
        '<header class="masthead"><div class="eyebrow">Risk stratification · commissioners\' summary</div>'
        f'<h1>Population by predicted risk</h1><p class="meta">As of {_e(_uk_date(prov.as_of))} · ranked by risk '
        f"of {_e(_outcome_words(prov.ranking_outcome))}</p></header>"
        '<div class="callout">Counts of 1 to 7 are shown as * and all other counts are rounded to the nearest 5, '
        "so totals need not add up. Expected events are the sum of each person's predicted risk, rounded the same "
        "way and hidden where the count of people is 1 to 7. No person-level data is included.</div>"
        f'<h2>People by tier</h2><div class="chart narrow">{chart}</div>'
        '<table class="compact"><thead><tr><th>Tier</th><th class="num">People</th>'
        '<th class="num">Expected events</th></tr>'
        f"</thead><tbody>{tier_rows}</tbody></table>{tables}{_footer_commissioners(prov)}"
    )
    return _page(f"Commissioners' summary, {prov.as_of.isoformat()}", body)


def _quintile_label(group: str) -> str:
    return {"1": "1 (most deprived)", "5": "5 (least deprived)"}.get(group, group)


def _crosstab_html(summary: pl.DataFrame, breakdown: str, title: str, label: Any) -> str:
    part = summary.filter(pl.col("breakdown") == breakdown)
    tiers = list(dict.fromkeys(part["tier"].to_list()))
    cells = {(r["group"], r["tier"]): r["people"] for r in part.iter_rows(named=True)}
    groups = list(dict.fromkeys(part["group"].to_list()))
    head = "".join(f'<th class="num">{_e(t)}</th>' for t in tiers)
    rows = "".join(
        f"<tr><td>{_e(label(g))}</td>" + "".join(f'<td class="num">{_e(cells[(g, t)])}</td>' for t in tiers) + "</tr>"
        for g in groups
    )
    return (
        f'<h2>{_e(title)}</h2><table class="compact"><thead><tr><th></th>{head}</tr></thead>'
        f"<tbody>{rows}</tbody></table>"
    )


def _footer_commissioners(prov: Provenance) -> str:
    return (
        f"<footer>Run {_e(prov.run_id)} · as of {_e(prov.as_of.isoformat())} · models {_e(prov.model_versions)} · "
        f"data batches {_e(prov.data_batches)} · costs in {_e(prov.cost_currency)}. Aggregate counts only; people "
        "who opted out are not included."
        "</footer>"
    )
