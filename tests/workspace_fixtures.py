"""A small published run for the MDT workspace tests: three teams, a few people each, written as the score flow
writes it (`write_snapshot`), with accounts for every role and one team's re-identification lookup."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest

from pipelines.settings import Settings
from pipelines.workspace.accounts import add_user
from pipelines.workspace.app import LOOKUPS_DIR
from pipelines.workspace.snapshot import PublishedRun, write_snapshot

AS_OF = date(2026, 11, 23)
PASSWORD = "correct horse battery"
# A team name and a person id carrying markup: pages must show them as text.
HOSTILE_TEAM_NAME = '<script>alert("team")</script> & Co'
HOSTILE_PERSON = "P_x\"'><img src=x onerror=alert(1)>"
TEAMS = {"T1": "North MDT", "T2": "South MDT", "T3": HOSTILE_TEAM_NAME}
TIERS = ("very high", "high", "high", "moderate", "moderate", "low")
CHANGES = ("new", "rising", "steady", "falling", "new", "steady")
USERS = {
    "lead1": ("T1", "lead"),
    "clin1": ("T1", "clinician"),
    "lead2": ("T2", "lead"),
    "clin2": ("T2", "clinician"),
    "analyst": (None, "analyst"),
    "admin": (None, "admin"),
}


@dataclass(frozen=True)
class WorkspaceHome:
    home: Path
    settings: Settings

    def person(self, team: str, index: int) -> str:
        return f"{team}P{index:03d}"


def people_of(team: str, n: int = 6) -> list[str]:
    return [f"{team}P{i:03d}" for i in range(1, n + 1)]


def run_frames(
    run_id: str = "run-2026-11-23", people_per_team: int = 6, opted_out: set[str] | None = None
) -> PublishedRun:
    rows, reasons, activity = [], [], []
    for t, (team, name) in enumerate(TEAMS.items()):
        ids = people_of(team, people_per_team)
        if team == "T3":
            ids[-1] = HOSTILE_PERSON
        for i, pid in enumerate(ids):
            risk = round(0.6 - 0.05 * i - 0.01 * t, 4)
            rows.append(
                {
                    "run_id": run_id,
                    "as_of": AS_OF,
                    "model_versions": "emergency_admission=v1",
                    "data_batches": "history..week_01",
                    "team_id": team,
                    "team_name": name,
                    "gp_practice": f"A8{t}00{i % 2}",
                    "rank": i + 1,
                    "person_id": pid,
                    "age_band": ("65-74", "75-84", "85+")[i % 3],
                    "sex": ("Female", "Male")[i % 2],
                    "ranking_outcome": "emergency_admission",
                    "risk": risk,
                    "tier": TIERS[i % len(TIERS)],
                    "reasons": "2 emergency admissions in 12 months; heart failure; lives alone",
                    "risk_emergency_admission": risk,
                    "risk_high_cost": risk / 2,
                    "risk_frequent_user": risk / 3,
                    "risk_care_home_admission": risk / 10,
                    "risk_unplanned_care": min(risk * 1.2, 0.99),
                    "social_care_package": "home care" if i % 3 == 0 else None,
                    "in_care_home": i == 4,
                    "recent_discharge": i % 2 == 1,
                    "on_last_weeks_list": CHANGES[i % len(CHANGES)] != "new",
                    "change": CHANGES[i % len(CHANGES)],
                    "previous_rank": None if CHANGES[i % len(CHANGES)] == "new" else i + 2,
                    "explain_scale": "log-odds",
                    "base_logodds": -2.5,
                    "start_risk": 0.076,
                    "logodds": -0.5 - 0.1 * i,
                }
            )
            for r, (feature, label, contribution) in enumerate(
                (
                    ("emerg_12m", "Emergency admissions, 12 months", 0.9),
                    ("hf", "Heart failure", 0.5),
                    ("age", "Age", -0.2),
                )
            ):
                reasons.append(
                    {
                        "person_id": pid,
                        "team_id": team,
                        "reason_rank": r + 1,
                        "feature": feature,
                        "feature_label": label,
                        "value": "2",
                        "reason": feature,
                        "contribution": contribution,
                        "points": contribution / 10,
                        "phrase": f"{label}: raises risk" if contribution > 0 else f"{label}: lowers risk",
                        "direction": "raises" if contribution > 0 else "lowers",
                    }
                )
            for k in range(4):
                activity.append(
                    {
                        "person_id": pid,
                        "event_date": AS_OF - timedelta(days=40 + 90 * k),
                        "setting": ("emergency admission", "A&E", "GP", "community")[k],
                        "detail": "synthetic",
                        "cost": 100.0 * (k + 1),
                    }
                )
    team_list = pl.DataFrame(rows)
    summary = pl.DataFrame(
        {
            "breakdown": ["all people", "team", "team"],
            "group": ["all", "T1", "T2"],
            "tier": ["very high", "very high", "very high"],
            "people": ["15", "*", "*"],
            "expected_events": ["10", "*", "*"],
        }
    )
    leavers = pl.DataFrame({"team_id": ["T1"], "person_id": ["T1P099"], "previous_rank": [3], "reason": ["moved"]})
    return PublishedRun(
        provenance={
            "run_id": run_id,
            "as_of": AS_OF.isoformat(),
            "model_versions": "emergency_admission=v1",
            "data_batches": "history..week_01",
            "explain_scale": "log-odds",
            "ranking_outcome": "emergency_admission",
            "cost_currency": "GBP",
        },
        team_list=team_list,
        explanations=pl.DataFrame(reasons),
        activity=pl.DataFrame(activity),
        leavers=leavers,
        summary=summary,
        opted_out_ids=opted_out or set(),
    )


def make_home(home: Path, **workspace: object) -> WorkspaceHome:
    """A workspace home with the run published, accounts for every role and T1's re-identification lookup."""
    settings = Settings(home=home)
    if workspace:
        from dataclasses import replace

        settings = replace(settings, workspace=replace(settings.workspace, **workspace))  # type: ignore[arg-type]
    write_snapshot(settings.workspace_dir, run_frames())
    for name, (team, role) in USERS.items():
        add_user(settings.workspace_dir, name, team, role, PASSWORD)
    lookups = settings.workspace_dir / LOOKUPS_DIR
    lookups.mkdir(parents=True, exist_ok=True)
    (lookups / "T1.csv").write_text(
        "person_id,nhs_number,name\nT1P001,9990000018,Ada Example\nT1P002,9990000026,Ben Example\n", encoding="utf-8"
    )
    return WorkspaceHome(home, settings)


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Accounts made in tests hash with argon2's cheapest profile (verification reads the parameters from each
    hash, so logins against them are cheap too): the behaviour under test is the same, the cost is not."""
    from argon2 import PasswordHasher, profiles

    from pipelines.workspace import accounts

    monkeypatch.setattr(accounts, "_HASHER", PasswordHasher.from_parameters(profiles.CHEAPEST))
