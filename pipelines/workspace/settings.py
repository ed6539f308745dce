"""Settings of the MDT workspace (the `[workspace]` table of riskstrat.toml), validated when loaded like every
other layer's (see `pipelines.settings`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from pydantic import ConfigDict, Field, StrictBool, StrictInt, StrictStr

Minutes = Annotated[StrictInt, Field(ge=1, le=24 * 60)]


@dataclass
class WorkspaceSettings:
    __pydantic_config__ = ConfigDict(extra="forbid")

    host: StrictStr = "127.0.0.1"
    port: Annotated[StrictInt, Field(ge=1, le=65535)] = 8765
    # A session ends after this long without a request (and after `session_max_hours` in any case).
    session_idle_minutes: Minutes = 30
    session_max_hours: Annotated[StrictInt, Field(ge=1, le=24 * 7)] = 12
    # Login throttling: this many failures for one account (or one client address) within the window lock it
    # for `lockout_minutes`.
    max_login_failures: Annotated[StrictInt, Field(ge=1)] = 5
    failure_window_minutes: Minutes = 15
    lockout_minutes: Minutes = 15
    # Single sign-on in front of the app: the header a trusted reverse proxy sets to the signed-in user's name.
    # Off when empty; honoured only from `trusted_proxies` (client addresses).
    trusted_identity_header: StrictStr = ""
    trusted_proxies: tuple[StrictStr, ...] = field(default_factory=tuple)
    # Send the session cookie only over HTTPS. Off by default because the workspace listens on loopback
    # behind a TLS-terminating proxy or for the demo; turn it on whenever users reach it over a network.
    secure_cookies: StrictBool = False
