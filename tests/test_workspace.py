"""The MDT workspace's plain-Python parts: accounts and audit commands, caseload decisions and their way into the
warehouse (and out again on opt-out), and the atomic switch between published snapshots."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from pipelines.cli import app as cli
from pipelines.ingest import ingest_batch
from pipelines.workspace import audit, caseload
from pipelines.workspace.audit import AuditEvent
from pipelines.workspace.caseload import Decision, DecisionRejected
from pipelines.workspace.snapshot import SnapshotReader, write_snapshot
from pipelines.workspace.state import connect, state_path, transaction
from tests.test_ingest import clean_rows, write_batch
from tests.workspace_fixtures import (  # noqa: F401  (cheap_password_hashing is an autouse fixture)
    PASSWORD,
    WorkspaceHome,
    cheap_password_hashing,
    make_home,
    run_frames,
)

runner = CliRunner()
TODAY = datetime.now(UTC).date()


def test_users_commands_add_list_and_disable(tmp_path: Path) -> None:
    secret = tmp_path / "pw.txt"
    secret.write_text(PASSWORD + "\n", encoding="utf-8")
    home = ["--home", str(tmp_path / "home")]
    added = runner.invoke(
        cli, ["users", "add", "amy", "--team", "T1", "--role", "lead", "--password-file", str(secret), *home]
    )
    assert added.exit_code == 0, added.output
    listed = runner.invoke(cli, ["users", "list", *home])
    assert "amy" in listed.output and "lead" in listed.output and "active" in listed.output
    assert runner.invoke(cli, ["users", "disable", "amy", *home]).exit_code == 0
    assert "disabled" in runner.invoke(cli, ["users", "list", *home]).output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--team", "T1", "--role", "surgeon"], "role 'surgeon'"),
        (["--role", "clinician"], "belongs to a team"),
    ],
)
def test_users_add_refuses_a_bad_account_with_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    secret = tmp_path / "pw.txt"
    secret.write_text(PASSWORD, encoding="utf-8")
    result = runner.invoke(cli, ["users", "add", "bob", *args, "--password-file", str(secret), "--home", str(tmp_path)])
    assert result.exit_code == 2 and message in result.output


def test_users_add_refuses_a_short_password_and_a_duplicate(tmp_path: Path) -> None:
    short, good = tmp_path / "short.txt", tmp_path / "good.txt"
    short.write_text("short", encoding="utf-8")
    good.write_text(PASSWORD, encoding="utf-8")
    base = ["users", "add", "cat", "--team", "T1", "--role", "clinician", "--home", str(tmp_path)]
    assert "too short" in runner.invoke(cli, [*base, "--password-file", str(short)]).output
    assert runner.invoke(cli, [*base, "--password-file", str(good)]).exit_code == 0
    assert "already exists" in runner.invoke(cli, [*base, "--password-file", str(good)]).output


def test_audit_verify_and_export_between_dates(tmp_path: Path) -> None:
    workspace = tmp_path / "home" / "workspace"
    for n in range(5):
        audit.append(workspace, AuditEvent("view_person", "ok", user_name="amy", team_id="T1", person_id=f"P{n}"))
    home = ["--home", str(tmp_path / "home")]
    verified = runner.invoke(cli, ["audit", "verify", *home])
    assert verified.exit_code == 0 and "intact: 5 records" in verified.output
    out = tmp_path / "audit.csv"
    today = TODAY.isoformat()
    exported = runner.invoke(cli, ["audit", "export", "--from", today, "--to", today, "--out", str(out), *home])
    assert exported.exit_code == 0 and "5 audit records" in exported.output
    import csv

    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [r["person_id"] for r in rows] == ["P0", "P1", "P2", "P3", "P4"]
    assert audit.verify_records(rows).ok  # the export re-checks on its own
    rows[3]["outcome"] = "denied"
    assert audit.verify_records(rows).first_broken_seq == 4
    yesterday = (TODAY - timedelta(days=1)).isoformat()
    none = runner.invoke(cli, ["audit", "export", "--from", yesterday, "--to", yesterday, *home])
    assert none.output.strip().count("\n") == 0  # the header only


def test_audit_verify_exits_1_on_a_broken_chain(tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    for n in range(3):
        audit.append(workspace, AuditEvent("login", "ok", user_name=f"u{n}"))
    with sqlite3.connect(state_path(workspace)) as con:
        con.execute("DROP TRIGGER audit_no_update")
        con.execute("UPDATE audit SET user_name = 'mallory' WHERE seq = 3")
    result = runner.invoke(cli, ["audit", "verify", "--home", str(tmp_path)])
    assert result.exit_code == 1 and "record 3 was changed" in result.output


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"decision": "not_appropriate"}, "reason code is needed"),
        ({"decision": "taken_on", "case_management_start": None}, "case management start is needed"),
        ({"case_management_end": date(2026, 1, 1)}, "case management end cannot be before"),
        ({"discussed_date": date(2026, 2, 2), "decision_date": date(2026, 2, 1)}, "decision date cannot be before"),
        ({"decision_date": TODAY + timedelta(days=1)}, "cannot be in the future"),
        ({"decision": "maybe"}, "choose one of the listed decisions"),
        ({"reason_code": "bored"}, "choose one of the listed reasons"),
    ],
)
def test_a_decision_follows_the_caseload_contract(changes: dict[str, object], message: str) -> None:
    base = {
        "person_id": "P1",
        "team_id": "T1",
        "decision": "taken_on",
        "decision_date": date(2026, 2, 2),
        "case_management_start": date(2026, 2, 3),
    }
    with pytest.raises(DecisionRejected, match=message):
        caseload.check_decision(Decision(**(base | changes)), TODAY)  # type: ignore[arg-type]


def _record(workspace: Path, decision: Decision, by: str = "lead1") -> None:
    with connect(workspace) as con, transaction(con):
        caseload.record_decision(workspace, decision, by, con)


def test_decisions_reach_the_warehouse_as_a_caseload_batch_and_leave_it_on_opt_out(tmp_path: Path) -> None:
    db, workspace, batches = tmp_path / "w.duckdb", tmp_path / "workspace", tmp_path / "batches"
    ingest_batch(db, write_batch(tmp_path / "in", "b1", clean_rows()))
    taken_on = Decision("alive_person", "T1", "taken_on", date(2024, 12, 2), date(2024, 12, 1), None, date(2024, 12, 9))
    _record(workspace, taken_on)
    _record(workspace, Decision("young_person", "T1", "not_appropriate", date(2024, 12, 2), reason_code="needs_met"))
    folder = caseload.export_batch(workspace, batches)
    assert folder is not None and folder.parent == batches and not list(workspace.glob(".*tmp"))
    assert caseload.export_batch(workspace, batches) is None  # nothing new to export
    report = ingest_batch(db, folder)
    counts = {t.table: t for t in report.tables}
    assert (counts["caseload"].rows_read, counts["caseload"].rows_loaded, counts["caseload"].rows_quarantined) == (
        2,
        2,
        0,
    )
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute(
            "SELECT person_id, decision, case_management_start::VARCHAR FROM caseload ORDER BY person_id"
        ).fetchall()
    assert rows == [("alive_person", "taken_on", "2024-06-17"), ("alive_person", "taken_on", "2024-12-09"),
                    ("young_person", "not_appropriate", None)]  # fmt: skip
    # A later opt-out erases the person's decisions from the warehouse (ingest) and from the app state.
    opt_out = {"person_id": "alive_person", "opt_out_type": "gp_type_1", "recorded_date": "2024-12-20"}
    ingest_batch(db, write_batch(tmp_path / "in", "b3", {"opt_outs": [opt_out]}))
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT DISTINCT person_id FROM caseload").fetchall() == [("young_person",)]
    assert caseload.erase_opted_out(workspace, db) == 1
    assert [d["person_id"] for d in caseload.decisions_for(workspace, "T1")] == ["young_person"]


def test_an_export_keeps_the_last_decision_recorded_for_one_key(tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    _record(workspace, Decision("P1", "T1", "review_later", date(2024, 12, 2)))
    _record(workspace, Decision("P1", "T1", "declined", date(2024, 12, 2)))  # a correction on the same day
    folder = caseload.export_batch(workspace, tmp_path / "batches")
    assert folder is not None
    lines = (folder / "caseload.csv").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2 and ",declined," in lines[1]


def test_a_team_that_never_used_the_workspace_exports_nothing(tmp_path: Path) -> None:
    assert caseload.export_batch(tmp_path / "workspace", tmp_path / "batches") is None
    assert caseload.erase_opted_out(tmp_path / "workspace", tmp_path / "w.duckdb") == 0
    assert not (tmp_path / "workspace").exists() and not (tmp_path / "batches").exists()


def test_the_reader_switches_to_a_newly_published_run_whole(tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    write_snapshot(workspace, run_frames("run-a"))
    reader = SnapshotReader(workspace, recheck_s=0.0)
    first = reader.current()
    assert first is not None and first.run_id == "run-a"
    write_snapshot(workspace, run_frames("run-b", people_per_team=3))
    second = reader.current()
    assert second is not None and second.run_id == "run-b" and len(second.team_rows["T1"]) == 3
    assert len(first.team_rows["T1"]) == 6  # a request holding the old run still sees all of it


def test_the_reader_keeps_serving_when_the_pointer_names_a_broken_run(tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    write_snapshot(workspace, run_frames("run-a"))
    reader = SnapshotReader(workspace, recheck_s=0.0)
    assert reader.current() is not None
    (workspace / "current.json").write_text('{"run": "no-such-run"}', encoding="utf-8")
    snap = reader.current()
    assert snap is not None and snap.run_id == "run-a"


def test_a_snapshot_holds_no_opted_out_person_and_no_identifying_column(tmp_path: Path) -> None:
    import polars as pl

    frames = run_frames(opted_out={"T1P002"})
    frames = type(frames)(**{**frames.__dict__, "team_list": frames.team_list.with_columns(name=pl.lit("Ada"))})
    folder = write_snapshot(tmp_path / "workspace", frames)
    for part in ("team_list", "explanations", "activity"):
        table = pl.read_parquet(folder / f"{part}.parquet")
        assert "T1P002" not in table["person_id"].to_list() and "name" not in table.columns, part


def test_old_snapshots_are_pruned(tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    for n in range(5):
        write_snapshot(workspace, run_frames(f"run-{n}", people_per_team=2))
    assert len([p for p in (workspace / "runs").iterdir() if p.is_dir()]) == 3


def test_a_decision_and_its_audit_record_are_one_transaction(home_dir: WorkspaceHome) -> None:
    workspace = home_dir.settings.workspace_dir
    with pytest.raises(RuntimeError), connect(workspace) as con, transaction(con):
        caseload.record_decision(workspace, Decision("T1P001", "T1", "declined", date(2026, 11, 20)), "lead1", con)
        raise RuntimeError("the audit write failed")
    assert caseload.decisions_for(workspace, "T1") == []


@pytest.fixture
def home_dir(tmp_path: Path) -> WorkspaceHome:
    return make_home(tmp_path / "home")


def test_demo_layout_gives_the_teams_asked_for() -> None:
    from data_contracts.settings import SynthSettings
    from data_contracts.synthetic.population import n_practices
    from pipelines.workspace.demo import demo_synth_overrides

    layout = demo_synth_overrides(20_000, 4)
    synth = SynthSettings(people=20_000, **layout)
    assert n_practices(synth) // synth.practices_per_team == 4


def test_demo_accounts_cover_every_role_and_can_sign_in(home_dir: WorkspaceHome) -> None:
    from pipelines.workspace.accounts import check_password
    from pipelines.workspace.demo import create_demo_accounts

    accounts = create_demo_accounts(home_dir.settings)
    roles = sorted((a.role, a.team_id) for a in accounts)
    assert roles == [("admin", None), ("analyst", None), ("clinician", "T1"), ("clinician", "T2"),
                     ("lead", "T1"), ("lead", "T2")]  # fmt: skip
    for a in accounts:
        assert check_password(home_dir.settings.workspace_dir, a.name, a.password) is not None
    again = {a.name: a.password for a in create_demo_accounts(home_dir.settings)}  # a rerun resets passwords
    assert all(again[a.name] != a.password for a in accounts)
    lookup = (home_dir.settings.workspace_dir / "lookups" / "T2.csv").read_text(encoding="utf-8").splitlines()
    assert lookup[0] == "person_id,nhs_number,name" and lookup[1].startswith("T2P001,999")
