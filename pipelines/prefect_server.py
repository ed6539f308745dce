"""A Prefect server on loopback, started and stopped by the caller: for the notification test (its trigger engine
runs automations, which Prefect's temporary test server does not) and the Prefect UI screenshots. An operator
runs `prefect server start` instead (see the README).

`configured_api_url` tells, without importing Prefect, whether a Prefect server is in use: the CLI then runs its
commands as flows on it, and otherwise in plain Python (`pipelines.jobs`)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PREFECT = Path(sys.executable).with_name("prefect")
# Services neither the test nor the screenshots need: fewer moving parts on a busy machine.
_IDLE_SERVICES = ("SCHEDULER", "LATE_RUNS", "FOREMAN", "CANCELLATION_CLEANUP", "PAUSE_EXPIRATIONS")


def configured_api_url() -> str | None:
    """The Prefect API this process would talk to, as Prefect reads it: PREFECT_API_URL in the environment, else
    in the active profile of PREFECT_PROFILES_PATH (default PREFECT_HOME/profiles.toml, where `prefect config set`
    writes). None: Prefect would start its temporary server. Prefect is not imported (its import alone takes
    1-3 s); the rarer places Prefect also reads (a prefect.toml or .env in the working folder) are not read."""
    url = os.environ.get("PREFECT_API_URL", "").strip()
    if url:
        return url
    home = Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser()
    profiles_path = Path(os.environ.get("PREFECT_PROFILES_PATH", home / "profiles.toml")).expanduser()
    try:
        profiles = tomllib.loads(profiles_path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None
    active = os.environ.get("PREFECT_PROFILE") or profiles.get("active", "ephemeral")
    url = str(profiles.get("profiles", {}).get(active, {}).get("PREFECT_API_URL", "")).strip()
    return url or None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def loopback_server(state: Path, ui: bool = False, start_seconds: float = 120) -> Iterator[dict[str, str]]:
    """Start `prefect server start` on a free loopback port with its state (database, log) in `state`; yield the
    environment a client process needs (PREFECT_API_URL and PREFECT_HOME set); stop it on leaving.
    Raises RuntimeError when it does not answer within `start_seconds`."""
    state.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(state),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_UI_ENABLED": "true" if ui else "false",
        **{f"PREFECT_SERVER_SERVICES_{name}_ENABLED": "false" for name in _IDLE_SERVICES},
    }
    log_path = state / "server.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [str(PREFECT), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + start_seconds
            while not _healthy(port):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the Prefect server did not answer within {start_seconds:.0f} s: "
                        + log_path.read_text()[-3000:]
                    )
                time.sleep(0.3)
            yield env
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False
