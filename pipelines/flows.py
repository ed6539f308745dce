"""Prefect flows: short wiring of tasks; the work itself is plain Python in the layers below.

Flows take a settings file path and nested overrides (JSON-able) rather than a settings object, so a
deployment's parameters stay editable in the Prefect UI. Artifacts carry counts only, never
person-level values. Every task has a time limit (`[runs]` settings); I/O steps retry transient failures
only (`pipelines.runs.retry_transient`: a rejected batch or a failed gate is never retried). Runs and task
runs are named after what they work on. Tasks do not cache: every week's inputs differ, and some are large
frames.
"""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path
from typing import Any

from prefect import Task, flow, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from pipelines import runs
from pipelines.settings import Settings, load_settings

log = logging.getLogger("riskstrat")

# Retries of transient failures only, on the steps that read or write files and the database.
_IO = {"retry_condition_fn": runs.retry_transient, "cache_policy": NO_CACHE}


def _settings(config: str | None, overrides: dict[str, Any] | None) -> Settings:
    return load_settings(Path(config) if config else None, overrides)


def _run_settings() -> Settings:
    """The settings of the flow run being named (from its parameters)."""
    from prefect.runtime import flow_run

    return _settings(flow_run.parameters.get("config"), flow_run.parameters.get("overrides"))


def _step(t: Task, settings: Settings, step: str) -> Task:
    """`t` with its time limit and (for I/O tasks, which declare retry_condition_fn) retries from `[runs]`."""
    r = settings.runs
    options: dict[str, Any] = {"timeout_seconds": r.timeout(step)}
    if t.retry_condition_fn is not None:
        options |= {"retries": r.retries, "retry_delay_seconds": r.retry_delay_seconds}
    return t.with_options(**options)


@task(name="generate", task_run_name="generate {settings.synth.people} people", **_IO)
def generate_task(settings: Settings) -> dict[str, Any]:
    from data_contracts.synthetic import generate_population

    result = generate_population(settings.home / "synthetic", settings.synth, settings.outcomes, settings.seed)
    log.info("generated %d batches for %d people", len(result.batch_dirs), settings.synth.people)
    return {
        "batch_dirs": [str(p) for p in result.batch_dirs],
        "truth_path": str(result.truth_path),
        "row_counts": result.row_counts,
    }


@task(name="ingest batch", task_run_name="ingest {batch_dir.name}", **_IO)
def ingest_batch_task(db_path: Path, batch_dir: Path, settings: Settings) -> dict[str, Any]:
    from pipelines.ingest import ingest_batch

    report = ingest_batch(db_path, batch_dir, settings.ingest)
    return {
        **report.summary(),
        "quarantine_reasons": [
            {"table": table, "reason": reason, "rows": n}
            for (table, reason), n in sorted(report.quarantine_reasons.items())
        ],
    }


def _ingest_run_name() -> str:
    from prefect.runtime import flow_run

    n = len(flow_run.parameters.get("batch_dirs") or [])
    return f"ingest {n} batch{'' if n == 1 else 'es'}"


@flow(name="ingest", flow_run_name=_ingest_run_name, log_prints=False)
def ingest(batch_dirs: list[str], config: str | None = None, overrides: dict[str, Any] | None = None) -> list[dict]:
    """Validate and load batches in order. Each batch is atomic; a rejected batch stops the run; a batch not
    whole yet waits (with those after it) for the next run."""
    from pipelines.ingest import held_back

    settings = _settings(config, overrides)
    ingest_one = _step(ingest_batch_task, settings, "ingest")
    reports: list[dict] = []
    for b in sorted(batch_dirs):
        reports.append(held_back(Path(b), reports) or ingest_one(settings.db, Path(b), settings))
    create_table_artifact(
        key="ingest-counts",
        table=[
            {"batch": r["batch_id"], "status": r["status"], **{k: t[k] for k in _COUNT_KEYS}}
            for r in reports
            for t in r["tables"]
        ]
        or [{"batch": r["batch_id"], "status": r["status"]} for r in reports],
        description="Rows read, loaded, quarantined, excluded (opt-outs) and removed, per batch and table.",
    )
    return reports


_COUNT_KEYS = ("table", "rows_read", "rows_loaded", "rows_quarantined", "rows_excluded", "rows_removed")


def _train_task_name(parameters: dict[str, Any]) -> str:
    return "train " + ", ".join(parameters["settings"].training.outcomes)


@task(name="train", task_run_name=_train_task_name, cache_policy=NO_CACHE)
def train_task(settings: Settings, truth_path: str | None, force: bool) -> dict[str, Any]:
    from pipelines.training import train_all

    report = train_all(settings, Path(truth_path) if truth_path else None, force=force)
    return {
        **report.split.to_dict(),
        "rows": report.rows,
        "comparison": report.comparison.to_dicts(),
        "decisions": {o: d.to_dict() for o, d in report.decisions.items()},
        "seconds": report.seconds,
    }


def _train_run_name() -> str:
    return "train " + ", ".join(_run_settings().training.outcomes)


@flow(name="train", flow_run_name=_train_run_name)
def train(
    config: str | None = None,
    overrides: dict[str, Any] | None = None,
    truth_path: str | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Retrain every outcome's model on stacked index dates; register each version, promote only if not worse."""
    settings = _settings(config, overrides)
    summary = _step(train_task, settings, "train")(settings, truth_path, force)
    create_table_artifact(
        key="model-comparison",
        table=[
            {k: row[k] for k in ("outcome", "model", "metric", "estimate", "lo", "hi")}
            for row in summary["comparison"]
            if row["metric"] in ("auroc", "auprc", "brier", "calibration_slope", "ppv_top_5pct")
        ],
        description="Models against baselines on the evaluation index date (95% bootstrap intervals).",
    )
    _link_model_cards(settings)
    return summary


def _link_model_cards(settings: Settings) -> None:
    from models.registry import ModelRegistry

    registry = ModelRegistry(settings.registry)
    for outcome in settings.training.outcomes:
        version = registry.current_version(outcome)
        card = settings.registry / outcome / str(version) / "model_card.html"
        if version is not None and card.exists():
            create_link_artifact(
                key=runs.artifact_key("model-card", outcome),
                link=runs.file_link(card),
                link_text=f"{outcome} {version} model card",
                description=f"The current {outcome} model's card ({card}).",
            )


def _score_task_name(parameters: dict[str, Any]) -> str:
    return f"score {parameters.get('as_of') or 'latest data'}"


@task(name="score", task_run_name=_score_task_name, cache_policy=NO_CACHE)
def score_task(settings: Settings, as_of: str | None, data_warning: str | None = None) -> Any:
    from pipelines.scoring import score_population

    # Not stored here: publish_task stores the scores and lists with the folder it publishes.
    result = score_population(settings, date.fromisoformat(as_of) if as_of else None, data_warning=data_warning)
    log.info("scored %s", ", ".join(f"{k} {v:,}" for k, v in result.counts().items()))
    return result


@task(name="publish", task_run_name="publish {result.publication.provenance.as_of}", **_IO)
def publish_task(settings: Settings, result: Any, reidentification: dict[str, str] | None = None) -> dict[str, Any]:
    """Publish the run's folder and store its scores and lists in the warehouse, both or neither: the rows are
    written in one transaction while the folder is staged and committed once it is switched in.
    `reidentification` maps a team id to that team's own lookup file (CSV: person_id, nhs_number, name)."""
    import polars as pl

    from pipelines.publish import publish
    from pipelines.warehouse import scores_stored

    lookups = {team: pl.read_csv(path, infer_schema=False) for team, path in (reidentification or {}).items()}
    report = publish(
        settings.outputs,
        result.publication,
        reidentification=lookups,
        templates=settings.templates_dir,
        record=lambda: scores_stored(settings.db, result),
    )
    from pipelines.workspace.snapshot import published_run, write_snapshot

    write_snapshot(settings.workspace_dir, published_run(result.publication))  # the MDT workspace switches to it
    return {
        "folder": str(settings.outputs / result.publication.provenance.as_of.isoformat()),
        "files": len(report.files),
        "teams": report.teams,
        "people_listed": report.people_listed,
    }


def _score_and_publish(
    settings: Settings, as_of: str | None, reidentification: dict[str, str] | None, data_warning: str | None = None
) -> tuple[Any, dict[str, Any]]:
    """The scoring and publishing steps shared by the score and weekly flows, with their artifacts."""
    result = _step(score_task, settings, "score")(settings, as_of, data_warning)
    published = _step(publish_task, settings, "publish")(settings, result, reidentification)
    counts = result.counts()
    prov = result.publication.provenance
    create_table_artifact(
        key="weekly-score-counts",
        table=[{"measure": k, "value": v} for k, v in counts.items()],
        description=f"Run {prov.run_id} as of {prov.as_of}: aggregate counts only.",
    )
    create_link_artifact(
        key="weekly-outputs",
        link=runs.file_link(Path(published["folder"])),
        link_text=f"team lists and commissioners' summary as of {prov.as_of}",
        description=f"{published['folder']}: {published['files']:,} files for {published['teams']} teams.",
    )
    _link_model_cards(settings)
    return result, {
        "run_id": prov.run_id,
        "as_of": str(prov.as_of),
        "counts": counts,
        "published": published,
        "model_versions": dict(prov.model_versions),
    }


def _score_run_name() -> str:
    from prefect.runtime import flow_run

    return f"score {flow_run.parameters.get('as_of') or 'latest data'}"


@flow(name="score", flow_run_name=_score_run_name)
def score(
    config: str | None = None,
    overrides: dict[str, Any] | None = None,
    as_of: str | None = None,
    reidentification: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Score everyone eligible, stratify, cut each team's list at capacity, explain, and publish. A team's own
    re-identification lookup (team id -> CSV path) is applied to that team's outputs only."""
    settings = _settings(config, overrides)
    return _score_and_publish(settings, as_of, reidentification)[1]


@task(name="export caseload", task_run_name="export caseload decisions", cache_policy=NO_CACHE)
def export_caseload_task(settings: Settings) -> str | None:
    """The MDT workspace's decisions not yet exported become a caseload batch, ingested with the others."""
    from pipelines.workspace.caseload import export_batch

    folder = export_batch(settings.workspace_dir, settings.batches)
    return str(folder) if folder else None


@task(name="erase opted-out decisions", task_run_name="erase opted-out decisions", cache_policy=NO_CACHE)
def erase_opted_out_decisions_task(settings: Settings) -> int:
    """People who opted out lose their decisions in the workspace's own state too."""
    from pipelines.workspace.caseload import erase_opted_out

    removed = erase_opted_out(settings.workspace_dir, settings.db)
    if removed:
        log.info("removed %d workspace decisions of people who opted out", removed)
    return removed


@task(name="gates", task_run_name="data-quality gates as of {as_of}", **_IO)
def gates_task(settings: Settings, loaded_batch_ids: list[str], as_of: str) -> Any:
    """Check and store the batches loaded now and the newest one; the decision, before the policy applies."""
    from pipelines.gates import gate

    return gate(settings.db, loaded_batch_ids, settings.quality)


@task(name="monitor", task_run_name="monitor {as_of}", **_IO)
def monitor_task(settings: Settings, result: Any, as_of: str) -> dict[str, Any]:
    """Drift and performance of the ranking model, stored; the report and the workspace page's copy; a refit
    requested when a rule fires."""
    from pipelines.monitor import default_report_path, monitor_scored, publish_monitoring, trigger_retrain

    report = monitor_scored(settings, result, result.features)
    page = publish_monitoring(settings, default_report_path(settings))  # and the workspace's monitoring page
    # Last, so that a retry of this task (a transient failure above) never requests a second refit.
    refit = settings.monitoring.trigger_refit and trigger_retrain(report.alerts)
    return {**report.summary(), "refit_requested": refit, "report": str(page)}


def _weekly_summary_artifact(as_of: str | None, reports: list[dict], **parts: Any) -> None:
    create_markdown_artifact(
        key="weekly-summary",
        markdown=runs.weekly_summary(as_of, reports, **parts),
        description=f"Weekly run as of {as_of}: counts only.",
    )


@flow(name="weekly", flow_run_name=runs.weekly_started_name)
def weekly(config: str | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The weekly refresh: ingest every batch not yet loaded, run the data-quality gates (stop, or score with the
    errors stated, per `quality.on_error`), score and publish, then monitor drift and request a refit when a
    rule fires. Publishes a Markdown summary of the run (also when it stops at the gates)."""
    from data_contracts.batch import batches_in
    from data_contracts.errors import NotReadyError
    from data_contracts.quality import DataQualityError
    from pipelines.gates import apply_policy
    from pipelines.warehouse import latest_extract_date

    settings = _settings(config, overrides)
    _step(export_caseload_task, settings, "workspace")(settings)
    pattern = settings.ingest.batch_name_pattern
    batch_dirs = [str(p) for p in batches_in(settings.batches, pattern)] if settings.batches.exists() else []
    reports = ingest(batch_dirs=batch_dirs, config=config, overrides=overrides) if batch_dirs else []
    _step(erase_opted_out_decisions_task, settings, "workspace")(settings)
    latest = latest_extract_date(settings.db) if settings.db.exists() else None
    if latest is None:
        raise NotReadyError(f"{settings.db} holds no loaded batches: put batch folders in {settings.batches}")
    as_of = latest.isoformat()
    runs.rename_flow_run(f"weekly {as_of}")
    loaded = [r["batch_id"] for r in reports if r["status"] == "loaded"]
    decision = _step(gates_task, settings, "gates")(settings, loaded, as_of)
    gates = runs.gate_summary(decision, settings.quality.on_error)
    try:
        statement = apply_policy(decision, settings.quality)
    except DataQualityError:
        _weekly_summary_artifact(as_of, reports, gates=gates)
        raise
    result, scored = _score_and_publish(settings, as_of, None, statement)
    monitored = _step(monitor_task, settings, "monitor")(settings, result, as_of)
    create_link_artifact(
        key="monitoring-report",
        link=runs.file_link(Path(monitored["report"])),
        link_text=f"monitoring report as of {as_of}",
        description=monitored["report"],
    )
    _weekly_summary_artifact(as_of, reports, gates=gates, score=scored, monitoring=monitored)
    return {"ingest": reports, "gates": gates, "score": scored, "monitoring": monitored}


@task(cache_policy=NO_CACHE)
def evaluate_task(settings: Settings, plan: str | None, draws: str | None) -> dict[str, Any]:
    from pipelines.evaluate import evaluate as run_evaluation

    report = run_evaluation(settings, Path(plan) if plan else None, Path(draws) if draws else None)
    return report.summary()


@flow(name="evaluate")
def evaluate(
    config: str | None = None,
    overrides: dict[str, Any] | None = None,
    plan: str | None = None,
    draws: str | None = None,
) -> dict[str, Any]:
    """Evaluate the case-management service against its frozen plan (monthly): estimates, balance, outcome
    metrics with control charts, written as HTML, JSON and CSV; the estimates kept with the plan's hash."""
    settings = _settings(config, overrides)
    summary = evaluate_task(settings, plan, draws)
    create_table_artifact(
        key="case-management-evaluation",
        table=[
            {k: row[k] for k in ("method", "outcome", "estimate", "lo", "hi", "people")} for row in summary["estimates"]
        ],
        description=f"Plan {summary['plan_id']} ({summary['plan_hash'][:12]}), data to {summary['data_end']}: "
        "aggregates only.",
    )
    return summary


def _demo_run_name() -> str:
    return f"demo {_run_settings().synth.people:,} people"


@flow(name="demo", flow_run_name=_demo_run_name)
def demo(config: str | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The embedded default end to end: generate a synthetic population, ingest, train, score and publish."""
    settings = _settings(config, overrides)
    generated = _step(generate_task, settings, "generate")(settings)
    reports = ingest(batch_dirs=generated["batch_dirs"], config=config, overrides=overrides)
    trained = train(config=config, overrides=overrides, truth_path=generated["truth_path"])
    scored = score(config=config, overrides=overrides)
    return {"generated": generated, "ingest": reports, "train": trained, "score": scored}
