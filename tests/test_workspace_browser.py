"""The MDT workspace end to end in a real headless Chromium (Debian's `chromium`, driven by Playwright; no
browser download). The app runs as `riskstrat app` would, under uvicorn on a free loopback port, and is stopped
afterwards. Screenshots are kept under the test's tmp folder (and, with RISKSTRAT_SCREENSHOTS=DIR, copied there:
that is how docs/screenshots/ is refreshed).

In CI (CI=true) a missing browser fails these tests; elsewhere they are skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.workspace import audit
from tests.workspace_fixtures import (  # noqa: F401  (cheap_password_hashing is an autouse fixture)
    PASSWORD,
    WorkspaceHome,
    cheap_password_hashing,
    make_home,
)

CHROMIUM = os.environ.get("RISKSTRAT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # as root (CI, containers) Chromium refuses to start with its sandbox
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _browser_or_reason() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed"
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    return None


@pytest.fixture(scope="module")
def browser_ready() -> None:
    reason = _browser_or_reason()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser tests cannot run in CI: {reason}")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """uvicorn serving the workspace on loopback, in a thread of this process (so the test's cheap password
    hashing applies), stopped on exit."""

    def __init__(self, home: WorkspaceHome) -> None:
        import uvicorn

        from pipelines.workspace.app import create_app

        self.port = _free_port()
        config = uvicorn.Config(
            create_app(home.settings), host="127.0.0.1", port=self.port, log_level="warning", access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the workspace server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def workspace(tmp_path: Path, browser_ready: None) -> Iterator[tuple[WorkspaceHome, Server]]:
    home = make_home(tmp_path / "home")
    with Server(home) as server:
        yield home, server


@pytest.fixture
def page(tmp_path: Path, browser_ready: None) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    profile = Path(tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path))  # a new user-data-dir
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_FLAGS,
            accept_downloads=True,
            viewport={"width": 1360, "height": 900},
            java_script_enabled=False,  # the workspace must work without JavaScript
        )
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


def _shot(page: object, tmp_path: Path, name: str) -> Path:
    path = tmp_path / "screenshots" / f"{name}.png"
    path.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    keep = os.environ.get("RISKSTRAT_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)
    return path


def _login(page: object, server: Server, name: str, password: str = PASSWORD) -> None:
    page.goto(server.url + "/login")  # type: ignore[attr-defined]
    page.fill("input[name=username]", name)  # type: ignore[attr-defined]
    page.fill("input[name=password]", password)  # type: ignore[attr-defined]
    page.click("button[type=submit]")  # type: ignore[attr-defined]


def test_a_lead_works_the_list_end_to_end(
    workspace: tuple[WorkspaceHome, Server], page: object, tmp_path: Path
) -> None:
    home, server = workspace
    p = page  # playwright Page
    _login(p, server, "lead1")
    assert p.url.endswith("/teams/T1/list")  # type: ignore[attr-defined]
    ranks = [int(r.get_attribute("data-rank")) for r in p.locator("#team-list tbody tr").all()]  # type: ignore[attr-defined]
    assert ranks == [1, 2, 3, 4, 5, 6]
    _shot(p, tmp_path, "workspace_list")

    # Sort by risk, lowest first (click the header twice: descending, then ascending).
    p.click("th a.sort:text-is('Risk'), th a.sort:has-text('Risk ')")  # type: ignore[attr-defined]
    p.click("th a.sort:text-is('Risk'), th a.sort:has-text('Risk ')")  # type: ignore[attr-defined]
    risks = [float(r.get_attribute("data-risk")) for r in p.locator("#team-list tbody tr").all()]  # type: ignore[attr-defined]
    assert risks == sorted(risks) and len(risks) == 6

    # Filter: the high tier only, then new this week only.
    p.select_option("#tier", "high")  # type: ignore[attr-defined]
    p.click("#apply")  # type: ignore[attr-defined]
    tiers = [r.get_attribute("data-tier") for r in p.locator("#team-list tbody tr").all()]  # type: ignore[attr-defined]
    assert tiers == ["high", "high"]
    p.goto(server.url + "/teams/T1/list")  # type: ignore[attr-defined]
    p.check("#new")  # type: ignore[attr-defined]
    p.click("#apply")  # type: ignore[attr-defined]
    assert len(p.locator("#team-list tbody tr").all()) == 2  # type: ignore[attr-defined]

    # Open a person: risks of each outcome, reasons, waterfall and timeline drawn, last week's position.
    p.click("a.person-link >> text=T1P001")  # type: ignore[attr-defined]
    assert p.url.endswith("/teams/T1/people/T1P001")  # type: ignore[attr-defined]
    assert p.locator("#waterfall svg").count() == 1 and p.locator("#timeline svg circle.event").count() == 4  # type: ignore[attr-defined]
    assert "Not on last week's list" in p.inner_text("#last-week")  # type: ignore[attr-defined]

    # Record a decision: taken on for case management.
    p.select_option("select[name=decision]", "taken_on")  # type: ignore[attr-defined]
    p.fill("input[name=discussed_date]", "2026-11-20")  # type: ignore[attr-defined]
    p.fill("input[name=decision_date]", "2026-11-20")  # type: ignore[attr-defined]
    p.fill("input[name=case_management_start]", "2026-11-23")  # type: ignore[attr-defined]
    p.click("#decision-form button")  # type: ignore[attr-defined]
    assert "Taken on for case management" in p.inner_text("#decision-table")  # type: ignore[attr-defined]
    _shot(p, tmp_path, "workspace_person")

    # The caseload shows it.
    p.click("nav >> text=Caseload")  # type: ignore[attr-defined]
    assert "T1P001" in p.inner_text("#caseload-table")  # type: ignore[attr-defined]
    _shot(p, tmp_path, "workspace_caseload")

    # Download the list (CSV): the team's own people only.
    p.goto(server.url + "/teams/T1/list")  # type: ignore[attr-defined]
    with p.expect_download() as info:  # type: ignore[attr-defined]
        p.click("#download-csv")  # type: ignore[attr-defined]
    text = Path(info.value.path()).read_text(encoding="utf-8")
    assert text.count("\n") == 7 and "T1P006" in text and "T2P" not in text

    # Another team's person is unreachable, and says nothing about whether they exist.
    response = p.goto(server.url + "/teams/T2/people/T2P001")  # type: ignore[attr-defined]
    assert response.status == 404 and "T2P001" not in p.content()  # type: ignore[attr-defined]

    # The audit trail records all of it, and its chain is intact.
    seen = [(r["action"], r["outcome"], r["person_id"]) for r in audit.records(home.settings.workspace_dir)]
    for expected in (
        ("login", "ok", None),
        ("view_list", "ok", None),
        ("view_person", "ok", "T1P001"),
        ("record_decision", "ok", "T1P001"),
        ("view_caseload", "ok", None),
        ("download", "ok", None),
        ("view_person", "not_found", "T2P001"),
    ):
        assert expected in seen, expected
    assert audit.verify(home.settings.workspace_dir).ok


def test_a_wrong_password_is_refused_and_recorded(workspace: tuple[WorkspaceHome, Server], page: object) -> None:
    home, server = workspace
    _login(page, server, "clin2", "not the password")
    assert "Wrong user name or password" in page.inner_text("main")  # type: ignore[attr-defined]
    _login(page, server, "clin2")
    assert page.url.endswith("/teams/T2/list")  # type: ignore[attr-defined]
    outcomes = [
        (r["user_name"], r["outcome"]) for r in audit.records(home.settings.workspace_dir) if r["action"] == "login"
    ]
    assert outcomes == [("clin2", "failed"), ("clin2", "ok")]


def test_a_clinician_sees_no_lead_actions_and_signs_out(workspace: tuple[WorkspaceHome, Server], page: object) -> None:
    _, server = workspace
    _login(page, server, "clin1")
    page.goto(server.url + "/teams/T1/people/T1P002")  # type: ignore[attr-defined]
    assert page.locator("#decision-form").count() == 0 and page.locator("#reidentify-form").count() == 0  # type: ignore[attr-defined]
    page.click("text=Sign out")  # type: ignore[attr-defined]
    assert page.url.endswith("/login")  # type: ignore[attr-defined]
    page.goto(server.url + "/teams/T1/list")  # type: ignore[attr-defined]
    assert page.url.endswith("/login")  # type: ignore[attr-defined]


def test_a_lead_reidentifies_a_person_of_their_own_team(workspace: tuple[WorkspaceHome, Server], page: object) -> None:
    home, server = workspace
    _login(page, server, "lead1")
    page.goto(server.url + "/teams/T1/people/T1P001")  # type: ignore[attr-defined]
    assert "Ada Example" not in page.content()  # type: ignore[attr-defined]
    page.click("#reidentify-form button")  # type: ignore[attr-defined]
    assert page.inner_text("#person-title") == "Ada Example"  # type: ignore[attr-defined]
    assert ("reidentify", "ok", "T1P001") in [
        (r["action"], r["outcome"], r["person_id"]) for r in audit.records(home.settings.workspace_dir)
    ]


def test_an_analyst_opens_the_monitoring_page_and_sees_its_charts(
    workspace: tuple[WorkspaceHome, Server], page: object, tmp_path: Path
) -> None:
    from pipelines.monitor import default_report_path, publish_monitoring
    from tests.test_workspace_monitoring import CHARTS, store_weeks

    home, server = workspace
    store_weeks(home)
    publish_monitoring(home.settings, default_report_path(home.settings))
    refused: list[str] = []  # a style or markup the page's Content-Security-Policy blocked would be logged here
    page.on("console", lambda message: refused.append(message.text))  # type: ignore[attr-defined]
    _login(page, server, "analyst")
    page.click("nav >> text=Monitoring")  # type: ignore[attr-defined]
    assert page.url.endswith("/monitoring")  # type: ignore[attr-defined]
    for key in CHARTS:
        box = page.locator(f"#chart-{key} svg").bounding_box()  # type: ignore[attr-defined]
        assert box and box["width"] > 600 and box["height"] > 150, key
    drift = page.locator("#chart-feature-drift svg")  # type: ignore[attr-defined]
    assert drift.locator("g.line").count() == 3 and drift.locator("circle").count() == 24
    assert "gp_telephone_3m drifted (PSI 0.4)" in page.inner_text("#alerts-now")  # type: ignore[attr-defined]
    assert not [m for m in refused if "Content Security Policy" in m], refused
    _shot(page, tmp_path, "workspace_monitoring")
    assert ("analyst", "view_monitoring", "ok") in [
        (r["user_name"], r["action"], r["outcome"]) for r in audit.records(home.settings.workspace_dir)
    ]
