"""The evaluation of the case-management service between the warehouse and the statistics: the plan frozen before
the results are seen, its power, the estimates and the outcome metrics, and the report (HTML with plots, JSON,
CSV) that states which plan it answers.

- `check_plan`: the plan validated (data_contracts.evaluation_plan), its hash, whether and when it was frozen,
  and the power the population gives (how many people taken on the minimum effect needs; the power now).
- `freeze_plan`: records the plan's hash and date in `evaluation_plans`. A plan id already frozen with another
  hash is refused: a changed plan is a new plan (a new `id`, naming the plan it `replaces`).
- `evaluate`: refuses a plan that is not frozen, or changed since; runs models.impact on the warehouse (with the
  draws at the margin from `list_draws`, or from a file the synthetic MDT wrote), computes the outcome metrics
  by month with their control charts (models.outcome_metrics), stores the estimates in `evaluation_results`
  with the plan hash, and writes HOME/outputs/evaluation/<data end>/ (index.html, evaluation.json, estimates.csv,
  balance.csv, outcome_metrics.csv). Aggregates only; counts of 1-7 are suppressed as published counts are.
"""

from __future__ import annotations

import dataclasses
import io
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
from markupsafe import Markup

from data_contracts.dates import add_months
from data_contracts.errors import NotReadyError
from data_contracts.evaluation_plan import (
    DEFAULT_PLAN,
    EvaluationPlan,
    PlanError,
    evaluation_outcomes,
    load_plan,
    plan_hash,
)
from features.case_finding import case_finding_inputs
from features.inputs import Tables
from models.impact import ImpactResult, evaluate_impact
from models.impact.cohort import windows
from models.impact.estimate import people_needed, power_with
from models.outcome_metrics import definitions, monthly_metrics, with_control_limits
from pipelines.publish.charts import figure_svg
from pipelines.publish.suppression import suppress
from pipelines.settings import Settings
from pipelines.warehouse import (
    EVALUATION_PLANS,
    EVALUATION_RESULTS,
    LIST_DRAWS,
    RISK_SCORES,
    connect,
    ensure_schema,
    latest_extract_date,
    read_tables,
    registered,
    tables_present,
)

LOCAL_PLAN = Path("evaluation.toml")


@dataclass
class FrozenPlan:
    plan_id: str
    plan_hash: str
    frozen_at: datetime
    replaces: str | None


@dataclass
class PlanCheck:
    plan: EvaluationPlan
    path: Path
    hash: str
    frozen: FrozenPlan | None  # this id as frozen (its hash may differ: then the file changed)
    power: dict[str, float]

    @property
    def changed_since_frozen(self) -> bool:
        return self.frozen is not None and self.frozen.plan_hash != self.hash


def plan_path(settings: Settings, path: Path | None = None) -> Path:
    if path is not None:
        return path
    if settings.evaluation.plan is not None:
        return Path(settings.evaluation.plan)
    return LOCAL_PLAN if LOCAL_PLAN.exists() else DEFAULT_PLAN


def data_end(settings: Settings) -> date:
    """The first day without data: the day after the latest extract."""
    latest = latest_extract_date(settings.db)
    if latest is None:
        raise NotReadyError(f"{settings.db} holds no loaded batches: run `riskstrat ingest` first")
    return latest + timedelta(days=1)


def warehouse_tables(settings: Settings, draws_file: Path | None = None, scores_of: str | None = None) -> Tables:
    """The contract tables, the draws at the margin (the warehouse's, or a file's: person_id, team_id, draw_date,
    list_rank, offered) as `list_draws`, and with `scores_of` an outcome, riskstrat's stored scores of it
    (`risk_scores`: person_id, as_of, outcome, risk)."""
    tables = dict(read_tables(settings.db))
    with connect(settings.db) as con:
        if scores_of is not None and RISK_SCORES.name in tables_present(con):
            tables["risk_scores"] = (
                con.execute(
                    "SELECT person_id, as_of, outcome, risk FROM risk_scores "
                    "WHERE person_id IS NOT NULL AND outcome = ?",
                    [scores_of],
                )
                .pl()
                .lazy()
            )
        if LIST_DRAWS.name in tables_present(con):
            draws = con.sql(
                "SELECT person_id, team_id, as_of AS draw_date, list_rank, offered FROM list_draws "
                "WHERE person_id IS NOT NULL"
            ).pl()
            if draws.height:
                tables["list_draws"] = draws.lazy()
    if draws_file is not None:
        tables["list_draws"] = pl.scan_parquet(draws_file)
    return tables


def frozen_plan(settings: Settings, plan_id: str) -> FrozenPlan | None:
    if not settings.db.exists():
        return None
    with connect(settings.db) as con:
        if EVALUATION_PLANS.name not in tables_present(con):
            return None
        row = con.execute(
            "SELECT plan_id, plan_hash, frozen_at, replaces FROM evaluation_plans WHERE plan_id = ? "
            "ORDER BY frozen_at LIMIT 1",
            [plan_id],
        ).fetchone()
    return FrozenPlan(*row) if row else None


def check_plan(settings: Settings, path: Path | None = None) -> PlanCheck:
    where = plan_path(settings, path)
    plan, _ = load_plan(where)
    return PlanCheck(plan, where, plan_hash(plan), frozen_plan(settings, plan.id), plan_power(settings, plan))


def plan_power(settings: Settings, plan: EvaluationPlan) -> dict[str, float]:
    """The primary outcome's rate and overdispersion among the people a list would hold (each team's top
    `capacity` by the case-finding score at the last date with a whole follow-up), the people taken on needed
    to detect the plan's minimum effect, the people taken on so far and the power they give."""
    if not settings.db.exists() or latest_extract_date(settings.db) is None:
        return {}
    end = data_end(settings)
    tables = read_tables(settings.db)
    day = add_months(end, -plan.follow_up_months - 1)
    teams = tables["teams"].select("gp_practice", "team_id", "capacity")
    listed = (
        case_finding_inputs(tables, day)
        .join(teams, on="gp_practice", how="inner")
        .with_columns(pl.col("score").rank("ordinal", descending=True).over("team_id").alias("rank"))
        .filter(pl.col("rank") <= pl.col("capacity"))
        .select("person_id", pl.lit(day).alias("index_date"))
        .collect()
    )
    if listed.height == 0:
        return {}
    counts = windows(tables, listed, plan, [plan.primary_outcome])
    rate = float(counts[f"{plan.primary_outcome}_post"].sum() / max(counts["years_post"].sum(), 1e-9))
    mean = float(counts[f"{plan.primary_outcome}_post"].mean() or 0.0)
    variance = float(counts[f"{plan.primary_outcome}_post"].var() or 0.0)
    dispersion = variance / mean if mean > 0 else 1.0
    needed = people_needed(rate, dispersion, plan)
    taken = tables["caseload"].filter(pl.col("decision") == "taken_on").select("person_id").unique().collect().height
    return {
        "listed_people": float(listed.height),
        "rate_per_year": rate,
        "dispersion": max(dispersion, 1.0),
        "people_needed": needed,
        "people_taken_on": float(taken),
        "power_now": power_with(taken, rate, dispersion, plan),
    }


def freeze_plan(settings: Settings, path: Path | None = None) -> FrozenPlan:
    """Record the plan's hash and date. Freezing the same plan again is a no-op; a changed plan under a frozen
    id is refused (PlanError), as is a plan naming a `replaces` that was never frozen."""
    where = plan_path(settings, path)
    plan, text = load_plan(where)
    digest = plan_hash(plan)
    existing = frozen_plan(settings, plan.id)
    if existing is not None:
        if existing.plan_hash == digest:
            return existing
        raise PlanError(
            f"{where}: plan {plan.id!r} was frozen on {existing.frozen_at:%Y-%m-%d} with hash "
            f"{existing.plan_hash[:12]}; this file differs (hash {digest[:12]}): a changed plan is a new plan, "
            f"give it a new id and replaces = {plan.id!r}"
        )
    if plan.replaces is not None and frozen_plan(settings, plan.replaces) is None:
        raise PlanError(f"{where}: replaces = {plan.replaces!r}: no such frozen plan")
    frozen = FrozenPlan(plan.id, digest, datetime.now(UTC).replace(tzinfo=None), plan.replaces)
    row = pl.DataFrame(
        {
            "plan_id": [plan.id],
            "plan_hash": [digest],
            "title": [plan.title],
            "replaces": [plan.replaces],
            "frozen_at": [frozen.frozen_at],
            "plan_text": [text],
        },
        schema={c: t for c, t in zip(EVALUATION_PLANS.column_names, _POLARS_TYPES[EVALUATION_PLANS.name], strict=True)},
    )
    with connect(settings.db, read_only=False) as con:
        ensure_schema(con)
        with registered(con, "_plan", row):
            con.execute(f"INSERT INTO evaluation_plans SELECT {', '.join(EVALUATION_PLANS.column_names)} FROM _plan")
    return frozen


_POLARS_TYPES = {
    EVALUATION_PLANS.name: (pl.String, pl.String, pl.String, pl.String, pl.Datetime("us"), pl.String),
}


# ---------------------------------------------------------------------------------------------------- evaluate


@dataclass
class EvaluationReport:
    folder: Path
    check: PlanCheck
    result: ImpactResult
    metrics: pl.DataFrame

    def summary(self) -> dict[str, Any]:
        """Aggregate figures only (safe for logs and Prefect artifacts)."""
        return {
            "folder": str(self.folder),
            "plan_id": self.check.plan.id,
            "plan_hash": self.check.hash,
            "data_end": str(self.result.data_end),
            "taken_on": self.result.taken_on,
            "evaluable": self.result.evaluable,
            "matched": self.result.matched,
            "plan_power": self.check.plan.power.power,
            "estimates": [
                {
                    **{k: e.to_dict()[k] for k in ("method", "outcome", "estimate", "lo", "hi", "people")},
                    **{k: e.extra[k] for k in ("power", "people_offered_needed") if k in e.extra},
                }
                for e in self.result.estimates
            ],
        }


def evaluate(settings: Settings, path: Path | None = None, draws_file: Path | None = None) -> EvaluationReport:
    check = check_plan(settings, path)
    if check.frozen is None:
        raise PlanError(f"{check.path}: plan {check.plan.id!r} is not frozen: run `riskstrat evaluate plan --freeze`")
    if check.changed_since_frozen:
        raise PlanError(
            f"{check.path}: plan {check.plan.id!r} changed since it was frozen on {check.frozen.frozen_at:%Y-%m-%d} "
            f"(hash {check.frozen.plan_hash[:12]}, now {check.hash[:12]}): a changed plan is a new plan"
        )
    end = data_end(settings)
    matching = check.plan.matching
    scores_of = matching.score_outcome if matching.score == "risk_scores" else None
    tables = warehouse_tables(settings, draws_file, scores_of)
    result = evaluate_impact(tables, check.plan, end)
    first = add_months(date(end.year, end.month, 1), -settings.evaluation.metrics_months)
    metrics = with_control_limits(monthly_metrics(tables, first, end))
    folder = settings.outputs / "evaluation" / end.isoformat()
    report = EvaluationReport(folder, check, result, metrics)
    _store_results(settings, report)
    write_report(report)
    return report


def _store_results(settings: Settings, report: EvaluationReport) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = pl.DataFrame(
        [
            {
                "plan_hash": report.check.hash,
                "evaluated_at": now,
                "data_end": report.result.data_end,
                **{k: e.to_dict()[k] for k in ("method", "outcome", "estimate", "lo", "hi", "people", "comparisons")},
            }
            for e in report.result.estimates
        ],
        schema={
            "plan_hash": pl.String,
            "evaluated_at": pl.Datetime("us"),
            "data_end": pl.Date,
            "method": pl.String,
            "outcome": pl.String,
            "estimate": pl.Float64,
            "lo": pl.Float64,
            "hi": pl.Float64,
            "people": pl.Int64,
            "comparisons": pl.Int64,
        },
    )
    with connect(settings.db, read_only=False) as con:
        ensure_schema(con)
        con.execute("BEGIN TRANSACTION")
        con.execute(
            "DELETE FROM evaluation_results WHERE plan_hash = ? AND data_end = ?",
            [report.check.hash, report.result.data_end],
        )
        with registered(con, "_results", rows):
            con.execute(
                f"INSERT INTO evaluation_results SELECT {', '.join(EVALUATION_RESULTS.column_names)} FROM _results"
            )
        con.execute("COMMIT")


# ---------------------------------------------------------------------------------------------------- report

METHOD_LABELS = {
    "naive_before_after": "Naive before-and-after (not an effect)",
    "matched_did": "Matched difference-in-differences",
    "randomised_margin": "Randomised at the margin",
}


def published_metrics(metrics: pl.DataFrame) -> pl.DataFrame:
    """The metrics as published: numerators and denominators suppressed (1-7 as *, else rounded to 5) and no
    rate or proportion where either is 1-7 (a share of a handful of people would say who)."""

    def small(column: str) -> pl.Expr:
        return (pl.col(column) > 0) & (pl.col(column) <= 7)

    return metrics.with_columns(
        pl.col("numerator").map_elements(lambda v: suppress(round(v)), return_dtype=pl.String),
        pl.col("denominator").map_elements(lambda v: suppress(round(v)), return_dtype=pl.String),
        pl.when(small("numerator") | small("denominator")).then(None).otherwise(pl.col("value")).alias("value"),
    )


def write_report(report: EvaluationReport) -> Path:
    from pipelines.publish.html import render

    folder = report.folder
    folder.mkdir(parents=True, exist_ok=True)
    result, check = report.result, report.check
    estimates = pl.DataFrame([e.to_dict() for e in result.estimates]) if result.estimates else pl.DataFrame()
    published = published_metrics(report.metrics) if report.metrics.height else report.metrics
    (folder / "estimates.csv").write_text(_csv(estimates.select(pl.exclude("note")) if estimates.height else estimates))
    (folder / "balance.csv").write_text(_csv(result.balance))
    (folder / "outcome_metrics.csv").write_text(_csv(published))
    payload = {
        "plan": {
            "id": check.plan.id,
            "hash": check.hash,
            "frozen_at": str(check.frozen.frozen_at) if check.frozen else None,
            "title": check.plan.title,
            "question": check.plan.question,
            "settings": dataclasses.asdict(check.plan),
        },
        "data_end": str(result.data_end),
        "people": {
            "taken_on": result.taken_on,
            "evaluable": result.evaluable,
            "matched": result.matched,
            "draws": result.draws,
        },
        "notes": result.notes,
        "power": check.power,
        "estimates": [e.to_dict() for e in result.estimates],
        "balance": result.balance.to_dicts(),
    }
    (folder / "evaluation.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    metric_defs, rules = definitions()
    primary = check.plan.primary_outcome
    html = render(
        "evaluation.html",
        plan=check.plan,
        plan_hash=check.hash,
        frozen=check.frozen,
        result=result,
        power=check.power,
        labels=METHOD_LABELS,
        outcome_labels={k: v.label for k, v in evaluation_outcomes().items()},
        primary=[e for e in result.estimates if e.outcome == primary],
        secondary=[e for e in result.estimates if e.outcome != primary],
        estimates_chart=Markup(_estimates_chart(result, primary)),
        balance=result.balance.to_dicts(),
        threshold=check.plan.matching.balance_threshold,
        metric_defs=metric_defs,
        rules=rules,
        population_charts=[
            (metric_defs[name], Markup(_spc_chart(published, name, "population", "all")))
            for name in metric_defs
            if published.height
        ],
        team_charts=[
            (unit, Markup(_spc_chart(published, "emergency_admissions", "team", unit)))
            for unit in sorted(set(published.filter(pl.col("level") == "team")["unit"].to_list()))
            if published.height
        ],
        signals=_signal_rows(published),
    )
    (folder / "index.html").write_text(html, encoding="utf-8")
    return folder / "index.html"


def _csv(frame: pl.DataFrame) -> str:
    buffer = io.StringIO()
    frame.write_csv(buffer)
    return buffer.getvalue()


def _estimates_chart(result: ImpactResult, outcome: str) -> str:
    """The primary outcome's estimates with their intervals, as relative changes (percent)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [e for e in result.estimates if e.outcome == outcome]
    fig, ax = plt.subplots(figsize=(8, 0.8 + 0.7 * max(len(rows), 1)))
    for i, e in enumerate(reversed(rows)):
        colour = "#9AA5B1" if e.method == "naive_before_after" else "#005EB8"
        ax.errorbar(
            [e.estimate * 100],
            [i],
            xerr=[[max(e.estimate - e.lo, 0) * 100], [max(e.hi - e.estimate, 0) * 100]],
            fmt="o",
            color=colour,
            capsize=4,
        )
    ax.set_yticks(range(len(rows)), [METHOD_LABELS[e.method] for e in reversed(rows)])
    ax.axvline(0, color="#52606D", linewidth=1)
    ax.set_xlabel(
        f"Relative change in {outcome.replace('_', ' ')} (%), "
        f"with {int(result.plan.analysis.confidence * 100)}% interval"
    )
    ax.grid(axis="x", alpha=0.3)
    return figure_svg(fig)


def _spc_chart(metrics: pl.DataFrame, metric: str, level: str, unit: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    part = metrics.filter((pl.col("metric") == metric) & (pl.col("level") == level) & (pl.col("unit") == unit)).sort(
        "month"
    )
    fig, ax = plt.subplots(figsize=(7.5, 2.6))
    months = part["month"].to_list()
    ax.plot(months, part["value"].to_list(), marker="o", markersize=3.5, color="#1F2933", linewidth=1.2, label="month")
    ax.plot(months, part["centre"].to_list(), color="#005EB8", linewidth=1, label="centre line")
    ax.plot(months, part["upper"].to_list(), color="#C0392B", linewidth=0.9, linestyle="--", label="control limits")
    ax.plot(months, part["lower"].to_list(), color="#C0392B", linewidth=0.9, linestyle="--")
    flagged = part.filter((pl.col("signal") != "") & pl.col("value").is_not_null())
    if flagged.height:
        ax.scatter(
            flagged["month"].to_list(),
            flagged["value"].to_list(),
            s=40,
            color="#F0B400",
            zorder=3,
            edgecolor="#7A5B00",
            label="special cause",
        )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7.5, loc="upper left", ncols=4, frameon=False)
    ax.set_ylim(bottom=0)
    fig.autofmt_xdate()
    return figure_svg(fig)


def _signal_rows(metrics: pl.DataFrame) -> list[dict[str, Any]]:
    if not metrics.height:
        return []
    return (
        metrics.filter((pl.col("signal") != "") & pl.col("value").is_not_null() & (pl.col("level") != "practice"))
        .sort("metric", "level", "unit", "month")
        .select("metric", "level", "unit", "month", "value", "centre", "signal")
        .to_dicts()
    )
