"""A seeded synthetic training frame for tests and demos of the model layer.

It imitates the frame the feature layer produces (one row per person and index date, prior-use features,
a few categorical columns, nullable boolean labels) without depending on it. A latent, slowly drifting
"need" per person drives both the features and the outcomes; the true event probability is kept in
`true_p_<outcome>` so that the oracle can be evaluated beside the model and the baselines.

The features see the latent need only through noise, and prior use reflects the *previous* year's need,
so "last year's top users" regresses to the mean as it does in real data.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import numpy as np
import polars as pl

from data_contracts.dates import months_between

DEFAULT_INDEX_DATES: tuple[date, ...] = (
    date(2022, 1, 1),
    date(2022, 4, 1),
    date(2022, 7, 1),
    date(2022, 10, 1),
    date(2023, 4, 1),  # inside the 12-month window before 2023-10-01: must never be used for fitting
    date(2023, 10, 1),  # the evaluation index date
)
SYNTHETIC_OUTCOMES: tuple[str, ...] = ("emergency_admission", "high_cost")
SEXES: tuple[str, ...] = ("F", "M")
ETHNICITY_GROUPS: tuple[str, ...] = ("White", "Asian", "Black", "Mixed", "Other")
SERVICE_TYPES: tuple[str, ...] = ("home care", "residential", "day care", "reablement")
NUMERIC_FEATURES: tuple[str, ...] = (
    "age",
    "imd_quintile",
    "emergency_admissions_12m",
    "ae_attendances_12m",
    "gp_contacts_12m",
    "ltc_count",
    "polypharmacy_count",
    "cost_total_12m",
    "frailty_index",
    "noise_1",
    "noise_2",
)
BOOL_FEATURES: tuple[str, ...] = ("has_diabetes", "has_copd", "has_heart_failure")
CATEGORICAL_FEATURES: tuple[str, ...] = ("sex", "ethnicity_group", "social_care_service")
FEATURES: tuple[str, ...] = NUMERIC_FEATURES + BOOL_FEATURES + CATEGORICAL_FEATURES


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def make_training_frame(
    n_people: int = 6000,
    index_dates: Sequence[date] = DEFAULT_INDEX_DATES,
    seed: int = 20261124,
    label_missing_rate: float = 0.02,
) -> pl.DataFrame:
    """One row per person and index date with features, nullable labels and true probabilities.

    Columns: person_id, index_date, the `FEATURES`, `age_band`, one boolean label per outcome in
    `SYNTHETIC_OUTCOMES` (null for about `label_missing_rate` of rows: "not at risk") and
    `true_p_<outcome>` (the probability the label was drawn with).
    """
    rng = np.random.default_rng(seed)
    dates = sorted(index_dates)
    # Latent need on a quarterly grid starting four quarters before the first index date, so that
    # "last 12 months" features exist for every index date.
    quarter_of = {d: months_between(dates[0], d) // 3 + 4 for d in dates}
    n_quarters = max(quarter_of.values()) + 1

    person_id = np.array([f"P{i:07d}" for i in range(n_people)])
    age0 = np.clip(rng.gamma(shape=6.0, scale=8.0, size=n_people) + 18.0, 18.0, 100.0)
    sex = rng.choice(np.array(SEXES), size=n_people)
    ethnicity = rng.choice(np.array(ETHNICITY_GROUPS), size=n_people, p=[0.78, 0.1, 0.05, 0.04, 0.03])
    imd_quintile = rng.integers(1, 6, size=n_people)
    # Quintile 1 is the most deprived: more need there.
    person_need = rng.normal(size=n_people) + 0.035 * (age0 - 60.0) + 0.15 * (3 - imd_quintile)

    # AR(1) drift around each person's mean need: next year's need is related to, not equal to, this year's.
    rho = 0.8
    need = np.empty((n_people, n_quarters))
    need[:, 0] = person_need + rng.normal(scale=0.6, size=n_people)
    for q in range(1, n_quarters):
        need[:, q] = (
            person_need
            + rho * (need[:, q - 1] - person_need)
            + rng.normal(scale=0.6 * np.sqrt(1 - rho**2), size=n_people)
        )

    has_diabetes0 = rng.random(n_people) < _sigmoid(-2.0 + 0.5 * person_need)
    has_copd0 = rng.random(n_people) < _sigmoid(-2.6 + 0.6 * person_need)
    has_hf0 = rng.random(n_people) < _sigmoid(-3.0 + 0.7 * person_need)

    frames = []
    for d in dates:
        q = quarter_of[d]
        years_on = months_between(dates[0], d) / 12.0
        age = np.floor(age0 + years_on)
        past_need = need[:, q - 4 : q].mean(axis=1)
        now_need = need[:, q]
        emergency_12m = rng.poisson(np.exp(-2.0 + 0.9 * past_need))
        ae_12m = rng.poisson(np.exp(-1.1 + 0.7 * past_need))
        gp_12m = rng.poisson(np.exp(1.6 + 0.35 * now_need))
        ltc = rng.poisson(np.exp(-0.3 + 0.45 * person_need))
        polypharmacy = rng.poisson(np.exp(0.7 + 0.35 * now_need))
        service_p = _sigmoid(-3.2 + 0.9 * now_need + 0.03 * (age - 70))
        has_service = rng.random(n_people) < service_p
        service_drawn = rng.choice(np.array(SERVICE_TYPES), size=n_people, p=[0.5, 0.15, 0.2, 0.15])
        service = np.where(has_service, service_drawn, None)
        social_cost = np.where(service == "residential", 30000.0, np.where(has_service, 6000.0, 0.0))
        cost = (
            2800.0 * emergency_12m
            + 180.0 * ae_12m
            + 40.0 * gp_12m
            + social_cost * rng.uniform(0.5, 1.0, n_people)
            + rng.gamma(1.5, 200.0, n_people)
        )
        frailty = _sigmoid(0.9 * now_need - 1.0 + rng.normal(scale=0.8, size=n_people))
        frailty = np.where(rng.random(n_people) < 0.05, np.nan, frailty)  # not recorded for some people

        # True probabilities: non-linear in age and service type so trees have something to find.
        logit_ea = (
            -2.7
            + 0.95 * now_need
            + 0.5 * has_hf0
            + 0.6 * (age >= 80)
            + 0.4 * (service == "home care")
            - 0.3 * (age < 30)
        )
        logit_hc = -3.6 + 1.05 * now_need + 1.2 * (service == "residential") + 0.4 * has_copd0
        true_p = {"emergency_admission": _sigmoid(logit_ea), "high_cost": _sigmoid(logit_hc)}

        columns: dict[str, object] = {
            "person_id": person_id,
            "index_date": [d] * n_people,
            "age": age.astype(np.int64),
            "imd_quintile": imd_quintile.astype(np.int64),
            "emergency_admissions_12m": emergency_12m.astype(np.int64),
            "ae_attendances_12m": ae_12m.astype(np.int64),
            "gp_contacts_12m": gp_12m.astype(np.int64),
            "ltc_count": ltc.astype(np.int64),
            "polypharmacy_count": polypharmacy.astype(np.int64),
            "cost_total_12m": np.round(cost, 2),
            "frailty_index": frailty,
            "noise_1": rng.normal(size=n_people),
            "noise_2": rng.uniform(size=n_people),
            "has_diabetes": has_diabetes0,
            "has_copd": has_copd0,
            "has_heart_failure": has_hf0,
            "sex": sex,
            "ethnicity_group": ethnicity,
            "social_care_service": pl.Series("social_care_service", service.tolist(), dtype=pl.String),
        }
        for outcome in SYNTHETIC_OUTCOMES:
            label = rng.random(n_people) < true_p[outcome]
            at_risk = rng.random(n_people) >= label_missing_rate
            columns[outcome] = pl.Series(outcome, label, dtype=pl.Boolean).zip_with(
                pl.Series(at_risk), pl.Series([None] * n_people, dtype=pl.Boolean)
            )
            columns[f"true_p_{outcome}"] = true_p[outcome]
        frames.append(pl.DataFrame(columns, strict=False))

    frame = pl.concat(frames)
    frame = frame.with_columns(
        pl.col("frailty_index").fill_nan(None),
        pl.when(pl.col("age") < 45)
        .then(pl.lit("18-44"))
        .when(pl.col("age") < 65)
        .then(pl.lit("45-64"))
        .when(pl.col("age") < 80)
        .then(pl.lit("65-79"))
        .otherwise(pl.lit("80+"))
        .alias("age_band"),
    )
    return frame
