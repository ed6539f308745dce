"""Accounts and roles of the MDT workspace. Passwords are hashed with argon2 (argon2-cffi, RFC 9106 defaults)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from pipelines.workspace.state import connect

MIN_PASSWORD_LENGTH = 12
# argon2id with argon2-cffi's defaults (RFC 9106's low-memory profile). Verification reads the parameters from
# each stored hash, so raising them later keeps old hashes valid.
_HASHER = PasswordHasher()
# Verified against when the account does not exist, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = _HASHER.hash("not a password of anyone")


class Role(StrEnum):
    """What each role may do (checked by `can`)."""

    CLINICIAN = "clinician"  # own team's list and people
    LEAD = "lead"  # also re-identification for its own team, and the caseload decisions
    ANALYST = "analyst"  # aggregates only, no person-level pages
    ADMIN = "admin"  # accounts and the audit trail, no person-level pages


PERMISSIONS: dict[str, frozenset[Role]] = {
    "view_people": frozenset({Role.CLINICIAN, Role.LEAD}),
    "download_list": frozenset({Role.CLINICIAN, Role.LEAD}),
    "record_decision": frozenset({Role.LEAD}),
    "reidentify": frozenset({Role.LEAD}),
    "view_aggregates": frozenset({Role.CLINICIAN, Role.LEAD, Role.ANALYST}),
    "administer": frozenset({Role.ADMIN}),
    # The model's monitoring (drift, performance, gates, alerts) is population-wide and about whether the model
    # and the feeds still hold: the data team's work (analysts, who read aggregates across teams) and oversight
    # by administrators (the information-governance lead reads the audit trail there). Not a team's clinicians
    # or lead: every page they see is their own team's, and whether to refit is not their call.
    "view_monitoring": frozenset({Role.ANALYST, Role.ADMIN}),
}
TEAM_ROLES = frozenset({Role.CLINICIAN, Role.LEAD})
"""Roles that must belong to a team (analysts and admins may be organisation-wide)."""


class AccountError(ValueError):
    """A bad account request (unknown role, duplicate name, short password...); the message is for the user."""


@dataclass(frozen=True)
class User:
    name: str
    team_id: str | None  # None: organisation-wide (analyst or admin only)
    role: Role
    disabled: bool

    def can(self, permission: str) -> bool:
        return not self.disabled and self.role in PERMISSIONS[permission]


def _user(row: sqlite3.Row) -> User:
    return User(row["name"], row["team_id"], Role(row["role"]), bool(row["disabled"]))


def _check_name(name: str) -> None:
    if not name or len(name) > 64 or not all(c.isalnum() or c in "._-@" for c in name):
        raise AccountError(f"user name {name!r}: use 1-64 letters, digits and . _ - @")


def add_user(workspace_dir: Path, name: str, team_id: str | None, role: str, password: str) -> User:
    _check_name(name)
    try:
        parsed = Role(role)
    except ValueError as exc:
        raise AccountError(f"role {role!r}: choose one of {', '.join(r.value for r in Role)}") from exc
    if parsed in TEAM_ROLES and not team_id:
        raise AccountError(f"a {parsed.value} belongs to a team: give --team")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"password too short: at least {MIN_PASSWORD_LENGTH} characters")
    with connect(workspace_dir) as con:
        try:
            con.execute(
                "INSERT INTO users (name, team_id, role, password_hash, disabled, created_at) "
                "VALUES (?, ?, ?, ?, 0, ?)",
                [name, team_id or None, parsed.value, _HASHER.hash(password), datetime.now(UTC).isoformat()],
            )
        except sqlite3.IntegrityError as exc:
            raise AccountError(f"user {name!r} already exists") from exc
    return User(name, team_id or None, parsed, False)


def list_users(workspace_dir: Path) -> list[User]:
    with connect(workspace_dir) as con:
        return [_user(r) for r in con.execute("SELECT * FROM users ORDER BY name").fetchall()]


def get_user(workspace_dir: Path, name: str) -> User | None:
    with connect(workspace_dir) as con:
        row = con.execute("SELECT * FROM users WHERE name = ?", [name]).fetchone()
    return _user(row) if row else None


def set_password(workspace_dir: Path, name: str, password: str) -> None:
    """Replace an account's password (and end its sessions)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"password too short: at least {MIN_PASSWORD_LENGTH} characters")
    with connect(workspace_dir) as con:
        changed = con.execute("UPDATE users SET password_hash = ? WHERE name = ?", [_HASHER.hash(password), name])
        if changed.rowcount == 0:
            raise AccountError(f"no user {name!r}")
        con.execute("UPDATE sessions SET ended = 1 WHERE user_name = ?", [name])


def disable_user(workspace_dir: Path, name: str) -> None:
    """Disable an account and end its sessions at once."""
    with connect(workspace_dir) as con:
        if con.execute("UPDATE users SET disabled = 1 WHERE name = ?", [name]).rowcount == 0:
            raise AccountError(f"no user {name!r}")
        con.execute("UPDATE sessions SET ended = 1 WHERE user_name = ?", [name])


def check_password(workspace_dir: Path, name: str, password: str) -> User | None:
    """The enabled user whose password this is, else None (unknown names take as long as wrong passwords)."""
    with connect(workspace_dir) as con:
        row = con.execute("SELECT * FROM users WHERE name = ?", [name]).fetchone()
    try:
        _HASHER.verify(row["password_hash"] if row and row["password_hash"] else _DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if row is None or row["disabled"]:
        return None
    return _user(row)
