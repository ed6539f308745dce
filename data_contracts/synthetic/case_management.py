"""A synthetic case-management service: the truth an evaluation of case management must recover.

Off by default (`CaseManagementSettings.enabled`): every file stays byte-identical. When on, each month of the
intake window every team's MDT meets on the first day of the month and works its list the way real teams do:

1. Who can be discussed: adults alive and registered, who never opted out, were never taken on before, were
   not discussed in the last `review_after_months` and were not deferred by a draw.
2. The list: those people ranked by the case-finding score at the meeting date (features/case_finding.py, the
   record as published: emergency admissions in 12 and 3 months, A&E attendances, long-term conditions, age),
   ties broken by a seeded draw. The team has places free (capacity from the teams table minus the people it
   case-manages now, at most capacity / duration_months a month, as a caseload turns over) and discusses the
   top `discussed_per_place` x places people of its list (offers them case management).
3. Randomised at the margin (`margin` > 0): the people ranked within `margin` either side of the last place
   discussed enter a seeded draw; half of them are offered now and the others after the follow-up (deferred).
   The draw is recorded (`draws`).
4. Each person offered is discussed: not appropriate (likelier without an emergency admission in the last
   3 months: teams favour recent admissions), else declined by a share, else taken on from that day for
   `duration_months`. Whoever was discussed is not discussed again for `review_after_months`.

While case-managed a person's emergency-admission hazard is multiplied by (1 - effect) (`rate_ratio`, used by
the engine's step). Selection depends only on the published record at the meeting date, the team, the date
and seeded draws, so an evaluation that matches on exactly those can recover the effect; a before-and-after
on the people taken on cannot (they were taken on at a peak).

The decisions become rows of the `caseload` contract table; the service, its true effect and the counts are
recorded beside the truth (`record`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from data_contracts.dates import add_months, day_number, day_to_date
from data_contracts.settings import CaseManagementSettings
from data_contracts.synthetic.population import Population, teams_frame
from data_contracts.synthetic.rows import date_column
from data_contracts.synthetic.timeline import NULL_DAY, Timeline
from data_contracts.tables import CASELOAD
from features.case_finding import points

ADULT_AGE = 18
WINDOW = 12  # months of activity the score looks back over
RECORD_FILE = "case_management.json"  # beside truth.parquet
DRAWS_FILE = "list_draws.parquet"
NOT_APPROPRIATE_REASON = "risk_not_confirmed"


@dataclass
class Decisions:
    person: list[int] = field(default_factory=list)
    team: list[int] = field(default_factory=list)
    day: list[int] = field(default_factory=list)
    decision: list[str] = field(default_factory=list)
    start: list[int] = field(default_factory=list)
    end: list[int] = field(default_factory=list)


@dataclass
class Draws:
    person: list[int] = field(default_factory=list)
    team: list[int] = field(default_factory=list)
    day: list[int] = field(default_factory=list)
    rank: list[int] = field(default_factory=list)
    offered: list[bool] = field(default_factory=list)


class CaseManagementService:
    """The MDTs' monthly meetings over the realised path (called by `run_realised_path` before each month)."""

    def __init__(
        self,
        settings: CaseManagementSettings,
        population: Population,
        timeline: Timeline,
        rng: np.random.Generator,
    ) -> None:
        self.settings, self.population, self.rng = settings, population, rng
        last = timeline.history_periods - settings.follow_up_months  # first period without a whole follow-up
        self.first_period = last - settings.intake_months
        if self.first_period < WINDOW:
            raise ValueError(
                "synth.case_management: the intake window needs 12 published months before it (history "
                f"{timeline.history_periods} months < {WINDOW + settings.intake_months + settings.follow_up_months})"
            )
        self.last_period = last
        self.period_starts = timeline.period_starts
        people = population.size
        teams = teams_frame(population)
        team_ids = sorted(set(teams["team_id"].to_list()))
        by_practice = dict(zip(teams["gp_practice"], teams["team_id"], strict=True))
        self.team_ids = team_ids
        self.team = np.array([team_ids.index(by_practice[code]) for code in population.practice_codes])[
            population.practice
        ]
        capacity = dict(zip(teams["team_id"], teams["capacity"], strict=True))
        self.capacity = np.array([capacity[t] for t in team_ids], np.int64)
        self.emergency = np.zeros((WINDOW, people), np.int16)  # ring buffers of the last 12 months' counts
        self.ae = np.zeros((WINDOW, people), np.int16)
        self.managed_until = np.full(people, NULL_DAY, np.int64)  # last day case-managed (NULL_DAY: never)
        self.ever_taken_on = np.zeros(people, bool)
        self.no_discussion_before = np.full(people, NULL_DAY, np.int64)
        self.decisions = Decisions()
        self.draws = Draws()
        self.follow_up_days: dict[int, int] = {}

    # ------------------------------------------------------------------------------------------ the engine hook

    def rate_ratio(self, period: int, start_day: int, alive: np.ndarray) -> np.ndarray | None:
        """Meet (in the intake window), then the month's emergency-rate multiplier per person (None: all 1)."""
        if self.first_period <= period < self.last_period:
            self._meet(period, start_day, alive)
        managed = self.managed_until >= start_day
        if not managed.any() or self.settings.effect == 0:
            return None
        return np.where(managed, np.float32(1 - self.settings.effect), np.float32(1))

    def observe(self, period: int, emergency: np.ndarray, ae: np.ndarray) -> None:
        """Record a published month's emergency admissions and A&E attendances (all of them, via A&E or not)."""
        slot = period % WINDOW
        self.emergency[slot] = emergency
        self.ae[slot] = ae

    # ---------------------------------------------------------------------------------------------- meetings

    def scores(self, period: int, start_day: int) -> dict[str, np.ndarray]:
        """The case-finding score's terms and score of everyone at the meeting on start_day."""
        pop = self.population
        meeting = day_to_date(start_day)
        last_three = [(period - k) % WINDOW for k in (1, 2, 3)]
        birthday_not_reached = (pop.birth_month > meeting.month).astype(np.int64)
        age = np.maximum(meeting.year - pop.birth_year.astype(np.int64) - birthday_not_reached, 0)
        ltc = ((pop.condition_recorded_day != NULL_DAY) & (pop.condition_recorded_day < start_day)).sum(axis=1)
        terms = {
            "emergency_admissions_12m": self.emergency.sum(axis=0).astype(np.float64),
            "emergency_admissions_3m": self.emergency[last_three].sum(axis=0).astype(np.float64),
            "ae_attendances_12m": self.ae.sum(axis=0).astype(np.float64),
            "long_term_conditions": ltc.astype(np.float64),
            "age_decades": age / 10,
        }
        return {**terms, "age": age, "score": points(terms)}

    def _meet(self, period: int, start_day: int, alive: np.ndarray) -> None:
        s, pop, rng = self.settings, self.population, self.rng
        values = self.scores(period, start_day)
        born = pop.birth_floor_day < start_day
        discussable = (
            alive
            & born
            & (values["age"] >= ADULT_AGE)
            & ~pop.opted_out
            & ~self.ever_taken_on
            & (self.no_discussion_before <= start_day)
        )
        managed_now = self.managed_until >= start_day
        follow_up_end = day_number(add_months(day_to_date(start_day), s.follow_up_months))
        review_end = day_number(add_months(day_to_date(start_day), s.review_after_months))
        tie_break = rng.random(pop.size)
        recent = values["emergency_admissions_3m"] > 0
        for t in range(len(self.team_ids)):
            # Places open as the caseload turns over: at most capacity / duration new people a month.
            monthly = -(-int(self.capacity[t]) // s.duration_months)
            free = min(monthly, int(self.capacity[t] - (managed_now & (self.team == t)).sum()))
            candidates = np.flatnonzero(discussable & (self.team == t))
            if free <= 0 or not len(candidates):
                continue
            order = np.lexsort((tie_break[candidates], -values["score"][candidates]))
            ranked = candidates[order]
            places = round(free * s.discussed_per_place)
            margin = min(s.margin, places, len(ranked) // 2)
            if margin:
                direct = ranked[: places - margin]
                drawn = ranked[places - margin : places + margin]
                won = np.zeros(len(drawn), bool)
                won[rng.permutation(len(drawn))[: len(drawn) // 2]] = True
                offered = np.concatenate([direct, drawn[won]])
                deferred = drawn[~won]
                self.no_discussion_before[deferred] = follow_up_end
                self.draws.person += drawn.tolist()
                self.draws.team += [t] * len(drawn)
                self.draws.day += [start_day] * len(drawn)
                self.draws.rank += list(range(places - margin + 1, places - margin + 1 + len(drawn)))
                self.draws.offered += won.tolist()
            else:
                offered = ranked[:places]
            u = rng.random((2, len(offered)))
            not_appropriate_share = np.where(
                recent[offered], s.not_appropriate_share_recent_admission, s.not_appropriate_share
            )
            not_appropriate = u[0] < not_appropriate_share
            declined = ~not_appropriate & (u[1] < s.declined_share)
            taken = ~not_appropriate & ~declined
            end_day = day_number(add_months(day_to_date(start_day), s.duration_months)) - 1
            self.managed_until[offered[taken]] = end_day
            self.ever_taken_on[offered[taken]] = True
            self.no_discussion_before[offered] = np.maximum(self.no_discussion_before[offered], review_end)
            decision = np.where(not_appropriate, "not_appropriate", np.where(declined, "declined", "taken_on"))
            self.decisions.person += offered.tolist()
            self.decisions.team += [t] * len(offered)
            self.decisions.day += [start_day] * len(offered)
            self.decisions.decision += decision.tolist()
            self.decisions.start += np.where(taken, start_day, NULL_DAY).tolist()
            self.decisions.end += np.where(taken, end_day, NULL_DAY).tolist()

    # -------------------------------------------------------------------------------------------------- output

    def caseload_frame(self) -> pl.DataFrame:
        """The decisions as `caseload` rows (with the writer's `_person`, `_day` and `_end_day`)."""
        d = self.decisions
        decision = np.array(d.decision, dtype=object)
        day = np.array(d.day, np.int32)
        end = np.array(d.end, np.int32)
        return pl.DataFrame(
            [
                pl.Series("_person", d.person, dtype=pl.Int32),
                pl.Series("team_id", [self.team_ids[t] for t in d.team], dtype=pl.String),
                pl.Series("decision", decision, dtype=pl.String),
                date_column("discussed_date", day),
                date_column("decision_date", day),
                pl.Series(
                    "reason_code",
                    np.where(decision == "not_appropriate", NOT_APPROPRIATE_REASON, None).tolist(),
                    dtype=pl.String,
                ),
                date_column("case_management_start", np.array(d.start, np.int32)),
                date_column("case_management_end", end),
                pl.Series("_day", day, dtype=pl.Int32),
                pl.Series("_end_day", np.where(end == NULL_DAY, day, end), dtype=pl.Int32),
            ]
        ).select("_person", *(c.name for c in CASELOAD.input_columns if c.name != "person_id"), "_day", "_end_day")

    def draws_frame(self) -> pl.DataFrame:
        """The draws at the margin: person_id, team_id, draw_date, list_rank, offered."""
        d = self.draws
        return pl.DataFrame(
            [
                pl.Series("person_id", self.population.person_ids[np.array(d.person, np.int64)], dtype=pl.String),
                pl.Series("team_id", [self.team_ids[t] for t in d.team], dtype=pl.String),
                date_column("draw_date", np.array(d.day, np.int32)),
                pl.Series("list_rank", d.rank, dtype=pl.Int64),
                pl.Series("offered", d.offered, dtype=pl.Boolean),
            ]
        )

    def record(self) -> dict[str, object]:
        """The true effect and what the service did, written beside the truth."""
        decisions = {name: self.decisions.decision.count(name) for name in sorted(set(self.decisions.decision))}
        return {
            "true_effect": {
                "emergency_admission_rate_ratio": 1 - self.settings.effect,
                "relative_change": -self.settings.effect,
                "applies": "while case-managed (duration_months from the start), to the emergency-admission hazard",
            },
            "settings": {k: getattr(self.settings, k) for k in self.settings.__dataclass_fields__},
            "intake": {
                "first_meeting": str(day_to_date(int(self.period_starts[self.first_period]))),
                "last_meeting": str(day_to_date(int(self.period_starts[self.last_period - 1]))),
            },
            "decisions": decisions,
            "draws": len(self.draws.person),
        }
