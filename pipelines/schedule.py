"""Prefect deployments a data team can see, schedule and trigger: the weekly refresh and the retrain."""

from __future__ import annotations

from typing import Any

from prefect.schedules import Cron

from pipelines.settings import Settings


def deployments(settings: Settings, config: str | None = None) -> list[Any]:
    """The weekly refresh (ingest new batches, score, publish) on `schedule.weekly_cron`, and model
    retraining as its own deployment on `schedule.retrain_cron`, both in `schedule.timezone`."""
    from pipelines.flows import train, weekly

    parameters = {"config": config, "overrides": settings.to_dict()}
    return [
        weekly.to_deployment(
            name="riskstrat-weekly",
            schedules=[Cron(settings.schedule.weekly_cron, timezone=settings.schedule.timezone)],
            parameters=parameters,
            description="Ingest new batches, score everyone, publish each team's list.",
            tags=["riskstrat", "weekly"],
        ),
        train.to_deployment(
            name="riskstrat-retrain",
            schedules=[Cron(settings.schedule.retrain_cron, timezone=settings.schedule.timezone)],
            parameters=parameters,
            description="Retrain every outcome's model; promote only models not worse than the current one.",
            tags=["riskstrat", "retrain"],
        ),
    ]
