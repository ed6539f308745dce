"""The MDT workspace web application (FastAPI, server-rendered Jinja2 pages, no JavaScript).

Every page is scoped to the signed-in user's team: another team's list, person, caseload, download or decision
answers 404, the same as a person who does not exist, so nothing confirms who is on whose list. Roles decide
what a team member may do (`accounts.PERMISSIONS`); a refused action answers 403. Every view, download,
re-identification, decision and login attempt is written to the audit trail, refused ones included.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader
from markupsafe import Markup
from openpyxl import Workbook
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from data_contracts.outcomes import OUTCOMES
from models.reasons import LOWERS, RAISES
from pipelines.publish import charts as html_charts
from pipelines.publish import monitoring as html_monitoring
from pipelines.publish.html import SETTING_ORDER, _timeline_events, person_waterfall
from pipelines.publish.wording import TIER_ORDER
from pipelines.settings import Settings
from pipelines.workspace import audit, caseload
from pipelines.workspace.accounts import Role, User, check_password, list_users
from pipelines.workspace.audit import AuditEvent
from pipelines.workspace.monitoring import MonitoringReader
from pipelines.workspace.security import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    Session,
    Sessions,
    csrf_ok,
    security_headers,
)
from pipelines.workspace.snapshot import ACTIVITY_MONTHS, RunSnapshot, SnapshotReader
from pipelines.workspace.state import connect, transaction

log = logging.getLogger("riskstrat.workspace")

PACKAGE_DIR = Path(__file__).resolve().parent
LOOKUPS_DIR = "lookups"  # HOME/workspace/lookups/<team_id>.csv: a team's own re-identification lookup
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
SORT_KEYS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "rank": lambda r: r["rank"],
    "risk": lambda r: -(r["risk"] or 0.0),
    "tier": lambda r: TIER_ORDER.index(r["tier"]) if r.get("tier") in TIER_ORDER else len(TIER_ORDER),
    "age": lambda r: r.get("age_band") or "",
    "change": lambda r: {"new": 0, "rising": 1, "steady": 2, "falling": 3}.get(r.get("change") or "", 4),
    "practice": lambda r: r.get("gp_practice") or "",
}
SERVICE_FILTERS: dict[str, tuple[str, Callable[[dict[str, Any]], bool]]] = {
    "social_care": ("Has a social care package", lambda r: bool(r.get("social_care_package"))),
    "care_home": ("Lives in a care home", lambda r: bool(r.get("in_care_home"))),
    "recent_discharge": ("Discharged in the last 30 days", lambda r: bool(r.get("recent_discharge"))),
    "none": ("No current services", lambda r: not any(f(r) for _, f in _BASE_SERVICES)),
}
_BASE_SERVICES = [SERVICE_FILTERS[k] for k in ("social_care", "care_home", "recent_discharge")]
DOWNLOAD_COLUMNS = (
    "rank",
    "person_id",
    "age_band",
    "sex",
    "gp_practice",
    "tier",
    "risk",
    "change",
    "previous_rank",
    "reasons",
    *(o.risk_column for o in OUTCOMES),
    "social_care_package",
    "in_care_home",
    "recent_discharge",
)


class LoginRequired(Exception):
    """No live session: HTML pages redirect to the login form."""


@dataclass(frozen=True)
class Workspace:
    settings: Settings
    sessions: Sessions
    snapshots: SnapshotReader
    monitoring: MonitoringReader

    @property
    def dir(self) -> Path:
        return self.settings.workspace_dir

    def audit(self, event: AuditEvent) -> None:
        audit.append(self.dir, event)


def _event(session: Session | None, action: str, outcome: str, **kw: Any) -> AuditEvent:
    user = session.user if session else None
    return AuditEvent(
        action=action,
        outcome=outcome,
        user_name=user.name if user else kw.pop("user_name", None),
        team_id=kw.pop("team_id", user.team_id if user else None),
        role=user.role.value if user else None,
        **kw,
    )


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def create_app(settings: Settings) -> FastAPI:
    """The workspace app. GET pages are plain functions (FastAPI runs them in its thread pool, so SQLite and
    chart rendering never block the event loop); form posts are async only to read the form."""
    sessions = Sessions(settings.workspace_dir, settings.workspace)
    ws = Workspace(
        settings,
        sessions,
        SnapshotReader(settings.workspace_dir),
        MonitoringReader(settings.workspace_dir, settings.monitoring),
    )
    # Autoescaping everywhere (not only for .html names): team names and ids are data, never markup.
    env = Environment(loader=FileSystemLoader(PACKAGE_DIR / "templates"), autoescape=True)
    templates = Jinja2Templates(env=env)
    templates.env.filters["pct"] = lambda p: html_charts.fmt_pct(p) if p is not None else "not scored"
    templates.env.filters["chart"] = _chart
    templates.env.globals["decision_labels"] = caseload.decision_labels()
    templates.env.globals["reason_labels"] = caseload.reason_labels()
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.workspace = ws
    app.mount("/static", StaticFiles(directory=PACKAGE_DIR / "static"), name="static")

    @app.middleware("http")
    async def headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        request.state.nonce = secrets.token_urlsafe(16)
        request.state.new_cookie = None
        response = await call_next(request)
        for name, value in security_headers(request.state.nonce).items():
            response.headers.setdefault(name, value)
        if request.state.new_cookie:
            _set_session_cookie(response, request.state.new_cookie, settings)
        return response

    # ------------------------------------------------------------------------------------------------ helpers

    def page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        session: Session | None = getattr(request.state, "session", None)
        snap = ws.snapshots.current()
        base = {"user": session.user if session else None, "csrf": session.csrf if session else "", "run": snap}
        return templates.TemplateResponse(
            request, name, {**base, "nonce": request.state.nonce, **context}, status_code=status
        )

    def signed_in(request: Request) -> Session:
        session = ws.sessions.resolve(request.cookies.get(SESSION_COOKIE))
        if _proxy_names_user(request, ws):
            session = _proxy_identity(request, ws, session)  # the proxy's word is final, whatever the cookie says
        if session is None:
            raise LoginRequired()
        request.state.session = session
        return session

    def not_found(request: Request, session: Session, action: str, **kw: Any) -> HTMLResponse:
        ws.audit(_event(session, action, "not_found", **kw))
        return page(request, "error.html", 404, title="Not found", message="There is no such page.")

    def forbidden(request: Request, session: Session, action: str, message: str, **kw: Any) -> HTMLResponse:
        ws.audit(_event(session, action, "denied", **kw))
        return page(request, "error.html", 403, title="Not allowed", message=message)

    def team_scope(session: Session, team_id: str) -> RunSnapshot | None:
        """The current run when `team_id` is the user's own team and is published in it, else None."""
        snap = ws.snapshots.current()
        if snap is None or session.user.team_id != team_id or team_id not in snap.team_names:
            return None
        return snap

    def team_page(
        request: Request, team_id: str, action: str, permission: str, known: bool = True
    ) -> tuple[Session, RunSnapshot] | Response:
        """Signed in, a role with `permission` (else 403), and the user's own team published (else 404)."""
        session = signed_in(request)
        if not session.user.can(permission):
            return forbidden(request, session, action, "Your role does not show person-level pages.")
        snap = team_scope(session, team_id)
        if snap is None or not known:
            return not_found(request, session, action, detail="not found")
        return session, snap

    async def form_of(request: Request) -> dict[str, str]:
        form = await request.form()
        return {k: str(v) for k, v in form.items() if isinstance(v, str)}

    def bad_csrf(request: Request, session: Session, action: str, **kw: Any) -> HTMLResponse:
        ws.audit(_event(session, action, "invalid", detail="csrf token missing or wrong", **kw))
        return page(request, "error.html", 403, title="Not allowed", message="The form has expired: go back and retry.")

    # ------------------------------------------------------------------------------------------------ errors

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, exc: LoginRequired) -> Response:
        if request.method != "GET":
            return page(request, "error.html", 403, title="Not signed in", message="Sign in again to continue.")
        return RedirectResponse("/login", status_code=303)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        title = "Not found" if exc.status_code == 404 else "Request refused"
        message = "There is no such page." if exc.status_code == 404 else "The request could not be handled."
        return page(request, "error.html", exc.status_code, title=title, message=message)

    # ------------------------------------------------------------------------------------------------ login

    @app.get("/", response_class=HTMLResponse)
    def home(request: Request) -> Response:
        session = signed_in(request)
        return RedirectResponse(_home_of(session.user), status_code=303)

    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request) -> Response:
        cookie, token = ws.sessions.login_token()
        response = page(request, "login.html", login_token=token, error="")
        _set_cookie(response, LOGIN_COOKIE, cookie, settings, max_age=3600)
        return response

    @app.post("/login", response_class=HTMLResponse)
    async def login(request: Request) -> Response:
        form = await form_of(request)
        name = form.get("username", "").strip()[:64]
        keys = [f"user:{name.lower()}", f"client:{_client(request)}"]

        def again(error: str, status: int) -> Response:
            cookie, token = ws.sessions.login_token()
            response = page(request, "login.html", status, login_token=token, error=error)
            _set_cookie(response, LOGIN_COOKIE, cookie, settings, max_age=3600)
            return response

        if not ws.sessions.login_token_ok(request.cookies.get(LOGIN_COOKIE), form.get("login_token", "")):
            ws.audit(AuditEvent("login", "invalid", user_name=name or None, detail="login form token missing or wrong"))
            return again("The sign-in form expired. Please try again.", 403)
        if ws.sessions.locked(keys):
            ws.audit(AuditEvent("login", "locked", user_name=name or None, detail="too many failed attempts"))
            return again("Too many failed attempts. Try again later.", 429)
        # argon2 takes tens of milliseconds by design: off the event loop.
        user = await run_in_threadpool(check_password, ws.dir, name, form.get("password", ""))
        if user is None:
            ws.sessions.failed(keys)
            ws.audit(AuditEvent("login", "failed", user_name=name or None))
            return again("Wrong user name or password.", 401)
        ws.sessions.succeeded(keys[0])
        cookie, session = ws.sessions.start(user)
        ws.audit(_event(session, "login", "ok"))
        response = RedirectResponse(_home_of(user), status_code=303)
        _set_session_cookie(response, cookie, settings)
        response.delete_cookie(LOGIN_COOKIE, path="/")
        return response

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        session = signed_in(request)
        form = await form_of(request)
        if not csrf_ok(session, form.get("csrf")):
            return bad_csrf(request, session, "logout")
        ws.sessions.end(session)
        ws.audit(_event(session, "logout", "ok"))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # ------------------------------------------------------------------------------------------------ the list

    @app.get("/teams/{team_id}/list", response_class=HTMLResponse)
    def team_list(request: Request, team_id: str) -> Response:
        scoped = team_page(request, team_id, "view_list", "view_people")
        if isinstance(scoped, Response):
            return scoped
        session, snap = scoped
        q = request.query_params
        sort = q.get("sort", "rank") if q.get("sort", "rank") in SORT_KEYS else "rank"
        descending = q.get("order") == "desc"
        tier = q.get("tier", "") if q.get("tier", "") in TIER_ORDER else ""
        service = q.get("service", "") if q.get("service", "") in SERVICE_FILTERS else ""
        only_new, only_rising = q.get("new") == "1", q.get("rising") == "1"
        rows = snap.team_rows.get(team_id, [])
        shown = [
            r
            for r in rows
            if (not tier or r.get("tier") == tier)
            and (not only_new or r.get("change") == "new")
            and (not only_rising or r.get("change") == "rising")
            and (not service or SERVICE_FILTERS[service][1](r))
        ]
        shown.sort(key=SORT_KEYS[sort], reverse=descending)
        latest = caseload.latest_by_person(caseload.decisions_for(ws.dir, team_id))
        filters = f"sort={sort} order={'desc' if descending else 'asc'} tier={tier or 'any'} new={int(only_new)} "
        filters += f"rising={int(only_rising)} service={service or 'any'} rows={len(shown)}"
        ws.audit(_event(session, "view_list", "ok", detail=filters))
        return page(
            request,
            "list.html",
            team_id=team_id,
            team_name=snap.team_names[team_id],
            rows=shown,
            total=len(rows),
            latest=latest,
            sort=sort,
            descending=descending,
            tier=tier,
            tiers=TIER_ORDER,
            service=service,
            services={k: v[0] for k, v in SERVICE_FILTERS.items()},
            only_new=only_new,
            only_rising=only_rising,
            leavers=snap.leavers.get(team_id, []),
        )

    # ------------------------------------------------------------------------------------------------ a person

    def person_context(snap: RunSnapshot, team_id: str, person_id: str) -> dict[str, Any]:
        row = snap.people[(team_id, person_id)]
        reasons = snap.reasons.get(person_id, [])
        window = (_months_before(snap.as_of, ACTIVITY_MONTHS), snap.as_of)
        activity = snap.activity.get(person_id, [])
        currency = snap.provenance.get("cost_currency", "GBP")
        events = _timeline_events(activity, currency)
        return {
            "row": row,
            "reasons": reasons,
            "raises": RAISES,
            "lowers": LOWERS,
            "waterfall": person_waterfall(row, reasons),
            "timeline": html_charts.timeline_svg(events, window[0], window[1], SETTING_ORDER),
            "events": len(events),
            "window": window,
            "outcomes": [
                (o.label, row.get(o.risk_column), o.name == snap.provenance.get("ranking_outcome"))
                for o in OUTCOMES
                if row.get(o.risk_column) is not None
            ],
            "services": [label for key, (label, f) in SERVICE_FILTERS.items() if key != "none" and f(row)],
            "decisions": caseload.decisions_for(ws.dir, team_id, person_id),
            "team_id": team_id,
            "team_name": snap.team_names[team_id],
            "today": datetime.now(UTC).date().isoformat(),
        }

    def person_scope(request: Request, session: Session, team_id: str, person_id: str, action: str) -> Any:
        if not session.user.can("view_people"):
            return forbidden(request, session, action, "Your role does not show person-level pages.")
        snap = team_scope(session, team_id)
        if snap is None or not SAFE_ID.match(person_id) or (team_id, person_id) not in snap.people:
            # The requested id is recorded (truncated) so the IG lead sees attempts to reach other teams' people.
            return not_found(request, session, action, person_id=person_id[:64], detail="person not found")
        return snap

    async def lead_action(
        request: Request, team_id: str, person_id: str, action: str, refusal: str
    ) -> tuple[Session, RunSnapshot, dict[str, str]] | Response:
        """The checks of a state-changing action on a person, in order: signed in, the person is on the user's
        team's list (else 404), the form's CSRF token, then the role (`action` is also the permission)."""
        session = signed_in(request)
        snap = person_scope(request, session, team_id, person_id, action)
        if isinstance(snap, Response):
            return snap
        form = await form_of(request)
        if not csrf_ok(session, form.get("csrf")):
            return bad_csrf(request, session, action, person_id=person_id)
        if not session.user.can(action):
            return forbidden(request, session, action, refusal, person_id=person_id)
        return session, snap, form

    @app.get("/teams/{team_id}/people/{person_id}", response_class=HTMLResponse)
    def person(request: Request, team_id: str, person_id: str) -> Response:
        session = signed_in(request)
        snap = person_scope(request, session, team_id, person_id, "view_person")
        if isinstance(snap, Response):
            return snap
        ws.audit(_event(session, "view_person", "ok", person_id=person_id))
        return page(request, "person.html", **person_context(snap, team_id, person_id), identity=None, error="")

    @app.post("/teams/{team_id}/people/{person_id}/decisions", response_class=HTMLResponse)
    async def decide(request: Request, team_id: str, person_id: str) -> Response:
        checked = await lead_action(
            request, team_id, person_id, "record_decision", "Only the team lead records decisions."
        )
        if isinstance(checked, Response):
            return checked
        session, snap, form = checked
        try:
            decision = caseload.Decision(
                person_id=person_id,
                team_id=team_id,
                decision=form.get("decision", ""),
                decision_date=_date(form.get("decision_date")) or datetime.now(UTC).date(),
                discussed_date=_date(form.get("discussed_date")),
                reason_code=form.get("reason_code") or None,
                case_management_start=_date(form.get("case_management_start")),
                case_management_end=_date(form.get("case_management_end")),
            )
            with connect(ws.dir) as con, transaction(con):
                caseload.record_decision(ws.dir, decision, session.user.name, con)
                audit.append(
                    ws.dir,
                    _event(
                        session, "record_decision", "ok", person_id=person_id, detail=f"decision={decision.decision}"
                    ),
                    con,
                )
        except (caseload.DecisionRejected, ValueError) as exc:
            ws.audit(_event(session, "record_decision", "invalid", person_id=person_id, detail="rejected by the rules"))
            context = person_context(snap, team_id, person_id)
            return page(request, "person.html", 400, **context, identity=None, error=str(exc))
        return RedirectResponse(f"/teams/{team_id}/people/{person_id}#decisions", status_code=303)

    @app.post("/teams/{team_id}/people/{person_id}/reidentify", response_class=HTMLResponse)
    async def reidentify(request: Request, team_id: str, person_id: str) -> Response:
        checked = await lead_action(request, team_id, person_id, "reidentify", "Only the team lead can re-identify.")
        if isinstance(checked, Response):
            return checked
        session, snap, _ = checked
        identity = _lookup(ws.dir / LOOKUPS_DIR / f"{team_id}.csv", person_id)
        ws.audit(_event(session, "reidentify", "ok" if identity else "not_found", person_id=person_id))
        context = person_context(snap, team_id, person_id)
        error = "" if identity else "Your team's lookup has no entry for this person."
        return page(request, "person.html", **context, identity=identity, error=error)

    # ------------------------------------------------------------------------------------------------ caseload

    @app.get("/teams/{team_id}/caseload", response_class=HTMLResponse)
    def team_caseload(request: Request, team_id: str) -> Response:
        scoped = team_page(request, team_id, "view_caseload", "view_people")
        if isinstance(scoped, Response):
            return scoped
        session, snap = scoped
        rows = caseload.decisions_for(ws.dir, team_id)
        latest = caseload.latest_by_person(rows)
        counts: dict[str, int] = {}
        for row in latest.values():
            counts[str(row["decision"])] = counts.get(str(row["decision"]), 0) + 1
        ws.audit(_event(session, "view_caseload", "ok", detail=f"people={len(latest)}"))
        listed = {pid for (team, pid) in snap.people if team == team_id}
        return page(
            request,
            "caseload.html",
            team_id=team_id,
            team_name=snap.team_names[team_id],
            latest=sorted(latest.values(), key=lambda r: str(r["decision_date"]), reverse=True),
            counts=counts,
            listed=listed,
            decisions=len(rows),
        )

    # ------------------------------------------------------------------------------------------------ downloads

    @app.get("/teams/{team_id}/download.{kind}")
    def download(request: Request, team_id: str, kind: str) -> Response:
        scoped = team_page(request, team_id, "download", "download_list", kind in ("csv", "xlsx"))
        if isinstance(scoped, Response):
            return scoped
        session, snap = scoped
        rows = snap.team_rows.get(team_id, [])
        ws.audit(_event(session, "download", "ok", detail=f"format={kind} rows={len(rows)} run={snap.run_id}"))
        filename = f"{team_id}_list_{snap.as_of.isoformat()}.{kind}"
        disposition = {"Content-Disposition": f'attachment; filename="{_ascii(filename)}"'}
        if kind == "csv":
            return Response(_list_csv(rows, snap), media_type="text/csv; charset=utf-8", headers=disposition)
        xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        return Response(_list_xlsx(rows, snap), media_type=xlsx, headers=disposition)

    # ------------------------------------------------------------------------------------------------ analysts, admins

    @app.get("/aggregates", response_class=HTMLResponse)
    def aggregates(request: Request) -> Response:
        session = signed_in(request)
        if not session.user.can("view_aggregates"):
            return forbidden(request, session, "view_aggregates", "Your role does not show the aggregates.")
        snap = ws.snapshots.current()
        rows = snap.summary if snap else []
        if session.user.team_id:
            rows = [r for r in rows if r.get("breakdown") != "team" or r.get("group") == session.user.team_id]
        ws.audit(_event(session, "view_aggregates", "ok", detail=f"cells={len(rows)}"))
        return page(request, "aggregates.html", rows=rows)

    @app.get("/monitoring", response_class=HTMLResponse)
    def monitoring(request: Request) -> Response:
        session = signed_in(request)
        if not session.user.can("view_monitoring"):
            return forbidden(request, session, "view_monitoring", "Your role does not show the model's monitoring.")
        view = ws.monitoring.current()  # aggregates only: no person id reaches this page
        detail = f"weeks={view.weeks} as_of={view.as_of.isoformat()}" if view else "nothing monitored yet"
        ws.audit(_event(session, "view_monitoring", "ok", detail=detail))
        return page(request, "monitoring.html", view=view, cell=html_monitoring.cell)

    @app.get("/admin", response_class=HTMLResponse)
    def admin(request: Request) -> Response:
        session = signed_in(request)
        if not session.user.can("administer"):
            return forbidden(request, session, "view_audit", "Only administrators see accounts and the audit trail.")
        check = audit.verify(ws.dir)
        ws.audit(_event(session, "view_audit", "ok", detail=f"records={check.records} intact={check.ok}"))
        return page(request, "admin.html", users=list_users(ws.dir), records=audit.recent(ws.dir, 100), check=check)

    return app


# ---------------------------------------------------------------------------------------------- small helpers


def _chart(svg: str, nonce: str) -> Markup:
    """Chart markup built by `html_charts` (every text escaped there); its inline <style> rules carry the
    page's CSP nonce, so the policy needs no 'unsafe-inline'."""
    return Markup(svg.replace("<style>", f'<style nonce="{nonce}">'))


def _home_of(user: User) -> str:
    if user.role is Role.ADMIN:
        return "/admin"
    if user.role is Role.ANALYST or not user.team_id:
        return "/aggregates"
    return f"/teams/{user.team_id}/list"


def _set_cookie(response: Response, name: str, value: str, settings: Settings, max_age: int | None = None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=settings.workspace.secure_cookies,
    )


def _set_session_cookie(response: Response, value: str, settings: Settings) -> None:
    _set_cookie(response, SESSION_COOKIE, value, settings)  # a browser-session cookie; the server enforces expiry


def _proxy_names_user(request: Request, ws: Workspace) -> bool:
    """True when single sign-on is configured and this request comes from the trusted proxy with its header."""
    conf = ws.settings.workspace
    return bool(
        conf.trusted_identity_header
        and _client(request) in conf.trusted_proxies
        and request.headers.get(conf.trusted_identity_header, "").strip()
    )


def _proxy_identity(request: Request, ws: Workspace, session: Session | None) -> Session | None:
    """The session of the user the trusted reverse proxy names (a new one unless the cookie's is theirs)."""
    name = request.headers.get(ws.settings.workspace.trusted_identity_header, "").strip()
    if session is not None and session.user.name == name:
        return session
    from pipelines.workspace.accounts import get_user

    user = get_user(ws.dir, name)
    if user is None or user.disabled:
        ws.audit(AuditEvent("login", "failed", user_name=name[:64], detail="trusted proxy named an unknown account"))
        return None
    cookie, new = ws.sessions.start(user)
    request.state.new_cookie = cookie
    ws.audit(_event(new, "login", "ok", detail="trusted proxy identity"))
    return new


def _date(text: str | None) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise caseload.DecisionRejected(f"{text[:20]!r} is not a date (YYYY-MM-DD)") from exc


def _months_before(day: date, months: int) -> date:
    from features.inputs import add_months

    return add_months(day, -months)


def _lookup(path: Path, person_id: str) -> dict[str, str] | None:
    """The team's own lookup row for one person (read at the moment of the audited reveal, never cached)."""
    if not path.exists():
        return None
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row.get("person_id") == person_id:
                return {"nhs_number": row.get("nhs_number", ""), "name": row.get("name", "")}
    return None


def _ascii(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


def _cell(value: Any) -> Any:
    # A spreadsheet formula must never come from data: prefix text that a spreadsheet would evaluate.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _list_csv(rows: list[dict[str, Any]], snap: RunSnapshot) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["run_id", "as_of", *DOWNLOAD_COLUMNS])
    for r in rows:
        writer.writerow([snap.run_id, snap.as_of.isoformat(), *(_cell(r.get(c)) for c in DOWNLOAD_COLUMNS)])
    return out.getvalue()


def _list_xlsx(rows: list[dict[str, Any]], snap: RunSnapshot) -> bytes:
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("List")
    ws.append(["run_id", "as_of", *DOWNLOAD_COLUMNS])
    for r in rows:
        ws.append([snap.run_id, snap.as_of.isoformat(), *(_cell(r.get(c)) for c in DOWNLOAD_COLUMNS)])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
