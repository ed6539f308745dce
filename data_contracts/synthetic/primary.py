"""Outpatient, GP, community and prescription rows, and the regular medicines behind repeat prescribing."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from data_contracts.costs import COMMUNITY_SETTING_BY_SERVICE
from data_contracts.reference import unit_cost
from data_contracts.synthetic import clinical
from data_contracts.synthetic.population import Population
from data_contracts.synthetic.realised import RealisedPath
from data_contracts.synthetic.rows import (
    date_column,
    event_days,
    expand_counts,
    id_column,
    mean_one_lognormal,
    missing_costs,
    pick,
    sequential_ids,
)
from data_contracts.synthetic.timeline import NULL_DAY

OP_STATUSES = ("5", "6", "3", "7", "2", "4")
OP_STATUS_WEIGHTS = (0.8, 0.04, 0.07, 0.005, 0.05, 0.035)  # DNA ("3") about 7%
OP_FIRST_SHARE = 0.35
OP_COST_SD = 0.3
GP_EVENT_TYPES = ("face_to_face", "telephone", "online", "home_visit", "did_not_attend")
GP_EVENT_WEIGHTS = (0.58, 0.3, 0.05, 0.02, 0.05)
HOME_VISIT_FRAILTY_FACTOR = 0.6  # extra chance that a frail person's contact is a home visit
GP_ROLES, GP_ROLE_WEIGHTS = ("gp", "nurse", "other"), (0.6, 0.3, 0.1)
GP_COST_SD = 0.25
HOME_VISIT_COST_FACTOR = 2.5
TELEPHONE_COST_FACTOR = 0.7
COMMUNITY_SERVICES = ("district_nursing", "therapy", "community_matron", "intermediate_care", "mental_health", "other")
COMMUNITY_WEIGHTS_FIT = (0.3, 0.3, 0.02, 0.05, 0.2, 0.13)
COMMUNITY_WEIGHTS_FRAIL = (0.5, 0.2, 0.15, 0.1, 0.03, 0.02)
COMMUNITY_FRAIL_THRESHOLD = 0.2
COMMUNITY_ATTENDED_SHARE = 0.93
COMMUNITY_COST_SD = 0.25
REPEAT_ISSUE_MONTHLY_PROBABILITY = 0.85  # a regular medicine is issued in most months
ITEMS, ITEM_WEIGHTS = (1, 2, 3), (0.85, 0.12, 0.03)
RX_COST_SD = 0.35


@dataclass
class RegularMedicines:
    person: np.ndarray
    bnf_code: np.ndarray  # object
    issue_cost: np.ndarray
    monthly_cost_by_person: np.ndarray  # expected monthly repeat-prescribing cost of each person


def regular_medicines(population: Population, rng: np.random.Generator) -> RegularMedicines:
    """Each person's regular medicines, from their conditions (polypharmacy rises with conditions)."""
    persons, codes = [], []
    for j, spec in enumerate(clinical.CONDITIONS):
        with_condition = np.flatnonzero(population.has_condition[:, j])
        for code in spec.medicines:
            takes = with_condition[rng.random(len(with_condition)) < spec.on_medicine_share]
            persons.append(takes)
            codes.append(np.full(len(takes), code, dtype=object))
    person = np.concatenate(persons).astype(np.int32)
    code = np.concatenate(codes)
    # The same medicine for two conditions (a statin for CHD and stroke) is one regular medicine.
    frame = pl.DataFrame({"person": person, "bnf": code.astype(str)}).unique(maintain_order=True).sort("person", "bnf")
    person, code = frame["person"].to_numpy(), frame["bnf"].to_numpy().astype(object)
    cost = np.array([clinical.medicine_issue_cost(c) for c in code], dtype=np.float64) if len(code) else np.zeros(0)
    monthly = np.bincount(person, weights=cost * REPEAT_ISSUE_MONTHLY_PROBABILITY, minlength=population.size)
    return RegularMedicines(person=person, bnf_code=code, issue_cost=cost, monthly_cost_by_person=monthly)


def _frame(
    prefix: str, id_name: str, date_name: str, person: np.ndarray, day: np.ndarray, rank: np.ndarray, columns: dict
) -> pl.DataFrame:
    number = sequential_ids((rank, person, day))
    return pl.DataFrame(
        [
            id_column(prefix, number, id_name),
            pl.Series("_person", person, dtype=pl.Int32),
            date_column(date_name, day),
            *(pl.Series(name, values) for name, values in columns.items()),
            pl.Series("_day", day, dtype=pl.Int32),
        ]
    )


def build_outpatients(population: Population, path: RealisedPath, rng: np.random.Generator) -> pl.DataFrame:
    person, period, rank = expand_counts(*path.counts["outpatient"].arrays())
    n = len(person)
    day = event_days(person, period.astype(np.int64), path.period_starts, path.death_day, rng)
    status = pick(rng, OP_STATUSES, OP_STATUS_WEIGHTS, n)
    attended = np.isin(status, ("5", "6"))
    cost = np.where(attended, unit_cost("outpatient_attendance") * mean_one_lognormal(rng, OP_COST_SD, n), 0.0)
    specialty = pick(rng, clinical.OUTPATIENT_SPECIALTIES, clinical.OUTPATIENT_SPECIALTY_WEIGHTS, n)
    columns = {
        "attendance_status": pl.Series(status, dtype=pl.String),
        "first_attendance": rng.random(n) < OP_FIRST_SHARE,
        "treatment_function_code": pl.Series(specialty, dtype=pl.String),
        "cost": cost.round(2),
        "_cost_missing": missing_costs(rng, n) & attended,
    }
    return _frame("O", "appointment_id", "appointment_date", person, day, rank, columns)


def build_gp_events(population: Population, path: RealisedPath, rng: np.random.Generator) -> pl.DataFrame:
    person, period, rank = expand_counts(*path.counts["gp"].arrays())
    n = len(person)
    day = event_days(person, period.astype(np.int64), path.period_starts, path.death_day, rng)
    event_type = pick(rng, GP_EVENT_TYPES, GP_EVENT_WEIGHTS, n)
    home_visit = rng.random(n) < HOME_VISIT_FRAILTY_FACTOR * population.frailty[person] ** 2
    event_type[home_visit & (event_type == "face_to_face")] = "home_visit"
    role = pick(rng, GP_ROLES, GP_ROLE_WEIGHTS, n)
    role[event_type == "home_visit"] = "gp"
    base = np.where(role == "gp", unit_cost("gp_consultation"), unit_cost("practice_nurse_consultation"))
    factor = np.select(
        [event_type == "home_visit", event_type == "telephone"], [HOME_VISIT_COST_FACTOR, TELEPHONE_COST_FACTOR], 1.0
    )
    cost = np.where(event_type == "did_not_attend", 0.0, base * factor * mean_one_lognormal(rng, GP_COST_SD, n))
    columns = {
        "event_type": pl.Series(event_type, dtype=pl.String),
        "staff_role": pl.Series(role, dtype=pl.String),
        "cost": cost.round(2),
        "_cost_missing": missing_costs(rng, n) & (event_type != "did_not_attend"),
    }
    return _frame("G", "event_id", "event_date", person, day, rank, columns)


def build_community(population: Population, path: RealisedPath, rng: np.random.Generator) -> pl.DataFrame:
    person, period, rank = expand_counts(*path.counts["community"].arrays())
    n = len(person)
    day = event_days(person, period.astype(np.int64), path.period_starts, path.death_day, rng)
    frail = population.frailty[person] >= COMMUNITY_FRAIL_THRESHOLD
    service = np.where(
        frail,
        pick(rng, COMMUNITY_SERVICES, COMMUNITY_WEIGHTS_FRAIL, n),
        pick(rng, COMMUNITY_SERVICES, COMMUNITY_WEIGHTS_FIT, n),
    )
    attended = rng.random(n) < COMMUNITY_ATTENDED_SHARE
    base = np.select(
        [service == s for s in COMMUNITY_SERVICES],
        [unit_cost(COMMUNITY_SETTING_BY_SERVICE[s]) for s in COMMUNITY_SERVICES],
    )
    cost = np.where(attended, base * mean_one_lognormal(rng, COMMUNITY_COST_SD, n), 0.0)
    columns = {
        "service": pl.Series(service, dtype=pl.String),
        "attended": attended,
        "cost": cost.round(2),
        "_cost_missing": missing_costs(rng, n) & attended,
    }
    return _frame("C", "contact_id", "contact_date", person, day, rank, columns)


def build_prescriptions(
    population: Population, path: RealisedPath, medicines: RegularMedicines, rng: np.random.Generator
) -> pl.DataFrame:
    """Repeat issues of regular medicines in months the person is alive and born, plus acute issues."""
    periods = len(path.period_starts) - 1
    born_period = np.searchsorted(path.period_starts, population.birth_floor_day, side="right")  # first active period
    death_period = np.where(
        path.death_day == NULL_DAY, periods - 1, np.searchsorted(path.period_starts, path.death_day, side="right") - 1
    )
    first = born_period[medicines.person]
    last = death_period[medicines.person]  # inclusive: the death month has issues up to the death day
    counts = np.clip(last - first + 1, 0, periods).astype(np.int64)
    medicine = np.repeat(np.arange(len(medicines.person)), counts)
    period = np.repeat(first, counts) + (np.arange(len(medicine)) - np.repeat(np.cumsum(counts) - counts, counts))
    issued = rng.random(len(medicine)) < REPEAT_ISSUE_MONTHLY_PROBABILITY
    medicine, period = medicine[issued], period[issued].astype(np.int64)
    repeat_person = medicines.person[medicine]
    acute_person, acute_period, acute_rank = expand_counts(*path.counts["acute_rx"].arrays())
    person = np.concatenate([repeat_person, acute_person]).astype(np.int32)
    period = np.concatenate([period, acute_period.astype(np.int64)])
    n = len(repeat_person) + len(acute_person)
    day = event_days(person, period, path.period_starts, path.death_day, rng)
    code = np.concatenate([medicines.bnf_code[medicine], pick(rng, clinical.ACUTE_MEDICINES, None, len(acute_person))])
    items = np.asarray(ITEMS)[rng.choice(len(ITEMS), size=n, p=ITEM_WEIGHTS)]
    unit = np.concatenate([medicines.issue_cost[medicine], np.full(len(acute_person), clinical.ACUTE_ISSUE_COST)])
    cost = unit * items * mean_one_lognormal(rng, RX_COST_SD, n)
    rank = np.concatenate([medicine.astype(np.int64), len(medicines.person) + acute_rank.astype(np.int64)])
    columns = {
        "bnf_code": pl.Series(code, dtype=pl.String),
        "items": pl.Series(items, dtype=pl.Int64),
        "cost": cost.round(2),
        "_cost_missing": missing_costs(rng, n),
    }
    return _frame("R", "prescription_id", "issue_date", person, day, rank, columns)
