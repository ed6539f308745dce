"""The outcome metrics of the national framework by month, and their statistical process control charts.

Definitions are data (`data_contracts/reference/outcome_metrics.toml`, with source and year): emergency
admissions per 1,000 people, delayed-discharge days per 100,000 adults (from `discharge_ready_date`),
permanent admissions to residential and nursing care of people aged 65+ per 100,000, and the proportion of
people aged 65+ still at home 91 days after discharge from hospital into reablement. Each is computed for the
whole population, each team and each practice (`monthly_metrics`), then given a centre line, 3-sigma limits
(u-chart for rates with varying denominators, p-chart for the proportion) and the special-cause signals
(`control_limits`). Pure Polars over the contract tables; a person counts where they are registered.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import date
from functools import cache

import numpy as np
import polars as pl

from data_contracts.dates import add_months
from data_contracts.reference import REFERENCE_DIR
from features.demographics import age_at, born_before
from features.hospital import EMERGENCY_ADMISSION_METHODS
from features.inputs import Tables, codes_in_group, contract_table, day_of

METRICS_FILE = REFERENCE_DIR / "outcome_metrics.toml"
LEVELS = ("population", "team", "practice")
CARE_HOME_SERVICES = codes_in_group("asc_service_type", "residential", "nursing")
REABLEMENT_SERVICES = codes_in_group("asc_service_type", "reablement")
REABLEMENT_WITHIN_DAYS = 7  # a reablement service starting this many days after a discharge follows it
AT_HOME_AFTER_DAYS = 91


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    numerator: str
    denominator: str
    per: int
    chart: str  # "u" or "p"
    columns: str
    source: str
    year: str


@dataclass(frozen=True)
class SpcRules:
    sigma: float
    shift_points: int
    trend_points: int
    source: str
    year: str


@cache
def definitions() -> tuple[dict[str, Metric], SpcRules]:
    with open(METRICS_FILE, "rb") as fh:
        raw = tomllib.load(fh)
    spc = raw.pop("spc")
    metrics = {name: Metric(name=name, **{k: v for k, v in spec.items()}) for name, spec in raw.items()}
    return metrics, SpcRules(**spc)


def months_between_dates(first: date, end: date) -> list[date]:
    """First days of the months from first's month up to the last whole month before end."""
    month = date(first.year, first.month, 1)
    out = []
    while add_months(month, 1) <= end:
        out.append(month)
        month = add_months(month, 1)
    return out


def _registered(tables: Tables) -> pl.LazyFrame:
    teams = contract_table(tables, "teams").select("gp_practice", "team_id")
    return (
        contract_table(tables, "persons")
        .select("person_id", "birth_year", "birth_month", "gp_practice", "date_of_death")
        .join(teams, on="gp_practice", how="left")
        .with_columns(pl.col("team_id").fill_null("unassigned"))
    )


def _denominators(people: pl.LazyFrame, months: list[date]) -> pl.DataFrame:
    """People alive and registered at each month start: all, aged 18+, aged 65+ (per practice and team)."""
    parts = []
    for month in months:
        alive = born_before(month) & (pl.col("date_of_death").is_null() | (pl.col("date_of_death") >= month))
        parts.append(
            people.filter(alive)
            .with_columns(age_at(month).alias("age"))
            .group_by("gp_practice", "team_id")
            .agg(
                pl.len().alias("all"),
                (pl.col("age") >= 18).sum().alias("adults"),
                (pl.col("age") >= 65).sum().alias("aged_65"),
            )
            .with_columns(pl.lit(month).alias("month"))
        )
    return pl.concat(parts).collect() if parts else pl.DataFrame()


def _month_of(column: pl.Expr) -> pl.Expr:
    return column.dt.truncate("1mo")


def _numerators(tables: Tables, people: pl.LazyFrame, months: list[date], end: date) -> pl.DataFrame:
    """Per metric, practice, team and month: the numerator (and, for the proportion, its own denominator)."""
    first, stop = months[0], add_months(months[-1], 1)
    who = people.select("person_id", "gp_practice", "team_id", "birth_year", "birth_month")
    spells = contract_table(tables, "apc_spells")
    emergency = (
        spells.filter(
            pl.col("admission_method").is_in(EMERGENCY_ADMISSION_METHODS)
            & (pl.col("admission_date") >= first)
            & (pl.col("admission_date") < stop)
        )
        .select("person_id", _month_of(pl.col("admission_date")).alias("month"), pl.lit(1.0).alias("numerator"))
        .with_columns(pl.lit("emergency_admissions").alias("metric"))
    )
    # Delayed days: each day from the ready date to the day before discharge, placed in its own month.
    delayed = (
        spells.filter(
            pl.col("discharge_ready_date").is_not_null()
            & pl.col("discharge_date").is_not_null()
            & (pl.col("discharge_ready_date") < pl.col("discharge_date"))
            & (pl.col("discharge_date") > first)
            & (pl.col("discharge_ready_date") < stop)
        )
        .select(
            "person_id",
            pl.date_ranges(pl.col("discharge_ready_date"), pl.col("discharge_date"), closed="left").alias("day"),
        )
        .explode("day")
        .filter((pl.col("day") >= first) & (pl.col("day") < stop))
        .group_by("person_id", _month_of(pl.col("day")).alias("month"))
        .agg(pl.len().cast(pl.Float64).alias("numerator"))
        .with_columns(pl.lit("delayed_discharge_days").alias("metric"))
    )
    services = contract_table(tables, "asc_events").filter(pl.col("event_type") == "Service")
    placements = (
        services.filter(pl.col("service_type").is_in(CARE_HOME_SERVICES))
        .group_by("person_id")
        .agg(pl.col("event_start_date").min().alias("start"))
        .filter((pl.col("start") >= first) & (pl.col("start") < stop))
        .join(who, on="person_id")
        .filter(
            (
                pl.col("start").dt.year()
                - pl.col("birth_year")
                - (pl.col("birth_month").fill_null(7) > pl.col("start").dt.month()).cast(pl.Int32)
            )
            >= 65
        )
        .select("person_id", _month_of(pl.col("start")).alias("month"), pl.lit(1.0).alias("numerator"))
        .with_columns(pl.lit("permanent_care_home_admissions_65").alias("metric"))
    )
    frames = [emergency, delayed.select(emergency.collect_schema().names()), placements]
    counted = pl.concat([f.select("person_id", "month", "numerator", "metric") for f in frames])
    by_unit = (
        counted.join(who.select("person_id", "gp_practice", "team_id"), on="person_id", how="inner")
        .group_by("metric", "gp_practice", "team_id", "month")
        .agg(pl.col("numerator").sum(), pl.lit(None, pl.Float64).alias("cases"))
        .collect()
    )
    return pl.concat([by_unit, _reablement(tables, who, services, first, stop, end)], how="vertical_relaxed")


def _reablement(
    tables: Tables, who: pl.LazyFrame, services: pl.LazyFrame, first: date, stop: date, end: date
) -> pl.DataFrame:
    """Discharges of people aged 65+ into reablement by month of discharge (cases), and of them the people at
    home 91 days later (numerator). Months whose 91st day is not yet in the data are left out."""
    last_discharge = day_of_date(end) - AT_HOME_AFTER_DAYS
    spells = contract_table(tables, "apc_spells").filter(pl.col("discharge_date").is_not_null())
    discharges = spells.filter(
        (pl.col("discharge_date") >= first)
        & (pl.col("discharge_date") < stop)
        & (day_of("discharge_date") < last_discharge)
        & (pl.col("discharge_method") != "4")
    ).select("person_id", "discharge_date")
    reablement = services.filter(pl.col("service_type").is_in(REABLEMENT_SERVICES)).select(
        "person_id", pl.col("event_start_date").alias("reablement_start")
    )
    into = (
        discharges.join(reablement, on="person_id")
        .filter(
            (pl.col("reablement_start") >= pl.col("discharge_date"))
            & (day_of("reablement_start") - day_of("discharge_date") <= REABLEMENT_WITHIN_DAYS)
        )
        .select("person_id", "discharge_date")
        .unique()
        .join(who, on="person_id")
        .with_columns(
            (
                pl.col("discharge_date").dt.year()
                - pl.col("birth_year")
                - (pl.col("birth_month").fill_null(7) > pl.col("discharge_date").dt.month()).cast(pl.Int32)
            ).alias("age"),
            (day_of("discharge_date") + AT_HOME_AFTER_DAYS).alias("check_day"),
        )
        .filter(pl.col("age") >= 65)
    )
    deaths = contract_table(tables, "persons").select("person_id", day_of("date_of_death").alias("death"))
    in_hospital = spells.select("person_id", day_of("admission_date").alias("a"), day_of("discharge_date").alias("d"))
    in_home = services.filter(pl.col("service_type").is_in(CARE_HOME_SERVICES)).select(
        "person_id", day_of("event_start_date").alias("s"), day_of("event_end_date").alias("e")
    )
    keys = into.select("person_id", "discharge_date", "check_day")
    hospital_then = (
        keys.join(in_hospital, on="person_id")
        .filter((pl.col("a") <= pl.col("check_day")) & (pl.col("d") > pl.col("check_day")))
        .select("person_id", "discharge_date", pl.lit(True).alias("away"))
    )
    home_then = (
        keys.join(in_home, on="person_id")
        .filter((pl.col("s") <= pl.col("check_day")) & (pl.col("e").is_null() | (pl.col("e") >= pl.col("check_day"))))
        .select("person_id", "discharge_date", pl.lit(True).alias("away"))
    )
    away = pl.concat([hospital_then, home_then]).unique()
    at_home = (
        into.join(deaths, on="person_id", how="left")
        .join(away, on=["person_id", "discharge_date"], how="left")
        .with_columns(
            ((pl.col("death").is_null() | (pl.col("death") > pl.col("check_day"))) & pl.col("away").is_null()).alias(
                "at_home"
            )
        )
    )
    return (
        at_home.group_by("gp_practice", "team_id", _month_of(pl.col("discharge_date")).alias("month"))
        .agg(pl.col("at_home").sum().cast(pl.Float64).alias("numerator"), pl.len().cast(pl.Float64).alias("cases"))
        .with_columns(pl.lit("reablement_at_home_91_days").alias("metric"))
        .select("metric", "gp_practice", "team_id", "month", "numerator", "cases")
        .collect()
    )


def day_of_date(day: date) -> int:
    return (day - date(1970, 1, 1)).days


DENOMINATOR = {
    "emergency_admissions": "all",
    "delayed_discharge_days": "adults",
    "permanent_care_home_admissions_65": "aged_65",
}


def monthly_metrics(tables: Tables, first: date, end: date) -> pl.DataFrame:
    """Every metric by month from `first`'s month to the last whole month before `end`, at each level:
    metric, level, unit, month, numerator, denominator, value (per the metric's `per`)."""
    months = months_between_dates(first, end)
    if not months:
        return pl.DataFrame()
    metrics, _ = definitions()
    people = _registered(tables)
    denominators = _denominators(people, months)
    numerators = _numerators(tables, people, months, end)
    grid = []
    for name in metrics:
        cells = denominators.select(
            pl.lit(name).alias("metric"),
            "gp_practice",
            "team_id",
            "month",
            (pl.col(DENOMINATOR[name]) if name in DENOMINATOR else pl.lit(None)).cast(pl.Float64).alias("denominator"),
        )
        grid.append(cells)
    cells = pl.concat(grid).join(numerators, on=["metric", "gp_practice", "team_id", "month"], how="left")
    cells = cells.with_columns(
        pl.col("numerator").fill_null(0.0),
        pl.when(pl.col("metric") == "reablement_at_home_91_days")
        .then(pl.col("cases").fill_null(0.0))
        .otherwise(pl.col("denominator").cast(pl.Float64))
        .alias("denominator"),
    ).drop("cases")
    if "reablement_at_home_91_days" in metrics:  # months without whole 91-day follow-up hold no cases
        last = add_months(date.fromordinal(date(1970, 1, 1).toordinal() + day_of_date(end) - AT_HOME_AFTER_DAYS), 0)
        cells = cells.filter(
            (pl.col("metric") != "reablement_at_home_91_days") | (pl.col("month") < date(last.year, last.month, 1))
        )
    levels = []
    for level, unit in (
        ("population", pl.lit("all")),
        ("team", pl.col("team_id")),
        ("practice", pl.col("gp_practice")),
    ):
        levels.append(
            cells.group_by("metric", unit.alias("unit"), "month")
            .agg(pl.col("numerator").sum(), pl.col("denominator").sum())
            .with_columns(pl.lit(level).alias("level"))
        )
    out = pl.concat(levels).join(
        pl.DataFrame({"metric": list(metrics), "per": [m.per for m in metrics.values()]}), on="metric"
    )
    out = out.with_columns(
        pl.when(pl.col("denominator") > 0)
        .then(pl.col("numerator") / pl.col("denominator") * pl.col("per"))
        .alias("value")
    )
    return out.select("metric", "level", "unit", "month", "numerator", "denominator", "value", "per").sort(
        "metric", "level", "unit", "month"
    )


def control_limits(series: pl.DataFrame, chart: str, rules: SpcRules) -> pl.DataFrame:
    """Centre line, limits and signals of one unit's monthly series (month, numerator, denominator, per).

    u-chart (rates): centre u = sum numerator / sum denominator, limits u +- sigma sqrt(u / n_i); p-chart
    (proportions): p +- sigma sqrt(p (1 - p) / n_i); limits clipped at 0 (and 1). Signals: 'outside' (beyond a
    limit), 'shift' (part of a run of shift_points on one side of the centre), 'trend' (part of a run of
    trend_points each above or below the one before); several are joined with '+'."""
    s = series.sort("month")
    num, den = s["numerator"].to_numpy().astype(float), s["denominator"].to_numpy().astype(float)
    per = float(s["per"][0]) if s.height else 1.0
    total = den.sum()
    centre = num.sum() / total if total > 0 else 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = np.sqrt(centre * (1 - centre) / den) if chart == "p" else np.sqrt(centre / den)
    lower = np.clip(centre - rules.sigma * spread, 0, None)
    upper = centre + rules.sigma * spread
    if chart == "p":
        upper = np.minimum(upper, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(den > 0, num / den, np.nan)
    signals = [[] for _ in range(len(rate))]
    for i, r in enumerate(rate):
        if np.isfinite(r) and (r > upper[i] or r < lower[i]):
            signals[i].append("outside")
    side = np.sign(rate - centre)
    _mark_runs(signals, side, rules.shift_points, "shift")
    step = np.sign(np.diff(rate, prepend=np.nan))
    _mark_runs(signals, step, rules.trend_points - 1, "trend", extend_back=True)
    return s.with_columns(
        pl.Series("centre", np.full(len(rate), centre * per)),
        pl.Series("lower", lower * per),
        pl.Series("upper", upper * per),
        pl.Series("signal", ["+".join(x) for x in signals], dtype=pl.String),
    )


def _mark_runs(signals: list[list[str]], sign: np.ndarray, length: int, name: str, extend_back: bool = False) -> None:
    """Mark each point in a run of at least `length` equal non-zero signs (a trend's run of k rises covers k + 1
    points: `extend_back` marks the point the first rise started from)."""
    run_start = 0
    for i in range(len(sign) + 1):
        ends = (
            i == len(sign) or not np.isfinite(sign[i]) or sign[i] == 0 or (i > run_start and sign[i] != sign[run_start])
        )
        if ends:
            if (
                i - run_start >= length
                and length > 0
                and run_start < len(sign)
                and np.isfinite(sign[run_start])
                and sign[run_start] != 0
            ):
                for j in range(max(run_start - (1 if extend_back else 0), 0), i):
                    if name not in signals[j]:
                        signals[j].append(name)
            run_start = i if i < len(sign) and np.isfinite(sign[i]) and sign[i] != 0 else i + 1


def with_control_limits(metrics: pl.DataFrame) -> pl.DataFrame:
    """`monthly_metrics` with centre, lower, upper and signal for every metric, level and unit."""
    definitions_, rules = definitions()
    parts = [
        control_limits(part, definitions_[metric].chart, rules)
        for (metric, _, _), part in metrics.group_by(["metric", "level", "unit"], maintain_order=True)
    ]
    return pl.concat(parts) if parts else metrics
