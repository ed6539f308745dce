"""Demo accounts for the MDT workspace on the synthetic population (`riskstrat demo`).

A lead and a clinician for each of the first two teams of the published run, an analyst and an admin, with
fresh random passwords (printed by the demo, for the demo only), and a synthetic re-identification lookup for
those two teams (made-up names, NHS numbers from the 999 range reserved for testing).
"""

from __future__ import annotations

import csv
import secrets
from dataclasses import dataclass
from pathlib import Path

from pipelines.settings import Settings
from pipelines.workspace.accounts import get_user, set_password
from pipelines.workspace.app import LOOKUPS_DIR
from pipelines.workspace.snapshot import SnapshotReader

DEMO_ROLES = ("lead", "clinician")
FIRST_NAMES = ("Alex", "Sam", "Jo", "Chris", "Pat", "Robin", "Morgan", "Jamie", "Kim", "Lee")
LAST_NAMES = ("Example", "Sample", "Testing", "Demo", "Placeholder")


@dataclass(frozen=True)
class DemoAccount:
    name: str
    team_id: str | None
    role: str
    password: str


def demo_synth_overrides(people: int, teams: int) -> dict[str, int]:
    """Synthetic population settings giving `teams` teams of two practices each (the demo needs at least three
    teams to show team scoping)."""
    if teams < 1:
        raise ValueError("teams must be at least 1")
    return {"practices_per_team": 2, "people_per_practice": max(1, people // (2 * teams))}


def create_demo_accounts(settings: Settings) -> list[DemoAccount]:
    """Create (or reset the password of) the demo accounts; the run must be published already."""
    from pipelines.workspace.accounts import add_user

    snap = SnapshotReader(settings.workspace_dir, recheck_s=0.0).current()
    if snap is None:
        raise RuntimeError("no published run for the workspace yet: run the demo's score step first")
    teams = sorted(snap.team_names)[:2]
    wanted = [(f"{role}_{team.lower()}", team, role) for team in teams for role in DEMO_ROLES]
    wanted += [("analyst", None, "analyst"), ("admin", None, "admin")]
    accounts = []
    for name, team, role in wanted:
        password = secrets.token_urlsafe(12)
        if get_user(settings.workspace_dir, name) is None:
            add_user(settings.workspace_dir, name, team, role, password)
        else:
            set_password(settings.workspace_dir, name, password)
        accounts.append(DemoAccount(name, team, role, password))
    for team in teams:
        write_demo_lookup(
            settings.workspace_dir / LOOKUPS_DIR / f"{team}.csv", [r["person_id"] for r in snap.team_rows[team]]
        )
    return accounts


def write_demo_lookup(path: Path, person_ids: list[str]) -> None:
    """A made-up lookup (person_id, nhs_number, name) so the demo's leads can try the audited reveal."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["person_id", "nhs_number", "name"])
        for i, pid in enumerate(person_ids):
            name = f"{FIRST_NAMES[i % len(FIRST_NAMES)]} {LAST_NAMES[(i // len(FIRST_NAMES)) % len(LAST_NAMES)]}"
            writer.writerow([pid, f"999{i:07d}", name])
