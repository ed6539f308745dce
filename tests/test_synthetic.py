"""The synthetic linked population: layout, contract columns and types, determinism, realism and the truth.

One clean Parquet population and one dirty CSV population are generated once per module (a few seconds).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import roc_auc_score

from data_contracts.dates import add_months
from data_contracts.outcomes import OutcomeSettings
from data_contracts.reference import codelist
from data_contracts.settings import IngestSettings, SynthSettings
from data_contracts.synthetic import SynthResult, generate_population
from data_contracts.synthetic.dirty import CLASSES
from data_contracts.synthetic.engine import EMERGENCY_VIA_AE_SHARE
from data_contracts.synthetic.truth import frequent_crossing_probability
from data_contracts.tables import ACTIVITY_TABLES, COSTED_EVENT_DATES, TABLES

SEED = 20_261_101
SETTINGS = SynthSettings(people=3_000, weekly_batches=2, truth_replicates=32)
DIRTY_SETTINGS = SynthSettings(people=1_500, weekly_batches=2, truth_replicates=8, dirty_rate=0.01, file_format="csv")
EMERGENCY_METHODS = codelist("admission_method").codes_in_group("emergency")
COSTED = COSTED_EVENT_DATES


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> SynthResult:
    return generate_population(tmp_path_factory.mktemp("clean"), SETTINGS, OutcomeSettings(), SEED)


@pytest.fixture(scope="module")
def dirty(tmp_path_factory: pytest.TempPathFactory) -> SynthResult:
    return generate_population(tmp_path_factory.mktemp("dirty"), DIRTY_SETTINGS, OutcomeSettings(), SEED)


def read_table(result: SynthResult, table: str) -> pl.DataFrame:
    """A table over all batches, a later batch's row replacing an earlier one with the same key."""
    frames = [
        pl.read_parquet(path).with_columns(pl.lit(i).alias("_batch"))
        for i, folder in enumerate(result.batch_dirs)
        if (path := folder / f"{table}.parquet").exists()
    ]
    combined = pl.concat(frames)
    return combined.unique(list(TABLES[table].grain), keep="last", maintain_order=True).drop("_batch")


def manifest(folder: Path) -> dict:
    return json.loads((folder / "batch.json").read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------- layout


def test_batch_layout_and_manifest(clean: SynthResult) -> None:
    names = [folder.name for folder in clean.batch_dirs]
    assert names == sorted(names)
    assert names[0] == "b0000_history" and len(names) == 1 + SETTINGS.weekly_batches
    extract_dates = []
    for i, folder in enumerate(clean.batch_dirs):
        meta = manifest(folder)
        assert meta["batch_id"] == folder.name
        assert meta["kind"] == ("history" if i == 0 else "weekly")
        assert meta["seed"] == SEED and meta["people"] == SETTINGS.people
        assert "planted" not in meta
        extract_dates.append(date.fromisoformat(meta["extract_date"]))
        if i:
            assert folder.name == f"b{i:04d}_week_{meta['extract_date']}"
        assert sorted(p.name for p in folder.glob("*.parquet")) == sorted(f"{t}.parquet" for t in TABLES)
    assert extract_dates[-1] == SETTINGS.end_date
    assert all((b - a).days == 7 for a, b in itertools.pairwise(extract_dates))
    assert clean.eval_index_date == add_months(SETTINGS.end_date, -12)
    assert clean.score_index_date == SETTINGS.end_date
    assert set(clean.row_counts) == set(TABLES) and clean.row_counts["persons"] >= SETTINGS.people


def test_files_have_exactly_the_contract_columns_and_types(clean: SynthResult, dirty: SynthResult) -> None:
    for folder in clean.batch_dirs:
        for name, table in TABLES.items():
            frame = pl.read_parquet(folder / f"{name}.parquet")
            assert frame.columns == [c.name for c in table.input_columns], (folder.name, name)
            for column in table.input_columns:
                assert frame.schema[column.name] == column.polars_type, (folder.name, name, column.name)
    for folder in dirty.batch_dirs:
        for name, table in TABLES.items():
            header = (folder / f"{name}.csv").read_text(encoding="utf-8").splitlines()[0]
            assert header.split(",") == [c.name for c in table.input_columns]


def test_clean_rows_respect_the_contract(clean: SynthResult) -> None:
    """No date after the batch's extract date, none before the birth month, codes in their lists, grain unique."""
    persons = read_table(clean, "persons").select(
        "person_id", pl.date(pl.col("birth_year"), pl.col("birth_month"), 1).alias("birth_floor")
    )
    for folder in clean.batch_dirs:
        extract = date.fromisoformat(manifest(folder)["extract_date"])
        for name, table in TABLES.items():
            frame = pl.read_parquet(folder / f"{name}.parquet")
            assert frame.select(table.grain).is_duplicated().sum() == 0, (folder.name, name)
            for column in table.input_columns:
                values = frame[column.name]
                if column.required:
                    assert values.null_count() == 0, (name, column.name)
                if column.codelist:
                    assert set(values.drop_nulls()) <= codelist(column.codelist).accepted(), (name, column.name)
                if column.pattern:
                    assert values.drop_nulls().str.contains(column.pattern).all(), (name, column.name)
                if column.minimum is not None and values.dtype != pl.String:
                    assert (values.drop_nulls() >= column.minimum).all(), (name, column.name)
                if column.event_date:
                    assert (values.drop_nulls() <= extract).all(), (folder.name, name, column.name)
            dates = [c.name for c in table.input_columns if c.event_date]
            if table.person_linked and dates:
                joined = frame.join(persons, on="person_id", how="left")
                assert joined["birth_floor"].null_count() == 0, name  # every row links to a person
                for column in dates:
                    assert (joined.drop_nulls(column)[column] >= joined.drop_nulls(column)["birth_floor"]).all()
            for rule in table.order_rules:
                both = frame.drop_nulls([rule.earlier, rule.later])
                assert (both[rule.later] >= both[rule.earlier]).all(), (name, rule.reason)


def test_person_ids_are_pseudonymous_and_practices_form_teams(clean: SynthResult) -> None:
    persons = read_table(clean, "persons")
    assert persons.height == SETTINGS.people
    assert persons["person_id"].str.contains(r"^[0-9a-f]{16}$").all()
    as_numbers = np.sort([int(x, 16) for x in persons["person_id"]])
    assert len(set(np.diff(as_numbers)[:50])) > 1  # hashes, not a counter
    teams = pl.read_parquet(clean.batch_dirs[0] / "teams.parquet")
    assert set(persons["gp_practice"]) <= set(teams["gp_practice"])
    assert (teams["capacity"] >= 5).all()
    assert set(persons["sex"]) <= {"1", "2", "9"} and persons["imd_decile"].is_between(1, 10).all()


def test_no_activity_after_death(clean: SynthResult) -> None:
    deaths = read_table(clean, "persons").select("person_id", "date_of_death").drop_nulls()
    assert deaths.height > 0
    for name, column in COSTED.items():
        late = read_table(clean, name).join(deaths, on="person_id").filter(pl.col(column) > pl.col("date_of_death"))
        assert late.height == 0, name


# ---------------------------------------------------------------------------------------------- determinism


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.*"))}


def test_same_seed_same_files_other_seed_other_files(tmp_path: Path) -> None:
    small = replace(SETTINGS, people=800, truth_replicates=8)
    generate_population(tmp_path / "a", small, OutcomeSettings(), seed=5)
    generate_population(tmp_path / "b", small, OutcomeSettings(), seed=5)
    generate_population(tmp_path / "c", small, OutcomeSettings(), seed=6)
    first, again, other = (_digests(tmp_path / x) for x in "abc")
    assert first == again
    assert first.keys() == other.keys()
    for name in ("truth.parquet", "batches/b0000_history/persons.parquet", "batches/b0000_history/gp_events.parquet"):
        assert first[name] != other[name], name
    # A rerun into the same folder replaces the batches cleanly.
    generate_population(tmp_path / "a", small, OutcomeSettings(), seed=5)
    assert _digests(tmp_path / "a") == first


# ---------------------------------------------------------------------------------------------- realism


def test_condition_prevalence_rises_with_age(clean: SynthResult) -> None:
    persons = read_table(clean, "persons").with_columns((2026 - pl.col("birth_year")).alias("age"))
    counts = read_table(clean, "conditions").group_by("person_id").len("conditions")
    by_band = (
        persons.join(counts, on="person_id", how="left")
        .with_columns(
            pl.col("conditions").fill_null(0), pl.sum_horizontal(pl.col("age") >= b for b in (40, 65, 80)).alias("band")
        )
        .group_by("band")
        .agg((pl.col("conditions") > 0).mean().alias("any"), pl.col("conditions").mean().alias("mean"))
        .sort("band")
    )
    assert by_band["any"].is_sorted() and by_band["mean"].is_sorted()
    assert by_band["any"][-1] > 0.75 > 0.3 > by_band["any"][0]


def test_opt_out_share_matches_the_setting(clean: SynthResult) -> None:
    opt_outs = read_table(clean, "opt_outs")
    assert opt_outs["person_id"].n_unique() == round(SETTINGS.opt_out_rate * SETTINGS.people)
    assert set(opt_outs["opt_out_type"]) == {"national_data_opt_out", "gp_type_1"}
    weekly = [pl.read_parquet(folder / "opt_outs.parquet").height for folder in clean.batch_dirs[1:]]
    assert all(n >= 1 for n in weekly)  # a few arrive in weekly batches


def test_activity_volumes_are_plausible(clean: SynthResult) -> None:
    years = SETTINGS.history_years
    spells = read_table(clean, "apc_spells")
    emergency = spells.filter(pl.col("admission_method").is_in(EMERGENCY_METHODS))
    per_person_year = emergency.height / SETTINGS.people / years
    assert 0.06 < per_person_year < 0.15
    last_year = emergency.filter(pl.col("admission_date") >= clean.eval_index_date)
    assert 0.05 < last_year["person_id"].n_unique() / SETTINGS.people < 0.11
    assert 3 < read_table(clean, "gp_events").height / SETTINGS.people / years < 7
    assert 5 < read_table(clean, "prescriptions").height / SETTINGS.people / years < 11
    asc = read_table(clean, "asc_events")
    assert {"Request", "Assessment", "Service", "Review"} <= set(asc["event_type"])
    legacy = set(codelist("asc_service_type").aliases)
    assert asc["service_type"].is_in(sorted(legacy)).sum() > 0  # Release 1 spellings appear


def test_regression_to_the_mean(clean: SynthResult) -> None:
    costs = pl.concat(
        read_table(clean, name).select("person_id", pl.col(column).alias("day"), pl.col("cost").fill_null(0.0))
        for name, column in COSTED.items()
    )
    top = max(1, SETTINGS.people // 100)

    def top_people(start: date) -> set[str]:
        in_year = costs.filter((pl.col("day") >= start) & (pl.col("day") < add_months(start, 12)))
        totals = in_year.group_by("person_id").agg(pl.col("cost").sum()).sort(["cost", "person_id"], descending=True)
        return set(totals.head(top)["person_id"])

    earlier, later = top_people(add_months(clean.eval_index_date, -12)), top_people(clean.eval_index_date)
    assert len(earlier & later) / top < 0.5


# ---------------------------------------------------------------------------------------------- truth


def test_truth_file_shape(clean: SynthResult) -> None:
    truth = pl.read_parquet(clean.truth_path)
    assert truth.schema == pl.Schema(
        {
            "person_id": pl.String,
            "index_date": pl.Date,
            "outcome": pl.String,
            "probability": pl.Float64,
            "realised": pl.Boolean,
        }
    )
    assert set(truth["index_date"]) == {clean.eval_index_date, clean.score_index_date}
    assert set(truth["outcome"]) == {
        "emergency_admission",
        "high_cost",
        "frequent_user",
        "care_home_admission",
        "unplanned_care",
    }
    assert truth["probability"].is_between(0, 1).all()
    assert truth.select("person_id", "index_date", "outcome").is_duplicated().sum() == 0
    high_cost = truth.filter(pl.col("outcome") == "high_cost")
    assert high_cost.group_by("index_date").agg(pl.col("realised").mean())["realised"].is_between(0.04, 0.07).all()


def test_realised_emergency_admission_matches_the_published_data(clean: SynthResult) -> None:
    index, horizon_end = clean.eval_index_date, add_months(clean.eval_index_date, 12)
    persons = read_table(clean, "persons")
    eligible = (
        persons.filter(
            (pl.date(pl.col("birth_year"), pl.col("birth_month"), 1) < index)
            & (pl.col("date_of_death").is_null() | (pl.col("date_of_death") >= index))
        )
        .join(read_table(clean, "opt_outs"), on="person_id", how="anti")
        .select("person_id")
    )
    admitted = (
        read_table(clean, "apc_spells")
        .filter(pl.col("admission_method").is_in(EMERGENCY_METHODS))
        .filter((pl.col("admission_date") >= index) & (pl.col("admission_date") < horizon_end))
        .select("person_id")
        .unique()
        .with_columns(pl.lit(True).alias("published"))
    )
    truth = pl.read_parquet(clean.truth_path).filter(
        (pl.col("index_date") == index) & (pl.col("outcome") == "emergency_admission")
    )
    assert truth.height == eligible.height
    compared = truth.join(eligible, on="person_id", how="inner").join(admitted, on="person_id", how="left")
    assert compared.height == eligible.height
    assert (compared["realised"] == compared["published"].fill_null(False)).all()


@pytest.mark.parametrize(
    ("emergencies_before", "ae_before", "emergency_rate", "ae_only_rate"),
    [(0, 0, 0.3, 0.5), (2, 0, 0.2, 0.1), (0, 4, 0.05, 0.2), (1, 3, 0.8, 1.2), (3, 0, 0.5, 0.5), (0, 0, 0.0, 0.0)],
)
def test_frequent_crossing_probability_matches_simulated_months(
    emergencies_before: int, ae_before: int, emergency_rate: float, ae_only_rate: float
) -> None:
    """The closed form the truth averages equals the share of simulated months (drawn as the engine draws them)
    that take the person over a frequent-user threshold."""
    rng = np.random.default_rng(7)
    draws = 400_000
    emergencies = rng.poisson(emergency_rate, draws)
    via_ae = rng.binomial(emergencies, EMERGENCY_VIA_AE_SHARE)
    ae_visits = rng.poisson(ae_only_rate, draws) + via_ae
    outcome = OutcomeSettings()
    simulated = np.mean(
        (emergencies_before + emergencies >= outcome.frequent_emergency_admissions)
        | (ae_before + ae_visits >= outcome.frequent_ae_attendances)
    )
    already = emergencies_before >= outcome.frequent_emergency_admissions
    closed_form = frequent_crossing_probability(
        np.array([emergencies_before]),
        np.array([ae_before]),
        np.array([emergency_rate]),
        np.array([ae_only_rate]),
        outcome,
    )[0]
    assert closed_form == pytest.approx(0.0 if already else simulated, abs=0.004)


def test_true_probabilities_agree_with_realised_rates_for_every_outcome(clean: SynthResult) -> None:
    """Calibration in the large of the (Rao-Blackwellised) truth, outcome by outcome, within 4 standard errors."""
    truth = pl.read_parquet(clean.truth_path)
    for (outcome,), rows in truth.group_by("outcome"):
        realised = rows["realised"].cast(pl.Float64)
        standard_error = max(float(np.sqrt(realised.mean() * (1 - realised.mean()) / rows.height)), 1e-3)
        assert abs(rows["probability"].mean() - realised.mean()) < 4 * standard_error, outcome


def test_true_probabilities_are_calibrated_and_discriminate(clean: SynthResult) -> None:
    truth = pl.read_parquet(clean.truth_path).filter(pl.col("outcome") == "emergency_admission")
    both = truth["realised"].to_numpy()
    assert abs(truth["probability"].mean() - both.mean()) < 0.02
    for index_date in (clean.eval_index_date, clean.score_index_date):
        one = truth.filter(pl.col("index_date") == index_date)
        auc = roc_auc_score(one["realised"].to_numpy(), one["probability"].to_numpy())
        assert 0.65 < auc < 0.95, (index_date, auc)


# ---------------------------------------------------------------------------------------------- dirty


def test_dirty_mode_plants_every_class_in_every_batch(dirty: SynthResult) -> None:
    for folder in dirty.batch_dirs:
        planted = manifest(folder)["planted"]
        assert set(planted) == set(CLASSES), folder.name
        assert all(count > 0 for count in planted.values()), (folder.name, planted)
        by_table = manifest(folder)["planted_by_table"]
        assert set(by_table) <= {"persons", *ACTIVITY_TABLES}


def test_ingest_quarantines_exactly_the_planted_rows(dirty: SynthResult) -> None:
    from pipelines.ingest import ingest_batch

    reported_as = {"negative_cost": "out_of_range"}  # the contract checks a minimum
    db = dirty.truth_path.parent / "check.duckdb"
    for folder in dirty.batch_dirs:
        report = ingest_batch(db, folder, IngestSettings())
        for table, counts in manifest(folder)["planted_by_table"].items():
            expected = {reported_as.get(k, k): v for k, v in counts.items() if v}
            found = {reason: n for (name, reason), n in report.quarantine_reasons.items() if name == table}
            assert found == expected, (folder.name, table)


def test_dirty_mode_leaves_the_clean_rows_alone(dirty: SynthResult) -> None:
    """Planted rows are extra rows: removing them (by their marked keys) leaves the rows the truth was
    built from, so the truth still agrees with the published data."""
    spells = pl.read_csv(dirty.batch_dirs[0] / "apc_spells.csv", infer_schema=False)
    planted = spells.filter(pl.col("spell_id").str.contains("X"))
    counts = manifest(dirty.batch_dirs[0])["planted_by_table"]["apc_spells"]
    assert planted.height == sum(counts.values())
    assert spells.filter(~pl.col("spell_id").str.contains("X"))["spell_id"].str.contains(r"^S\d+$").all()
