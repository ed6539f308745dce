"""The evaluation of case management around the statistics: the frozen plan, the list cut's draw at the margin,
the outcome metrics and their control charts, and a whole evaluation on a small synthetic warehouse."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest

from data_contracts.evaluation_plan import DEFAULT_PLAN, PlanError
from data_contracts.synthetic import generate_population
from features.inputs import tables_from_rows
from models.cohorts import team_lists, team_lists_drawn
from models.outcome_metrics import SpcRules, control_limits, monthly_metrics
from pipelines.evaluate import check_plan, evaluate, freeze_plan
from pipelines.ingest import ingest_batch
from pipelines.settings import load_settings
from pipelines.warehouse import connect, ensure_schema

RULES = SpcRules(sigma=3, shift_points=7, trend_points=6, source="test", year="2019")


def _settings(home: Path, **synth: object):
    return load_settings(None, {"home": str(home), "synth": synth} if synth else {"home": str(home)})


def _plan_file(folder: Path, text: str | None = None) -> Path:
    path = folder / "evaluation.toml"
    path.write_text(text if text is not None else DEFAULT_PLAN.read_text())
    return path


def test_a_plan_changed_after_freezing_is_refused_unless_declared_a_new_plan(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "var")
    settings.home.mkdir(parents=True)
    with duckdb.connect(str(settings.db)) as con:
        ensure_schema(con)
    path = _plan_file(tmp_path)
    frozen = freeze_plan(settings, path)
    assert check_plan(settings, path).frozen == frozen and not check_plan(settings, path).changed_since_frozen
    path.write_text(path.read_text() + "\n# a comment changes nothing\n")
    assert freeze_plan(settings, path) == frozen  # the same plan: freezing again is a no-op

    path.write_text(path.read_text().replace("follow_up_months = 12", "follow_up_months = 6"))
    assert check_plan(settings, path).changed_since_frozen
    with pytest.raises(PlanError, match="a changed plan is a new plan"):
        freeze_plan(settings, path)
    with pytest.raises(PlanError, match="changed since it was frozen"):
        evaluate(settings, path)

    path.write_text(path.read_text().replace('id = "case-management-2026"', 'id = "cm-2026-b"\nreplaces = "nope"'))
    with pytest.raises(PlanError, match="no such frozen plan"):
        freeze_plan(settings, path)
    path.write_text(path.read_text().replace('replaces = "nope"', 'replaces = "case-management-2026"'))
    renewed = freeze_plan(settings, path)
    assert renewed.plan_id == "cm-2026-b" and renewed.replaces == "case-management-2026"
    with connect(settings.db) as con:
        assert con.execute("SELECT count(*) FROM evaluation_plans").fetchone() == (2,)


def test_an_unfrozen_plan_is_not_evaluated(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "var")
    with pytest.raises(PlanError, match="not frozen"):
        evaluate(settings, _plan_file(tmp_path))


def test_the_draw_at_the_margin_lists_half_of_those_around_capacity_and_is_seeded() -> None:
    teams = pl.DataFrame({"gp_practice": ["P0"], "team_id": ["T1"], "team_name": ["North"], "capacity": [10]})
    scored = pl.DataFrame(
        {"person_id": [f"p{i:03d}" for i in range(50)], "risk": [1 - i / 50 for i in range(50)], "gp_practice": "P0"}
    )
    lists, draws = team_lists_drawn(scored, teams, "risk", margin=3, seed=7)
    assert lists.height == 10 and lists["rank"].to_list() == list(range(1, 11))
    assert lists["risk"].is_sorted(descending=True)
    assert set(lists["person_id"][:7]) == {f"p{i:03d}" for i in range(7)}  # ranks 1-7 are listed directly
    assert sorted(draws["list_rank"].to_list()) == list(range(8, 14)) and draws["offered"].sum() == 3
    assert set(draws.filter("offered")["person_id"]) == set(lists["person_id"][7:])
    again, redrawn = team_lists_drawn(scored, teams, "risk", margin=3, seed=7)
    assert again.equals(lists) and redrawn.equals(draws)
    off, none = team_lists_drawn(scored, teams, "risk", margin=0, seed=7)
    assert off.equals(team_lists(scored, teams, "risk")) and none.height == 0


def _series(values: list[float], denominator: float = 1000.0) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "month": [date(2024 + (m // 12), m % 12 + 1, 1) for m in range(len(values))],
            "numerator": [v * denominator / 1000 for v in values],
            "denominator": [denominator] * len(values),
            "per": [1000] * len(values),
        }
    )


def test_the_people_needed_give_the_plans_power_for_the_matched_and_the_randomised_comparison() -> None:
    from data_contracts.evaluation_plan import load_plan
    from models.impact.estimate import people_needed, power_with

    plan, _ = load_plan()
    for effect, ratio in ((None, None), (0.2 * 0.45, 1.0)):  # matched (3 comparisons each); a draw, 45% take up
        needed = people_needed(0.8, 2.0, plan, effect=effect, ratio=ratio)
        assert power_with(round(needed), 0.8, 2.0, plan, effect=effect, ratio=ratio) == pytest.approx(0.8, abs=0.01)
    # diluted by uptake, the same 20% effect needs far more people offered than taken on (7.4 times here)
    assert people_needed(0.8, 2.0, plan, effect=0.09, ratio=1.0) > 7 * people_needed(0.8, 2.0, plan)
    assert power_with(100, 0.8, 2.0, plan, effect=0.0) == 0.0


def test_control_chart_flags_a_point_outside_the_limits_a_shift_and_a_trend_only() -> None:
    steady = control_limits(_series([10, 11, 9, 10, 12, 8, 10, 11, 9, 10, 11, 9]), "u", RULES)
    assert set(steady["signal"]) == {""}
    assert steady["centre"][0] == pytest.approx(10.0)
    assert steady["upper"][0] == pytest.approx(1000 * (0.01 + 3 * (0.01 / 1000) ** 0.5))  # u + 3 sqrt(u / n)
    spike = control_limits(_series([14, 8, 14, 8, 40, 8, 14, 8, 14, 8, 14, 8]), "u", RULES)
    assert spike["signal"].to_list()[4] == "outside" and spike["signal"].to_list().count("") == 11
    shifted = control_limits(_series([9, 9.5, 9, 9.5, 9, 11, 11.5, 11, 11.5, 11, 11.5, 11]), "u", RULES)
    assert [("shift" in s) for s in shifted["signal"]] == [False] * 5 + [True] * 7
    rising = control_limits(_series([10, 9, 10, 9, 10, 10.2, 10.4, 10.6, 10.8, 11.0, 9, 10]), "u", RULES)
    # 9 -> 10 -> 10.2 -> ... -> 11.0: seven points each above the one before (a trend needs six).
    assert [("trend" in s) for s in rising["signal"]] == [False] * 3 + [True] * 7 + [False] * 2


def test_outcome_metrics_count_delayed_days_in_their_month_and_who_is_at_home_91_days_after_reablement() -> None:
    """Ann (80) waits from 30 Jan to 3 Feb: two delayed days in January, two in February. Ann goes home with
    reablement and is at home 91 days later; Bob (85) with reablement is in a care home by then."""
    persons = [
        {"person_id": "ann", "birth_year": 1944, "birth_month": 1, "sex": "2", "gp_practice": "P1"},
        {"person_id": "bob", "birth_year": 1939, "birth_month": 1, "sex": "1", "gp_practice": "P1"},
        {"person_id": "cyd", "birth_year": 1990, "birth_month": 1, "sex": "1", "gp_practice": "P1"},
    ]
    spells = [
        {
            "spell_id": "s1",
            "person_id": "ann",
            "admission_date": date(2025, 1, 20),
            "discharge_date": date(2025, 2, 3),
            "discharge_ready_date": date(2025, 1, 30),
            "admission_method": "21",
            "discharge_method": "1",
        },
        {
            "spell_id": "s2",
            "person_id": "bob",
            "admission_date": date(2025, 2, 1),
            "discharge_date": date(2025, 2, 10),
            "admission_method": "21",
            "discharge_method": "1",
        },
    ]

    def service(pid: str, kind: str, start: date, end: date | None) -> dict[str, object]:
        return {
            "event_id": f"{pid}-{kind[:6]}",
            "person_id": pid,
            "la_code": "E1",
            "event_type": "Service",
            "event_start_date": start,
            "event_end_date": end,
            "service_type": kind,
        }

    asc = [
        service("ann", "Short term support: ST-Max", date(2025, 2, 3), date(2025, 3, 17)),
        service("bob", "Short term support: ST-Max", date(2025, 2, 11), date(2025, 3, 20)),
        service("bob", "Long term support: Nursing care", date(2025, 4, 1), None),
    ]
    tables = tables_from_rows(
        {
            "persons": persons,
            "teams": [{"gp_practice": "P1", "team_id": "T1", "team_name": "T", "capacity": 5}],
            "apc_spells": spells,
            "asc_events": asc,
        }
    )
    metrics = monthly_metrics(tables, date(2025, 1, 1), date(2025, 7, 1)).filter(pl.col("level") == "population")

    def cell(metric: str, month: date) -> tuple[float, float]:
        row = metrics.filter((pl.col("metric") == metric) & (pl.col("month") == month))
        return row["numerator"][0], row["denominator"][0]

    assert cell("delayed_discharge_days", date(2025, 1, 1)) == (2.0, 3.0)
    assert cell("delayed_discharge_days", date(2025, 2, 1)) == (2.0, 3.0)
    assert cell("emergency_admissions", date(2025, 2, 1)) == (1.0, 3.0)
    assert cell("permanent_care_home_admissions_65", date(2025, 4, 1)) == (1.0, 2.0)  # Cyd is under 65
    assert cell("reablement_at_home_91_days", date(2025, 2, 1)) == (1.0, 2.0)  # Ann at home, Bob in a care home
    assert metrics.filter(pl.col("metric") == "reablement_at_home_91_days")["month"].max() < date(2025, 4, 1)


def test_a_whole_evaluation_on_a_synthetic_warehouse_states_its_plan(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path / "var",
        people=3000,
        history_years=3,
        truth_replicates=1,
        case_management={"enabled": True, "effect": 0.2, "margin": 3},
    )
    generated = generate_population(settings.home / "synthetic", settings.synth, settings.outcomes, settings.seed)
    for batch in generated.batch_dirs:
        ingest_batch(settings.db, batch)
    quick = DEFAULT_PLAN.read_text().replace("bootstrap_replicates = 500", "bootstrap_replicates = 60")
    path = _plan_file(tmp_path, quick)
    check = check_plan(settings, path)
    assert check.power["people_needed"] > 0 and 0 <= check.power["power_now"] <= 1
    freeze_plan(settings, path)
    report = evaluate(settings, path, settings.home / "synthetic" / "list_draws.parquet")
    payload = json.loads((report.folder / "evaluation.json").read_text())
    assert payload["plan"]["hash"] == check.hash and payload["people"]["matched"] > 0
    methods = {e["method"] for e in payload["estimates"]}
    assert methods == {"naive_before_after", "matched_did", "randomised_margin"}
    html = (report.folder / "index.html").read_text()
    assert check.hash in html and "not an effect" in html and "<svg" in html
    drawn = next(e for e in payload["estimates"] if e["method"] == "randomised_margin")
    assert 0 <= drawn["power"] < 0.8 and drawn["people_offered_needed"] > drawn["people"]
    assert "Underpowered" in drawn["note"] and "Underpowered" in html  # a draw of 3 places says what it cannot show
    summary = report.summary()  # what the CLI and the Prefect artifact print
    assert [e["power"] for e in summary["estimates"] if "power" in e] == [drawn["power"]] and summary[
        "plan_power"
    ] == 0.8
    published = pl.read_csv(report.folder / "outcome_metrics.csv", infer_schema=False)
    small = published.filter(pl.col("numerator") == "*")
    assert small.height and small["value"].is_null().all()  # no rate where the count is suppressed
    with connect(settings.db) as con:
        stored = con.execute("SELECT DISTINCT plan_hash FROM evaluation_results").fetchall()
    assert stored == [(check.hash,)]
    shutil.rmtree(settings.home / "synthetic")


def test_cli_checks_the_plan_and_refuses_a_changed_frozen_plan(workdir: Path) -> None:
    from typer.testing import CliRunner

    from pipelines.cli import app

    runner = CliRunner()
    home = workdir / "var"
    home.mkdir()
    with duckdb.connect(str(home / "riskstrat.duckdb")) as con:
        ensure_schema(con)
    path = _plan_file(workdir)
    checked = runner.invoke(app, ["evaluate", "plan", "--home", str(home)])
    assert checked.exit_code == 0, checked.output
    assert "valid, hash" in checked.output and "not frozen yet" in checked.output  # ./evaluation.toml is read
    assert runner.invoke(app, ["evaluate", "plan", "--freeze", "--home", str(home)]).exit_code == 0
    path.write_text(path.read_text().replace("minimum_effect = 0.2", "minimum_effect = 0.3"))
    refused = runner.invoke(app, ["evaluate", "plan", "--freeze", "--home", str(home)])
    # A domain error: the CLI's boundary (riskstrat's __call__) prints it as one line with exit code 2.
    assert isinstance(refused.exception, PlanError) and "a changed plan is a new plan" in str(refused.exception)
