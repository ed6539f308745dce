"""Settings owned by the data layer: the synthetic population and ingest.

Plain dataclasses; the `Annotated` constraints are checked when `pipelines.settings.load_settings` reads a
settings file or overrides (pydantic validates these dataclasses as they are), so a wrong value fails at load.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Field, StrictFloat, StrictInt, StrictStr

Rate = Annotated[StrictFloat, Field(ge=0, le=1)]


def _compiles(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"not a regular expression ({exc})") from None
    return pattern


@dataclass
class DriftSettings:
    """A change planted in the synthetic data from a date (see data_contracts.synthetic.drift)."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    scenario: Literal["none", "coding_change", "emergency_service", "feed_outage", "quarantined_batch"] = "none"
    # None: the extract date of weekly batch (weekly_batches // 2 + 1), so half the weeks come before it.
    start_date: date | None = None
    # coding_change: table, column, the code that changes and what it becomes.
    recode_table: StrictStr = "gp_events"
    recode_column: StrictStr = "event_type"
    recode_from: StrictStr = "telephone"
    recode_to: StrictStr = "face_to_face"
    # emergency_service: the share of emergency admissions prevented.
    prevented_share: Annotated[StrictFloat, Field(ge=0, le=1)] = 0.20
    # feed_outage and quarantined_batch: the feed affected; outage length in weekly batches.
    feed: StrictStr = "community_contacts"
    outage_weeks: Annotated[StrictInt, Field(ge=1)] = 4
    quarantined_feed: StrictStr = "ae_attendances"


@dataclass
class CaseManagementSettings:
    """A synthetic case-management service (see data_contracts.synthetic.case_management; off by default).

    Each month of the intake window every team's MDT takes people on from its list, ranked by the case-finding
    score (features/case_finding.py), the way real teams do: not at random (a recent emergency admission makes
    taking on likelier) and some people decline. While case-managed, a person's emergency-admission hazard is
    multiplied by (1 - effect): 0 is the null scenario, 0.2 a 20% reduction."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    enabled: bool = False
    effect: Annotated[StrictFloat, Field(ge=0, le=1)] = 0.0
    # Intake window: `intake_months` monthly MDT meetings ending `follow_up_months` before end_date, so every
    # person taken on has a whole published follow-up year.
    intake_months: Annotated[StrictInt, Field(ge=1)] = 12
    follow_up_months: Annotated[StrictInt, Field(ge=1)] = 12
    duration_months: Annotated[StrictInt, Field(ge=1)] = 12  # how long case management lasts
    # Taking on (of the people offered): not appropriate, more often without an emergency admission in the
    # last 3 months; of the rest some decline.
    not_appropriate_share: Rate = 0.5
    not_appropriate_share_recent_admission: Rate = 0.2
    declined_share: Rate = 0.2
    # The MDT discusses about this many people per free place (many discussed are not taken on).
    discussed_per_place: Annotated[StrictFloat, Field(ge=1)] = 2.0
    review_after_months: Annotated[StrictInt, Field(ge=1)] = 12  # a discussed person is not discussed again sooner
    # Randomise at the margin: people ranked within `margin` either side of the last place discussed enter a
    # seeded draw; half are discussed (offered) now, the rest after the follow-up (0 = off).
    margin: Annotated[StrictInt, Field(ge=0)] = 0


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
    # A change planted in the data from a date, for trying the monitoring (off by default).
    drift: DriftSettings = field(default_factory=DriftSettings)
    # A case-management service that takes people on from the lists and changes their hazard (off by default).
    case_management: CaseManagementSettings = field(default_factory=CaseManagementSettings)


@dataclass
class IngestSettings:
    __pydantic_config__ = ConfigDict(extra="forbid")

    # How many quarantine rows to keep per batch, table and reason (all are counted; a cap keeps a
    # badly broken file from filling the database).
    quarantine_cap_per_reason: Annotated[StrictInt, Field(ge=1)] = 100_000
    # A folder in the batches folder with no batch.json and no batch.complete is a batch still arriving only if its
    # name is a batch name (this pattern, matched at the start: the generator's b0001_..., the workspace's
    # caseload-..., a date); any other such folder (notes, an archive) is named in the log once per run and holds
    # nothing back. Imports are written whole, with their manifest, so their names are free.
    batch_name_pattern: Annotated[StrictStr, AfterValidator(_compiles)] = r"b\d+[_-]|caseload-|\d{4}-\d{2}-\d{2}"
    # A batch that has waited this long (days since anything in its folder last changed) fails the run, named:
    # a copy that died half-way must not hold back every later batch in silence.
    incomplete_batch_days: Annotated[StrictInt, Field(ge=1)] = 7


@dataclass
class QualitySettings:
    """Data-quality gate thresholds (data_contracts.quality), checked on every batch the weekly run loads."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    # The feeds checked: dated activity tables that arrive every week.
    feeds: tuple[StrictStr, ...] = (
        "apc_spells",
        "ae_attendances",
        "op_appointments",
        "gp_events",
        "community_contacts",
        "prescriptions",
    )
    quarantine_warn_rate: Rate = 0.02
    quarantine_error_rate: Rate = 0.25
    # Rows read against the median of the previous `volume_window` weekly batches.
    volume_window: Annotated[StrictInt, Field(ge=1)] = 4
    volume_min_batches: Annotated[StrictInt, Field(ge=1)] = 2
    volume_min_rows: Annotated[StrictInt, Field(ge=0)] = 50
    volume_warn_ratio: Rate = 0.75
    volume_error_ratio: Rate = 0.5
    # Days from a feed's latest loaded event to the batch's extract date.
    freshness_warn_days: Annotated[StrictInt, Field(ge=0)] = 7
    freshness_error_days: Annotated[StrictInt, Field(ge=0)] = 14
    # On an error: "fail" stops the weekly run before scoring; "flag" scores and states the stale or
    # incomplete feeds on every output.
    on_error: Literal["fail", "flag"] = "fail"
