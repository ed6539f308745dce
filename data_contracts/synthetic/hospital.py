"""Hospital rows: admitted patient care spells (SUS/HES APC) and A&E attendances (ECDS) from the realised path."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from data_contracts.reference import unit_cost
from data_contracts.synthetic import clinical
from data_contracts.synthetic.engine import DAY_CASE_SHARE
from data_contracts.synthetic.population import Population
from data_contracts.synthetic.realised import NURSING, RESIDENTIAL, RealisedPath
from data_contracts.synthetic.rows import (
    date_column,
    event_days,
    expand_counts,
    id_column,
    mean_one_lognormal,
    missing_costs,
    pick,
    sequential_ids,
    text_column,
)
from data_contracts.synthetic.timeline import NULL_DAY

OTHER_EMERGENCY_METHODS = ("22", "2A", "28", "23", "24", "2B")
OTHER_EMERGENCY_METHOD_WEIGHTS = (0.55, 0.15, 0.15, 0.05, 0.07, 0.03)
ELECTIVE_METHODS = ("11", "12", "13")
ELECTIVE_METHOD_WEIGHTS = (0.5, 0.35, 0.15)
EMERGENCY_SAME_DAY_SHARE = 0.22  # zero-night emergency spells
EMERGENCY_LOS_MEDIAN_DAYS = 2.5  # of overnight stays, for a fit 65-year-old
EMERGENCY_LOS_FRAILTY = 3.0  # median LOS x (1 + this x frailty)
EMERGENCY_LOS_AGE = 0.015  # median LOS x (1 + this x years over 65)
EMERGENCY_LOS_SD = 0.8  # lognormal
MAX_LOS_DAYS = 150
ELECTIVE_OVERNIGHT_MEAN_DAYS = 3.0
DIED_IN_HOSPITAL_SHARE = 0.75  # of deaths in a month with an emergency admission
DELAYED_DISCHARGE_BASE, DELAYED_DISCHARGE_FRAILTY = 0.05, 0.8  # probability of a delay, long frail stays
READY_DATE_RECORDED_SHARE = 0.6  # discharge_ready_date filled (= discharge) when there was no delay
CONDITION_PRIMARY_SHARE = 0.45  # an emergency admission coded to one of the person's conditions
FRAILTY_DIAGNOSIS_MAX_SHARE = 0.8
SECONDARY_FRAILTY_CODE_FRAILTY = 0.25  # frailty above which a frailty code is added as a secondary diagnosis
EMERGENCY_COST_SD, ELECTIVE_COST_SD, AE_COST_SD = 0.3, 0.3, 0.5
AE_ADMITTED_COST_FACTOR = 1.4
AE_DEPARTMENT_TYPES, AE_DEPARTMENT_WEIGHTS = ("01", "03", "02", "04"), (0.78, 0.18, 0.02, 0.02)
AE_DESTINATIONS, AE_DESTINATION_WEIGHTS = ("home", "other", "transfer"), (0.89, 0.08, 0.03)
CARE_HOME_DESTINATIONS = {RESIDENTIAL: ("65", "85"), NURSING: ("54", "85")}


@dataclass
class DischargeLinks:
    """Discharge day of each person-period's last emergency spell (capped at the period's last day), by key
    period * people + person, for social care that starts on discharge."""

    keys: np.ndarray
    days: np.ndarray


def _condition_diagnoses(population: Population) -> tuple[np.ndarray, np.ndarray]:
    """Per person: ICD-10 of their most need-raising condition (None if none) and a ';'-joined list of
    up to five condition codes (None if none)."""
    order = np.argsort([-c.need_log_rr for c in clinical.CONDITIONS], kind="stable")
    has = population.has_condition[:, order]
    icd = np.array([clinical.CONDITIONS[j].icd10 for j in order], dtype=object)
    any_condition = has.any(axis=1)
    top = np.where(any_condition, icd[np.argmax(has, axis=1)], None)
    person, rank = np.nonzero(has)
    joined = (
        pl.DataFrame({"person": person, "code": icd[rank].astype(str)})
        .group_by("person", maintain_order=True)
        .agg(pl.col("code").head(5).str.join(";"))
    )
    secondary = np.full(population.size, None, dtype=object)
    secondary[joined["person"].to_numpy()] = joined["code"].to_numpy()
    return top, secondary


def _placements_after_discharge(path: RealisedPath, people: int) -> tuple[np.ndarray, np.ndarray]:
    ep = path.episodes
    kind, start = ep.column("kind"), ep.column("start_period")
    chosen = np.isin(kind, (RESIDENTIAL, NURSING)) & ep.column("after_discharge") & (start >= 0) & ~ep.discarded
    keys = start[chosen].astype(np.int64) * people + ep.column("person")[chosen]
    order = np.argsort(keys)
    return keys[order], kind[chosen][order]


def build_hospital(
    population: Population, path: RealisedPath, rngs: dict
) -> tuple[pl.DataFrame, pl.DataFrame, DischargeLinks]:
    rng, people, starts = rngs["apc_detail"], population.size, path.period_starts
    em_person, em_period, em_count = path.counts["emergency"].arrays()
    via_person, via_period, via_count = path.counts["emergency_via_ae"].arrays()
    em_keys = em_period.astype(np.int64) * people + em_person
    via_aligned = np.zeros(len(em_keys), np.int16)
    via_aligned[np.searchsorted(em_keys, via_period.astype(np.int64) * people + via_person)] = via_count
    person, period, rank = expand_counts(em_person, em_period, em_count)
    via_ae = rank < np.repeat(via_aligned, em_count)
    el_person, el_period, el_rank = expand_counts(*path.counts["elective"].arrays())
    n_em = len(person)
    person = np.concatenate([person, el_person])
    period = np.concatenate([period, el_period]).astype(np.int64)
    rank = np.concatenate([rank, el_rank])
    emergency = np.arange(len(person)) < n_em
    via_ae = np.concatenate([via_ae, np.zeros(len(el_person), bool)])
    n = len(person)
    admission = event_days(person, period, starts, path.death_day, rng)

    # The last emergency spell of each person-period (a placement or a death in hospital attaches to it).
    key = period * people + person
    order = np.lexsort((admission, key, ~emergency))
    last = np.zeros(n, bool)
    sorted_key = key[order]
    last[order] = np.r_[sorted_key[1:] != sorted_key[:-1], True] & emergency[order]

    age = (admission - population.birth_day[person]) / 365.25
    frailty = population.frailty[person]
    median = (
        EMERGENCY_LOS_MEDIAN_DAYS
        * (1 + EMERGENCY_LOS_FRAILTY * frailty)
        * (1 + EMERGENCY_LOS_AGE * np.maximum(age - 65, 0))
    )
    overnight = 1 + np.floor(median * rng.lognormal(0, EMERGENCY_LOS_SD, n))
    emergency_los = np.where(rng.random(n) < EMERGENCY_SAME_DAY_SHARE, 0, overnight)
    elective_los = np.where(rng.random(n) < DAY_CASE_SHARE, 0, 1 + rng.geometric(1 / ELECTIVE_OVERNIGHT_MEAN_DAYS, n))
    los = np.minimum(np.where(emergency, emergency_los, elective_los), MAX_LOS_DAYS).astype(np.int64)
    discharge = admission + los
    death = path.death_day[person].astype(np.int64)
    dead = death != NULL_DAY
    period_end = starts[period + 1].astype(np.int64) - 1
    death_here = dead & (death <= period_end)
    # Only the person's last spell can end in death; an earlier spell still open at death ends that day.
    by_person = np.lexsort((admission, person))
    last_of_person = np.zeros(n, bool)
    last_of_person[by_person] = np.r_[person[by_person][1:] != person[by_person][:-1], True]
    chosen = last & death_here & (rng.random(n) < DIED_IN_HOSPITAL_SHARE)
    died = dead & last_of_person & ((discharge >= death) | chosen)
    discharge = np.where(dead, np.minimum(discharge, death), discharge)
    discharge = np.where(died, death, discharge)

    placement_keys, placement_kind = _placements_after_discharge(path, people)
    slot = np.clip(np.searchsorted(placement_keys, key), 0, max(len(placement_keys) - 1, 0))
    placed = last & ~died & (placement_keys[slot] == key) if len(placement_keys) else np.zeros(n, bool)
    discharge = np.where(placed, np.minimum(discharge, period_end), discharge)
    destination = pick(rng, ("19", "29", "51"), (0.97, 0.015, 0.015), n)
    for kind, codes in CARE_HOME_DESTINATIONS.items():
        chosen = placed & (placement_kind[slot] == kind) if len(placement_keys) else placed
        destination[chosen] = pick(rng, codes, None, int(chosen.sum()))
    destination[died] = "79"
    method = np.where(died, "4", np.where(rng.random(n) < 0.02, "2", "1")).astype(object)

    delay_probability = (DELAYED_DISCHARGE_BASE + DELAYED_DISCHARGE_FRAILTY * frailty) * ((age >= 65) & (los >= 4))
    delayed = emergency & ~died & (rng.random(n) < delay_probability)
    delay = 1 + np.floor(rng.random(n) * np.minimum(np.maximum(los - 1, 1), 14))
    ready = np.where(
        delayed, discharge - delay, np.where(rng.random(n) < READY_DATE_RECORDED_SHARE, discharge, NULL_DAY)
    )
    ready = np.where(died, NULL_DAY, ready)

    top_condition, secondary_codes = _condition_diagnoses(population)
    condition_code = top_condition[person]
    frail_code = pick(rng, clinical.FRAILTY_DIAGNOSES, None, n)
    use_condition = (condition_code != None) & (rng.random(n) < CONDITION_PRIMARY_SHARE)  # noqa: E711
    use_frailty = rng.random(n) < np.minimum(FRAILTY_DIAGNOSIS_MAX_SHARE, 2 * frailty)
    primary = np.where(
        use_condition, condition_code, np.where(use_frailty, frail_code, pick(rng, clinical.ACUTE_DIAGNOSES, None, n))
    )
    primary = np.where(emergency, primary, pick(rng, clinical.ELECTIVE_DIAGNOSES, None, n))
    extra_frailty = np.where(
        frailty > SECONDARY_FRAILTY_CODE_FRAILTY, pick(rng, clinical.FRAILTY_DIAGNOSES, None, n), None
    )
    specialty = np.where(
        emergency,
        pick(rng, clinical.EMERGENCY_SPECIALTIES, clinical.EMERGENCY_SPECIALTY_WEIGHTS, n),
        pick(rng, clinical.ELECTIVE_SPECIALTIES, clinical.ELECTIVE_SPECIALTY_WEIGHTS, n),
    )
    specialty = np.where((specialty == "430") & (age < 65), "300", specialty)
    admission_method = np.where(
        emergency,
        np.where(via_ae, "21", pick(rng, OTHER_EMERGENCY_METHODS, OTHER_EMERGENCY_METHOD_WEIGHTS, n)),
        pick(rng, ELECTIVE_METHODS, ELECTIVE_METHOD_WEIGHTS, n),
    )
    stay_factor = 0.3 + 0.14 * los
    emergency_cost = unit_cost("emergency_admission") * stay_factor / stay_factor[emergency].mean() if n_em else 0
    elective_cost = np.where(los == 0, unit_cost("day_case"), unit_cost("elective_admission"))
    cost = np.where(
        emergency,
        emergency_cost * mean_one_lognormal(rng, EMERGENCY_COST_SD, n),
        elective_cost * mean_one_lognormal(rng, ELECTIVE_COST_SD, n),
    ).round(2)

    number = sequential_ids((rank, person, admission))
    spells = (
        pl.DataFrame(
            [
                id_column("S", number, "spell_id"),
                pl.Series("_person", person, dtype=pl.Int32),
                date_column("admission_date", admission),
                date_column("discharge_date", discharge),
                pl.Series("admission_method", admission_method, dtype=pl.String),
                pl.Series("discharge_method", method, dtype=pl.String),
                pl.Series("discharge_destination", destination, dtype=pl.String),
                pl.Series("primary_diagnosis", primary, dtype=pl.String),
                text_column("_secondary_conditions", secondary_codes[person]),
                text_column("_secondary_frailty", extra_frailty),
                pl.Series("treatment_function_code", specialty, dtype=pl.String),
                date_column("discharge_ready_date", ready),
                pl.Series("cost", cost, dtype=pl.Float64),
                pl.Series("_cost_missing", missing_costs(rng, n)),
                pl.Series("_day", admission, dtype=pl.Int32),
                pl.Series("_end_day", discharge, dtype=pl.Int32),
            ]
        )
        .with_columns(
            pl.concat_str(["_secondary_conditions", "_secondary_frailty"], separator=";", ignore_nulls=True)
            .replace("", None)
            .alias("secondary_diagnoses")
        )
        .drop("_secondary_conditions", "_secondary_frailty")
    )

    link_rows = last & ~died
    links_key = key[link_rows]
    link_order = np.argsort(links_key)
    links = DischargeLinks(keys=links_key[link_order], days=np.minimum(discharge, period_end)[link_rows][link_order])
    return spells, _ae_attendances(population, path, rngs["ae_detail"], person[via_ae], admission[via_ae]), links


def _ae_attendances(
    population: Population,
    path: RealisedPath,
    rng: np.random.Generator,
    admitted_person: np.ndarray,
    admitted_day: np.ndarray,
) -> pl.DataFrame:
    only_person, only_period, only_rank = expand_counts(*path.counts["ae_only"].arrays())
    only_day = event_days(only_person, only_period.astype(np.int64), path.period_starts, path.death_day, rng)
    n_admitted, n_only = len(admitted_person), len(only_person)
    person = np.concatenate([admitted_person, only_person])
    day = np.concatenate([admitted_day, only_day]).astype(np.int32)
    admitted = np.arange(len(person)) < n_admitted
    n = len(person)
    destination = np.where(admitted, "admitted", pick(rng, AE_DESTINATIONS, AE_DESTINATION_WEIGHTS, n)).astype(object)
    ep = path.episodes
    home_start = np.full(population.size, np.iinfo(np.int32).max, np.int64)
    in_home = np.isin(ep.column("kind"), (RESIDENTIAL, NURSING)) & ~ep.discarded
    np.minimum.at(home_start, ep.column("person")[in_home].astype(np.int64), ep.column("start_period")[in_home])
    resident = home_start[person] < np.searchsorted(path.period_starts, day, side="right") - 1
    destination[~admitted & resident & (destination == "home")] = "care_home"
    died_there = ~admitted & (path.death_day[person] == day) & (rng.random(n) < 0.3)
    destination[died_there] = "died"
    department = np.where(admitted, "01", pick(rng, AE_DEPARTMENT_TYPES, AE_DEPARTMENT_WEIGHTS, n))
    cost = (
        unit_cost("ae_attendance")
        * mean_one_lognormal(rng, AE_COST_SD, n)
        * np.where(admitted, AE_ADMITTED_COST_FACTOR, 1)
    )
    rank = (
        np.concatenate([np.zeros(n_admitted, np.int32), only_rank + 1])
        if n_only or n_admitted
        else np.zeros(0, np.int32)
    )
    number = sequential_ids((rank, person, day))
    return pl.DataFrame(
        [
            id_column("A", number, "attendance_id"),
            pl.Series("_person", person, dtype=pl.Int32),
            date_column("arrival_date", day),
            pl.Series("department_type", department, dtype=pl.String),
            pl.Series("discharge_destination_group", destination, dtype=pl.String),
            pl.Series("cost", cost.round(2), dtype=pl.Float64),
            pl.Series("_cost_missing", missing_costs(rng, n)),
            pl.Series("_day", day, dtype=pl.Int32),
        ]
    )
