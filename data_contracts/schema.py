"""The vocabulary of a data contract: typed columns and tables with a declared grain.

A table is declared once (see `tables.py`); that declaration drives row validation, the DuckDB DDL
(`pipelines.warehouse`) and the generated data dictionary. A column's contract type names its Polars and DuckDB
types (`Column.polars_type`, `Column.duckdb_type`): the only map from contract types to storage types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import polars as pl

from data_contracts.reference import codelist

ColumnType = Literal["string", "int", "float", "date", "bool"]

DUCKDB_TYPES: dict[str, str] = {
    "string": "VARCHAR",
    "int": "BIGINT",
    "float": "DOUBLE",
    "date": "DATE",
    "bool": "BOOLEAN",
}
POLARS_TYPES: dict[str, pl.DataType] = {
    "string": pl.String(),
    "int": pl.Int64(),
    "float": pl.Float64(),
    "date": pl.Date(),
    "bool": pl.Boolean(),
}


TEXT_MAX_LENGTH = 200
"""The longest text value any column accepts unless it declares another: longer is a corrupt or hostile file."""
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
"""Identifiers of people, practices, teams and areas: letters, digits, `_ . -`, at most 64 characters. Person and
team ids become file names and links in the published outputs, so nothing else may reach them. (Record ids, such
as a spell's, may be composed from a source's keys and are held to the length and control-character rule only.)"""


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    description: str
    required: bool = False
    codelist: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    pattern: str | None = None
    # Text longer than this, or holding control characters (a NUL, a line break), is a bad_format.
    max_length: int = TEXT_MAX_LENGTH
    # A calendar year (a birth year) that must not lie after the batch's extract date.
    year_not_after_extract: bool = False
    # Dates that must not lie after the batch's extract date nor before the person's birth.
    event_date: bool = False
    # Filled in by the loader (imputation, lineage), never expected in an input file.
    derived: bool = False
    # An amount of money, in the currency its batch declares: a batch delivering such a column needs a currency
    # and a database holds one currency (costs are never converted); a batch without one needs neither.
    money: bool = False

    @property
    def duckdb_type(self) -> str:
        return DUCKDB_TYPES[self.type]

    @property
    def polars_type(self) -> pl.DataType:
        return POLARS_TYPES[self.type]

    def allowed_values(self) -> set[str] | None:
        return codelist(self.codelist).accepted() if self.codelist else None


@dataclass(frozen=True)
class OrderRule:
    """`later` must not be before `earlier` when both are present."""

    earlier: str
    later: str
    reason: str


@dataclass(frozen=True)
class RequiredWhen:
    """`column` must be present when `when_column` holds one of `values`."""

    column: str
    when_column: str
    values: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class Table:
    name: str
    description: str
    grain: tuple[str, ...]
    columns: tuple[Column, ...]
    order_rules: tuple[OrderRule, ...] = ()
    required_when: tuple[RequiredWhen, ...] = ()
    # The date that places a row in time (what windows and horizons count by); None for tables without one.
    dated_by: str | None = None
    # Activity tables reference persons; persons and teams do not.
    person_linked: bool = True
    # Unit-cost setting used to impute a missing `cost` (None: the table has its own rule or no cost).
    cost_setting: str | None = None
    notes: str = ""
    lineage_columns: tuple[Column, ...] = field(
        default=(Column("batch_id", "string", "Batch the row was last loaded from.", derived=True),)
    )

    @property
    def input_columns(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if not c.derived)

    @property
    def all_columns(self) -> tuple[Column, ...]:
        return self.columns + self.lineage_columns

    @property
    def holds_costs(self) -> bool:
        """Whether the table's input files carry amounts of money (see `Column.money`)."""
        return any(c.money for c in self.input_columns)

    @property
    def required_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.input_columns if c.required)

    def column(self, name: str) -> Column:
        for c in self.all_columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")
