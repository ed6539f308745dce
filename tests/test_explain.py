"""Per-person explanations: additivity, agreement with shap, top-n ordering (real fits)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import numpy as np
import polars as pl
import pytest

from models.explain import EXPLANATION_SCALE, check_against_shap, explain
from models.settings import LightGBMParams, TrainingSettings
from models.synthetic import BOOL_FEATURES, CATEGORICAL_FEATURES, FEATURES, NUMERIC_FEATURES, make_training_frame
from models.training import TrainedModel, train_outcome
from tests.fast import latest_split

OUTCOME = "high_cost"
EVAL_DATE = date(2023, 10, 1)


def fast_settings(**changes: object) -> TrainingSettings:
    settings = TrainingSettings(bootstrap_samples=20, lgbm=LightGBMParams(num_threads=1, learning_rate=0.1))
    return replace(settings, **changes)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    return make_training_frame(n_people=4000, seed=31)


@pytest.fixture(scope="module")
def model(frame: pl.DataFrame) -> TrainedModel:
    return train_outcome(
        frame, OUTCOME, FEATURES, CATEGORICAL_FEATURES, latest_split(frame, EVAL_DATE), fast_settings()
    )


@pytest.fixture(scope="module")
def listed(frame: pl.DataFrame, model: TrainedModel) -> pl.DataFrame:
    """The 300 highest-risk people at the evaluation date, as a list a team would get."""
    rows = frame.filter(pl.col("index_date") == EVAL_DATE)
    return rows.with_columns(pl.Series("raw", model.predict_raw_logodds(rows))).sort("raw", descending=True).head(300)


def test_contributions_plus_base_value_equal_the_raw_logodds(model: TrainedModel, listed: pl.DataFrame) -> None:
    table = explain(model, listed, top_n=None)
    assert table.height == listed.height * len(model.feature_cols)
    per_person = table.group_by("person_id", maintain_order=True).agg(
        (pl.col("contribution").sum() + pl.col("base_value").first()).alias("total"), pl.col("logodds").first()
    )
    raw = model.predict_raw_logodds(listed)
    assert per_person.get_column("person_id").to_list() == listed.get_column("person_id").to_list()
    np.testing.assert_allclose(per_person.get_column("total").to_numpy(), raw, rtol=0, atol=1e-9)
    np.testing.assert_allclose(per_person.get_column("logodds").to_numpy(), raw, rtol=0, atol=1e-9)
    assert table.get_column("scale").unique().to_list() == [EXPLANATION_SCALE]
    assert table.get_column("base_value").n_unique() == 1


def test_shap_tree_explainer_agrees_with_pred_contrib(
    frame: pl.DataFrame, model: TrainedModel, listed: pl.DataFrame
) -> None:
    # With categorical features shap delegates to LightGBM's TreeSHAP: this checks shapes, order, base value.
    assert check_against_shap(model, listed, tol=1e-6) < 1e-6
    # Without categorical features shap's own TreeSHAP runs: an independent computation.
    numeric_only = train_outcome(
        frame,
        OUTCOME,
        [*NUMERIC_FEATURES, *BOOL_FEATURES],
        [],
        latest_split(frame, EVAL_DATE),
        fast_settings(explain_sample_rows=100),
    )
    assert check_against_shap(numeric_only, listed, tol=1e-6, independent=True) < 1e-6
    with pytest.raises(ValueError, match="categorical"):
        check_against_shap(model, listed, independent=True)


def test_top_n_are_the_largest_contributions_in_order(model: TrainedModel, listed: pl.DataFrame) -> None:
    top_n = 5
    table = explain(model, listed, top_n=top_n)
    full = explain(model, listed, top_n=None)
    assert table.height == listed.height * top_n
    assert table.group_by("person_id").len().get_column("len").unique().to_list() == [top_n]
    for (person,), rows in table.group_by("person_id"):
        magnitudes = rows.sort("rank").get_column("contribution").abs().to_numpy()
        assert rows.sort("rank").get_column("rank").to_list() == list(range(1, top_n + 1))
        assert (np.diff(magnitudes) <= 0).all()
        everything = full.filter(pl.col("person_id") == person).get_column("contribution").abs().to_numpy()
        np.testing.assert_array_equal(np.sort(everything)[::-1][:top_n], magnitudes)


def test_explanations_only_for_the_rows_passed(model: TrainedModel, listed: pl.DataFrame) -> None:
    few = listed.head(7)
    table = explain(model, few, top_n=3)
    assert table.get_column("person_id").unique(maintain_order=True).to_list() == few.get_column("person_id").to_list()
    empty = explain(model, few.head(0), top_n=3)
    assert empty.height == 0 and empty.columns == table.columns


def test_values_are_shown_as_text(model: TrainedModel, listed: pl.DataFrame) -> None:
    rows = listed.head(20).with_columns(
        pl.lit("home care").alias("social_care_service"), pl.lit(None, dtype=pl.Float64).alias("frailty_index")
    )
    table = explain(model, rows, top_n=None)
    service = table.filter(pl.col("feature") == "social_care_service").get_column("value").unique().to_list()
    frailty = table.filter(pl.col("feature") == "frailty_index").get_column("value").unique().to_list()
    assert service == ["home care"] and frailty == [None]
