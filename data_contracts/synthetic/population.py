"""People, GP practices, teams, long-term conditions, frailty, opt-outs and each person's baseline need."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from data_contracts.settings import SynthSettings
from data_contracts.synthetic.clinical import CONDITIONS
from data_contracts.synthetic.timeline import NULL_DAY, Timeline, pseudonymous_ids

DAYS_PER_YEAR = 365.25
# England population share by 5-year age band at end_date (ONS mid-2021 ballpark), ages 0-4 ... 95-99.
AGE_BAND_SHARES = np.array(
    [5.4, 5.9, 6.0, 5.6, 5.9, 6.6, 6.9, 6.7, 6.3, 6.3, 6.8, 6.6, 5.8, 5.0, 5.0, 3.6, 2.5, 1.5, 0.7, 0.25]
)
SEX_CODES = np.array(["1", "2", "9"], dtype=object)
SEX_SHARES = (0.495, 0.503, 0.002)
FEMALE_SHARE_GAIN_PER_YEAR_OVER_60 = 0.003  # women outlive men: more of the old are female
ETHNICITY_GROUPS = np.array(["White", "Asian", "Black", "Mixed", "Other", "Unknown"], dtype=object)
ETHNICITY_SHARES = (0.81, 0.09, 0.04, 0.03, 0.02, 0.01)
PEOPLE_PER_LSOA = 1_600  # an LSOA holds 1,000-3,000 residents
PRACTICE_DEPRIVATION_SPREAD = 0.35  # sd of an LSOA's deprivation around its practice's area
MIN_PEOPLE_FOR_SEVERAL_PRACTICES = 200
TEAM_CAPACITY_SHARE = 0.02  # a team can case-manage about 2% of its registered people
MIN_TEAM_CAPACITY = 5
MORBIDITY_LOADING = 0.8  # shared latent morbidity: conditions cluster in the same people (logit scale)
PALLIATIVE_IF_CANCER_LOGIT = 2.5
CONDITION_RECORDED_MEAN_YEARS_AGO = 12.0  # exponential; about a fifth recorded within a 3-year history
PERSON_NEED_SD = 0.8  # unexplained, persistent person-level variation in log need
DEPRIVATION_NEED = 0.25  # log need, most deprived (+1) vs average
FRAILTY_NEED = 2.0  # log need per unit of frailty index
# Conditions and frailty raise need with diminishing returns (a person with eight conditions is not e^5
# times as needy as a healthy peer): need = cap x (1 - exp(-burden / cap)).
NEED_BURDEN_CAP = 2.5
OPT_OUT_GP_TYPE_1_SHARE = 0.15
OPT_OUT_WEEKLY_SHARE = 0.01  # share of opt-outs recorded in each weekly batch (at least one)
OPT_OUT_YEARS_BEFORE_HISTORY = 5


@dataclass
class Population:
    person_ids: np.ndarray  # object array of 16-hex strings
    birth_day: np.ndarray  # int32 day numbers
    birth_floor_day: np.ndarray  # first day of the birth month (what the ingest checks against)
    birth_year: np.ndarray
    birth_month: np.ndarray
    sex: np.ndarray
    ethnicity: np.ndarray
    imd_decile: np.ndarray
    lsoa: np.ndarray
    practice: np.ndarray  # practice index
    practice_codes: list[str]
    team_of_practice: np.ndarray
    has_condition: np.ndarray  # bool (people, conditions)
    condition_recorded_day: np.ndarray  # int32 (people, conditions), NULL_DAY where absent
    frailty: np.ndarray  # float32, 0-1 (eFI-like)
    need: np.ndarray  # float32 log need, excluding age (which the engine adds month by month)
    opted_out: np.ndarray  # bool
    opt_out_type: np.ndarray  # object, None when not opted out
    opt_out_day: np.ndarray  # int32, NULL_DAY when not opted out

    @property
    def size(self) -> int:
        return len(self.person_ids)

    def age_at(self, day: int | np.ndarray) -> np.ndarray:
        return ((day - self.birth_day) / DAYS_PER_YEAR).astype(np.float32)


def _months(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(year, month, first day of month) of int day numbers."""
    as_month = days.astype("datetime64[D]").astype("datetime64[M]")
    year = as_month.astype("datetime64[Y]").astype(np.int64) + 1970
    month = as_month.astype(np.int64) % 12 + 1
    floor = as_month.astype("datetime64[D]").astype(np.int64).astype(np.int32)
    return year, month, floor


def n_practices(settings: SynthSettings) -> int:
    if settings.people < MIN_PEOPLE_FOR_SEVERAL_PRACTICES:
        return 1
    return max(2, settings.people // settings.people_per_practice)


def _places(settings: SynthSettings, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Practice index, LSOA code and IMD decile of each person (deprivation clusters by practice area)."""
    people, practices = settings.people, n_practices(settings)
    practice = rng.integers(0, practices, size=people).astype(np.int32)
    practice_deprivation = rng.uniform(-1, 1, size=practices)
    lsoas_per_practice = max(1, round(settings.people_per_practice / PEOPLE_PER_LSOA))
    n_lsoas = practices * lsoas_per_practice
    lsoa_deprivation = np.repeat(practice_deprivation, lsoas_per_practice) + rng.normal(
        0, PRACTICE_DEPRIVATION_SPREAD, size=n_lsoas
    )
    lsoa_decile = np.clip(np.rint(5.5 - 4.5 * lsoa_deprivation), 1, 10).astype(np.int64)
    code_numbers = rng.choice(np.arange(1, 35_000), size=n_lsoas, replace=False) if n_lsoas < 34_999 else None
    if code_numbers is None:
        code_numbers = np.arange(1, n_lsoas + 1)
    lsoa_codes = np.array([f"E01{n:06d}" for n in code_numbers], dtype=object)
    person_lsoa = practice * lsoas_per_practice + rng.integers(0, lsoas_per_practice, size=people)
    return practice, lsoa_codes[person_lsoa], lsoa_decile[person_lsoa]


def _conditions(
    age: np.ndarray, deprivation: np.ndarray, morbidity: np.ndarray, end_day: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    people = len(age)
    has = np.zeros((people, len(CONDITIONS)), dtype=bool)
    recorded = np.full((people, len(CONDITIONS)), NULL_DAY, dtype=np.int32)
    cancer = None
    for j, spec in enumerate(CONDITIONS):
        logit = spec.intercept + spec.age_slope * (age - 50) / 10 + spec.deprivation_slope * deprivation
        logit = logit + MORBIDITY_LOADING * morbidity
        if spec.code == "palliative_care" and cancer is not None:
            logit = logit + PALLIATIVE_IF_CANCER_LOGIT * cancer
        has[:, j] = (rng.random(people) < 1 / (1 + np.exp(-logit))) & (age >= spec.min_age + 0.5)
        years_ago = np.minimum(
            rng.exponential(CONDITION_RECORDED_MEAN_YEARS_AGO, people), (age - spec.min_age) * rng.random(people)
        )
        recorded[:, j] = np.where(has[:, j], end_day - 1 - np.floor(years_ago * DAYS_PER_YEAR), NULL_DAY)
        if spec.code == "cancer":
            cancer = has[:, j]
    return has, recorded


def _opt_outs(
    birth_day: np.ndarray, settings: SynthSettings, timeline: Timeline, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    people = len(birth_day)
    opted_out = np.zeros(people, dtype=bool)
    kind = np.full(people, None, dtype=object)
    day = np.full(people, NULL_DAY, dtype=np.int32)
    count = round(settings.opt_out_rate * people)
    if count == 0:
        return opted_out, kind, day
    chosen = np.sort(rng.choice(people, size=count, replace=False))
    opted_out[chosen] = True
    kind[chosen] = np.where(rng.random(count) < OPT_OUT_GP_TYPE_1_SHARE, "gp_type_1", "national_data_opt_out")
    earliest = timeline.history_start_day - round(OPT_OUT_YEARS_BEFORE_HISTORY * DAYS_PER_YEAR)
    recorded = rng.integers(earliest, timeline.extract_day(0) + 1, size=count)
    # A few in each weekly batch, so the ingest's removal of already-loaded rows is exercised.
    per_week = max(1, round(OPT_OUT_WEEKLY_SHARE * count))
    order = rng.permutation(count)
    for b in range(1, timeline.n_batches):
        weekly = order[(b - 1) * per_week : b * per_week]
        first, last = timeline.extract_day(b - 1) + 1, min(timeline.extract_day(b), timeline.end_day - 1)
        recorded[weekly] = rng.integers(first, last + 1, size=len(weekly))
    day[chosen] = np.maximum(recorded, birth_day[chosen])
    return opted_out, kind, day


def build_population(settings: SynthSettings, timeline: Timeline, seed: int, rngs: dict) -> Population:
    rng = rngs["population"]
    people = settings.people
    shares = AGE_BAND_SHARES / AGE_BAND_SHARES.sum()
    band = rng.choice(len(shares), size=people, p=shares)
    age_days = np.floor((band * 5 + rng.random(people) * 5) * DAYS_PER_YEAR).astype(np.int64)
    birth_day = (timeline.end_day - np.maximum(age_days, 1)).astype(np.int32)
    birth_year, birth_month, birth_floor = _months(birth_day)
    age = ((timeline.end_day - birth_day) / DAYS_PER_YEAR).astype(np.float32)

    female_share = np.clip(SEX_SHARES[1] + FEMALE_SHARE_GAIN_PER_YEAR_OVER_60 * np.maximum(age - 60, 0), 0, 0.8)
    u = rng.random(people)
    sex = np.where(u < SEX_SHARES[2], "9", np.where(u < SEX_SHARES[2] + female_share, "2", "1")).astype(object)
    ethnicity = ETHNICITY_GROUPS[rng.choice(len(ETHNICITY_GROUPS), size=people, p=ETHNICITY_SHARES)]
    practice, lsoa, imd = _places(settings, rngs["practices"])
    deprivation = ((5.5 - imd) / 4.5).astype(np.float32)  # +1 most deprived, -1 least

    crng = rngs["conditions"]
    morbidity = crng.standard_normal(people).astype(np.float32)
    has, recorded = _conditions(age, deprivation, morbidity, timeline.end_day, crng)
    frailty_weights = np.array([c.frailty_weight for c in CONDITIONS], dtype=np.float32)
    frailty = has.astype(np.float32) @ frailty_weights + 0.0035 * np.maximum(age - 55, 0) + 0.03 * morbidity
    frailty = np.clip(frailty + crng.normal(0, 0.02, people), 0, 1).astype(np.float32)
    need_log_rr = np.array([c.need_log_rr for c in CONDITIONS], dtype=np.float32)
    burden = has.astype(np.float32) @ need_log_rr + FRAILTY_NEED * frailty
    need = NEED_BURDEN_CAP * -np.expm1(-burden / NEED_BURDEN_CAP) + DEPRIVATION_NEED * deprivation
    need = need + PERSON_NEED_SD * crng.standard_normal(people)
    # Centre within 5-year age bands: the engine's age curves are then the population's age-specific rates,
    # and need says how much more (or less) than a peer of the same age a person uses.
    band = np.minimum(age // 5, 20).astype(np.int64)
    mean_by_band = np.bincount(band, weights=np.exp(need), minlength=21) / np.maximum(
        np.bincount(band, minlength=21), 1
    )
    need = (need - np.log(np.maximum(mean_by_band[band], 1e-9))).astype(np.float32)

    opted_out, opt_type, opt_day = _opt_outs(birth_day, settings, timeline, rngs["opt_outs"])
    practices = n_practices(settings)
    return Population(
        person_ids=pseudonymous_ids(seed, people),
        birth_day=birth_day,
        birth_floor_day=birth_floor,
        birth_year=birth_year,
        birth_month=birth_month,
        sex=sex,
        ethnicity=ethnicity,
        imd_decile=imd,
        lsoa=lsoa,
        practice=practice,
        practice_codes=[f"P{i + 1:05d}" for i in range(practices)],
        team_of_practice=np.arange(practices) // max(1, settings.practices_per_team),
        has_condition=has,
        condition_recorded_day=recorded,
        frailty=frailty,
        need=need,
        opted_out=opted_out,
        opt_out_type=opt_type,
        opt_out_day=opt_day,
    )


def teams_frame(population: Population) -> pl.DataFrame:
    people_per_practice = np.bincount(population.practice, minlength=len(population.practice_codes))
    team = population.team_of_practice
    people_per_team = np.bincount(team, weights=people_per_practice)
    capacity = np.maximum(MIN_TEAM_CAPACITY, np.rint(TEAM_CAPACITY_SHARE * people_per_team)).astype(np.int64)
    return pl.DataFrame(
        {
            "gp_practice": population.practice_codes,
            "team_id": [f"T{t + 1:03d}" for t in team],
            "team_name": [f"Neighbourhood team {t + 1}" for t in team],
            "capacity": capacity[team],
        },
        schema={"gp_practice": pl.String, "team_id": pl.String, "team_name": pl.String, "capacity": pl.Int64},
    )
