"""Security of the MDT workspace, in-process (Starlette's test client): CSRF, sessions, roles, team scoping,
injection, path tricks, brute-force lockout, the audit chain and the trusted-proxy identity."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pipelines.workspace import audit
from pipelines.workspace.app import create_app
from pipelines.workspace.security import SESSION_COOKIE
from pipelines.workspace.state import state_path
from tests.workspace_fixtures import (  # noqa: F401  (cheap_password_hashing is an autouse fixture)
    HOSTILE_PERSON,
    HOSTILE_TEAM_NAME,
    PASSWORD,
    WorkspaceHome,
    cheap_password_hashing,
    make_home,
)


@pytest.fixture
def home(tmp_path: Path) -> WorkspaceHome:
    return make_home(tmp_path / "home")


@pytest.fixture
def client(home: WorkspaceHome) -> Iterator[TestClient]:
    with TestClient(create_app(home.settings)) as c:
        yield c


def login(client: TestClient, name: str, password: str = PASSWORD) -> int:
    form = client.get("/login").text
    token = re.search(r'name="login_token" value="([^"]+)"', form)
    assert token
    response = client.post(
        "/login",
        data={"username": name, "password": password, "login_token": token.group(1)},
        follow_redirects=False,
    )
    return response.status_code


def csrf_of(client: TestClient, url: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get(url).text)
    assert found
    return found.group(1)


def actions(home: WorkspaceHome) -> list[tuple[object, ...]]:
    return [
        (r["user_name"], r["action"], r["outcome"], r["person_id"]) for r in audit.records(home.settings.workspace_dir)
    ]


DECISION = {"decision": "taken_on", "decision_date": "2026-11-20", "case_management_start": "2026-11-23"}


def test_pages_carry_a_strict_policy_and_refuse_framing(client: TestClient) -> None:
    response = client.get("/login")
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert "script-src" not in csp  # no scripts at all (default-src 'none')
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_session_cookie_is_httponly_and_samesite_strict(client: TestClient) -> None:
    form = client.get("/login").text
    token = re.search(r'name="login_token" value="([^"]+)"', form)
    assert token
    response = client.post(
        "/login",
        data={"username": "lead1", "password": PASSWORD, "login_token": token.group(1)},
        follow_redirects=False,
    )
    cookie = next(v for k, v in response.headers.multi_items() if k == "set-cookie" and SESSION_COOKIE in v)
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")


@pytest.mark.parametrize("token", [None, "", "wrong-token"])
def test_a_decision_without_the_right_csrf_token_is_refused(
    client: TestClient, home: WorkspaceHome, token: str | None
) -> None:
    assert login(client, "lead1") == 303
    data = dict(DECISION) | ({} if token is None else {"csrf": token})
    response = client.post("/teams/T1/people/T1P001/decisions", data=data, follow_redirects=False)
    assert response.status_code == 403
    page = client.get("/teams/T1/people/T1P001").text
    assert "No decision recorded yet." in page
    assert ("lead1", "record_decision", "invalid", "T1P001") in actions(home)


def test_login_form_needs_its_own_token(client: TestClient, home: WorkspaceHome) -> None:
    client.get("/login")
    response = client.post("/login", data={"username": "lead1", "password": PASSWORD, "login_token": "forged"})
    assert response.status_code == 403 and SESSION_COOKIE not in client.cookies
    assert ("lead1", "login", "invalid", None) in actions(home)


def test_a_stolen_cookie_stops_working_after_logout(client: TestClient, home: WorkspaceHome) -> None:
    assert login(client, "clin1") == 303
    stolen = client.cookies[SESSION_COOKIE]
    csrf = csrf_of(client, "/teams/T1/list")
    assert client.post("/logout", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    with TestClient(create_app(home.settings)) as thief:
        thief.cookies.set(SESSION_COOKIE, stolen)
        response = thief.get("/teams/T1/list", follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/login"


def test_a_forged_or_tampered_cookie_is_refused(client: TestClient) -> None:
    assert login(client, "clin1") == 303
    genuine = client.cookies[SESSION_COOKIE]
    for forged in (genuine[:-2] + ("AA" if not genuine.endswith("AA") else "BB"), "not-a-cookie"):
        client.cookies.set(SESSION_COOKIE, forged)
        assert client.get("/teams/T1/list", follow_redirects=False).status_code == 303


def test_an_idle_session_expires(home: WorkspaceHome) -> None:
    with TestClient(create_app(home.settings)) as client:
        assert login(client, "clin1") == 303
        assert client.get("/teams/T1/list").status_code == 200
        idle = home.settings.workspace.session_idle_minutes * 60 + 1
        with sqlite3.connect(state_path(home.settings.workspace_dir)) as con:
            con.execute("UPDATE sessions SET last_seen = ?", [time.time() - idle])
        response = client.get("/teams/T1/list", follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/login"


def test_disabling_an_account_ends_its_sessions(client: TestClient, home: WorkspaceHome) -> None:
    from pipelines.workspace.accounts import disable_user

    assert login(client, "clin1") == 303
    disable_user(home.settings.workspace_dir, "clin1")
    assert client.get("/teams/T1/list", follow_redirects=False).status_code == 303
    assert login(client, "clin1") == 401


def test_a_clinician_cannot_take_a_leads_actions(client: TestClient, home: WorkspaceHome) -> None:
    assert login(client, "clin1") == 303
    csrf = csrf_of(client, "/teams/T1/list")
    page = client.get("/teams/T1/people/T1P001").text
    assert "Record a decision" not in page and "Re-identify" not in page
    for action, data in (("decisions", DECISION), ("reidentify", {})):
        response = client.post(f"/teams/T1/people/T1P001/{action}", data={**data, "csrf": csrf})
        assert response.status_code == 403
    assert "Ada Example" not in client.get("/teams/T1/people/T1P001").text
    assert ("clin1", "record_decision", "denied", "T1P001") in actions(home)
    assert ("clin1", "reidentify", "denied", "T1P001") in actions(home)


@pytest.mark.parametrize("role_user", ["analyst", "admin"])
def test_analysts_and_admins_get_no_person_level_pages(client: TestClient, home: WorkspaceHome, role_user: str) -> None:
    assert login(client, role_user) == 303
    for url in ("/teams/T1/people/T1P001", "/teams/T1/list", "/teams/T1/download.csv", "/teams/T1/caseload"):
        response = client.get(url)
        assert response.status_code == 403, url
        assert "T1P001" not in response.text
    assert (role_user, "view_person", "denied", None) in actions(home)


def test_analyst_sees_suppressed_aggregates_and_admin_the_audit(client: TestClient) -> None:
    assert login(client, "analyst") == 303
    page = client.get("/aggregates")
    assert page.status_code == 200 and '<td class="num">*</td>' in page.text
    assert client.get("/admin").status_code == 403
    client.cookies.clear()
    assert login(client, "admin") == 303
    admin = client.get("/admin").text
    assert "Chain intact" in admin and "lead1" in admin


@pytest.mark.parametrize(
    "url",
    [
        "/teams/T2/people/T2P001",  # another team's person
        "/teams/T2/list",
        "/teams/T2/caseload",
        "/teams/T2/download.csv",
        "/teams/T1/people/T2P001",  # another team's person under one's own team
        "/teams/T1/people/NOBODY",  # nobody at all: the same answer
        "/teams/T1/download.exe",
    ],
)
def test_another_teams_people_and_lists_answer_404(client: TestClient, url: str) -> None:
    assert login(client, "lead1") == 303
    response = client.get(url)
    assert response.status_code == 404
    assert "T2P001" not in response.text and "South MDT" not in response.text


def test_a_decision_on_another_teams_person_answers_404_and_records_nothing(
    client: TestClient, home: WorkspaceHome
) -> None:
    assert login(client, "lead1") == 303
    csrf = csrf_of(client, "/teams/T1/list")
    response = client.post("/teams/T2/people/T2P001/decisions", data={**DECISION, "csrf": csrf})
    assert response.status_code == 404
    with sqlite3.connect(state_path(home.settings.workspace_dir)) as con:
        assert con.execute("SELECT count(*) FROM decisions").fetchone() == (0,)
    assert ("lead1", "record_decision", "not_found", "T2P001") in actions(home)


@pytest.mark.parametrize(
    "url",
    [
        "/static/../pipelines/workspace/app.py",
        "/static/%2e%2e/%2e%2e/pyproject.toml",
        "/static/..%2f..%2fpyproject.toml",
        "/teams/T1/people/..%2f..%2fstate.sqlite",
        "/teams/T1/people/%2e%2e",
        "/teams/..%2fT2/list",
        "/teams/T1/../T2/list",
    ],
)
def test_path_tricks_reach_nothing(client: TestClient, url: str) -> None:
    assert login(client, "lead1") == 303
    response = client.get(url, follow_redirects=False)
    assert response.status_code in (303, 404), url
    assert "tool.ruff" not in response.text and "SQLite" not in response.text and "South MDT" not in response.text


def test_injection_payloads_in_team_names_and_ids_are_rendered_inert(tmp_path: Path) -> None:
    from pipelines.workspace.accounts import add_user

    home = make_home(tmp_path / "home")
    add_user(home.settings.workspace_dir, "clin3", "T3", "clinician", PASSWORD)
    with TestClient(create_app(home.settings)) as client:
        assert login(client, "clin3") == 303
        page = client.get("/teams/T3/list").text
        assert HOSTILE_TEAM_NAME not in page and "<script>" not in page
        assert "&lt;script&gt;alert(&#34;team&#34;)&lt;/script&gt; &amp; Co" in page
        assert HOSTILE_PERSON not in page and "<img src=x" not in page
        # The hostile id's own page answers 404 (ids are plain tokens) rather than echoing anything.
        response = client.get("/teams/T3/people/" + HOSTILE_PERSON.replace('"', "%22").replace(" ", "%20"))
        assert response.status_code == 404 and "<img" not in response.text
        # A hostile query string is echoed nowhere as markup.
        list_page = client.get('/teams/T3/list?tier="><script>x</script>&sort=<b>').text
        assert "<script>x" not in list_page and "<b>" not in list_page


def test_repeated_failures_lock_the_account_even_for_the_right_password(home: WorkspaceHome) -> None:
    with TestClient(create_app(home.settings)) as client:
        limit = home.settings.workspace.max_login_failures
        assert [login(client, "lead2", "wrong password!") for _ in range(limit)] == [401] * limit
        assert login(client, "lead2") == 429  # locked: the right password does not help now
        assert login(client, "lead1") == 429  # the same client address is locked too
    outcomes = [(u, o) for u, a, o, _ in actions(home) if a == "login"]
    assert outcomes.count(("lead2", "failed")) == limit and ("lead2", "locked") in outcomes


def test_failures_expire_after_the_lockout(home: WorkspaceHome) -> None:
    with TestClient(create_app(home.settings)) as client:
        for _ in range(home.settings.workspace.max_login_failures):
            login(client, "lead2", "wrong password!")
        past = (
            time.time()
            - (home.settings.workspace.lockout_minutes + home.settings.workspace.failure_window_minutes) * 60
        )
        with sqlite3.connect(state_path(home.settings.workspace_dir)) as con:
            con.execute("UPDATE login_failures SET at = ?", [past])
        assert login(client, "lead2") == 303


def test_the_audit_trail_is_append_only_and_a_tampered_record_is_detected(
    client: TestClient, home: WorkspaceHome
) -> None:
    assert login(client, "lead1") == 303
    client.get("/teams/T1/people/T1P001")
    client.get("/teams/T1/people/T1P002")
    assert audit.verify(home.settings.workspace_dir).ok
    path = state_path(home.settings.workspace_dir)
    with sqlite3.connect(path) as con, pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute("UPDATE audit SET person_id = 'T1P009' WHERE seq = 2")
    with sqlite3.connect(path) as con:  # someone with the file and a SQLite shell: drop the guard and edit
        con.execute("DROP TRIGGER audit_no_update")
        con.execute("UPDATE audit SET person_id = 'T1P009' WHERE seq = 2")
    result = audit.verify(home.settings.workspace_dir)
    assert not result.ok and result.first_broken_seq == 2 and "changed" in result.problem


def test_a_deleted_audit_record_is_detected(client: TestClient, home: WorkspaceHome) -> None:
    assert login(client, "lead1") == 303
    client.get("/teams/T1/list")
    client.get("/teams/T1/people/T1P001")
    with sqlite3.connect(state_path(home.settings.workspace_dir)) as con:
        con.execute("DROP TRIGGER audit_no_delete")
        con.execute("DELETE FROM audit WHERE seq = 2")
    result = audit.verify(home.settings.workspace_dir)
    assert not result.ok and result.first_broken_seq == 2 and "missing" in result.problem


def test_trusted_proxy_identity_is_off_by_default_and_honoured_only_from_the_proxy(tmp_path: Path) -> None:
    plain = make_home(tmp_path / "plain")
    with TestClient(create_app(plain.settings)) as client:
        response = client.get("/teams/T1/list", headers={"X-Remote-User": "lead1"}, follow_redirects=False)
        assert response.status_code == 303  # the header means nothing unless configured
    proxied = make_home(tmp_path / "sso", trusted_identity_header="X-Remote-User", trusted_proxies=("testclient",))
    with TestClient(create_app(proxied.settings)) as client:
        assert client.get("/teams/T1/list", headers={"X-Remote-User": "lead1"}).status_code == 200
        assert (
            client.get("/teams/T1/list", headers={"X-Remote-User": "nobody"}, follow_redirects=False).status_code == 303
        )
    other = make_home(tmp_path / "elsewhere", trusted_identity_header="X-Remote-User", trusted_proxies=("10.0.0.1",))
    with TestClient(create_app(other.settings)) as client:
        response = client.get("/teams/T1/list", headers={"X-Remote-User": "lead1"}, follow_redirects=False)
        assert response.status_code == 303  # not from the trusted proxy: ignored


def test_passwords_are_stored_only_as_argon2id_hashes(home: WorkspaceHome) -> None:
    with sqlite3.connect(state_path(home.settings.workspace_dir)) as con:
        hashes = [r[0] for r in con.execute("SELECT password_hash FROM users")]
    assert hashes and all(h.startswith("$argon2id$") for h in hashes)
    assert PASSWORD.encode() not in state_path(home.settings.workspace_dir).read_bytes()
