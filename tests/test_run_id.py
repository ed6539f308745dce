"""The run id: the same inputs give the same id, and any input that could change an output changes it."""

from __future__ import annotations

from datetime import date

from pipelines.scoring import run_id_for

AS_OF = date(2026, 11, 2)
MODELS = {"emergency_admission": "model.txt=aa;calibrator.json=bb"}
BATCHES = {"b0001": "c1", "b0002": "c2"}
SETTINGS: dict[str, object] = {"scoring": {"tiers": {"high": 0.05, "rest": 1.0}}}


def test_the_same_inputs_give_the_same_run_id() -> None:
    assert run_id_for(AS_OF, MODELS, BATCHES, SETTINGS) == run_id_for(AS_OF, dict(MODELS), dict(BATCHES), SETTINGS)


def test_two_populations_with_the_same_batch_ids_get_different_run_ids() -> None:
    # Before, the id hashed only the as-of date, model version names and batch ids: two different
    # populations, each in batches b0001 and b0002 scored by each registry's v0001, shared one id.
    other_population = {"b0001": "d1", "b0002": "d2"}
    assert run_id_for(AS_OF, MODELS, BATCHES, SETTINGS) != run_id_for(AS_OF, MODELS, other_population, SETTINGS)


def test_a_retrained_model_or_other_settings_change_the_run_id() -> None:
    base = run_id_for(AS_OF, MODELS, BATCHES, SETTINGS)
    retrained = {"emergency_admission": "model.txt=ff;calibrator.json=bb"}
    assert run_id_for(AS_OF, retrained, BATCHES, SETTINGS) != base
    assert run_id_for(AS_OF, MODELS, BATCHES, {"scoring": {"tiers": {"high": 0.1, "rest": 1.0}}}) != base
    assert run_id_for(date(2026, 11, 9), MODELS, BATCHES, SETTINGS) != base
