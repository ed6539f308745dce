"""Sessions, CSRF tokens, login throttling and the security headers of the workspace.

A session cookie holds a random token signed with the workspace's secret key (itsdangerous, with the signing
time, so a cookie older than `session_max_hours` is refused outright). The server keeps only the token's SHA-256
with the user, a CSRF token, and when it was last used: logout, disabling the account and idle expiry end the
session at once, and a copied cookie stops working with it. The cookie is HttpOnly and SameSite=Strict.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from itsdangerous import BadSignature, URLSafeTimedSerializer

from pipelines.workspace.accounts import User, get_user
from pipelines.workspace.settings import WorkspaceSettings
from pipelines.workspace.state import connect

SESSION_COOKIE = "rs_session"
LOGIN_COOKIE = "rs_login"  # signed pre-session token: the login form's CSRF protection
SECRET_FILE = "secret.key"
LAST_SEEN_WRITE_S = 15.0  # refresh `last_seen` at most this often per session (fewer writes under load)


def secret_key(workspace_dir: Path) -> bytes:
    """The workspace's signing key, created (owner-only) on first use."""
    path = Path(workspace_dir) / SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(32))
    return path.read_bytes()


@dataclass(frozen=True)
class Session:
    user: User
    token_hash: str
    csrf: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Sessions:
    def __init__(self, workspace_dir: Path, settings: WorkspaceSettings) -> None:
        self.workspace_dir = Path(workspace_dir)
        self.settings = settings
        self.signer = URLSafeTimedSerializer(secret_key(self.workspace_dir), salt="riskstrat-session")
        self.login_signer = URLSafeTimedSerializer(secret_key(self.workspace_dir), salt="riskstrat-login")

    # -------------------------------------------------------------------------------------------- sessions

    def start(self, user: User) -> tuple[str, Session]:
        """A new session for `user`: (cookie value, session)."""
        token, csrf, now = secrets.token_urlsafe(32), secrets.token_urlsafe(32), time.time()
        with connect(self.workspace_dir) as con:
            con.execute(
                "INSERT INTO sessions (id_hash, user_name, csrf, created_at, last_seen) VALUES (?, ?, ?, ?, ?)",
                [_hash(token), user.name, csrf, now, now],
            )
        return self.signer.dumps(token), Session(user, _hash(token), csrf)

    def resolve(self, cookie: str | None) -> Session | None:
        """The live session a cookie names, or None (bad signature, too old, ended, idle, account disabled)."""
        if not cookie:
            return None
        try:
            token = self.signer.loads(cookie, max_age=self.settings.session_max_hours * 3600)
        except BadSignature:
            return None
        now, key = time.time(), _hash(str(token))
        with connect(self.workspace_dir) as con:
            row = con.execute("SELECT * FROM sessions WHERE id_hash = ? AND ended = 0", [key]).fetchone()
            if row is None:
                return None
            if now - row["last_seen"] > self.settings.session_idle_minutes * 60:
                con.execute("UPDATE sessions SET ended = 1 WHERE id_hash = ?", [key])
                return None
            if now - row["last_seen"] > LAST_SEEN_WRITE_S:
                con.execute("UPDATE sessions SET last_seen = ? WHERE id_hash = ?", [now, key])
        user = get_user(self.workspace_dir, row["user_name"])
        if user is None or user.disabled:
            return None
        return Session(user, key, row["csrf"])

    def end(self, session: Session) -> None:
        with connect(self.workspace_dir) as con:
            con.execute("UPDATE sessions SET ended = 1 WHERE id_hash = ?", [session.token_hash])

    # -------------------------------------------------------------------------------------------- login form

    def login_token(self) -> tuple[str, str]:
        """(signed cookie value, form token) for the login form: both must come back together."""
        token = secrets.token_urlsafe(24)
        return self.login_signer.dumps(token), token

    def login_token_ok(self, cookie: str | None, form_token: str) -> bool:
        if not cookie or not form_token:
            return False
        try:
            token = self.login_signer.loads(cookie, max_age=3600)
        except BadSignature:
            return False
        return hmac.compare_digest(str(token), form_token)

    # -------------------------------------------------------------------------------------------- throttling

    def locked(self, keys: list[str]) -> bool:
        """True while any key (an account, a client address) has too many recent failures."""
        s = self.settings
        now = time.time()
        with connect(self.workspace_dir) as con:
            for key in keys:
                rows = con.execute(
                    "SELECT at FROM login_failures WHERE key = ? AND at > ? ORDER BY at DESC",
                    [key, now - max(s.failure_window_minutes, s.lockout_minutes) * 60],
                ).fetchall()
                in_window = [r["at"] for r in rows if r["at"] > now - s.failure_window_minutes * 60]
                if len(in_window) >= s.max_login_failures or (
                    len(rows) >= s.max_login_failures and rows[0]["at"] > now - s.lockout_minutes * 60
                ):
                    return True
        return False

    def failed(self, keys: list[str]) -> None:
        now = time.time()
        with connect(self.workspace_dir) as con:
            con.executemany("INSERT INTO login_failures (key, at) VALUES (?, ?)", [[k, now] for k in keys])
            con.execute("DELETE FROM login_failures WHERE at < ?", [now - 86_400])

    def succeeded(self, account_key: str) -> None:
        with connect(self.workspace_dir) as con:
            con.execute("DELETE FROM login_failures WHERE key = ?", [account_key])


def csrf_ok(session: Session, form_token: str | None) -> bool:
    return bool(form_token) and hmac.compare_digest(session.csrf, str(form_token))


def security_headers(nonce: str) -> dict[str, str]:
    """No scripts at all, styles only from the app (and the charts' inline rules, by nonce), no framing."""
    csp = (
        "default-src 'none'; "
        f"style-src 'self' 'nonce-{nonce}'; "
        "img-src 'self' data:; "
        "form-action 'self'; "
        "frame-ancestors 'none'; "
        "base-uri 'none'"
    )
    return {
        "Content-Security-Policy": csp,
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    }
