"""Settings of the MDT workspace (the `[workspace]` table of riskstrat.toml)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class WorkspaceSettings:
    host: str = "127.0.0.1"
    port: int = 8765
    # A session ends after this long without a request (and after `session_max_hours` in any case).
    session_idle_minutes: int = 30
    session_max_hours: int = 12
    # Login throttling: this many failures for one account (or one client address) within the window lock it
    # for `lockout_minutes`.
    max_login_failures: int = 5
    failure_window_minutes: int = 15
    lockout_minutes: int = 15
    # Single sign-on in front of the app: the header a trusted reverse proxy sets to the signed-in user's name.
    # Off when empty; honoured only from `trusted_proxies` (client addresses).
    trusted_identity_header: str = ""
    trusted_proxies: tuple[str, ...] = field(default_factory=tuple)
    # Send the session cookie only over HTTPS. Off by default because the workspace listens on loopback
    # behind a TLS-terminating proxy or for the demo; turn it on whenever users reach it over a network.
    secure_cookies: bool = False
