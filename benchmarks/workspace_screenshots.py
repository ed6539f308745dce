"""Screenshots of the MDT workspace on a published run (e.g. after `riskstrat demo`), in Debian's headless Chromium.

    .venv/bin/python -m benchmarks.workspace_screenshots --home var --out docs/screenshots [--pages monitoring]

Adds a throwaway lead for the first team and a throwaway analyst (random passwords, never printed; disabled
afterwards), starts `riskstrat app` on loopback, signs in, and saves the team list, the top person's page (after
recording a "review later" decision, so the caseload is not empty) and the caseload; then, when a weekly run has
been monitored, the analyst's monitoring page. Stops the server at the end.
"""

from __future__ import annotations

import argparse
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

CHROMIUM = "/usr/bin/chromium"
PAGES = ("list", "person", "caseload", "monitoring")  # the team pages (a lead's), then the analyst's monitoring
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, default=Path("var"))
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument(
        "--pages", default=",".join(PAGES), help=f"which pages to save, comma-separated (default: {','.join(PAGES)})"
    )
    args = parser.parse_args()
    pages = [p for p in PAGES if p in args.pages.split(",")]

    from playwright.sync_api import sync_playwright

    from pipelines.settings import Settings
    from pipelines.workspace.accounts import disable_user
    from pipelines.workspace.monitoring import MonitoringReader
    from pipelines.workspace.snapshot import SnapshotReader

    settings = Settings(home=args.home)
    team_pages = [p for p in pages if p != "monitoring"]
    snap = SnapshotReader(settings.workspace_dir, recheck_s=0.0).current()
    if snap is None and team_pages:
        raise SystemExit(f"no published run in {args.home}: run `riskstrat demo` first")
    team = sorted(snap.team_names)[0] if snap is not None else None
    lead, analyst = "screenshot_lead", "screenshot_analyst"
    passwords = {lead: _throwaway_account(settings, lead, team, "lead") if team_pages else "", analyst: ""}
    monitored = MonitoringReader(settings.workspace_dir, settings.monitoring).current() is not None
    if "monitoring" in pages and not monitored:
        print(f"no weekly run monitored in {args.home} (riskstrat weekly, or riskstrat monitor): no monitoring page")
    if "monitoring" in pages and monitored:
        passwords[analyst] = _throwaway_account(settings, analyst, None, "analyst")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "pipelines.cli", "app", "--home", str(args.home), "--host", "127.0.0.1"]
    server = subprocess.Popen([*cmd, "--port", str(port)], stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(base + "/login").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        args.out.mkdir(parents=True, exist_ok=True)
        first = snap.team_rows[team][0]["person_id"] if snap is not None and team is not None else ""
        with sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                tempfile.mkdtemp(prefix="chromium-profile-"), executable_path=CHROMIUM, headless=True, args=FLAGS,
                viewport={"width": 1360, "height": 900},
            )  # fmt: skip
            page = context.new_page()
            shots = []
            if passwords[lead]:
                _sign_in(page, base, lead, passwords[lead])
            if "list" in pages:
                shots.append(_shot(page, args.out, "workspace_list.png", full_page=False))
            if "person" in pages:
                page.goto(f"{base}/teams/{team}/people/{first}")
                page.select_option("select[name=decision]", "review_later")
                page.click("#decision-form button")
                shots.append(_shot(page, args.out, "workspace_person.png", full_page=True))
            if "caseload" in pages:
                page.goto(f"{base}/teams/{team}/caseload")
                shots.append(_shot(page, args.out, "workspace_caseload.png", full_page=False))
            if passwords[analyst]:
                context.clear_cookies()
                _sign_in(page, base, analyst, passwords[analyst])
                page.goto(f"{base}/monitoring")
                shots.append(_shot(page, args.out, "workspace_monitoring.png", full_page=True))
            context.close()
        print(f"wrote {', '.join(str(s) for s in shots)}" + (f" (team {team})" if team_pages else ""))
    finally:
        server.terminate()
        server.wait(timeout=30)
        for name, password in passwords.items():
            if password:
                disable_user(settings.workspace_dir, name)


def _throwaway_account(settings: Any, name: str, team: str | None, role: str) -> str:
    """An account for the screenshots with a new random password (returned, never printed), enabled."""
    from pipelines.workspace.accounts import add_user, get_user, set_password
    from pipelines.workspace.state import connect

    password = secrets.token_urlsafe(16)
    if get_user(settings.workspace_dir, name) is None:
        add_user(settings.workspace_dir, name, team, role, password)
    else:
        set_password(settings.workspace_dir, name, password)
        with connect(settings.workspace_dir) as con:
            con.execute("UPDATE users SET disabled = 0, team_id = ?, role = ? WHERE name = ?", [team, role, name])
    return password


def _shot(page: Any, out: Path, name: str, full_page: bool) -> Path:
    page.screenshot(path=str(out / name), full_page=full_page)
    return out / name


def _sign_in(page: Any, base: str, name: str, password: str) -> None:
    page.goto(base + "/login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


if __name__ == "__main__":
    main()
