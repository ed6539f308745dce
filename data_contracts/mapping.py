"""Declarative source mappings: how one source's files become a contract batch, read from a TOML file.

A mapping file says, for each contract table it fills, which source file feeds it and how:

    [source]
    description = "..."              # what the source is (shown in the batch metadata)
    currency = "GBP"                 # ISO 4217 code of every cost in the source; costs are never converted
    unused_files = { "x.csv" = "why this mapping ignores it" }

    [tables.<contract table>]
    file = "events.csv"              # a CSV or Parquet file in the source folder
    where = { column = "CLASS", values = ["a", "b"] }   # only these rows feed this table
    transform = "synthea_admission_method"               # a named transform (data_contracts.sources)
    one_row_per = ["person_id"]      # collapse to the table's grain: keep the first or last row ...
    keep = "last"                    # ... by `order_by` (a source column), counting the rest as dropped
    order_by = "Event_Start_Date"
    columns = { person_id = "Der_NHS_Number_Traced_Pseudo" }   # contract column = source column
    combine = { prescription_id = ["ENCOUNTER", "CODE"] }       # contract column = source columns joined by "|"
    constants = { la_code = "E09000001" }                       # contract column = the same value on every row
    dates = { Event_Start_Date = "%d/%m/%Y" }                   # source column = its strptime format
    date_parts = { birth_year = ["BIRTHDATE", "year"] }         # contract column = [date column, year|month]
    value_files = { condition = "snomed_conditions.csv" }       # a two-column CSV value map (beside the mapping)
    drop_unmapped = { condition = "reason" }                    # a value the map lacks drops the row, counted
    [tables.<contract table>.values.<contract column>]          # source value = contract value
    "Male" = "1"
    [[tables.<contract table>.drop]]                            # rows dropped, counted, with a stated reason
    reason = "no traced NHS number: cannot be linked"
    column = "Der_NHS_Number_Traced_Pseudo"
    blank = true                     # or: values = ["x", "y"]

    [[tables.teams.rows]]            # a table given row by row in the mapping (no source file)
    gp_practice = "SYN001"

Values without a value map pass through unchanged, so the contract's code lists (with their legacy aliases)
judge them at ingest. Everything is checked when the file is loaded; a problem raises `MappingError` naming the
mapping file and the line (tomllib gives lines for syntax errors only, so the line of a semantic error is found
by scanning the text for the offending key).
"""

from __future__ import annotations

import csv
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data_contracts.errors import DomainError
from data_contracts.schema import Table
from data_contracts.sources import TRANSFORMS
from data_contracts.tables import TABLES

MAPPINGS_DIR = Path(__file__).parent / "mappings"
"""The mappings shipped with riskstrat (`riskstrat import --mapping cld` finds `mappings/cld.toml`)."""

DATE_PARTS = ("year", "month")
KEEP_CHOICES = ("first", "last")
_SOURCE_KEYS = {"description", "currency", "unused_files", "reference"}
_TABLE_KEYS = {
    "file",
    "where",
    "transform",
    "one_row_per",
    "keep",
    "order_by",
    "columns",
    "combine",
    "constants",
    "dates",
    "date_parts",
    "values",
    "value_files",
    "drop_unmapped",
    "drop",
    "rows",
    "note",
}
_CURRENCY = re.compile(r"^[A-Z]{3}$")


class MappingError(DomainError, ValueError):
    """The mapping file cannot be used; the message starts with `file:line:`."""


@dataclass(frozen=True)
class DropRule:
    reason: str
    column: str
    values: tuple[str, ...] = ()
    blank: bool = False


@dataclass(frozen=True)
class RowFilter:
    column: str
    values: tuple[str, ...]


@dataclass
class TableMapping:
    table: str
    file: str | None
    where: RowFilter | None = None
    transform: str | None = None
    one_row_per: tuple[str, ...] = ()
    keep: str = "first"
    order_by: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    combine: dict[str, tuple[str, ...]] = field(default_factory=dict)
    constants: dict[str, Any] = field(default_factory=dict)
    dates: dict[str, str] = field(default_factory=dict)
    date_parts: dict[str, tuple[str, str]] = field(default_factory=dict)
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    drop_unmapped: dict[str, str] = field(default_factory=dict)
    drop: tuple[DropRule, ...] = ()
    rows: tuple[dict[str, Any], ...] = ()

    def source_columns(self) -> set[str]:
        """Every source column the mapping reads (all must exist in the file or be added by the transform)."""
        used = set(self.columns.values()) | set(self.dates) | {c for c, _ in self.date_parts.values()}
        used |= {c for parts in self.combine.values() for c in parts}
        used |= {rule.column for rule in self.drop}
        if self.where:
            used.add(self.where.column)
        if self.order_by:
            used.add(self.order_by)
        return used


@dataclass
class SourceMapping:
    path: Path
    name: str
    description: str
    currency: str
    tables: dict[str, TableMapping]
    unused_files: dict[str, str] = field(default_factory=dict)
    text: str = ""

    def error(self, message: str, *keys: str) -> MappingError:
        return MappingError(f"{self.path}:{line_of(self.text, *keys)}: {message}")

    def files(self) -> list[str]:
        return sorted({t.file for t in self.tables.values() if t.file})


# ---------------------------------------------------------------------------------------------- lines


def line_of(text: str, *keys: str) -> int:
    """1-based line of the most specific of `keys` found in order: each key is searched from the line where the
    previous one was found (e.g. ("tables.persons", "sex", '"Male"') finds the value map entry, not the first
    "Male" in the file). Falls back to the last key found, or line 1."""
    lines = text.splitlines()
    line = 0
    for key in keys:
        for i in range(line, len(lines)):
            if _mentions(lines[i], key):
                line = i
                break
    return line + 1


def _mentions(line: str, key: str) -> bool:
    stripped = line.split("#", 1)[0] if not key.startswith("#") else line
    if key.startswith("tables."):
        # A table is declared by a header ([tables.x], [tables.x.values.y], [[tables.x.drop]]).
        return re.search(r"^\s*\[\[?" + re.escape(key) + r"[\].]", stripped) is not None
    return re.search(r'(^|[\s{,\["])' + re.escape(key) + r'("?\s*=|"|\s*[,\]}]|$)', stripped) is not None


# ---------------------------------------------------------------------------------------------- loading


def resolve_mapping_path(name_or_path: str | Path) -> Path:
    """A mapping file path, or the name of a shipped mapping (`cld`, `synthea_flat`, ...)."""
    path = Path(name_or_path)
    if path.exists():
        return path
    shipped = MAPPINGS_DIR / f"{name_or_path}.toml"
    if shipped.exists():
        return shipped
    known = ", ".join(sorted(p.stem for p in MAPPINGS_DIR.glob("*.toml")))
    raise MappingError(f"{name_or_path}: no such mapping file, and no shipped mapping of that name ({known})")


def load_mapping(name_or_path: str | Path) -> SourceMapping:
    """Read and check a mapping file (everything that can be checked without the source files)."""
    path = resolve_mapping_path(name_or_path)
    text = path.read_text(encoding="utf-8")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(f"{path}: not valid TOML ({exc})") from exc
    mapping = SourceMapping(path=path, name=path.stem, description="", currency="", tables={}, text=text)
    unknown = set(raw) - {"source", "tables"}
    if unknown:
        key = sorted(unknown)[0]
        raise mapping.error(f"unknown section {key!r}: a mapping has [source] and [tables.<table>]", key)
    source = raw.get("source", {})
    _check_keys(mapping, source, _SOURCE_KEYS, "[source]", ("source",))
    mapping.description = str(source.get("description", ""))
    mapping.currency = str(source.get("currency", ""))
    if not _CURRENCY.match(mapping.currency):
        raise mapping.error(
            "[source] currency must be an ISO 4217 code such as GBP or USD (costs keep the source's currency)",
            "currency",
        )
    mapping.unused_files = {str(k): str(v) for k, v in source.get("unused_files", {}).items()}
    tables = raw.get("tables", {})
    if not tables:
        raise mapping.error("no [tables.<table>] section: the mapping fills no contract table")
    for name, spec in tables.items():
        mapping.tables[name] = _table_mapping(mapping, name, spec)
    return mapping


def _check_keys(
    mapping: SourceMapping, spec: dict[str, Any], allowed: set[str], where: str, at: tuple[str, ...]
) -> None:
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise mapping.error(
            f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})", *at, unknown[0]
        )


def _table_mapping(mapping: SourceMapping, name: str, spec: dict[str, Any]) -> TableMapping:
    at = f"tables.{name}"
    if name not in TABLES:
        raise mapping.error(f"unknown table {name!r}: contract tables are {', '.join(TABLES)}", at)
    table = TABLES[name]
    _check_keys(mapping, spec, _TABLE_KEYS, f"[{at}]", (at,))
    rows = tuple(spec.get("rows", ()))
    if bool(rows) == bool(spec.get("file")):
        raise mapping.error(f"[{at}] needs exactly one of `file` (a source file) or `rows` (rows given here)", at)
    inputs = {c.name for c in table.input_columns}

    def check_column(column: str, key: str) -> None:
        if column not in inputs:
            raise mapping.error(
                f"[{at}] {key}: {column!r} is not an input column of {name} ({', '.join(sorted(inputs))})",
                at,
                column,
            )

    for row in rows:
        for column in row:
            check_column(column, "rows")
    where = spec.get("where")
    row_filter = None
    if where is not None:
        if set(where) != {"column", "values"} or not isinstance(where["values"], list):
            raise mapping.error(f"[{at}] where needs {{ column = ..., values = [...] }}", at, "where")
        row_filter = RowFilter(str(where["column"]), tuple(str(v) for v in where["values"]))
    transform = spec.get("transform")
    if transform is not None and transform not in TRANSFORMS:
        raise mapping.error(
            f"[{at}] unknown transform {transform!r} (known: {', '.join(sorted(TRANSFORMS))})", at, "transform"
        )
    columns = {str(k): str(v) for k, v in spec.get("columns", {}).items()}
    constants = dict(spec.get("constants", {}))
    combine: dict[str, tuple[str, ...]] = {}
    for column, parts in spec.get("combine", {}).items():
        if not (isinstance(parts, list) and parts):
            raise mapping.error(f"[{at}] combine.{column} must be a list of source columns", at, column)
        combine[column] = tuple(str(p) for p in parts)
    date_parts: dict[str, tuple[str, str]] = {}
    for column, part in spec.get("date_parts", {}).items():
        if not (isinstance(part, list) and len(part) == 2 and part[1] in DATE_PARTS):
            raise mapping.error(f"[{at}] date_parts.{column} must be [source date column, year|month]", at, column)
        date_parts[column] = (str(part[0]), str(part[1]))
    groups: tuple[tuple[str, dict[str, Any]], ...] = (
        ("columns", columns),
        ("combine", combine),
        ("constants", constants),
        ("date_parts", date_parts),
    )
    for key, group in groups:
        for column in group:
            check_column(column, key)
    filled = [column for _, group in groups for column in group]
    twice = sorted({c for c in filled if filled.count(c) > 1})
    if twice:
        raise mapping.error(
            f"[{at}] {twice[0]!r} is filled more than once (columns, combine, constants, date_parts)", at
        )
    one_row_per = tuple(spec.get("one_row_per", ()))
    for column in one_row_per:
        check_column(column, "one_row_per")
    keep = spec.get("keep", "first")
    if keep not in KEEP_CHOICES:
        raise mapping.error(f"[{at}] keep must be one of {', '.join(KEEP_CHOICES)}", at, "keep")
    if spec.get("file"):
        missing = [c for c in table.required_columns if c not in filled]
        if missing:
            raise mapping.error(f"[{at}] required column(s) of {name} not filled: {', '.join(missing)}", at)
    values = _value_maps(mapping, table, at, spec, set(filled))
    drop_unmapped = {str(k): str(v) for k, v in spec.get("drop_unmapped", {}).items()}
    for column in drop_unmapped:
        if column not in values:
            raise mapping.error(f"[{at}] drop_unmapped.{column}: {column!r} has no value map", at, column)
    return TableMapping(
        table=name,
        file=str(spec["file"]) if spec.get("file") else None,
        where=row_filter,
        transform=transform,
        one_row_per=one_row_per,
        keep=keep,
        order_by=str(spec["order_by"]) if spec.get("order_by") else None,
        columns=columns,
        combine=combine,
        constants=constants,
        dates={str(k): str(v) for k, v in spec.get("dates", {}).items()},
        date_parts=date_parts,
        values=values,
        drop_unmapped=drop_unmapped,
        drop=tuple(_drop_rule(mapping, at, i, rule) for i, rule in enumerate(spec.get("drop", ()))),
        rows=rows,
    )


def _value_maps(
    mapping: SourceMapping, table: Table, at: str, spec: dict[str, Any], filled: set[str]
) -> dict[str, dict[str, str]]:
    """Inline value maps and CSV value maps; every target must be a value the contract accepts."""
    maps: dict[str, dict[str, str]] = {}
    for column, pairs in spec.get("values", {}).items():
        if not isinstance(pairs, dict):
            raise mapping.error(f"[{at}] values.{column} must be a table of source value = contract value", at, column)
        maps[column] = {str(k): str(v) for k, v in pairs.items()}
    for column, file_name in spec.get("value_files", {}).items():
        maps[column] = maps.get(column, {}) | _read_value_file(mapping, at, column, mapping.path.parent / file_name)
    for column, pairs in maps.items():
        if column not in filled:
            raise mapping.error(f"[{at}] value map for {column!r}, which the mapping does not fill", at, column)
        accepted = table.column(column).allowed_values()
        bad = sorted({v for v in pairs.values() if accepted is not None and v not in accepted})
        if bad:
            source_value = next(k for k, v in pairs.items() if v == bad[0])
            raise mapping.error(
                f"[{at}] value map for {column}: {bad[0]!r} is not a code of the {table.column(column).codelist} "
                f"code list (accepted: {', '.join(sorted(accepted or ()))})",
                at,
                column,
                source_value,
            )
    return maps


def _read_value_file(mapping: SourceMapping, at: str, column: str, path: Path) -> dict[str, str]:
    """A CSV value map: its first two columns are the source value and the contract value (others are notes)."""
    if not path.exists():
        raise mapping.error(f"[{at}] value_files.{column}: {path.name} not found beside the mapping", at, column)
    with open(path, newline="", encoding="utf-8") as fh:
        rows = [row for row in csv.reader(line for line in fh if not line.startswith("#"))]
    return {row[0]: row[1] for row in rows[1:] if len(row) >= 2 and row[1]}


def _drop_rule(mapping: SourceMapping, at: str, index: int, rule: dict[str, Any]) -> DropRule:
    allowed = {"reason", "column", "values", "blank"}
    _check_keys(mapping, rule, allowed, f"[[{at}.drop]] #{index + 1}", (f"{at}.drop",))
    if not rule.get("reason") or not rule.get("column") or bool(rule.get("values")) == bool(rule.get("blank")):
        raise mapping.error(
            f"[[{at}.drop]] #{index + 1} needs a reason, a column, and either values = [...] or blank = true",
            f"{at}.drop",
        )
    return DropRule(
        str(rule["reason"]), str(rule["column"]), tuple(str(v) for v in rule.get("values", ())), bool(rule.get("blank"))
    )
