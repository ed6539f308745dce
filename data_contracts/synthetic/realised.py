"""The realised path: run the monthly engine over burn-in, history and the held-back year, keeping compact
records (who had how many of what in which period, deaths, social care episodes) for the row builders.

Burn-in months before the history give everyone a plausible latent need and social care situation at the
history start: a person who dies in burn-in is replaced by a newcomer of the same age (alive, no services),
so the population keeps its size and services running at the start have realistic durations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from data_contracts.dates import add_months, day_number
from data_contracts.synthetic.case_management import CaseManagementService
from data_contracts.synthetic.clinical import DEMENTIA
from data_contracts.synthetic.engine import LATENT_STATIONARY_SD, State, Statics, step
from data_contracts.synthetic.population import Population
from data_contracts.synthetic.timeline import NULL_DAY, Timeline

BURN_IN_MONTHS = 36
COUNT_KINDS = ("emergency", "emergency_via_ae", "elective", "ae_only", "outpatient", "gp", "community", "acute_rx")
# Social care episode kinds.
HOME_CARE, RESIDENTIAL, NURSING, REABLEMENT = 0, 1, 2, 3


@dataclass
class Counts:
    """Sparse person-period counts of one kind of activity."""

    person: list[np.ndarray] = field(default_factory=list)
    period: list[np.ndarray] = field(default_factory=list)
    count: list[np.ndarray] = field(default_factory=list)

    def add(self, values: np.ndarray, period: int) -> None:
        who = np.flatnonzero(values)
        self.person.append(who.astype(np.int32))
        self.period.append(np.full(len(who), period, dtype=np.int16))
        self.count.append(values[who].astype(np.int16))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not self.person:
            return np.zeros(0, np.int32), np.zeros(0, np.int16), np.zeros(0, np.int16)
        return np.concatenate(self.person), np.concatenate(self.period), np.concatenate(self.count)


@dataclass
class Episodes:
    """Social care service episodes (periods are history-relative; negative = burn-in)."""

    person: list[np.ndarray] = field(default_factory=list)
    kind: list[np.ndarray] = field(default_factory=list)
    start_period: list[np.ndarray] = field(default_factory=list)
    weekly_cost: list[np.ndarray] = field(default_factory=list)
    hours: list[np.ndarray] = field(default_factory=list)
    after_discharge: list[np.ndarray] = field(default_factory=list)
    end_period: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))  # -9999 open
    ended_by_death: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    discarded: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    size: int = 0

    def open(
        self,
        who: np.ndarray,
        kind: int,
        period: int,
        weekly: np.ndarray,
        hours: np.ndarray,
        after_discharge: np.ndarray,
    ) -> np.ndarray:
        ids = np.arange(self.size, self.size + len(who), dtype=np.int64)
        self.person.append(who.astype(np.int32))
        self.kind.append(np.full(len(who), kind, np.int8))
        self.start_period.append(np.full(len(who), period, np.int32))
        self.weekly_cost.append(weekly.astype(np.float32))
        self.hours.append(hours.astype(np.float32))
        self.after_discharge.append(after_discharge.astype(bool))
        self.end_period = np.concatenate([self.end_period, np.full(len(who), OPEN, np.int32)])
        self.ended_by_death = np.concatenate([self.ended_by_death, np.zeros(len(who), bool)])
        self.discarded = np.concatenate([self.discarded, np.zeros(len(who), bool)])
        self.size += len(who)
        return ids

    def column(self, name: str) -> np.ndarray:
        return np.concatenate(getattr(self, name)) if self.size else np.zeros(0)


OPEN = -9999


@dataclass
class RealisedPath:
    counts: dict[str, Counts]
    death_day: np.ndarray  # int32, NULL_DAY when alive at the end of the held-back year
    episodes: Episodes
    snapshots: dict[int, State]  # state at the start of the eval and score periods
    period_starts: np.ndarray  # history-relative: index 0 = history start
    burn_in_starts: np.ndarray  # the burn-in periods' starts (period -BURN_IN_MONTHS first)


def make_statics(population: Population, regular_rx_monthly_cost: np.ndarray) -> Statics:
    return Statics(
        birth_day=population.birth_day,
        birth_floor_day=population.birth_floor_day,
        need=population.need,
        frailty=population.frailty,
        dementia=population.has_condition[:, DEMENTIA],
        regular_rx_monthly_cost=regular_rx_monthly_cost.astype(np.float32),
    )


def initial_state(size: int, rng: np.random.Generator) -> State:
    return State(
        latent=(rng.standard_normal(size) * LATENT_STATIONARY_SD).astype(np.float32),
        alive=np.ones(size, bool),
        recent_emergency=np.zeros(size, np.float32),
        care_home=np.zeros(size, np.int8),
        care_home_weekly=np.zeros(size, np.float32),
        home_care=np.zeros(size, bool),
        home_care_weekly=np.zeros(size, np.float32),
        home_care_hours=np.zeros(size, np.float32),
    )


def run_realised_path(
    population: Population,
    statics: Statics,
    timeline: Timeline,
    rngs: dict[str, np.random.Generator],
    progress: Callable[[float], None] | None = None,
    service: CaseManagementService | None = None,
) -> RealisedPath:
    """`service`: a case-management service that meets before each published month and changes the emergency
    hazard of the people it case-manages (None: no service, the default population)."""
    size = population.size
    state = initial_state(size, rngs["latent"])
    first = -timeline.history_periods - BURN_IN_MONTHS
    starts = np.array(
        [day_number(add_months(timeline.end_date, k)) for k in range(first, timeline.future_months + 1)],
        dtype=np.int64,
    )  # burn-in + history + future, plus the end of the last period
    counts = {kind: Counts() for kind in COUNT_KINDS}
    episodes = Episodes()
    open_home_care = np.full(size, -1, np.int64)
    open_care_home = np.full(size, -1, np.int64)
    death_day = np.full(size, NULL_DAY, np.int32)
    snapshots: dict[int, State] = {}
    total = len(starts) - 1
    for i in range(total):
        period = i - BURN_IN_MONTHS  # history-relative
        burn_in = period < 0
        if period in (timeline.eval_period, timeline.score_period):
            snapshots[period] = state.copy()
        start, days = int(starts[i]), int(starts[i + 1] - starts[i])
        ratio = service.rate_ratio(period, start, state.alive) if service is not None and not burn_in else None
        month = step(statics, state, start, days, rngs, detail=not burn_in, emergency_rate_ratio=ratio)
        if service is not None and not burn_in:
            service.observe(period, month.emergency, month.ae_only + month.emergency_via_ae)

        # Close episodes ended this month (before opening new ones: a placement ends home care).
        for open_ids, ending in ((open_home_care, month.home_care_ended), (open_care_home, np.zeros(size, bool))):
            closing = (ending | month.died) & (open_ids >= 0)
            ids = open_ids[closing]
            episodes.end_period[ids] = period
            episodes.ended_by_death[ids] = month.died[closing]
            open_ids[closing] = -1
        placed = np.flatnonzero(month.new_care_home)
        kinds = month.new_care_home[placed]
        for kind in (RESIDENTIAL, NURSING):
            who = placed[kinds == kind]
            open_care_home[who] = episodes.open(
                who, kind, period, state.care_home_weekly[who], np.zeros(len(who)), month.emergency[who] > 0
            )
        who = np.flatnonzero(month.home_care_started)
        open_home_care[who] = episodes.open(
            who, HOME_CARE, period, state.home_care_weekly[who], state.home_care_hours[who], month.emergency[who] > 0
        )
        who = np.flatnonzero(month.reablement)
        none = np.zeros(len(who))
        ids = episodes.open(who, REABLEMENT, period, none, none, np.ones(len(who), bool))
        episodes.end_period[ids] = period  # a fixed-length episode; its end day is set by the row builder

        if burn_in:
            # Replace who died by a newcomer of the same age: alive, no services, episodes forgotten.
            dead = np.flatnonzero(month.died)
            for open_ids in (open_home_care, open_care_home):
                episodes.discarded[open_ids[dead][open_ids[dead] >= 0]] = True
                open_ids[dead] = -1
            episode_person = episodes.column("person")
            episodes.discarded |= np.isin(episode_person, dead) & (episodes.end_period == period)
            state.alive[dead] = True
            state.care_home[dead] = 0
            state.home_care[dead] = False
            state.recent_emergency[dead] = 0
        else:
            for kind in COUNT_KINDS:
                counts[kind].add(getattr(month, kind), period)
            dead = np.flatnonzero(month.died)
            death_day[dead] = start + np.floor(rngs["death"].random(len(dead)) * days).astype(np.int32)
        if progress is not None:
            progress((i + 1) / total)
    return RealisedPath(
        counts=counts,
        death_day=death_day,
        episodes=episodes,
        snapshots=snapshots,
        period_starts=starts[BURN_IN_MONTHS:].astype(np.int32),
        burn_in_starts=starts[: BURN_IN_MONTHS + 1].astype(np.int32),
    )
