"""The failure-notification recipe on a real Prefect server: `riskstrat notify` installs the automation, a failing
`riskstrat weekly` (tagged riskstrat) posts to a webhook receiver on loopback, a failing flow without the tag does
not. The server (its trigger engine runs the automation, which Prefect's temporary test server does not) and the
receiver are started and stopped here. Every wait is bounded, generously (the server's start and the driver get
minutes: on a loaded 2-core machine the server took over 40 s to answer); alone the test takes under 60 s."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pipelines.prefect_server import loopback_server

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def prefect_server(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A Prefect server on loopback with its trigger engine (pipelines.prefect_server)."""
    with loopback_server(tmp_path / "prefect") as env:
        yield env


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, object]]]]:
    """A webhook receiver on loopback recording each POSTed JSON body."""
    received: list[dict[str, object]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append({"headers": dict(self.headers), "json": json.loads(body)})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/hooks/riskstrat", received
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


# One process drives the scenario (each Python start with Prefect costs seconds): the riskstrat CLI installs the
# notification, a flow that is not riskstrat's fails, then `riskstrat weekly` fails (no batch loaded yet).
DRIVER = """
import sys
from prefect import flow
from pipelines.cli import app

def riskstrat(*args):
    try:
        app(list(args))
    except SystemExit as exc:
        print("exit", exc.code, *args[:1], file=sys.stderr)

@flow(name="someone-elses-flow")
def other() -> None:
    raise RuntimeError("not riskstrat's")

riskstrat("notify", "--webhook", sys.argv[1], "--header", "X-Riskstrat=test", "--allow-private-urls")
other(return_state=True)
riskstrat("weekly", "--home", "var")
"""


def test_a_failed_riskstrat_run_posts_to_the_webhook(
    prefect_server: dict[str, str], receiver: tuple[str, list[dict[str, object]]], tmp_path: Path
) -> None:
    started = time.monotonic()
    url, received = receiver
    env = {**prefect_server, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, url], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr
    assert "automation 'riskstrat: flow run failed" in done.stderr and "exit 0 notify" in done.stderr, done.stderr
    assert "holds no loaded batches" in done.stderr and "exit 2 weekly" in done.stderr, done.stderr
    failed_at = time.monotonic()

    deadline = time.monotonic() + 15
    while not received and time.monotonic() < deadline:
        time.sleep(0.2)
    assert received, "no notification within 15 s of the failure"
    notified = time.monotonic() - failed_at
    time.sleep(2)  # the untagged failure came first: had it matched, it would have posted by now
    [posted] = received
    message = posted["json"]
    assert isinstance(message, dict)
    assert message["flow"] == "weekly" and message["state"] == "Failed"
    assert message["flow_run"].startswith("weekly (started ")
    assert "/runs/flow-run/" in message["url"] and message["flow_run"] in message["text"]
    assert posted["headers"]["X-Riskstrat"] == "test"
    print(f"driver {failed_at - started:.1f} s, notified {notified:.1f} s after the failure")
