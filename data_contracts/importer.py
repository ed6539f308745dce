"""Apply a source mapping (`data_contracts.mapping`) to a folder of source files and write a contract batch.

The batch is what `riskstrat ingest` reads: one `<table>.csv` per contract table the mapping fills and a
`batch.json` with the batch id, extract date, currency and the import's reconciliation. The importer only
reshapes: it renames, maps values, reformats dates and drops rows the mapping names with a reason. It does not
judge values (the ingest validates every row against the contract and quarantines what fails), so the journey
of every source row is: taken by a table or not (with a reason), then written or dropped with a reason, then
loaded, quarantined or excluded by the ingest.

Per table, rows in = rows written + rows dropped (by reason); per source file, rows read = rows taken by a routing
rule (counted per rule, by the values of the routing columns) + rows no rule takes (by those values). A row that
two rules claim is an error naming both. A file may feed several tables only where the mapping declares it
(`shares_rows_with`: a CLD file gives events and persons), and its rows are then accounted for once per table.

Warnings (logged, and recorded in `batch.json` for the ingest to raise as data-quality warnings, with counts),
each naming the mapping file and line: a routed table that receives no rows; a table whose share of the activity
is far from what the source's other tables imply (`ACTIVITY_SHARE_FACTOR`, against national activity per person
in `reference/activity_rates.csv`); values of a date column that are not real dates under the declared format
(passed on unchanged, never shifted, for the ingest to quarantine).
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from data_contracts.batch import Manifest, write_batch
from data_contracts.errors import DomainError
from data_contracts.mapping import Condition, MappingError, RoutingRule, SourceMapping, TableMapping, load_mapping
from data_contracts.reference import REFERENCE_DIR
from data_contracts.sources import TRANSFORMS
from data_contracts.tables import TABLES
from data_contracts.validation import DATE_FORMAT, FileRejected, clean_text

log = logging.getLogger("riskstrat.import")

IMPORT_KIND = "import"
"""The kind of batch an import writes (batch.json "kind")."""
SOURCE_SUFFIXES = (".csv", ".parquet")
DATABASE_SUFFIXES = (".duckdb", ".db")
RULE_COLUMN = "_routing_rule"
"""Added to a table's source rows while importing: the name of the routing rule that took the row."""
ACTIVITY_SHARE_FACTOR = 10.0
"""A table whose rows are more than this factor (an order of magnitude) from what the source's other activity tables
imply at national activity per person (`reference/activity_rates.csv`) is a warning: rows were lumped elsewhere or
lost by the routing. Places and synthetic sources differ from the national mix by less (Synthea: within 5)."""
ACTIVITY_SHARE_MIN_EXPECTED = 20.0
"""Shares are judged only where the other tables imply at least this many rows (fewer are too few to judge)."""
ACTIVITY_RATES = REFERENCE_DIR / "activity_rates.csv"


@dataclass
class TableImport:
    table: str
    file: str | None  # None for rows given in the mapping itself
    rows_in: int
    rows_written: int
    dropped: dict[str, int] = field(default_factory=dict)
    bad_dates: dict[str, int] = field(default_factory=dict)  # source column -> values not a date (passed on)

    def reconciles(self) -> bool:
        return self.rows_in == self.rows_written + sum(self.dropped.values())


@dataclass
class RuleImport:
    """Rows of a file that one routing rule took, by the values of the file's routing columns."""

    table: str
    rule: str
    line: int
    rows: int
    by_value: dict[str, int] = field(default_factory=dict)


@dataclass
class FileImport:
    file: str
    rows_read: int
    tables: list[str]
    not_taken: dict[str, int] = field(default_factory=dict)
    rules: list[RuleImport] = field(default_factory=list)


@dataclass
class ImportWarning:
    """Something the import did not refuse but a reader must see (also raised by the ingest, with counts)."""

    kind: str  # "empty_table" | "activity_share" | "bad_date"
    table: str
    message: str  # starts with "<mapping file>:<line>:"
    rows: int
    expected: float | None = None


class ExtractDateMissing(DomainError, ValueError):
    """An import without the source's extract date (it never comes from the data)."""


@dataclass
class ImportReport:
    batch_id: str
    batch_dir: Path
    mapping: str
    currency: str
    extract_date: date
    tables: list[TableImport]
    files: list[FileImport]
    unused_files: dict[str, str]
    warnings: list[ImportWarning] = field(default_factory=list)

    def details(self, mapping: SourceMapping) -> dict[str, Any]:
        """The import's own part of the batch manifest (beside the batch id, extract date, currency, files)."""
        return {
            "source": {
                "mapping": self.mapping,
                "mapping_sha256": hashlib.sha256(mapping.text.encode()).hexdigest(),
                "description": mapping.description,
                "unused_files": self.unused_files,
            },
            "import": {
                "files": [asdict(f) for f in self.files],
                "tables": [asdict(t) for t in self.tables],
                "warnings": [asdict(w) for w in self.warnings],
            },
        }


def recorded_warnings(manifest: Manifest | None) -> list[ImportWarning]:
    """The import's warnings recorded in a batch's manifest (none for a batch that was not imported)."""
    if manifest is None:
        return []
    try:
        return [ImportWarning(**w) for w in manifest.details.get("import", {}).get("warnings", [])]
    except (TypeError, AttributeError):  # a manifest written otherwise: its warnings are not the import's
        return []


class SourceFolder:
    """The source files, read once each, every value as text (so nothing is guessed before the contract checks).

    A mapping names a file as `VISIT_OCCURRENCE.csv`; an export that wrote `visit_occurrence.parquet` (or any other
    case of the name, CSV or Parquet) is found too: exports differ in case and format, not in content. The source
    may also be a DuckDB database file, whose tables stand for the files of the same name (any schema)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.is_database = self.directory.is_file() and self.directory.suffix in DATABASE_SUFFIXES
        self._frames: dict[str, pl.DataFrame] = {}
        self._transformed: dict[tuple[str, str], pl.DataFrame] = {}
        self._entries = self._database_tables() if self.is_database else self._files()

    def _files(self) -> dict[str, str]:
        return {p.name: str(p) for p in sorted(self.directory.iterdir()) if p.is_file() and p.suffix in SOURCE_SUFFIXES}

    def _database_tables(self) -> dict[str, str]:
        with duckdb.connect(str(self.directory), read_only=True) as con:
            rows = con.execute(
                "SELECT table_schema, table_name FROM information_schema.tables ORDER BY table_schema, table_name"
            ).fetchall()
        return {name: f'"{schema}"."{name}"' for schema, name in rows}

    def names(self) -> list[str]:
        """Every file (or database table) the source holds."""
        return list(self._entries)

    def locate(self, file_name: str) -> str | None:
        """The file's path (or the table's qualified name) for a file the mapping names, or None."""
        if file_name in self._entries:
            return self._entries[file_name]
        stem = Path(file_name).stem.lower()
        return next((where for name, where in self._entries.items() if Path(name).stem.lower() == stem), None)

    def name_of(self, file_name: str) -> str | None:
        where = self.locate(file_name)
        return next((name for name, w in self._entries.items() if w == where), None) if where else None

    def has(self, file_name: str) -> bool:
        return self.locate(file_name) is not None

    def transformed(self, file_name: str, transform_name: str) -> pl.DataFrame:
        """The file's rows with the columns a named transform adds (computed once per file and transform)."""
        key = (file_name, transform_name)
        if key not in self._transformed:
            transform, frame = TRANSFORMS[transform_name], self.read(file_name)
            out = transform.function(frame, self)
            if out.height != frame.height:
                raise RuntimeError(f"transform {transform.name} changed the row count ({frame.height} -> {out.height})")
            self._transformed[key] = out
        return self._transformed[key]

    def read(self, file_name: str) -> pl.DataFrame:
        if file_name not in self._frames:
            where = self.locate(file_name)
            if where is None:
                raise FileRejected(f"{self.directory / file_name}: no such file (CSV or Parquet) or table")
            try:
                if self.is_database:
                    with duckdb.connect(str(self.directory), read_only=True) as con:
                        frame = con.sql(f"SELECT * FROM {where}").pl().with_columns(pl.all().cast(pl.String))
                elif where.endswith(".parquet"):
                    frame = pl.read_parquet(where).with_columns(pl.all().cast(pl.String))
                else:
                    frame = pl.read_csv(where, infer_schema=False, raise_if_empty=False)
            except Exception as exc:  # any reader error: the file as a whole is unusable
                first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                raise FileRejected(f"{where}: cannot be read ({type(exc).__name__}: {first_line})") from exc
            self._frames[file_name] = frame
        return self._frames[file_name]


# ---------------------------------------------------------------------------------------------- one table


def _parsed_date(mapping: TableMapping, column: str) -> pl.Expr:
    """A source date column as a Date by its declared format (else ISO), which must match the whole value: a value
    that is not a real date under it (31/04/2025, 29/02/2025) is null, never shifted."""
    fmt = mapping.dates.get(column, DATE_FORMAT)
    return clean_text(pl.col(column)).str.to_date(fmt, strict=False, exact=True)


def _date_sources(mapping: TableMapping) -> list[str]:
    """Source columns read as dates: those feeding a contract date column, a date part or the collapse order."""
    table = TABLES[mapping.table]
    sources = [s for c, s in mapping.columns.items() if table.column(c).type == "date"]
    sources += [s for s, _ in mapping.date_parts.values()]
    sources += [mapping.order_by] if mapping.order_by else []
    return list(dict.fromkeys(sources))


def _bad_dates(mapping: TableMapping, frame: pl.DataFrame) -> dict[str, int]:
    """Per source date column: values present that are not a real date under the declared format."""
    counts = frame.select(
        (clean_text(pl.col(c)).is_not_null() & _parsed_date(mapping, c).is_null()).sum().alias(c)
        for c in _date_sources(mapping)
    )
    return {c: int(n) for c, n in counts.row(0, named=True).items() if n} if counts.width else {}


_DATE_PART_PATTERNS = {"%Y": r"(?P<Y>\d{4})", "%m": r"(?P<m>\d{1,2})", "%d": r"(?P<d>\d{1,2})"}


def _as_written_iso(fmt: str, text: pl.Expr) -> pl.Expr | None:
    """A value in the day-month-year format `fmt` rewritten digit for digit as YYYY-MM-DD, without checking that
    the day exists (31/04/2025 -> 2025-04-31), so the ingest quarantines it as `bad_date`; None for formats with
    more than day, month and year."""
    pattern, rest = "", fmt
    while rest:
        part = rest[:2]
        if part in _DATE_PART_PATTERNS:
            pattern, rest = pattern + _DATE_PART_PATTERNS[part], rest[2:]
        elif rest[0] == "%":
            return None
        else:
            pattern, rest = pattern + re.escape(rest[0]), rest[1:]
    if sorted(_DATE_PART_PATTERNS) != sorted(p for p in _DATE_PART_PATTERNS if p in fmt):
        return None
    parts = text.str.extract_groups(f"^{pattern}$")
    return pl.concat_str(
        parts.struct.field("Y"),
        pl.lit("-"),
        parts.struct.field("m").str.zfill(2),
        pl.lit("-"),
        parts.struct.field("d").str.zfill(2),
    )


def _contract_value(mapping: TableMapping, column: str, source: str) -> pl.Expr:
    text = clean_text(pl.col(source))
    if TABLES[mapping.table].column(column).type == "date":
        # A value that is not a real date under the format is passed on (in ISO order where its parts can be
        # read) for the ingest to quarantine: never shifted to a neighbouring day.
        as_written = _as_written_iso(mapping.dates.get(source, DATE_FORMAT), text)
        fallback = [as_written, text] if as_written is not None else [text]
        text = pl.coalesce(_parsed_date(mapping, source).dt.strftime(DATE_FORMAT), *fallback)
    if column in mapping.values:
        text = text.replace(mapping.values[column])
    return text


def _drop_mask(frame: pl.DataFrame, rule_column: str, values: tuple[str, ...], blank: bool) -> pl.Series:
    text = frame.select(clean_text(pl.col(rule_column))).to_series()
    return text.is_null() if blank else text.is_in(list(values)).fill_null(False)


def _one_row_per(frame: pl.DataFrame, mapping: TableMapping) -> tuple[pl.DataFrame, int]:
    """Keep one row per `one_row_per` key: the first or last by `_order` (the parsed `order_by`), file order
    breaking ties. Returns the kept rows and how many were collapsed."""
    ordered = frame.with_row_index("_file_row")
    if "_order" in ordered.columns:
        ordered = ordered.sort(["_order", "_file_row"], nulls_last=False)
    kept = ordered.unique(list(mapping.one_row_per), keep=mapping.keep, maintain_order=True).sort("_file_row")
    return kept.drop("_file_row"), frame.height - kept.height


def _collapse_reason(mapping: TableMapping) -> str:
    which = f"{mapping.keep} by {mapping.order_by}" if mapping.order_by else f"{mapping.keep} in the file"
    return f"another row for the same {', '.join(mapping.one_row_per)} was kept ({which})"


def import_table(mapping: TableMapping, frame: pl.DataFrame) -> tuple[pl.DataFrame, TableImport]:
    """One contract table from the rows of its source file (already transformed and routed: `RULE_COLUMN` names
    the rule that took each row, when the mapping's rules set values)."""
    table = TABLES[mapping.table]
    result = TableImport(mapping.table, mapping.file, frame.height, 0, bad_dates=_bad_dates(mapping, frame))
    for rule in mapping.drop:
        mask = _drop_mask(frame, rule.column, rule.values, rule.blank)
        if mask.any():
            result.dropped[rule.reason] = result.dropped.get(rule.reason, 0) + int(mask.sum())
            frame = frame.filter(~mask)
    exprs = {c: _contract_value(mapping, c, s) for c, s in mapping.columns.items()}
    exprs |= {
        c: pl.concat_str([clean_text(pl.col(s)).fill_null("") for s in sources], separator="|")
        for c, sources in mapping.combine.items()
    }
    exprs |= {c: pl.lit(str(v)) for c, v in mapping.constants.items()}
    for column, (source, part) in mapping.date_parts.items():
        parsed = _parsed_date(mapping, source)
        exprs[column] = (parsed.dt.year() if part == "year" else parsed.dt.month()).cast(pl.String)
    for column in dict.fromkeys(c for rule in mapping.rules for c in rule.set):
        value = exprs.get(column, pl.lit(None, dtype=pl.String))
        for rule in mapping.rules:
            if column in rule.set:
                value = pl.when(pl.col(RULE_COLUMN) == rule.name).then(pl.lit(rule.set[column])).otherwise(value)
        exprs[column] = value
    order = [_parsed_date(mapping, mapping.order_by).alias("_order")] if mapping.order_by else []
    shaped = frame.select(*(e.alias(c) for c, e in exprs.items()), *order)
    for column, reason in mapping.drop_unmapped.items():
        # The value was not in the map when it did not change and is not itself a target of the map.
        source_text = frame.select(clean_text(pl.col(mapping.columns[column]))).to_series()
        unmapped = source_text.is_not_null() & ~source_text.is_in(list(mapping.values[column]))
        if unmapped.any():
            result.dropped[reason] = result.dropped.get(reason, 0) + int(unmapped.sum())
            shaped, frame = shaped.filter(~unmapped), frame.filter(~unmapped)
    if mapping.one_row_per:
        shaped, collapsed = _one_row_per(shaped, mapping)
        if collapsed:
            result.dropped[_collapse_reason(mapping)] = collapsed
    columns = [c.name for c in table.input_columns if c.name in shaped.columns]
    out = shaped.select(columns)
    result.rows_written = out.height
    return out, result


def _rows_table(mapping: TableMapping) -> tuple[pl.DataFrame, TableImport]:
    rows = [{k: None if v is None else str(v) for k, v in row.items()} for row in mapping.rows]
    columns = [c.name for c in TABLES[mapping.table].input_columns if any(c.name in r for r in rows)]
    frame = pl.DataFrame({c: [r.get(c) for r in rows] for c in columns}, schema=dict.fromkeys(columns, pl.String))
    return frame, TableImport(mapping.table, None, frame.height, frame.height)


# ---------------------------------------------------------------------------------------------- one source


def _source_frame(mapping: SourceMapping, table: TableMapping, source: SourceFolder) -> pl.DataFrame:
    assert table.file is not None
    if not source.has(table.file):
        raise mapping.error(
            f"source file {table.file} not found in {source.directory}", f"tables.{table.table}", "file"
        )
    frame = source.transformed(table.file, table.transform) if table.transform else source.read(table.file)
    missing = sorted(table.source_columns() - set(frame.columns))
    if missing:
        added = f" plus {', '.join(TRANSFORMS[table.transform].adds)} from {table.transform}" if table.transform else ""
        raise mapping.error(
            f"[tables.{table.table}] unknown column {missing[0]!r}: not in {table.file} "
            f"(its columns: {', '.join(source.read(table.file).columns)}{added})",
            f"tables.{table.table}",
            missing[0],
        )
    return frame


def condition_expr(condition: Condition) -> pl.Expr:
    """True where a source row meets the routing condition (a blank value meets no test)."""
    if condition.op in ("all", "any"):
        parts = [condition_expr(part) for part in condition.parts]
        return pl.all_horizontal(parts) if condition.op == "all" else pl.any_horizontal(parts)
    if condition.op == "not":
        return ~condition_expr(condition.parts[0])
    text = clean_text(pl.col(str(condition.column)))
    if condition.op == "pattern":
        return text.str.contains(f"^(?:{condition.pattern})$").fill_null(False)
    return text.is_in(list(condition.values)).fill_null(False)


def table_rules(mapping: SourceMapping, table: TableMapping) -> tuple[RoutingRule, ...]:
    """The table's routing rules; a table without one takes every row of its file."""
    return table.rules or (RoutingRule(table.table, "every row", mapping.line(f"tables.{table.table}"), None),)


@dataclass
class _Routed:
    """One table's source rows with the claim of each of its rules."""

    table: TableMapping
    frame: pl.DataFrame
    claims: list[tuple[RoutingRule, pl.Series]]


def _route(mapping: SourceMapping, table: TableMapping, frame: pl.DataFrame) -> _Routed:
    claims = [
        (rule, frame.select(condition_expr(rule.condition) if rule.condition else pl.repeat(True, frame.height)))
        for rule in table_rules(mapping, table)
    ]
    return _Routed(table, frame, [(rule, claim.to_series()) for rule, claim in claims])


def _routing_columns(routed: list[_Routed]) -> list[str]:
    return list(
        dict.fromkeys(c for r in routed for rule, _ in r.claims if rule.condition for c in rule.condition.columns())
    )


def _values_of(frame: pl.DataFrame, columns: list[str]) -> pl.Series:
    """Each row's routing columns as `A = x, B = y` (for counts by value and for error messages)."""
    if not columns:
        return pl.Series("value", ["(every row)"] * frame.height)
    return frame.select(
        pl.concat_str(
            [pl.lit(f"{c} = ") + clean_text(pl.col(c)).fill_null("(blank)") for c in columns], separator=", "
        ).alias("value")
    ).to_series()


def _counts_by_value(values: pl.Series, mask: pl.Series) -> dict[str, int]:
    counts = values.filter(mask).value_counts(name="n").sort(values.name)
    return {value: int(n) for value, n in counts.iter_rows()}


def _check_overlaps(mapping: SourceMapping, file_name: str, routed: list[_Routed], values: pl.Series) -> None:
    """A row two rules claim is an error naming both rules, unless their tables declare they share rows."""
    claims = [(r.table.table, rule, claim) for r in routed for rule, claim in r.claims]
    for i, (table_a, rule_a, claim_a) in enumerate(claims):
        for table_b, rule_b, claim_b in claims[i + 1 :]:
            if table_a != table_b and mapping.shares_rows(table_a, table_b):
                continue
            both = claim_a & claim_b
            n = int(both.sum())
            if n:
                example = values.filter(both)[0]
                raise mapping.error(
                    f"{n:,} row(s) of {file_name} are claimed by two routing rules, {rule_a.label} and "
                    f"{rule_b.label} (e.g. {example}): a source row reaches one rule; make the conditions "
                    "exclusive, or declare shares_rows_with when the rows really feed both tables",
                    line=rule_a.line,
                )


def _route_file(mapping: SourceMapping, file_name: str, routed: list[_Routed]) -> FileImport:
    """Check the file's rules against each other and count what each took and what none took."""
    frame = routed[0].frame
    values = _values_of(frame, _routing_columns(routed))
    _check_overlaps(mapping, file_name, routed, values)
    taken = pl.Series([False] * frame.height)
    rules: list[RuleImport] = []
    for r in routed:
        for rule, claim in r.claims:
            taken = taken | claim
            rules.append(
                RuleImport(r.table.table, rule.name, rule.line, int(claim.sum()), _counts_by_value(values, claim))
            )
    not_taken = {f"no rule takes {value}": n for value, n in _counts_by_value(values, ~taken).items()}
    return FileImport(file_name, frame.height, [r.table.table for r in routed], not_taken, rules)


def _taken_rows(routed: _Routed) -> pl.DataFrame:
    """The rows the table's rules took, each with the name of its rule."""
    rule_names = pl.Series([None] * routed.frame.height, dtype=pl.String)
    for rule, claim in routed.claims:
        rule_names = pl.select(pl.when(claim).then(pl.lit(rule.name)).otherwise(rule_names)).to_series()
    return routed.frame.with_columns(rule_names.alias(RULE_COLUMN)).filter(pl.col(RULE_COLUMN).is_not_null())


# ---------------------------------------------------------------------------------------------- warnings


def _activity_rates() -> dict[str, float]:
    rates = pl.read_csv(ACTIVITY_RATES, comment_prefix="#")
    return dict(zip(rates["table"], rates["per_person_year"], strict=True))


def import_warnings(mapping: SourceMapping, tables: list[TableImport]) -> list[ImportWarning]:
    """Empty routed tables, activity shares far from what the other tables imply, values that are not dates."""
    warnings: list[ImportWarning] = []
    fed = [t for t in tables if t.file is not None]
    for t in fed:
        at = f"tables.{t.table}"
        for column, n in t.bad_dates.items():
            fmt = mapping.tables[t.table].dates.get(column, DATE_FORMAT)
            warnings.append(
                ImportWarning(
                    "bad_date",
                    t.table,
                    f"{mapping.path}:{mapping.line(at, 'dates', column)}: [{at}] {n:,} value(s) of {column} in "
                    f"{t.file} are not real dates as {fmt!r}: passed on unchanged, the ingest quarantines them",
                    n,
                )
            )
        if t.rows_written == 0:
            warnings.append(
                ImportWarning(
                    "empty_table",
                    t.table,
                    f"{mapping.path}:{mapping.line(at)}: [{at}] received 0 rows ({t.rows_in:,} taken from "
                    f"{t.file}): every feature of {t.table} will be 0; check its routing rules",
                    0,
                )
            )
    rates = _activity_rates()
    active = {t.table: t.rows_written for t in fed if t.table in rates and t.rows_written > 0}
    for name, n in active.items():
        others = {o: m for o, m in active.items() if o != name}
        if not others:
            continue
        expected = rates[name] * sum(others.values()) / sum(rates[o] for o in others)
        ratio = n / expected
        if expected >= ACTIVITY_SHARE_MIN_EXPECTED and not 1 / ACTIVITY_SHARE_FACTOR <= ratio <= ACTIVITY_SHARE_FACTOR:
            at = f"tables.{name}"
            warnings.append(
                ImportWarning(
                    "activity_share",
                    name,
                    f"{mapping.path}:{mapping.line(at)}: [{at}] received {n:,} rows, {ratio:.2f} times the "
                    f"{expected:,.0f} that {', '.join(sorted(others))} imply at national activity per person: "
                    "check its routing rules (rows per rule in batch.json)",
                    n,
                    round(expected, 1),
                )
            )
    return warnings


def _unlisted_files(mapping: SourceMapping, source: SourceFolder) -> list[str]:
    known = set(mapping.files()) | set(mapping.unused_files)
    named = {name for file_name in known if (name := source.name_of(file_name)) is not None}
    return sorted(name for name in source.names() if name not in named)


def import_source(
    mapping_path: str | Path | SourceMapping,
    source_dir: Path,
    out_dir: Path,
    batch_id: str | None = None,
    extract_date: date | None = None,
) -> ImportReport:
    """Write the contract batch for `source_dir` into `out_dir` (which must not exist or be empty).

    `extract_date` is the date the source was extracted, as its supplier states it; it is never taken from the
    data (one mistyped event date would move every later week's scoring), so without it the import is refused
    (`ExtractDateMissing`). Raises MappingError for a mapping that does not fit the files (naming the mapping
    file and line)."""
    mapping = mapping_path if isinstance(mapping_path, SourceMapping) else load_mapping(mapping_path)
    if extract_date is None:
        raise ExtractDateMissing(
            "no extract date: give the date the source was extracted with --extract-date YYYY-MM-DD "
            "(it is never taken from the data)"
        )
    source_dir, out_dir = Path(source_dir), Path(out_dir)
    if not (source_dir.is_dir() or (source_dir.is_file() and source_dir.suffix in DATABASE_SUFFIXES)):
        raise FileNotFoundError(f"source folder {source_dir} does not exist (nor is it a DuckDB database file)")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} is not empty: write each batch to a new folder")
    source = SourceFolder(source_dir)
    outputs: dict[str, pl.DataFrame] = {}
    table_reports: list[TableImport] = []
    by_file: dict[str, list[_Routed]] = {}
    for table in mapping.tables.values():
        if table.file is not None:
            by_file.setdefault(table.file, []).append(_route(mapping, table, _source_frame(mapping, table, source)))
    file_reports = [_route_file(mapping, name, routed) for name, routed in sorted(by_file.items())]
    routed_tables = {r.table.table: r for routed in by_file.values() for r in routed}
    for table in mapping.tables.values():
        if table.file is None:
            frame, table_report = _rows_table(table)
        else:
            frame, table_report = import_table(table, _taken_rows(routed_tables[table.table]))
        outputs[table.table] = frame
        table_reports.append(table_report)
        if not table_report.reconciles():
            raise RuntimeError(f"import of {table.table} does not reconcile: {table_report}")
    warnings = import_warnings(mapping, table_reports)
    for warning in warnings:
        log.warning("%s", warning.message)
    unlisted = _unlisted_files(mapping, source)
    if unlisted:
        log.warning("%s: files neither mapped nor listed as unused, ignored: %s", mapping.path.name, unlisted)
    report = ImportReport(
        batch_id=batch_id or out_dir.name,
        batch_dir=out_dir,
        mapping=mapping.name,
        currency=mapping.currency,
        extract_date=extract_date,
        tables=table_reports,
        files=file_reports,
        warnings=warnings,
        unused_files={
            **{f: r for f, r in mapping.unused_files.items() if source.has(f)},
            **dict.fromkeys(unlisted, "not mentioned by the mapping"),
        },
    )
    _write_batch(report, outputs, mapping)
    return report


def _write_batch(report: ImportReport, outputs: dict[str, pl.DataFrame], mapping: SourceMapping) -> None:
    """One CSV per table through the one batch writer, so a failed import leaves no half batch."""
    details = report.details(mapping)
    with write_batch(
        report.batch_dir, report.batch_id, report.extract_date, report.currency, IMPORT_KIND, details
    ) as batch:
        for name, frame in outputs.items():
            batch.add_frame(name, frame, "csv")


__all__ = ["ExtractDateMissing", "ImportReport", "ImportWarning", "MappingError", "TableImport", "import_source"]
