"""Prefect flows: short wiring of tasks; the work itself is plain Python in the layers below.

Flows take a settings file path and nested overrides (JSON-able) rather than a settings object, so a
deployment's parameters stay editable in the Prefect UI. Artifacts carry counts only, never
person-level values. Retries are on I/O steps only.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_table_artifact

from pipelines.settings import Settings, load_settings

log = logging.getLogger("riskstrat")


def _settings(config: str | None, overrides: dict[str, Any] | None) -> Settings:
    return load_settings(Path(config) if config else None, overrides)


@task(retries=2, retry_delay_seconds=2)
def generate_task(settings: Settings) -> dict[str, Any]:
    from data_contracts.synthetic import generate_population

    result = generate_population(settings.batches.parent / "synthetic", settings.synth, settings.seed)
    log.info("generated %d batches for %d people", len(result.batch_dirs), settings.synth.people)
    return {
        "batch_dirs": [str(p) for p in result.batch_dirs],
        "truth_path": str(result.truth_path),
        "row_counts": result.row_counts,
    }


@task(retries=2, retry_delay_seconds=2)
def ingest_batch_task(db_path: Path, batch_dir: Path, settings: Settings) -> dict[str, Any]:
    from pipelines.ingest import ingest_batch

    report = ingest_batch(db_path, batch_dir, settings.ingest)
    totals = report_totals(report)
    log.info(
        "batch %s %s: read %d, loaded %d, quarantined %d, excluded %d, removed %d (%.1f s)",
        report.batch_id,
        report.status,
        totals["read"],
        totals["loaded"],
        totals["quarantined"],
        totals["excluded"],
        totals["removed"],
        report.seconds,
    )
    return {"batch_id": report.batch_id, "status": report.status, "tables": [vars(t) for t in report.tables]}


def report_totals(report: Any) -> dict[str, int]:
    return {
        "read": sum(t.rows_read for t in report.tables),
        "loaded": sum(t.rows_loaded for t in report.tables),
        "quarantined": sum(t.rows_quarantined for t in report.tables),
        "excluded": sum(t.rows_excluded for t in report.tables),
        "removed": sum(t.rows_removed for t in report.tables),
    }


@flow(name="ingest", log_prints=False)
def ingest(batch_dirs: list[str], config: str | None = None, overrides: dict[str, Any] | None = None) -> list[dict]:
    """Validate and load batches in order. Each batch is atomic; a rejected batch stops the run."""
    settings = _settings(config, overrides)
    reports = [ingest_batch_task(settings.db, Path(b), settings) for b in sorted(batch_dirs)]
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


@flow(name="demo")
def demo(config: str | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The embedded default end to end: generate a synthetic population, then ingest it."""
    settings = _settings(config, overrides)
    generated = generate_task(settings)
    reports = ingest(batch_dirs=generated["batch_dirs"], overrides=settings.to_dict())
    return {"generated": generated, "ingest": reports}
