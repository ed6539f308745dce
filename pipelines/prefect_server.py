"""A Prefect server on loopback, started and stopped by the caller: for the notification test (its trigger engine
runs automations, which Prefect's temporary test server does not) and the Prefect UI screenshots. An operator
runs `prefect server start` instead (see the README)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PREFECT = Path(sys.executable).with_name("prefect")
# Services neither the test nor the screenshots need: fewer moving parts on a busy machine.
_IDLE_SERVICES = ("SCHEDULER", "LATE_RUNS", "FOREMAN", "CANCELLATION_CLEANUP", "PAUSE_EXPIRATIONS")


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
