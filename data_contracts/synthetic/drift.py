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
scenarios (`FileDrift`) change a batch's table files before the batch writer writes them.
"""

from __future__ import annotations

import typing
from datetime import date

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


class FileDrift:
    """File-level scenarios (`feed_outage`, `quarantined_batch`): `apply` changes each batch's table files, in
    batch order, before the batch writer writes them; `changed` records what changed (batch ids), for the
    scenario's own record."""

    def __init__(self, settings: DriftSettings, timeline: Timeline) -> None:
        check_drift_settings(settings)
        start = start_day(settings, timeline)
        self.settings = settings
        self.batch_ids = timeline.batch_ids()
        self.weekly = [b for b in range(len(self.batch_ids)) if b > 0 and timeline.extract_day(b) >= start]
        self.changed: dict[str, object] = {}
        self._held: list[pl.DataFrame] = []

    def apply(self, b: int, tables: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
        settings, weekly = self.settings, self.weekly
        if settings.scenario == "feed_outage" and weekly:
            out = weekly[: settings.outage_weeks]
            after = weekly[settings.outage_weeks] if len(weekly) > settings.outage_weeks else None
            self.changed = {
                "missing": [self.batch_ids[w] for w in out],
                "late_in": self.batch_ids[after] if after is not None else None,
            }
            feed = settings.feed
            if b in out:
                self._held.append(tables[feed])
                return {name: frame for name, frame in tables.items() if name != feed}
            if b == after:
                parts = [*self._held, tables[feed]]
                if len({tuple(p.schema.items()) for p in parts}) > 1:  # planted bad types in a CSV: all text
                    parts = [p.cast(pl.String) for p in parts]
                return {**tables, feed: pl.concat(parts)}
        if settings.scenario == "quarantined_batch" and weekly and b == weekly[0]:
            feed = settings.quarantined_feed
            column, impossible = UNKNOWN_CODE[feed]
            frame = tables[feed]
            self.changed = {"quarantined": self.batch_ids[b], "table": feed, "rows": frame.height}
            broken = frame.with_columns(pl.lit(impossible, dtype=frame.schema[column]).alias(column))
            return {**tables, feed: broken}
        return tables
