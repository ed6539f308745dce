"""Prefect deployments a data team can see, schedule and trigger: the weekly refresh and the retrain."""

from __future__ import annotations

from typing import Any

from prefect.schedules import Cron

from pipelines.settings import Settings


def deployments(settings: Settings, config: str | None = None) -> list[Any]:
    """The weekly refresh (ingest new batches, score, publish) on `schedule.weekly_cron`, model retraining as its
    own deployment on `schedule.retrain_cron` and the evaluation of case management on `schedule.evaluate_cron`
    (monthly), all in `schedule.timezone`."""
    from pipelines.flows import evaluate, train, weekly

    parameters = {"config": config, "overrides": settings.to_dict()}
    schedule = settings.schedule
    planned = (
        (
            weekly,
            "riskstrat-weekly",
            schedule.weekly_cron,
            "Ingest new batches, score everyone, publish each team's list.",
        ),
        (
            train,
            "riskstrat-retrain",
            schedule.retrain_cron,
            "Retrain every outcome's model; promote only models not worse than the current one.",
        ),
        (
            evaluate,
            "riskstrat-evaluate",
            schedule.evaluate_cron,
            "Evaluate the case-management service against its frozen plan; write the report.",
        ),
    )
    return [
        flow.to_deployment(
            name=name,
            schedules=[Cron(cron, timezone=schedule.timezone)],
            parameters=parameters,
            description=description,
            tags=["riskstrat", name.removeprefix("riskstrat-")],
        )
        for flow, name, cron, description in planned
    ]
