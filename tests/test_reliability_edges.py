"""Issue 17's remaining classes, one test per class, each through the path an operator uses (a flow, the CLI):
scores stored only with the lists published, a batch unloaded, an import without an extract date, a stray folder
among the batches, a batch without costs in a database of another currency."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import polars as pl
import pytest

from tests import test_publish as scenario

ROOT = Path(__file__).resolve().parent.parent

if TYPE_CHECKING:
    from pipelines.scoring import ScoreResult


def _scored(as_of_shift_days: int = 0) -> ScoreResult:
    """A ScoreResult of the publishing tests' scenario people (no model needed), as of AS_OF + the shift."""
    from pipelines.publish import Publication
    from pipelines.scoring import ScoreResult

    team_list = scenario._team_list()
    as_of = scenario.AS_OF + timedelta(days=as_of_shift_days)
    provenance = replace(scenario.PROVENANCE, as_of=as_of, run_id=f"run-{as_of}")
    publication = Publication(
        provenance=provenance,
        team_list=team_list,
        explanations=scenario._explanations(team_list),
        leavers=scenario._leavers(),
        activity=scenario._activity(),
        population_summary=scenario._population_summary(),
        rising_risk=scenario._rising(),
        opted_out_ids=frozenset({scenario.OPTED_OUT}),
    )
    population = team_list.select(
        "person_id",
        pl.col("risk").cast(pl.Float64).alias("risk_emergency_admission"),
        pl.lit("high").alias("tier"),
        pl.col("rank").cast(pl.Int64).alias("population_rank"),
    )
    return ScoreResult(population=population, publication=publication)


def _stored(db: Path) -> dict[str, list[tuple]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return {
            table: con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()
            for table in ("risk_scores", "team_list_history", "list_draws")
        }


def test_scores_and_lists_are_stored_only_when_publishing_succeeds(
    prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A publish that fails (here: the commissioners' summary cannot be written) leaves risk_scores and the
    list history exactly as they were and no week's folder; the next run publishes and stores both."""
    import pipelines.publish.run as publish_run
    import pipelines.scoring
    from pipelines.flows import score

    first, second = _scored(), _scored(7)
    results = {first.publication.provenance.as_of: first, second.publication.provenance.as_of: second}
    monkeypatch.setattr(pipelines.scoring, "score_population", lambda _settings, as_of, **_: results[as_of])
    home = tmp_path / "home"
    overrides = {"home": str(home), "runs": {"retries": 0}}

    score(overrides=overrides, as_of=str(first.publication.provenance.as_of))
    before = _stored(home / "riskstrat.duckdb")
    assert before["risk_scores"] and before["team_list_history"]

    def broken_summary(*args: object, **kwargs: object) -> None:
        raise OSError("disk full (injected)")

    real_summary = publish_run.commissioners.publish_commissioners
    monkeypatch.setattr(publish_run.commissioners, "publish_commissioners", broken_summary)
    with pytest.raises(OSError, match="injected"):
        score(overrides=overrides, as_of=str(second.publication.provenance.as_of))
    assert _stored(home / "riskstrat.duckdb") == before
    week = home / "outputs" / second.publication.provenance.as_of.isoformat()
    assert not week.exists()
    assert not [p.name for p in week.parent.iterdir() if p.name.startswith(".")]  # no staging folder left

    monkeypatch.setattr(publish_run.commissioners, "publish_commissioners", real_summary)
    score(overrides=overrides, as_of=str(second.publication.provenance.as_of))
    after = _stored(home / "riskstrat.duckdb")
    assert (week / "manifest.json").exists()
    new_dates = {row[1] for row in after["team_list_history"]} - {row[1] for row in before["team_list_history"]}
    assert new_dates == {second.publication.provenance.as_of}


def test_a_record_that_fails_removes_the_staged_week_and_keeps_the_published_one(tmp_path: Path) -> None:
    """The other half: publishing is staged, the store fails, and last run's folder for the week stays as it was
    with no staging folder beside it."""
    from contextlib import contextmanager

    from pipelines.publish.folder import staging_dir

    dest = tmp_path / "2026-11-23"
    dest.mkdir()
    (dest / "manifest.json").write_text("last run")

    @contextmanager
    def failing_store() -> Iterator[None]:
        raise duckdb.IOException("cannot write the database (injected)")
        yield

    with pytest.raises(duckdb.IOException), staging_dir(dest, failing_store) as staging:
        (staging / "manifest.json").write_text("this run")
    assert (dest / "manifest.json").read_text() == "last run"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2026-11-23"]


def _usd_database(tmp_path: Path) -> Path:
    """A database whose costs are in USD (a Synthea-like source), from the ingest tests' clean rows."""
    from data_contracts.batch import write_batch
    from pipelines.ingest import ingest_batch
    from tests.test_ingest import EXTRACT_DATE, clean_rows, csv_bytes

    db = tmp_path / "usd.duckdb"
    rows = clean_rows()
    with write_batch(tmp_path / "in" / "b1_usd", "b1_usd", date.fromisoformat(EXTRACT_DATE), "USD", "import") as b:
        for table, table_rows in rows.items():
            b.add_file(f"{table}.csv", table, csv_bytes(table_rows), len(table_rows))
    ingest_batch(db, tmp_path / "in" / "b1_usd")
    return db


def test_a_batch_without_cost_columns_needs_no_currency(tmp_path: Path) -> None:
    """The workspace's caseload export (no currency: it carries no costs) loads into a USD database, as does an
    opt-outs-only batch; a batch with costs and no currency is still GBP and still refused there."""
    from data_contracts.batch import BatchRejected
    from pipelines.ingest import ingest_batch
    from pipelines.warehouse import cost_currency
    from pipelines.workspace import caseload
    from pipelines.workspace.caseload import Decision
    from pipelines.workspace.state import connect, transaction
    from tests.test_ingest import write_batch as write_test_batch

    db = _usd_database(tmp_path)
    workspace = tmp_path / "workspace"
    with connect(workspace) as con, transaction(con):
        decision = Decision("young_person", "T1", "not_appropriate", date(2024, 12, 2), reason_code="needs_met")
        caseload.record_decision(workspace, decision, "lead1", con)
    folder = caseload.export_batch(workspace, tmp_path / "batches")
    assert folder is not None
    report = ingest_batch(db, folder)
    assert report.status == "loaded" and [t.rows_loaded for t in report.tables] == [1]
    opt_out = {"person_id": "young_person", "opt_out_type": "gp_type_1", "recorded_date": "2024-12-20"}
    assert ingest_batch(db, write_test_batch(tmp_path / "in", "b3", {"opt_outs": [opt_out]})).status == "loaded"
    assert cost_currency(db) == "USD"
    with duckdb.connect(str(db), read_only=True) as con:
        held = con.execute("SELECT batch_id, currency, holds_costs FROM batches ORDER BY loaded_at").fetchall()
    assert [(c, h) for _, c, h in held] == [("USD", True), (None, False), (None, False)]

    spell = {"prescriptions": [{"person_id": "alive_person", "issue_date": "2024-06-03", "bnf_code": "0212000AA",
                                "items": "1", "cost": "3.5"}]}  # fmt: skip
    with pytest.raises(BatchRejected, match="costs are in GBP but the database holds costs in USD"):
        ingest_batch(db, write_test_batch(tmp_path / "in", "b4", spell))


def test_an_import_never_takes_its_extract_date_from_the_data(tmp_path: Path) -> None:
    """`riskstrat import` without --extract-date is refused in one line saying how to give it; nothing is
    written. With it, the manifest holds that date and not the latest event's."""
    from typer.testing import CliRunner

    from pipelines.cli import app
    from tests.test_import import SYNTHEA_TINY

    runner = CliRunner()
    batch = tmp_path / "synthea_batch"
    refused = runner.invoke(app, ["import", str(SYNTHEA_TINY), "--mapping", "synthea_flat", "--out", str(batch)])
    assert refused.exit_code == 2, refused.output
    assert "--extract-date YYYY-MM-DD" in refused.output and len(refused.output.strip().splitlines()) == 1
    assert not batch.exists()
    given = ["--extract-date", "2018-06-30"]
    done = runner.invoke(app, ["import", str(SYNTHEA_TINY), "--mapping", "synthea_flat", "--out", str(batch), *given])
    assert done.exit_code == 0, done.output
    assert json.loads((batch / "batch.json").read_text())["extract_date"] == "2018-06-30"


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`riskstrat ARGS` in a fresh interpreter, as an operator types it (the real exit code and stderr)."""
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_batch_can_be_unloaded_as_if_it_had_never_been_loaded_and_loaded_again(tmp_path: Path) -> None:
    """`riskstrat batch unload` takes out a batch that introduced a person (dated 2099, as the misdated batch of
    the issue): every table is as before it was loaded, the unload is recorded, and the same folder ingests
    again. An unknown id, a batch that replaced earlier rows and a batch of opt-outs are refused in one line
    (exit 2) and change nothing."""
    from pipelines.ingest import ingest_batch
    from tests.test_ingest import _person, _spell, clean_rows, snapshot, write_batch

    db, home, batches = tmp_path / "w.duckdb", tmp_path / "home", tmp_path / "in"
    first = {table: rows for table, rows in clean_rows().items() if table != "opt_outs"}
    ingest_batch(db, write_batch(batches, "b1", first))
    before = snapshot(db)
    misdated = {"persons": [_person("new_person", "1970", "1")], "apc_spells": [_spell("S9", "new_person")]}
    b2 = write_batch(batches, "b2", misdated, extract_date="2099-01-01")
    ingest_batch(db, b2)
    assert snapshot(db) != before

    done = _cli("batch", "unload", "b2", "--db", str(db), "--home", str(home), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    after = snapshot(db)
    unloads = after.pop("batch_unloads")
    assert before.pop("batch_unloads") == []
    assert after == before
    assert sorted((r[0], r[5], r[6]) for r in unloads) == [
        ("b2", "apc_spells", 1),
        ("b2", "batches", 1),
        ("b2", "ingest_log", 2),
        ("b2", "persons", 1),
    ]

    again = _cli("batch", "unload", "b2", "--db", str(db), "--home", str(home), cwd=tmp_path)
    assert again.returncode == 2 and again.stderr.strip() == f"error: no batch 'b2' is loaded in {db}"

    reingested = _cli("ingest", str(b2), "--db", str(db), "--home", str(home), cwd=tmp_path)
    assert reingested.returncode == 0, reingested.stderr
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT batch_id FROM persons WHERE person_id = 'new_person'").fetchall() == [("b2",)]

    corrected = dict(_person("alive_person", "1950", "4"))
    ingest_batch(db, write_batch(batches, "b3", {"persons": [corrected]}))
    opt_out = {"person_id": "young_person", "opt_out_type": "gp_type_1", "recorded_date": "2024-12-20"}
    ingest_batch(db, write_batch(batches, "b4", {"opt_outs": [opt_out]}))
    held = snapshot(db)
    for batch_id, reason in (("b3", "replaced earlier batches' rows with the same keys (1 in persons"),
                             ("b4", "delivered 1 opt-out(s)")):  # fmt: skip
        refused = _cli("batch", "unload", batch_id, "--db", str(db), "--home", str(home), cwd=tmp_path)
        assert refused.returncode == 2 and reason in refused.stderr, refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
    assert snapshot(db) == held


def test_a_stray_folder_among_the_batches_is_named_and_holds_nothing_back(
    prefect_harness: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A folder with no batch.json, no batch.complete and a name that is not a batch name (`archive`, some notes
    in it) sorts before the batches: it is named in the log once and both batches after it load."""
    from data_contracts.batch import batches_in
    from pipelines.flows import ingest
    from pipelines.settings import load_settings
    from tests.test_ingest import _person, clean_rows, write_batch

    root = tmp_path / "batches"
    write_batch(root, "b0001_history", {t: r for t, r in clean_rows().items() if t != "opt_outs"})
    write_batch(root, "b0002_week_2025-01-08", {"persons": [_person("new_person", "1970", "1")]})
    (root / "archive").mkdir()
    (root / "archive" / "notes.txt").write_text("last year's extracts went to the shared drive")
    overrides = {"home": str(tmp_path / "home")}
    pattern = load_settings(None, overrides).ingest.batch_name_pattern
    # Prefect's logging setup stops the riskstrat loggers' propagation to the root (where caplog listens).
    batch_log = logging.getLogger("riskstrat.batch")
    batch_log.addHandler(caplog.handler)
    try:
        found = batches_in(root, pattern)
        reports = ingest(batch_dirs=[str(p) for p in found], overrides=overrides)
    finally:
        batch_log.removeHandler(caplog.handler)
    assert [(r["batch_id"], r["status"]) for r in reports] == [
        ("b0001_history", "loaded"),
        ("b0002_week_2025-01-08", "loaded"),
    ]
    # One record (caplog may see it twice, through its handler here and on the root, in a suite's logging setup).
    named = {id(r): r.getMessage() for r in caplog.records if "archive" in r.getMessage()}
    assert len(named) == 1 and "not a batch" in next(iter(named.values()))


def test_an_incomplete_batch_waits_then_fails_the_run_naming_it(tmp_path: Path) -> None:
    """A batch-named folder not whole yet (a manifest, no batch.complete) waits while its copy may be under way;
    once nothing in it has changed for ingest.incomplete_batch_days it fails the run, named, in one line."""
    from data_contracts.batch import COMPLETE_MARKER, BatchRejected
    from pipelines.ingest import ingest_batch
    from pipelines.settings import load_settings
    from tests.test_ingest import _person, write_batch

    db = tmp_path / "w.duckdb"
    folder = write_batch(tmp_path / "batches", "b0003_week_2025-01-15", {"persons": [_person("p9", "1970", "1")]})
    (folder / COMPLETE_MARKER).unlink()  # the copy has not finished
    settings = load_settings(None, {"home": str(tmp_path / "home")}).ingest
    assert ingest_batch(db, folder, settings).status == "waiting"
    eight_days_ago = time.time() - 8 * 86_400
    for path in [*folder.iterdir(), folder]:
        os.utime(path, (eight_days_ago, eight_days_ago))
    with pytest.raises(BatchRejected) as refused:
        ingest_batch(db, folder, settings)
    message = str(refused.value)
    assert "b0003_week_2025-01-15 has not been whole for 8 days" in message and "\n" not in message
