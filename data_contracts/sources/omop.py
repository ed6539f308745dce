"""Transforms for an OMOP Common Data Model export (CDM v5.3 and v5.4; OHDSI, ohdsi.github.io/CommonDataModel).

A CDM keeps codes as concept ids and facts of one event in several tables, so a few columns are looked up here:

- `omop_visit_context` (VISIT_OCCURRENCE): the provider's specialty (PROVIDER), where the person was admitted from
  (v5.4 `admitted_from_concept_id`, v5.3 `admitting_source_concept_id`), whether an emergency room visit of the
  same person started within the 24 hours before (as for Synthea), and the visit's cost (COST, domain Visit).
- `omop_person_death` (PERSON): the date of death (DEATH; the earliest, should a person have two rows).
- `omop_condition_code` (CONDITION_OCCURRENCE): the SNOMED code of the standard concept (CONCEPT), else the ICD-10
  category (3 characters, no dot) of the source value when its source concept is ICD-10 or it looks like one, else
  the concept id (which no value map holds: the mapping drops the row, counted).
- `omop_drug_code` (DRUG_EXPOSURE): the RxNorm code of the drug concept (CONCEPT), else the concept id, and the cost
  (COST, domain Drug).

A table the CDM does not have (an empty COST, no PROVIDER) gives empty values, never an error: costs are then
imputed from the unit costs at ingest.
"""

from __future__ import annotations

import csv
from pathlib import Path

import polars as pl

from data_contracts.sources import SourceFiles, Transform
from data_contracts.sources.synthea import FOLLOWS_EMERGENCY, follows_emergency

VISIT_CONCEPTS = Path(__file__).parents[1] / "mappings" / "omop_visit_concepts.csv"
"""The visit concept -> setting map the mapping routes by (the emergency settings are read from it here too)."""
EMERGENCY_SETTINGS = ("emergency", "emergency_inpatient")
ICD10_VOCABULARIES = ("ICD10", "ICD10CM", "ICD10GM", "ICD10CN")
ICD10_CATEGORY = r"^[A-Z][0-9]{2}"
PROVIDER_SPECIALTY = "PROVIDER_SPECIALTY"
ADMITTED_FROM = "ADMITTED_FROM"
VISIT_COST = "VISIT_COST"
DEATH_DATE = "DEATH_DATE"
CONDITION_CODE = "CONDITION_CODE"
RXNORM_CODE = "RXNORM_CODE"
DRUG_COST = "DRUG_COST"


def emergency_visit_concepts() -> list[str]:
    with open(VISIT_CONCEPTS, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(line for line in fh if not line.startswith("#")))
    return [row["visit_concept_id"] for row in rows if row["setting"] in EMERGENCY_SETTINGS]


def _text(column: str) -> pl.Expr:
    return pl.col(column).str.strip_chars()


def _lookup(rows: pl.DataFrame, key: str, frame: pl.DataFrame, on: str, value: pl.Expr, name: str) -> pl.DataFrame:
    """Add `name` to `rows` (order kept): `value` of the row of `frame` whose `on` equals `rows[key]`."""
    table = frame.select(_text(on).alias("_key"), value.alias(name)).unique("_key", keep="first")
    return (
        rows.with_row_index("_row")
        .with_columns(_text(key).alias("_key"))
        .join(table, on="_key", how="left")
        .sort("_row")
        .drop("_row", "_key")
    )


def _costs(source: SourceFiles, domain: str) -> pl.DataFrame:
    """Sum of COST.total_cost per event of a domain (empty when the CDM has no costs)."""
    if not source.has("COST.csv"):
        return pl.DataFrame(schema={"cost_event_id": pl.String, "_cost": pl.String})
    costs = source.read("COST.csv")
    return (
        costs.filter(_text("cost_domain_id") == domain)
        .group_by(_text("cost_event_id").alias("cost_event_id"))
        .agg(pl.col("total_cost").cast(pl.Float64, strict=False).sum().round(2).cast(pl.String).alias("_cost"))
    )


def _concepts(source: SourceFiles) -> pl.DataFrame:
    return source.read("CONCEPT.csv").select("concept_id", "concept_code", "vocabulary_id")


def visit_context(visits: pl.DataFrame, source: SourceFiles) -> pl.DataFrame:
    """Add PROVIDER_SPECIALTY, ADMITTED_FROM, FOLLOWS_EMERGENCY_WITHIN_24H and VISIT_COST to visit rows."""
    if source.has("PROVIDER.csv"):
        out = _lookup(
            visits, "provider_id", source.read("PROVIDER.csv"), "provider_id", _text("specialty_concept_id"), "_s"
        )
    else:
        out = visits.with_columns(pl.lit(None, dtype=pl.String).alias("_s"))
    admitted = [c for c in ("admitted_from_concept_id", "admitting_source_concept_id") if c in visits.columns]
    start = pl.coalesce(
        pl.col("visit_start_datetime").str.strip_chars().str.to_datetime("%Y-%m-%d %H:%M:%S", strict=False)
        if "visit_start_datetime" in visits.columns
        else pl.lit(None, dtype=pl.Datetime),
        pl.col("visit_start_date").str.strip_chars().str.to_date("%Y-%m-%d", strict=False).cast(pl.Datetime),
    )
    out = follows_emergency(
        out, person="person_id", start=start, is_emergency=_text("visit_concept_id").is_in(emergency_visit_concepts())
    )
    out = _lookup(out, "visit_occurrence_id", _costs(source, "Visit"), "cost_event_id", pl.col("_cost"), VISIT_COST)
    return out.with_columns(
        pl.col("_s").alias(PROVIDER_SPECIALTY),
        (_text(admitted[0]) if admitted else pl.lit(None, dtype=pl.String)).alias(ADMITTED_FROM),
    ).drop("_s")


def person_death(persons: pl.DataFrame, source: SourceFiles) -> pl.DataFrame:
    """Add DEATH_DATE (the earliest death_date of the person in DEATH) to person rows."""
    if not source.has("DEATH.csv"):
        return persons.with_columns(pl.lit(None, dtype=pl.String).alias(DEATH_DATE))
    deaths = source.read("DEATH.csv").sort(_text("death_date"))
    return _lookup(persons, "person_id", deaths, "person_id", _text("death_date"), DEATH_DATE)


def condition_code(conditions: pl.DataFrame, source: SourceFiles) -> pl.DataFrame:
    """Add CONDITION_CODE: the standard concept's SNOMED code, else the source value's ICD-10 category."""
    concepts = _concepts(source)
    snomed = pl.when(pl.col("vocabulary_id") == "SNOMED").then(pl.col("concept_code"))
    out = _lookup(conditions, "condition_concept_id", concepts, "concept_id", snomed, "_snomed")
    if "condition_source_concept_id" in conditions.columns:
        source_vocabulary = pl.col("vocabulary_id")
        out = _lookup(out, "condition_source_concept_id", concepts, "concept_id", source_vocabulary, "_source_vocab")
    else:
        out = out.with_columns(pl.lit(None, dtype=pl.String).alias("_source_vocab"))
    category = _text("condition_source_value").str.replace_all(".", "", literal=True).str.to_uppercase()
    is_icd10 = pl.col("_source_vocab").is_in(ICD10_VOCABULARIES).fill_null(False) | (
        pl.col("_snomed").is_null() & category.str.contains(ICD10_CATEGORY).fill_null(False)
    )
    icd10 = pl.when(is_icd10).then(category.str.slice(0, 3))
    return out.with_columns(pl.coalesce(pl.col("_snomed"), icd10).alias(CONDITION_CODE)).drop(
        "_snomed", "_source_vocab"
    )


def drug_code(drugs: pl.DataFrame, source: SourceFiles) -> pl.DataFrame:
    """Add RXNORM_CODE (the drug concept's RxNorm code) and DRUG_COST (COST, domain Drug)."""
    rxnorm = pl.when(pl.col("vocabulary_id") == "RxNorm").then(pl.col("concept_code"))
    out = _lookup(drugs, "drug_concept_id", _concepts(source), "concept_id", rxnorm, RXNORM_CODE)
    out = out.with_columns(pl.coalesce(RXNORM_CODE, _text("drug_concept_id")).alias(RXNORM_CODE))  # see above
    return _lookup(out, "drug_exposure_id", _costs(source, "Drug"), "cost_event_id", pl.col("_cost"), DRUG_COST)


TRANSFORMS: tuple[Transform, ...] = (
    Transform(
        "omop_visit_context",
        visit_context,
        (PROVIDER_SPECIALTY, ADMITTED_FROM, FOLLOWS_EMERGENCY, VISIT_COST),
        "the provider's specialty, where the person was admitted from (v5.3 or v5.4), an emergency room visit in the "
        "24 hours before, and the visit's cost",
    ),
    Transform("omop_person_death", person_death, (DEATH_DATE,), "the person's date of death from DEATH"),
    Transform(
        "omop_condition_code",
        condition_code,
        (CONDITION_CODE,),
        "the SNOMED code of the condition concept, else the ICD-10 category of the source value",
    ),
    Transform("omop_drug_code", drug_code, (RXNORM_CODE, DRUG_COST), "the RxNorm code of the drug concept, its cost"),
)
