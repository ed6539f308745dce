"""Drift scenarios: the synthetic population's data change from a date, so monitoring can be tried against a
known change (off by default: `DriftSettings.scenario = "none"` leaves every file byte-identical).

Scenarios (all from `start_date`, by default the first weekly extract date in the second half of the weekly
batches):

- `coding_change`: one feed recodes a value (default: GP telephone consultations recorded as face-to-face),
  as when a practice system migrates and maps its codes differently;
- `emergency_service`: a new service prevents a share (default 20%) of emergency admissions dated from the
  start; the prevented spells are dropped (a seeded draw);
- `feed_outage`: one feed (default community contacts) sends no file for `outage_weeks` weekly batches; its
  rows arrive late, in the first batch after the outage;
- `quarantined_batch`: one weekly batch of one feed (default A&E attendances) arrives with an impossible code
  in every row, so the ingest quarantines all of it;
- `none`: the stable population.

Row-level scenarios change the frames before they are split into batches (after the truth is computed: the
truth is the world without the change, which is what a model trained before it would expect); file-level
scenarios rewrite the written batch folders.
"""

from __future__ import annotations

import typing
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from data_contracts.settings import DriftSettings
from data_contracts.synthetic.dirty import UNKNOWN_CODE
from data_contracts.synthetic.timeline import Timeline, day_number, day_to_date
from data_contracts.tables import TABLES

SCENARIOS: tuple[str, ...] = typing.get_args(typing.get_type_hints(DriftSettings)["scenario"])
EMERGENCY_METHODS_GROUP = "emergency"
DRIFT_RECORD = "drift.json"  # beside truth.parquet: the scenario, its start and what it changed


def check_drift_settings(settings: DriftSettings) -> None:
    """What the settings' types cannot say: the tables named are contract tables (ranges are checked at load)."""
    for name in (settings.recode_table, settings.feed, settings.quarantined_feed):
        if name not in TABLES:
            raise ValueError(f"synth.drift: {name!r} is not a contract table")


def start_day(settings: DriftSettings, timeline: Timeline) -> int:
    """Day number the change starts (the first weekly batch holding changed data ends on or after it)."""
    if settings.start_date is not None:
        return day_number(settings.start_date)
    return timeline.extract_day(timeline.weekly_batches // 2 + 1)


def start_date(settings: DriftSettings, timeline: Timeline) -> date:
    return day_to_date(start_day(settings, timeline))


def apply_to_frames(
    frames: dict[str, pl.DataFrame], settings: DriftSettings, timeline: Timeline, rng: np.random.Generator
) -> dict[str, pl.DataFrame]:
    """Row-level scenarios (`coding_change`, `emergency_service`) on the generated frames (`_day` = event day)."""
    check_drift_settings(settings)
    start = start_day(settings, timeline)
    if settings.scenario == "coding_change":
        table, column = settings.recode_table, settings.recode_column
        frame = frames[table]
        changed = (pl.col("_day") >= start) & (pl.col(column) == settings.recode_from)
        frames = {
            **frames,
            table: frame.with_columns(
                pl.when(changed).then(pl.lit(settings.recode_to)).otherwise(pl.col(column)).alias(column)
            ),
        }
    elif settings.scenario == "emergency_service":
        from data_contracts.reference import codelist

        spells = frames["apc_spells"]
        emergency = codelist("admission_method").codes_in_group(EMERGENCY_METHODS_GROUP)
        # One uniform draw per spell, in row order: seeded and independent of anything else drawn.
        draw = pl.Series(rng.random(spells.height))
        prevented = (
            (pl.col("_day") >= start) & pl.col("admission_method").is_in(emergency) & (draw < settings.prevented_share)
        )
        frames = {**frames, "apc_spells": spells.filter(~prevented)}
    return frames


def apply_to_batches(batch_dirs: list[Path], settings: DriftSettings, timeline: Timeline) -> dict[str, object]:
    """File-level scenarios (`feed_outage`, `quarantined_batch`) on the written weekly batch folders. Returns
    what was changed (batch ids), for the scenario's own record."""
    check_drift_settings(settings)
    start = start_day(settings, timeline)
    weekly = [(b, d) for b, d in enumerate(batch_dirs) if b > 0 and timeline.extract_day(b) >= start]
    if settings.scenario == "feed_outage" and weekly:
        out = weekly[: settings.outage_weeks]
        after = weekly[settings.outage_weeks] if len(weekly) > settings.outage_weeks else None
        held: list[pl.DataFrame] = []
        for _, folder in out:
            path = _table_file(folder, settings.feed)
            held.append(_read(path))
            path.unlink()
        if after is not None:
            path = _table_file(after[1], settings.feed)
            _write(pl.concat([*held, _read(path)]), path)
        return {"missing": [d.name for _, d in out], "late_in": after[1].name if after else None}
    if settings.scenario == "quarantined_batch" and weekly:
        folder = weekly[0][1]
        path = _table_file(folder, settings.quarantined_feed)
        column, impossible = UNKNOWN_CODE[settings.quarantined_feed]
        frame = _read(path)
        _write(frame.with_columns(pl.lit(impossible, dtype=frame.schema[column]).alias(column)), path)
        return {"quarantined": folder.name, "table": settings.quarantined_feed, "rows": frame.height}
    return {}


def _table_file(folder: Path, table: str) -> Path:
    found = [p for p in (folder / f"{table}.parquet", folder / f"{table}.csv") if p.exists()]
    if not found:
        raise FileNotFoundError(f"{folder.name} has no {table} file")
    return found[0]


def _read(path: Path) -> pl.DataFrame:
    return pl.read_parquet(path) if path.suffix == ".parquet" else pl.read_csv(path, infer_schema=False)


def _write(frame: pl.DataFrame, path: Path) -> None:
    if path.suffix == ".parquet":
        frame.write_parquet(path, compression="zstd")
    else:
        frame.write_csv(path)
