"""Calibrators: maps from a model's raw log-odds to a probability, fitted on the calibration part of the fit rows.

`calibration_kind` resolves the setting ("auto": isotonic with enough calibration events, else Platt);
`make_calibrator` builds an unfitted one and `calibrator_from_dict` rebuilds a stored one (JSON-exact).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


class IsotonicCalibrator:
    """Isotonic map from raw log-odds to probability, stored as breakpoints (JSON-exact).

    Plain isotonic regression gives the extreme blocks a probability of exactly 0 or 1 when a small tail
    block of the calibration set happens to have no events (or only events): a "0% risk" that is never true
    and that wrecks the calibration slope. So each block's rate is estimated as (events + 0.5) / (n + 1)
    (Jeffreys prior, negligible for large blocks) and the block rates are made monotone again by a weighted
    isotonic pass. Predictions interpolate linearly between block end points and are flat beyond them, as
    sklearn's IsotonicRegression(out_of_bounds="clip") does.
    """

    kind = "isotonic"

    def __init__(self, prior_events: float = 0.5, prior_rows: float = 1.0) -> None:
        self.prior_events = prior_events
        self.prior_rows = prior_rows
        self.x_thresholds_: np.ndarray | None = None
        self.y_thresholds_: np.ndarray | None = None

    def fit(self, raw_logodds: np.ndarray, y: np.ndarray) -> IsotonicCalibrator:
        from sklearn.isotonic import IsotonicRegression

        x = np.asarray(raw_logodds, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        order = np.argsort(x, kind="stable")
        x, y = x[order], y[order]
        iso = IsotonicRegression(out_of_bounds="clip", increasing=True).fit(x, y)
        # On its own training points the fit is piecewise constant: runs of equal values are the blocks.
        fitted = iso.predict(x)
        starts = np.flatnonzero(np.r_[True, fitted[1:] != fitted[:-1]])
        ends = np.r_[starts[1:], len(x)] - 1
        rows = np.diff(np.r_[starts, len(x)]).astype(np.float64)
        events = np.add.reduceat(y, starts)
        smoothed = (events + self.prior_events) / (rows + self.prior_rows)
        smoothed = IsotonicRegression(increasing=True).fit_transform(
            np.arange(len(rows), dtype=np.float64), smoothed, sample_weight=rows + self.prior_rows
        )
        # Each block spans [x of its first row, x of its last row]; one point if they coincide.
        x_points = np.column_stack([x[starts], x[ends]]).ravel()
        y_points = np.repeat(smoothed, 2)
        keep = np.r_[True, x_points[1:] != x_points[:-1]]
        self.x_thresholds_ = x_points[keep]
        self.y_thresholds_ = y_points[keep]
        return self

    def predict(self, raw_logodds: np.ndarray) -> np.ndarray:
        if self.x_thresholds_ is None or self.y_thresholds_ is None:
            raise RuntimeError("calibrator is not fitted")
        return np.interp(np.asarray(raw_logodds, dtype=np.float64), self.x_thresholds_, self.y_thresholds_)

    def to_dict(self) -> dict[str, Any]:
        assert self.x_thresholds_ is not None and self.y_thresholds_ is not None
        return {
            "kind": self.kind,
            "prior_events": self.prior_events,
            "prior_rows": self.prior_rows,
            "x": self.x_thresholds_.tolist(),
            "y": self.y_thresholds_.tolist(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IsotonicCalibrator:
        calibrator = cls(float(data["prior_events"]), float(data["prior_rows"]))
        calibrator.x_thresholds_ = np.asarray(data["x"], dtype=np.float64)
        calibrator.y_thresholds_ = np.asarray(data["y"], dtype=np.float64)
        return calibrator


class PlattCalibrator:
    """Logistic recalibration p = sigmoid(a + b * raw_logodds), unpenalised."""

    kind = "platt"

    def __init__(self) -> None:
        self.slope_: float | None = None
        self.intercept_: float | None = None

    def fit(self, raw_logodds: np.ndarray, y: np.ndarray) -> PlattCalibrator:
        from sklearn.linear_model import LogisticRegression

        # C=inf: no penalty (scikit-learn >= 1.8 deprecates penalty="none"/None in favour of this).
        lr = LogisticRegression(C=np.inf, max_iter=1000)
        lr.fit(np.asarray(raw_logodds, dtype=np.float64).reshape(-1, 1), np.asarray(y, dtype=np.int64))
        self.slope_ = float(lr.coef_[0, 0])
        self.intercept_ = float(lr.intercept_[0])
        return self

    def predict(self, raw_logodds: np.ndarray) -> np.ndarray:
        if self.slope_ is None or self.intercept_ is None:
            raise RuntimeError("calibrator is not fitted")
        z = self.intercept_ + self.slope_ * np.asarray(raw_logodds, dtype=np.float64)
        return 0.5 * (1.0 + np.tanh(0.5 * z))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "slope": self.slope_, "intercept": self.intercept_}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PlattCalibrator:
        calibrator = cls()
        calibrator.slope_ = float(data["slope"])
        calibrator.intercept_ = float(data["intercept"])
        return calibrator


Calibrator = IsotonicCalibrator | PlattCalibrator


def calibration_kind(setting: str, calibration_events: int, isotonic_min_events: int) -> str:
    """The calibrator a model gets: the setting, with "auto" resolved by the events available to calibrate."""
    if setting != "auto":
        return setting
    return "isotonic" if calibration_events >= isotonic_min_events else "platt"


def make_calibrator(kind: str) -> Calibrator:
    if kind == "isotonic":
        return IsotonicCalibrator()
    if kind == "platt":
        return PlattCalibrator()
    raise ValueError(f"unknown calibration {kind!r}: use 'isotonic', 'platt' or 'auto'")


def calibrator_from_dict(data: Mapping[str, Any]) -> Calibrator:
    kind = data["kind"]
    if kind == "isotonic":
        return IsotonicCalibrator.from_dict(data)
    if kind == "platt":
        return PlattCalibrator.from_dict(data)
    raise ValueError(f"unknown calibrator kind {kind!r}")
