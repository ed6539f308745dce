"""Split the generated frames into load-ordered batches and write them (Parquet or CSV) through the one batch
writer (`data_contracts.batch.write_batch`).

A row goes to the batch covering its event date (`_day`). A row with an end (`_end_day`: discharge, service
end, death) that falls after its batch's extract date is published with the end columns empty, and repeated
in full in the batch covering the end: the later row replaces the earlier by key, as a real correction does.
Nothing dated on or after end_date is published.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

from data_contracts.batch import write_batch
from data_contracts.dates import day_to_date
from data_contracts.reference import REFERENCE_CURRENCY
from data_contracts.synthetic.dirty import plant_bad_rows, plant_bad_types
from data_contracts.synthetic.population import Population
from data_contracts.synthetic.timeline import NULL_DAY, Timeline
from data_contracts.tables import ACTIVITY_TABLES, TABLES

# Columns that are empty until the end is known, by table.
END_COLUMNS: dict[str, tuple[str, ...]] = {
    "persons": ("date_of_death",),
    "apc_spells": ("discharge_date", "discharge_method", "discharge_destination", "discharge_ready_date"),
    "asc_events": ("event_end_date", "event_outcome"),
    "caseload": ("case_management_end",),
}
COST_COLUMN = {"asc_events": "unit_cost"}
DIRTY_TABLES = ("persons", *ACTIVITY_TABLES)  # where bad rows are planted


def input_columns(table: str) -> list[str]:
    return [c.name for c in TABLES[table].input_columns]


def assign_batches(frame: pl.DataFrame, table: str, timeline: Timeline) -> pl.DataFrame:
    """Add `_batch`; rows whose end is published later are duplicated (first copy without the end)."""
    start_batch = timeline.batch_of_day(frame["_day"].to_numpy())
    if "_end_day" in frame.columns:
        end_day = frame["_end_day"].to_numpy()
        end_batch = np.where(end_day == NULL_DAY, start_batch, timeline.batch_of_day(end_day))
    else:
        end_batch = start_batch
    open_end = end_batch != start_batch
    first = frame.with_columns(pl.Series("_batch", start_batch), pl.Series("_open", open_end)).filter(
        pl.col("_batch") >= 0
    )
    first = first.with_columns(
        pl.when(pl.col("_open")).then(None).otherwise(pl.col(c)).alias(c) for c in END_COLUMNS.get(table, ())
    )
    correction = (end_batch > start_batch) & (start_batch >= 0)
    later = frame.filter(pl.Series(correction)).with_columns(
        pl.Series("_batch", end_batch[correction]), pl.lit(False).alias("_open")
    )
    return pl.concat([first, later]).drop("_open")


def contract_frame(frame: pl.DataFrame, table: str, person_ids: pl.Series) -> pl.DataFrame:
    """Contract input columns in contract types (costs emptied where planned missing), plus `_person` and
    `_batch`, sorted by batch then grain."""
    columns = []
    if "_person" in frame.columns:
        columns.append(person_ids.gather(frame["_person"]).alias("person_id"))
    extra = frame.with_columns(columns)
    if "_cost_missing" in frame.columns:
        cost = COST_COLUMN.get(table, "cost")
        extra = extra.with_columns(pl.when(pl.col("_cost_missing")).then(None).otherwise(pl.col(cost)).alias(cost))
    keep = [*input_columns(table), *(c for c in ("_person", "_batch") if c in extra.columns)]
    types = {c.name: c.polars_type for c in TABLES[table].input_columns}
    return extra.select(keep).cast(types).sort(["_batch", *TABLES[table].grain])  # type: ignore[arg-type]


def write_batches(
    out_dir: Path,
    frames: dict[str, pl.DataFrame],
    population: Population,
    timeline: Timeline,
    seed: int,
    file_format: str,
    dirty_rate: float,
    rng: np.random.Generator,
    progress: Callable[[float], None] | None = None,
    edit: Callable[[int, dict[str, pl.DataFrame]], dict[str, pl.DataFrame]] | None = None,
) -> tuple[list[Path], dict[str, int]]:
    """Write every batch folder under out_dir/batches (replacing it); return the folders and row counts (as
    generated, before `edit`: file-level drift changing batch b's table files before they are written)."""
    if file_format not in ("parquet", "csv"):
        raise ValueError(f"file_format must be 'parquet' or 'csv', not {file_format!r}")
    root = out_dir / "batches"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    person_ids = pl.Series("person_id", population.person_ids, dtype=pl.String)
    by_batch: dict[str, dict[int, pl.DataFrame]] = {}
    for table in TABLES:
        assigned = frames[table].with_columns(pl.lit(0, dtype=pl.Int16).alias("_batch"))
        if table != "teams":
            assigned = assign_batches(frames[table], table, timeline)
        typed = contract_frame(assigned, table, person_ids)
        by_batch[table] = {int(k[0]): v for k, v in typed.partition_by("_batch", as_dict=True).items()}
    batch_dirs: list[Path] = []
    row_counts = dict.fromkeys(TABLES, 0)
    batch_ids = timeline.batch_ids()
    for b, batch_id in enumerate(batch_ids):
        extract_day = timeline.extract_day(b)
        planted: dict[str, dict[str, int]] = {}
        tables: dict[str, pl.DataFrame] = {}
        for table in TABLES:
            empty = pl.DataFrame(schema={c.name: c.polars_type for c in TABLES[table].input_columns})
            frame = by_batch[table].get(b, empty)
            sources = np.zeros(0, np.int64)
            if dirty_rate > 0 and frame.height and table in DIRTY_TABLES:
                # Clean rows of people who never opted out: copies of them are quarantined, not excluded.
                sources = np.flatnonzero(~population.opted_out[frame["_person"].to_numpy()])
                frame, counts = plant_bad_rows(frame, table, extract_day, population, dirty_rate, rng)
                planted[table] = counts
            frame = frame.select(input_columns(table))
            if file_format == "csv" and dirty_rate > 0 and table in planted:
                frame, bad = plant_bad_types(frame, table, sources, dirty_rate, rng)
                if bad:
                    planted[table]["bad_type"] = bad
            row_counts[table] += frame.height
            tables[table] = frame
        totals: dict[str, int] = {}
        for counts in planted.values():
            for name, count in counts.items():
                totals[name] = totals.get(name, 0) + count
        details: dict[str, object] = {"seed": seed, "people": population.size}
        if dirty_rate > 0:
            details["planted"] = dict(sorted(totals.items()))
            details["planted_by_table"] = planted
        if edit is not None:
            tables = edit(b, tables)
        kind = "history" if b == 0 else "weekly"
        folder = root / batch_id
        with write_batch(folder, batch_id, day_to_date(extract_day), REFERENCE_CURRENCY, kind, details) as batch:
            for table, frame in tables.items():
                batch.add_frame(table, frame, file_format)
        batch_dirs.append(folder)
        if progress is not None:
            progress((b + 1) / len(batch_ids))
    return batch_dirs, row_counts
