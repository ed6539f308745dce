"""Monitoring over time as charts and tables: one piece behind both the HTML report (`riskstrat monitor`,
`pipelines.monitor.write_report`) and the MDT workspace's monitoring page.

Input is what the weekly runs stored (`MonitoringHistory`: the `monitoring_metrics`, `monitoring_alerts` and
`quality_checks` rows); `monitoring_view` picks the series each chart shows and the tables beside them. Every
value is an aggregate (PSI, shares, ratios, AUROC, counts of checks); no person id is read or shown. The charts
are `charts.series_svg` (no inline style attributes, so they draw under the workspace's strict CSP too).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from html import escape
from typing import Any

import polars as pl

from models.settings import MonitoringSettings
from pipelines.publish.charts import Series, series_svg

METRICS_SCHEMA = {
    "as_of": pl.Date,
    "outcome": pl.String,
    "model_version": pl.String,
    "metric": pl.String,
    "subject": pl.String,
    "value": pl.Float64,
}
ALERTS_SCHEMA = {
    "as_of": pl.Date,
    "outcome": pl.String,
    "model_version": pl.String,
    "rule": pl.String,
    "subject": pl.String,
    "value": pl.Float64,
    "threshold": pl.Float64,
    "message": pl.String,
}
CHECKS_SCHEMA = {
    "batch_id": pl.String,
    "extract_date": pl.Date,
    "table": pl.String,
    "check": pl.String,
    "status": pl.String,
    "value": pl.Float64,
    "threshold": pl.Float64,
    "message": pl.String,
}
_SCHEMAS = {"metrics": METRICS_SCHEMA, "alerts": ALERTS_SCHEMA, "checks": CHECKS_SCHEMA}
TOP_DRIFT_CHARTED = 6  # features drawn in the drift chart: the most drifting in the newest week
TOP_DRIFT_LISTED = 10


@dataclass(frozen=True)
class MonitoringHistory:
    """What the weekly runs stored: aggregates only."""

    metrics: pl.DataFrame  # METRICS_SCHEMA
    alerts: pl.DataFrame  # ALERTS_SCHEMA
    checks: pl.DataFrame  # CHECKS_SCHEMA

    @property
    def weeks(self) -> int:
        return self.metrics["as_of"].n_unique()

    def to_json(self) -> str:
        """Columns as lists (dates as ISO text): a plain format any later version reads."""
        frames = {"metrics": self.metrics, "alerts": self.alerts, "checks": self.checks}
        return json.dumps(
            {
                name: {c: [v.isoformat() if isinstance(v, date) else v for v in frame[c].to_list()] for c in schema}
                for (name, schema), frame in zip(_SCHEMAS.items(), frames.values(), strict=True)
            }
        )

    @classmethod
    def from_json(cls, text: str) -> MonitoringHistory:
        data = json.loads(text)
        frames = {}
        for name, schema in _SCHEMAS.items():
            as_text = {c: (pl.String if t == pl.Date else t) for c, t in schema.items()}
            frame = pl.DataFrame(data[name], schema=as_text)
            frames[name] = frame.with_columns(pl.col(c).str.to_date() for c, t in schema.items() if t == pl.Date)
        return cls(**frames)


@dataclass(frozen=True)
class Chart:
    key: str  # a stable id for the page (and tests)
    title: str
    svg: str


@dataclass(frozen=True)
class MonitoringView:
    as_of: date
    outcome: str
    model_version: str
    weeks: int
    thresholds: str  # the rules, in one sentence
    charts: list[Chart]
    alerts_now: list[str]
    drift_now: pl.DataFrame  # feature, psi
    newest_checks: pl.DataFrame  # table, check, status, message
    quality_over_time: pl.DataFrame  # extract_date, errors, warnings, checks
    all_alerts: pl.DataFrame  # as_of, rule, subject, message


def _series(frame: pl.DataFrame, label: str | None = None, prefix: str = "") -> list[Series]:
    """One series per subject of `frame` (as_of, subject, value), labelled `label` or prefix + subject."""
    out = []
    for (subject,), part in sorted(frame.sort("as_of").partition_by("subject", as_dict=True).items()):
        name = label if label is not None else f"{prefix}{subject}"
        out.append(Series(name, list(zip(part["as_of"].to_list(), part["value"].to_list(), strict=True))))
    return out


def monitoring_view(history: MonitoringHistory, m: MonitoringSettings) -> MonitoringView:
    """The charts and tables of the newest monitored week and the weeks before it."""
    metrics = history.metrics
    latest = metrics["as_of"].max()
    now = metrics.filter(pl.col("as_of") == latest)
    drift_now = (
        now.filter(pl.col("metric") == "feature_psi")
        .sort("value", "subject", descending=[True, False])
        .select(pl.col("subject").alias("feature"), pl.col("value").alias("psi"))
    )
    top_now = drift_now.head(TOP_DRIFT_CHARTED)["feature"].to_list()

    def metric(name: str) -> pl.DataFrame:
        return metrics.filter(pl.col("metric") == name)

    checks = history.checks
    quality_over_time = (
        checks.group_by("extract_date")
        .agg(
            errors=(pl.col("status") == "error").sum(),
            warnings=(pl.col("status") == "warn").sum(),
            checks=pl.len(),
        )
        .sort("extract_date", descending=True)
    )
    gates = quality_over_time.sort("extract_date")
    gate_series = [
        Series(name, list(zip(gates["extract_date"], gates[name].cast(pl.Float64), strict=True)))
        for name in ("errors", "warnings")
        if gates.height
    ]

    weeks = (metrics["as_of"].min(), latest)

    def chart(key: str, title: str, series: list[Series], **marks: Any) -> Chart:
        return Chart(key, title, series_svg(series, title, span=weeks, **marks))

    charts = [
        chart(
            "feature-drift",
            "Feature drift: the most drifting features now (PSI)",
            _series(metric("feature_psi").filter(pl.col("subject").is_in(top_now))),
            line=m.psi_alert,
        ),
        chart(
            "score-drift",
            "Score drift (PSI) and list churn (share of the list new this week)",
            _series(metric("score_psi"), "score PSI") + _series(metric("list_churn"), "list churn"),
            line=m.psi_alert,
        ),
        chart(
            "auroc",
            "AUROC: expected from the calibrated scores, and realised on closed horizons",
            _series(metric("expected_auroc"), "expected now")
            + _series(metric("realised_expected_auroc"), prefix="expected, scores of ")
            + _series(metric("realised_auroc"), prefix="realised, scores of "),
        ),
        chart(
            "observed-expected",
            "Observed / expected events of the scores issued earlier",
            _series(metric("realised_observed_expected"), prefix="scores of "),
            band=m.oe_band,
            band_label=f"band {m.oe_band[0]}-{m.oe_band[1]}",
        ),
        chart(
            "calibration-slope",
            "Calibration slope of the scores issued earlier (1 is ideal)",
            _series(metric("realised_calibration_slope"), prefix="scores of "),
            line=1.0,
            line_label="ideal",
        ),
        chart("gates", "Data-quality gates: checks failed and warned per batch date", gate_series, whole_numbers=True),
    ]
    newest_checks = checks.filter(pl.col("extract_date") == checks["extract_date"].max()) if checks.height else checks
    return MonitoringView(
        as_of=latest,
        outcome=now["outcome"][0] if now.height else "",
        model_version=now["model_version"][0] if now.height else "",
        weeks=history.weeks,
        thresholds=(
            f"PSI alert at {m.psi_alert} for the top {m.top_features} features and the score (any feature at "
            f"{m.psi_alert_any_feature}); observed/expected band {m.oe_band[0]}-{m.oe_band[1]} (beyond {m.oe_min_z} "
            f"standard errors); realised AUROC alert at {m.auroc_fall} below expected."
        ),
        charts=charts,
        alerts_now=history.alerts.filter(pl.col("as_of") == latest)["message"].to_list(),
        drift_now=drift_now.head(TOP_DRIFT_LISTED),
        newest_checks=newest_checks.select("table", "check", "status", "message"),
        quality_over_time=quality_over_time,
        all_alerts=history.alerts.sort("as_of", "rule", "subject", descending=[True, False, False]).select(
            "as_of", "rule", "subject", "message"
        ),
    )


# ---------------------------------------------------------------------------------------------- the report


def _table(frame: pl.DataFrame) -> str:
    if frame.height == 0:
        return "<p>None.</p>"
    head = "".join(f"<th>{escape(c)}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{escape(cell(v))}</td>" for v in row) + "</tr>" for row in frame.iter_rows())
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def cell(value: Any) -> str:
    """A table cell's text (three decimals for measures)."""
    if isinstance(value, float):
        return f"{value:.3f}"
    return "" if value is None else str(value)


def _alert_block(alerts: list[str]) -> str:
    if not alerts:
        return '<p class="ok">No alert this week.</p>'
    items = "".join(f"<li>{escape(m)}</li>" for m in alerts)
    return f'<div class="alert"><b>Alerts this week (a refit is requested):</b><ul>{items}</ul></div>'


def report_html(view: MonitoringView) -> str:
    """The standalone HTML report (no external assets)."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>riskstrat monitoring {escape(str(view.as_of))}</title>
<style>
body {{ font-family: system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif; margin: 24px; color: #1F2933; }}
table {{ border-collapse: collapse; font-size: 13px; margin: 6px 0 18px; }}
td, th {{ border-bottom: 1px solid #E3E7EB; padding: 3px 10px; text-align: left; }}
.alert {{ background: #FDECEA; border-left: 4px solid #C0392B; padding: 8px 12px; }}
.ok {{ background: #EAF6EE; border-left: 4px solid #1A9850; padding: 8px 12px; }}
.grid {{ display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }}
.chart {{ max-width: 900px; margin: 8px 0 14px; }}
</style></head><body>
<h1>Monitoring: {escape(view.outcome)} model {escape(view.model_version)}, as of {escape(str(view.as_of))}</h1>
<p>{view.weeks} weeks monitored, against the current model's training data. {escape(view.thresholds)}
Aggregates only.</p>
{_alert_block(view.alerts_now)}
<h2>Over time</h2>
{"".join(f'<div class="chart" id="{c.key}">{c.svg}</div>' for c in view.charts)}
<div class="grid"><div><h2>Most drifting features now</h2>
{_table(view.drift_now)}</div>
<div><h2>Data quality, newest batch</h2>
{_table(view.newest_checks)}</div></div>
<h2>Data quality over time</h2>{_table(view.quality_over_time)}
<h2>Every alert</h2>{_table(view.all_alerts)}
</body></html>
"""
