"""How the feature layer reads its inputs: contract tables as LazyFrames, code groups, date columns as day numbers
(`data_contracts.dates`).

Every feature function receives `tables: Mapping[str, pl.LazyFrame]` keyed by contract table name. A table may
be missing, empty or lack a derived column; `contract_table` always returns a frame with every contract column
so that feature code never branches on what was loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

import polars as pl

from data_contracts.dates import add_months, day_number
from data_contracts.reference import codelist
from data_contracts.tables import TABLES

Tables = Mapping[str, pl.LazyFrame]

# Look-back windows of the windowed counts, in calendar months before as_of.
WINDOW_MONTHS: tuple[int, ...] = (3, 6, 12, 24)


def contract_schema(name: str) -> dict[str, pl.DataType]:
    return {c.name: c.polars_type for c in TABLES[name].all_columns}


def contract_table(tables: Tables, name: str) -> pl.LazyFrame:
    """The table `name` with every contract column (absent table: empty; absent column: all null)."""
    schema = contract_schema(name)
    frame = tables.get(name)
    if frame is None:
        return pl.LazyFrame(schema=schema)
    present = frame.collect_schema()
    missing = [pl.lit(None, dtype=dtype).alias(col) for col, dtype in schema.items() if col not in present]
    return frame.with_columns(missing) if missing else frame


# Float addition is not associative: summing a group whose rows arrive in another order can change the last
# bits, and a tree split on that feature, and so the model. Sums of money and weights run in fixed point
# (exact integers), so the same rows give the same value in any order. Micro-units keep pennies and the
# decimal weights of the code lists exact.
FIXED_POINT_SCALE = 1_000_000


def exact_sum(values: pl.Expr, scale: int = FIXED_POINT_SCALE) -> pl.Expr:
    """Aggregation: the sum of `values`, independent of row order (rounded to 1/scale)."""
    return ((values * scale).round().cast(pl.Int64).sum() / scale).cast(pl.Float64)


def day_of(column: str) -> pl.Expr:
    return pl.col(column).cast(pl.Int32)


def window_start(as_of: date, months: int) -> int:
    """Day number of the first day of the `months`-month window that ends the day before as_of."""
    return day_number(add_months(as_of, -months))


def codes_in_group(list_name: str, *groups: str) -> list[str]:
    """Codes (and their legacy aliases) of a code list whose `group` is one of `groups`."""
    cl = codelist(list_name)
    codes = set(cl.codes_in_group(*groups))
    codes |= {alias for alias, code in cl.aliases.items() if code in codes}
    return sorted(codes)


def group_of_code(list_name: str) -> dict[str, str]:
    """Code (or legacy alias) -> group of a code list."""
    cl = codelist(list_name)
    groups = dict(cl.group)
    groups |= {alias: cl.group[code] for alias, code in cl.aliases.items() if code in cl.group}
    return groups


def tables_from_rows(rows: Mapping[str, list[dict[str, object]]]) -> dict[str, pl.LazyFrame]:
    """Contract tables from lists of row dicts (missing columns are null): for tests, examples and notebooks."""
    frames = {}
    for name, table_rows in rows.items():
        schema = contract_schema(name)
        unknown = {col for row in table_rows for col in row} - set(schema)
        if unknown:
            raise KeyError(f"{name} has no column(s) {sorted(unknown)}")
        columns = {col: [row.get(col) for row in table_rows] for col in schema}
        frames[name] = pl.LazyFrame(columns, schema=schema)
    return frames
