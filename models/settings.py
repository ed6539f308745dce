"""Settings owned by the model layer: training, evaluation, scoring and tiers."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class LightGBMParams:
    objective: str = "binary"
    learning_rate: float = 0.05
    num_leaves: int = 31
    max_depth: int = 6
    min_child_samples: int = 50
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    bagging_freq: int = 1
    lambda_l2: float = 1.0
    num_threads: int = 2
    verbose: int = -1


@dataclass
class TrainingSettings:
    outcomes: tuple[str, ...] = ("emergency_admission", "high_cost", "frequent_user", "care_home_admission")
    # Fit index dates are quarterly, and each one's outcome window must end on or before the
    # evaluation index date (no overlap between fit labels and the evaluation period).
    index_spacing_months: int = 3
    min_history_months: int = 6
    max_fit_index_dates: int = 4
    num_boost_round: int = 1000
    early_stopping_rounds: int = 50
    validation_fraction: float = 0.2
    calibration_fraction: float = 0.2
    calibration: str = "isotonic"  # "isotonic" or "platt"
    bootstrap_samples: int = 200
    seed: int = 20261124
    lgbm: LightGBMParams = field(default_factory=LightGBMParams)


@dataclass
class ScoringSettings:
    ranking_outcome: str = "emergency_admission"
    # Tier cut-offs as cumulative population fractions (Combined Predictive Model / Kaiser pyramid).
    tiers: dict[str, float] = field(
        default_factory=lambda: {"very high": 0.005, "high": 0.05, "moderate": 0.20, "low": 1.0}
    )
    top_reasons: int = 5
    explain_scale: str = "log-odds"
