"""Weekly scoring: score everyone eligible with each outcome's current model, stratify into tiers, cut each
team's list at its capacity, explain everyone listed, and say what changed since last week.

Plain Python; the `score` flow wraps it. Person-level results stay in the warehouse (`risk_scores`,
`team_list_history`, stored by `pipelines.warehouse.scores_stored` as the run's folder is published) and in each
team's own outputs; logs carry counts only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from data_contracts.dates import add_months
from data_contracts.errors import NotReadyError
from data_contracts.outcomes import OUTCOMES_BY_NAME
from data_contracts.reference import acsc_condition, codelist, icd10_words, money_prefix
from features.build import build_features
from features.catalogue import CATALOGUE
from features.inputs import Tables
from models.cohorts import (
    DRAW_SCHEMA,
    UNASSIGNED_TEAM,
    age_band,
    assign_tiers,
    rising_risk,
    team_lists_drawn,
    week_on_week,
)
from pipelines.publish import Provenance, Publication
from pipelines.publish.publication import ACTIVITY_MONTHS, SCHEMAS, RisingRiskRule
from pipelines.settings import Settings
from pipelines.warehouse import (
    batch_checksums,
    cost_currency,
    earlier_scores,
    earliest_event_date,
    latest_extract_date,
    previous_lists,
    read_tables,
)

if TYPE_CHECKING:
    from models.reasons import Reasons
    from models.training import TrainedModel

log = logging.getLogger("riskstrat.score")

RECENT_DISCHARGE_DAYS = 30


def _decoded(column: str, codelist_name: str) -> pl.Expr:
    """A coded column in the words of its code list (lower case first), the code itself when unknown."""
    labels = {code: label[:1].lower() + label[1:] for code, label in codelist(codelist_name).codes.items()}
    return pl.col(column).replace_strict(labels, default=pl.col(column), return_dtype=pl.String)


def _timeline_details() -> dict[str, tuple[str, str, pl.Expr]]:
    """Each activity table as timeline rows: (setting, date column, detail in words, codes decoded)."""
    return {
        "ae_attendances": (
            "A&E",
            "arrival_date",
            pl.lit("A&E attendance at a ") + _decoded("department_type", "ae_department_type"),
        ),
        "op_appointments": (
            "outpatient",
            "appointment_date",
            pl.lit("outpatient appointment: ") + _decoded("attendance_status", "op_attendance_status"),
        ),
        "gp_events": ("GP", "event_date", pl.lit("GP: ") + _decoded("event_type", "gp_event_type")),
        "community_contacts": (
            "community",
            "contact_date",
            pl.lit("community: ") + _decoded("service", "community_service"),
        ),
    }


@dataclass
class ScoreResult:
    population: pl.DataFrame  # everyone scored, with each outcome's risk and the tier
    publication: Publication  # what publishing writes: the lists, reasons, leavers, activity, provenance
    # The feature frame the scores came from (for monitoring; never published).
    features: pl.DataFrame | None = field(repr=False, default=None)
    # Draws at the margin of the lists (scoring.randomise_margin; empty when off): stored, never published.
    draws: pl.DataFrame = field(repr=False, default_factory=lambda: pl.DataFrame(schema=DRAW_SCHEMA))

    def counts(self) -> dict[str, int]:
        """Aggregate counts only: safe for logs and Prefect artifacts."""
        tiers = dict(self.population.group_by("tier").len().iter_rows())
        team_list = self.publication.team_list
        return {
            "people_scored": self.population.height,
            "people_listed": team_list.height,
            "teams": team_list["team_id"].n_unique(),
            "leavers": self.publication.leavers.height,
            **{f"tier_{k.replace(' ', '_')}": int(v) for k, v in sorted(tiers.items())},
        }


def run_id_for(as_of: date, models: dict[str, str], batches: dict[str, str], settings: dict[str, object]) -> str:
    """Deterministic, and different whenever an output could differ: the as-of date, each model's file hashes
    (`ModelRegistry.model_digest`), each batch's id and checksum, and the settings that shape scoring."""
    key = json.dumps(
        {"as_of": str(as_of), "models": models, "batches": batches, "settings": settings}, sort_keys=True, default=str
    )
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def score_population(
    settings: Settings, as_of: date | None = None, tables: Tables | None = None, data_warning: str | None = None
) -> ScoreResult:
    """`data_warning` (the data-quality gates' statement when scoring goes ahead despite errors) is stated on
    every output, beside the data batches. In one process: the same steps the partitioned run maps
    (`pipelines.partitions`), applied to everyone at once."""
    staged = stage_scoring(settings, as_of, tables, data_warning)
    ranking = settings.scoring.ranking_outcome
    scores = score_people(staged.models, staged.features, ranking)
    listed = list_people(staged, scores)
    reasons = explain_people(
        staged.models[ranking],
        staged.features.join(listed.marked.select("person_id"), on="person_id", how="semi"),
        settings.scoring.top_reasons,
        staged.currency,
    )
    return assemble_result(staged, listed, reasons)


@dataclass
class StagedScoring:
    """What a run scores, read once: the as-of date, the tables, the current models and everyone's features."""

    settings: Settings
    as_of: date
    tables: Tables
    versions: dict[str, str]
    models: dict[str, TrainedModel]
    batches: list[str]
    run_id: str
    currency: str
    data_warning: str | None
    features: pl.DataFrame = field(repr=False)


def stage_scoring(
    settings: Settings, as_of: date | None = None, tables: Tables | None = None, data_warning: str | None = None
) -> StagedScoring:
    from models.registry import ModelRegistry

    as_of = as_of or latest_extract_date(settings.db)
    if as_of is None:
        raise NotReadyError(f"{settings.db} holds no loaded batches: run `riskstrat ingest` first")
    tables = tables if tables is not None else read_tables(settings.db)
    registry = ModelRegistry(settings.registry)
    ranking = settings.scoring.ranking_outcome
    versions = {o: v for o in settings.training.outcomes if (v := registry.current_version(o)) is not None}
    if ranking not in versions:
        raise NotReadyError(f"no current model for the ranking outcome {ranking!r}: run `riskstrat train` first")
    models = {o: registry.load(o, v) for o, v in versions.items()}
    checksums = batch_checksums(settings.db)
    digests = {o: registry.model_digest(o, v) for o, v in versions.items()}
    shaping = {"scoring": dataclasses.asdict(settings.scoring), "outcomes": dataclasses.asdict(settings.outcomes)}
    features = build_features(tables, as_of, history_start=earliest_event_date(settings.db)).collect()
    return StagedScoring(
        settings=settings,
        as_of=as_of,
        tables=tables,
        versions=versions,
        models=models,
        batches=list(checksums),
        run_id=run_id_for(as_of, digests, checksums, shaping),
        currency=cost_currency(settings.db),
        data_warning=data_warning,
        features=features,
    )


def score_people(models: dict[str, TrainedModel], features: pl.DataFrame, ranking: str) -> pl.DataFrame:
    """Each person's risk of each outcome and the ranking model's raw score, in the rows' order: row by row, so
    scoring a partition of the people gives each of them exactly what scoring everyone does."""
    # One booster pass per model: the probability is the calibrated raw score (what predict_proba computes).
    raw_scores = {o: model.predict_raw_logodds(features) for o, model in models.items()}
    return features.select("person_id").with_columns(
        *[pl.Series(OUTCOMES_BY_NAME[o].risk_column, _calibrated(model, raw_scores[o])) for o, model in models.items()],
        ranking_score=pl.Series(raw_scores[ranking]),
    )


def explain_people(model: TrainedModel, listed: pl.DataFrame, top_reasons: int, currency: str) -> Reasons:
    """The reasons of the people listed (row by row, like `score_people`)."""
    from models.reasons import build_reasons

    return build_reasons(model, listed, top_reasons, currency)


@dataclass
class ListedPeople:
    """The population-wide reduce: tiers over everyone, each team's list cut at its capacity (the draw at the
    margin), the week-on-week changes, the leavers and the rising risk."""

    population: pl.DataFrame
    marked: pl.DataFrame
    leavers: pl.DataFrame
    rising: pl.DataFrame
    draws: pl.DataFrame
    earlier_as_of: date | None
    opted_out: frozenset[str]


def list_people(staged: StagedScoring, scores: pl.DataFrame) -> ListedPeople:
    """`scores`: `score_people`'s frame for everyone, in the features' row order."""
    settings, tables, as_of, features = staged.settings, staged.tables, staged.as_of, staged.features
    if not scores["person_id"].equals(features["person_id"]):
        raise ValueError("the scores are not in the features' row order")
    ranking = settings.scoring.ranking_outcome
    risk_col = OUTCOMES_BY_NAME[ranking].risk_column
    persons = tables["persons"].select("person_id", "gp_practice").collect()
    population = features.select(
        "person_id", "age", "sex", "imd_decile", *[c for c in _SERVICE_FEATURES if c in features.columns]
    ).join(persons, on="person_id", how="left")
    population = population.with_columns(scores.drop("person_id", "ranking_score").get_columns())
    # Rank by the ranking model's raw score: the calibrators are strictly increasing in it, so the order is the
    # risks' order, and people with equal raw scores (equal risks) are ordered by the tie rule of `assign_tiers`.
    population = population.with_columns(scores["ranking_score"])
    population = assign_tiers(population, "ranking_score", settings.scoring.tiers)
    teams = tables["teams"].collect()
    # The draw's seed: the settings' seed and the date, so a rerun of the same week draws the same people.
    draw_seed = settings.seed * 100_000 + as_of.toordinal() % 100_000
    lists, draws = team_lists_drawn(population, teams, "ranking_score", settings.scoring.randomise_margin, draw_seed)

    previous = previous_lists(settings.db, as_of)
    opted_out = set(tables["opt_outs"].select("person_id").collect()["person_id"].to_list())
    status = leaver_status(previous, tables, as_of, teams)
    marked, leavers = week_on_week(lists, previous, status, risk_col, settings.scoring.rising_threshold)

    scoring = settings.scoring
    earlier = earlier_scores(settings.db, ranking, as_of - timedelta(weeks=scoring.rising_risk_weeks))
    rising = rising_risk(
        population,
        earlier,
        marked,
        teams,
        risk_col,
        scoring.rising_threshold,
        scoring.rising_risk_people,
    )
    return ListedPeople(
        population=population,
        marked=marked,
        leavers=leavers,
        rising=rising,
        draws=draws,
        earlier_as_of=earlier["as_of"][0] if earlier is not None else None,
        opted_out=frozenset(opted_out),
    )


def assemble_result(staged: StagedScoring, listed: ListedPeople, reasons: Reasons) -> ScoreResult:
    """What publishing writes, from the reduce and the reasons of the people listed."""
    from models.explain import EXPLANATION_SCALE
    from models.training import scoring_calibration_warning

    settings, tables, as_of = staged.settings, staged.tables, staged.as_of
    ranking = settings.scoring.ranking_outcome
    scoring = settings.scoring
    marked = listed.marked
    currency = staged.currency
    teams = tables["teams"].collect()
    # Joined on the person's team(s): the reasons go with each list the person is on.
    explanations = reasons.reasons.join(marked.select("person_id", "team_id"), on="person_id", how="inner")
    provenance = Provenance(
        run_id=staged.run_id,
        as_of=as_of,
        model_versions=staged.versions,
        data_batches=tuple(staged.batches),
        ranking_outcome=ranking,
        explain_scale=EXPLANATION_SCALE,
        cost_currency=currency,
        data_warning=staged.data_warning,
        calibration_warnings={
            o: warning
            for o, model in staged.models.items()
            if (warning := scoring_calibration_warning(model.training_summary_)) is not None
        },
        rising_risk=RisingRiskRule(scoring.rising_risk_weeks, scoring.rising_threshold, listed.earlier_as_of),
    )
    team_list = _list_rows(marked, reasons, tables, as_of, ranking).with_columns(
        social_care_package=_package_text(currency)
    )
    publication = Publication(
        provenance=provenance,
        team_list=team_list,
        explanations=explanations.select(*SCHEMAS["explanations"]),
        leavers=listed.leavers,
        activity=activity_timeline(tables, marked.select("person_id"), as_of),
        population_summary=_population_summary(listed.population, teams, OUTCOMES_BY_NAME[ranking].risk_column),
        rising_risk=_rising_rows(listed.rising),
        opted_out_ids=listed.opted_out,
    )
    return ScoreResult(
        population=listed.population, publication=publication, features=staged.features, draws=listed.draws
    )


def _calibrated(model: TrainedModel, raw_logodds: np.ndarray) -> np.ndarray:
    if model.calibrator_ is None:
        raise RuntimeError(f"the {model.outcome} model is not calibrated")
    return model.calibrator_.predict(raw_logodds)


# Features that describe current services on the list.
_SERVICE_FEATURES = ("asc_current_service", "asc_weekly_cost_now", "in_residential_or_nursing_care")


def _list_rows(marked: pl.DataFrame, reasons: Reasons, tables: Tables, as_of: date, ranking: str) -> pl.DataFrame:
    from models.reasons import RAISES as RAISES_RISK

    # The list's reasons are the ones that raise the risk (models/reasons.py): what lowers it is shown apart.
    listed_reasons = (
        reasons.reasons.filter(pl.col("direction") == RAISES_RISK)
        .sort(["person_id", "reason_rank"])
        .group_by("person_id", maintain_order=True)
        .agg(reasons=pl.col("phrase").str.join("; "))
    )
    discharged = recently_discharged(tables, as_of)
    sex_labels = codelist("sex").codes
    return (
        marked.join(listed_reasons, on="person_id", how="left")
        .join(reasons.people, on="person_id", how="left")
        .join(acsc_admissions(tables, as_of), on="person_id", how="left")
        .with_columns(
            age_band=age_band(pl.col("age")),
            sex=pl.col("sex").replace_strict(sex_labels, default="Not known"),
            risk=pl.col(OUTCOMES_BY_NAME[ranking].risk_column),
            in_care_home=pl.col("in_residential_or_nursing_care").fill_null(False),
            recent_discharge=pl.col("person_id").is_in(discharged.implode()),
            acsc_admissions_12m=pl.col("acsc_admissions_12m").fill_null(0),
        )
        .sort(["team_id", "rank"])
    )


def _rising_rows(rising: pl.DataFrame) -> pl.DataFrame:
    sex_labels = codelist("sex").codes
    return rising.with_columns(
        age_band=age_band(pl.col("age")), sex=pl.col("sex").replace_strict(sex_labels, default="Not known")
    ).select(*SCHEMAS["rising_risk"])


def _package_text(currency: str) -> pl.Expr:
    service = pl.col("asc_current_service")
    cost = pl.col("asc_weekly_cost_now")
    return (
        pl.when(service.is_null() | (service == "none"))
        .then(None)
        .otherwise(
            service.replace_strict(dict(CATALOGUE["asc_current_service"].value_labels), default=service)
            + pl.lit(f", {money_prefix(currency)}")
            + cost.round(0).cast(pl.Int64).cast(pl.String)
            + pl.lit(" a week")
        )
    )


def recently_discharged(tables: Tables, as_of: date) -> pl.Series:
    since = as_of - timedelta(days=RECENT_DISCHARGE_DAYS)
    return (
        tables["apc_spells"]
        .filter(pl.col("discharge_date").is_between(since, as_of, closed="left"))
        .select("person_id")
        .unique()
        .collect()["person_id"]
    )


ACSC_MONTHS = 12


def acsc_admissions(tables: Tables, as_of: date) -> pl.DataFrame:
    """The impactability marker: emergency admissions in the last 12 months whose primary diagnosis is a chronic
    ambulatory care sensitive condition (acsc_icd10.csv), the admissions good primary and community care can often
    prevent. One row per person with any: person_id, acsc_admissions_12m, acsc_conditions."""
    since = add_months(as_of, -ACSC_MONTHS)
    spells = (
        tables["apc_spells"]
        .filter(
            pl.col("admission_date").is_between(since, as_of, closed="left")
            & pl.col("admission_method").is_in(_emergency_methods())
            & pl.col("primary_diagnosis").is_not_null()
        )
        .select("person_id", "primary_diagnosis")
        .collect()
    )
    conditions = {code: acsc_condition(code) for code in spells["primary_diagnosis"].unique().to_list()}
    return (
        spells.with_columns(condition=pl.col("primary_diagnosis").replace_strict(conditions, default=None))
        .filter(pl.col("condition").is_not_null())
        .group_by("person_id")
        .agg(
            acsc_admissions_12m=pl.len().cast(pl.Int64),
            acsc_conditions=pl.col("condition").unique().sort().str.join(", "),
        )
    )


def activity_timeline(tables: Tables, people: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """The last 24 months of activity of the listed people, one row per event, for the person pages."""
    since = add_months(as_of, -ACTIVITY_MONTHS)
    who = people.lazy()

    def window(frame: pl.LazyFrame, column: str) -> pl.LazyFrame:
        return frame.join(who, on="person_id", how="semi").filter(pl.col(column).is_between(since, as_of, "left"))

    spells = window(tables["apc_spells"], "admission_date").with_columns(
        setting=pl.when(pl.col("admission_method").is_in(_emergency_methods()))
        .then(pl.lit("emergency admission"))
        .otherwise(pl.lit("elective admission"))
    )
    parts = [
        spells.select(
            "person_id",
            pl.col("admission_date").alias("event_date"),
            "setting",
            pl.when(pl.col("primary_diagnosis").is_null())
            .then(pl.lit("admission, diagnosis not recorded"))
            .otherwise(pl.lit("admission for ") + pl.col("primary_diagnosis").map_elements(icd10_words, pl.String))
            .alias("detail"),
            "cost",
        )
    ]
    for table, (setting, column, detail) in _timeline_details().items():
        parts.append(
            window(tables[table], column).select(
                "person_id",
                pl.col(column).alias("event_date"),
                pl.lit(setting).alias("setting"),
                detail.alias("detail"),
                "cost",
            )
        )
    parts.append(
        window(tables["asc_events"], "event_start_date").select(
            "person_id",
            pl.col("event_start_date").alias("event_date"),
            pl.lit("social care").alias("setting"),
            (
                pl.lit("social care ")
                + _decoded("event_type", "asc_event_type")
                + pl.when(pl.col("service_type").is_null())
                .then(pl.lit(""))
                .otherwise(pl.lit(": ") + _decoded("service_type", "asc_service_type"))
            ).alias("detail"),
            pl.col("weekly_cost").alias("cost"),
        )
    )
    # Every column in the key: events of one day and setting would otherwise come out in any order.
    timeline = pl.concat(parts, how="vertical_relaxed")
    return timeline.sort(["person_id", "event_date", "setting", "detail", "cost"], nulls_last=True).collect()


def _emergency_methods() -> list[str]:
    return codelist("admission_method").codes_in_group("emergency")


def _population_summary(population: pl.DataFrame, teams: pl.DataFrame, risk_col: str) -> pl.DataFrame:
    return population.join(teams.select("gp_practice", "team_id"), on="gp_practice", how="left").select(
        pl.col("team_id").fill_null(UNASSIGNED_TEAM),
        "tier",
        age_band(pl.col("age")).alias("age_band"),
        ((pl.col("imd_decile") + 1) // 2).alias("imd_quintile"),
        pl.col(risk_col).alias("expected_events"),
    )


def leaver_status(previous: pl.DataFrame | None, tables: Tables, as_of: date, teams: pl.DataFrame) -> pl.DataFrame:
    schema = {"person_id": pl.String, "died": pl.Boolean, "opted_out": pl.Boolean, "team_id_now": pl.String}
    if previous is None:
        return pl.DataFrame(schema=schema)
    people = previous.select("person_id").unique()
    persons = tables["persons"].collect().join(people, on="person_id", how="semi")
    opted = tables["opt_outs"].select("person_id").unique().collect()
    known = persons.join(teams.select("gp_practice", "team_id"), on="gp_practice", how="left").select(
        "person_id",
        died=pl.col("date_of_death").is_not_null() & (pl.col("date_of_death") <= as_of),
        opted_out=pl.col("person_id").is_in(opted["person_id"].implode()),
        team_id_now=pl.col("team_id"),
    )
    return known
