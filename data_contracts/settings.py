"""Settings owned by the data layer: the synthetic population and ingest."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass
class SynthSettings:
    """The synthetic linked population (`riskstrat synth`)."""

    people: int = 20_000
    # Five years let every training index date see full 24-month windows (two outcome years follow the
    # last fit date); with less, the longest windows are null at the early dates (features/build.py).
    history_years: int = 5
    # Last day of published data. Weekly batches cover the final `weekly_batches` weeks up to it.
    end_date: date = date(2026, 11, 1)
    weekly_batches: int = 1
    practices_per_team: int = 4
    people_per_practice: int = 8_000
    opt_out_rate: float = 0.03
    # Share of rows planted with each class of bad input (0 = clean), for testing the ingest.
    dirty_rate: float = 0.0
    # Monte Carlo replicates of the unpublished future year used to compute true outcome probabilities.
    truth_replicates: int = 64
    file_format: str = "parquet"  # "parquet" or "csv"


@dataclass
class IngestSettings:
    # How many quarantine rows to keep per batch, table and reason (all are counted; a cap keeps a
    # badly broken file from filling the database).
    quarantine_cap_per_reason: int = 100_000
