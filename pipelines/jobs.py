"""The jobs the flows run, in plain Python: each step (a function a Prefect task wraps) and each job's wiring
(which steps, in which order, with which artifacts), written once against a `Runner`.

Two runners run the same job bodies:

- `pipelines.flows` runs them as Prefect flows (`PrefectRunner`): every step a named task run with its time limit
  and retries of transient failures, artifacts and logs in the Prefect API. Deployments (`riskstrat serve`) and
  a CLI command with a Prefect server in use (`PREFECT_API_URL`) take this path.
- `PlainRunner` here calls the step functions directly: no Prefect import, no server (Prefect's temporary server
  costs about 14 s a command, the import alone 1-3 s on a busy machine). An interactive command without a
  server takes this path. Retries of transient failures are kept (same policy and counts); per-step time limits
  are not (the person at the terminal can stop the command); artifacts and run names have nowhere to go and are
  skipped; a refit request (a Prefect deployment run) is logged as not possible.

This module must not import Prefect at module level (tests/test_jobs.py checks the plain path never does).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any, Protocol, TypeVar

from pipelines import runs
from pipelines.settings import Settings, load_settings

log = logging.getLogger("riskstrat")

F = TypeVar("F", bound=Callable[..., Any])


def retries_transient(fn: F) -> F:
    """Marks a step that reads or writes files and the database: its transient failures are retried."""
    fn.retries_transient = True  # type: ignore[attr-defined]
    return fn


def settings_from(config: str | None, overrides: dict[str, Any] | None) -> Settings:
    return load_settings(Path(config) if config else None, overrides)


class Runner(Protocol):
    """How a job's steps, sub-jobs, artifacts and run names are carried out."""

    # Whether a Prefect deployment can be started from here (the weekly job's refit request).
    deployments_reachable: bool

    def step(self, fn: Callable[..., Any], settings: Settings, limit: str | None) -> Callable[..., Any]:
        """`fn` to call as a step, under the `[runs]` time limit named `limit` (None: none) and its retry
        policy."""
        ...

    def job(self, name: str) -> Callable[..., Any]:
        """Another job (a subflow under Prefect), called with keyword arguments."""
        ...

    def map(
        self, fn: Callable[..., Any], settings: Settings, limit: str | None, items: list[Any], **constants: Any
    ) -> list[Any]:
        """`fn(item, **constants)` for each item, as a step (under Prefect: on the flow's task runner, e.g. Dask);
        the results in the items' order."""
        ...

    def table_artifact(self, key: str, table: list[dict[str, Any]], description: str) -> None: ...

    def link_artifact(self, key: str, link: str, link_text: str, description: str) -> None: ...

    def markdown_artifact(self, key: str, markdown: str, description: str) -> None: ...

    def rename(self, name: str) -> None:
        """Rename the current run once what it works on is known."""
        ...


# ------------------------------------------------------------------------------------------------ steps


def generate_step(settings: Settings) -> dict[str, Any]:
    from data_contracts.synthetic import generate_population

    result = generate_population(settings.home / "synthetic", settings.synth, settings.outcomes, settings.seed)
    log.info("generated %d batches for %d people", len(result.batch_dirs), settings.synth.people)
    return {
        "batch_dirs": [str(p) for p in result.batch_dirs],
        "truth_path": str(result.truth_path),
        "row_counts": result.row_counts,
    }


@retries_transient
def ingest_batch_step(db_path: Path, batch_dir: Path, settings: Settings) -> dict[str, Any]:
    from pipelines.ingest import ingest_batch

    report = ingest_batch(db_path, batch_dir, settings.ingest)
    return {
        **report.summary(),
        "quarantine_reasons": [
            {"table": table, "reason": reason, "rows": n}
            for (table, reason), n in sorted(report.quarantine_reasons.items())
        ],
    }


def train_step(settings: Settings, truth_path: str | None, force: bool) -> dict[str, Any]:
    from pipelines.training import train_all

    report = train_all(settings, Path(truth_path) if truth_path else None, force=force)
    return {
        **report.split.to_dict(),
        "rows": report.rows,
        "comparison": report.comparison.to_dicts(),
        "decisions": {o: d.to_dict() for o, d in report.decisions.items()},
        "seconds": report.seconds,
    }


def score_step(settings: Settings, as_of: str | None, data_warning: str | None = None) -> Any:
    from pipelines.scoring import score_population

    # Not stored here: publish_step stores the scores and lists with the folder it publishes.
    result = score_population(settings, date.fromisoformat(as_of) if as_of else None, data_warning=data_warning)
    log.info("scored %s", ", ".join(f"{k} {v:,}" for k, v in result.counts().items()))
    return result


def stage_partitions_step(settings: Settings, as_of: str | None, data_warning: str | None = None) -> Any:
    """Read the warehouse and build everyone's features once (as the one-process run does), then write them as
    one Parquet file per person partition for the workers (`pipelines.partitions`)."""
    from pipelines.partitions import write_partitions
    from pipelines.scoring import stage_scoring

    staged = stage_scoring(settings, date.fromisoformat(as_of) if as_of else None, data_warning=data_warning)
    folder = _partition_folder(settings, staged.run_id)
    paths = write_partitions(staged.features, settings.runs.score_partitions, folder)
    log.info("features of %d people in %d partitions", staged.features.height, len(paths))
    return staged, paths


def _partition_folder(settings: Settings, run_id: str) -> Path:
    return (settings.runs.partition_dir or settings.home / "partitions").resolve() / run_id


def score_partition_step(features_path: str, registry: str, versions: dict[str, str], ranking: str) -> str:
    from pipelines.partitions import score_partition

    return score_partition(features_path, registry, versions, ranking)


def list_people_step(staged: Any, score_paths: list[str]) -> Any:
    """The population-wide reduce, once: tiers, team lists at capacity, changes, leavers, rising risk."""
    from pipelines.partitions import gather_scores
    from pipelines.scoring import list_people

    return list_people(staged, gather_scores(score_paths))


def explain_partition_step(
    features_path: str, listed_path: str, registry: str, outcome: str, version: str, top_reasons: int, currency: str
) -> tuple[str, str]:
    from pipelines.partitions import explain_partition

    return explain_partition(features_path, listed_path, registry, outcome, version, top_reasons, currency)


def assemble_step(staged: Any, listed: Any, reason_paths: list[tuple[str, str]]) -> Any:
    """The reasons in the one-process order and the publication assembled (publish_step stores the scores)."""
    from pipelines.partitions import gather_reasons
    from pipelines.scoring import assemble_result, explain_people

    settings = staged.settings
    if reason_paths:
        reasons = gather_reasons(reason_paths)
    else:  # no one listed: what the one-process run explains (nobody)
        ranking = staged.models[settings.scoring.ranking_outcome]
        reasons = explain_people(ranking, staged.features.head(0), settings.scoring.top_reasons, staged.currency)
    result = assemble_result(staged, listed, reasons)
    log.info("scored %s", ", ".join(f"{k} {v:,}" for k, v in result.counts().items()))
    return result


@retries_transient
def publish_step(settings: Settings, result: Any, reidentification: dict[str, str] | None = None) -> dict[str, Any]:
    """Publish the run's folder and store its scores and lists in the warehouse, both or neither: the rows are
    written in one transaction while the folder is staged and committed once it is switched in.
    `reidentification` maps a team id to that team's own lookup file (CSV: person_id, nhs_number, name)."""
    import polars as pl

    from pipelines.publish import publish
    from pipelines.warehouse import scores_stored
    from pipelines.workspace.snapshot import published_run, write_snapshot

    lookups = {team: pl.read_csv(path, infer_schema=False) for team, path in (reidentification or {}).items()}
    report = publish(
        settings.outputs,
        result.publication,
        reidentification=lookups,
        templates=settings.templates_dir,
        record=lambda: scores_stored(settings.db, result),
    )
    write_snapshot(settings.workspace_dir, published_run(result.publication))  # the MDT workspace switches to it
    return {
        "folder": str(settings.outputs / result.publication.provenance.as_of.isoformat()),
        "files": len(report.files),
        "teams": report.teams,
        "people_listed": report.people_listed,
    }


def export_caseload_step(settings: Settings) -> str | None:
    """The MDT workspace's decisions not yet exported become a caseload batch, ingested with the others."""
    from pipelines.workspace.caseload import export_batch

    folder = export_batch(settings.workspace_dir, settings.batches)
    return str(folder) if folder else None


def erase_opted_out_decisions_step(settings: Settings) -> int:
    """People who opted out lose their decisions in the workspace's own state too."""
    from pipelines.workspace.caseload import erase_opted_out

    removed = erase_opted_out(settings.workspace_dir, settings.db)
    if removed:
        log.info("removed %d workspace decisions of people who opted out", removed)
    return removed


@retries_transient
def gates_step(settings: Settings, loaded_batch_ids: list[str], as_of: str) -> Any:
    """Check and store the batches loaded now and the newest one; the decision, before the policy applies."""
    from pipelines.gates import gate

    return gate(settings.db, loaded_batch_ids, settings.quality)


def _no_prefect_server(**_: Any) -> None:
    raise RuntimeError("no Prefect server is in use (set PREFECT_API_URL to one that serves the deployments)")


@retries_transient
def monitor_step(settings: Settings, result: Any, as_of: str, deployments_reachable: bool = True) -> dict[str, Any]:
    """Drift and performance of the ranking model, stored; the report and the workspace page's copy; a refit
    requested when a rule fires."""
    from pipelines.monitor import default_report_path, monitor_scored, publish_monitoring, trigger_retrain

    report = monitor_scored(settings, result, result.features)
    page = publish_monitoring(settings, default_report_path(settings))  # and the workspace's monitoring page
    # Last, so that a retry of this task (a transient failure above) never requests a second refit.
    requester = None if deployments_reachable else _no_prefect_server
    refit = settings.monitoring.trigger_refit and trigger_retrain(report.alerts, run_deployment=requester)
    return {**report.summary(), "refit_requested": refit, "report": str(page)}


def evaluate_step(settings: Settings, plan: str | None, draws: str | None) -> dict[str, Any]:
    from pipelines.evaluate import evaluate as run_evaluation

    report = run_evaluation(settings, Path(plan) if plan else None, Path(draws) if draws else None)
    return report.summary()


# ------------------------------------------------------------------------------------------------- jobs

_COUNT_KEYS = ("table", "rows_read", "rows_loaded", "rows_quarantined", "rows_excluded", "rows_removed")


def ingest_job(
    run: Runner, batch_dirs: list[str], config: str | None = None, overrides: dict[str, Any] | None = None
) -> list[dict]:
    """Validate and load batches in order. Each batch is atomic; a rejected batch stops the run; a batch not
    whole yet waits (with those after it) for the next run."""
    from pipelines.ingest import held_back

    settings = settings_from(config, overrides)
    ingest_one = run.step(ingest_batch_step, settings, "ingest")
    reports: list[dict] = []
    for b in sorted(batch_dirs):
        reports.append(held_back(Path(b), reports) or ingest_one(settings.db, Path(b), settings))
    run.table_artifact(
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


def train_job(
    run: Runner,
    config: str | None = None,
    overrides: dict[str, Any] | None = None,
    truth_path: str | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Retrain every outcome's model on stacked index dates; register each version, promote only if not worse."""
    settings = settings_from(config, overrides)
    summary = run.step(train_step, settings, "train")(settings, truth_path, force)
    run.table_artifact(
        key="model-comparison",
        table=[
            {k: row[k] for k in ("outcome", "model", "metric", "estimate", "lo", "hi")}
            for row in summary["comparison"]
            if row["metric"] in ("auroc", "auprc", "brier", "calibration_slope", "ppv_top_5pct")
        ],
        description="Models against baselines on the evaluation index date (95% bootstrap intervals).",
    )
    _link_model_cards(run, settings)
    return summary


def _link_model_cards(run: Runner, settings: Settings) -> None:
    from models.registry import ModelRegistry

    registry = ModelRegistry(settings.registry)
    for outcome in settings.training.outcomes:
        version = registry.current_version(outcome)
        card = settings.registry / outcome / str(version) / "model_card.html"
        if version is not None and card.exists():
            run.link_artifact(
                key=runs.artifact_key("model-card", outcome),
                link=runs.file_link(card),
                link_text=f"{outcome} {version} model card",
                description=f"The current {outcome} model's card ({card}).",
            )


def _score_and_publish(
    run: Runner,
    settings: Settings,
    as_of: str | None,
    reidentification: dict[str, str] | None,
    data_warning: str | None = None,
) -> tuple[Any, dict[str, Any]]:
    """The scoring and publishing steps shared by the score and weekly jobs, with their artifacts."""
    result = _score(run, settings, as_of, data_warning)
    published = run.step(publish_step, settings, "publish")(settings, result, reidentification)
    counts = result.counts()
    prov = result.publication.provenance
    run.table_artifact(
        key="weekly-score-counts",
        table=[{"measure": k, "value": v} for k, v in counts.items()],
        description=f"Run {prov.run_id} as of {prov.as_of}: aggregate counts only.",
    )
    run.link_artifact(
        key="weekly-outputs",
        link=runs.file_link(Path(published["folder"])),
        link_text=f"team lists and commissioners' summary as of {prov.as_of}",
        description=f"{published['folder']}: {published['files']:,} files for {published['teams']} teams.",
    )
    _link_model_cards(run, settings)
    return result, {
        "run_id": prov.run_id,
        "as_of": str(prov.as_of),
        "counts": counts,
        "published": published,
        "model_versions": dict(prov.model_versions),
    }


def _score(run: Runner, settings: Settings, as_of: str | None, data_warning: str | None) -> Any:
    """Everyone scored, listed and explained: in one step, or (`runs.task_runner = "dask"`) mapped per person
    partition with the population-wide reduce once in between (`pipelines.partitions`)."""
    import shutil

    if settings.runs.task_runner == "local":
        return run.step(score_step, settings, "score")(settings, as_of, data_warning)
    from pipelines.partitions import partition_number, write_listed

    staged, feature_paths = run.step(stage_partitions_step, settings, "score")(settings, as_of, data_warning)
    folder = _partition_folder(settings, staged.run_id)
    try:
        registry = str(settings.registry.resolve())
        ranking = settings.scoring.ranking_outcome
        score_paths = run.map(
            score_partition_step,
            settings,
            "score",
            feature_paths,
            registry=registry,
            versions=staged.versions,
            ranking=ranking,
        )
        listed = run.step(list_people_step, settings, "score")(staged, score_paths)
        listed_path, holding = write_listed(listed.marked, folder, settings.runs.score_partitions)
        to_explain = [p for p in feature_paths if partition_number(p) in holding]
        reason_paths = run.map(
            explain_partition_step,
            settings,
            "score",
            to_explain,
            listed_path=listed_path,
            registry=registry,
            outcome=ranking,
            version=staged.versions[ranking],
            top_reasons=settings.scoring.top_reasons,
            currency=staged.currency,
        )
        return run.step(assemble_step, settings, "score")(staged, listed, reason_paths)
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # person-level features: kept no longer than the run


def score_job(
    run: Runner,
    config: str | None = None,
    overrides: dict[str, Any] | None = None,
    as_of: str | None = None,
    reidentification: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Score everyone eligible, stratify, cut each team's list at capacity, explain, and publish. A team's own
    re-identification lookup (team id -> CSV path) is applied to that team's outputs only."""
    settings = settings_from(config, overrides)
    return _score_and_publish(run, settings, as_of, reidentification)[1]


def _weekly_summary_artifact(run: Runner, as_of: str | None, reports: list[dict], **parts: Any) -> None:
    run.markdown_artifact(
        key="weekly-summary",
        markdown=runs.weekly_summary(as_of, reports, **parts),
        description=f"Weekly run as of {as_of}: counts only.",
    )


def weekly_job(run: Runner, config: str | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The weekly refresh: ingest every batch not yet loaded, run the data-quality gates (stop, or score with the
    errors stated, per `quality.on_error`), score and publish, then monitor drift and request a refit when a
    rule fires. Publishes a Markdown summary of the run (also when it stops at the gates)."""
    from data_contracts.batch import batches_in
    from data_contracts.errors import NotReadyError
    from data_contracts.quality import DataQualityError
    from pipelines.gates import apply_policy
    from pipelines.warehouse import latest_extract_date

    settings = settings_from(config, overrides)
    run.step(export_caseload_step, settings, "workspace")(settings)
    pattern = settings.ingest.batch_name_pattern
    batch_dirs = [str(p) for p in batches_in(settings.batches, pattern)] if settings.batches.exists() else []
    reports = run.job("ingest")(batch_dirs=batch_dirs, config=config, overrides=overrides) if batch_dirs else []
    run.step(erase_opted_out_decisions_step, settings, "workspace")(settings)
    latest = latest_extract_date(settings.db) if settings.db.exists() else None
    if latest is None:
        raise NotReadyError(f"{settings.db} holds no loaded batches: put batch folders in {settings.batches}")
    as_of = latest.isoformat()
    run.rename(f"weekly {as_of}")
    loaded = [r["batch_id"] for r in reports if r["status"] == "loaded"]
    decision = run.step(gates_step, settings, "gates")(settings, loaded, as_of)
    gates = runs.gate_summary(decision, settings.quality.on_error)
    try:
        statement = apply_policy(decision, settings.quality)
    except DataQualityError:
        _weekly_summary_artifact(run, as_of, reports, gates=gates)
        raise
    result, scored = _score_and_publish(run, settings, as_of, None, statement)
    monitored = run.step(monitor_step, settings, "monitor")(settings, result, as_of, run.deployments_reachable)
    run.link_artifact(
        key="monitoring-report",
        link=runs.file_link(Path(monitored["report"])),
        link_text=f"monitoring report as of {as_of}",
        description=monitored["report"],
    )
    _weekly_summary_artifact(run, as_of, reports, gates=gates, score=scored, monitoring=monitored)
    return {"ingest": reports, "gates": gates, "score": scored, "monitoring": monitored}


def evaluate_job(
    run: Runner,
    config: str | None = None,
    overrides: dict[str, Any] | None = None,
    plan: str | None = None,
    draws: str | None = None,
) -> dict[str, Any]:
    """Evaluate the case-management service against its frozen plan (monthly): estimates, balance, outcome
    metrics with control charts, written as HTML, JSON and CSV; the estimates kept with the plan's hash."""
    settings = settings_from(config, overrides)
    summary = run.step(evaluate_step, settings, None)(settings, plan, draws)
    run.table_artifact(
        key="case-management-evaluation",
        table=[
            {k: row[k] for k in ("method", "outcome", "estimate", "lo", "hi", "people")} for row in summary["estimates"]
        ],
        description=f"Plan {summary['plan_id']} ({summary['plan_hash'][:12]}), data to {summary['data_end']}: "
        "aggregates only.",
    )
    return summary


def demo_job(run: Runner, config: str | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The embedded default end to end: generate a synthetic population, ingest, train, score and publish."""
    settings = settings_from(config, overrides)
    generated = run.step(generate_step, settings, "generate")(settings)
    reports = run.job("ingest")(batch_dirs=generated["batch_dirs"], config=config, overrides=overrides)
    trained = run.job("train")(config=config, overrides=overrides, truth_path=generated["truth_path"])
    scored = run.job("score")(config=config, overrides=overrides)
    return {"generated": generated, "ingest": reports, "train": trained, "score": scored}


JOBS: dict[str, Callable[..., Any]] = {
    "ingest": ingest_job,
    "train": train_job,
    "score": score_job,
    "weekly": weekly_job,
    "evaluate": evaluate_job,
    "demo": demo_job,
}


# ------------------------------------------------------------------------------------------ plain runner


class PlainRunner:
    """Runs a job in this process without Prefect (see the module's docstring for what is kept)."""

    deployments_reachable = False

    def step(self, fn: Callable[..., Any], settings: Settings, limit: str | None) -> Callable[..., Any]:
        if not getattr(fn, "retries_transient", False):
            return fn
        r = settings.runs

        @functools.wraps(fn)
        def retried(*args: Any, **kwargs: Any) -> Any:
            for attempt in range(r.retries + 1):
                try:
                    return fn(*args, **kwargs)
                except Exception as exc:
                    if attempt == r.retries or not runs.is_transient(exc):
                        raise
                    log.warning("%s failed (%s): trying again in %d s", fn.__name__, exc, r.retry_delay_seconds)
                    time.sleep(r.retry_delay_seconds)
            raise AssertionError("unreachable")

        return retried

    def job(self, name: str) -> Callable[..., Any]:
        return functools.partial(JOBS[name], self)

    def map(
        self, fn: Callable[..., Any], settings: Settings, limit: str | None, items: list[Any], **constants: Any
    ) -> list[Any]:
        step = self.step(fn, settings, limit)
        return [step(item, **constants) for item in items]

    def table_artifact(self, key: str, table: list[dict[str, Any]], description: str) -> None:
        pass

    def link_artifact(self, key: str, link: str, link_text: str, description: str) -> None:
        pass

    def markdown_artifact(self, key: str, markdown: str, description: str) -> None:
        pass

    def rename(self, name: str) -> None:
        pass


def run_plain(job: str, **parameters: Any) -> Any:
    """Run a job in this process without Prefect: what an interactive command does without a server."""
    return JOBS[job](PlainRunner(), **parameters)
