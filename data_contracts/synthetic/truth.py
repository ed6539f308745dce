"""True outcome probabilities (Monte Carlo from each person's state at the index date) and realised outcomes.

The truth is built with the run's own outcome definitions (`data_contracts.outcomes`: the declared outcomes, who
is at risk of each, and `OutcomeSettings`: the horizon, the high-cost fraction, the frequent-user thresholds,
whether a death counts as an emergency admission). `write_truth` records those definitions in the Parquet file's
metadata, and `read_truth` refuses (a `DomainError`) a truth built under other definitions than a run's, so an
oracle always predicts the outcomes the run labels.

Realised outcomes are read from the generated rows exactly as the outcome labels read published data
(horizon [index, index + horizon_months), events not after death, social care by the CLD weekly rule), so at the
eval index date they agree with the published batches (high cost apart, for a few people in a thousand: a row
published without a cost counts 0 here, while the ingest imputes it from the unit costs). Probabilities re-run
the monthly engine from the state at the index date over `truth_replicates` futures, averaging in each future the
conditional chance of the outcome month by month (Rao-Blackwellised, see `_simulate_block`); costs in those
futures use the engine's expected monthly cost (mean event costs), and `high_cost` applies the realised path's
top-fraction threshold to each future.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from data_contracts.dates import day_to_date
from data_contracts.errors import DomainError
from data_contracts.outcomes import NOT_IN_CARE_HOME, OUTCOME_NAMES, OUTCOMES, OutcomeSettings
from data_contracts.reference import codelist
from data_contracts.synthetic.engine import EMERGENCY_VIA_AE_SHARE, State, Statics, step
from data_contracts.synthetic.population import Population
from data_contracts.synthetic.realised import NURSING, RESIDENTIAL, RealisedPath
from data_contracts.synthetic.timeline import NULL_DAY, Timeline
from data_contracts.tables import COSTED_EVENT_DATES

# The Parquet metadata key under which a truth file records the outcome definitions it was built with.
DEFINITIONS_KEY = "riskstrat.outcome_definitions"
TRUTH_THREADS = 2  # one per index date (the machine has 2 cores)
MAX_ELEMENTS_PER_CHUNK = 1_000_000  # people x replicates simulated at once (fastest near 1M)
PEOPLE_PER_BLOCK = 20_000  # people simulated together (their per-person arrays stay in cache)
ENGINE_STREAMS = ("latent", "hospital", "ae", "death", "social_care")
COSTED_TABLES = tuple(COSTED_EVENT_DATES)


def eligible_mask(population: Population, death_day: np.ndarray, index_day: int) -> np.ndarray:
    alive = (death_day == NULL_DAY) | (death_day >= index_day)
    return (population.birth_floor_day < index_day) & alive & ~population.opted_out


def _in_horizon(frame: pl.DataFrame, start: int, end: int, death_day: np.ndarray) -> pl.DataFrame:
    day = pl.col("_day")
    death = pl.Series(death_day).gather(frame["_person"])
    return frame.filter((day >= start) & (day < end) & ((death == NULL_DAY) | (day <= death)))


def realised_outcomes(
    frames: dict[str, pl.DataFrame],
    population: Population,
    death_day: np.ndarray,
    start: int,
    end: int,
    outcomes: OutcomeSettings,
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Per person (all people): outcome flags (high cost apart: it needs the eligible people's threshold), future
    cost, and whether in a care home at the index day."""
    people = population.size
    emergency_codes = codelist("admission_method").codes_in_group("emergency")
    spells = _in_horizon(frames["apc_spells"], start, end, death_day)
    emergency_person = spells.filter(pl.col("admission_method").is_in(emergency_codes))["_person"].to_numpy()
    emergencies = np.bincount(emergency_person, minlength=people)
    ae_visits = np.bincount(
        _in_horizon(frames["ae_attendances"], start, end, death_day)["_person"].to_numpy(), minlength=people
    )
    cost = np.zeros(people)
    for table in COSTED_TABLES:
        rows = _in_horizon(frames[table], start, end, death_day)
        cost += np.bincount(rows["_person"].to_numpy(), weights=rows["cost"].fill_null(0).to_numpy(), minlength=people)
    services = frames["asc_events"].filter(pl.col("event_type") == "Service")
    person = services["_person"].to_numpy()
    service_start = services["_day"].to_numpy().astype(np.int64)
    service_end = services["_end_day"].to_numpy().astype(np.int64)
    death = death_day[person].astype(np.int64)
    stop = np.minimum(np.where(service_end == NULL_DAY, end, service_end), np.where(death == NULL_DAY, end, death))
    overlap = np.clip(np.minimum(stop, end) - np.maximum(service_start, start), 0, None)
    cost += np.bincount(person, weights=services["_weekly"].to_numpy() * overlap / 7, minlength=people)
    care_home = np.isin(services["_kind"].to_numpy(), (RESIDENTIAL, NURSING))
    resident = care_home & (service_start < start) & ((service_end == NULL_DAY) | (service_end >= start))
    placed = (
        care_home & (service_start >= start) & (service_start < end) & ((death == NULL_DAY) | (service_start <= death))
    )
    in_home_at_index = np.bincount(person[resident], minlength=people) > 0
    new_placement = np.bincount(person[placed], minlength=people) > 0
    died = (death_day != NULL_DAY) & (death_day >= start) & (death_day < end)
    flags = count_outcomes(emergencies, ae_visits, outcomes)
    if outcomes.death_counts_as_emergency:
        flags["emergency_admission"] = flags["emergency_admission"] | died
    return {**flags, "care_home_admission": new_placement}, cost, in_home_at_index


def count_outcomes(emergencies: np.ndarray, ae_visits: np.ndarray, outcomes: OutcomeSettings) -> dict[str, np.ndarray]:
    """The outcomes defined by counts of emergency admissions and A&E visits (realised path and futures alike)."""
    return {
        "emergency_admission": emergencies >= 1,
        "frequent_user": (emergencies >= outcomes.frequent_emergency_admissions)
        | (ae_visits >= outcomes.frequent_ae_attendances),
        "unplanned_care": (emergencies >= 1) | (ae_visits >= 1),
    }


def high_cost_threshold(cost: np.ndarray, outcomes: OutcomeSettings) -> float:
    """The (1 - top fraction) quantile, 'higher' interpolation (a real person's cost), as the outcome labels."""
    return float(np.quantile(cost, 1 - outcomes.high_cost_top_fraction, method="higher")) if len(cost) else 0.0


def _poisson_cdf_table(lam: np.ndarray, up_to: int) -> np.ndarray:
    """P(X <= n) for X ~ Poisson(lam), n = 0 .. up_to - 1, stacked on a new first axis."""
    term = np.exp(-lam.astype(np.float64))
    table = np.empty((up_to, *lam.shape))
    table[0] = term
    for n in range(1, up_to):
        term = term * lam / n
        table[n] = table[n - 1] + term
    return table


def frequent_crossing_probability(
    emergencies_before: np.ndarray,
    ae_before: np.ndarray,
    emergency_rate: np.ndarray,
    ae_only_rate: np.ndarray,
    outcomes: OutcomeSettings,
) -> np.ndarray:
    """P(this month's events take a person not yet a frequent user over a threshold | counts so far and rates).

    Emergency admissions E ~ Poisson(emergency_rate), of which Binomial(E, via-A&E share) arrive through A&E,
    plus A&E-only visits ~ Poisson(ae_only_rate), as in the engine's step. People already over a threshold
    get 0 (their event was counted in an earlier month)."""
    need_emergencies = outcomes.frequent_emergency_admissions - emergencies_before
    need_ae = outcomes.frequent_ae_attendances - ae_before
    crossed = (need_emergencies <= 0) | (need_ae <= 0)
    ae_cdf = _poisson_cdf_table(ae_only_rate, outcomes.frequent_ae_attendances)
    lam = emergency_rate.astype(np.float64)
    stay_below = np.zeros(lam.shape)
    poisson_term = np.exp(-lam)
    for k in range(outcomes.frequent_emergency_admissions):  # k emergencies this month, k < need
        if k:
            poisson_term = poisson_term * lam / k
        for j in range(k + 1):  # j of them via A&E
            allowed_ae_only = need_ae - 1 - j
            ae_ok = np.take_along_axis(ae_cdf, np.clip(allowed_ae_only, 0, None)[None].astype(np.intp), 0)[0]
            binomial = math.comb(k, j) * EMERGENCY_VIA_AE_SHARE**j * (1 - EMERGENCY_VIA_AE_SHARE) ** (k - j)
            stay_below += np.where((k < need_emergencies) & (allowed_ae_only >= 0), poisson_term * binomial * ae_ok, 0)
    return np.where(crossed, 0.0, 1.0 - stay_below)


def _simulate_block(
    statics: Statics,
    state: State,
    period_starts: np.ndarray,
    first_period: int,
    replicates: int,
    threshold: float,
    outcomes: OutcomeSettings,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Expected outcome indicators summed over `replicates` futures of one block of people (per person).

    Rao-Blackwellised: in each future, month by month, the chance that the outcome first happens this month
    given everything drawn before (1 - e^-rate for an event count, the placement probability for a care home)
    is added instead of the drawn indicator. Each future's sum has the indicator's expectation and a far
    smaller variance, so rare outcomes no longer get probabilities in coarse steps of 1/replicates. High cost
    depends on a sum over the whole horizon and keeps the drawn indicator. With `death_counts_as_emergency`,
    the first "emergency admission or death" of a month has chance (1 - e^-rate) + e^-rate * P(death | no
    emergency); someone who died earlier is inactive and adds nothing."""
    people = len(state.alive)
    chunk_state = state.tile(replicates)  # statics broadcast
    rngs = {name: stream for name, stream in zip(ENGINE_STREAMS, rng.spawn(len(ENGINE_STREAMS)), strict=True)}
    emergencies = np.zeros((replicates, people), np.int32)
    ae_visits = np.zeros((replicates, people), np.int32)
    cost = np.zeros((replicates, people), np.float64)
    expected = {name: np.zeros((replicates, people)) for name in OUTCOME_NAMES if name != "high_cost"}
    for m in range(outcomes.horizon_months):
        start = int(period_starts[first_period + m])
        days = int(period_starts[first_period + m + 1]) - start
        month = step(statics, chunk_state, start, days, rngs, detail=False)
        none_yet = emergencies == 0
        emergency_chance = -np.expm1(-month.emergency_rate.astype(np.float64))
        if outcomes.death_counts_as_emergency:
            emergency_chance += (1 - emergency_chance) * month.death_probability_without_emergency
        expected["emergency_admission"] += none_yet * emergency_chance
        no_unplanned_yet = none_yet & (ae_visits == 0)
        both_rates = (month.emergency_rate + month.ae_only_rate).astype(np.float64)
        expected["unplanned_care"] += no_unplanned_yet * -np.expm1(-both_rates)
        expected["frequent_user"] += frequent_crossing_probability(
            emergencies, ae_visits, month.emergency_rate, month.ae_only_rate, outcomes
        )
        # Zero for anyone already in a care home (including those there at the index date), so the sum is the
        # chance of a new placement among people not in one.
        expected["care_home_admission"] += month.placement_probability
        emergencies += month.emergency
        ae_visits += month.ae_only + month.emergency_via_ae
        cost += month.expected_cost
    high_cost = (cost >= threshold) & (cost > 0)
    return {"high_cost": high_cost.sum(axis=0), **{name: flags.sum(axis=0) for name, flags in expected.items()}}


def simulated_probabilities(
    statics: Statics,
    state: State,
    period_starts: np.ndarray,
    first_period: int,
    replicates: int,
    threshold: float,
    outcomes: OutcomeSettings,
    rng: np.random.Generator,
    progress: Callable[[float], None] | None = None,
) -> dict[str, np.ndarray]:
    """Share of `replicates` simulated futures in which each outcome happens, per (eligible) person.

    Work goes in blocks of people x replicates small enough for the per-person arrays to stay in cache."""
    people = len(state.alive)
    hits = {outcome: np.zeros(people) for outcome in OUTCOME_NAMES}
    block = max(1, min(people, PEOPLE_PER_BLOCK))
    per_chunk = max(1, min(replicates, MAX_ELEMENTS_PER_CHUNK // block))
    chunks = [(b, r) for b in range(0, people, block) for r in range(0, replicates, per_chunk)]
    for i, (first, done) in enumerate(chunks):
        rows = slice(first, min(first + block, people))
        chunk = min(per_chunk, replicates - done)
        counts = _simulate_block(
            statics.take(rows),
            state.take(rows),
            period_starts,
            first_period,
            chunk,
            threshold,
            outcomes,
            rng.spawn(1)[0],
        )
        for name, count in counts.items():
            hits[name][rows] += count
        if progress is not None:
            progress((i + 1) / len(chunks))
    # A future's expected indicator can sum a little above 1 (see _simulate_block); the mean cannot exceed it.
    return {name: np.minimum(count / replicates, 1.0) for name, count in hits.items()}


def build_truth(
    frames: dict[str, pl.DataFrame],
    population: Population,
    statics: Statics,
    path: RealisedPath,
    timeline: Timeline,
    outcomes: OutcomeSettings,
    replicates: int,
    rng: np.random.Generator,
    progress: Callable[[float], None] | None = None,
) -> pl.DataFrame:
    """Per person eligible at the evaluation and the scoring index dates, and per declared outcome (people at
    risk only): the true probability under `outcomes` and what happened."""
    if timeline.horizon_months != outcomes.horizon_months:
        raise ValueError(f"the timeline's horizon ({timeline.horizon_months}) is not the outcomes' own")
    index_periods = (timeline.eval_period, timeline.score_period)
    prepared = []
    for period in index_periods:
        start, end = int(path.period_starts[period]), int(path.period_starts[period + outcomes.horizon_months])
        eligible = np.flatnonzero(eligible_mask(population, path.death_day, start))
        realised, cost, in_home = realised_outcomes(frames, population, path.death_day, start, end, outcomes)
        threshold = high_cost_threshold(cost[eligible], outcomes)
        realised["high_cost"] = (cost >= threshold) & (cost > 0)
        prepared.append((period, eligible, realised, in_home, threshold))

    # The two index dates' futures are independent: simulate them in two threads (numpy releases the GIL in
    # its array loops), each with its own child stream, so the result does not depend on scheduling.
    done = [0.0] * len(index_periods)
    lock = threading.Lock()

    def simulate(k: int, child: np.random.Generator) -> dict[str, np.ndarray]:
        period, eligible, _, _, threshold = prepared[k]

        def report(fraction: float) -> None:
            with lock:
                done[k] = fraction
                if progress is not None:
                    progress(sum(done) / len(done))

        return simulated_probabilities(
            statics.take(eligible),
            path.snapshots[period].take(eligible),
            path.period_starts,
            period,
            replicates,
            threshold,
            outcomes,
            child,
            report,
        )

    children = rng.spawn(len(index_periods))
    with ThreadPoolExecutor(max_workers=TRUTH_THREADS) as pool:
        probabilities = list(pool.map(simulate, range(len(index_periods)), children))

    parts = []
    for (period, eligible, realised, in_home, _), probability in zip(prepared, probabilities, strict=True):
        index_date = day_to_date(int(path.period_starts[period]))
        for outcome in OUTCOMES:
            keep = ~in_home[eligible] if outcome.at_risk == NOT_IN_CARE_HOME else np.ones(len(eligible), bool)
            parts.append(
                pl.DataFrame(
                    {
                        "person_id": pl.Series(population.person_ids[eligible[keep]], dtype=pl.String),
                        "index_date": pl.Series([index_date] * int(keep.sum()), dtype=pl.Date),
                        "outcome": pl.Series([outcome.name] * int(keep.sum()), dtype=pl.String),
                        "probability": pl.Series(probability[outcome.name][keep], dtype=pl.Float64),
                        "realised": pl.Series(realised[outcome.name][eligible[keep]], dtype=pl.Boolean),
                    }
                )
            )
    return pl.concat(parts).sort("index_date", "outcome", "person_id")


def index_dates(timeline: Timeline) -> tuple[date, date]:
    return timeline.eval_index_date, timeline.score_index_date


def _recorded(outcomes: OutcomeSettings) -> dict[str, object]:
    return {"outcomes": list(OUTCOME_NAMES), **outcomes.to_dict()}


def write_truth(truth: pl.DataFrame, path: Path, outcomes: OutcomeSettings) -> None:
    """Write the truth with the outcome definitions it was built under in the file's metadata."""
    metadata = {DEFINITIONS_KEY: json.dumps(_recorded(outcomes), sort_keys=True)}
    truth.write_parquet(path, compression="zstd", metadata=metadata)


def read_truth(path: Path, outcomes: OutcomeSettings) -> pl.DataFrame:
    """The truth file at `path`, if it was built under the outcome definitions `outcomes` (see `check_truth`)."""
    check_truth(path, outcomes)
    return pl.read_parquet(path)


def check_truth(path: Path, outcomes: OutcomeSettings) -> None:
    """A `DomainError` naming the file and each definition that differs unless the truth at `path` was built
    under the outcome definitions `outcomes` and the same declared outcomes (reads the file's metadata only)."""
    recorded_text = pl.read_parquet_metadata(path).get(DEFINITIONS_KEY)
    if recorded_text is None:
        raise DomainError(
            f"{path}: the generator's truth records no outcome definitions (written by an older riskstrat): "
            "regenerate it with `riskstrat synth`"
        )
    recorded, wanted = json.loads(recorded_text), _recorded(outcomes)
    differences = [
        f"{'' if key == 'outcomes' else 'outcomes.'}{key} = {recorded.get(key)!r} there, {value!r} here"
        for key, value in wanted.items()
        if recorded.get(key) != value
    ]
    if differences:
        raise DomainError(
            f"{path}: the generator's truth was built under other outcome definitions than this run's "
            f"({'; '.join(differences)}): regenerate it with `riskstrat synth` under these settings"
        )
