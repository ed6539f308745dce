"""Prefect flows: the jobs of `pipelines.jobs` run under Prefect, each step a named task run.

Flows take a settings file path and nested overrides (JSON-able) rather than a settings object, so a
deployment's parameters stay editable in the Prefect UI. Artifacts carry counts only, never
person-level values. Every task has a time limit (`[runs]` settings); I/O steps retry transient failures
only (`pipelines.runs.retry_transient`: a rejected batch or a failed gate is never retried). Runs and task
runs are named after what they work on. Tasks do not cache: every week's inputs differ, and some are large
frames. The job bodies live in `pipelines.jobs`, shared with the plain path interactive commands take.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pipelines

pipelines.make_prefect_home()  # before Prefect is imported: it reads its home once, then

from prefect import Flow, Task, flow, task  # noqa: E402
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402

from pipelines import jobs, runs  # noqa: E402
from pipelines.settings import Settings  # noqa: E402


def _run_settings() -> Settings:
    """The settings of the flow run being named (from its parameters)."""
    from prefect.runtime import flow_run

    return jobs.settings_from(flow_run.parameters.get("config"), flow_run.parameters.get("overrides"))


def _as_task(fn: Callable[..., Any], **options: Any) -> Task:
    """A step as a Prefect task; the steps that touch files and the database retry transient failures only."""
    if getattr(fn, "retries_transient", False):
        options["retry_condition_fn"] = runs.retry_transient
    return task(fn, cache_policy=NO_CACHE, **options)


def _train_task_name(parameters: dict[str, Any]) -> str:
    return "train " + ", ".join(parameters["settings"].training.outcomes)


def _score_task_name(parameters: dict[str, Any]) -> str:
    return f"score {parameters.get('as_of') or 'latest data'}"


generate_task = _as_task(jobs.generate_step, name="generate", task_run_name="generate {settings.synth.people} people")
ingest_batch_task = _as_task(jobs.ingest_batch_step, name="ingest batch", task_run_name="ingest {batch_dir.name}")
train_task = _as_task(jobs.train_step, name="train", task_run_name=_train_task_name)
score_task = _as_task(jobs.score_step, name="score", task_run_name=_score_task_name)
publish_task = _as_task(
    jobs.publish_step, name="publish", task_run_name="publish {result.publication.provenance.as_of}"
)
export_caseload_task = _as_task(
    jobs.export_caseload_step, name="export caseload", task_run_name="export caseload decisions"
)
erase_opted_out_decisions_task = _as_task(
    jobs.erase_opted_out_decisions_step,
    name="erase opted-out decisions",
    task_run_name="erase opted-out decisions",
)
gates_task = _as_task(jobs.gates_step, name="gates", task_run_name="data-quality gates as of {as_of}")
monitor_task = _as_task(jobs.monitor_step, name="monitor", task_run_name="monitor {as_of}")
evaluate_task = _as_task(jobs.evaluate_step, name="evaluate_task")
stage_partitions_task = _as_task(
    jobs.stage_partitions_step, name="stage partitions", task_run_name="features in person partitions"
)
score_partition_task = _as_task(
    jobs.score_partition_step, name="score partition", task_run_name=lambda: _partition_run_name("score")
)
list_people_task = _as_task(jobs.list_people_step, name="list people", task_run_name="tiers and team lists")
explain_partition_task = _as_task(
    jobs.explain_partition_step, name="explain partition", task_run_name=lambda: _partition_run_name("explain")
)
assemble_task = _as_task(jobs.assemble_step, name="assemble", task_run_name="assemble and store the scores")

TASKS: dict[Callable[..., Any], Task] = {
    t.fn: t
    for t in (
        generate_task,
        ingest_batch_task,
        train_task,
        score_task,
        publish_task,
        export_caseload_task,
        erase_opted_out_decisions_task,
        gates_task,
        monitor_task,
        evaluate_task,
        stage_partitions_task,
        score_partition_task,
        list_people_task,
        explain_partition_task,
        assemble_task,
    )
}


def _partition_run_name(verb: str) -> str:
    from prefect.runtime import task_run

    from pipelines.partitions import partition_number

    return f"{verb} partition {partition_number(task_run.parameters['features_path'])}"


def task_runner_for(settings: Settings) -> Any:
    """The task runner `runs.task_runner` names: None for the flows' own (one process), else Prefect's Dask
    task runner on the scheduler at `runs.dask_address` (a temporary LocalCluster when it is not set)."""
    if settings.runs.task_runner == "local":
        return None
    from prefect_dask import DaskTaskRunner

    address = settings.runs.dask_address
    return DaskTaskRunner(address=address) if address else DaskTaskRunner()


def flow_for(name: str, settings: Settings) -> Flow:
    """The flow `name` with the task runner its settings choose."""
    runner = task_runner_for(settings)
    return FLOWS[name] if runner is None else FLOWS[name].with_options(task_runner=runner)


class PrefectRunner:
    """Runs a job's steps as task runs of the current flow run, its sub-jobs as subflows."""

    deployments_reachable = True

    def step(self, fn: Callable[..., Any], settings: Settings, limit: str | None) -> Callable[..., Any]:
        """The step's task with its time limit and (for steps that retry transient failures) retries."""
        t = TASKS[fn]
        if limit is None:
            return t
        r = settings.runs
        options: dict[str, Any] = {"timeout_seconds": r.timeout(limit)}
        if t.retry_condition_fn is not None:
            options |= {"retries": r.retries, "retry_delay_seconds": r.retry_delay_seconds}
        return t.with_options(**options)

    def job(self, name: str) -> Callable[..., Any]:
        def subflow(config: str | None = None, overrides: dict[str, Any] | None = None, **parameters: Any) -> Any:
            settings = jobs.settings_from(config, overrides)
            return flow_for(name, settings)(config=config, overrides=overrides, **parameters)

        return subflow

    def map(
        self, fn: Callable[..., Any], settings: Settings, limit: str | None, items: list[Any], **constants: Any
    ) -> list[Any]:
        from prefect import unmapped

        step = self.step(fn, settings, limit)
        return step.map(items, **{k: unmapped(v) for k, v in constants.items()}).result()

    def table_artifact(self, key: str, table: list[dict[str, Any]], description: str) -> None:
        create_table_artifact(key=key, table=table, description=description)

    def link_artifact(self, key: str, link: str, link_text: str, description: str) -> None:
        create_link_artifact(key=key, link=link, link_text=link_text, description=description)

    def markdown_artifact(self, key: str, markdown: str, description: str) -> None:
        create_markdown_artifact(key=key, markdown=markdown, description=description)

    def rename(self, name: str) -> None:
        runs.rename_flow_run(name)


_PREFECT = PrefectRunner()


def _ingest_run_name() -> str:
    from prefect.runtime import flow_run

    n = len(flow_run.parameters.get("batch_dirs") or [])
    return f"ingest {n} batch{'' if n == 1 else 'es'}"


@flow(name="ingest", flow_run_name=_ingest_run_name, log_prints=False, description=jobs.ingest_job.__doc__)
def ingest(batch_dirs: list[str], config: str | None = None, overrides: dict[str, Any] | None = None) -> list[dict]:
    return jobs.ingest_job(_PREFECT, batch_dirs, config, overrides)


def _train_run_name() -> str:
    return "train " + ", ".join(_run_settings().training.outcomes)


@flow(name="train", flow_run_name=_train_run_name, description=jobs.train_job.__doc__)
def train(
    config: str | None = None,
    overrides: dict[str, Any] | None = None,
    truth_path: str | None = None,
    force: bool = False,
) -> dict[str, Any]:
    return jobs.train_job(_PREFECT, config, overrides, truth_path, force)


def _score_run_name() -> str:
    from prefect.runtime import flow_run

    return f"score {flow_run.parameters.get('as_of') or 'latest data'}"


@flow(name="score", flow_run_name=_score_run_name, description=jobs.score_job.__doc__)
def score(
    config: str | None = None,
    overrides: dict[str, Any] | None = None,
    as_of: str | None = None,
    reidentification: dict[str, str] | None = None,
) -> dict[str, Any]:
    return jobs.score_job(_PREFECT, config, overrides, as_of, reidentification)


@flow(name="weekly", flow_run_name=runs.weekly_started_name, description=jobs.weekly_job.__doc__)
def weekly(config: str | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    return jobs.weekly_job(_PREFECT, config, overrides)


@flow(name="evaluate", description=jobs.evaluate_job.__doc__)
def evaluate(
    config: str | None = None,
    overrides: dict[str, Any] | None = None,
    plan: str | None = None,
    draws: str | None = None,
) -> dict[str, Any]:
    return jobs.evaluate_job(_PREFECT, config, overrides, plan, draws)


def _demo_run_name() -> str:
    return f"demo {_run_settings().synth.people:,} people"


@flow(name="demo", flow_run_name=_demo_run_name, description=jobs.demo_job.__doc__)
def demo(config: str | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    return jobs.demo_job(_PREFECT, config, overrides)


FLOWS: dict[str, Flow] = {
    "ingest": ingest,
    "train": train,
    "score": score,
    "weekly": weekly,
    "evaluate": evaluate,
    "demo": demo,
}
