"""Declarative source mappings: how one source's files become a contract batch, read from a TOML file.

A mapping file says, for each contract table it fills, which source file feeds it and how:

    [source]
    description = "..."              # what the source is (shown in the batch metadata)
    currency = "GBP"                 # ISO 4217 code of every cost in the source; costs are never converted
    unused_files = { "x.csv" = "why this mapping ignores it" }

    [tables.<contract table>]
    file = "events.csv"              # a CSV or Parquet file in the source folder
    where = { column = "CLASS", in = ["a", "b"] }       # only these rows feed this table (one routing rule)
    shares_rows_with = ["persons"]   # this table's rows may also feed these tables (else a row feeds one table)
    transform = "synthea_admission_method"               # a named transform (data_contracts.sources)
    one_row_per = ["person_id"]      # collapse to the table's grain: keep the first or last row ...
    keep = "last"                    # ... by `order_by` (a source column), counting the rest as dropped
    order_by = "Event_Start_Date"
    columns = { person_id = "Der_NHS_Number_Traced_Pseudo" }   # contract column = source column
    combine = { prescription_id = ["ENCOUNTER", "CODE"] }       # contract column = source columns joined by "|"
    constants = { la_code = "E09000001" }                       # contract column = the same value on every row
    dates = { Event_Start_Date = "%d/%m/%Y" }                   # source column = its strptime format
    date_parts = { birth_year = ["BIRTHDATE", "year"] }         # contract column = [date column, year|month]
    value_files = { condition = "snomed_conditions.csv" }       # a CSV value map beside the mapping: first column
                                                                # -> second (or { file = ..., column = ... }, or a
                                                                # list of files: the first that has a value wins)
    drop_unmapped = { condition = "reason" }                    # a value the map lacks drops the row, counted
    [tables.<contract table>.values.<contract column>]          # source value = contract value
    "Male" = "1"
    [[tables.<contract table>.drop]]                            # rows dropped, counted, with a stated reason
    reason = "no traced NHS number: cannot be linked"
    column = "Der_NHS_Number_Traced_Pseudo"
    blank = true                     # or: values = ["x", "y"]

    [[tables.<contract table>.rules]]                           # routing rules instead of one `where`
    name = "telephone contacts"      # how the import report names the rule
    where = { all = [ { column = "CLASS", equals = "ambulatory" },
                      { column = "CODE", in_file = "types.csv", select = { gp_event_type = "telephone" } } ] }
    set = { event_type = "telephone" }                          # contract column = value, on this rule's rows
    [[tables.teams.rows]]            # a table given row by row in the mapping (no source file)
    gp_practice = "SYN001"

A routing condition is one test on a source column (`equals = "v"`, `in = ["v", ...]`, `in_file = "codes.csv"`:
the first column of a CSV beside the mapping, optionally only its rows whose other columns `select` names, or
`pattern = "regex"`, which the whole value must match) or a combination: `{ all = [...] }`, `{ any = [...] }`,
`{ not = {...} }`. A source row reaches at most one rule: a row that two rules claim is an error naming both
(file and line), unless their tables declare `shares_rows_with`. A table without a rule takes every row.

Dates: `dates = { START = "%d/%m/%Y" }` must match the whole value (`%#z` reads an offset or `Z`; the date is the
local one); a value that is not a real date under it (31/04/2025) is never shifted: it is passed on unchanged for
the ingest to quarantine, and counted as a warning naming the format's line.

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
    "rules",
    "shares_rows_with",
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
class Condition:
    """A routing condition: one test on a source column (`op` equals, in, in_file or pattern) or a combination of
    conditions (`op` all, any or not)."""

    op: str
    column: str | None = None
    values: tuple[str, ...] = ()  # equals, in, in_file: the values that pass
    pattern: str | None = None  # pattern: a regular expression the whole value matches
    parts: tuple[Condition, ...] = ()
    source: str = ""  # in_file: the file (and selection) the values came from

    def columns(self) -> tuple[str, ...]:
        """The source columns the condition tests, in the order it names them."""
        own = (self.column,) if self.column else ()
        return tuple(dict.fromkeys(own + tuple(c for part in self.parts for c in part.columns())))

    def describe(self) -> str:
        if self.op in ("all", "any"):
            return "(" + f" {'and' if self.op == 'all' else 'or'} ".join(p.describe() for p in self.parts) + ")"
        if self.op == "not":
            return f"not {self.parts[0].describe()}"
        if self.op == "pattern":
            return f"{self.column} matches {self.pattern!r}"
        if self.op == "in_file":
            return f"{self.column} in {self.source}"
        if self.op == "equals":
            return f"{self.column} = {self.values[0]}"
        return f"{self.column} in [{', '.join(self.values)}]"


@dataclass(frozen=True)
class RoutingRule:
    """Which rows of the table's source file the table takes (and contract values set on them)."""

    table: str
    name: str
    line: int
    condition: Condition | None  # None: every row
    set: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"[tables.{self.table}] rule {self.name!r} (line {self.line})"


@dataclass
class TableMapping:
    table: str
    file: str | None
    rules: tuple[RoutingRule, ...] = ()
    shares_rows_with: tuple[str, ...] = ()
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
        for rule in self.rules:
            used |= set(rule.condition.columns()) if rule.condition else set()
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

    def error(self, message: str, *keys: str, line: int | None = None) -> MappingError:
        """An error at `line`, or at the line of the most specific of `keys` (see `line_of`)."""
        return MappingError(f"{self.path}:{line or line_of(self.text, *keys)}: {message}")

    def files(self) -> list[str]:
        return sorted({t.file for t in self.tables.values() if t.file})

    def line(self, *keys: str) -> int:
        return line_of(self.text, *keys)

    def shares_rows(self, table_a: str, table_b: str) -> bool:
        """True when the mapping declares that rows of one file may feed both tables."""
        return table_b in self.tables[table_a].shares_rows_with or table_a in self.tables[table_b].shares_rows_with


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


def header_lines(text: str, header: str) -> list[int]:
    """1-based lines of every `[[header]]` (an array-of-tables entry), in order."""
    pattern = re.compile(r"^\s*\[\[\s*" + re.escape(header) + r"\s*\]\]")
    return [i for i, row in enumerate(text.splitlines(), start=1) if pattern.match(row)]


def _mentions(line: str, key: str) -> bool:
    stripped = line.split("#", 1)[0] if not key.startswith("#") else line
    if key.startswith("tables."):
        # A table is declared by a header ([tables.x], [tables.x.values.y], [[tables.x.drop]]).
        return re.search(r"^\s*\[\[?" + re.escape(key) + r"[\].]", stripped) is not None
    if re.search(r"^\s*\[\[?[^\]]*\." + re.escape(key) + r"\]", stripped):  # a sub-table: [tables.x.where]
        return True
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
    for table in mapping.tables.values():
        for other in table.shares_rows_with:
            if other not in mapping.tables or mapping.tables[other].file != table.file:
                raise mapping.error(
                    f"[tables.{table.table}] shares_rows_with: {other!r} is not a table of this mapping fed by "
                    f"{table.file}",
                    f"tables.{table.table}",
                    "shares_rows_with",
                )
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
    rules = _routing_rules(mapping, name, spec)
    for rule in rules:
        for column in rule.set:
            check_column(column, f"rule {rule.name!r} set")
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
        set_by_every_rule = set.intersection(*(set(r.set) for r in rules)) if rules else set()
        missing = [c for c in table.required_columns if c not in filled and c not in set_by_every_rule]
        if missing:
            raise mapping.error(f"[{at}] required column(s) of {name} not filled: {', '.join(missing)}", at)
    for rule in rules:
        for column, value in rule.set.items():
            _check_code(mapping, table, at, column, value, (), f"rule {rule.name!r} set ", rule.line)
    values = _value_maps(mapping, table, at, spec, set(filled))
    drop_unmapped = {str(k): str(v) for k, v in spec.get("drop_unmapped", {}).items()}
    for column in drop_unmapped:
        if column not in values:
            raise mapping.error(f"[{at}] drop_unmapped.{column}: {column!r} has no value map", at, column)
    return TableMapping(
        table=name,
        file=str(spec["file"]) if spec.get("file") else None,
        rules=rules,
        shares_rows_with=tuple(str(t) for t in spec.get("shares_rows_with", ())),
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
    for column, sources in spec.get("value_files", {}).items():
        from_files: dict[str, str] = {}
        for source in sources if isinstance(sources, list) else [sources]:
            file_name, value_column = (
                (source.get("file"), source.get("column")) if isinstance(source, dict) else (source, None)
            )
            if not isinstance(file_name, str) or (isinstance(source, dict) and set(source) - {"file", "column"}):
                raise mapping.error(
                    f"[{at}] value_files.{column} must be a file name, {{ file = ..., column = ... }} or a list",
                    at,
                    column,
                )
            path = mapping.path.parent / file_name
            from_files = _read_value_file(mapping, at, column, path, value_column) | from_files  # the first file wins
        maps[column] = maps.get(column, {}) | from_files
    for column, pairs in maps.items():
        if column not in filled:
            raise mapping.error(f"[{at}] value map for {column!r}, which the mapping does not fill", at, column)
        for source_value, value in sorted(pairs.items(), key=lambda kv: kv[1]):
            _check_code(mapping, table, at, column, value, (at, column, source_value), "value map for ")
    return maps


def _check_code(
    mapping: SourceMapping,
    table: Table,
    at: str,
    column: str,
    value: str,
    keys: tuple[str, ...],
    what: str = "",
    line: int | None = None,
) -> None:
    """A contract value the mapping writes must be a code the contract accepts."""
    accepted = table.column(column).allowed_values()
    if accepted is not None and value not in accepted:
        raise mapping.error(
            f"[{at}] {what}{column}: {value!r} is not a code of the {table.column(column).codelist} code list "
            f"(accepted: {', '.join(sorted(accepted))})",
            *keys,
            line=line,
        )


def _read_csv_beside(mapping: SourceMapping, path: Path, what: str, *keys: str) -> list[list[str]]:
    """A reference CSV beside the mapping (lines starting with # are its provenance notes): header and rows."""
    if not path.exists():
        raise mapping.error(f"{what}: {path.name} not found beside the mapping", *keys)
    with open(path, newline="", encoding="utf-8") as fh:
        return [row for row in csv.reader(line for line in fh if not line.startswith("#"))]


def _read_value_file(
    mapping: SourceMapping, at: str, column: str, path: Path, value_column: str | None = None
) -> dict[str, str]:
    """A CSV value map: its first column is the source value, the contract value is its second column (or the
    column named `value_column`); other columns are notes. Rows with no contract value are not in the map."""
    rows = _read_csv_beside(mapping, path, f"[{at}] value_files.{column}", at, column)
    index = 1
    if value_column is not None:
        if not rows or value_column not in rows[0]:
            raise mapping.error(f"[{at}] value_files.{column}: {path.name} has no column {value_column!r}", at, column)
        index = rows[0].index(value_column)
    return {row[0]: row[index] for row in rows[1:] if len(row) > index and row[index]}


# ---------------------------------------------------------------------------------------------- routing

_TESTS = ("equals", "in", "values", "in_file", "pattern")  # `values` is the older spelling of `in`
_COMBINATIONS = ("all", "any", "not")


def _routing_rules(mapping: SourceMapping, table: str, spec: dict[str, Any]) -> tuple[RoutingRule, ...]:
    at = f"tables.{table}"
    if "where" in spec and "rules" in spec:
        raise mapping.error(f"[{at}] has both `where` and `rules`: give one routing rule or a list", at, "rules")
    if "where" in spec:
        line = mapping.line(at, "where")
        return (RoutingRule(table, "where", line, _condition(mapping, at, spec["where"], line)),)
    raw_rules = spec.get("rules", [])
    if not isinstance(raw_rules, list):
        raise mapping.error(f"[{at}] rules must be a list ([[{at}.rules]] entries)", at, "rules")
    headers = header_lines(mapping.text, f"{at}.rules")
    rules: list[RoutingRule] = []
    for i, raw in enumerate(raw_rules):
        line = headers[i] if i < len(headers) else mapping.line(at, "rules")
        where = f"[[{at}.rules]] #{i + 1}"
        if (
            not isinstance(raw, dict)
            or set(raw) - {"name", "where", "set"}
            or not raw.get("name")
            or "where" not in raw
        ):
            raise mapping.error(f"{where} needs a name, a where and optionally set = {{...}}", line=line)
        names = [r.name for r in rules]
        if str(raw["name"]) in names:
            raise mapping.error(f"{where}: rule name {raw['name']!r} used twice in [{at}]", line=line)
        settings = raw.get("set", {})
        if not isinstance(settings, dict):
            raise mapping.error(f"{where}: set must be {{ contract column = value }}", line=line)
        condition = _condition(mapping, at, raw["where"], line)
        rules.append(
            RoutingRule(table, str(raw["name"]), line, condition, {str(k): str(v) for k, v in settings.items()})
        )
    return tuple(rules)


def _condition(mapping: SourceMapping, at: str, spec: Any, line: int) -> Condition:
    """A routing condition from its TOML form (see the module docstring)."""

    def fail(message: str) -> MappingError:
        return mapping.error(f"[{at}] where: {message}", line=line)

    if not isinstance(spec, dict):
        raise fail("a condition is a table: { column = ..., equals|in|in_file|pattern = ... } or { all|any|not = ... }")
    combination = [k for k in _COMBINATIONS if k in spec]
    if combination:
        op = combination[0]
        if len(spec) != 1:
            raise fail(f"{op} stands alone in its condition (found {', '.join(sorted(spec))})")
        parts = [spec[op]] if op == "not" else spec[op]
        if not isinstance(parts, list) or not parts:
            raise fail(f"{op} needs a non-empty list of conditions")
        return Condition(op, parts=tuple(_condition(mapping, at, part, line) for part in parts))
    tests = [k for k in _TESTS if k in spec]
    extra = set(spec) - {"column", "select", *_TESTS}
    if "column" not in spec or len(tests) != 1 or extra or ("select" in spec and tests != ["in_file"]):
        raise fail(
            f"a test needs a column and exactly one of {', '.join(_TESTS[:1] + _TESTS[2:])} "
            f"(select only with in_file); found {', '.join(sorted(spec)) or 'nothing'}"
        )
    column, op = str(spec["column"]), tests[0]
    value = spec[op]
    if op == "equals":
        return Condition("equals", column, (str(value),))
    if op in ("in", "values"):
        if not isinstance(value, list):
            raise fail(f"{op} needs a list of values")
        return Condition("in", column, tuple(str(v) for v in value))
    if op == "pattern":
        try:
            re.compile(str(value))
        except re.error as exc:
            raise fail(f"pattern {value!r} is not a regular expression ({exc})") from exc
        return Condition("pattern", column, pattern=str(value))
    return _in_file(mapping, at, column, str(value), spec.get("select", {}), fail)


def _in_file(mapping: SourceMapping, at: str, column: str, file_name: str, select: Any, fail: Any) -> Condition:
    """The codes of a code list file (its first column), optionally only the rows `select` names."""
    rows = _read_csv_beside(mapping, mapping.path.parent / file_name, f"[{at}] where in_file", at, file_name)
    if not rows:
        raise fail(f"{file_name} is empty")
    header, body = rows[0], rows[1:]
    if not isinstance(select, dict):
        raise fail("select must be { file column = value or [values] }")
    wanted: dict[int, set[str]] = {}
    for key, accepted in select.items():
        if key not in header:
            raise fail(f"select: {file_name} has no column {key!r} (its columns: {', '.join(header)})")
        wanted[header.index(key)] = {str(v) for v in accepted} if isinstance(accepted, list) else {str(accepted)}
    codes = tuple(row[0] for row in body if row and all(len(row) > i and row[i] in vals for i, vals in wanted.items()))
    if not codes:
        raise fail(f"no code of {file_name} is selected by {select}")
    selection = ", ".join(f"{k} = {v}" for k, v in select.items())
    return Condition("in_file", column, codes, source=f"{file_name}" + (f" ({selection})" if selection else ""))


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
