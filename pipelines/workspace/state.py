"""The workspace's own state in one SQLite file (WAL mode): accounts, sessions, login failures, the audit trail
and the caseload decisions. Never the warehouse: the app must keep answering while a weekly run holds the
DuckDB writer lock.

Each call opens its own short-lived connection (SQLite connections are cheap and not shared across threads);
writes are single statements or short transactions, and SQLite's busy timeout queues concurrent writers.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STATE_FILE = "state.sqlite"
BUSY_TIMEOUT_MS = 10_000

SCHEMA: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS users (
  name TEXT PRIMARY KEY, team_id TEXT, role TEXT NOT NULL, password_hash TEXT,
  disabled INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS sessions (
  id_hash TEXT PRIMARY KEY, user_name TEXT NOT NULL, csrf TEXT NOT NULL,
  created_at REAL NOT NULL, last_seen REAL NOT NULL, ended INTEGER NOT NULL DEFAULT 0
)""",
    "CREATE TABLE IF NOT EXISTS login_failures (key TEXT NOT NULL, at REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS login_failures_key ON login_failures (key, at)",
    """CREATE TABLE IF NOT EXISTS audit (
  seq INTEGER PRIMARY KEY, at TEXT NOT NULL, user_name TEXT, team_id TEXT, role TEXT, action TEXT NOT NULL,
  person_id TEXT, detail TEXT, outcome TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL
)""",
    # Append-only: the database itself refuses to change or delete an audit record. Someone who edits the file
    # by other means is caught by the hash chain (`riskstrat audit verify`).
    """CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END""",
    """CREATE TABLE IF NOT EXISTS decisions (
  id INTEGER PRIMARY KEY, person_id TEXT NOT NULL, team_id TEXT NOT NULL, decision TEXT NOT NULL,
  discussed_date TEXT, decision_date TEXT NOT NULL, reason_code TEXT, case_management_start TEXT,
  case_management_end TEXT, recorded_by TEXT NOT NULL, recorded_at TEXT NOT NULL, exported_batch TEXT
)""",
    "CREATE INDEX IF NOT EXISTS decisions_person ON decisions (team_id, person_id)",
)


_READY: set[Path] = set()


def state_path(workspace_dir: Path) -> Path:
    return Path(workspace_dir) / STATE_FILE


@contextmanager
def connect(workspace_dir: Path) -> Iterator[sqlite3.Connection]:
    """A connection to the state database (created with its schema when absent); commits on success."""
    path = state_path(workspace_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = path not in _READY or not path.exists()
    con = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    con.row_factory = sqlite3.Row
    try:
        con.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        con.execute("PRAGMA synchronous = NORMAL")
        if fresh:  # once per process: the schema and WAL mode persist in the file
            con.execute("PRAGMA journal_mode = WAL")
            for ddl in SCHEMA:
                con.execute(ddl)
            _READY.add(path)
        yield con
    finally:
        con.close()


@contextmanager
def transaction(con: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT: takes the write lock up front, so read-then-write sequences (the audit chain's
    previous hash) cannot interleave with another writer."""
    con.execute("BEGIN IMMEDIATE")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
