"""Settings owned by the model layer: training, evaluation, scoring and tiers."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class LightGBMParams:
    objective: str = "binary"
    # Smaller, more regularised trees than LightGBM's defaults: the signal is weak and spread over many
    # correlated counts. On the 100,000-person synthetic population these settings beat 31 leaves / 50 rows /
    # 0.8 features / L2 1 by 0.002-0.011 AUROC on every outcome, with a similar number of trees.
    learning_rate: float = 0.05
    num_leaves: int = 15
    max_depth: int = 6
    min_child_samples: int = 100
    feature_fraction: float = 0.5
    bagging_fraction: float = 0.8
    bagging_freq: int = 1
    lambda_l2: float = 10.0
    num_threads: int = 2
    verbose: int = -1


@dataclass
class TrainingSettings:
    # unplanned_care (any A&E attendance or emergency admission) has events enough for small populations.
    outcomes: tuple[str, ...] = (
        "emergency_admission",
        "high_cost",
        "frequent_user",
        "care_home_admission",
        "unplanned_care",
    )
    # Fit index dates are quarterly, and each one's outcome window must end on or before the
    # evaluation index date (no overlap between fit labels and the evaluation period).
    index_spacing_months: int = 3
    min_history_months: int = 6
    max_fit_index_dates: int = 4
    num_boost_round: int = 1000
    early_stopping_rounds: int = 50
    validation_fraction: float = 0.2
    calibration_fraction: float = 0.2
    # "isotonic", "platt", or "auto": isotonic when the calibration rows hold at least `isotonic_min_events`
    # events, else Platt. Isotonic follows any monotone shape but needs many events; with a few hundred its
    # steps are noise (on 100k people, care-home admission with ~50 calibration events: isotonic left a
    # calibration intercept of -0.33 in the evaluation year, Platt -0.18; both equal for common outcomes).
    calibration: str = "auto"
    isotonic_min_events: int = 1000
    bootstrap_samples: int = 200
    seed: int = 20261124
    lgbm: LightGBMParams = field(default_factory=LightGBMParams)
    # Operational cut-offs: PPV, sensitivity and events captured in the top fractions of the ranked list.
    top_fractions: tuple[float, ...] = (0.005, 0.02, 0.05, 0.20)
    # Subgroups smaller than this (or with fewer events / non-events) get no AUROC: too noisy to read.
    subgroup_min_n: int = 100
    subgroup_min_events: int = 10
    # False positive / negative rates by subgroup are taken at this population cut (the "high" tier).
    subgroup_flag_fraction: float = 0.05
    # Mean |contribution| for the model card is computed on at most this many evaluation rows (TreeSHAP cost).
    explain_sample_rows: int = 2000
    # Promotion: a new model replaces the current one only if AUROC >= current - tolerance and
    # Brier <= current + brier tolerance on the same evaluation rows (or when forced).
    promotion_auroc_tolerance: float = 0.005
    promotion_brier_tolerance: float = 0.005


@dataclass
class ScoringSettings:
    ranking_outcome: str = "emergency_admission"
    # Tier cut-offs as cumulative population fractions (Combined Predictive Model / Kaiser pyramid).
    tiers: dict[str, float] = field(
        default_factory=lambda: {"very high": 0.005, "high": 0.05, "moderate": 0.20, "low": 1.0}
    )
    top_reasons: int = 5
    # A week-on-week change in risk of at least this (absolute probability) counts as rising or falling.
    rising_threshold: float = 0.02
    explain_scale: str = "log-odds"
