"""Per-person explanations: why is this person on the list?

Contributions are TreeSHAP values from LightGBM's own `predict(..., pred_contrib=True)`, on the log-odds
scale of the *raw* booster, before calibration: for every row, base value + sum of contributions = raw
log-odds exactly. The calibrated probability is a monotone function of that log-odds, so a feature that
pushes the log-odds up pushes the probability up too, but contributions do not add up on the probability
scale. TreeSHAP is expensive (about 1 ms per row here): explain the people on the lists, not everyone.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import polars as pl

from models.split import INDEX_DATE_COL, PERSON_COL
from models.training import TrainedModel

EXPLANATION_SCALE = "log-odds"


class ExplanationMismatchError(AssertionError):
    """LightGBM's and shap's contributions disagree by more than the tolerance."""


def explain(model: TrainedModel, frame: pl.DataFrame, top_n: int | None = 5) -> pl.DataFrame:
    """Long table of the `top_n` largest |contributions| per row (all features when top_n is None).

    Columns: person_id, index_date (when the frame has one), feature, value (the feature's value as text;
    null when missing), contribution (log-odds), rank (1 = largest |contribution|; ties keep feature order),
    base_value (the model's expected raw output), logodds (the row's raw output = base_value + all
    contributions) and scale ("log-odds"). Rows appear in the frame's order.
    """
    if frame.height == 0:
        return _empty_explanations(INDEX_DATE_COL in frame.columns)
    contributions = model.contributions(frame)
    per_feature = contributions[:, :-1]
    base_value = contributions[:, -1]
    logodds = contributions.sum(axis=1)
    n_rows, n_features = per_feature.shape
    keep = n_features if top_n is None else max(0, min(top_n, n_features))

    # Stable sort on -|c| so equal magnitudes keep the model's feature order (deterministic output).
    order = np.argsort(-np.abs(per_feature), axis=1, kind="stable")[:, :keep]
    row_index = np.repeat(np.arange(n_rows), keep)
    feature_index = order.ravel()
    values_as_text = _values_as_text(model, frame)

    columns: dict[str, Any] = {PERSON_COL: frame.get_column(PERSON_COL).gather(row_index)}
    if INDEX_DATE_COL in frame.columns:
        columns[INDEX_DATE_COL] = frame.get_column(INDEX_DATE_COL).gather(row_index)
    feature_names = np.asarray(model.feature_cols, dtype=object)
    columns.update(
        {
            "feature": pl.Series("feature", feature_names[feature_index].tolist(), dtype=pl.String),
            "value": pl.Series("value", values_as_text[row_index, feature_index].tolist(), dtype=pl.String),
            "contribution": per_feature[row_index, feature_index],
            "rank": np.tile(np.arange(1, keep + 1), n_rows).astype(np.int64),
            "base_value": base_value[row_index],
            "logodds": logodds[row_index],
            "scale": pl.Series("scale", [EXPLANATION_SCALE] * len(row_index), dtype=pl.String),
        }
    )
    return pl.DataFrame(columns)


def _empty_explanations(with_index_date: bool) -> pl.DataFrame:
    schema: dict[str, Any] = {PERSON_COL: pl.String}
    if with_index_date:
        schema[INDEX_DATE_COL] = pl.Date
    schema.update(
        {
            "feature": pl.String,
            "value": pl.String,
            "contribution": pl.Float64,
            "rank": pl.Int64,
            "base_value": pl.Float64,
            "logodds": pl.Float64,
            "scale": pl.String,
        }
    )
    return pl.DataFrame(schema=schema)


def _values_as_text(model: TrainedModel, frame: pl.DataFrame) -> np.ndarray:
    """n x features object array of display strings (None for missing); floats to 4 significant figures."""
    exprs = []
    for name in model.feature_cols:
        dtype = frame.schema[name]
        if dtype.is_float():
            exprs.append(pl.col(name).fill_nan(None).round_sig_figs(4).cast(pl.String))
        else:
            exprs.append(pl.col(name).cast(pl.String))
    texts = frame.select(exprs)
    return np.column_stack([texts.get_column(name).to_numpy() for name in model.feature_cols]).astype(object)


def check_against_shap(
    model: TrainedModel,
    frame: pl.DataFrame,
    tol: float = 1e-6,
    independent: bool | None = None,
) -> float:
    """Max |shap.TreeExplainer - LightGBM pred_contrib| over the rows of `frame` (features and base value).

    Raises ExplanationMismatchError when it exceeds `tol`.

    `independent`: shap 0.51's TreeExplainer, given a LightGBM booster, simply calls LightGBM's own C++
    TreeSHAP (`pred_contrib=True`), so by default the comparison checks the wiring (feature order, base value,
    output shape) rather than the algorithm. With independent=True shap's own TreeSHAP implementation is
    used instead, a genuinely separate computation; it mishandles LightGBM's categorical splits, so it is
    only allowed for models without categorical features. None (default) = independent when possible.
    """
    with warnings.catch_warnings():
        # shap's import touches matplotlib colormap APIs that are pending deprecation; not ours to fix.
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        import shap

    if independent is None:
        independent = not model.categorical_cols
    if independent and model.categorical_cols:
        raise ValueError("shap's own TreeSHAP does not handle LightGBM categorical splits; use independent=False")
    x = model.design_matrix(frame)
    explainer = shap.TreeExplainer(model.booster_)
    if independent:
        # Skip the shortcut to LightGBM's C++ code: shap then walks the trees it parsed itself.
        if explainer.model.trees is None:
            raise RuntimeError("shap could not parse the LightGBM trees")
        explainer.model.model_type = "internal"
    with warnings.catch_warnings():
        # shap warns that LightGBM binary output "changed to a list"; the shape is handled below.
        warnings.simplefilter("ignore", UserWarning)
        shap_values = explainer.shap_values(x, check_additivity=False)
    expected_value = explainer.expected_value
    if isinstance(shap_values, list):  # shap may return [negative class, positive class] or [values]
        shap_values = shap_values[-1]
        expected_value = np.atleast_1d(expected_value)[-1]
    shap_values = np.asarray(shap_values, dtype=np.float64)
    if shap_values.ndim == 3:  # (rows, features, outputs)
        shap_values = shap_values[:, :, -1]
        expected_value = np.atleast_1d(expected_value)[-1]
    base_value = float(np.atleast_1d(np.asarray(expected_value, dtype=np.float64))[-1])
    contributions = model.contributions(frame)
    difference = max(
        float(np.abs(shap_values - contributions[:, :-1]).max(initial=0.0)),
        float(np.abs(base_value - contributions[:, -1]).max(initial=0.0)),
    )
    if difference > tol:
        raise ExplanationMismatchError(f"shap and LightGBM contributions differ by {difference:.3g} > {tol:g}")
    return difference
