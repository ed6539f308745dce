"""Calibrators: maps from a model's raw log-odds to a probability, fitted on the calibration part of the fit rows.

`calibration_kind` resolves the setting ("auto": isotonic with enough calibration events, else Platt);
`make_calibrator` builds an unfitted one and `calibrator_from_dict` rebuilds a stored one (JSON-exact).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)), above 0 and below 1 for every finite z a model gives."""
    return np.exp(-np.logaddexp(0.0, -z))


# The least slope (in log-odds per raw log-odd) a calibrator keeps beyond its data and in its shrunk Platt fit:
# a model whose scores carry no signal still maps different raw scores to different risks, in the right order.
MIN_SLOPE = 1e-6


class IsotonicCalibrator:
    """Isotonic regression made smooth and strictly increasing: a map from raw log-odds to probability.

    Plain isotonic regression is a step function: every row of a block gets the same probability, so the people
    at the top of a list all read the same risk (ranks 1-50 of the demo's list read 58%). Here the isotonic
    blocks only place points: each block's rate, estimated as (events + 0.5) / (n + 1) (Jeffreys prior, so a
    tail block without events is not "0% risk") and made monotone again by a weighted isotonic pass, sits at the
    block's centroid (the mean raw log-odds of its rows), and adjacent blocks with equal rates are merged. The map
    interpolates linearly between the centroids in log-odds (centred isotonic regression, Oron and Flournoy 2017,
    on the logit scale), and beyond the first and last centroid it continues with the slope of a Platt fit on
    the same rows. So it is strictly increasing: different raw scores give different risks, in the same order,
    while keeping the isotonic fit's shape where the data are. Stored as the centroids, their log-odds and the
    tail slope (JSON-exact).

    A stored step calibrator from before (no `tail_slope`) is read as it was fitted: flat blocks, interpolated
    in probability between block end points.
    """

    kind = "isotonic"

    def __init__(self, prior_events: float = 0.5, prior_rows: float = 1.0) -> None:
        self.prior_events = prior_events
        self.prior_rows = prior_rows
        self.x_thresholds_: np.ndarray | None = None
        self.y_thresholds_: np.ndarray | None = None  # log-odds at the centroids (probabilities if legacy)
        self.tail_slope_: float | None = None  # None: a legacy step calibrator
        self.offset_ = 0.0  # calibration in the large on the most recent period, in log-odds (`shift_to`)

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
        rows = np.diff(np.r_[starts, len(x)]).astype(np.float64)
        events = np.add.reduceat(y, starts)
        x_sums = np.add.reduceat(x, starts)
        smoothed = (events + self.prior_events) / (rows + self.prior_rows)
        smoothed = IsotonicRegression(increasing=True).fit_transform(
            np.arange(len(rows), dtype=np.float64), smoothed, sample_weight=rows + self.prior_rows
        )
        # The second pass can pool neighbours into equal rates: merge them so the rates increase strictly.
        merged = np.flatnonzero(np.r_[True, smoothed[1:] != smoothed[:-1]])
        rows, x_sums = np.add.reduceat(rows, merged), np.add.reduceat(x_sums, merged)
        self.x_thresholds_ = x_sums / rows
        self.y_thresholds_ = _logit(smoothed[merged])
        self.tail_slope_ = max(PlattCalibrator().fit(x, y).slope_ or 0.0, MIN_SLOPE)
        return self

    def predict(self, raw_logodds: np.ndarray) -> np.ndarray:
        if self.x_thresholds_ is None or self.y_thresholds_ is None:
            raise RuntimeError("calibrator is not fitted")
        x = np.asarray(raw_logodds, dtype=np.float64)
        if self.tail_slope_ is None:
            return np.interp(x, self.x_thresholds_, self.y_thresholds_)
        first, last = self.x_thresholds_[0], self.x_thresholds_[-1]
        z = np.interp(x, self.x_thresholds_, self.y_thresholds_)
        z = np.where(x < first, self.y_thresholds_[0] + self.tail_slope_ * (x - first), z)
        z = np.where(x > last, self.y_thresholds_[-1] + self.tail_slope_ * (x - last), z)
        return _sigmoid(z + self.offset_)

    def to_dict(self) -> dict[str, Any]:
        assert self.x_thresholds_ is not None and self.y_thresholds_ is not None
        return {
            "kind": self.kind,
            "prior_events": self.prior_events,
            "prior_rows": self.prior_rows,
            "x": self.x_thresholds_.tolist(),
            "y": self.y_thresholds_.tolist(),
            **({} if self.tail_slope_ is None else {"scale": "logit", "tail_slope": self.tail_slope_}),
            "offset": self.offset_,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IsotonicCalibrator:
        calibrator = cls(float(data["prior_events"]), float(data["prior_rows"]))
        calibrator.x_thresholds_ = np.asarray(data["x"], dtype=np.float64)
        calibrator.y_thresholds_ = np.asarray(data["y"], dtype=np.float64)
        calibrator.tail_slope_ = float(data["tail_slope"]) if "tail_slope" in data else None
        calibrator.offset_ = float(data.get("offset", 0.0))
        return calibrator


class PlattCalibrator:
    """Logistic recalibration p = sigmoid(a + b * raw_logodds), fitted by Newton's method.

    `prior_strength` (0: unpenalised) shrinks (a, b) towards (0, 1), the booster's own probabilities, with a
    Gaussian penalty prior_strength / 2 * (a^2 + (b - 1)^2): a few hundred events then barely move it, a few
    dozen cannot swing the slope to 1.8 (the small-sample path of `models.training`). The slope is kept at
    least `MIN_SLOPE`, so the map stays strictly increasing.
    """

    kind = "platt"

    def __init__(self, prior_strength: float = 0.0) -> None:
        self.prior_strength = prior_strength
        self.slope_: float | None = None
        self.intercept_: float | None = None
        self.offset_ = 0.0  # calibration in the large on the most recent period, in log-odds (`shift_to`)

    def fit(self, raw_logodds: np.ndarray, y: np.ndarray) -> PlattCalibrator:
        x = np.asarray(raw_logodds, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        design = np.column_stack([np.ones_like(x), x])
        prior = np.array([0.0, 1.0])
        penalty = self.prior_strength * np.eye(2)
        # Start at the booster's own probabilities, plus the intercept that matches the event rate.
        rate = np.clip(y.mean() if len(y) else 0.5, 1e-6, 1 - 1e-6)
        base = np.clip(_sigmoid(x).mean() if len(x) else 0.5, 1e-6, 1 - 1e-6)
        beta = np.array([float(_logit(np.array(rate))[()] - _logit(np.array(base))[()]), 1.0])

        def objective(b: np.ndarray) -> float:
            z = design @ b
            loglik = float(np.sum(y * z - np.logaddexp(0.0, z)))
            return loglik - 0.5 * float((b - prior) @ penalty @ (b - prior))

        current = objective(beta)
        for _ in range(100):
            p = _sigmoid(design @ beta)
            gradient = design.T @ (y - p) - penalty @ (beta - prior)
            hessian = (design * (p * (1 - p))[:, None]).T @ design + penalty + 1e-9 * np.eye(2)
            step = np.linalg.solve(hessian, gradient)
            # Halve the Newton step until the penalised likelihood does not fall.
            for _ in range(30):
                trial = objective(beta + step)
                if trial >= current:
                    break
                step = step / 2
            beta = beta + step
            current = objective(beta)
            if np.max(np.abs(step)) < 1e-10:
                break
        self.intercept_ = float(beta[0])
        self.slope_ = float(max(beta[1], MIN_SLOPE))
        return self

    def predict(self, raw_logodds: np.ndarray) -> np.ndarray:
        if self.slope_ is None or self.intercept_ is None:
            raise RuntimeError("calibrator is not fitted")
        return _sigmoid(self.intercept_ + self.offset_ + self.slope_ * np.asarray(raw_logodds, dtype=np.float64))

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "slope": self.slope_,
            "intercept": self.intercept_,
            "prior_strength": self.prior_strength,
            "offset": self.offset_,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PlattCalibrator:
        calibrator = cls(float(data.get("prior_strength", 0.0)))
        calibrator.slope_ = float(data["slope"])
        calibrator.intercept_ = float(data["intercept"])
        calibrator.offset_ = float(data.get("offset", 0.0))
        return calibrator


Calibrator = IsotonicCalibrator | PlattCalibrator


def intercept_shift(p: np.ndarray, y: np.ndarray, prior_strength: float = 0.0) -> float:
    """The log-odds shift d that makes mean(sigmoid(logit(p) + d)) match the event rate of `y` (calibration in
    the large), shrunk towards 0 by a Gaussian prior of precision `prior_strength` (few events move it little)."""
    z = _logit(np.clip(np.asarray(p, dtype=np.float64), 1e-12, 1 - 1e-12))
    y = np.asarray(y, dtype=np.float64)
    shift = 0.0
    for _ in range(100):
        q = _sigmoid(z + shift)
        step = (float(np.sum(y - q)) - prior_strength * shift) / (float(np.sum(q * (1 - q))) + prior_strength + 1e-12)
        shift += float(np.clip(step, -2.0, 2.0))
        if abs(step) < 1e-12:
            break
    return shift


def shift_to(calibrator: Calibrator, raw_logodds: np.ndarray, y: np.ndarray, prior_strength: float) -> float:
    """Correct `calibrator` in the large on (`raw_logodds`, `y`): its predictions move by one log-odds shift so
    that they add up to the events of those rows (shrunk by `prior_strength`). Returns the shift."""
    calibrator.offset_ = 0.0
    calibrator.offset_ = intercept_shift(calibrator.predict(raw_logodds), y, prior_strength)
    return calibrator.offset_


def calibration_kind(setting: str, calibration_events: int, isotonic_min_events: int) -> str:
    """The calibrator a model gets: the setting, with "auto" resolved by the events available to calibrate."""
    if setting != "auto":
        return setting
    return "isotonic" if calibration_events >= isotonic_min_events else "platt"


def make_calibrator(kind: str, prior_strength: float = 0.0) -> Calibrator:
    """An unfitted calibrator; `prior_strength` shrinks a Platt fit towards the booster's own probabilities."""
    if kind == "isotonic":
        return IsotonicCalibrator()
    if kind == "platt":
        return PlattCalibrator(prior_strength)
    raise ValueError(f"unknown calibration {kind!r}: use 'isotonic', 'platt' or 'auto'")


def calibrator_from_dict(data: Mapping[str, Any]) -> Calibrator:
    kind = data["kind"]
    if kind == "isotonic":
        return IsotonicCalibrator.from_dict(data)
    if kind == "platt":
        return PlattCalibrator.from_dict(data)
    raise ValueError(f"unknown calibrator kind {kind!r}")
