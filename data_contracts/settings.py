"""Settings owned by the data layer: the synthetic population and ingest.

Plain dataclasses; the `Annotated` constraints are checked when `pipelines.settings.load_settings` reads a
settings file or overrides (pydantic validates these dataclasses as they are), so a wrong value fails at load.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StrictFloat, StrictInt


@dataclass
class SynthSettings:
    """The synthetic linked population (`riskstrat synth`)."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    people: Annotated[StrictInt, Field(ge=1)] = 20_000
    # Five years let every training index date see full 24-month windows (two outcome years follow the
    # last fit date); with less, the longest windows are null at the early dates (features/build.py).
    history_years: Annotated[StrictInt, Field(ge=1)] = 5
    # Last day of published data. Weekly batches cover the final `weekly_batches` weeks up to it.
    end_date: date = date(2026, 11, 1)
    weekly_batches: Annotated[StrictInt, Field(ge=0)] = 1
    practices_per_team: Annotated[StrictInt, Field(ge=1)] = 4
    people_per_practice: Annotated[StrictInt, Field(ge=1)] = 8_000
    opt_out_rate: Annotated[StrictFloat, Field(ge=0, lt=1)] = 0.03
    # Share of rows planted with each class of bad input (0 = clean), for testing the ingest.
    dirty_rate: Annotated[StrictFloat, Field(ge=0, lt=1)] = 0.0
    # Monte Carlo replicates of the unpublished future year used to compute true outcome probabilities.
    truth_replicates: Annotated[StrictInt, Field(ge=1)] = 64
    file_format: Literal["parquet", "csv"] = "parquet"


@dataclass
class IngestSettings:
    __pydantic_config__ = ConfigDict(extra="forbid")

    # How many quarantine rows to keep per batch, table and reason (all are counted; a cap keeps a
    # badly broken file from filling the database).
    quarantine_cap_per_reason: Annotated[StrictInt, Field(ge=1)] = 100_000
