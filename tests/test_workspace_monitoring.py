"""The MDT workspace's monitoring page: who may see it, that every view is audited, the empty state before any
weekly run was monitored, and that it draws what the weekly runs stored (through the workspace's copy written by
`publish_monitoring`, the same history and charts as the HTML report), aggregates only."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from fastapi.testclient import TestClient

from models.monitoring import Alert
from pipelines.monitor import MonitorReport, default_report_path, publish_monitoring, store_report
from pipelines.warehouse import WAREHOUSE_TABLES
from pipelines.workspace import audit
from pipelines.workspace.app import create_app
from tests.test_workspace_security import login
from tests.workspace_fixtures import (  # noqa: F401  (cheap_password_hashing is an autouse fixture)
    WorkspaceHome,
    cheap_password_hashing,
    make_home,
    people_of,
)

WEEKS = [date(2026, 10, 4) + timedelta(days=7 * k) for k in range(8)]
CHARTS = ("feature-drift", "score-drift", "auroc", "observed-expected", "calibration-slope", "gates")


@pytest.fixture
def home(tmp_path: Path) -> WorkspaceHome:
    return make_home(tmp_path / "home")


@pytest.fixture
def client(home: WorkspaceHome) -> Iterator[TestClient]:  # as in test_workspace_security
    with TestClient(create_app(home.settings)) as c:
        yield c


def store_weeks(home: WorkspaceHome, weeks: list[date] = WEEKS) -> None:
    """Weekly monitoring as the weekly runs store it: a feature drifting from week 5 (an alert in the last
    week), realised performance once the 3-month horizon of the first week's scores closed, and gate checks."""
    db = home.settings.db
    db.parent.mkdir(parents=True, exist_ok=True)
    duckdb.connect(str(db)).close()
    for k, week in enumerate(weeks):
        telephone = 0.02 if k < 4 else round(0.1 * (k - 3), 2)
        drift = pl.DataFrame({"feature": ["gp_telephone_3m", "age", "frailty"], "psi": [telephone, 0.01, 0.03]})
        realised = (
            {3: {"auroc": 0.74, "expected_auroc": 0.72, "observed_expected": 1.02, "calibration_slope": 0.97}}
            if k >= 3
            else {}
        )
        alerts = (
            [Alert("feature_drift", "gp_telephone_3m", telephone, 0.25, f"gp_telephone_3m drifted (PSI {telephone})")]
            if telephone >= 0.25
            else []
        )
        report = MonitorReport(
            week, "emergency_admission", "v0002", drift, 0.01, 0.05, {"expected_auroc": 0.7}, realised, [], alerts
        )
        store_report(db, report)
    with duckdb.connect(str(db)) as con:
        con.execute(WAREHOUSE_TABLES["quality_checks"].ddl())
        for week in weeks:
            status = "warn" if week == weeks[-1] else "pass"
            con.execute(
                "INSERT INTO quality_checks VALUES (?, ?, 'gp_events', 'volume', ?, 0.5, 0.5, ?, now())",
                [f"b_{week}", week, status, f"gp_events: 412 rows ({status})"],
            )


def audited(home: WorkspaceHome, action: str = "view_monitoring") -> list[tuple[object, ...]]:
    return [
        (r["user_name"], r["outcome"], r["person_id"], r["detail"])
        for r in audit.records(home.settings.workspace_dir)
        if r["action"] == action
    ]


@pytest.mark.parametrize("name", ["lead1", "clin1"])
def test_team_members_are_refused_the_monitoring_page_and_the_refusal_is_recorded(
    client: TestClient, home: WorkspaceHome, name: str
) -> None:
    store_weeks(home)
    publish_monitoring(home.settings, default_report_path(home.settings))
    assert login(client, name) == 303
    assert 'href="/monitoring"' not in client.get("/teams/T1/list").text  # no link for those who may not see it
    response = client.get("/monitoring")
    assert response.status_code == 403 and "gp_telephone_3m" not in response.text
    assert audited(home) == [(name, "denied", None, "")]


def test_signed_out_visitors_are_sent_to_sign_in(client: TestClient, home: WorkspaceHome) -> None:
    response = client.get("/monitoring", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert audited(home) == []


@pytest.mark.parametrize("name", ["analyst", "admin"])
def test_before_any_monitored_week_the_page_says_so(client: TestClient, home: WorkspaceHome, name: str) -> None:
    assert login(client, name) == 303
    home_page = client.get("/").text  # the role's own start page carries the link
    assert 'href="/monitoring"' in home_page
    response = client.get("/monitoring")
    assert response.status_code == 200
    assert "No weekly run has been monitored yet" in response.text and "<svg" not in response.text
    assert audited(home) == [(name, "ok", None, "nothing monitored yet")]


def test_the_page_draws_the_stored_weeks_aggregates_only_and_each_view_is_audited(
    client: TestClient, home: WorkspaceHome
) -> None:
    store_weeks(home)
    report = publish_monitoring(home.settings, default_report_path(home.settings))
    assert login(client, "analyst") == 303
    response = client.get("/monitoring")
    assert response.status_code == 200
    text = response.text
    assert "emergency_admission model v0002, as of 2026-11-22" in text and "8 weeks monitored" in text
    for key in CHARTS:
        assert f'id="chart-{key}"' in text, key
    drift = re.search(r'id="chart-feature-drift">(.*?)</svg>', text, re.S)
    assert drift and drift.group(1).count('data-label="') == 3
    telephone = re.search(r'data-label="gp_telephone_3m" data-points="(\d+)"', drift.group(1))
    assert telephone and telephone.group(1) == "8"
    assert 'data-value="0.4000"' in drift.group(1)  # the newest week's PSI, drawn
    assert 'class="threshold"' in drift.group(1)  # the alert threshold
    realised = re.search(r'id="chart-observed-expected">(.*?)</svg>', text, re.S)
    assert realised and 'data-label="scores of 3m" data-points="5"' in realised.group(1)
    assert 'class="band"' in realised.group(1)
    assert "gp_telephone_3m drifted (PSI 0.4)" in text  # this week's alert, and in the table of every alert
    assert "gp_events: 412 rows (warn)" in text  # the gates of the newest batch
    # Charts draw under the strict policy: no inline style attribute or unnonced <style> in the page.
    assert ' style="' not in text and re.search(r"<style(?! nonce=)", text) is None
    assert "unsafe-inline" not in response.headers["content-security-policy"]
    # Aggregates only: nobody's pseudonymised id, although the run published lists them.
    assert not any(pid in text for team in ("T1", "T2") for pid in people_of(team))
    # The same history and charts make the HTML report.
    assert report.read_text(encoding="utf-8").count('<svg xmlns="http://www.w3.org/2000/svg" class="series"') == 6
    client.get("/monitoring")
    assert audited(home) == [("analyst", "ok", None, "weeks=8 as_of=2026-11-22")] * 2


def test_the_page_follows_a_newer_weekly_run(client: TestClient, home: WorkspaceHome) -> None:
    store_weeks(home, WEEKS[:2])
    publish_monitoring(home.settings, default_report_path(home.settings))
    assert login(client, "admin") == 303
    assert "as of 2026-10-11" in client.get("/monitoring").text
    store_weeks(home, WEEKS[:3])
    publish_monitoring(home.settings, default_report_path(home.settings))
    assert "as of 2026-10-18" in client.get("/monitoring").text
