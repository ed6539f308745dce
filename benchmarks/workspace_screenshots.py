"""Screenshots of the MDT workspace on a published run (e.g. after `riskstrat demo`), in Debian's headless Chromium.

    .venv/bin/python -m benchmarks.workspace_screenshots --home var --out docs/screenshots

Adds a throwaway lead for the first team (random password, never printed; disabled afterwards), starts
`riskstrat app` on loopback, signs in, and saves the team list, the top person's page (after recording a
"review later" decision, so the caseload is not empty) and the caseload. Stops the server at the end.
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

import httpx

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, default=Path("var"))
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from pipelines.settings import Settings
    from pipelines.workspace.accounts import add_user, disable_user, get_user, set_password
    from pipelines.workspace.snapshot import SnapshotReader

    settings = Settings(home=args.home)
    snap = SnapshotReader(settings.workspace_dir, recheck_s=0.0).current()
    if snap is None:
        raise SystemExit(f"no published run in {args.home}: run `riskstrat demo` first")
    team = sorted(snap.team_names)[0]
    name, password = "screenshot_lead", secrets.token_urlsafe(16)
    if get_user(settings.workspace_dir, name) is None:
        add_user(settings.workspace_dir, name, team, "lead", password)
    else:
        set_password(settings.workspace_dir, name, password)
        from pipelines.workspace.state import connect

        with connect(settings.workspace_dir) as con:
            con.execute("UPDATE users SET disabled = 0, team_id = ? WHERE name = ?", [team, name])
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
        first = snap.team_rows[team][0]["person_id"]
        with sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                tempfile.mkdtemp(prefix="chromium-profile-"), executable_path=CHROMIUM, headless=True, args=FLAGS,
                viewport={"width": 1360, "height": 900},
            )  # fmt: skip
            page = context.new_page()
            page.goto(base + "/login")
            page.fill("input[name=username]", name)
            page.fill("input[name=password]", password)
            page.click("button[type=submit]")
            page.screenshot(path=str(args.out / "workspace_list.png"), full_page=False)
            page.goto(f"{base}/teams/{team}/people/{first}")
            page.select_option("select[name=decision]", "review_later")
            page.click("#decision-form button")
            page.screenshot(path=str(args.out / "workspace_person.png"), full_page=True)
            page.goto(f"{base}/teams/{team}/caseload")
            page.screenshot(path=str(args.out / "workspace_caseload.png"), full_page=False)
            context.close()
        print(f"wrote {args.out}/workspace_list.png, workspace_person.png, workspace_caseload.png (team {team})")
    finally:
        server.terminate()
        server.wait(timeout=30)
        disable_user(settings.workspace_dir, name)


if __name__ == "__main__":
    main()
