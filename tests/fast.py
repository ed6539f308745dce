"""Training settings for fast test fits, shared by the model and registry tests."""

from __future__ import annotations

from dataclasses import replace

from models.settings import LightGBMParams, TrainingSettings


def fast_training_settings(**changes: object) -> TrainingSettings:
    """One thread: on a shared 2-core machine two OpenMP threads contend badly with other jobs. A higher
    learning rate and fewer bootstrap replicates keep the tests fast; the code paths are the same. Isotonic
    calibration by name: tests exercise it directly, and `auto` has its own test."""
    settings = TrainingSettings(
        bootstrap_samples=50, calibration="isotonic", lgbm=LightGBMParams(num_threads=1, learning_rate=0.1)
    )
    return replace(settings, **changes)  # type: ignore[arg-type]
