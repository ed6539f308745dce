"""The workspace's audit trail: append-only and tamper-evident.

Every record carries the SHA-256 of the previous record's hash and its own fields (canonical JSON), so a
changed, inserted or deleted record breaks the chain from that point on; `verify` finds the first break.
SQLite triggers refuse UPDATE and DELETE on the table (see `state.py`), so the application itself cannot
rewrite history. Records name the user, team, time, action, outcome and, where one is involved, the
pseudonymised person id (the information-governance lead needs to know who looked at whom); they never hold
names, NHS numbers or clinical values. Removing the newest records leaves a valid shorter chain: keep the
exported trail (`export`) elsewhere, and compare its last hash, to detect that.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from pipelines.workspace.state import connect, transaction

GENESIS = "0" * 64
FIELDS = ("seq", "at", "user_name", "team_id", "role", "action", "person_id", "detail", "outcome")
EXPORT_COLUMNS = (*FIELDS, "prev_hash", "hash")


@dataclass(frozen=True)
class AuditEvent:
    action: str  # login, logout, view_list, view_person, download, reidentify, record_decision, ...
    outcome: str  # ok, denied, not_found, failed, locked, invalid
    user_name: str | None = None
    team_id: str | None = None
    role: str | None = None
    person_id: str | None = None
    detail: str = ""  # counts, filters, file kinds: never person-level values


@dataclass(frozen=True)
class VerifyResult:
    records: int
    first_broken_seq: int | None  # None: the whole chain is intact
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.first_broken_seq is None


def record_hash(prev_hash: str, values: dict[str, object]) -> str:
    # Empty and missing are one value, so the chain re-checks from a CSV export (which cannot tell them apart).
    fields = ["" if values.get(f) is None else str(values.get(f)) for f in FIELDS]
    canonical = json.dumps(fields, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{prev_hash}|{canonical}".encode()).hexdigest()


def append(workspace_dir: Path, event: AuditEvent, con: sqlite3.Connection | None = None) -> int:
    """Append one record (its own transaction, or the caller's `con` inside one); returns its sequence number."""
    if con is None:
        with connect(workspace_dir) as own, transaction(own):
            return _append(own, event)
    return _append(con, event)


def _append(con: sqlite3.Connection, event: AuditEvent) -> int:
    last = con.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = (last["seq"] + 1, last["hash"]) if last else (1, GENESIS)
    values: dict[str, object] = {
        "seq": seq,
        "at": datetime.now(UTC).isoformat(timespec="microseconds"),
        "user_name": event.user_name,
        "team_id": event.team_id,
        "role": event.role,
        "action": event.action,
        "person_id": event.person_id,
        "detail": event.detail,
        "outcome": event.outcome,
    }
    con.execute(
        f"INSERT INTO audit ({', '.join(EXPORT_COLUMNS)}) VALUES ({', '.join('?' * len(EXPORT_COLUMNS))})",
        [*(values[f] for f in FIELDS), prev, record_hash(prev, values)],
    )
    return seq


def verify(workspace_dir: Path) -> VerifyResult:
    with connect(workspace_dir) as con:
        rows = con.execute(f"SELECT {', '.join(EXPORT_COLUMNS)} FROM audit ORDER BY seq").fetchall()
    return verify_records([dict(r) for r in rows])


def verify_records(rows: list[dict[str, object]]) -> VerifyResult:
    """Check a chain of records (from the database or an export starting at its first record)."""
    prev = str(rows[0]["prev_hash"]) if rows else GENESIS
    expected_seq = int(str(rows[0]["seq"])) if rows else 1
    for row in rows:
        seq = int(str(row["seq"]))
        if seq != expected_seq:
            return VerifyResult(len(rows), expected_seq, f"record {expected_seq} is missing")
        if row["prev_hash"] != prev:
            return VerifyResult(len(rows), seq, f"record {seq} does not follow the record before it")
        values = {f: row[f] for f in FIELDS}
        if record_hash(prev, values) != row["hash"]:
            return VerifyResult(len(rows), seq, f"record {seq} was changed after it was written")
        prev, expected_seq = str(row["hash"]), seq + 1
    return VerifyResult(len(rows), None)


def records(workspace_dir: Path, start: date | None = None, end: date | None = None) -> list[dict[str, object]]:
    """Records from `start` to `end` inclusive (UTC dates), oldest first."""
    low = datetime.combine(start, datetime.min.time(), UTC).isoformat() if start else ""
    high = datetime.combine(end + timedelta(days=1), datetime.min.time(), UTC).isoformat() if end else "9999"
    with connect(workspace_dir) as con:
        rows = con.execute(
            f"SELECT {', '.join(EXPORT_COLUMNS)} FROM audit WHERE at >= ? AND at < ? ORDER BY seq", [low, high]
        ).fetchall()
    return [dict(r) for r in rows]


def export_csv(rows: list[dict[str, object]]) -> str:
    """The records as CSV with their hashes, so the chain can be re-checked from the export alone."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(EXPORT_COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def recent(workspace_dir: Path, limit: int = 200) -> list[dict[str, object]]:
    with connect(workspace_dir) as con:
        rows = con.execute(
            f"SELECT {', '.join(EXPORT_COLUMNS)} FROM audit ORDER BY seq DESC LIMIT ?", [limit]
        ).fetchall()
    return [dict(r) for r in rows]
