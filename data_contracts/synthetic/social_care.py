"""Adult social care client level data (CLD) rows: requests, assessments, services and reviews.

Each service episode of the realised path (home care, residential or nursing placement, reablement) becomes
a Request, usually an Assessment, the Service row and, for long-term support, reviews. Frail people also
make requests that end without a service. About a tenth of rows use Release 1 spellings.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from data_contracts.reference import codelist, unit_cost
from data_contracts.synthetic.clinical import DEMENTIA, LEARNING_DISABILITY, SERIOUS_MENTAL_ILLNESS
from data_contracts.synthetic.hospital import DischargeLinks
from data_contracts.synthetic.population import Population
from data_contracts.synthetic.realised import HOME_CARE, NURSING, OPEN, REABLEMENT, RESIDENTIAL, RealisedPath
from data_contracts.synthetic.rows import (
    date_column,
    id_column,
    mean_one_lognormal,
    missing_costs,
    pick,
    sequential_ids,
    text_column,
)
from data_contracts.synthetic.timeline import NULL_DAY

SERVICE_TYPE = {
    HOME_CARE: "Long term support: Community",
    RESIDENTIAL: "Long term support: Residential care",
    NURSING: "Long term support: Nursing care",
    REABLEMENT: "Short term support: ST-Max",
}
SERVICE_COMPONENT = {
    HOME_CARE: "Home support or domiciliary care",
    RESIDENTIAL: "Long term residential care",
    NURSING: "Long term nursing care",
    REABLEMENT: "Reablement",
}
REABLEMENT_WEEKS = 6
REABLEMENT_WEEKLY = unit_cost("reablement") / REABLEMENT_WEEKS
REQUEST_DAYS_BEFORE = (3, 28)  # a request precedes the service by this many days (uniform)
FIRST_REVIEW_DAYS = 84  # then yearly
NO_SERVICE_REQUESTS_PER_YEAR = 0.25  # for adults with frailty above the threshold below
NO_SERVICE_FRAILTY = 0.15
NO_SERVICE_OUTCOMES = ("NFA - Self-funded client", "NFA - Support declined", "NFA - Other")
OTHER_SUPPORT_REASONS = (
    "Physical support: Personal care support",
    "Physical support: Access and mobility only",
    "Social support: Support for social isolation/other",
    "Sensory support: Support for visual impairment",
)
OTHER_SUPPORT_WEIGHTS = (0.7, 0.22, 0.05, 0.03)
RELEASE_1_SHARE = 0.1
TEAMS_PER_LOCAL_AUTHORITY = 3


_SERVICE_COLUMNS: dict[str, pl.DataType] = {
    "service_type": pl.String(),
    "service_component": pl.String(),
    "unit_cost": pl.Float64(),
    "cost_frequency_unit_type": pl.String(),
    "planned_units_per_week": pl.Float64(),
    "_weekly": pl.Float64(),
    "_kind": pl.Int8(),
}


def _events(
    event_type: str, person: np.ndarray, start: np.ndarray, end: np.ndarray, outcome: np.ndarray, **service: np.ndarray
) -> pl.DataFrame:
    """One event type's rows; service columns absent from `service` are empty."""
    n = len(person)
    columns = {
        "_person": pl.Series(person, dtype=pl.Int32),
        "event_type": pl.Series([event_type] * n, dtype=pl.String),
        "_start": pl.Series(start, dtype=pl.Int32),
        "_end": pl.Series(end, dtype=pl.Int32),
        "event_outcome": text_column("event_outcome", np.asarray(outcome, dtype=object)),
    }
    for name, dtype in _SERVICE_COLUMNS.items():
        values = service.get(name)
        columns[name] = pl.Series([None] * n if values is None else values, dtype=dtype)
    return pl.DataFrame(columns)


def _support_reason(population: Population, rng: np.random.Generator) -> np.ndarray:
    reason = pick(rng, OTHER_SUPPORT_REASONS, OTHER_SUPPORT_WEIGHTS, population.size)
    reason[population.has_condition[:, SERIOUS_MENTAL_ILLNESS]] = "Mental health support"
    reason[population.has_condition[:, DEMENTIA]] = "Support with memory and cognition"
    reason[population.has_condition[:, LEARNING_DISABILITY]] = "Learning disability support"
    return reason


def _days_in_periods(starts: np.ndarray, period_index: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    first = starts[period_index].astype(np.int64)
    return first + np.floor(rng.random(len(period_index)) * (starts[period_index + 1] - first)).astype(np.int64)


def build_social_care(population: Population, path: RealisedPath, links: DischargeLinks, rngs: dict) -> pl.DataFrame:
    rng, people = rngs["asc_detail"], population.size
    ep = path.episodes
    keep = ~ep.discarded
    person = ep.column("person")[keep].astype(np.int64)
    kind = ep.column("kind")[keep].astype(np.int64)
    start_period = ep.column("start_period")[keep].astype(np.int64)
    end_period = ep.end_period[keep].astype(np.int64)
    by_death = ep.ended_by_death[keep]
    weekly = ep.column("weekly_cost")[keep].astype(np.float64)
    hours = ep.column("hours")[keep].astype(np.float64)
    after_discharge = ep.column("after_discharge")[keep]
    burn_in = len(path.burn_in_starts) - 1
    all_starts = np.concatenate([path.burn_in_starts[:-1], path.period_starts]).astype(np.int64)

    start = _days_in_periods(all_starts, start_period + burn_in, rng)
    key = start_period * people + person
    slot = np.clip(np.searchsorted(links.keys, key), 0, max(len(links.keys) - 1, 0))
    linked = (
        after_discharge & (start_period >= 0) & (links.keys[slot] == key)
        if len(links.keys)
        else np.zeros(len(key), bool)
    )
    start = np.where(linked, links.days[slot] if len(links.keys) else start, start)

    death = path.death_day[person].astype(np.int64)
    end = np.where(end_period == OPEN, NULL_DAY, _days_in_periods(all_starts, np.maximum(end_period, 0) + burn_in, rng))
    end = np.where(by_death, death, end)
    # Home care that ends because of a placement ends the day before the placement starts.
    placement = np.isin(kind, (RESIDENTIAL, NURSING))
    placement_key = np.sort(key[placement])
    placement_start = start[placement][np.argsort(key[placement])]
    home_end_key = end_period * people + person
    at = np.clip(np.searchsorted(placement_key, home_end_key), 0, max(len(placement_key) - 1, 0))
    into_home = (kind == HOME_CARE) & ~by_death & (end_period != OPEN)
    into_home &= (placement_key[at] == home_end_key) if len(placement_key) else False
    end = np.where(into_home, placement_start[at] - 1 if len(placement_key) else end, end)
    reablement = kind == REABLEMENT
    reablement_end = start + 7 * REABLEMENT_WEEKS
    end = np.where(reablement, np.where(death != NULL_DAY, np.minimum(reablement_end, death), reablement_end), end)
    end = np.where(end == NULL_DAY, NULL_DAY, np.maximum(end, start))

    outcome = np.where(
        end == NULL_DAY,
        None,
        np.where(
            by_death,
            "NFA - Deceased",
            np.where(reablement, "Progress to assessment, review or reassessment", "NFA - Support ended as planned"),
        ),
    ).astype(object)
    service_type = np.array([SERVICE_TYPE[k] for k in range(4)], dtype=object)[kind]
    component = np.array([SERVICE_COMPONENT[k] for k in range(4)], dtype=object)[kind]
    unit = np.where(kind == HOME_CARE, np.round(weekly / np.maximum(hours, 1), 2), np.round(weekly, 2))
    unit = np.where(reablement, np.round(REABLEMENT_WEEKLY * mean_one_lognormal(rng, 0.1, len(kind)), 2), unit)
    frequency = np.where(kind == HOME_CARE, "Hourly", "Weekly").astype(object)
    units = np.where(kind == HOME_CARE, hours, np.nan)
    true_weekly = np.where(kind == HOME_CARE, unit * hours, unit)

    # Requests and assessments before each service; reviews of long-term support.
    gap = rng.integers(REQUEST_DAYS_BEFORE[0], REQUEST_DAYS_BEFORE[1] + 1, len(kind))
    request_day = start - gap
    assessed = ~reablement
    assessment_day = request_day + np.floor(rng.random(len(kind)) * gap).astype(np.int64)
    assessment_end = np.minimum(assessment_day + rng.integers(0, 8, len(kind)), start)
    horizon_end = int(path.period_starts[-1])
    review_until = np.where(end == NULL_DAY, horizon_end, end)
    long_term = ~reablement
    n_reviews = np.where(
        long_term & (review_until > start + FIRST_REVIEW_DAYS),
        1 + np.maximum(0, (review_until - start - FIRST_REVIEW_DAYS) // 365),
        0,
    )
    review_of = np.repeat(np.arange(len(kind)), n_reviews)
    review_number = np.arange(len(review_of)) - np.repeat(np.cumsum(n_reviews) - n_reviews, n_reviews)
    review_day = start[review_of] + FIRST_REVIEW_DAYS + 365 * review_number
    before_end = review_day < review_until[review_of]
    review_of, review_day = review_of[before_end], review_day[before_end]

    # Requests that end without a service.
    frail_adult = (population.frailty >= NO_SERVICE_FRAILTY) & (population.birth_day < path.period_starts[0] - 18 * 365)
    first_day = int(path.period_starts[0])
    n_requests = rng.poisson(NO_SERVICE_REQUESTS_PER_YEAR * (horizon_end - first_day) / 365.25 * frail_adult)
    nfa_person = np.repeat(np.arange(people), n_requests)
    death_or_end = np.where(path.death_day == NULL_DAY, horizon_end - 1, path.death_day).astype(np.int64)
    span = np.maximum(death_or_end[nfa_person] - first_day, 0)
    nfa_day = first_day + np.floor(rng.random(len(nfa_person)) * span).astype(np.int64)

    reason_by_person = _support_reason(population, rng)
    request_outcome = np.where(
        reablement, "Progress to reablement/ST-Max", "Progress to assessment, review or reassessment"
    )
    frames = [
        _events(
            "Service",
            person,
            start,
            end,
            outcome,
            service_type=service_type,
            service_component=component,
            unit_cost=unit,
            cost_frequency_unit_type=frequency,
            planned_units_per_week=units,
            _weekly=true_weekly,
            _kind=kind,
        ),
        _events("Request", person, request_day, request_day, request_outcome),
        _events(
            "Assessment",
            person[assessed],
            assessment_day[assessed],
            assessment_end[assessed],
            np.full(int(assessed.sum()), "Progress to support planning or services", dtype=object),
        ),
        _events(
            "Review",
            person[review_of],
            review_day,
            review_day,
            np.full(len(review_day), "Continuation of support or services", dtype=object),
        ),
        _events("Request", nfa_person, nfa_day, nfa_day, pick(rng, NO_SERVICE_OUTCOMES, None, len(nfa_person))),
    ]
    rows = pl.concat(frames, how="diagonal_relaxed").with_columns(pl.col("planned_units_per_week").fill_nan(None))
    n = rows.height
    row_person = rows["_person"].to_numpy()
    row_start = rows["_start"].to_numpy()
    row_end = rows["_end"].to_numpy()
    number = sequential_ids((np.arange(n), row_person, row_start))
    team = population.team_of_practice[population.practice[row_person]]
    la = np.array(
        [f"E06{t // TEAMS_PER_LOCAL_AUTHORITY + 1:06d}" for t in range(int(team.max(initial=0)) + 1)], dtype=object
    )
    release_1 = rng.random(n) < RELEASE_1_SHARE
    aliases = {current: legacy for legacy, current in codelist("asc_service_type").aliases.items()}
    component_aliases = {current: legacy for legacy, current in codelist("asc_service_component").aliases.items()}
    is_service = rows["event_type"].to_numpy() == "Service"
    return (
        rows.with_columns(
            id_column("E", number, "event_id"),
            pl.Series("la_code", la[team], dtype=pl.String),
            date_column("event_start_date", row_start),
            date_column("event_end_date", row_end),
            pl.Series("primary_support_reason", reason_by_person[row_person], dtype=pl.String),
            pl.Series("_release_1", release_1),
            pl.Series("_cost_missing", missing_costs(rng, n) & is_service),
            pl.Series("_day", row_start, dtype=pl.Int32),
            pl.Series("_end_day", row_end, dtype=pl.Int32),
        )
        .with_columns(
            pl.when("_release_1")
            .then(pl.col("service_type").replace(aliases))
            .otherwise("service_type")
            .alias("service_type"),
            pl.when("_release_1")
            .then(pl.col("service_component").replace(component_aliases))
            .otherwise("service_component")
            .alias("service_component"),
        )
        .drop("_start", "_end", "_release_1")
    )
