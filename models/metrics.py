"""Evaluation metrics for risk scores, with seeded bootstrap 95% intervals.

Definitions (all reported on the evaluation rows, one row per person at the evaluation index date):

- AUROC: area under the ROC curve; tied scores count one half (trapezoid rule, as scikit-learn).
- AUPRC: average precision, sum over distinct thresholds of (R_k - R_{k-1}) * P_k (scikit-learn's
  `average_precision_score`, no interpolation).
- Brier: mean squared difference between the predicted probability and the 0/1 outcome.
- Calibration slope: b in the logistic recalibration model logit P(y = 1) = a + b * logit(p); 1 is ideal,
  < 1 means predictions are too extreme.
- Calibration intercept: a in logit P(y = 1) = a + logit(p), i.e. with the slope fixed at 1
  ("calibration-in-the-large" intercept of Van Calster et al. 2016/2019); 0 is ideal, > 0 means the model
  under-predicts on average. Both are fitted by Newton's method on logit(clip(p, 1e-6, 1 - 1e-6)).
- Top-k operational figures for each fraction f in settings.top_fractions: k = ceil(f * n) people with the
  highest scores; events captured = events among them, PPV = captured / k, sensitivity = captured / all
  events. Ties at the cut are broken by a seeded random key, so the figures are deterministic.
- Deciles: rows are grouped by rank of the score (decile 10 = highest); observed rate vs mean predicted.

Intervals: percentile bootstrap over rows (settings.bootstrap_samples replicates, seeded). Each replicate
draws n row indices once and every metric is computed from the same draw. The rows are sorted by score once
and a replicate is represented by how many times each row was drawn, so ranking metrics are cumulative sums
in that fixed order (O(n) per replicate, no re-sorting). Using the same seed for two scores on the same rows
gives paired replicates.

Ranking vs probability: `rank_score` (optional) orders people for the discrimination and top-k metrics,
while `p` is used for Brier and calibration. Pass the raw log-odds of a calibrated model: the same order as its
probabilities (the calibrators are strictly increasing), and a baseline's probability map may have steps.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import polars as pl

from models.settings import TrainingSettings

PROBABILITY_CLIP = 1e-6
CURVE_POINTS = 200
SCALAR_METRICS: tuple[str, ...] = ("auroc", "auprc", "brier", "calibration_slope", "calibration_intercept")


def top_label(fraction: float) -> str:
    """Metric-name suffix for a top fraction: 0.005 -> 'top_0.5pct'."""
    return f"top_{fraction * 100:g}pct"


def _as_arrays(y: Any, p: Any, rank_score: Any | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y_arr = np.asarray(y, dtype=np.float64).ravel()
    p_arr = np.asarray(p, dtype=np.float64).ravel()
    s_arr = p_arr if rank_score is None else np.asarray(rank_score, dtype=np.float64).ravel()
    if not (len(y_arr) == len(p_arr) == len(s_arr)):
        raise ValueError(f"y, p and rank_score lengths differ: {len(y_arr)}, {len(p_arr)}, {len(s_arr)}")
    if np.isnan(y_arr).any() or not np.isin(y_arr, (0.0, 1.0)).all():
        raise ValueError("y must be 0/1 with no missing values (drop rows not at risk first)")
    if np.isnan(p_arr).any() or np.isnan(s_arr).any():
        raise ValueError("p and rank_score must not contain NaN")
    return y_arr, p_arr, s_arr


class _SortedScores:
    """Rows sorted by descending score once; bootstrap replicates reuse the order via row weights."""

    def __init__(self, y: np.ndarray, p: np.ndarray, score: np.ndarray, seed: int) -> None:
        n = len(y)
        tie_break = np.random.default_rng(seed).random(n)
        # lexsort sorts by the last key first: descending score, then the seeded random key.
        self.order = np.lexsort((tie_break, -score))
        self.y = y[self.order]
        self.p = p[self.order]
        # Calibration fits run on distinct logit(p) values with summed weights and events: identical
        # results, and far fewer points when p has ties (a baseline's step map has a few dozen values).
        self.logit_values, self.logit_index = np.unique(_logit(self.p), return_inverse=True)
        self.recalibration_start = (0.0, 1.0)  # (intercept, slope); warm start for bootstrap replicates
        self.offset_start = 0.0
        sorted_score = score[self.order]
        # True at the last row of each run of equal scores: thresholds for ROC / PR.
        self.group_end = np.r_[sorted_score[1:] != sorted_score[:-1], True]
        self.n = n
        # Decile by rank: decile 10 holds the highest scores.
        position_from_bottom = n - 1 - np.arange(n)
        self.decile = (position_from_bottom * 10 // max(n, 1)) + 1
        # Deciles are runs of rows in this order: the last row of each run, and its decile's index (0-9).
        self.decile_run_end = np.flatnonzero(np.r_[self.decile[1:] != self.decile[:-1], True])
        self.decile_run_index = self.decile[self.decile_run_end] - 1
        self.squared_error = (p[self.order] - y[self.order]) ** 2

    def metrics(self, w: np.ndarray, fractions: tuple[float, ...]) -> dict[str, float]:
        """All scalar metrics for rows weighted by w (w = 1 everywhere is the original sample)."""
        return self.metrics_and_deciles(w, fractions)[0]

    def metrics_and_deciles(
        self, w: np.ndarray, fractions: tuple[float, ...]
    ) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
        """`metrics` plus the weight and events per decile (index 0 = decile 1), read off the same cumulative
        sums (the weights are counts and y is 0/1, so these sums are exact whatever the order of addition)."""
        y, p = self.y, self.p
        wy = w * y
        tp = np.cumsum(wy)
        cum_w = np.cumsum(w)
        fp = cum_w - tp
        total = cum_w[-1]
        events = tp[-1]
        non_events = fp[-1]
        out: dict[str, float] = {}
        tp_g = np.r_[0.0, tp[self.group_end]]
        fp_g = np.r_[0.0, fp[self.group_end]]
        if events > 0 and non_events > 0:
            out["auroc"] = float(np.sum(np.diff(fp_g) * (tp_g[1:] + tp_g[:-1]) / 2.0) / (events * non_events))
            predicted_positive = tp_g[1:] + fp_g[1:]
            precision = np.divide(
                tp_g[1:], predicted_positive, out=np.zeros_like(predicted_positive), where=predicted_positive > 0
            )
            out["auprc"] = float(np.sum(np.diff(tp_g) / events * precision))
        else:
            out["auroc"] = math.nan
            out["auprc"] = math.nan
        out["brier"] = float(np.sum(w * self.squared_error) / total)
        total_at = np.bincount(self.logit_index, weights=w, minlength=len(self.logit_values))
        events_at = np.bincount(self.logit_index, weights=wy, minlength=len(self.logit_values))
        drawn = total_at > 0
        x_at, total_at, events_at = self.logit_values[drawn], total_at[drawn], events_at[drawn]
        slope, _ = _logistic_recalibration(x_at, events_at, total_at, start=self.recalibration_start)
        out["calibration_slope"] = slope
        out["calibration_intercept"] = _calibration_in_the_large(x_at, events_at, total_at, start=self.offset_start)
        out["observed_rate"] = float(events / total)
        out["mean_predicted"] = float(np.sum(w * p) / total)
        for fraction in fractions:
            k = max(1, math.ceil(fraction * total))
            # First row at which the cumulative weight reaches k; it may be taken only in part.
            i = int(np.searchsorted(cum_w, k, side="left"))
            i = min(i, len(cum_w) - 1)
            captured = (tp[i] - wy[i]) + (k - (cum_w[i] - w[i])) * y[i]
            label = top_label(fraction)
            out[f"events_captured_{label}"] = float(captured)
            out[f"ppv_{label}"] = float(captured / k)
            out[f"sensitivity_{label}"] = float(captured / events) if events > 0 else math.nan
        decile_count, decile_events = np.zeros(10), np.zeros(10)
        decile_count[self.decile_run_index] = np.diff(np.r_[0.0, cum_w[self.decile_run_end]])
        decile_events[self.decile_run_index] = np.diff(np.r_[0.0, tp[self.decile_run_end]])
        return out, decile_count, decile_events

    def decile_sums(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Weight, events and summed predictions per decile (index 0 = decile 1)."""
        count = np.bincount(self.decile - 1, weights=w, minlength=10)
        events = np.bincount(self.decile - 1, weights=w * self.y, minlength=10)
        predicted = np.bincount(self.decile - 1, weights=w * self.p, minlength=10)
        return count, events, predicted

    def curves(self) -> dict[str, dict[str, list[float]]]:
        """ROC, precision-recall and gains curves on the original sample, thinned to about CURVE_POINTS."""
        tp = np.cumsum(self.y)
        fp = np.arange(1, self.n + 1) - tp
        events, non_events = tp[-1], fp[-1]
        ends = np.flatnonzero(self.group_end)
        keep = ends[np.unique(np.linspace(0, len(ends) - 1, min(len(ends), CURVE_POINTS)).round().astype(int))]
        tp_k, fp_k = tp[keep], fp[keep]
        curves: dict[str, dict[str, list[float]]] = {}
        if events > 0 and non_events > 0:
            curves["roc"] = {
                "fpr": _rounded(np.r_[0.0, fp_k / non_events]),
                "tpr": _rounded(np.r_[0.0, tp_k / events]),
            }
            curves["precision_recall"] = {
                "recall": _rounded(tp_k / events),
                "precision": _rounded(tp_k / (tp_k + fp_k)),
            }
            # Linear points for the gains curve plus log-spaced ones so the lift at the top 0.5% is resolved.
            linear = np.linspace(1, self.n, min(self.n, CURVE_POINTS))
            logarithmic = np.geomspace(1, self.n, min(self.n, CURVE_POINTS // 2))
            rows = np.unique(np.r_[linear, logarithmic].round().astype(int))
            curves["gains"] = {
                "population_fraction": _rounded(np.r_[0.0, rows / self.n]),
                "events_fraction": _rounded(np.r_[0.0, tp[rows - 1] / events]),
            }
        return curves


def _rounded(values: np.ndarray) -> list[float]:
    # Curves are for plots: six decimals keep the JSON small without visible loss.
    return [round(float(v), 6) for v in values]


def _logit(p: np.ndarray) -> np.ndarray:
    clipped = np.clip(p, PROBABILITY_CLIP, 1.0 - PROBABILITY_CLIP)
    return np.log(clipped / (1.0 - clipped))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free logistic


def _log_likelihood(a: float, b: float, x: np.ndarray, events: np.ndarray, total: np.ndarray) -> float:
    z = a + b * x
    # Binomial log-likelihood; log(1 + exp(z)) computed without overflow.
    return float(np.sum(events * z - total * np.logaddexp(0.0, z)))


def _logistic_recalibration(
    x: np.ndarray,
    events: np.ndarray,
    total: np.ndarray,
    start: tuple[float, float] = (0.0, 1.0),
    max_iter: int = 100,
    tol: float = 1e-10,
) -> tuple[float, float]:
    """Logistic regression of events/total on x by damped Newton; returns (slope, intercept).

    `start` is (intercept, slope); (0, 1), a calibrated model, is the natural start. Step halving keeps the
    log-likelihood increasing: plain Newton can overshoot when predictions sit at the clipping bounds
    (logit of 1e-6), which happens with badly calibrated scores.
    """
    a, b = start
    current = _log_likelihood(a, b, x, events, total)
    for _ in range(max_iter):
        mu = _sigmoid(a + b * x)
        r = events - total * mu
        h = total * mu * (1.0 - mu)
        g = np.array([r.sum(), (r * x).sum()])
        hx = h * x
        hess = np.array([[h.sum(), hx.sum()], [hx.sum(), (hx * x).sum()]])
        try:
            step = np.linalg.solve(hess, g)
        except np.linalg.LinAlgError:
            return math.nan, math.nan
        scale = 1.0
        while scale > 1e-8:
            candidate = _log_likelihood(a + scale * step[0], b + scale * step[1], x, events, total)
            if candidate >= current - 1e-12 * abs(current):
                break
            scale /= 2.0
        else:
            break  # no ascent direction left: at the optimum up to rounding
        a, b, current = a + scale * step[0], b + scale * step[1], candidate
        if np.abs(scale * step).max() < tol:
            break
    if not (np.isfinite(a) and np.isfinite(b)):
        return math.nan, math.nan
    return float(b), float(a)


def _calibration_in_the_large(
    x: np.ndarray, events: np.ndarray, total: np.ndarray, start: float = 0.0, max_iter: int = 100
) -> float:
    """a in logit P(y=1) = a + x (offset x, slope fixed at 1), by Newton's method (concave in one variable)."""
    a = start
    for _ in range(max_iter):
        mu = _sigmoid(a + x)
        h = float(np.sum(total * mu * (1.0 - mu)))
        if h <= 0:
            return math.nan
        step = float(np.sum(events - total * mu)) / h
        a += step
        if abs(step) < 1e-12:
            break
    return float(a) if math.isfinite(a) else math.nan


def _interval(estimate: float, replicates: np.ndarray) -> dict[str, float | None]:
    finite = replicates[np.isfinite(replicates)]
    if not np.isfinite(estimate):
        return {"estimate": None, "lo": None, "hi": None}
    if len(finite) == 0:
        return {"estimate": float(estimate), "lo": None, "hi": None}
    lo, hi = np.percentile(finite, [2.5, 97.5])
    return {"estimate": float(estimate), "lo": float(lo), "hi": float(hi)}


def evaluate(
    y: Any,
    p: Any,
    settings: TrainingSettings,
    seed: int | None = None,
    rank_score: Any | None = None,
) -> dict[str, Any]:
    """Metrics with bootstrap 95% intervals, deciles and curves; the result is JSON-serialisable.

    Returns {"n", "events", "prevalence", "metrics": {name: {"estimate", "lo", "hi"}}, "deciles": [...],
    "curves": {...}, "bootstrap": {...}, "definitions": {...}}. Metric names: auroc, auprc, brier,
    calibration_slope, calibration_intercept, observed_rate, mean_predicted, and for each top fraction
    ppv_top_<x>pct, sensitivity_top_<x>pct, events_captured_top_<x>pct.
    """
    seed = settings.seed if seed is None else seed
    y_arr, p_arr, s_arr = _as_arrays(y, p, rank_score)
    n = len(y_arr)
    if n == 0:
        raise ValueError("cannot evaluate zero rows")
    fractions = tuple(settings.top_fractions)
    sorted_scores = _SortedScores(y_arr, p_arr, s_arr, seed)
    ones = np.ones(n)
    point = sorted_scores.metrics(ones, fractions)
    if math.isfinite(point["calibration_slope"]) and math.isfinite(point["calibration_intercept"]):
        # Replicates start from the full-sample fit: they converge in a couple of steps.
        intercept_free = _logistic_recalibration(
            sorted_scores.logit_values,
            np.bincount(sorted_scores.logit_index, weights=sorted_scores.y),
            np.bincount(sorted_scores.logit_index).astype(np.float64),
        )[1]
        sorted_scores.recalibration_start = (intercept_free, point["calibration_slope"])
        sorted_scores.offset_start = point["calibration_intercept"]
    count0, events0, predicted0 = sorted_scores.decile_sums(ones)

    rng = np.random.default_rng(seed)
    n_boot = settings.bootstrap_samples
    replicates: dict[str, np.ndarray] = {name: np.full(n_boot, np.nan) for name in point}
    decile_observed = np.full((n_boot, 10), np.nan)
    for b in range(n_boot):
        draw = rng.integers(0, n, size=n)  # one resample of row indices per replicate
        w = np.bincount(draw, minlength=n)[sorted_scores.order].astype(np.float64)
        values, count_b, events_b = sorted_scores.metrics_and_deciles(w, fractions)
        for name, value in values.items():
            replicates[name][b] = value
        decile_observed[b] = np.divide(events_b, count_b, out=np.full(10, np.nan), where=count_b > 0)

    metrics = {name: _interval(point[name], replicates[name]) for name in point}
    deciles = []
    for d in range(10):
        if count0[d] == 0:
            continue
        observed = decile_observed[:, d]
        finite = observed[np.isfinite(observed)]
        lo, hi = np.percentile(finite, [2.5, 97.5]) if len(finite) else (math.nan, math.nan)
        deciles.append(
            {
                "decile": d + 1,
                "n": int(count0[d]),
                "events": int(events0[d]),
                "mean_predicted": float(predicted0[d] / count0[d]),
                "observed_rate": float(events0[d] / count0[d]),
                "observed_lo": None if math.isnan(lo) else float(lo),
                "observed_hi": None if math.isnan(hi) else float(hi),
            }
        )
    return {
        "n": n,
        "events": int(y_arr.sum()),
        "prevalence": float(y_arr.mean()),
        "metrics": metrics,
        "top_fractions": list(fractions),
        "deciles": deciles,
        "curves": sorted_scores.curves(),
        "bootstrap": {"samples": n_boot, "seed": seed, "method": "percentile, rows resampled with replacement"},
        "definitions": {
            "calibration_slope": "b in logit P(y=1) = a + b*logit(p)",
            "calibration_intercept": "a in logit P(y=1) = a + logit(p) (slope fixed at 1)",
            "auprc": "average precision (step-wise, no interpolation)",
            "top_k": "k = ceil(fraction * n) highest scores; ties broken by a seeded random key",
            "deciles": "by rank of the score, decile 10 = highest",
        },
    }


def metric_estimates(evaluation: Mapping[str, Any]) -> dict[str, float | None]:
    """{metric: estimate} from an `evaluate` result."""
    return {name: values["estimate"] for name, values in evaluation["metrics"].items()}


def subgroup_metrics(
    y: Any,
    p: Any,
    groups: Mapping[str, Any],
    *,
    rank_score: Any | None = None,
    flag_fraction: float = 0.05,
    min_n: int = 100,
    min_events: int = 10,
    seed: int = 0,
) -> pl.DataFrame:
    """Performance by subgroup for each grouping (e.g. age band, sex, deprivation quintile, ethnicity).

    One row per (grouping, group): n, events, observed_rate, mean_predicted, AUROC (null when the group has
    fewer than `min_n` rows or fewer than `min_events` events or non-events), calibration in the large
    (observed rate - mean predicted: > 0 means the model under-predicts for the group), and the false
    positive and false negative rates of flagging the population's top `flag_fraction` (the cut is set on the
    whole population, as a service would use it, not within each group) with 95% Wilson intervals (`_lo`, `_hi`;
    they treat the cut as fixed). Null group values are a group of their own, labelled "(missing)".
    """
    y_arr, p_arr, s_arr = _as_arrays(y, p, rank_score)
    n = len(y_arr)
    k = max(1, math.ceil(flag_fraction * n))
    tie_break = np.random.default_rng(seed).random(n)
    order = np.lexsort((tie_break, -s_arr))
    flagged = np.zeros(n, dtype=bool)
    flagged[order[:k]] = True

    rows: list[dict[str, Any]] = []
    for grouping, values in groups.items():
        labels = pl.Series("group", values).cast(pl.String).fill_null("(missing)").to_numpy()
        if len(labels) != n:
            raise ValueError(f"grouping {grouping!r} has {len(labels)} values for {n} rows")
        for group in sorted(set(labels.tolist())):
            mask = labels == group
            yg, pg, sg, fg = y_arr[mask], p_arr[mask], s_arr[mask], flagged[mask]
            n_g = int(mask.sum())
            events = int(yg.sum())
            non_events = n_g - events
            auroc: float | None = None
            if n_g >= min_n and events >= min_events and non_events >= min_events:
                auroc = auroc_score(yg, sg)
            rows.append(
                {
                    "grouping": grouping,
                    "group": group,
                    "n": n_g,
                    "events": events,
                    "observed_rate": float(yg.mean()),
                    "mean_predicted": float(pg.mean()),
                    "auroc": auroc,
                    "calibration_in_the_large": float(yg.mean() - pg.mean()),
                    "flagged_fraction": float(fg.mean()),
                    **_rate_with_interval("false_positive_rate", int((fg & (yg == 0)).sum()), non_events),
                    **_rate_with_interval("false_negative_rate", int((~fg & (yg == 1)).sum()), events),
                }
            )
    schema = {
        "grouping": pl.String,
        "group": pl.String,
        "n": pl.Int64,
        "events": pl.Int64,
        "observed_rate": pl.Float64,
        "mean_predicted": pl.Float64,
        "auroc": pl.Float64,
        "calibration_in_the_large": pl.Float64,
        "flagged_fraction": pl.Float64,
        **{f"{rate}{end}": pl.Float64 for rate in ERROR_RATES for end in ("", "_lo", "_hi")},
    }
    return pl.DataFrame(rows, schema=schema)


def auroc_standard_error(auroc: float, events: int, non_events: int) -> float:
    """Hanley and McNeil's (1982) standard error of an AUROC from `events` and `non_events`."""
    if events <= 0 or non_events <= 0:
        return math.inf
    q1, q2 = auroc / (2 - auroc), 2 * auroc**2 / (1 + auroc)
    variance = auroc * (1 - auroc) + (events - 1) * (q1 - auroc**2) + (non_events - 1) * (q2 - auroc**2)
    return math.sqrt(max(variance, 0.0) / (events * non_events))


ERROR_RATES = ("false_positive_rate", "false_negative_rate")


def wilson_interval(successes: int, trials: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (sound near 0 and 1 and for small groups, unlike p +- 1.96 se)."""
    if trials <= 0:
        return math.nan, math.nan
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


def _rate_with_interval(name: str, count: int, total: int) -> dict[str, float | None]:
    """{name, name_lo, name_hi}: count / total with its Wilson interval (None without any rows to count)."""
    if total <= 0:
        return {name: None, f"{name}_lo": None, f"{name}_hi": None}
    lo, hi = wilson_interval(count, total)
    return {name: count / total, f"{name}_lo": lo, f"{name}_hi": hi}


def auroc_score(y: np.ndarray, score: np.ndarray) -> float:
    """Mann-Whitney AUROC with mid-ranks for ties."""
    from scipy.stats import rankdata  # scipy comes with scikit-learn

    ranks = rankdata(score)
    events = y.sum()
    non_events = len(y) - events
    return float((ranks[y == 1].sum() - events * (events + 1) / 2.0) / (events * non_events))
