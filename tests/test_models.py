"""Training, time split, calibration, metrics and baselines on a seeded synthetic frame (real fits)."""

from __future__ import annotations

import io
import json
from datetime import date

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from data_contracts.dates import add_months
from models.baselines import standard_baselines
from models.calibration import IsotonicCalibrator, PlattCalibrator, calibration_kind, calibrator_from_dict
from models.evaluation import MODEL_NAME, SUBGROUP_COLUMNS, Evaluation, evaluate_outcome, print_comparison
from models.metrics import evaluate, subgroup_metrics, top_label, wilson_interval
from models.split import CALIBRATION, TRAIN, VALIDATION, TimeSplit, assign_person_parts, person_parts
from models.synthetic import CATEGORICAL_FEATURES, FEATURES, make_training_frame
from models.training import TrainedModel, train_outcome
from tests.fast import fast_training_settings, fit_on_synthetic_frame, latest_split

OUTCOME = "emergency_admission"
EVAL_DATE = date(2023, 10, 1)


fast_settings = fast_training_settings


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    return make_training_frame(n_people=6000, seed=11)


@pytest.fixture(scope="module")
def model(frame: pl.DataFrame) -> TrainedModel:
    return fit_on_synthetic_frame(frame, OUTCOME, EVAL_DATE)


@pytest.fixture(scope="module")
def evaluation(frame: pl.DataFrame, model: TrainedModel) -> Evaluation:
    return evaluate_outcome(frame, model, subgroup_cols=SUBGROUP_COLUMNS)


@pytest.fixture(scope="module")
def eval_rows(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.filter((pl.col("index_date") == EVAL_DATE) & pl.col(OUTCOME).is_not_null())


# ------------------------------------------------------------------------------------------ time split


def test_add_months_clamps_to_month_end() -> None:
    assert add_months(date(2023, 1, 31), 1) == date(2023, 2, 28)
    assert add_months(date(2024, 1, 31), 1) == date(2024, 2, 29)
    assert add_months(date(2022, 10, 1), 12) == date(2023, 10, 1)
    assert add_months(date(2023, 3, 15), -3) == date(2022, 12, 15)


@pytest.mark.parametrize("horizon", [3, 6, 12])
def test_fit_index_dates_never_overlap_the_eval_outcome_window(horizon: int) -> None:
    quarterly = [add_months(date(2021, 1, 1), 3 * i) for i in range(12)]
    settings = fast_settings(max_fit_index_dates=4)
    for eval_date in quarterly[4:]:
        fit = list(
            TimeSplit.latest_eligible(quarterly, eval_date, horizon, settings.max_fit_index_dates).fit_index_dates
        )
        assert fit == sorted(fit) and 1 <= len(fit) <= 4
        assert all(add_months(d, horizon) <= eval_date for d in fit)
        # The latest eligible dates are kept: the next quarter would overlap the evaluation window.
        later = [d for d in quarterly if d > fit[-1]]
        assert all(add_months(d, horizon) > eval_date for d in later)


def test_split_excludes_dates_inside_the_window_and_raises_when_nothing_is_eligible() -> None:
    dates = [date(2022, 1, 1), date(2022, 10, 1), date(2023, 4, 1), date(2023, 10, 1)]
    split = TimeSplit.latest_eligible(dates, date(2023, 10, 1), 12, 4)
    assert split.fit_index_dates == (date(2022, 1, 1), date(2022, 10, 1))
    with pytest.raises(ValueError, match="no index date"):
        TimeSplit.latest_eligible(dates, date(2022, 12, 1), 12, 4)
    with pytest.raises(ValueError, match="overlap the evaluation period"):
        TimeSplit((date(2023, 4, 1),), date(2023, 10, 1), 12)


def test_a_split_round_trips_through_its_stored_form() -> None:
    split = TimeSplit((date(2022, 1, 1), date(2022, 4, 1)), date(2023, 4, 1), 12)
    assert TimeSplit.from_dict(json.loads(json.dumps(split.to_dict()))) == split
    assert split.index_dates == [date(2022, 1, 1), date(2022, 4, 1), date(2023, 4, 1)]


def test_a_planned_split_fits_on_dates_with_history_and_closed_windows() -> None:
    settings = fast_settings(index_spacing_months=3, min_history_months=6, max_fit_index_dates=4)
    split = TimeSplit.planned(date(2026, 11, 1), date(2023, 11, 1), 12, settings)
    assert split.eval_index_date == date(2025, 11, 1)
    assert split.fit_index_dates == (date(2024, 5, 1), date(2024, 8, 1), date(2024, 11, 1))  # 6 months of history
    # The model that scores is refitted on the latest labelled dates, the evaluation date included.
    assert split.refit_index_dates == (date(2025, 2, 1), date(2025, 5, 1), date(2025, 8, 1), date(2025, 11, 1))
    assert split.index_dates[-1] == split.eval_index_date and len(split.index_dates) == 7
    assert TimeSplit.from_dict(json.loads(json.dumps(split.to_dict()))) == split
    off = TimeSplit.planned(date(2026, 11, 1), date(2023, 11, 1), 12, fast_settings(refit_on_all_labelled=False))
    assert off.refit_index_dates == ()
    with pytest.raises(ValueError, match="refit index dates must have labels"):
        TimeSplit(split.fit_index_dates, split.eval_index_date, 12, (date(2026, 2, 1),))
    with pytest.raises(ValueError, match="not enough history"):
        TimeSplit.planned(date(2026, 11, 1), date(2025, 1, 1), 12, settings)


# ------------------------------------------------------------------------------------------ grouped split


def test_grouped_split_keeps_each_person_on_one_side(frame: pl.DataFrame) -> None:
    parts = assign_person_parts(frame.get_column("person_id"), 0.2, 0.2, seed=3)
    by_person = (
        pl.DataFrame({"person_id": frame.get_column("person_id"), "part": parts})
        .group_by("person_id")
        .agg(pl.col("part").n_unique().alias("parts"), pl.col("part").first())
    )
    assert by_person.get_column("parts").max() == 1
    shares = by_person.get_column("part").value_counts(normalize=True)
    share = dict(zip(shares.get_column("part").to_list(), shares.get_column("proportion").to_list(), strict=True))
    assert share[VALIDATION] == pytest.approx(0.2, abs=0.01)
    assert share[CALIBRATION] == pytest.approx(0.2, abs=0.01)
    assert share[TRAIN] == pytest.approx(0.6, abs=0.01)
    # Deterministic for a seed, different for another.
    assert np.array_equal(parts, assign_person_parts(frame.get_column("person_id"), 0.2, 0.2, seed=3))
    assert not np.array_equal(parts, assign_person_parts(frame.get_column("person_id"), 0.2, 0.2, seed=4))


def test_trained_model_parts_are_disjoint_in_people_and_use_only_fit_dates(model: TrainedModel) -> None:
    summary = model.training_summary_
    parts = summary["parts"]
    assert sum(part["people"] for part in parts.values()) == summary["fit_people"]
    assert sum(part["rows"] for part in parts.values()) == summary["fit_rows"]
    assert model.split_ is not None and model.split_.eval_index_date == EVAL_DATE
    fit_dates = model.split_.fit_index_dates
    assert all(add_months(d, model.split_.horizon_months) <= EVAL_DATE for d in fit_dates)
    assert date(2023, 4, 1) not in fit_dates  # its window overlaps the evaluation period
    for part in parts.values():
        assert {date.fromisoformat(d) for d in part["index_dates"]} <= set(fit_dates)
    assert summary["best_iteration"] >= 1 and summary["train_seconds"] > 0


def test_null_labels_are_dropped_for_evaluation(
    model: TrainedModel, evaluation: Evaluation, eval_rows: pl.DataFrame, frame: pl.DataFrame
) -> None:
    at_eval = frame.filter(pl.col("index_date") == EVAL_DATE)
    assert at_eval.get_column(OUTCOME).null_count() > 0
    assert evaluation.model["n"] == eval_rows.height == model.training_summary_["eval_rows"]


# ------------------------------------------------------------------------------------------ model quality


def test_model_beats_baselines_and_stays_below_the_oracle(frame: pl.DataFrame, model: TrainedModel) -> None:
    baselines = standard_baselines(
        OUTCOME,
        prior_use_col="emergency_admissions_12m",
        classic_numeric_cols=["age", "emergency_admissions_12m", "ltc_count"],
        classic_categorical_cols=["sex"],
        true_probability_col=f"true_p_{OUTCOME}",
    )
    table = evaluate_outcome(frame, model, baselines).comparison()
    assert table.columns == ["outcome", "model", "metric", "estimate", "lo", "hi"]

    def metric(name: str, which: str) -> float:
        return table.filter((pl.col("model") == name) & (pl.col("metric") == which)).get_column("estimate").item()

    ours, last_year, logistic, oracle = (
        "lightgbm",
        "last year's top users",
        "logistic (classic predictors)",
        ("oracle (true probability)"),
    )
    assert metric(ours, "auroc") > metric(last_year, "auroc") + 0.05  # "beat by a wide margin"
    assert metric(ours, "auroc") > metric(logistic, "auroc")
    assert metric(oracle, "auroc") > metric(ours, "auroc")
    assert metric(ours, "auprc") > metric(last_year, "auprc")
    assert metric(ours, "brier") < metric(last_year, "brier")
    assert metric(ours, f"ppv_{top_label(0.05)}") > metric(last_year, f"ppv_{top_label(0.05)}")

    console_output = io.StringIO()
    from rich.console import Console

    print_comparison(table, console=Console(file=console_output, width=200))
    assert "last year's top users" in console_output.getvalue()


def test_calibrated_model_has_slope_near_one(evaluation: Evaluation) -> None:
    metrics = evaluation.model["metrics"]
    assert 0.8 <= metrics["calibration_slope"]["estimate"] <= 1.2
    assert abs(metrics["calibration_intercept"]["estimate"]) < 0.3
    assert metrics["mean_predicted"]["estimate"] == pytest.approx(metrics["observed_rate"]["estimate"], abs=0.02)


def test_isotonic_calibration_never_predicts_exactly_zero_or_one(model: TrainedModel, eval_rows: pl.DataFrame) -> None:
    p = model.predict_proba(eval_rows)
    assert (p > 0).all() and (p < 1).all()
    # Strictly increasing in the raw score: ranking by raw log-odds never contradicts the calibrated
    # probability, and people with different raw scores never read the same risk.
    raw = model.predict_raw_logodds(eval_rows)
    order = np.argsort(raw, kind="stable")
    differs = np.diff(raw[order]) > 0
    assert differs.sum() > 1000
    assert (np.diff(p[order])[differs] > 0).all()
    assert (np.diff(p[order])[~differs] == 0).all()


def test_isotonic_calibration_is_smooth_and_keeps_rising_beyond_its_data(
    model: TrainedModel, eval_rows: pl.DataFrame
) -> None:
    calibrator = model.calibrator_
    assert isinstance(calibrator, IsotonicCalibrator) and calibrator.x_thresholds_ is not None
    # The top 50 by raw score read 50 different risks (step isotonic gave them one value).
    raw = np.sort(model.predict_raw_logodds(eval_rows))[::-1]
    assert len(np.unique(calibrator.predict(raw[:50]))) == 50
    # Beyond the first and last centroid the map goes on rising, at the Platt slope in log-odds.
    low, high = calibrator.x_thresholds_[0], calibrator.x_thresholds_[-1]
    grid = np.r_[low - 5, low - 1, np.linspace(low, high, 200), high + 1, high + 5]
    p = calibrator.predict(grid)
    assert (np.diff(p) > 0).all() and (p > 0).all() and (p < 1).all()
    logit = np.log(p / (1 - p))
    assert calibrator.tail_slope_ is not None and calibrator.tail_slope_ > 0
    assert logit[-1] - logit[-2] == pytest.approx(4 * calibrator.tail_slope_, rel=1e-9)
    # Continuous: no jump anywhere on a fine grid (the largest step is small beside the range).
    fine = calibrator.predict(np.linspace(low - 1, high + 1, 20001))
    assert np.max(np.diff(fine)) < 0.01


def test_calibrators_round_trip_exactly_and_legacy_steps_still_load(model: TrainedModel) -> None:
    raw = np.linspace(-8, 3, 500)
    stored = json.loads(json.dumps(model.calibrator_.to_dict()))
    again = calibrator_from_dict(stored)
    assert np.array_equal(again.predict(raw), model.calibrator_.predict(raw))
    legacy = calibrator_from_dict(
        {"kind": "isotonic", "prior_events": 0.5, "prior_rows": 1.0, "x": [-3.0, -1.0, 0.0], "y": [0.1, 0.1, 0.4]}
    )
    assert legacy.predict(np.array([-5.0, -2.0, -0.5, 2.0])).tolist() == [0.1, 0.1, 0.25, 0.4]


def test_calibration_in_the_large_matches_the_events_of_the_newest_fit_date(frame: pl.DataFrame) -> None:
    split = latest_split(frame, EVAL_DATE)
    settings = fast_settings(calibration_drift_sd=1e6)  # a flat prior: the shift follows the data alone
    model = train_outcome(frame, OUTCOME, FEATURES, CATEGORICAL_FEATURES, split, settings)
    large = model.training_summary_["calibration_in_the_large"]
    newest = max(split.fit_index_dates)
    assert large["index_date"] == str(newest)
    parts = person_parts(split.fit_rows(frame, OUTCOME), settings)
    # Every row of the newest date held out from growing the trees: the calibration and validation people.
    rows = pl.concat([parts[CALIBRATION], parts[VALIDATION]]).filter(pl.col("index_date") == newest)
    assert rows.height == large["rows"] and rows[OUTCOME].sum() == large["events"]
    # Unshrunk, the newest period's risks add up to its events exactly; shrunk, they move less far.
    assert model.predict_proba(rows).sum() == pytest.approx(large["events"], rel=1e-6)
    assert large["shift_logodds"] != 0.0 and large["expected_before"] != pytest.approx(large["events"], rel=1e-3)
    shrunk = train_outcome(frame, OUTCOME, FEATURES, CATEGORICAL_FEATURES, split, fast_settings())
    shrunk_shift = shrunk.training_summary_["calibration_in_the_large"]["shift_logodds"]
    assert 0 < abs(shrunk_shift) < abs(large["shift_logodds"])
    off = train_outcome(
        frame, OUTCOME, FEATURES, CATEGORICAL_FEATURES, split, fast_settings(recalibrate_in_the_large=False)
    )
    assert off.training_summary_["calibration_in_the_large"] is None and off.calibrator_.offset_ == 0.0


def test_platt_is_the_unpenalised_logistic_fit_and_its_prior_shrinks_towards_the_raw_probabilities() -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(3)
    raw = rng.normal(-2.5, 1.0, 3000)
    y = (rng.random(3000) < 1 / (1 + np.exp(-(0.4 + 1.6 * raw)))).astype(float)
    plain = PlattCalibrator().fit(raw, y)
    reference = LogisticRegression(C=np.inf, max_iter=1000, tol=1e-10).fit(raw.reshape(-1, 1), y)
    assert plain.slope_ == pytest.approx(float(reference.coef_[0, 0]), abs=1e-5)
    assert plain.intercept_ == pytest.approx(float(reference.intercept_[0]), abs=1e-5)
    few = slice(0, 150)  # about 15 events
    unshrunk = PlattCalibrator().fit(raw[few], y[few])
    shrunk = PlattCalibrator(prior_strength=10.0).fit(raw[few], y[few])
    assert abs(shrunk.slope_ - 1) < abs(unshrunk.slope_ - 1)


def test_too_few_calibration_events_pool_the_validation_part_and_warn() -> None:
    small = make_training_frame(n_people=500, seed=5)
    model = train_outcome(
        small,
        OUTCOME,
        FEATURES,
        CATEGORICAL_FEATURES,
        latest_split(small, EVAL_DATE),
        fast_settings(calibration="auto", calibration_min_events=100),
    )
    summary = model.training_summary_
    parts = summary["parts"]
    assert parts["calibration"]["events"] < 100
    assert summary["calibration_rows"] == parts["calibration"]["rows"] + parts["validation"]["rows"]
    assert summary["calibration_events"] == parts["calibration"]["events"] + parts["validation"]["events"]
    assert summary["calibration"] == "platt" and "approximate" in summary["calibration_warning"]
    assert isinstance(model.calibrator_, PlattCalibrator) and model.calibrator_.prior_strength == 10.0
    plenty = train_outcome(
        small,
        OUTCOME,
        FEATURES,
        CATEGORICAL_FEATURES,
        latest_split(small, EVAL_DATE),
        fast_settings(calibration="auto", calibration_min_events=1),
    )
    assert plenty.training_summary_["calibration_warning"] is None
    assert plenty.training_summary_["calibration_rows"] == parts["calibration"]["rows"]


def test_platt_calibration_also_calibrates(frame: pl.DataFrame) -> None:
    platt = train_outcome(
        frame,
        OUTCOME,
        FEATURES,
        CATEGORICAL_FEATURES,
        latest_split(frame, EVAL_DATE),
        fast_settings(calibration="platt"),
    )
    slope = evaluate_outcome(frame, platt).model["metrics"]["calibration_slope"]["estimate"]
    assert 0.8 <= slope <= 1.2


def test_auto_calibration_is_isotonic_only_with_enough_events(frame: pl.DataFrame) -> None:
    assert calibration_kind("auto", 999, 1000) == "platt"
    assert calibration_kind("auto", 1000, 1000) == "isotonic"
    assert calibration_kind("platt", 5000, 1000) == "platt"
    rare = train_outcome(
        frame,
        OUTCOME,
        FEATURES,
        CATEGORICAL_FEATURES,
        latest_split(frame, EVAL_DATE),
        fast_settings(calibration="auto"),
    )
    events = rare.training_summary_["parts"]["calibration"]["events"]
    assert events < 1000 and rare.training_summary_["calibration"] == "platt"
    assert isinstance(rare.calibrator_, PlattCalibrator)
    plenty = train_outcome(
        frame,
        OUTCOME,
        FEATURES,
        CATEGORICAL_FEATURES,
        latest_split(frame, EVAL_DATE),
        fast_settings(calibration="auto", isotonic_min_events=1),
    )
    assert isinstance(plenty.calibrator_, IsotonicCalibrator)


def test_same_seed_gives_identical_predictions(
    frame: pl.DataFrame, model: TrainedModel, evaluation: Evaluation, eval_rows: pl.DataFrame
) -> None:
    again = train_outcome(
        frame, OUTCOME, FEATURES, CATEGORICAL_FEATURES, latest_split(frame, EVAL_DATE), fast_settings()
    )
    assert np.array_equal(again.predict_proba(eval_rows), model.predict_proba(eval_rows))
    assert evaluate_outcome(frame, again, subgroup_cols=SUBGROUP_COLUMNS) == evaluation


def test_unseen_and_missing_categories_score_as_missing(model: TrainedModel, eval_rows: pl.DataFrame) -> None:
    rows = eval_rows.head(200)
    unseen = rows.with_columns(pl.lit("brand new service").alias("social_care_service"), pl.lit("X").alias("sex"))
    missing = rows.with_columns(
        pl.lit(None, dtype=pl.String).alias("social_care_service"), pl.lit(None, dtype=pl.String).alias("sex")
    )
    p_unseen = model.predict_proba(unseen)
    assert np.isfinite(p_unseen).all()
    assert np.array_equal(p_unseen, model.predict_proba(missing))
    assert model.categories_["sex"] == ["F", "M"]


def test_scoring_needs_every_feature(model: TrainedModel, eval_rows: pl.DataFrame) -> None:
    with pytest.raises(ValueError, match="lacks feature columns"):
        model.predict_proba(eval_rows.drop("frailty_index"))


def test_subgroup_metrics_cover_every_group(evaluation: Evaluation) -> None:
    table = pl.DataFrame(evaluation.subgroups)
    assert set(table.get_column("grouping").unique()) == set(SUBGROUP_COLUMNS)
    for grouping in SUBGROUP_COLUMNS:
        part = table.filter(pl.col("grouping") == grouping)
        assert part.get_column("n").sum() == evaluation.model["n"]
    rates = table.select("false_positive_rate", "false_negative_rate").to_numpy()
    assert np.nanmin(rates) >= 0 and np.nanmax(rates) <= 1


def test_subgroup_error_rates_carry_wilson_intervals(evaluation: Evaluation) -> None:
    lo, hi = wilson_interval(5, 100)
    assert lo == pytest.approx(0.02154, abs=1e-4) and hi == pytest.approx(0.11175, abs=1e-4)
    assert wilson_interval(0, 20)[0] == 0.0 and 0 < wilson_interval(0, 20)[1] < 0.2
    widths = {}
    for row in evaluation.subgroups:
        for rate in ("false_positive_rate", "false_negative_rate"):
            if row[rate] is None:
                continue
            assert row[f"{rate}_lo"] <= row[rate] <= row[f"{rate}_hi"]
        widths[(row["grouping"], row["group"])] = (
            row["n"],
            row["false_positive_rate_hi"] - row["false_positive_rate_lo"],
        )
    sexes = sorted(v for k, v in widths.items() if k[0] == "sex")
    ages = sorted(v for k, v in widths.items() if k[0] == "age_band")
    # Bigger groups have narrower intervals.
    assert max(w for _, w in sexes) < max(w for _, w in ages)


def test_subgroup_auroc_is_null_for_small_or_single_class_groups() -> None:
    rng = np.random.default_rng(0)
    n = 5000
    p = rng.beta(1, 6, n)
    y = (rng.random(n) < p).astype(float)
    group = np.where(np.arange(n) < 40, "tiny", "large").astype(object)
    group[40:60] = "no events"
    y[40:60] = 0
    table = subgroup_metrics(y, p, {"g": group}, min_n=100, flag_fraction=0.05)
    auroc = dict(zip(table.get_column("group").to_list(), table.get_column("auroc").to_list(), strict=True))
    assert auroc["tiny"] is None and auroc["no events"] is None and auroc["large"] is not None
    flagged = (table.get_column("flagged_fraction") * table.get_column("n")).sum()
    assert flagged == pytest.approx(np.ceil(0.05 * n))


# ------------------------------------------------------------------------------------------ metrics


def _synthetic_scores(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = np.round(rng.beta(1, 7, n), 3)  # rounding creates ties, as isotonic steps or counts would
    y = (rng.random(n) < p).astype(float)
    return y, p


def test_metrics_match_scikit_learn_with_ties() -> None:
    y, p = _synthetic_scores(5000, 1)
    result = evaluate(y, p, fast_settings(bootstrap_samples=10))["metrics"]
    assert result["auroc"]["estimate"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert result["auprc"]["estimate"] == pytest.approx(average_precision_score(y, p), abs=1e-12)
    assert result["brier"]["estimate"] == pytest.approx(brier_score_loss(y, p), abs=1e-12)


def test_calibration_slope_detects_overconfident_scores() -> None:
    y, p = _synthetic_scores(20000, 2)
    logit = np.log(np.clip(p, 1e-6, 1 - 1e-6) / (1 - np.clip(p, 1e-6, 1 - 1e-6)))
    overconfident = 1 / (1 + np.exp(-2 * logit))
    settings = fast_settings(bootstrap_samples=10)
    assert evaluate(y, p, settings)["metrics"]["calibration_slope"]["estimate"] == pytest.approx(1.0, abs=0.1)
    assert evaluate(y, overconfident, settings)["metrics"]["calibration_slope"]["estimate"] == pytest.approx(
        0.5, abs=0.07
    )


def test_top_k_figures_count_events_among_the_highest_scores() -> None:
    y, p = _synthetic_scores(4000, 3)
    settings = fast_settings(bootstrap_samples=10)
    metrics = evaluate(y, p, settings, seed=5)["metrics"]
    order = np.argsort(-p, kind="stable")
    for fraction in settings.top_fractions:
        k = int(np.ceil(fraction * len(y)))
        captured = metrics[f"events_captured_{top_label(fraction)}"]["estimate"]
        # Ties at the cut are broken at random, so the count lies between the tie-pessimistic and -optimistic.
        cut = p[order[k - 1]]
        above = y[p > cut].sum()
        tied = y[p == cut]
        slots = k - (p > cut).sum()
        assert max(above, above + slots - (len(tied) - tied.sum())) <= captured <= above + min(slots, tied.sum())
        assert metrics[f"ppv_{top_label(fraction)}"]["estimate"] == pytest.approx(captured / k)
        assert metrics[f"sensitivity_{top_label(fraction)}"]["estimate"] == pytest.approx(captured / y.sum())


def test_bootstrap_intervals_contain_the_estimate_and_narrow_with_n() -> None:
    settings = fast_settings(bootstrap_samples=100)
    small = evaluate(*_synthetic_scores(1500, 4), settings, seed=1)["metrics"]
    large = evaluate(*_synthetic_scores(24000, 4), settings, seed=1)["metrics"]
    for result in (small, large):
        for name in ("auroc", "auprc", "brier", "calibration_slope", "ppv_top_5pct", "sensitivity_top_20pct"):
            assert result[name]["lo"] <= result[name]["estimate"] <= result[name]["hi"], name
    for name in ("auroc", "auprc", "brier", "calibration_slope", "ppv_top_5pct"):
        small_width = small[name]["hi"] - small[name]["lo"]
        large_width = large[name]["hi"] - large[name]["lo"]
        assert large_width < small_width / 2, name  # 16x the rows: about 4x narrower


def test_evaluate_is_seeded_and_json_serialisable() -> None:
    y, p = _synthetic_scores(3000, 6)
    settings = fast_settings(bootstrap_samples=50)
    first = evaluate(y, p, settings, seed=1)
    assert json.loads(json.dumps(first)) == first
    assert evaluate(y, p, settings, seed=1) == first
    assert evaluate(y, p, settings, seed=2)["metrics"]["auroc"]["lo"] != first["metrics"]["auroc"]["lo"]
    assert [d["decile"] for d in first["deciles"]] == list(range(1, 11))
    assert sum(d["n"] for d in first["deciles"]) == len(y)


def test_evaluate_rejects_missing_labels() -> None:
    with pytest.raises(ValueError, match="0/1"):
        evaluate(np.array([0.0, np.nan, 1.0]), np.array([0.1, 0.2, 0.3]), fast_settings())


def test_baselines_are_evaluated_with_the_model_in_one_pass_on_its_split(
    frame: pl.DataFrame, model: TrainedModel, evaluation: Evaluation
) -> None:
    with_baselines = evaluate_outcome(
        frame,
        model,
        standard_baselines(OUTCOME, prior_use_col="emergency_admissions_12m", classic_numeric_cols=["age"]),
        subgroup_cols=SUBGROUP_COLUMNS,
    )
    assert next(iter(with_baselines.results)) == MODEL_NAME
    assert MODEL_NAME not in with_baselines.baselines and len(with_baselines.baselines) == 2
    assert {result["n"] for result in with_baselines.results.values()} == {evaluation.model["n"]}
    assert with_baselines.model == evaluation.model  # baselines do not change the model's figures


def test_auroc_standard_error_follows_hanley_and_mcneil() -> None:
    # Against simulation: binormal scores with AUROC 0.8 (shift 1.19), 50 events and 50 non-events, 400 times.
    from models.metrics import auroc_score, auroc_standard_error

    rng = np.random.default_rng(7)
    y = np.r_[np.ones(50), np.zeros(50)]
    draws = [auroc_score(y, np.r_[rng.normal(1.19, 1, 50), rng.normal(0, 1, 50)]) for _ in range(400)]
    assert np.mean(draws) == pytest.approx(0.8, abs=0.01)
    assert auroc_standard_error(0.8, 50, 50) == pytest.approx(np.std(draws), rel=0.15)
    assert auroc_standard_error(0.8, 500, 500) < auroc_standard_error(0.8, 50, 50)
