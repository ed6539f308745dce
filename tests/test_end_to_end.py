"""One end-to-end run of the real Prefect flows on a small synthetic population: generate, ingest, train,
score, publish. Checks the promises that only show when the pieces run together."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

pytestmark = pytest.mark.e2e

SMALL_RUN = {
    "synth": {"people": 4000, "weekly_batches": 1, "people_per_practice": 1000, "truth_replicates": 16},
    "training": {"bootstrap_samples": 20, "explain_sample_rows": 200, "num_boost_round": 200},
}


@pytest.fixture(scope="module")
def demo_run(prefect_harness: None, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    from pipelines.flows import demo

    home = tmp_path_factory.mktemp("demo")
    summary = demo(overrides={**SMALL_RUN, "home": str(home)})
    return summary, home


def test_ingest_reconciles_every_table(demo_run: tuple[dict[str, Any], Path]) -> None:
    summary, home = demo_run
    for report in summary["ingest"]:
        for t in report["tables"]:
            assert t["rows_read"] == t["rows_loaded"] + t["rows_quarantined"] + t["rows_excluded"], t
    with duckdb.connect(str(home / "riskstrat.duckdb"), read_only=True) as con:
        logged = con.execute(
            "SELECT sum(rows_read), sum(rows_loaded + rows_quarantined + rows_excluded) FROM ingest_log"
        )
        read, accounted = logged.fetchall()[0]
    assert read == accounted and read > 0


def test_every_outcome_has_a_registered_current_model_and_card(demo_run: tuple[dict[str, Any], Path]) -> None:
    summary, home = demo_run
    for outcome in ("emergency_admission", "high_cost", "frequent_user", "care_home_admission"):
        current = json.loads((home / "registry" / outcome / "current.json").read_text())
        version_dir = home / "registry" / outcome / current["version"]
        assert (version_dir / "model_card.html").exists()
        assert outcome in summary["train"]["decisions"]
    models = {row["model"] for row in summary["train"]["comparison"]}
    assert {"last year's top users", "oracle (true probability)"} <= models


def test_team_lists_respect_capacity_carry_provenance_and_exclude_opt_outs(
    demo_run: tuple[dict[str, Any], Path],
) -> None:
    summary, home = demo_run
    folder = Path(summary["score"]["published"]["folder"])
    lists = sorted(folder.glob("teams/*/*_list.csv"))
    assert lists, "no team lists were published"
    teams = pl.read_parquet(next((home / "synthetic" / "batches").glob("b0000*/teams.parquet")))
    capacity = dict(teams.group_by("team_id").agg(pl.col("capacity").first()).iter_rows())
    opted_out: set[str] = set()
    for batch in (home / "synthetic" / "batches").iterdir():
        if (batch / "opt_outs.parquet").exists():
            opted_out |= set(pl.read_parquet(batch / "opt_outs.parquet")["person_id"].to_list())
    assert opted_out, "the synthetic population should contain opt-outs"
    for path in lists:
        frame = pl.read_csv(path, infer_schema=False)
        team_id = frame["team_id"][0]
        assert frame.height <= capacity[team_id]
        for column in ("run_id", "as_of", "model_versions", "data_batches"):
            assert frame[column].null_count() == 0
        assert not set(frame["person_id"].to_list()) & opted_out
    every_file = [p for p in folder.rglob("*") if p.is_file() and p.suffix in (".csv", ".html", ".json")]
    text = "\n".join(p.read_text(encoding="utf-8", errors="ignore") for p in every_file)
    assert not [pid for pid in opted_out if pid in text]


def test_no_listed_persons_reasons_contradict_their_direction(demo_run: tuple[dict[str, Any], Path]) -> None:
    """On the real pipeline's lists: every reason for being on a list raises the risk and states something in
    the record (never an absence such as "no emergency admission on record"); what lowers the risk is apart."""
    from openpyxl import load_workbook

    summary, _ = demo_run
    folder = Path(summary["score"]["published"]["folder"])
    checked = 0
    for path in sorted(folder.glob("teams/*/*_list.xlsx")):
        sheet = load_workbook(path, read_only=True)["Reasons"]
        rows = sheet.iter_rows(values_only=True)
        header = list(next(rows))
        at = {
            name: header.index(name)
            for name in (
                "Reason in plain words",
                "Effect",
                "Change in risk (percentage points)",
                "Contribution (log-odds)",
            )
        }
        for row in rows:
            phrase, effect = row[at["Reason in plain words"]], row[at["Effect"]]
            contribution = row[at["Contribution (log-odds)"]]
            if effect == "raises risk":
                assert contribution > 0 and row[at["Change in risk (percentage points)"]] >= 0, phrase
                assert not phrase.startswith(("no ", "not ")), phrase
            else:
                assert effect == "lowers risk" and contribution < 0, phrase
            checked += 1
        listed = pl.read_csv(path.with_name(path.name.replace(".xlsx", ".csv")), infer_schema=False)
        for reasons in listed["reasons"].drop_nulls():
            assert "lowers risk" not in reasons and not any(r.startswith(("no ", "not ")) for r in reasons.split("; "))
    assert checked > 0


def test_rerunning_the_score_is_idempotent(demo_run: tuple[dict[str, Any], Path]) -> None:
    from pipelines.flows import score

    summary, home = demo_run
    again = score(overrides={**SMALL_RUN, "home": str(home)})
    assert again["run_id"] == summary["score"]["run_id"]
    assert again["counts"] == summary["score"]["counts"]


def test_a_teams_reidentification_lookup_reaches_only_that_teams_list(
    demo_run: tuple[dict[str, Any], Path], tmp_path: Path
) -> None:
    from pipelines.flows import score

    summary, home = demo_run
    folder = Path(summary["score"]["published"]["folder"])
    lists = sorted(folder.glob("teams/*/*_list.csv"))
    entitled = pl.read_csv(lists[0], infer_schema=False)
    team_id = entitled["team_id"][0]
    lookup = tmp_path / "lookup.csv"
    entitled.select(
        "person_id", nhs_number=pl.lit("999") + pl.int_range(pl.len()).cast(pl.String), name=pl.lit("Named Person")
    ).write_csv(lookup)
    score(overrides={**SMALL_RUN, "home": str(home)}, reidentification={team_id: str(lookup)})
    for path in folder.glob("teams/*/*_list.csv"):
        frame = pl.read_csv(path, infer_schema=False)
        assert ("nhs_number" in frame.columns) == (frame["team_id"][0] == team_id), path.name
    assert "Named Person" not in (folder / "commissioners" / "summary.csv").read_text(encoding="utf-8")


def test_the_weekly_flow_skips_loaded_batches_waits_for_an_arriving_one_and_rescores(
    demo_run: tuple[dict[str, Any], Path], tmp_path: Path
) -> None:
    import shutil

    from pipelines.flows import weekly

    summary, home = demo_run
    batches = tmp_path / "batches"
    shutil.copytree(home / "synthetic" / "batches", batches)
    (batches / "b0900_week_arriving").mkdir()  # a delivery whose copy has not started: it waits, nothing crashes
    (batches / ".zz_staging.writing").mkdir()  # a writer's staging folder: never a batch
    (batches / "notes").mkdir()  # no manifest, no marker, not a batch name: not a batch, holds nothing back
    again = weekly(overrides={**SMALL_RUN, "home": str(home), "batches_dir": str(batches)})
    statuses = [(r["batch_id"], r["status"]) for r in again["ingest"]]
    loaded = [(d["batch_id"], "skipped_already_loaded") for d in summary["ingest"]]
    assert statuses == [*loaded, ("b0900_week_arriving", "waiting")]
    assert again["score"]["run_id"] == summary["score"]["run_id"]


def test_a_run_four_weeks_later_shows_who_rose_off_the_list(demo_run: tuple[dict[str, Any], Path]) -> None:
    from datetime import date, timedelta

    from pipelines.flows import score

    summary, home = demo_run
    first = date.fromisoformat(summary["score"]["as_of"])
    later = first + timedelta(weeks=4)
    overrides = {**SMALL_RUN, "home": str(home), "scoring": {"rising_threshold": 0.005}}
    scored = score(overrides=overrides, as_of=later.isoformat())
    folder = Path(scored["published"]["folder"])
    rising = pl.concat([pl.read_csv(p, try_parse_dates=True) for p in sorted(folder.glob("teams/*/*_rising_risk.csv"))])
    listed = pl.concat(
        [pl.read_csv(p, infer_schema=False).select("team_id", "person_id") for p in folder.glob("teams/*/*_list.csv")]
    )
    with duckdb.connect(str(home / "riskstrat.duckdb"), read_only=True) as con:
        opted_out = set(con.sql("SELECT person_id FROM opt_outs").pl()["person_id"].to_list())
    assert rising.height > 0
    assert (rising["earlier_as_of"] == first).all()
    assert ((rising["risk"] - rising["earlier_risk"]) >= 0.005).all()
    assert rising.join(listed, on=["team_id", "person_id"], how="semi").is_empty()
    assert not set(rising["person_id"].to_list()) & opted_out
    assert rising.group_by("team_id").agg(pl.col("rising_rank").max())["rising_rank"].max() <= 20


def test_a_week_scored_with_a_draw_at_the_margin_lists_the_drawn_and_keeps_the_draw_for_the_evaluation(
    demo_run: tuple[dict[str, Any], Path],
) -> None:
    """scoring.randomise_margin through the real score flow: who was drawn is stored (never published), the people
    offered are on their team's list and the others are not, and the evaluation reads the draw back (issue 12)."""
    from datetime import date, timedelta

    from pipelines.evaluate import warehouse_tables
    from pipelines.flows import score
    from pipelines.settings import load_settings

    summary, home = demo_run
    as_of = date.fromisoformat(summary["score"]["as_of"]) + timedelta(weeks=1)
    overrides = {**SMALL_RUN, "home": str(home), "scoring": {"randomise_margin": 5}}
    scored = score(overrides=overrides, as_of=as_of.isoformat())
    folder = Path(scored["published"]["folder"])
    listed = pl.concat(
        [pl.read_csv(p, infer_schema=False).select("team_id", "person_id") for p in folder.glob("teams/*/*_list.csv")]
    )
    draws = (
        warehouse_tables(load_settings(None, overrides))["list_draws"].collect().filter(pl.col("draw_date") == as_of)
    )
    teams = listed["team_id"].n_unique()
    assert draws.height == 2 * 5 * teams  # 5 places either side of each team's capacity
    assert draws.group_by("team_id").agg(pl.col("offered").sum())["offered"].to_list() == [5] * teams
    offered, deferred = draws.filter("offered"), draws.filter(~pl.col("offered"))
    assert offered.join(listed, on=["team_id", "person_id"], how="anti").is_empty()
    assert deferred.join(listed, on=["team_id", "person_id"], how="semi").is_empty()
    for path in folder.rglob("*.csv"):  # the draw itself is never published
        assert not {"offered", "list_rank"} & set(pl.read_csv(path, n_rows=0).columns), path.name
    again = score(overrides=overrides, as_of=as_of.isoformat())  # the same run again draws the same people
    redrawn = (
        warehouse_tables(load_settings(None, overrides))["list_draws"].collect().filter(pl.col("draw_date") == as_of)
    )
    assert again["run_id"] == scored["run_id"] and redrawn.sort(pl.all()).equals(draws.sort(pl.all()))


def test_two_trainings_of_the_same_database_give_identical_model_files_and_risk_scores(
    demo_run: tuple[dict[str, Any], Path], tmp_path: Path
) -> None:
    """Same database, same settings: byte-identical model files and the same risk_scores (issue 14)."""
    import hashlib
    import shutil

    from pipelines.scoring import score_population
    from pipelines.settings import load_settings
    from pipelines.training import train_all
    from pipelines.warehouse import store_scores

    _, home = demo_run
    truth = home / "synthetic" / "truth.parquet"
    runs = {}
    for name in ("first", "second"):
        run_home = tmp_path / name
        run_home.mkdir()
        shutil.copy(home / "riskstrat.duckdb", run_home / "riskstrat.duckdb")
        overrides = {**SMALL_RUN, "home": str(run_home)}
        overrides["training"] = {**SMALL_RUN["training"], "outcomes": ["emergency_admission"]}
        settings = load_settings(None, overrides)
        train_all(settings, truth)
        version = run_home / "registry" / "emergency_admission" / "v0001"
        files = {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(version.iterdir())
            if p.name in ("model.txt", "calibrator.json", "features.json", "settings.json", "reference.json")
        }
        store_scores(settings.db, score_population(settings))
        with duckdb.connect(str(settings.db), read_only=True) as con:
            scores = con.sql("SELECT * FROM risk_scores ORDER BY ALL").fetchall()
        runs[name] = (files, scores)
    (first_files, first_scores), (second_files, second_scores) = runs["first"], runs["second"]
    assert len(first_files) == 5 and first_files == second_files
    assert first_scores and first_scores == second_scores


# ------------------------------------------------------------------------------- observable weekly runs


def _in_prefect(flow_run_id: Any) -> dict[str, Any]:
    """What the Prefect API holds for a flow run: its name, its task runs' names, its artifacts and log lines."""
    from prefect import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()
    with get_client(sync_client=True) as client:
        return {
            "name": client.read_flow_run(flow_run_id).name,
            "tasks": {
                t.name
                for t in client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
            },
            "artifacts": {
                a.key: a
                for a in client.read_artifacts(
                    artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
                )
            },
            "logs": [
                (log.name, log.message)
                for log in client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
            ],
        }


def _retrain_runs() -> int:
    """Runs of the retrain deployment requested by a refit trigger."""
    from prefect import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName, FlowRunFilter, FlowRunFilterTags

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["riskstrat-retrain"])),
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=["refit-trigger"])),
        )
    return len(runs)


def _broken_week(batches: Path) -> str:
    """A week after the newest batch, with every A&E attendance of an unknown department type (all quarantined)."""
    from datetime import timedelta

    from data_contracts.batch import batches_in, read_manifest, write_batch

    newest = batches_in(batches)[-1]
    manifest = read_manifest(newest)
    assert manifest is not None and manifest.extract_date is not None
    extract = manifest.extract_date + timedelta(days=7)
    batch_id = f"b9999_week_{extract}"
    with write_batch(batches / batch_id, batch_id, extract, manifest.currency, "weekly") as writer:
        for f in manifest.files:
            if f.table == "ae_attendances":
                frame = pl.read_parquet(newest / f.name).with_columns(department_type=pl.lit("99"))
                writer.add_frame(f.table, frame, "parquet")
            else:
                writer.add_copy(newest / f.name, f.table, f.rows)
    return str(extract)


def test_a_weekly_run_is_named_logged_gated_monitored_and_summarised(
    demo_run: tuple[dict[str, Any], Path], tmp_path: Path
) -> None:
    from data_contracts.quality import DataQualityError
    from pipelines.flows import weekly

    summary, demo_home = demo_run
    home = tmp_path / "home"
    shutil.copytree(demo_home, home, ignore=shutil.ignore_patterns(".prefect", "outputs", "workspace"))
    batches = home / "synthetic" / "batches"
    overrides = {**SMALL_RUN, "home": str(home), "batches_dir": str(batches)}
    as_of = summary["score"]["as_of"]

    # Every batch already loaded: still gated, scored, monitored and summarised.
    state = weekly(overrides=overrides, return_state=True)
    result = state.result()
    seen = _in_prefect(state.state_details.flow_run_id)
    assert seen["name"] == f"weekly {as_of}"
    assert {f"data-quality gates as of {as_of}", f"score {as_of}", f"publish {as_of}", f"monitor {as_of}"} <= seen[
        "tasks"
    ]
    text = seen["artifacts"]["weekly-summary"].data
    assert "**Batches:** 0 loaded" in text and "No new rows: every batch was already loaded." in text
    assert f"| people scored | {result['score']['counts']['people_scored']:,} |" in text
    for outcome, version in result["score"]["model_versions"].items():
        assert f"| {outcome} | {version} |" in text
    assert {"weekly-outputs", "monitoring-report", "model-card-emergency-admission"} <= set(seen["artifacts"])
    assert Path(result["score"]["published"]["folder"]).as_uri() in seen["artifacts"]["weekly-outputs"].data
    # The run's first line already names it (weekly_started_name; Prefect names a run before its first line),
    # never by a random name; it is renamed to its as-of date once the ingest tells it.
    beginning = [message for _, message in seen["logs"] if message.startswith("Beginning flow run")]
    assert len(beginning) == 1, seen["logs"]
    assert re.fullmatch(r"Beginning flow run 'weekly \(started \d{4}-\d\d-\d\d\)' for flow 'weekly'", beginning[0])
    ours = [message for name, message in seen["logs"] if name.startswith("riskstrat")]
    assert any(m.startswith("scored people_scored") for m in ours), seen["logs"]
    assert any(m.startswith("data quality:") for m in ours), seen["logs"]
    with duckdb.connect(str(home / "riskstrat.duckdb"), read_only=True) as con:
        stored = con.execute("SELECT count(*) FROM monitoring_metrics WHERE as_of = ?", [as_of]).fetchall()[0][0]
    assert stored > 0 and Path(result["monitoring"]["report"]).exists()
    assert (home / "workspace" / "monitoring.json").exists()  # the workspace's monitoring page reads this copy
    ingest_runs = [t for t in seen["tasks"] if t.startswith("ingest ")]
    assert not ingest_runs  # the batches are ingested by the ingest subflow, named per batch there

    # A fully quarantined feed: under "fail" the run stops before scoring, loudly, with its summary.
    week = _broken_week(batches)
    failed = weekly(overrides={**overrides, "quality": {"on_error": "fail"}}, return_state=True)
    assert failed.is_failed()
    with pytest.raises(DataQualityError, match="ae_attendances quarantine rate"):
        failed.result()
    seen = _in_prefect(failed.state_details.flow_run_id)
    assert seen["name"] == f"weekly {week}"
    text = seen["artifacts"]["weekly-summary"].data
    assert "**Batches:** 1 loaded" in text and "| b9999_week_" in text and "| ae_attendances | " in text
    assert "Not run (stopped before scoring)." in text
    assert not (home / "outputs" / week).exists()

    # Under "flag" it scores, and every list states the errors. Drift thresholds set near zero make every top
    # feature an alert: the run requests a run of the retrain deployment.
    from pipelines.schedule import deployments
    from pipelines.settings import load_settings

    deployments(load_settings(None, overrides))[1].apply()
    drift_alarm = {"psi_alert": 1e-9}
    flagged = weekly(overrides={**overrides, "quality": {"on_error": "flag"}, "monitoring": drift_alarm})
    assert flagged["gates"]["status"] == "error" and flagged["score"]["as_of"] == week
    assert flagged["monitoring"]["alerts"] and flagged["monitoring"]["refit_requested"]
    assert _retrain_runs() == 1
    lists = sorted(Path(flagged["score"]["published"]["folder"]).glob("teams/*/*_list.csv"))
    assert lists
    for path in lists:
        assert "WARNING: data-quality errors" in pl.read_csv(path, infer_schema=False)["data_batches"][0]
