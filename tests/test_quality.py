"""Data-quality gates: each check's grading on small frames of counts, the decision and the policy, and the
gates on a real small population with a fully quarantined batch and a feed outage."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from data_contracts.outcomes import OutcomeSettings
from data_contracts.quality import (
    ERROR,
    PASS,
    WARN,
    DataQualityError,
    decide,
    freshness_checks,
    quarantine_checks,
    volume_checks,
)
from data_contracts.settings import DriftSettings, QualitySettings, SynthSettings
from data_contracts.synthetic import generate_population
from pipelines.gates import apply_policy, gate, stored_checks
from pipelines.ingest import ingest_batch

SETTINGS = QualitySettings(feeds=("gp_events", "ae_attendances"), volume_min_rows=10)


def _status(results: list, table: str, check: str) -> str:
    return next(r.status for r in results if r.table == table and r.check == check)


def test_quarantine_rate_passes_warns_and_errors_at_its_thresholds() -> None:
    counts = pl.DataFrame(
        {
            "table": ["gp_events", "ae_attendances", "persons"],
            "rows_read": [1000, 40, 10],
            "rows_quarantined": [10, 40, 10],
        }
    )
    results = quarantine_checks("b1", counts, SETTINGS)
    assert [r.table for r in results] == ["ae_attendances", "gp_events"]  # persons is not a checked feed
    assert _status(results, "gp_events", "quarantine_rate") == PASS  # 1% < 2%
    whole = next(r for r in results if r.table == "ae_attendances")
    assert whole.status == ERROR and "the whole file" in whole.message
    warned = quarantine_checks("b1", counts.with_columns(rows_quarantined=pl.Series([50, 0, 0])), SETTINGS)
    assert _status(warned, "gp_events", "quarantine_rate") == WARN  # 5%


def test_volume_flags_a_missing_feed_and_a_halved_one_but_needs_earlier_weeks() -> None:
    previous = [{"gp_events": 100, "ae_attendances": 20}, {"gp_events": 110, "ae_attendances": 22}]
    results = volume_checks("b3", {"gp_events": 45}, previous, SETTINGS)
    assert _status(results, "ae_attendances", "volume") == ERROR  # no file at all
    assert _status(results, "gp_events", "volume") == ERROR  # 45 of a median 105: below half
    assert (
        _status(volume_checks("b3", {"gp_events": 70, "ae_attendances": 21}, previous, SETTINGS), "gp_events", "volume")
        == WARN
    )
    assert volume_checks("b3", {"gp_events": 1}, previous[:1], SETTINGS) == []  # one earlier week is not enough
    small = replace(SETTINGS, volume_min_rows=50)
    assert [r.table for r in volume_checks("b3", {"gp_events": 100}, previous, small)] == ["gp_events"]


def test_freshness_grades_the_lag_from_the_latest_event_to_the_extract_date() -> None:
    latest = {"gp_events": date(2026, 10, 31), "ae_attendances": date(2026, 10, 10)}
    results = freshness_checks("b1", date(2026, 11, 1), latest, SETTINGS)
    assert _status(results, "gp_events", "freshness") == PASS
    assert _status(results, "ae_attendances", "freshness") == ERROR  # 22 days
    mid = freshness_checks("b1", date(2026, 11, 1), {"gp_events": date(2026, 10, 22)}, SETTINGS)
    assert mid[0].status == WARN and mid[0].value == 10


def test_an_error_stops_under_fail_and_is_stated_under_flag() -> None:
    counts = pl.DataFrame({"table": ["ae_attendances"], "rows_read": [40], "rows_quarantined": [40]})
    decision = decide(quarantine_checks("b1", counts, SETTINGS))
    assert decision.status == ERROR and decision.stale_tables == ["ae_attendances"]
    with pytest.raises(DataQualityError, match="ae_attendances"):
        apply_policy(decision, SETTINGS)
    statement = apply_policy(decision, replace(SETTINGS, on_error="flag"))
    assert statement is not None and "40 of 40 rows quarantined" in statement
    assert apply_policy(decide([]), SETTINGS) is None


def _load_all(tmp_path: Path, scenario: str) -> tuple[Path, list[str]]:
    synth = SynthSettings(
        people=2000, weekly_batches=5, truth_replicates=2, drift=DriftSettings(scenario=scenario, outage_weeks=2)
    )
    generated = generate_population(tmp_path / "synthetic", synth, OutcomeSettings(), 5)
    db = tmp_path / "db.duckdb"
    ids = [ingest_batch(db, b).batch_id for b in generated.batch_dirs]
    return db, ids


def test_gates_on_a_fully_quarantined_batch_and_a_feed_outage(tmp_path: Path) -> None:
    # A small population's weekly volumes are noisy: only a missing feed (0 rows) counts as an error here.
    settings = QualitySettings(volume_min_rows=10, volume_warn_ratio=0.25, volume_error_ratio=0.01)
    db, ids = _load_all(tmp_path / "q", "quarantined_batch")
    decisions = {b: gate(db, [b], settings) for b in ids[1:]}
    # The scenario breaks the first weekly batch from halfway (batch 3 of 5): every A&E row quarantined.
    broken = decisions[ids[3]]
    assert [(r.table, r.check) for r in broken.errors] == [("ae_attendances", "quarantine_rate")]
    assert all(d.status != ERROR for b, d in decisions.items() if b != ids[3])
    stored = stored_checks(db)
    assert set(stored["batch_id"]) == set(ids[1:])
    assert stored.filter((pl.col("batch_id") == ids[3]) & (pl.col("status") == ERROR)).height == 1

    db, ids = _load_all(tmp_path / "o", "feed_outage")
    missing = gate(db, [ids[3]], settings)
    assert ("community_contacts", "volume") in [(r.table, r.check) for r in missing.errors]
    # The newest batch is always judged: re-running with nothing new loaded still sees the newest batch.
    assert gate(db, [], settings).errors == gate(db, [ids[-1]], settings).errors
