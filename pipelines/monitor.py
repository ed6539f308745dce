"""Weekly monitoring against the current model's training data (models.monitoring holds the measures and
rules): computed after scoring, stored in the warehouse (`monitoring_metrics`, `monitoring_alerts`), shown over
time in an HTML report and on the MDT workspace's monitoring page (both drawn by `pipelines.publish.monitoring`),
and turned into a run of the retrain deployment when a rule fires.

Monitored: the ranking outcome's model (the one whose list teams act on). Every stored value is an aggregate
(PSI, shares, ratios, AUROC); no person-level value is stored or logged.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from data_contracts.dates import add_months
from data_contracts.errors import NotReadyError
from data_contracts.outcomes import OUTCOMES_BY_NAME
from features.inputs import Tables
from features.outcomes import label_outcomes
from models.monitoring import (
    Alert,
    expected_performance,
    feature_psi,
    horizon_probability,
    list_churn,
    realised_performance,
    refit_alerts,
    score_psi,
    top_features,
)
from pipelines.publish.monitoring import (
    ALERTS_SCHEMA,
    CHECKS_SCHEMA,
    METRICS_SCHEMA,
    MonitoringHistory,
    monitoring_view,
    report_html,
)
from pipelines.settings import Settings
from pipelines.warehouse import WAREHOUSE_TABLES, connect, previous_lists, read_tables, tables_present

log = logging.getLogger("riskstrat.monitor")

RETRAIN_DEPLOYMENT = "train/riskstrat-retrain"
# A stored score counts as "issued `lag` months ago" when it is at most this much older than that date.
ISSUED_TOLERANCE_DAYS = 14


@dataclass
class MonitorReport:
    as_of: date
    outcome: str
    model_version: str
    feature_drift: pl.DataFrame
    score_psi: float | None
    list_churn: float | None
    expected: dict[str, float]
    realised: dict[int, dict[str, float]]
    top_features: list[str]
    alerts: list[Alert] = field(default_factory=list)

    def metrics(self) -> list[tuple[str, str, float]]:
        """(metric, subject, value) rows as stored."""
        rows = [("feature_psi", r["feature"], r["psi"]) for r in self.feature_drift.iter_rows(named=True)]
        if self.score_psi is not None:
            rows.append(("score_psi", "score", self.score_psi))
        if self.list_churn is not None:
            rows.append(("list_churn", "list", self.list_churn))
        rows += [(name, "now", value) for name, value in self.expected.items()]
        for lag, values in self.realised.items():
            rows += [(f"realised_{name}", f"{lag}m", value) for name, value in values.items()]
        return [(m, s, float(v)) for m, s, v in rows if v is not None and math.isfinite(float(v))]

    def summary(self) -> dict[str, Any]:
        """Aggregates only: for logs and Prefect artifacts."""
        return {
            "as_of": str(self.as_of),
            "model": f"{self.outcome} {self.model_version}",
            "top_drift": self.feature_drift.head(5).to_dicts(),
            "score_psi": self.score_psi,
            "list_churn": self.list_churn,
            **self.expected,
            "realised": {f"{lag}m": v for lag, v in self.realised.items()},
            "alerts": [a.message for a in self.alerts],
        }


def _issued_scores(db_path: Path, outcome: str, target: date) -> tuple[date, pl.DataFrame] | None:
    """The stored scores issued on or before `target` (and not much earlier), with their date."""
    with connect(db_path) as con:
        if "risk_scores" not in tables_present(con):
            return None
        found = con.execute(
            "SELECT max(as_of) FROM risk_scores WHERE outcome = ? AND as_of <= ? AND as_of >= ?",
            [outcome, target, target - timedelta(days=ISSUED_TOLERANCE_DAYS)],
        ).fetchall()[0][0]
        if found is None:
            return None
        scores = con.sql(
            "SELECT person_id, risk FROM risk_scores WHERE outcome = $1 AND as_of = $2 ORDER BY person_id",
            params=[outcome, found],
        ).pl()
    return found, scores


def realised(settings: Settings, tables: Tables, outcome: str, as_of: date) -> dict[int, dict[str, float]]:
    """Realised performance of the scores issued each monitored lag before `as_of`, on the closed part of their
    horizon (horizons longer than the model's are not monitored)."""
    horizon = settings.outcomes.horizon_months
    out: dict[int, dict[str, float]] = {}
    for lag in settings.monitoring.realised_lags_months:
        if lag > horizon:
            continue
        issued = _issued_scores(settings.db, outcome, add_months(as_of, -lag))
        if issued is None:
            continue
        issued_on, scores = issued
        if add_months(issued_on, lag) > as_of:
            continue  # not closed yet
        closed = dataclasses.replace(settings.outcomes, horizon_months=lag)
        labels = label_outcomes(tables, issued_on, closed).select("person_id", outcome).collect()
        joined = scores.join(labels, on="person_id", how="inner").drop_nulls(outcome)
        if joined.height == 0:
            continue
        p = horizon_probability(joined["risk"].to_numpy(), lag, horizon)
        out[lag] = {
            **realised_performance(p, joined[outcome].cast(pl.Int64).to_numpy(), p),
            "issued_days_ago": float((as_of - issued_on).days),
        }
    return out


def monitor_week(
    settings: Settings,
    as_of: date,
    features: pl.DataFrame,
    population: pl.DataFrame,
    listed_ids: list[str],
    previous_listed_ids: list[str] | None,
    tables: Tables | None = None,
) -> MonitorReport:
    """This week's monitoring of the ranking model. `population` has person_id, ranking_score (raw log-odds)
    and risk_<outcome>; `features` the feature frame the scores came from."""
    from models.registry import ModelRegistry

    outcome = settings.scoring.ranking_outcome
    registry = ModelRegistry(settings.registry)
    version = registry.current_version(outcome)
    if version is None:
        raise FileNotFoundError(f"no current model for {outcome!r}: run `riskstrat train` first")
    reference = registry.reference(outcome, version)
    m = settings.monitoring
    top = top_features(registry.load_evaluation(outcome, version).importance, m.top_features)
    if reference is None:
        log.warning(
            "%s %s has no stored reference distribution (trained before monitoring): no drift", outcome, version
        )
        drift, score_drift = pl.DataFrame(schema={"feature": pl.String, "psi": pl.Float64}), None
    else:
        drift = feature_psi(features, reference)
        score_drift = score_psi(population["ranking_score"].to_numpy(), reference)
    risk = population[OUTCOMES_BY_NAME[outcome].risk_column].to_numpy()
    expected = expected_performance(risk, population["ranking_score"].to_numpy())
    tables = tables if tables is not None else read_tables(settings.db)
    closed = realised(settings, tables, outcome, as_of)
    report = MonitorReport(
        as_of=as_of,
        outcome=outcome,
        model_version=version,
        feature_drift=drift,
        score_psi=score_drift,
        list_churn=list_churn(previous_listed_ids, listed_ids),
        expected=expected,
        realised=closed,
        top_features=top,
    )
    report.alerts = refit_alerts(drift, score_drift, closed, top, m)
    for alert in report.alerts:
        log.warning("monitoring alert: %s", alert.message)
    return report


def store_report(db_path: Path, report: MonitorReport) -> None:
    """Replace this as-of date's monitoring rows (atomic, idempotent)."""
    metrics = pl.DataFrame(
        [(report.as_of, report.outcome, report.model_version, m, s, v) for m, s, v in report.metrics()],
        schema=METRICS_SCHEMA,
        orient="row",
    )
    alerts = pl.DataFrame(
        [
            (report.as_of, report.outcome, report.model_version, a.rule, a.subject, a.value, a.threshold, a.message)
            for a in report.alerts
        ],
        schema=ALERTS_SCHEMA,
        orient="row",
    )
    with connect(db_path, read_only=False) as con:
        con.execute("BEGIN TRANSACTION")
        try:
            for table in ("monitoring_metrics", "monitoring_alerts"):
                con.execute(WAREHOUSE_TABLES[table].ddl())
            for table, frame in (("monitoring_metrics", metrics), ("monitoring_alerts", alerts)):
                con.execute(f"DELETE FROM {table} WHERE as_of = ? AND outcome = ?", [report.as_of, report.outcome])
                if frame.height:
                    con.register("_incoming", frame.to_arrow())
                    con.execute(f"INSERT INTO {table} SELECT * FROM _incoming")
                    con.unregister("_incoming")
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise


def trigger_retrain(
    alerts: list[Alert], run_deployment: Callable[..., Any] | None = None, deployment: str = RETRAIN_DEPLOYMENT
) -> bool:
    """Start a run of the retrain deployment when any alert fired (it promotes only a model not worse than the
    current one). Returns whether a run was requested. Without a reachable deployment the alert stands and the
    failure is logged: monitoring never breaks the weekly run."""
    if not alerts:
        return False
    if run_deployment is None:
        from prefect.deployments import run_deployment as prefect_run_deployment

        run_deployment = prefect_run_deployment
    reasons = "; ".join(a.message for a in alerts)
    try:
        run_deployment(name=deployment, timeout=0, tags=["riskstrat", "refit-trigger"])
    except Exception as exc:  # any failure to reach Prefect leaves the alert standing
        log.warning("refit needed (%s) but the %s deployment could not be started: %s", reasons, deployment, exc)
        return False
    log.warning("refit requested from %s: %s", deployment, reasons)
    return True


# ---------------------------------------------------------------------------------------------- report


def stored_history(db_path: Path) -> MonitoringHistory:
    """Every monitored week's metrics and alerts, and every stored data-quality check."""
    from pipelines.gates import stored_checks

    with connect(db_path) as con:
        if "monitoring_metrics" not in tables_present(con):
            raise NotReadyError(f"{db_path} holds no monitoring yet: run `riskstrat weekly` first")
        metrics = con.sql("SELECT * FROM monitoring_metrics ORDER BY as_of, metric, subject").pl()
        alerts = con.sql("SELECT * FROM monitoring_alerts ORDER BY as_of DESC, rule, subject").pl()
    checks = stored_checks(db_path)
    return MonitoringHistory(
        metrics.select(pl.col(c).cast(t) for c, t in METRICS_SCHEMA.items()),
        alerts.select(pl.col(c).cast(t) for c, t in ALERTS_SCHEMA.items()),
        checks.select(pl.col(c).cast(t) for c, t in CHECKS_SCHEMA.items()),
    )


def write_report(settings: Settings, out_path: Path, history: MonitoringHistory | None = None) -> Path:
    """The monitoring report: drift, expected and realised performance and data quality over time, alerts."""
    history = history if history is not None else stored_history(settings.db)
    html = report_html(monitoring_view(history, settings.monitoring))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    temporary = out_path.with_suffix(".tmp")
    temporary.write_text(html, encoding="utf-8")
    temporary.replace(out_path)
    return out_path


def publish_monitoring(settings: Settings, out_path: Path) -> Path:
    """The report, and the same history for the MDT workspace's monitoring page (the app never opens the
    warehouse, so it reads this copy: `pipelines.workspace.monitoring`). Returns the report's path."""
    from pipelines.workspace.monitoring import write_history

    history = stored_history(settings.db)
    write_history(settings.workspace_dir, history)
    return write_report(settings, out_path, history)


def monitor_scored(settings: Settings, result: Any, features: pl.DataFrame | None = None) -> MonitorReport:
    """Monitoring of a weekly ScoreResult (features rebuilt from the warehouse unless given), stored."""
    from features.build import build_features
    from pipelines.warehouse import earliest_event_date

    tables = read_tables(settings.db)
    if features is None:
        features = build_features(
            tables, result.publication.provenance.as_of, history_start=earliest_event_date(settings.db)
        ).collect()
    previous = previous_lists(settings.db, result.publication.provenance.as_of)
    report = monitor_week(
        settings,
        result.publication.provenance.as_of,
        features,
        result.population,
        result.publication.team_list["person_id"].to_list(),
        previous["person_id"].drop_nulls().to_list() if previous is not None else None,
        tables,
    )
    store_report(settings.db, report)
    return report


def default_report_path(settings: Settings) -> Path:
    return settings.outputs / "monitoring" / "index.html"


__all__ = [
    "MonitorReport",
    "default_report_path",
    "monitor_scored",
    "monitor_week",
    "publish_monitoring",
    "store_report",
    "stored_history",
    "trigger_retrain",
    "write_report",
]
