"""Prefect flows, the CLI and the wiring between layers.

Prefect reads its settings from the environment when it is first imported, so the defaults that
keep it quiet and local are set here, before any flow module imports it: a project-local home
(no state in the user's home directory), and no telemetry (the network may be closed, and a failed
telemetry call must not print errors). Anything already set in the environment wins.
"""

import os

os.environ.setdefault("PREFECT_HOME", os.path.abspath(os.path.join("var", ".prefect")))
# Prefect creates only the last folder of its home; make the whole path.
os.makedirs(os.environ["PREFECT_HOME"], exist_ok=True)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
# The first start on a fresh machine creates and migrates Prefect's database: on 2 busy cores that has taken
# longer than Prefect's 20 s default.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
