"""Prefect flows: short wiring of tasks; the work itself is plain Python in the layers below.

Flows take a settings file path and nested overrides (JSON-able) rather than a settings object, so a
deployment's parameters stay editable in the Prefect UI. Artifacts carry counts only, never
person-level values. Retries are on I/O steps only. Tasks do not cache: every week's inputs differ,
and some are large frames.
"""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from pipelines.settings import Settings, load_settings

log = logging.getLogger("riskstrat")


def _settings(config: str | None, overrides: dict[str, Any] | None) -> Settings:
    return load_settings(Path(config) if config else None, overrides)


@task(retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def generate_task(settings: Settings) -> dict[str, Any]:
    from data_contracts.synthetic import generate_population

    result = generate_population(settings.home / "synthetic", settings.synth, settings.outcomes, settings.seed)
    log.info("generated %d batches for %d people", len(result.batch_dirs), settings.synth.people)
    return {
        "batch_dirs": [str(p) for p in result.batch_dirs],
        "truth_path": str(result.truth_path),
        "row_counts": result.row_counts,
    }


@task(retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def ingest_batch_task(db_path: Path, batch_dir: Path, settings: Settings) -> dict[str, Any]:
    from pipelines.ingest import ingest_batch

    return ingest_batch(db_path, batch_dir, settings.ingest).summary()


@flow(name="ingest", log_prints=False)
def ingest(batch_dirs: list[str], config: str | None = None, overrides: dict[str, Any] | None = None) -> list[dict]:
    """Validate and load batches in order. Each batch is atomic; a rejected batch stops the run; a batch not
    whole yet waits (with those after it) for the next run."""
    from pipelines.ingest import held_back

    settings = _settings(config, overrides)
    reports: list[dict] = []
    for b in sorted(batch_dirs):
        reports.append(held_back(Path(b), reports) or ingest_batch_task(settings.db, Path(b), settings))
    create_table_artifact(
        key="ingest-counts",
        table=[
            {"batch": r["batch_id"], "status": r["status"], **{k: t[k] for k in _COUNT_KEYS}}
            for r in reports
            for t in r["tables"]
        ],
        description="Rows read, loaded, quarantined, excluded (opt-outs) and removed, per batch and table.",
    )
    return reports


_COUNT_KEYS = ("table", "rows_read", "rows_loaded", "rows_quarantined", "rows_excluded", "rows_removed")


@task(cache_policy=NO_CACHE)
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


@flow(name="train")
def train(
    config: str | None = None,
    overrides: dict[str, Any] | None = None,
    truth_path: str | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Retrain every outcome's model on stacked index dates; register each version, promote only if not worse."""
    settings = _settings(config, overrides)
    summary = train_task(settings, truth_path, force)
    create_table_artifact(
        key="model-comparison",
        table=[
            {k: row[k] for k in ("outcome", "model", "metric", "estimate", "lo", "hi")}
            for row in summary["comparison"]
            if row["metric"] in ("auroc", "auprc", "brier", "calibration_slope", "ppv_top_5pct")
        ],
        description="Models against baselines on the evaluation index date (95% bootstrap intervals).",
    )
    return summary


@task(cache_policy=NO_CACHE)
def score_task(settings: Settings, as_of: str | None) -> Any:
    from pipelines.scoring import score_population
    from pipelines.warehouse import store_scores

    result = score_population(settings, date.fromisoformat(as_of) if as_of else None)
    store_scores(settings.db, result)
    log.info("scored %s", ", ".join(f"{k} {v:,}" for k, v in result.counts().items()))
    return result


@task(retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def publish_task(settings: Settings, result: Any, reidentification: dict[str, str] | None = None) -> dict[str, Any]:
    """`reidentification` maps a team id to that team's own lookup file (CSV: person_id, nhs_number, name)."""
    import polars as pl

    from pipelines.publish import publish

    lookups = {team: pl.read_csv(path, infer_schema=False) for team, path in (reidentification or {}).items()}
    report = publish(settings.outputs, result.publication, reidentification=lookups, templates=settings.templates_dir)
    from pipelines.workspace.snapshot import published_run, write_snapshot

    write_snapshot(settings.workspace_dir, published_run(result.publication))  # the MDT workspace switches to it
    return {
        "folder": str(settings.outputs / result.publication.provenance.as_of.isoformat()),
        "files": len(report.files),
        "teams": report.teams,
        "people_listed": report.people_listed,
    }


@flow(name="score")
def score(
    config: str | None = None,
    overrides: dict[str, Any] | None = None,
    as_of: str | None = None,
    reidentification: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Score everyone eligible, stratify, cut each team's list at capacity, explain, and publish. A team's own
    re-identification lookup (team id -> CSV path) is applied to that team's outputs only."""
    settings = _settings(config, overrides)
    result = score_task(settings, as_of)
    published = publish_task(settings, result, reidentification)
    counts = result.counts()
    prov = result.publication.provenance
    create_table_artifact(
        key="weekly-score-counts",
        table=[{"measure": k, "value": v} for k, v in counts.items()],
        description=f"Run {prov.run_id} as of {prov.as_of}: aggregate counts only.",
    )
    return {
        "run_id": prov.run_id,
        "as_of": str(prov.as_of),
        "counts": counts,
        "published": published,
        "model_versions": dict(prov.model_versions),
    }


@task(cache_policy=NO_CACHE)
def export_caseload_task(settings: Settings) -> str | None:
    """The MDT workspace's decisions not yet exported become a caseload batch, ingested with the others."""
    from pipelines.workspace.caseload import export_batch

    folder = export_batch(settings.workspace_dir, settings.batches)
    return str(folder) if folder else None


@task(cache_policy=NO_CACHE)
def erase_opted_out_decisions_task(settings: Settings) -> int:
    """People who opted out lose their decisions in the workspace's own state too."""
    from pipelines.workspace.caseload import erase_opted_out

    removed = erase_opted_out(settings.workspace_dir, settings.db)
    if removed:
        log.info("removed %d workspace decisions of people who opted out", removed)
    return removed


@flow(name="weekly")
def weekly(config: str | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The weekly refresh: ingest every batch not yet loaded, then score and publish."""
    from data_contracts.batch import batches_in

    settings = _settings(config, overrides)
    export_caseload_task(settings)
    batch_dirs = [str(p) for p in batches_in(settings.batches)] if settings.batches.exists() else []
    reports = ingest(batch_dirs=batch_dirs, config=config, overrides=overrides) if batch_dirs else []
    erase_opted_out_decisions_task(settings)
    scored = score(config=config, overrides=overrides)
    return {"ingest": reports, "score": scored}


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


@flow(name="demo")
def demo(config: str | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The embedded default end to end: generate a synthetic population, ingest, train, score and publish."""
    settings = _settings(config, overrides)
    generated = generate_task(settings)
    reports = ingest(batch_dirs=generated["batch_dirs"], config=config, overrides=overrides)
    trained = train(config=config, overrides=overrides, truth_path=generated["truth_path"])
    scored = score(config=config, overrides=overrides)
    return {"generated": generated, "ingest": reports, "train": trained, "score": scored}
