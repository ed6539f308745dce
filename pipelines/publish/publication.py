"""The typed input of publishing: one `Publication` (the frames scoring produced) and its `Provenance`.

Scoring builds one `Publication` and hands it over whole; nothing else carries a run's provenance. The frames
hold person rows only: the provenance columns every list row carries (`run_id`, `as_of`, ...) are stamped from
`Provenance` when the files are written, so they cannot disagree with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import polars as pl

from data_contracts.outcomes import OUTCOMES
from data_contracts.reference import REFERENCE_CURRENCY


@dataclass(frozen=True)
class RisingRiskRule:
    """How the rising-risk view was drawn: a rise of at least `min_rise` since the scores of the run on `since`,
    the latest at least `weeks` weeks before (None when there was no such run)."""

    weeks: int
    min_rise: float
    since: date | None


@dataclass(frozen=True)
class Provenance:
    """Where one run's outputs came from, written on every list row, page footer and the manifest."""

    run_id: str
    as_of: date
    model_versions: Mapping[str, str]  # outcome -> registry version
    data_batches: tuple[str, ...]  # batch ids, in load order
    ranking_outcome: str
    explain_scale: str
    cost_currency: str = REFERENCE_CURRENCY
    # The data-quality gates' statement when scoring went ahead despite errors (stale or incomplete feeds):
    # stated wherever the data batches are.
    data_warning: str | None = None
    rising_risk: RisingRiskRule | None = None
    # outcome -> the plain warning of a scoring model calibrated on too few events (the small-sample path of
    # models.training): its risks are approximate, and every "how to read" says so instead of "calibrated".
    calibration_warnings: Mapping[str, str] = field(default_factory=dict)

    @property
    def model_versions_text(self) -> str:
        return ";".join(f"{o}={v}" for o, v in sorted(self.model_versions.items()))

    @property
    def data_batches_text(self) -> str:
        batches = self.data_batches
        if not batches:
            described = "none"
        else:
            described = batches[0] if len(batches) == 1 else f"{batches[0]} .. {batches[-1]} ({len(batches)} batches)"
        return described if self.data_warning is None else f"{described}. WARNING: {self.data_warning}"

    def list_columns(self) -> dict[str, Any]:
        """The provenance columns of a team list, as {column: value}."""
        return {
            "run_id": self.run_id,
            "as_of": self.as_of,
            "model_versions": self.model_versions_text,
            "data_batches": self.data_batches_text,
            "ranking_outcome": self.ranking_outcome,
            "explain_scale": self.explain_scale,
        }

    def as_dict(self) -> dict[str, str]:
        return {
            "run_id": self.run_id,
            "as_of": self.as_of.isoformat(),
            "model_versions": self.model_versions_text,
            "data_batches": self.data_batches_text,
            "explain_scale": self.explain_scale,
            "ranking_outcome": self.ranking_outcome,
            "cost_currency": self.cost_currency,
        }


@dataclass(frozen=True)
class Publication:
    """Everything one run publishes. Frames follow `TEAM_LIST_COLUMNS` and `SCHEMAS`; `publish()` checks them."""

    provenance: Provenance
    team_list: pl.DataFrame  # one row per listed person per team, ranked
    explanations: pl.DataFrame  # each listed person's top reasons
    leavers: pl.DataFrame  # who left each team's list since last week, and why
    activity: pl.DataFrame  # the listed people's contacts with services, for the timelines
    population_summary: pl.DataFrame  # one row per eligible person, aggregated for the commissioners
    # Each team's people not on its list whose risk rose most since a month or so earlier (models.cohorts).
    rising_risk: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=SCHEMAS["rising_risk"]))
    opted_out_ids: frozenset[str] = field(default=frozenset(), repr=False)


# Provenance columns on every CSV row (and the commissioners' CSV), written last.
PROVENANCE_COLUMNS = ("run_id", "as_of", "model_versions", "data_batches")
# A team list's columns in the order the CSV writes them; the ones `Provenance.list_columns()` stamps are
# not expected in the frame.
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
    *(o.risk_column for o in OUTCOMES),  # each declared outcome's risk (data_contracts/outcomes.py)
    "social_care_package",
    "in_care_home",
    "recent_discharge",
    "acsc_admissions_12m",
    "acsc_conditions",
    "on_last_weeks_list",
    "change",
    "previous_rank",
)
# What an analyst checking the model reads, not the team: the team's `<team>_technical.csv`. `start_risk` is
# where the waterfall of each person's reasons starts (models/reasons.py); the log-odds are the model's raw score.
TECHNICAL_COLUMNS = ("rank", "person_id", "start_risk", "base_logodds", "logodds", "explain_scale")
STAMPED_COLUMNS = ("run_id", "as_of", "model_versions", "data_batches", "ranking_outcome", "explain_scale")
TEAM_LIST_COLUMNS = (*(c for c in LIST_COLUMNS if c not in STAMPED_COLUMNS), "start_risk")
OPTIONAL_LIST_COLUMNS = ("base_logodds", "logodds")
SCHEMAS: dict[str, dict[str, Any]] = {
    "explanations": {
        "person_id": pl.String,
        "team_id": pl.String,
        "reason_rank": pl.Int64,
        "reason": pl.String,
        "feature": pl.String,
        "feature_label": pl.String,
        "value": pl.String,
        "contribution": pl.Float64,
        "points": pl.Float64,
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
    "rising_risk": {
        "team_id": pl.String,
        "person_id": pl.String,
        "rising_rank": pl.Int64,
        "age_band": pl.String,
        "sex": pl.String,
        "risk": pl.Float64,
        "tier": pl.String,
        "earlier_risk": pl.Float64,
        "earlier_tier": pl.String,
        "earlier_as_of": pl.Date,
    },
}
SUMMARY_COLUMNS = tuple(SCHEMAS["population_summary"])
REID_COLUMNS = ("nhs_number", "name")
OPTED_OUT = "opted out"
"""The leaver reason of a person who opted out: the guard drops such leavers (not named, not counted)."""
ACTIVITY_MONTHS = 24
"""The person pages' timeline shows this many months of contacts, up to the as-of date."""
