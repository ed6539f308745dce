"""Monitoring measures and refit rules on small fixtures: PSI, the expected AUROC, realised performance, the
alerts each rule raises, the Prefect call that requests a refit, and the drift scenarios of the generator."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import date
from itertools import product

import numpy as np
import polars as pl
import pytest

from data_contracts.outcomes import OutcomeSettings
from data_contracts.settings import DriftSettings
from data_contracts.synthetic.drift import FileDrift, apply_to_frames, start_day
from data_contracts.synthetic.timeline import Timeline, day_number
from models.metrics import auroc_score
from models.monitoring import (
    expected_auroc,
    feature_psi,
    horizon_probability,
    psi,
    realised_performance,
    reference_distribution,
    refit_alerts,
    score_psi,
    top_features,
)
from models.settings import MonitoringSettings
from pipelines.monitor import trigger_retrain


def test_psi_is_zero_for_equal_shares_and_matches_the_formula() -> None:
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0.0
    expected = (0.7 - 0.5) * math.log(0.7 / 0.5) + (0.3 - 0.5) * math.log(0.3 / 0.5)
    assert psi([0.5, 0.5], [0.7, 0.3]) == pytest.approx(expected)
    # An empty bin is floored, so the index stays finite.
    assert math.isfinite(psi([1.0, 0.0], [0.5, 0.5]))


def test_feature_psi_bins_on_the_reference_deciles_and_sees_a_shift_nulls_and_new_categories() -> None:
    rng = np.random.default_rng(3)
    reference_frame = pl.DataFrame(
        {"age": rng.normal(60, 10, 5000), "sex": rng.choice(["1", "2"], 5000), "flag": rng.random(5000) < 0.3}
    )
    reference = reference_distribution(reference_frame, ["age", "sex", "flag"], rng.normal(0, 1, 5000), 10)
    assert len(reference["features"]["age"]["edges"]) == 9
    assert sum(reference["features"]["age"]["shares"]) == pytest.approx(1.0)
    same = pl.DataFrame(
        {"age": rng.normal(60, 10, 5000), "sex": rng.choice(["1", "2"], 5000), "flag": rng.random(5000) < 0.3}
    )
    assert feature_psi(same, reference)["psi"].max() < 0.02
    moved = same.with_columns(
        age=pl.col("age") + 10,
        sex=pl.when(pl.int_range(pl.len()) < 1000).then(pl.lit("9")).otherwise(pl.col("sex")),
        flag=pl.when(pl.int_range(pl.len()) < 2500).then(None).otherwise(pl.col("flag")),
    )
    drift = dict(feature_psi(moved, reference).iter_rows())
    assert drift["age"] > 0.25 and drift["sex"] > 0.25 and drift["flag"] > 0.25
    assert score_psi(rng.normal(0, 1, 5000), reference) < 0.02
    assert score_psi(rng.normal(1, 1, 5000), reference) > 0.25


def test_expected_auroc_counts_pairs_exactly_and_agrees_with_labels_drawn_from_p() -> None:
    p = np.array([0.1, 0.4, 0.4, 0.8])
    score = np.array([1.0, 2.0, 2.0, 3.0])
    # Brute force over every labelling, weighted by its probability.
    total = weight = 0.0
    for labels in product((0, 1), repeat=4):
        y = np.array(labels)
        w = float(np.prod(np.where(y == 1, p, 1 - p)))
        for i, j in product(range(4), repeat=2):
            if i != j and y[i] == 1 and y[j] == 0:
                weight += w
                total += w * (1.0 if score[i] > score[j] else 0.5 if score[i] == score[j] else 0.0)
    assert expected_auroc(p, score) == pytest.approx(total / weight)
    rng = np.random.default_rng(11)
    p = rng.beta(1, 12, 40_000)
    drawn = [auroc_score((rng.random(p.size) < p).astype(int), p) for _ in range(5)]
    assert expected_auroc(p, p) == pytest.approx(np.mean(drawn), abs=0.01)


def test_realised_performance_reads_a_calibrated_and_an_overpredicting_model() -> None:
    rng = np.random.default_rng(5)
    p = rng.beta(1, 10, 50_000)
    y = (rng.random(p.size) < p).astype(int)
    good = realised_performance(p, y, p)
    assert good["observed_expected"] == pytest.approx(1.0, abs=0.03)
    assert good["calibration_slope"] == pytest.approx(1.0, abs=0.1)
    assert good["auroc"] == pytest.approx(good["expected_auroc"], abs=0.01)
    y_fewer = (rng.random(p.size) < 0.8 * p).astype(int)  # a service prevents a fifth of the events
    assert realised_performance(p, y_fewer, p)["observed_expected"] == pytest.approx(0.8, abs=0.03)
    # A year's 20% is about 5.4% over three months at a constant hazard.
    assert horizon_probability(np.array([0.2]), 3, 12)[0] == pytest.approx(1 - 0.8**0.25)


SETTINGS = MonitoringSettings(top_features=2, min_events=50)


def _realised(oe: float, z: float, auroc: float = 0.75, expected_auroc: float = 0.75, events: float = 400) -> dict:
    return {
        "events": events,
        "expected_events": events / oe,
        "observed_expected": oe,
        "oe_z": z,
        "auroc": auroc,
        "expected_auroc": expected_auroc,
    }


def test_refit_rules_fire_on_their_own_conditions_only() -> None:
    importance = [
        {"feature": "age", "mean_abs_contribution": 0.3},
        {"feature": "gp_face_to_face_3m", "mean_abs_contribution": 0.5},
        {"feature": "gp_telephone_3m", "mean_abs_contribution": 0.1},
    ]
    top = top_features(importance, SETTINGS.top_features)
    assert top == ["gp_face_to_face_3m", "age"]
    drift = pl.DataFrame({"feature": ["gp_telephone_3m", "gp_face_to_face_3m", "age"], "psi": [0.9, 0.3, 0.1]})
    alerts = refit_alerts(drift, 0.05, {}, top, SETTINGS)
    # The telephone feature drifts most but is not a top feature: only the face-to-face one raises an alert...
    assert [(a.rule, a.subject) for a in alerts] == [("feature_drift", "gp_face_to_face_3m")]
    # ...until it drifts beyond the any-feature threshold (a coding change).
    far = refit_alerts(drift.with_columns(psi=pl.Series([2.0, 0.1, 0.1])), 0.05, {}, top, SETTINGS)
    assert [(a.rule, a.subject) for a in far] == [("feature_drift", "gp_telephone_3m")]
    quiet = drift.with_columns(psi=pl.lit(0.1))
    assert refit_alerts(quiet, 0.3, {}, top, SETTINGS)[0].rule == "score_drift"
    assert refit_alerts(quiet, 0.05, {3: _realised(0.8, -4.5)}, top, SETTINGS)[0].rule == "observed_expected"
    assert refit_alerts(quiet, 0.05, {3: _realised(0.8, -1.5)}, top, SETTINGS) == []  # not significant
    assert refit_alerts(quiet, 0.05, {3: _realised(0.95, -4.0)}, top, SETTINGS) == []  # inside the band
    assert refit_alerts(quiet, 0.05, {3: _realised(0.5, -5.0, events=10)}, top, SETTINGS) == []  # too few events
    fell = refit_alerts(quiet, 0.05, {6: _realised(1.0, 0.0, auroc=0.66, expected_auroc=0.74)}, top, SETTINGS)
    assert [(a.rule, a.subject) for a in fell] == [("auroc_fall", "6m")]
    assert refit_alerts(quiet, 0.05, {6: _realised(1.0, 0.0, auroc=0.71, expected_auroc=0.74)}, top, SETTINGS) == []


def test_trigger_runs_the_retrain_deployment_only_on_alerts_and_survives_prefect_being_away() -> None:
    calls: list[dict] = []
    alerts = refit_alerts(pl.DataFrame({"feature": ["age"], "psi": [1.0]}), None, {}, ["age"], SETTINGS)
    assert not trigger_retrain([], lambda **kw: calls.append(kw))
    assert trigger_retrain(alerts, lambda **kw: calls.append(kw))
    assert calls == [{"name": "train/riskstrat-retrain", "timeout": 0, "tags": ["riskstrat", "refit-trigger"]}]

    def unreachable(**_: object) -> None:
        raise ConnectionError("no Prefect API")

    assert not trigger_retrain(alerts, unreachable)


# ---------------------------------------------------------------------------------------------- drift scenarios

TIMELINE = Timeline(date(2026, 11, 1), 1, 8, OutcomeSettings().horizon_months)


def _frames() -> dict[str, pl.DataFrame]:
    days = np.arange(day_number(date(2026, 8, 1)), day_number(date(2026, 11, 1)), dtype=np.int32)
    n = days.size
    gp = pl.DataFrame({"_day": days, "event_type": np.resize(["telephone", "face_to_face", "online"], n)})
    spells = pl.DataFrame({"_day": np.repeat(days, 50), "admission_method": np.resize(["21", "11"], 50 * n)})
    return {"gp_events": gp, "apc_spells": spells}


def test_drift_scenarios_change_only_the_data_after_their_start() -> None:
    frames = _frames()
    start = start_day(DriftSettings(), TIMELINE)
    assert start == TIMELINE.extract_day(5)  # weekly batches 5 to 8 of 8 are after the change
    assert apply_to_frames(frames, DriftSettings(), TIMELINE, np.random.default_rng(1)) == frames
    recoded = apply_to_frames(frames, DriftSettings(scenario="coding_change"), TIMELINE, np.random.default_rng(1))
    after = recoded["gp_events"].filter(pl.col("_day") >= start)
    assert "telephone" not in after["event_type"].to_list()
    assert (
        recoded["gp_events"].filter(pl.col("_day") < start).equals(frames["gp_events"].filter(pl.col("_day") < start))
    )
    fewer = apply_to_frames(frames, DriftSettings(scenario="emergency_service"), TIMELINE, np.random.default_rng(1))
    spells = frames["apc_spells"]

    def emergencies(frame: pl.DataFrame, later: bool) -> int:
        return frame.filter((pl.col("_day") >= start) == later).filter(pl.col("admission_method") == "21").height

    assert emergencies(fewer["apc_spells"], False) == emergencies(spells, False)
    assert emergencies(fewer["apc_spells"], True) / emergencies(spells, True) == pytest.approx(0.8, abs=0.03)
    elective = pl.col("admission_method") == "11"
    assert fewer["apc_spells"].filter(elective).height == spells.filter(elective).height


def _apply(drift: FileDrift) -> list[dict[str, pl.DataFrame]]:
    """Each batch's tables as the file-level scenario leaves them, applied in batch order."""
    written = []
    for b in range(TIMELINE.n_batches):
        frame = pl.DataFrame({"contact_id": [f"{b}-1", f"{b}-2"], "department_type": ["01", "03"]})
        written.append(drift.apply(b, {"community_contacts": frame, "ae_attendances": frame}))
    return written


def test_outage_holds_a_feed_back_then_delivers_it_late_and_a_broken_batch_has_an_impossible_code() -> None:
    ids = TIMELINE.batch_ids()
    outage = FileDrift(DriftSettings(scenario="feed_outage", outage_weeks=2), TIMELINE)
    written = _apply(outage)
    assert outage.changed == {"missing": [ids[5], ids[6]], "late_in": ids[7]}
    assert "community_contacts" not in written[5] and "community_contacts" in written[4]
    assert written[7]["community_contacts"].height == 6  # two weeks late plus its own
    broken = FileDrift(replace(DriftSettings(), scenario="quarantined_batch"), TIMELINE)
    written = _apply(broken)
    assert broken.changed == {"quarantined": ids[5], "table": "ae_attendances", "rows": 2}
    assert written[5]["ae_attendances"]["department_type"].to_list() == ["09", "09"]
    assert written[6]["ae_attendances"]["department_type"].to_list() == ["01", "03"]
