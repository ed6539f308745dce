"""How riskstrat's Prefect runs can be watched: the retry policy, run names and the weekly run's summary.

- Retries: only a failure that may pass if tried again (a lost connection, a file or database lock held by
  another process, an interrupted read) is retried. A rejection of what riskstrat was given
  (`data_contracts.errors.DomainError`: a bad batch folder, a failed data-quality gate, a wrong setting), a bug
  and a task's own time limit fail at once. A database held by another run (`DatabaseBusy`) is not retried
  either: `pipelines.warehouse.connect` already waits for the lock (up to $RISKSTRAT_DB_WAIT_SECONDS, an hour
  for served runs) before giving up.
- Names: runs and task runs carry what they work on (`weekly 2026-11-01`, `ingest b0042_week_2026-11-01`).
- The weekly summary is Markdown built from counts only (batches, rows per table, quarantine reasons, checks,
  people scored and listed, model versions, monitoring alerts): never a person-level value.
"""

from __future__ import annotations

import errno
import logging
import sys
from collections.abc import Iterable, Mapping
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from data_contracts.errors import DomainError

log = logging.getLogger("riskstrat.runs")

# OSErrors that say something about the request, not the moment: trying again gives the same answer.
_DETERMINISTIC_OS_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError)
_TRANSIENT_ERRNOS = {errno.EIO, errno.EAGAIN, errno.EBUSY, errno.EINTR, errno.ETIMEDOUT, errno.ESTALE, errno.ENOLCK}


def is_transient(exc: BaseException) -> bool:
    """Whether trying again may succeed."""
    # A task's own time limit exists only under Prefect: without Prefect loaded (the plain path) there is none,
    # and importing it here would cost the plain path the seconds it saves.
    prefect_engine = sys.modules.get("prefect.task_engine")
    time_limit = (prefect_engine.TaskRunTimeoutError,) if prefect_engine is not None else ()
    if isinstance(exc, (DomainError, *time_limit, *_DETERMINISTIC_OS_ERRORS)):
        return False
    if isinstance(exc, ConnectionError | TimeoutError | BlockingIOError | InterruptedError):
        return True
    if isinstance(exc, duckdb.IOException):  # e.g. the database file locked by another process
        return True
    return type(exc) is OSError and exc.errno in _TRANSIENT_ERRNOS


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect's `retry_condition_fn`: retry a failed task run only when its exception is transient."""
    try:
        state.result()
    except BaseException as exc:  # the task's own exception, re-raised by result()
        transient = is_transient(exc)
        if not transient:
            log.info("%s: %s is not retried (not a transient failure)", task_run.name, type(exc).__name__)
        return transient
    return False


def rename_flow_run(name: str) -> None:
    """Rename the current flow run once what it works on is known (e.g. the as-of date after the ingest).
    A name is a label: failing to set it is logged, never fatal."""
    from prefect import get_client
    from prefect.runtime import flow_run

    if not flow_run.id:
        return
    try:
        with get_client(sync_client=True) as client:
            client.set_flow_run_name(flow_run.id, name)
    except Exception as exc:  # the API may be unreachable for a moment; the run goes on
        log.warning("could not rename flow run to %r: %s", name, exc)


def weekly_started_name() -> str:
    """The weekly run's name until the ingest has told the as-of date."""
    return f"weekly (started {date.today().isoformat()})"


# ------------------------------------------------------------------------------------------------ summary


def _table(header: tuple[str, ...], rows: Iterable[Iterable[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(f"{v:,}" if isinstance(v, int) else str(v) for v in row) + " |")
    return lines


def weekly_summary(
    as_of: str | None,
    ingest: list[Mapping[str, Any]],
    gates: Mapping[str, Any] | None = None,
    score: Mapping[str, Any] | None = None,
    monitoring: Mapping[str, Any] | None = None,
) -> str:
    """The weekly run in Markdown, counts only. Parts not reached (a run stopped by the gates) are said so."""
    loaded = [r for r in ingest if r["status"] == "loaded"]
    waiting = [r for r in ingest if r["status"] == "waiting"]
    skipped = [r for r in ingest if r["status"] not in ("loaded", "waiting")]
    lines = [f"# Weekly run, as of {as_of or 'unknown'}", ""]
    lines.append(
        f"**Batches:** {len(loaded)} loaded, {len(skipped)} skipped (already loaded with the same files)"
        + (f", {len(waiting)} waiting (not whole yet, or behind one that is not)" if waiting else "")
        + ("; no batch folder found" if not ingest else "")
    )
    lines.append("")
    if ingest:
        rows = ((r["batch_id"], r["status"].replace("_", " "), r.get("reason") or "") for r in ingest)
        lines += _table(("batch", "status", "reason"), rows)
        lines.append("")
    lines.append("## Rows per table (batches loaded by this run)")
    lines.append("")
    count_rows = [
        (r["batch_id"], t["table"], t["rows_read"], t["rows_loaded"], t["rows_quarantined"], t["rows_excluded"])
        for r in loaded
        for t in r["tables"]
    ]
    if count_rows:
        lines += _table(("batch", "table", "read", "loaded", "quarantined", "excluded (opt-outs)"), count_rows)
    else:
        lines.append("No new rows: every batch was already loaded.")
    lines += ["", "## Quarantine reasons", ""]
    reasons = [
        (r["batch_id"], q["table"], q["reason"], q["rows"]) for r in loaded for q in r.get("quarantine_reasons", [])
    ]
    lines += _table(("batch", "table", "reason", "rows"), reasons) if reasons else ["No row quarantined."]
    lines += ["", "## Data-quality gates", ""]
    if gates is None:
        lines.append("Not run.")
    else:
        counts = gates["counts"]
        lines.append(
            f"**{gates['status']}**: {counts.get('pass', 0)} passed, {counts.get('warn', 0)} warned, "
            f"{counts.get('error', 0)} failed (policy `{gates['policy']}`)"
        )
        problems = [(c["batch_id"], c["table"], c["check"], c["status"], c["message"]) for c in gates["problems"]]
        if problems:
            lines += ["", *_table(("batch", "table", "check", "status", "message"), problems)]
        if gates.get("statement"):
            lines += ["", f"Stated on every output: {gates['statement']}"]
    lines += ["", "## Scoring", ""]
    if score is None:
        lines.append("Not run (stopped before scoring).")
    else:
        lines += _table(("measure", "value"), ((k.replace("_", " "), v) for k, v in score["counts"].items()))
        lines += ["", "Model versions:", ""]
        lines += _table(("outcome", "version"), sorted(score["model_versions"].items()))
        lines += ["", f"Published to `{score['published']['folder']}` ({score['published']['files']:,} files)."]
    lines += ["", "## Monitoring", ""]
    if monitoring is None:
        lines.append("Not run.")
    else:
        lines += _table(
            ("measure", "value"),
            [
                ("model", monitoring["model"]),
                ("score PSI", _number(monitoring["score_psi"])),
                ("list churn (share new)", _number(monitoring["list_churn"])),
                ("expected AUROC", _number(monitoring.get("expected_auroc"))),
                *(
                    (f"realised AUROC, scores of {lag} ago", _number(v.get("auroc")))
                    for lag, v in monitoring["realised"].items()
                ),
                ("refit requested", "yes" if monitoring["refit_requested"] else "no"),
            ],
        )
        alerts = monitoring["alerts"]
        lines += ["", *(f"- alert: {a}" for a in alerts)] if alerts else ["", "No alert."]
    return "\n".join(lines) + "\n"


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def file_link(path: Path) -> str:
    return Path(path).resolve().as_uri()


def artifact_key(*parts: str) -> str:
    """Prefect artifact keys: lowercase letters, digits and dashes."""
    return "-".join(parts).lower().replace("_", "-").replace(" ", "-")


def gate_summary(decision: Any, policy: str) -> dict[str, Any]:
    """A data_contracts.quality.GateDecision as counts and its warnings and errors (JSON-able)."""
    problems = [*decision.errors, *decision.warnings]
    return {
        "status": decision.status,
        "policy": policy,
        "counts": {
            "pass": decision.checked - len(problems),
            "warn": len(decision.warnings),
            "error": len(decision.errors),
        },
        "problems": [p.to_dict() for p in problems],
        "statement": decision.statement(),
    }
