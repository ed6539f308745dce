"""Monitoring a model in use: drift of its inputs and scores against its training data, the performance expected
from its calibrated probabilities while labels are unknown, the performance realised once horizons close, and
the rules that turn these into alerts and a refit.

- Reference distribution (`reference_distribution`): per feature of the training frame, decile bin edges and
  shares (plus the share of nulls; categories and booleans by value), and the same for the model's raw score
  on its evaluation rows. Stored with the model version (`reference.json`), so drift is measured against what
  that model saw.
- Population stability index (`psi`): sum over bins of (actual - expected) * ln(actual / expected), shares
  floored at `PSI_FLOOR` so an empty bin counts as large but finite.
- Expected performance (`expected_performance`), the idea of confidence-based performance estimation: if the
  calibrated probabilities are right, the expected number of events is their sum and the expected AUROC is
  the probability-weighted share of (event, non-event) pairs the score orders correctly.
- Realised performance (`realised_performance`) of scores issued `lag` months earlier on the `lag` months of
  their horizon that have closed: AUROC, observed/expected (the horizon's probability scaled to the closed
  part as 1 - (1 - p)^(lag / horizon), a constant hazard) and the calibration slope.
- Refit rules (`refit_alerts`): a top feature or the score drifting beyond `psi_alert` (any feature beyond
  `psi_alert_any_feature`), observed/expected
  outside `oe_band` (and beyond `oe_min_z` Poisson standard errors), realised AUROC below expected by
  `auroc_fall`. Plain functions; `pipelines.monitor` stores the results and calls the retrain deployment.

Everything here is aggregate: no person-level value leaves these functions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import polars as pl

from models.metrics import _logistic_recalibration, _logit, auroc_score
from models.settings import MonitoringSettings

PSI_FLOOR = 1e-4
NULL_BIN = "<null>"
OTHER_BIN = "<other>"
SCORE = "score"


# ---------------------------------------------------------------------------------------------- reference


def _numeric_reference(values: np.ndarray, bins: int) -> dict[str, Any]:
    present = values[~np.isnan(values)]
    edges = np.unique(np.quantile(present, np.arange(1, bins) / bins)) if present.size else np.array([])
    shares = _numeric_shares(values, edges.tolist())
    return {"kind": "numeric", "edges": [float(e) for e in edges], "shares": shares}


def _numeric_shares(values: np.ndarray, edges: list[float]) -> list[float]:
    """Shares of (-inf, e1], (e1, e2], ..., (ek, inf) and then nulls."""
    n = len(values)
    if n == 0:
        return [0.0] * (len(edges) + 2)
    missing = np.isnan(values)
    which = np.searchsorted(np.asarray(edges, dtype=float), values[~missing], side="left")
    counts = np.bincount(which, minlength=len(edges) + 1).astype(float)
    return [float(c) / n for c in counts] + [float(missing.sum()) / n]


def _categorical_shares(values: pl.Series) -> dict[str, float]:
    n = len(values)
    counts = values.cast(pl.String).fill_null(NULL_BIN).value_counts()
    return {str(k): int(v) / n for k, v in counts.sort(counts.columns[0]).iter_rows()} if n else {}


def _as_float(values: pl.Series) -> np.ndarray:
    return values.cast(pl.Float64).fill_null(float("nan")).to_numpy()


def _is_numeric(values: pl.Series) -> bool:
    return values.dtype.is_numeric()


def reference_distribution(
    frame: pl.DataFrame, feature_cols: Sequence[str], raw_scores: np.ndarray, bins: int
) -> dict[str, Any]:
    """The training frame's distribution of each feature and of the model's raw score (see the docstring)."""
    features: dict[str, Any] = {}
    for name in feature_cols:
        values = frame.get_column(name)
        if _is_numeric(values):
            features[name] = _numeric_reference(_as_float(values), bins)
        else:
            features[name] = {"kind": "categorical", "shares": _categorical_shares(values)}
    return {
        "rows": frame.height,
        "bins": bins,
        "features": features,
        SCORE: _numeric_reference(np.asarray(raw_scores, dtype=float), bins),
    }


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    e = np.maximum(np.asarray(expected, dtype=float), PSI_FLOOR)
    a = np.maximum(np.asarray(actual, dtype=float), PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def _psi_against(entry: Mapping[str, Any], values: pl.Series | np.ndarray) -> float:
    if entry["kind"] == "numeric":
        array = values if isinstance(values, np.ndarray) else _as_float(values)
        return psi(entry["shares"], _numeric_shares(np.asarray(array, dtype=float), entry["edges"]))
    actual = _categorical_shares(values if isinstance(values, pl.Series) else pl.Series(values))
    expected = dict(entry["shares"])
    keys = sorted(set(expected) | set(actual))
    return psi([expected.get(k, 0.0) for k in keys], [actual.get(k, 0.0) for k in keys])


def feature_psi(frame: pl.DataFrame, reference: Mapping[str, Any]) -> pl.DataFrame:
    """PSI of every reference feature present in `frame`, largest first."""
    rows = [
        {"feature": name, "psi": _psi_against(entry, frame.get_column(name))}
        for name, entry in reference["features"].items()
        if name in frame.columns
    ]
    return pl.DataFrame(rows, schema={"feature": pl.String, "psi": pl.Float64}).sort(
        ["psi", "feature"], descending=[True, False]
    )


def score_psi(raw_scores: np.ndarray, reference: Mapping[str, Any]) -> float:
    return _psi_against(reference[SCORE], np.asarray(raw_scores, dtype=float))


# ---------------------------------------------------------------------------------------------- performance


def expected_auroc(p: np.ndarray, score: np.ndarray) -> float:
    """AUROC expected if `p` are the true probabilities: sum over pairs i, j with score_i > score_j of
    p_i (1 - p_j), ties counting half, over the expected number of (event, non-event) pairs."""
    p = np.asarray(p, dtype=float)
    score = np.asarray(score, dtype=float)
    order = np.argsort(score, kind="stable")
    s, pe, pn = score[order], p[order], 1.0 - p[order]
    # Group ties: within a group, pairs count half.
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    group_events = np.add.reduceat(pe, starts)
    group_non = np.add.reduceat(pn, starts)
    below_non = np.r_[0.0, np.cumsum(group_non)[:-1]]
    correct = float(np.sum(group_events * below_non) + 0.5 * np.sum(group_events * group_non))
    # Within-group same-person pairs (i == i) add p_i (1 - p_i) to the tie term; remove them.
    correct -= 0.5 * float(np.sum(pe * pn))
    pairs = float(pe.sum() * pn.sum() - np.sum(pe * pn))
    return correct / pairs if pairs > 0 else math.nan


def expected_performance(p: np.ndarray, score: np.ndarray) -> dict[str, float]:
    p = np.asarray(p, dtype=float)
    return {
        "expected_events": float(p.sum()),
        "expected_prevalence": float(p.mean()) if p.size else math.nan,
        "expected_auroc": expected_auroc(p, score),
    }


def horizon_probability(p: np.ndarray, closed_months: int, horizon_months: int) -> np.ndarray:
    """The chance of an event in the first `closed_months` of the horizon, at a constant hazard."""
    p = np.clip(np.asarray(p, dtype=float), 0.0, 1.0 - 1e-12)
    return 1.0 - (1.0 - p) ** (closed_months / horizon_months)


def realised_performance(p: np.ndarray, y: np.ndarray, score: np.ndarray) -> dict[str, float]:
    """AUROC, observed/expected (with its Poisson z) and calibration slope of probabilities `p` for the closed
    horizon against what happened (`y`), and the AUROC that `p` led one to expect."""
    p = np.asarray(p, dtype=float)
    y = np.asarray(y, dtype=np.int64)
    events, expected = int(y.sum()), float(p.sum())
    both = 0 < events < len(y)
    slope, _ = _logistic_recalibration(_logit(p), y.astype(float), np.ones(len(y))) if both else (math.nan, 0.0)
    return {
        "n": float(len(y)),
        "events": float(events),
        "expected_events": expected,
        "observed_expected": events / expected if expected > 0 else math.nan,
        "oe_z": (events - expected) / math.sqrt(expected) if expected > 0 else math.nan,
        "auroc": auroc_score(y, score) if both else math.nan,
        "expected_auroc": expected_auroc(p, score),
        "calibration_slope": slope,
    }


def list_churn(previous_ids: Sequence[str] | None, current_ids: Sequence[str]) -> float | None:
    """Share of this week's listed people who were not listed last week (None without a previous list)."""
    if previous_ids is None:
        return None
    current = set(current_ids)
    return len(current - set(previous_ids)) / len(current) if current else 0.0


# ---------------------------------------------------------------------------------------------- refit rules


@dataclass(frozen=True)
class Alert:
    rule: str  # feature_drift | score_drift | observed_expected | auroc_fall
    subject: str  # the feature, "score", or "<lag>m"
    value: float
    threshold: float
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def top_features(importance: Sequence[Mapping[str, Any]], k: int) -> list[str]:
    ranked = sorted(importance, key=lambda r: -float(r["mean_abs_contribution"]))
    return [str(r["feature"]) for r in ranked[:k]]


def refit_alerts(
    drift: pl.DataFrame,
    score_drift: float | None,
    realised: Mapping[int, Mapping[str, float]],
    top: Sequence[str],
    settings: MonitoringSettings,
) -> list[Alert]:
    """The alerts this week's monitoring raises; any alert triggers a refit. `drift` has feature and psi,
    `realised` maps a lag in months to `realised_performance` of that lag's scores."""
    alerts = []
    for row in drift.filter(pl.col("feature").is_in(list(top))).iter_rows(named=True):
        if row["psi"] >= settings.psi_alert:
            message = f"{row['feature']} (a top-{len(top)} feature) drifted: PSI {row['psi']:.3f}"
            alerts.append(Alert("feature_drift", row["feature"], row["psi"], settings.psi_alert, message))
    for row in drift.filter(~pl.col("feature").is_in(list(top))).iter_rows(named=True):
        if row["psi"] >= settings.psi_alert_any_feature:
            message = f"{row['feature']} drifted far (PSI {row['psi']:.3f}): a change in how the data are recorded?"
            alerts.append(Alert("feature_drift", row["feature"], row["psi"], settings.psi_alert_any_feature, message))
    if score_drift is not None and score_drift >= settings.psi_alert:
        alerts.append(
            Alert("score_drift", SCORE, score_drift, settings.psi_alert, f"score distribution PSI {score_drift:.3f}")
        )
    low, high = settings.oe_band
    for lag, r in sorted(realised.items()):
        if r["events"] < settings.min_events and r["expected_events"] < settings.min_events:
            continue
        oe, z = r["observed_expected"], r["oe_z"]
        if math.isfinite(oe) and (oe < low or oe > high) and abs(z) >= settings.oe_min_z:
            bound = low if oe < low else high
            message = f"scores of {lag} months ago: observed/expected {oe:.2f} (z {z:+.1f}), outside {low}-{high}"
            alerts.append(Alert("observed_expected", f"{lag}m", oe, bound, message))
        fall = r["expected_auroc"] - r["auroc"]
        if math.isfinite(fall) and fall >= settings.auroc_fall:
            message = (
                f"scores of {lag} months ago: realised AUROC {r['auroc']:.3f}, "
                f"{fall:.3f} below the {r['expected_auroc']:.3f} expected"
            )
            alerts.append(
                Alert("auroc_fall", f"{lag}m", r["auroc"], r["expected_auroc"] - settings.auroc_fall, message)
            )
    return alerts
