"""Model registry: immutable versions, promotion rule, exact round trip, model cards (real fits)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import stat
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from models.baselines import ORACLE_NAME, standard_baselines
from models.evaluation import SUBGROUP_COLUMNS, Evaluation, evaluate_outcome, predictor_variant
from models.model_card import baselines_that_rank_better
from models.registry import ModelRegistry, load_current
from models.settings import TrainingSettings
from models.split import TimeSplit
from models.synthetic import make_training_frame
from models.training import TrainedModel, refit_outcome, train_outcome
from tests.fast import fast_training_settings, fit_on_synthetic_frame, latest_split

OUTCOME = "emergency_admission"
EVAL_DATE = date(2023, 10, 1)
CARD_SECTIONS = (
    "Intended use",
    "Not intended for",
    "Training data",
    "Performance",
    "Calibration by decile",
    "Subgroups",
    "What drives the score",
    "Known limitations",
    "Settings",
)


def fast_settings(**changes: object) -> TrainingSettings:
    return fast_training_settings(**{"bootstrap_samples": 30, "calibration": "auto", **changes})


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    return make_training_frame(n_people=4000, seed=21)


@pytest.fixture(scope="module")
def good_model(frame: pl.DataFrame) -> TrainedModel:
    return fit_on_synthetic_frame(frame, OUTCOME, EVAL_DATE)


@pytest.fixture(scope="module")
def weak_model(frame: pl.DataFrame) -> TrainedModel:
    # Noise and sex only: clearly worse than the full model on AUROC and Brier.
    return train_outcome(
        frame, OUTCOME, ["noise_1", "noise_2", "sex"], ["sex"], latest_split(frame, EVAL_DATE), fast_settings()
    )


@pytest.fixture(scope="module")
def good_evaluation(frame: pl.DataFrame, good_model: TrainedModel) -> Evaluation:
    return evaluate_outcome(frame, good_model, subgroup_cols=SUBGROUP_COLUMNS)


@pytest.fixture(scope="module")
def weak_evaluation(frame: pl.DataFrame, weak_model: TrainedModel) -> Evaluation:
    return evaluate_outcome(frame, weak_model)


@pytest.fixture(scope="module")
def eval_rows(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.filter((pl.col("index_date") == EVAL_DATE) & pl.col(OUTCOME).is_not_null())


def folder_digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def test_first_save_is_v0001_and_becomes_current(
    tmp_path: Path, good_model: TrainedModel, good_evaluation: Evaluation
) -> None:
    registry = ModelRegistry(tmp_path)
    decision = registry.save(good_model, good_evaluation, write_card=False)
    assert decision.version == "v0001" and decision.promoted and decision.current_version is None
    assert registry.current_version(OUTCOME) == "v0001"
    folder = registry.version_dir(OUTCOME, "v0001")
    for name in ("model.txt", "calibrator.json", "settings.json", "features.json", "training_summary.json",
                 "metrics.json", "promotion.json", "manifest.json"):  # fmt: skip
        assert (folder / name).is_file(), name
    assert json.loads((folder / "promotion.json").read_text())["promoted"] is True
    assert not (folder / "model.txt").stat().st_mode & stat.S_IWUSR  # written read-only


def test_versions_are_never_overwritten(
    tmp_path: Path,
    good_model: TrainedModel,
    good_evaluation: Evaluation,
    weak_model: TrainedModel,
    weak_evaluation: Evaluation,
) -> None:
    registry = ModelRegistry(tmp_path)
    registry.save(good_model, good_evaluation, write_card=False)
    before = folder_digest(registry.version_dir(OUTCOME, "v0001"))
    with pytest.raises(FileExistsError):
        registry.save(weak_model, weak_evaluation, version="v0001", write_card=False)
    assert folder_digest(registry.version_dir(OUTCOME, "v0001")) == before
    assert registry.current_version(OUTCOME) == "v0001"
    assert not [p for p in registry.outcome_dir(OUTCOME).iterdir() if p.name.startswith(".staging")]
    # The next automatic id follows the existing ones, in order.
    assert registry.save(good_model, good_evaluation, write_card=False).version == "v0002"
    assert registry.versions(OUTCOME) == ["v0001", "v0002"]


def test_altered_version_fails_its_hash_check(
    tmp_path: Path, good_model: TrainedModel, good_evaluation: Evaluation
) -> None:
    registry = ModelRegistry(tmp_path)
    registry.save(good_model, good_evaluation, write_card=False)
    calibrator = registry.version_dir(OUTCOME, "v0001") / "calibrator.json"
    calibrator.chmod(0o644)
    calibrator.write_text(calibrator.read_text() + " ")  # a change that leaves the JSON valid
    with pytest.raises(ValueError, match="does not match its recorded hash"):
        registry.load(OUTCOME, "v0001")


def test_promotion_rule(
    tmp_path: Path,
    frame: pl.DataFrame,
    good_model: TrainedModel,
    good_evaluation: Evaluation,
    weak_model: TrainedModel,
    weak_evaluation: Evaluation,
) -> None:
    registry = ModelRegistry(tmp_path)
    registry.save(good_model, good_evaluation, eval_frame=frame, write_card=False)

    worse = registry.save(weak_model, weak_evaluation, eval_frame=frame, write_card=False)
    assert not worse.promoted and worse.current_version == "v0001"
    assert "worse" in worse.reason and "candidate's evaluation rows" in worse.basis
    assert worse.candidate["auroc"] < worse.current["auroc"]  # type: ignore[index, operator]
    assert registry.current_version(OUTCOME) == "v0001"
    recorded = json.loads((registry.version_dir(OUTCOME, worse.version) / "promotion.json").read_text())
    assert recorded["promoted"] is False and recorded["reason"] == worse.reason

    equal = registry.save(good_model, good_evaluation, eval_frame=frame, write_card=False)
    assert equal.promoted and registry.current_version(OUTCOME) == equal.version

    forced = registry.save(weak_model, weak_evaluation, eval_frame=frame, force_promotion=True, write_card=False)
    assert forced.promoted and forced.forced and "forced" in forced.reason
    assert registry.current_version(OUTCOME) == forced.version

    # Without an evaluation frame the stored metrics are compared, and the decision says so.
    better_than_weak = registry.save(good_model, good_evaluation, write_card=False)
    assert better_than_weak.promoted and better_than_weak.basis.startswith("stored metrics")

    # Rolling back by hand is logged.
    registry.promote(OUTCOME, "v0001", reason="rollback")
    assert registry.current_version(OUTCOME) == "v0001"
    log = [json.loads(line) for line in (registry.outcome_dir(OUTCOME) / "promotions.jsonl").read_text().splitlines()]
    assert [entry["promoted"] for entry in log] == [True, False, True, True, True, True]


def test_load_current_round_trips_predictions_exactly(
    tmp_path: Path, good_model: TrainedModel, good_evaluation: Evaluation, eval_rows: pl.DataFrame
) -> None:
    ModelRegistry(tmp_path).save(good_model, good_evaluation, write_card=False)
    loaded = load_current(tmp_path, OUTCOME)
    assert np.array_equal(loaded.predict_proba(eval_rows), good_model.predict_proba(eval_rows))
    assert np.array_equal(loaded.predict_raw_logodds(eval_rows), good_model.predict_raw_logodds(eval_rows))
    assert np.array_equal(loaded.contributions(eval_rows.head(50)), good_model.contributions(eval_rows.head(50)))
    assert loaded.settings == good_model.settings
    assert loaded.categories_ == good_model.categories_
    stored = ModelRegistry(tmp_path).load_evaluation(OUTCOME, "v0001")
    assert stored.results == json.loads(json.dumps(good_evaluation.results))
    assert stored.subgroups == json.loads(json.dumps(good_evaluation.subgroups))
    assert stored.importance == good_evaluation.importance
    assert loaded.training_summary_ == good_model.training_summary_
    assert loaded.split_ == good_model.split_ and isinstance(loaded.split_, TimeSplit)


def test_the_refit_learns_from_the_evaluation_date_scores_and_is_checked_while_promotion_compares_evaluated_models(
    tmp_path: Path, frame: pl.DataFrame, good_model: TrainedModel, good_evaluation: Evaluation, eval_rows: pl.DataFrame
) -> None:
    dates = sorted(frame["index_date"].unique().to_list())
    base = latest_split(frame, EVAL_DATE)
    split = TimeSplit(base.fit_index_dates, EVAL_DATE, 12, tuple(dates[-4:]))
    evaluated = train_outcome(
        frame, OUTCOME, good_model.feature_cols, good_model.categorical_cols, split, fast_settings()
    )
    refit, check = refit_outcome(frame, evaluated)
    assert refit is not None and check["refitted"]
    assert check["refit_index_dates"] == [str(d) for d in dates[-4:]] and check["check_index_date"] == str(EVAL_DATE)
    assert check["rows"] == split.refit_rows(frame, OUTCOME).height
    assert check["auroc_refit"] >= check["auroc_evaluated"] - check["auroc_tolerance"]
    assert refit.split_ == split and refit.categories_ == evaluated.categories_
    assert refit.training_summary_["calibration_in_the_large"]["index_date"] == str(EVAL_DATE)
    assert not np.array_equal(refit.predict_raw_logodds(eval_rows), evaluated.predict_raw_logodds(eval_rows))

    registry = ModelRegistry(tmp_path)
    evaluation = evaluate_outcome(frame, evaluated)
    evaluated.training_summary_["refit"] = check
    registry.save(evaluated, evaluation, eval_frame=frame, write_card=False, refit=refit)
    folder = registry.version_dir(OUTCOME, "v0001")
    assert (folder / "model.txt").read_text() == refit.booster_.model_to_string()
    assert (folder / "evaluated_model.txt").read_text() == evaluated.booster_.model_to_string()
    assert np.array_equal(registry.load(OUTCOME, "v0001").predict_proba(eval_rows), refit.predict_proba(eval_rows))
    again = registry.load(OUTCOME, "v0001", evaluated=True)
    assert np.array_equal(again.predict_proba(eval_rows), evaluated.predict_proba(eval_rows))
    # The same candidate again is exactly as good as the current one: promotion scored the current version's
    # evaluated model, not its refit (which was fitted on these evaluation rows and would look better).
    decision = registry.save(evaluated, evaluation, eval_frame=frame, write_card=False, refit=refit)
    assert decision.promoted and decision.current == decision.candidate


def test_load_current_without_a_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no current model"):
        load_current(tmp_path, OUTCOME)


def test_model_card_files_and_sections(
    tmp_path: Path, frame: pl.DataFrame, good_model: TrainedModel, good_evaluation: Evaluation
) -> None:
    baselines = standard_baselines(
        OUTCOME,
        prior_use_col="emergency_admissions_12m",
        classic_numeric_cols=["age", "emergency_admissions_12m", "ltc_count"],
        classic_categorical_cols=["sex"],
        true_probability_col=f"true_p_{OUTCOME}",
    )
    evaluation = evaluate_outcome(frame, good_model, baselines, subgroup_cols=SUBGROUP_COLUMNS)
    registry = ModelRegistry(tmp_path)
    decision = registry.save(good_model, evaluation)
    folder = registry.version_dir(OUTCOME, decision.version)
    for name in ("roc.png", "precision_recall.png", "calibration.png", "gains_lift.png", "feature_contributions.png",
                 "model_card.md", "model_card.html", "baselines.json", "comparison.csv"):  # fmt: skip
        assert (folder / name).is_file() and (folder / name).stat().st_size > 0, name
    markdown = (folder / "model_card.md").read_text()
    html = (folder / "model_card.html").read_text()
    for section in CARD_SECTIONS:
        assert f"## {section}" in markdown, section
        assert f"<h2>{section}</h2>" in html, section
    for text in ("last year&#x27;s top users", "oracle (true probability)", "Obermeyer", "SPARRA", "comparison groups"):
        assert text in html, text
    assert "![ROC curve](roc.png)" in markdown
    assert html.count("data:image/png;base64,") == 5  # self-contained HTML
    comparison = pl.read_csv(folder / "comparison.csv")
    assert set(comparison.get_column("model")) == set(evaluation.results)
    # Each evaluation is written once: the model's in metrics.json, the baselines' in baselines.json.
    assert set(json.loads((folder / "baselines.json").read_text())) == set(evaluation.baselines)
    assert json.loads((folder / "metrics.json").read_text())["evaluation"] == json.loads(json.dumps(evaluation.model))


def test_the_card_shows_the_effect_of_protected_characteristics_as_predictors(
    tmp_path: Path, frame: pl.DataFrame, good_model: TrainedModel, good_evaluation: Evaluation
) -> None:
    features = [f for f in good_model.feature_cols if f != "ethnicity_group"]
    categorical = [c for c in good_model.categorical_cols if c != "ethnicity_group"]
    without = train_outcome(frame, OUTCOME, features, categorical, latest_split(frame, EVAL_DATE), fast_settings())
    without_evaluation = evaluate_outcome(frame, without, subgroup_cols=SUBGROUP_COLUMNS)
    evaluation = dataclasses.replace(
        good_evaluation,
        predictor_choice=[
            predictor_variant("as configured", {"ethnicity": True, "deprivation": True}, good_evaluation),
            predictor_variant("without ethnicity as a predictor", {"ethnicity": False}, without_evaluation),
        ],
    )
    registry = ModelRegistry(tmp_path)
    registry.save(good_model, evaluation)
    stored = registry.load_evaluation(OUTCOME, "v0001")
    assert stored.predictor_choice == json.loads(json.dumps(evaluation.predictor_choice))
    markdown = (registry.version_dir(OUTCOME, "v0001") / "model_card.md").read_text()
    assert "## Protected characteristics as predictors" in markdown
    assert "FPR / FNR: without ethnicity as a predictor" in markdown
    groups = {s["group"] for s in evaluation.predictor_choice[0]["subgroups"] if s["grouping"] == "ethnicity_group"}
    assert len(groups) >= 4
    # The two models flag different people, so at least one group's error rates differ (a real effect shown).
    rates = [
        {(s["grouping"], s["group"]): s["false_positive_rate"] for s in variant["subgroups"]}
        for variant in evaluation.predictor_choice
    ]
    assert rates[0].keys() == rates[1].keys() and rates[0] != rates[1]


def _evaluation(auroc: float | None, events: int = 40) -> dict:
    return {"events": events, "metrics": {"auroc": {"estimate": auroc, "lo": None, "hi": None}}}


def test_the_card_warns_when_a_practical_baseline_ranks_better_but_not_about_the_oracle() -> None:
    evaluations = {
        "lightgbm": _evaluation(0.74),
        "logistic (classic predictors)": _evaluation(0.92),
        "last year's top users": _evaluation(0.50),
        ORACLE_NAME: _evaluation(0.93),
    }
    warnings = baselines_that_rank_better(evaluations)
    assert len(warnings) == 1
    assert "'logistic (classic predictors)'" in warnings[0] and "0.920 against 0.740" in warnings[0]
    assert baselines_that_rank_better({"lightgbm": _evaluation(0.9), ORACLE_NAME: _evaluation(0.95)}) == []
