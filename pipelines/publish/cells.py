"""Spreadsheet-safe cells: no text a team opens in Excel is ever run as a formula.

Text can reach a list from outside riskstrat's control (a team name in the reference data, a name in a team's
re-identification key, a care package's description). A CSV cell that starts with `=`, `+`, `-`, `@`, a tab or a
carriage return is read by Excel and LibreOffice as a formula (CSV injection), so such a value gets a leading
apostrophe, as OWASP recommends; in a workbook the cell is written as text, never as a formula.
"""

from __future__ import annotations

from typing import Any

import polars as pl
from openpyxl.cell import WriteOnlyCell

_FORMULA_START = r"^[=+\-@\t\r]"


def csv_text(frame: pl.DataFrame) -> str:
    """The frame as CSV with every text cell neutralised, with a BOM so that Excel reads £ signs correctly."""
    text_columns = [c for c, t in frame.schema.items() if t == pl.String]
    safe = frame.with_columns(
        pl.when(pl.col(c).str.contains(_FORMULA_START)).then(pl.lit("'") + pl.col(c)).otherwise(pl.col(c)).alias(c)
        for c in text_columns
    )
    return safe.write_csv(include_bom=True)


def workbook_value(ws: Any, value: Any, style: str | None = None) -> Any:
    """A value for a write-only sheet, styled if `style` names a registered style: text that openpyxl would store
    as a formula (it starts with `=`) is stored as text."""
    is_formula = isinstance(value, str) and value.startswith("=")
    if style is None and not is_formula:
        return value  # a plain value is much cheaper to stream than a cell
    cell = WriteOnlyCell(ws, value)
    if is_formula:
        cell.data_type = "s"
    if style is not None:
        cell.style = style
    return cell
