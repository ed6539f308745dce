"""The monthly engine: one step of every person's latent need, activity counts, death and social care.

The same `step` drives the realised path (published data and the held-back year) and the Monte Carlo
replicates behind the true outcome probabilities, so those probabilities describe exactly the process that
produced the data. State arrays are (people,) or (replicates, people) with the per-person statics broadcast;
nothing loops over people.

Need is on a log scale: a persistent person part (conditions, frailty, deprivation, unexplained) plus a latent
AR(1) part with occasional shocks that decays back to zero, so a bad year is often followed by a better one
(regression to the mean) while chronic need persists.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from data_contracts.reference import unit_cost

# Age knots (years) and per-year rates of a person of typical need for their age (need is centred within age
# bands, see population.py); interpolated linearly between knots. Tuned so population averages land near
# 0.1 emergency admissions, 0.3 A&E, 1.1 outpatient, 5 GP, 0.45 community and 8 prescription issues a year.
AGE_KNOTS = np.array([0, 5, 18, 30, 45, 65, 75, 85, 95, 105], dtype=np.float32)
EMERGENCY_PER_YEAR = np.array([0.115, 0.046, 0.0575, 0.069, 0.0805, 0.115, 0.184, 0.299, 0.46, 0.46])
ELECTIVE_PER_YEAR = np.array([0.02, 0.02, 0.03, 0.05, 0.08, 0.15, 0.2, 0.18, 0.1, 0.08])
AE_ONLY_PER_YEAR = np.array([0.405, 0.23, 0.27, 0.257, 0.203, 0.176, 0.203, 0.27, 0.338, 0.338])
OUTPATIENT_PER_YEAR = np.array([0.75, 0.525, 0.75, 0.9, 1.2, 1.95, 2.4, 2.25, 1.5, 1.2])
GP_PER_YEAR = np.array([7.25, 3.62, 4.06, 4.64, 5.22, 6.52, 7.97, 8.7, 8.7, 8.7])
COMMUNITY_PER_YEAR = np.array([0.64, 0.16, 0.096, 0.128, 0.192, 0.384, 0.8, 1.92, 3.84, 3.84])
ACUTE_RX_PER_YEAR = np.array([1.5, 1.0, 0.8, 0.8, 0.9, 1.1, 1.3, 1.5, 1.5, 1.5])
# How strongly each kind of activity follows log need (1 = proportional).
EMERGENCY_NEED_ELASTICITY = 1.0
ELECTIVE_NEED_ELASTICITY = 0.4
AE_NEED_ELASTICITY = 0.7
OUTPATIENT_NEED_ELASTICITY = 0.5
GP_NEED_ELASTICITY = 0.35
COMMUNITY_NEED_ELASTICITY = 0.7
COMMUNITY_FRAILTY_FACTOR = 4.0  # community rate x (1 + factor x frailty)
CARE_HOME_EMERGENCY_RR = 1.3
EMERGENCY_VIA_AE_SHARE = 0.7  # emergency admissions arriving through the person's A&E (method 21)

# Latent need: monthly AR(1) with shocks.
LATENT_PERSISTENCE = 0.9  # monthly autocorrelation; 0.9^12 = 0.28 across a year
LATENT_STATIONARY_SD = 0.65
LATENT_INNOVATION_SD = LATENT_STATIONARY_SD * float(np.sqrt(1 - LATENT_PERSISTENCE**2))
SHOCK_MONTHLY_PROBABILITY = 0.008
SHOCK_FRAILTY_FACTOR = 3.0  # shock probability x (1 + factor x frailty)
SHOCK_MEAN_SIZE = 0.9  # exponential, log-need units
SHOCK_MAX_SIZE = 2.5
LATENT_BOUND = 3.0  # the latent part stays within +-3 (rates within e^3 of the person's usual)
LOG_NEED_MAX = 3.5  # nobody uses more than e^3.5 (33x) the age-typical rate
RECENT_EMERGENCY_DECAY = 0.7  # monthly decay of the recent-emergency memory

# Deaths: Gompertz annual hazard exp(a + b age), times need and care-home effects.
DEATH_GOMPERTZ_INTERCEPT = -10.7
DEATH_GOMPERTZ_SLOPE = 0.094
DEATH_MIN_ANNUAL_HAZARD = 0.0002
DEATH_NEED_ELASTICITY = 0.6
CARE_HOME_DEATH_RR = 2.0
DEATH_EMERGENCY_RR = 12.0  # many deaths follow an emergency admission (about half of deaths are in hospital)

# Social care (adults). Monthly log hazards.
ADULT_AGE = 18.0
CARE_HOME_LOG_HAZARD = -9.3
CARE_HOME_AGE_SLOPE = 0.07  # per year from 80
CARE_HOME_FRAILTY = 6.0
CARE_HOME_DEMENTIA = 1.6
CARE_HOME_HOME_CARE = 1.0
CARE_HOME_RECENT_EMERGENCY = 0.5  # per unit of decayed recent emergency admissions (capped at 3)
CARE_HOME_EMERGENCY_NOW = 1.5  # a placement straight from a hospital discharge
NURSING_SHARE_BASE = 0.3
NURSING_SHARE_FRAILTY = 0.6
HOME_CARE_LOG_HAZARD = -7.9
HOME_CARE_AGE_SLOPE = 0.05
HOME_CARE_FRAILTY = 5.0
HOME_CARE_DEMENTIA = 1.0
HOME_CARE_EMERGENCY_NOW = 1.8
HOME_CARE_END_MONTHLY = 0.02  # support ends as planned
REABLEMENT_MIN_AGE = 65.0
REABLEMENT_BASE = 0.02  # probability after an emergency admission, plus frailty x REABLEMENT_FRAILTY
REABLEMENT_FRAILTY = 0.15
HOME_CARE_HOURLY_RATE = 25.0
HOME_CARE_HOURS_MIN, HOME_CARE_HOURS_MAX = 5.0, 30.0
SOCIAL_CARE_COST_SD = 0.12  # lognormal sd of a council's unit cost around the reference

# Mean costs per event used in the engine's expected monthly cost (the rows carry their own costs).
DAY_CASE_SHARE = 0.7
EMERGENCY_MEAN_COST = unit_cost("emergency_admission")
ELECTIVE_MEAN_COST = DAY_CASE_SHARE * unit_cost("day_case") + (1 - DAY_CASE_SHARE) * unit_cost("elective_admission")
AE_MEAN_COST = unit_cost("ae_attendance")
OUTPATIENT_MEAN_COST = 0.85 * unit_cost("outpatient_attendance")
GP_MEAN_COST = 0.93 * (0.6 * unit_cost("gp_consultation") + 0.4 * unit_cost("practice_nurse_consultation"))
COMMUNITY_MEAN_COST = 0.93 * 85.0
ACUTE_RX_MEAN_COST = 3.5 * 1.2
REABLEMENT_COST = unit_cost("reablement")
MAX_EVENTS_PER_MONTH = 8  # counts are Poisson truncated here (rates stay below ~1.3 a month)
HOSPITAL_COST_CV = 1.0  # coefficient of variation of one spell's cost (length of stay, day case or not)
LATENT_MEAN_CORRECTION = LATENT_STATIONARY_SD**2 / 2  # so the latent part multiplies rates by about 1


@dataclass
class _Arrays:
    def take(self, index: np.ndarray):
        return type(self)(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def tile(self, replicates: int):
        """Arrays of shape (replicates, people): every replicate starts from the same state."""
        return type(self)(**{f.name: np.tile(getattr(self, f.name)[None, :], (replicates, 1)) for f in fields(self)})

    def copy(self):
        return type(self)(**{f.name: getattr(self, f.name).copy() for f in fields(self)})


@dataclass
class Statics(_Arrays):
    """What does not change month to month (age is derived from birth_day)."""

    birth_day: np.ndarray
    birth_floor_day: np.ndarray
    need: np.ndarray
    frailty: np.ndarray
    dementia: np.ndarray
    regular_rx_monthly_cost: np.ndarray


@dataclass
class State(_Arrays):
    latent: np.ndarray
    alive: np.ndarray
    recent_emergency: np.ndarray
    care_home: np.ndarray  # 0 none, 1 residential, 2 nursing
    care_home_weekly: np.ndarray
    home_care: np.ndarray
    home_care_weekly: np.ndarray
    home_care_hours: np.ndarray


@dataclass
class Month:
    active: np.ndarray  # alive and born at the start of the month
    emergency: np.ndarray
    emergency_via_ae: np.ndarray
    elective: np.ndarray
    ae_only: np.ndarray
    died: np.ndarray
    new_care_home: np.ndarray  # 0, 1 residential, 2 nursing
    home_care_started: np.ndarray
    home_care_ended: np.ndarray  # ended for any reason other than death (incl. moving to a care home)
    reablement: np.ndarray
    expected_cost: np.ndarray  # approximate cost of the month (truth only)
    # The month's event rates and placement probability given everything before the draws: the truth averages
    # these (conditional expectations) instead of the drawn events, which removes most Monte Carlo noise.
    emergency_rate: np.ndarray
    ae_only_rate: np.ndarray
    placement_probability: np.ndarray
    # The chance of dying this month for someone active who has no emergency admission in it (an emergency
    # raises the hazard by DEATH_EMERGENCY_RR): what "emergency admission or death" adds to the admission.
    death_probability_without_emergency: np.ndarray
    outpatient: np.ndarray | None = None
    gp: np.ndarray | None = None
    community: np.ndarray | None = None
    acute_rx: np.ndarray | None = None


def _rate(curve: np.ndarray, age: np.ndarray) -> np.ndarray:
    return (np.interp(age, AGE_KNOTS, curve) / 12).astype(np.float32)


def _uniform(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.random(shape, dtype=np.float32)


def _poisson(rng: np.random.Generator, lam: np.ndarray) -> np.ndarray:
    """Poisson counts by inversion of one uniform each, refined only where the count is not zero (most
    person-months have no event, so this is much faster than a general Poisson sampler)."""
    lam = np.ascontiguousarray(lam, dtype=np.float32)
    u = _uniform(rng, lam.shape)
    p_zero = np.exp(-lam)
    counts = (u > p_zero).astype(np.int16)
    some = np.flatnonzero(counts)
    if len(some):
        rate, draw = lam.ravel()[some], u.ravel()[some]
        term = p_zero.ravel()[some].astype(np.float64)
        cdf = term.copy()
        extra = np.zeros(len(some), np.int16)
        for j in range(1, MAX_EVENTS_PER_MONTH):
            term = term * rate / j
            cdf += term
            extra += draw > cdf
        counts.ravel()[some] += extra
    return counts


def _sparse(rng_draw: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Scatter draws made for the True cells of mask into a zero array of mask's shape."""
    out = np.zeros(mask.shape, np.float32)
    out[mask] = rng_draw
    return out


def _spell_costs(rng: np.random.Generator, count: np.ndarray, mean_cost: float) -> np.ndarray:
    """Sum of `count` spell costs, drawn as one lognormal per person-month with the sum's spread (the
    realised rows' costs vary with length of stay; the truth's futures should vary about as much)."""
    some = count > 0
    k = count[some].astype(np.float64)
    sd = np.sqrt(np.log1p(HOSPITAL_COST_CV**2 / k))
    return _sparse(k * mean_cost * rng.lognormal(-(sd**2) / 2, sd), some)


def step(
    statics: Statics,
    state: State,
    start_day: int,
    days: int,
    rngs: dict,
    detail: bool,
    emergency_rate_ratio: np.ndarray | None = None,
) -> Month:
    """Advance everyone one month (state is updated in place) and return the month's events.

    Statics have shape (people,); state arrays (people,) on the realised path or (replicates, people) in the
    truth's futures (broadcasting). Draws for rare events are made only for the cells concerned.
    `emergency_rate_ratio` multiplies each person's emergency-admission rate (a case-management service)."""
    shape = state.alive.shape
    age = (start_day - statics.birth_day).astype(np.float32) / 365.25  # per person
    active = state.alive & (statics.birth_floor_day < start_day)
    on = active.astype(np.float32)

    latent_rng = rngs["latent"]
    u = _uniform(latent_rng, shape)
    shock_probability = (SHOCK_MONTHLY_PROBABILITY * (1 + SHOCK_FRAILTY_FACTOR * statics.frailty)).astype(np.float32)
    shocked = u < shock_probability
    # Given a shock, u / p is uniform on (0, 1): reuse it for the exponential size.
    relative = (u / shock_probability)[shocked]
    shock = _sparse(np.minimum(-SHOCK_MEAN_SIZE * np.log(np.maximum(relative, 1e-12)), SHOCK_MAX_SIZE), shocked)
    innovation = latent_rng.standard_normal(shape, dtype=np.float32) * LATENT_INNOVATION_SD
    latent = LATENT_PERSISTENCE * state.latent + innovation + shock
    state.latent = np.clip(latent, -LATENT_BOUND, LATENT_BOUND).astype(np.float32)
    log_need = np.minimum(statics.need + state.latent - LATENT_MEAN_CORRECTION, LOG_NEED_MAX).astype(np.float32)
    in_home = state.care_home > 0

    hospital_rng = rngs["hospital"]
    emergency_rate = _rate(EMERGENCY_PER_YEAR, age) * np.exp(EMERGENCY_NEED_ELASTICITY * log_need) * on
    emergency_rate *= np.where(in_home, np.float32(CARE_HOME_EMERGENCY_RR), np.float32(1))
    if emergency_rate_ratio is not None:
        emergency_rate *= emergency_rate_ratio
    emergency = _poisson(hospital_rng, emergency_rate)
    had_emergency = emergency > 0
    via_ae = np.zeros(shape, np.int16)
    via_ae[had_emergency] = hospital_rng.binomial(emergency[had_emergency], EMERGENCY_VIA_AE_SHARE)
    elective_rate = _rate(ELECTIVE_PER_YEAR, age) * np.exp(ELECTIVE_NEED_ELASTICITY * log_need) * on
    elective = _poisson(hospital_rng, elective_rate)
    ae_only_rate = _rate(AE_ONLY_PER_YEAR, age) * np.exp(AE_NEED_ELASTICITY * log_need) * on
    ae_only = _poisson(rngs["ae"], ae_only_rate)

    op_rate = _rate(OUTPATIENT_PER_YEAR, age) * np.exp(OUTPATIENT_NEED_ELASTICITY * log_need) * on
    gp_rate = _rate(GP_PER_YEAR, age) * np.exp(GP_NEED_ELASTICITY * log_need) * on
    community_rate = _rate(COMMUNITY_PER_YEAR, age) * (1 + COMMUNITY_FRAILTY_FACTOR * statics.frailty)
    community_rate = community_rate * np.exp(COMMUNITY_NEED_ELASTICITY * log_need) * on
    acute_rate = _rate(ACUTE_RX_PER_YEAR, age) * on

    # Death (the month's activity above happened before it; the row dates are truncated at the death day).
    annual = np.maximum(np.exp(DEATH_GOMPERTZ_INTERCEPT + DEATH_GOMPERTZ_SLOPE * age), DEATH_MIN_ANNUAL_HAZARD) / 12
    hazard = annual.astype(np.float32) * np.exp(DEATH_NEED_ELASTICITY * log_need)
    hazard *= np.where(in_home, np.float32(CARE_HOME_DEATH_RR), np.float32(1))
    death_probability_without_emergency = np.where(active, -np.expm1(-hazard), 0)
    hazard *= np.where(had_emergency, np.float32(DEATH_EMERGENCY_RR), np.float32(1))
    died = active & (_uniform(rngs["death"], shape) < -np.expm1(-hazard))
    state.alive &= ~died
    survivor = active & ~died

    # Social care. One uniform decides placement or home care start (competing risks).
    social = rngs["social_care"]
    adult = survivor & (age >= ADULT_AGE)
    state.recent_emergency = (RECENT_EMERGENCY_DECAY * state.recent_emergency + emergency).astype(np.float32)
    person_part = CARE_HOME_LOG_HAZARD + CARE_HOME_AGE_SLOPE * (age - 80) + CARE_HOME_FRAILTY * statics.frailty
    person_part = (person_part + CARE_HOME_DEMENTIA * statics.dementia).astype(np.float32)
    earlier_emergency = np.minimum(state.recent_emergency - emergency, 3)
    dynamic = CARE_HOME_HOME_CARE * state.home_care + CARE_HOME_RECENT_EMERGENCY * earlier_emergency
    dynamic = dynamic + CARE_HOME_EMERGENCY_NOW * had_emergency
    placement_probability = np.where(adult & ~in_home, -np.expm1(-np.exp(person_part + dynamic)), 0)
    home_part = HOME_CARE_LOG_HAZARD + HOME_CARE_AGE_SLOPE * (age - 80) + HOME_CARE_FRAILTY * statics.frailty
    home_part = (home_part + HOME_CARE_DEMENTIA * statics.dementia).astype(np.float32)
    can_start = adult & ~in_home & ~state.home_care
    start_probability = np.where(can_start, -np.expm1(-np.exp(home_part + HOME_CARE_EMERGENCY_NOW * had_emergency)), 0)
    u = _uniform(social, shape)
    placed = u < placement_probability
    started = ~placed & (u >= placement_probability) & (u < placement_probability + start_probability)

    n_placed = int(placed.sum())
    nursing_share = np.broadcast_to(NURSING_SHARE_BASE + NURSING_SHARE_FRAILTY * statics.frailty, shape)[placed]
    nursing = social.random(n_placed) < nursing_share
    reference = np.where(nursing, unit_cost("nursing_care"), unit_cost("residential_care"))
    new_care_home = np.zeros(shape, np.int8)
    new_care_home[placed] = np.where(nursing, 2, 1)
    state.care_home = np.where(placed, new_care_home, state.care_home).astype(np.int8)
    state.care_home_weekly[placed] = reference * social.lognormal(0, SOCIAL_CARE_COST_SD, n_placed)

    n_started = int(started.sum())
    hours = np.round(
        HOME_CARE_HOURS_MIN + (HOME_CARE_HOURS_MAX - HOME_CARE_HOURS_MIN) * social.random(n_started) ** 1.5
    )
    hourly = np.round(HOME_CARE_HOURLY_RATE * social.lognormal(0, SOCIAL_CARE_COST_SD, n_started), 2)
    state.home_care_hours[started] = hours
    state.home_care_weekly[started] = hourly * hours
    had_home_care = state.home_care & survivor
    planned_end = _sparse(social.random(int(had_home_care.sum())), had_home_care) < HOME_CARE_END_MONTHLY
    ended = had_home_care & (planned_end | placed)
    state.home_care = (state.home_care & ~ended & ~died) | started
    could_reable = adult & had_emergency & (age >= REABLEMENT_MIN_AGE) & (state.care_home == 0)
    reablement_probability = np.broadcast_to(REABLEMENT_BASE + REABLEMENT_FRAILTY * statics.frailty, shape)
    reablement = could_reable.copy()
    reablement[could_reable] = social.random(int(could_reable.sum())) < reablement_probability[could_reable]

    if detail:  # the realised path's rows carry their own costs
        hospital_cost = emergency * np.float32(EMERGENCY_MEAN_COST) + elective * np.float32(ELECTIVE_MEAN_COST)
    else:
        hospital_cost = _spell_costs(hospital_rng, emergency, EMERGENCY_MEAN_COST)
        hospital_cost += _spell_costs(hospital_rng, elective, ELECTIVE_MEAN_COST)
    weekly_social = np.where(state.care_home > 0, state.care_home_weekly, 0) + state.home_care * state.home_care_weekly
    expected_cost = (
        hospital_cost
        + (ae_only + via_ae) * np.float32(AE_MEAN_COST)
        + op_rate * np.float32(OUTPATIENT_MEAN_COST)
        + gp_rate * np.float32(GP_MEAN_COST)
        + community_rate * np.float32(COMMUNITY_MEAN_COST)
        + acute_rate * np.float32(ACUTE_RX_MEAN_COST)
        + statics.regular_rx_monthly_cost * on
        + weekly_social * np.float32(days / 7) * survivor
        + reablement * np.float32(REABLEMENT_COST)
    ).astype(np.float32)

    month = Month(
        active=active,
        emergency=emergency,
        emergency_via_ae=via_ae,
        elective=elective,
        ae_only=ae_only,
        died=died,
        new_care_home=new_care_home,
        home_care_started=started,
        home_care_ended=ended,
        reablement=reablement,
        expected_cost=expected_cost,
        emergency_rate=emergency_rate,
        ae_only_rate=ae_only_rate,
        placement_probability=placement_probability,
        death_probability_without_emergency=death_probability_without_emergency,
    )
    if detail:
        month.outpatient = _poisson(rngs["outpatient"], op_rate)
        month.gp = _poisson(rngs["gp"], gp_rate)
        month.community = _poisson(rngs["community"], community_rate)
        month.acute_rx = _poisson(rngs["prescriptions"], acute_rate)
    return month
