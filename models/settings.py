"""Settings owned by the model layer: training, evaluation, scoring and tiers.

Plain dataclasses; the `Annotated` constraints and validators are checked when `pipelines.settings.load_settings`
reads them (pydantic validates these dataclasses as they are), so a wrong value fails at load, not in training.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise
from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Field, StrictFloat, StrictInt, StrictStr

from data_contracts.outcomes import OUTCOME_NAMES

# LightGBM takes `seed` to `seed + 3` as C ints (models/training.py).
MAX_SEED = 2**31 - 1 - 3
Fraction = Annotated[StrictFloat, Field(gt=0, le=1)]


def _strictly_increasing_to_one(tiers: dict[str, float]) -> dict[str, float]:
    cuts = list(tiers.values())
    if not cuts or any(b <= a for a, b in pairwise(cuts)) or cuts[0] <= 0 or cuts[-1] != 1.0:
        raise ValueError("tier cut-offs must increase strictly from above 0 and end at 1.0")
    return tiers


def _distinct(values: tuple[str, ...]) -> tuple[str, ...]:
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"listed more than once: {', '.join(repeated)}")
    return values


@dataclass
class LightGBMParams:
    __pydantic_config__ = ConfigDict(extra="forbid")

    # Every outcome is a 0/1 label whose scores are calibrated into probabilities.
    objective: Literal["binary"] = "binary"
    # Smaller, more regularised trees than LightGBM's defaults: the signal is weak and spread over many
    # correlated counts. On the 100,000-person synthetic population these settings beat 31 leaves / 50 rows /
    # 0.8 features / L2 1 by 0.002-0.011 AUROC on every outcome, with a similar number of trees.
    learning_rate: Fraction = 0.05
    num_leaves: Annotated[StrictInt, Field(ge=2)] = 15
    max_depth: Annotated[StrictInt, Field(ge=-1)] = 6  # -1: no limit
    min_child_samples: Annotated[StrictInt, Field(ge=1)] = 100
    feature_fraction: Fraction = 0.5
    bagging_fraction: Fraction = 0.8
    bagging_freq: Annotated[StrictInt, Field(ge=0)] = 1
    lambda_l2: Annotated[StrictFloat, Field(ge=0)] = 10.0
    num_threads: Annotated[StrictInt, Field(ge=1)] = 2
    verbose: StrictInt = -1


@dataclass
class TrainingSettings:
    __pydantic_config__ = ConfigDict(extra="forbid")

    # Every outcome declared in data_contracts/outcomes.py by default. unplanned_care (any A&E attendance or
    # emergency admission) has events enough for small populations.
    outcomes: Annotated[tuple[StrictStr, ...], Field(min_length=1), AfterValidator(_distinct)] = OUTCOME_NAMES
    # Fit index dates are quarterly, and each one's outcome window must end on or before the
    # evaluation index date (no overlap between fit labels and the evaluation period).
    index_spacing_months: Annotated[StrictInt, Field(ge=1)] = 3
    min_history_months: Annotated[StrictInt, Field(ge=0)] = 6
    max_fit_index_dates: Annotated[StrictInt, Field(ge=1)] = 4
    # After evaluation, refit the model that scores on the latest `max_fit_index_dates` labelled dates up to and
    # including the evaluation date (the most recent labelled year and the fullest history), with the evaluated
    # model's settings and number of trees chosen afresh by early stopping; it replaces the evaluated model for
    # scoring only if its ranking on its own held-out people at the newest date is not worse (models/training.py).
    refit_on_all_labelled: bool = True
    # Protected characteristics as predictors (the model card shows the effect of the other choice on the subgroup
    # error rates of the ranking outcome, `predictor_choice_effect`).
    # Ethnic group: off. It is a protected characteristic (Equality Act 2010): ranking people for a service by it
    # needs a justification the model cannot give, and its recording is incomplete and uneven between services,
    # so as a predictor it partly learns recording practice. Error rates by ethnic group are reported either way.
    ethnicity_as_predictor: bool = False
    # Area deprivation (IMD decile of the home area): on. It describes the area, not the person, need rises with
    # it, and NHS targeting uses it openly (Core20PLUS5 names the most deprived 20% of areas); leaving it out
    # leaves the model to infer it from use of care, which understates the need of those who use care less.
    deprivation_as_predictor: bool = True
    # Fit the ranking outcome's model again with each of the two choices above reversed, and put the overall and
    # subgroup figures side by side on its model card (two more fits of one outcome).
    predictor_choice_effect: bool = True
    num_boost_round: Annotated[StrictInt, Field(ge=1)] = 1000
    early_stopping_rounds: Annotated[StrictInt, Field(ge=1)] = 50
    # Shares of the fit people held out for early stopping and for calibration (their sum must be below 1).
    validation_fraction: Annotated[StrictFloat, Field(gt=0, lt=1)] = 0.2
    calibration_fraction: Annotated[StrictFloat, Field(gt=0, lt=1)] = 0.2
    # "isotonic", "platt", or "auto": isotonic when the calibration rows hold at least `isotonic_min_events`
    # events, else Platt. Isotonic follows any monotone shape but needs many events; with a few hundred its
    # steps are noise (on 100k people, care-home admission with ~50 calibration events: isotonic left a
    # calibration intercept of -0.33 in the evaluation year, Platt -0.18; both equal for common outcomes).
    calibration: Literal["auto", "isotonic", "platt"] = "auto"
    isotonic_min_events: Annotated[StrictInt, Field(ge=1)] = 1000
    # The small-sample path: with fewer calibration events than this, the validation part (used only to stop
    # the boosting) is pooled with the calibration part, and the model card, the training log and the training
    # summary carry a plain warning that the risks are approximate.
    calibration_min_events: Annotated[StrictInt, Field(ge=1)] = 100
    # Platt's (a, b) are shrunk towards (0, 1), the booster's own probabilities, with this Gaussian prior
    # precision (about this many events' worth): negligible with thousands of events, it keeps a few dozen from
    # swinging the slope (on 1,000 people unpenalised Platt on ~100 rows gave slopes of 1.6-1.8).
    calibration_prior_strength: Annotated[StrictFloat, Field(ge=0)] = 10.0
    # Calibration in the large: after calibrating on every fit date pooled, shift the map in log-odds towards the
    # level of the newest fit date (its calibration and validation people, held out from the boosting), by as much
    # as the evidence supports: the shift has a Gaussian prior of sd `calibration_drift_sd` log-odds (0.1: about
    # 10% in risk), so on a stable population a few hundred events cannot swing the level by their noise alone.
    recalibrate_in_the_large: bool = True
    calibration_drift_sd: Annotated[StrictFloat, Field(gt=0)] = 0.1
    bootstrap_samples: Annotated[StrictInt, Field(ge=1)] = 200
    # Not a setting of its own: `pipelines.settings.Settings` sets it from the run's top-level `seed`, which
    # seeds every generator and model. Kept here so the model layer (and each model version) carries it.
    seed: Annotated[StrictInt, Field(ge=0, le=MAX_SEED)] = 20261124
    lgbm: LightGBMParams = field(default_factory=LightGBMParams)
    # Operational cut-offs: PPV, sensitivity and events captured in the top fractions of the ranked list.
    top_fractions: Annotated[tuple[Fraction, ...], Field(min_length=1)] = (0.005, 0.02, 0.05, 0.20)
    # Subgroups smaller than this (or with fewer events / non-events) get no AUROC: too noisy to read.
    subgroup_min_n: Annotated[StrictInt, Field(ge=1)] = 100
    subgroup_min_events: Annotated[StrictInt, Field(ge=1)] = 10
    # False positive / negative rates by subgroup are taken at this population cut (the "high" tier).
    subgroup_flag_fraction: Fraction = 0.05
    # Mean |contribution| for the model card is computed on at most this many evaluation rows (TreeSHAP cost).
    explain_sample_rows: Annotated[StrictInt, Field(ge=1)] = 2000
    # Promotion: a new model replaces the current one only if AUROC >= current - tolerance and
    # Brier <= current + brier tolerance on the same evaluation rows (or when forced).
    promotion_auroc_tolerance: Annotated[StrictFloat, Field(ge=0)] = 0.005
    promotion_brier_tolerance: Annotated[StrictFloat, Field(ge=0)] = 0.005


@dataclass
class ScoringSettings:
    __pydantic_config__ = ConfigDict(extra="forbid")

    # One of `training.outcomes` (checked when the settings are loaded).
    ranking_outcome: StrictStr = "emergency_admission"
    # Tier cut-offs as cumulative population fractions (Combined Predictive Model / Kaiser pyramid).
    # In order from the top; each cut-off is the share of the population at or above that tier.
    tiers: Annotated[dict[StrictStr, StrictFloat], AfterValidator(_strictly_increasing_to_one)] = field(
        default_factory=lambda: {"very high": 0.005, "high": 0.05, "moderate": 0.20, "low": 1.0}
    )
    top_reasons: Annotated[StrictInt, Field(ge=1)] = 5
    # A week-on-week change in risk of at least this (absolute probability) counts as rising or falling.
    rising_threshold: Annotated[StrictFloat, Field(gt=0, lt=1)] = 0.02
    # The rising-risk view: each team's people not on its list whose risk rose most (by at least
    # `rising_threshold`) since the scores of `rising_risk_weeks` or more weeks earlier, the group where
    # prevention has most to gain; at most `rising_risk_people` per team (0 turns the view off).
    rising_risk_weeks: Annotated[StrictInt, Field(ge=1, le=52)] = 4
    rising_risk_people: Annotated[StrictInt, Field(ge=0, le=500)] = 20
    # Randomise at the margin: the people ranked within this many places either side of each team's capacity
    # enter a seeded draw, and half of them (drawn) are listed, so offered first; the draw is recorded in the
    # warehouse (`list_draws`) for the evaluation of case management (0 = off: the list is the top capacity).
    randomise_margin: Annotated[StrictInt, Field(ge=0, le=500)] = 0


@dataclass
class MonitoringSettings:
    """Drift and performance monitoring of each weekly run (models.monitoring) and the refit triggers."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    # Population stability index: bins are the training frame's deciles (plus a bin for nulls).
    psi_bins: Annotated[StrictInt, Field(ge=2)] = 10
    # A feature among the model's `top_features` most important, or the score distribution, drifting by at
    # least this PSI raises an alert and triggers a refit (0.1-0.25 is usually read as moderate, > 0.25 major).
    psi_alert: Annotated[StrictFloat, Field(gt=0)] = 0.25
    top_features: Annotated[StrictInt, Field(ge=1)] = 10
    # Any feature, important or not, drifting this far is a change in how the data are recorded (a coding
    # change) rather than in the population: an alert too.
    psi_alert_any_feature: Annotated[StrictFloat, Field(gt=0)] = 1.0
    # Realised performance of the scores issued this many months earlier, on the part of their horizon that
    # has closed.
    realised_lags_months: tuple[Annotated[StrictInt, Field(ge=1)], ...] = (3, 6, 12)
    # Observed/expected events outside this band, and beyond `oe_min_z` standard errors (Poisson) of 1,
    # raises an alert and triggers a refit.
    oe_band: tuple[StrictFloat, StrictFloat] = (0.85, 1.15)
    oe_min_z: Annotated[StrictFloat, Field(ge=0)] = 3.0
    # Realised AUROC below the expected AUROC (from the calibrated scores) by this much.
    auroc_fall: Annotated[StrictFloat, Field(gt=0)] = 0.05
    # Fewer events than this in a closed horizon: no realised check (too noisy to read).
    min_events: Annotated[StrictInt, Field(ge=0)] = 50
    # Request a run of the retrain deployment when an alert fires (the weekly flow).
    trigger_refit: bool = True
