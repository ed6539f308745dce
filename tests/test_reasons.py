"""Reasons under the stated policy (models/reasons.py), on a real seeded fit whose features carry catalogue names."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest

from features.catalogue import CATALOGUE, is_present
from models.reasons import LOWERING_REASONS, LOWERS, RAISES, _shares, build_reasons, reason_of
from models.synthetic import make_training_frame
from models.training import TrainedModel, train_outcome
from tests.fast import fast_training_settings, latest_split

EVAL_DATE = date(2023, 10, 1)
# The synthetic training frame's columns under the catalogue's names (two noise columns stay unknown to it).
AS_CATALOGUE = {
    "imd_quintile": "imd_decile",
    "gp_contacts_12m": "gp_face_to_face_12m",
    "polypharmacy_count": "bnf_sections_3m",
    "frailty_index": "hfrs",
    "has_diabetes": "ltc_diabetes",
    "has_copd": "ltc_copd",
    "has_heart_failure": "ltc_heart_failure",
    "social_care_service": "asc_current_service",
}
FEATURES = (
    "age", "imd_decile", "emergency_admissions_12m", "ae_attendances_12m", "gp_face_to_face_12m", "ltc_count",
    "bnf_sections_3m", "cost_total_12m", "hfrs", "noise_1", "noise_2", "ltc_diabetes", "ltc_copd",
    "ltc_heart_failure", "sex", "ethnicity_group", "asc_current_service",
)  # fmt: skip


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    return make_training_frame(n_people=3000, seed=41).rename(AS_CATALOGUE)


@pytest.fixture(scope="module")
def model(frame: pl.DataFrame) -> TrainedModel:
    categorical = ("sex", "ethnicity_group", "asc_current_service")
    split = latest_split(frame, EVAL_DATE)
    return train_outcome(frame, "emergency_admission", FEATURES, categorical, split, fast_training_settings())


@pytest.fixture(scope="module")
def listed(frame: pl.DataFrame, model: TrainedModel) -> pl.DataFrame:
    rows = frame.filter(pl.col("index_date") == EVAL_DATE)
    return rows.with_columns(raw=pl.Series(model.predict_raw_logodds(rows))).sort("raw", descending=True).head(200)


def test_no_reason_contradicts_its_direction(model: TrainedModel, listed: pl.DataFrame) -> None:
    reasons = build_reasons(model, listed, top_n=5).reasons
    assert reasons["person_id"].n_unique() == listed.height
    values = {r["person_id"]: r for r in listed.to_dicts()}
    for person, rows in reasons.group_by("person_id"):
        rows = rows.sort("reason_rank")
        directions = rows["direction"].to_list()
        raising = rows.filter(pl.col("direction") == RAISES)
        # Reasons first, largest first; then what lowers the risk, most first.
        assert directions == sorted(directions, key=lambda d: d != RAISES)
        assert raising.height <= 5 and rows.height - raising.height <= LOWERING_REASONS
        assert raising["contribution"].to_list() == sorted(raising["contribution"].to_list(), reverse=True)
        for r in rows.iter_rows(named=True):
            if r["direction"] == RAISES:
                assert r["contribution"] > 0 and r["points"] >= 0, r
                # A reason for being on the list states something in the record.
                assert is_present(r["feature"], values[person[0]][r["feature"]]), r
            else:
                assert r["direction"] == LOWERS and r["contribution"] < 0 and r["points"] <= 0, r
        assert rows["reason"].n_unique() == rows.height  # related features are one reason, never two


def test_related_features_are_one_reason_whose_contribution_is_their_sum(
    model: TrainedModel, listed: pl.DataFrame
) -> None:
    reasons = build_reasons(model, listed, top_n=50).reasons
    contributions = model.contributions(listed)[:, :-1]
    first = listed["person_id"][0]
    shown = reasons.filter(pl.col("person_id") == first)
    for r in shown.iter_rows(named=True):
        members = [j for j, n in enumerate(model.feature_cols) if reason_of(n) == r["reason"]]
        assert r["contribution"] == pytest.approx(float(contributions[0, members].sum()), abs=1e-9)
    conditions = {reason_of(n) for n in ("ltc_diabetes", "ltc_copd", "ltc_heart_failure")}
    assert conditions == {"long_term_conditions"} and CATALOGUE["ltc_count"].reason == "long_term_conditions"


def test_shares_start_at_the_calibrated_average_and_add_up_to_the_headline_risk(
    model: TrainedModel, listed: pl.DataFrame
) -> None:
    result = build_reasons(model, listed, top_n=5)
    assert model.calibrator_ is not None
    contributions = model.contributions(listed)
    base, logodds = contributions[:, -1], contributions.sum(axis=1)
    np.testing.assert_allclose(result.people["start_risk"].to_numpy(), model.calibrator_.predict(base), atol=1e-12)
    # The whole path (shown reasons, then the rest) adds up to the calibrated headline, each step keeping its sign.
    path = np.array([-2.0, -1.0, -1.2, 0.5, 0.4])
    shares = _shares(path, 0.05, 0.40)
    assert shares.sum() == pytest.approx(0.35, abs=1e-12)
    assert list(np.sign(shares)) == list(np.sign(np.diff(path)))
    first = result.reasons.filter(pl.col("person_id") == listed["person_id"][0])
    headline = float(model.calibrator_.predict(logodds[:1])[0])
    assert first["points"].sum() <= headline - float(base[:1][0]) + 1.0  # finite, on the probability scale
    assert ((first["points"] >= 0) == (first["contribution"] > 0)).all()
