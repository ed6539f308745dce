"""Person-level register frames: persons, conditions and opt-outs (with the internal `_person`, `_day` and
`_end_day` columns the batch writer uses)."""

from __future__ import annotations

import numpy as np
import polars as pl

from data_contracts.synthetic.clinical import CONDITION_CODES
from data_contracts.synthetic.population import Population
from data_contracts.synthetic.rows import date_column
from data_contracts.synthetic.timeline import NULL_DAY
from data_contracts.tables import CASELOAD


def persons_frame(population: Population, death_day: np.ndarray) -> pl.DataFrame:
    people = population.size
    return pl.DataFrame(
        [
            pl.Series("_person", np.arange(people), dtype=pl.Int32),
            pl.Series("birth_year", population.birth_year, dtype=pl.Int64),
            pl.Series("birth_month", population.birth_month, dtype=pl.Int64),
            pl.Series("sex", population.sex, dtype=pl.String),
            pl.Series("ethnicity_group", population.ethnicity, dtype=pl.String),
            pl.Series("lsoa", population.lsoa, dtype=pl.String),
            pl.Series("imd_decile", population.imd_decile, dtype=pl.Int64),
            pl.Series(
                "gp_practice", np.asarray(population.practice_codes, dtype=object)[population.practice], dtype=pl.String
            ),
            date_column("date_of_death", death_day),
            # A person first appears in the batch covering their birth (everyone older: the history batch).
            pl.Series("_day", population.birth_day, dtype=pl.Int32),
            pl.Series("_end_day", death_day, dtype=pl.Int32),
        ]
    )


def conditions_frame(population: Population) -> pl.DataFrame:
    person, condition = np.nonzero(population.has_condition)
    day = population.condition_recorded_day[person, condition]
    return pl.DataFrame(
        [
            pl.Series("_person", person, dtype=pl.Int32),
            pl.Series("condition", np.asarray(CONDITION_CODES, dtype=object)[condition], dtype=pl.String),
            date_column("recorded_date", day),
            pl.Series("_day", day, dtype=pl.Int32),
        ]
    )


def opt_outs_frame(population: Population) -> pl.DataFrame:
    person = np.flatnonzero(population.opted_out)
    day = population.opt_out_day[person]
    assert (day != NULL_DAY).all()
    return pl.DataFrame(
        [
            pl.Series("_person", person, dtype=pl.Int32),
            pl.Series("opt_out_type", population.opt_out_type[person], dtype=pl.String),
            date_column("recorded_date", day),
            pl.Series("_day", day, dtype=pl.Int32),
        ]
    )


def caseload_frame() -> pl.DataFrame:
    """No synthetic MDT decisions: every batch carries the caseload table empty (teams record real ones in
    the workspace, or deliver them in a batch)."""
    schema: dict[str, pl.DataType] = {"_person": pl.Int32(), "_day": pl.Int32()}
    schema |= {c.name: c.polars_type for c in CASELOAD.input_columns if c.name != "person_id"}
    return pl.DataFrame(schema=schema)
