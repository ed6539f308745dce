"""Prefect deployments a data team can see, schedule and trigger: the weekly refresh and the retrain.

A deployment's parameters are the settings file's absolute path and only the overrides given when serving, with
the home made absolute: the file stays the one place the settings live (an edit reaches the next run), and a run
started from any folder writes to the same home. Stopping `riskstrat serve` does not pause the schedules (Prefect
pauses them by default): runs due while it is down show as Late in the UI and start when it is back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect.schedules import Cron

from pipelines.settings import DEFAULT_CONFIG_FILE, Settings

PAUSE_ON_SHUTDOWN = False
"""Passed to Prefect's serve: a stopped or restarted `riskstrat serve` leaves the schedules on."""


def deployment_parameters(settings: Settings, config: Path | None = None) -> dict[str, Any]:
    """The config file (as given, else ./riskstrat.toml if present) as an absolute path, and the home."""
    path = config or (DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.exists() else None)
    return {
        "config": str(Path(path).resolve()) if path else None,
        "overrides": {"home": str(Path(settings.home).resolve())},
    }


def deployments(settings: Settings, config: Path | None = None) -> list[Any]:
    """The weekly refresh (ingest new batches, gate, score, publish, monitor) on `schedule.weekly_cron`, model
    retraining as its own deployment on `schedule.retrain_cron` and the evaluation of case management on
    `schedule.evaluate_cron` (monthly), all in `schedule.timezone`."""
    from pipelines.flows import flow_for

    parameters = deployment_parameters(settings, config)
    schedule = settings.schedule
    planned = (
        (
            flow_for("weekly", settings),
            "riskstrat-weekly",
            schedule.weekly_cron,
            "Ingest new batches, check their quality, score everyone, publish each team's list, monitor drift.",
        ),
        (
            flow_for("train", settings),
            "riskstrat-retrain",
            schedule.retrain_cron,
            "Retrain every outcome's model; promote only models not worse than the current one.",
        ),
        (
            flow_for("evaluate", settings),
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


def serve(settings: Settings, config: Path | None = None) -> None:
    """Serve the deployments until stopped (Ctrl-C or SIGTERM), without pausing them on the way out."""
    import signal
    import sys

    from prefect import serve as prefect_serve

    # Prefect's runner takes SIGTERM only once it starts, after every deployment is registered: a service
    # manager's stop during that start-up would otherwise kill the process (-15) instead of stopping it cleanly.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    prefect_serve(*deployments(settings, config), pause_on_shutdown=PAUSE_ON_SHUTDOWN)
