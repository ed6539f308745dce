"""Caseload decisions recorded in the workspace, and their way into the warehouse as `caseload` contract batches.

A lead's decision is stored in the app state at once (so the person page and the caseload show it), checked
against the same contract as any delivered caseload row. The weekly flow exports the decisions not yet
exported as a batch folder (`caseload.csv` and its manifest, through `data_contracts.batch.write_batch`) into
the batches folder, where ingest validates and loads it like a team's own delivery; the grain (person, team,
decision date) makes a later correction replace the earlier row.
"""

from __future__ import annotations

import csv
import io
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from data_contracts.batch import write_batch
from data_contracts.reference import codelist
from data_contracts.tables import CASELOAD
from pipelines.workspace.state import connect, state_path, transaction

EXPORT_PREFIX = "caseload-"
EXPORT_KIND = "caseload decisions"
DATE_COLUMNS = ("discussed_date", "decision_date", "case_management_start", "case_management_end")
CONTRACT_COLUMNS = tuple(c.name for c in CASELOAD.input_columns)


class DecisionRejected(ValueError):
    """The decision breaks a rule of the caseload contract; the message says which, in the user's words."""


@dataclass(frozen=True)
class Decision:
    person_id: str
    team_id: str
    decision: str
    decision_date: date
    discussed_date: date | None = None
    reason_code: str | None = None
    case_management_start: date | None = None
    case_management_end: date | None = None

    def contract_row(self) -> dict[str, str]:
        values = {c: getattr(self, c) for c in CONTRACT_COLUMNS}
        return {c: ("" if v is None else v.isoformat() if isinstance(v, date) else str(v)) for c, v in values.items()}


def decision_labels() -> dict[str, str]:
    return dict(codelist("caseload_decision").codes)


def reason_labels() -> dict[str, str]:
    return dict(codelist("caseload_reason").codes)


def check_decision(d: Decision, today: date) -> None:
    """The caseload contract's rules (code lists, order rules, conditional requirements, no future dates)."""
    if d.decision not in decision_labels():
        raise DecisionRejected("choose one of the listed decisions")
    if d.reason_code and d.reason_code not in reason_labels():
        raise DecisionRejected("choose one of the listed reasons")
    for rule in CASELOAD.required_when:
        if getattr(d, rule.when_column) in rule.values and not getattr(d, rule.column):
            raise DecisionRejected(f"{_words(rule.column)} is needed when the decision is {_words(d.decision)}")
    for column in DATE_COLUMNS:
        value = getattr(d, column)
        if value is not None and value > today:
            raise DecisionRejected(f"{_words(column)} cannot be in the future")
    for rule in CASELOAD.order_rules:
        earlier, later = getattr(d, rule.earlier), getattr(d, rule.later)
        if earlier is not None and later is not None and later < earlier:
            raise DecisionRejected(f"{_words(rule.later)} cannot be before {_words(rule.earlier)}")


def _words(name: str) -> str:
    return decision_labels().get(name, name.replace("_", " ")).lower()


def record_decision(workspace_dir: Path, d: Decision, recorded_by: str, con: sqlite3.Connection) -> int:
    """Store a checked decision inside the caller's transaction (the audit record goes in the same one)."""
    check_decision(d, datetime.now(UTC).date())
    row = d.contract_row()
    cur = con.execute(
        f"INSERT INTO decisions ({', '.join(CONTRACT_COLUMNS)}, recorded_by, recorded_at) "
        f"VALUES ({', '.join('?' * len(CONTRACT_COLUMNS))}, ?, ?)",
        [*(row[c] or None for c in CONTRACT_COLUMNS), recorded_by, datetime.now(UTC).isoformat()],
    )
    return int(cur.lastrowid or 0)


def decisions_for(workspace_dir: Path, team_id: str, person_id: str | None = None) -> list[dict[str, object]]:
    """A team's decisions (one person's, when given), newest first."""
    query = "SELECT * FROM decisions WHERE team_id = ?" + (" AND person_id = ?" if person_id else "")
    params = [team_id, person_id] if person_id else [team_id]
    with connect(workspace_dir) as con:
        rows = con.execute(query + " ORDER BY decision_date DESC, id DESC", params).fetchall()
    return [dict(r) for r in rows]


def latest_by_person(rows: Iterable[dict[str, object]]) -> dict[str, dict[str, object]]:
    """Each person's current decision: the latest decision date, the last recorded on that date."""
    latest: dict[str, dict[str, object]] = {}
    for row in rows:  # newest first
        latest.setdefault(str(row["person_id"]), row)
    return latest


def export_batch(workspace_dir: Path, batches_dir: Path, now: datetime | None = None) -> Path | None:
    """Write the decisions not yet exported as a caseload batch folder; None when there are none.

    The folder is written by the one batch writer (staged, then renamed), so the weekly flow never ingests half
    of it; the rows are marked exported in the same SQLite transaction that reads them."""
    if not state_path(workspace_dir).exists():
        return None  # the workspace was never used
    now = now or datetime.now(UTC)
    batch_id = f"{EXPORT_PREFIX}{now.strftime('%Y%m%dT%H%M%S%fZ')}"
    with connect(workspace_dir) as con, transaction(con):
        rows = con.execute("SELECT * FROM decisions WHERE exported_batch IS NULL ORDER BY id").fetchall()
        if not rows:
            return None
        # One row per grain key: the last recorded wins, as ingest would otherwise quarantine the conflict.
        by_key = {(r["person_id"], r["team_id"], r["decision_date"]): r for r in rows}
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=list(CONTRACT_COLUMNS))
        writer.writeheader()
        writer.writerows({c: r[c] or "" for c in CONTRACT_COLUMNS} for r in by_key.values())
        with write_batch(batches_dir / batch_id, batch_id, now.date(), None, EXPORT_KIND) as batch:
            batch.add_file(f"{CASELOAD.name}.csv", CASELOAD.name, text.getvalue().encode("utf-8"), len(by_key))
        con.execute("UPDATE decisions SET exported_batch = ? WHERE exported_batch IS NULL", [batch_id])
    return batches_dir / batch_id


def erase_opted_out(workspace_dir: Path, db_path: Path) -> int:
    """Delete the decisions of everyone the warehouse records as opted out (run after each ingest)."""
    import duckdb
    import polars as pl

    if not state_path(workspace_dir).exists():
        return 0
    with connect(workspace_dir) as con:
        ids = [r[0] for r in con.execute("SELECT DISTINCT person_id FROM decisions").fetchall()]
    if not ids or not Path(db_path).exists():
        return 0
    with duckdb.connect(str(db_path), read_only=True) as wh:
        wh.register("_decided", pl.DataFrame({"person_id": ids}).to_arrow())
        opted_out = wh.execute(
            "SELECT DISTINCT person_id FROM (SELECT person_id FROM opt_outs UNION ALL "
            "SELECT person_id FROM opt_outs_unverified) o SEMI JOIN _decided d USING (person_id)"
        ).fetchall()
    return erase_people(workspace_dir, (r[0] for r in opted_out))


def erase_people(workspace_dir: Path, person_ids: Iterable[str]) -> int:
    """Delete the decisions of people who opted out (the warehouse erases its own copy at ingest)."""
    ids = sorted(set(person_ids))
    if not ids:
        return 0
    with connect(workspace_dir) as con, transaction(con):
        removed = 0
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            removed += con.execute(f"DELETE FROM decisions WHERE person_id IN ({marks})", chunk).rowcount
    return removed
