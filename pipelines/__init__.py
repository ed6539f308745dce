"""Prefect flows, the CLI and the wiring between layers.

Prefect reads its settings from the environment when it is first imported, so the defaults that
keep it quiet and local are set here, before any flow module imports it: a project-local home
(no state in the user's home directory), and no telemetry (the network may be closed, and a failed
telemetry call must not print errors). Anything already set in the environment wins.

riskstrat's own log lines (counts only) reach the Prefect UI: the `riskstrat` logger is one of Prefect's extra
loggers (its records inside a flow or task run go to the API beside Prefect's own), at INFO unless
RISKSTRAT_LOG_LEVEL says otherwise; outside a run the records are not sent and not warned about. Prefect logs
at INFO too; the CLI keeps Prefect's INFO lines off the terminal (`pipelines.cli`), not off the UI.

The home folder itself is made only when Prefect is about to be used (`make_prefect_home`, called by
`pipelines.flows` before it imports Prefect): importing `pipelines` writes nothing, so a command that takes the
plain path (`pipelines.jobs`) leaves no var/.prefect in the folder it was started from.
"""

import logging
import os

os.environ.setdefault("PREFECT_HOME", os.path.abspath(os.path.join("var", ".prefect")))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")
_extra = [n.strip() for n in os.environ.get("PREFECT_LOGGING_EXTRA_LOGGERS", "").split(",") if n.strip()]
os.environ["PREFECT_LOGGING_EXTRA_LOGGERS"] = ",".join(dict.fromkeys([*_extra, "riskstrat"]))
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
if logging.getLogger("riskstrat").level == logging.NOTSET:
    logging.getLogger("riskstrat").setLevel(os.environ.get("RISKSTRAT_LOG_LEVEL", "INFO").upper())
# The first start on a fresh machine creates and migrates Prefect's database: on 2 busy cores that has taken
# longer than Prefect's 20 s default.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")


def make_prefect_home() -> str:
    """Make Prefect's home folder (Prefect creates only its last folder, and warns and fails without the rest):
    call before importing Prefect."""
    os.makedirs(os.environ["PREFECT_HOME"], exist_ok=True)
    return os.environ["PREFECT_HOME"]
