"""Data-quality gates: checks of a loaded batch against declared thresholds, in the manner of dbt tests (each
check passes, warns or errors; an error stops the weekly run or is stated on every output, per a setting).

Per feed (a dated contract table) and batch:

- `quarantine_rate`: rows quarantined / rows read, against a warn and an error rate (a batch whose feed is
  entirely quarantined is an error at any setting below 1);
- `volume`: rows read against the median of the previous weekly batches (the first batch loaded is the
  history load and never a baseline): no file while earlier weeks had one is a missing feed (error); fewer
  than a share of the usual rows warns or errors (a feed halved);
- `freshness`: days from the latest event date loaded for the feed to the batch's extract date.

Pure functions over small frames of counts; `pipelines.gates` reads the warehouse, stores the results
(`quality_checks`) and applies the decision. Counts only: no person-level value enters a result.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from statistics import median

import polars as pl

from data_contracts.errors import DomainError
from data_contracts.settings import QualitySettings

PASS, WARN, ERROR = "pass", "warn", "error"
_RANK = {PASS: 0, WARN: 1, ERROR: 2}
STALE_FEED_POLICIES = ("fail", "flag")


@dataclass(frozen=True)
class CheckResult:
    batch_id: str
    table: str
    check: str  # quarantine_rate | volume | freshness
    status: str  # pass | warn | error
    value: float | None
    threshold: float | None
    message: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


CHECK_SCHEMA: dict[str, pl.DataType] = {
    "batch_id": pl.String(),
    "table": pl.String(),
    "check": pl.String(),
    "status": pl.String(),
    "value": pl.Float64(),
    "threshold": pl.Float64(),
    "message": pl.String(),
}


def results_frame(results: list[CheckResult]) -> pl.DataFrame:
    return pl.DataFrame([r.to_dict() for r in results], schema=CHECK_SCHEMA)


def _graded(value: float, warn: float, error: float, higher_is_worse: bool = True) -> tuple[str, float | None]:
    """Status and the threshold it crossed (None when it passed)."""
    if higher_is_worse:
        if value >= error:
            return ERROR, error
        return (WARN, warn) if value >= warn else (PASS, None)
    if value <= error:
        return ERROR, error
    return (WARN, warn) if value <= warn else (PASS, None)


def quarantine_checks(batch_id: str, counts: pl.DataFrame, settings: QualitySettings) -> list[CheckResult]:
    """`counts`: one row per table of the batch with rows_read and rows_quarantined."""
    results = []
    for row in counts.filter(pl.col("table").is_in(settings.feeds)).sort("table").iter_rows(named=True):
        read, quarantined = int(row["rows_read"]), int(row["rows_quarantined"])
        if read == 0:
            continue
        rate = quarantined / read
        status, threshold = _graded(rate, settings.quarantine_warn_rate, settings.quarantine_error_rate)
        whole = " (the whole file)" if quarantined == read else ""
        message = f"{quarantined:,} of {read:,} rows quarantined ({rate:.1%}){whole}"
        results.append(CheckResult(batch_id, row["table"], "quarantine_rate", status, rate, threshold, message))
    return results


def volume_checks(
    batch_id: str, current: dict[str, int], previous: list[dict[str, int]], settings: QualitySettings
) -> list[CheckResult]:
    """`current`: rows read per table in this batch (a feed without a file is absent); `previous`: the same for
    earlier weekly batches, oldest first. Judged only with `volume_min_batches` earlier weeks and a usual volume
    of at least `volume_min_rows` (small feeds vary too much week to week)."""
    baseline_weeks = previous[-settings.volume_window :]
    results = []
    if len(baseline_weeks) < settings.volume_min_batches:
        return results
    for table in sorted(settings.feeds):
        usual = median(week.get(table, 0) for week in baseline_weeks)
        if usual < settings.volume_min_rows:
            continue
        rows = current.get(table)
        if rows is None:
            message = f"no file in this batch; the previous {len(baseline_weeks)} weeks had {usual:,.0f} rows (median)"
            results.append(CheckResult(batch_id, table, "volume", ERROR, 0.0, None, message))
            continue
        ratio = rows / usual
        status, threshold = _graded(ratio, settings.volume_warn_ratio, settings.volume_error_ratio, False)
        message = f"{rows:,} rows against a median of {usual:,.0f} in the previous {len(baseline_weeks)} weeks"
        results.append(CheckResult(batch_id, table, "volume", status, ratio, threshold, f"{message} ({ratio:.0%})"))
    return results


def freshness_checks(
    batch_id: str, extract_date: date, latest_event: dict[str, date | None], settings: QualitySettings
) -> list[CheckResult]:
    """`latest_event`: the latest event date loaded so far per feed (None: nothing loaded)."""
    results = []
    for table in sorted(settings.feeds):
        if table not in latest_event:
            continue
        latest = latest_event[table]
        if latest is None:
            results.append(CheckResult(batch_id, table, "freshness", ERROR, None, None, "no event of this feed loaded"))
            continue
        lag = (extract_date - latest).days
        status, threshold = _graded(lag, settings.freshness_warn_days, settings.freshness_error_days)
        message = f"latest event {latest.isoformat()}, {lag} days before the extract date {extract_date.isoformat()}"
        results.append(CheckResult(batch_id, table, "freshness", status, float(lag), threshold, message))
    return results


@dataclass(frozen=True)
class GateDecision:
    status: str  # worst status of the checks
    errors: list[CheckResult]
    warnings: list[CheckResult]
    checked: int = 0  # checks run, passed ones included

    @property
    def stale_tables(self) -> list[str]:
        return sorted({r.table for r in self.errors})

    def statement(self) -> str | None:
        """One line for every output when scoring goes ahead despite errors (None when there are none)."""
        if not self.errors:
            return None
        parts = [f"{r.table} {r.check.replace('_', ' ')}: {r.message}" for r in self.errors]
        return "data-quality errors, scored with stale or incomplete feeds: " + "; ".join(parts)


def decide(results: list[CheckResult]) -> GateDecision:
    worst = max((r.status for r in results), key=_RANK.__getitem__, default=PASS)
    return GateDecision(
        worst, [r for r in results if r.status == ERROR], [r for r in results if r.status == WARN], len(results)
    )


class DataQualityError(DomainError, RuntimeError):
    """A data-quality gate failed and the settings say the run stops (`quality.on_error = "fail"`): a rejection
    of the data, never retried; the CLI prints it as one line."""
