"""Parse and validate one table's rows against its contract, in Polars (no database, no per-row Python).

A file is read keeping every value's raw text (CSV: all columns as strings, so unparseable values are
caught rather than guessed; Parquet: columns already of the contract type are kept, others cast from
string). Each row then ends up in exactly one of:

- excluded: the person opted out. Checked first, before any other check, so an opted-out person's
  activity is neither loaded nor kept in quarantine (quarantine stores the raw row).
- quarantined: at least one check failed. The row's `reason` is the first failing check in
  `CHECK_ORDER`; `all_reasons` lists every failing check as `reason:column`, ';'-joined.
- valid: typed, legacy code aliases mapped onto current codes.

`CHECK_ORDER` (row-level checks first, then checks against other rows and tables):
missing_required, bad_date (a date written the contract's way, YYYY-MM-DD, that does not exist: 2025-04-31; never
shifted), bad_type (a date in any other shape, 2026-1-5 included), unknown_code, out_of_range (costs above
`tables.COST_MAXIMUM` among them), bad_format (a pattern, an identifier outside `schema.ID_PATTERN`, text longer
than its column's `max_length` or holding control characters), future_date (a birth year after the extract date
among them), the table's order rules
(e.g. discharge_before_admission, in declaration order), its conditional requirements (e.g. a caseload
decision of "not appropriate" needs a reason code), before_birth, unlinked_person, duplicate_key,
duplicate_row.

Duplicates are judged on the raw text of the contract columns: the same grain key with different
values quarantines every copy (`duplicate_key`: nobody can tell which copy is right); exact copies keep
the first and quarantine the rest (`duplicate_row`).
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

import polars as pl
from polars.exceptions import PanicException

from data_contracts.batch import file_format
from data_contracts.reference import codelist
from data_contracts.schema import Column, Table
from data_contracts.tables import PERSONS

FrameT = TypeVar("FrameT", pl.DataFrame, pl.LazyFrame)

CHECK_ORDER: tuple[str, ...] = (
    "missing_required",
    "bad_date",
    "bad_type",
    "unknown_code",
    "out_of_range",
    "bad_format",
    "future_date",
    "<order rules>",
    "<conditional requirements>",
    "before_birth",
    "unlinked_person",
    "duplicate_key",
    "duplicate_row",
)
"""The fixed order in which a rejected row's first failing reason is chosen."""

SOURCE_ROW = "source_row"
RAW_PREFIX = "_raw_"
# Columns of a person lookup frame (see `validate_table`).
PERSON_LOOKUP_COLUMNS = ("person_id", "birth_year", "birth_month")

_BOOL_TEXT = {"true": True, "t": True, "1": True, "yes": True, "y": True}
_BOOL_TEXT |= {"false": False, "f": False, "0": False, "no": False, "n": False}
DATE_FORMAT = "%Y-%m-%d"
ISO_DATE_SHAPE = r"^\d{4}-\d{2}-\d{2}$"
_CONTROL_CHARACTERS = r"[\x00-\x1f\x7f]"


class FileRejected(Exception):
    """A whole file cannot be used (unreadable, or a required column is missing)."""


@dataclass
class ValidationResult:
    valid: pl.DataFrame  # the table's input columns, typed, aliases mapped
    quarantine: pl.DataFrame  # source_row, column_name, reason, all_reasons, raw_values; capped per reason
    rows_read: int
    rows_excluded: int
    rows_quarantined: int  # all rejected rows, including any beyond the quarantine cap
    reason_counts: dict[str, int]  # first reason -> rows

    @property
    def rows_valid(self) -> int:
        return self.valid.height


@dataclass(frozen=True)
class _Check:
    reason: str
    column: str
    failed: pl.Expr


# ---------------------------------------------------------------------------------------------- reading


def _unreadable(path: Path, exc: Exception) -> str:
    # Only the reader's first line: later lines of some reader errors quote the offending row.
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{path.name}: cannot be read ({type(exc).__name__}: {first_line})"


def file_columns(path: Path) -> list[str]:
    """Column names from a file's header or schema, without reading its rows. A CSV file is first checked as
    text (`check_csv_text`)."""
    try:
        if file_format(path) == "parquet":
            return list(pl.read_parquet_schema(path))
        return _checked_csv_header(str(path), *_file_key(path))
    except FileRejected:
        raise
    except Exception as exc:  # any reader error means the file as a whole is unusable
        raise FileRejected(_unreadable(path, exc)) from exc


def _file_key(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


@lru_cache(maxsize=64)
def _checked_csv_header(path: str, _mtime_ns: int, _size: int) -> list[str]:
    """`check_csv_text` once per version of a file (the header is asked for more than once per load)."""
    return check_csv_text(Path(path))


def check_csv_text(path: Path) -> list[str]:
    """The header of a CSV file that is UTF-8, comma-separated and whole; otherwise FileRejected saying which,
    with line numbers and never a value: UTF-16 (a byte-order mark), bytes that are not UTF-8 (latin-1, say),
    a header of one column that another delimiter would split, a row with more or fewer fields than the header
    (a cut last row, a short row in the middle), a quote left open at the end of the file."""
    raw = path.read_bytes()
    if path.name.lower().endswith(".gz"):
        raw = gzip.decompress(raw)
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise FileRejected(f"{path.name}: is UTF-16 text; save it as UTF-8 (comma-separated)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise FileRejected(
            f"{path.name}: is not UTF-8 (byte 0x{raw[exc.start]:02X} on line {line}, perhaps latin-1 or "
            "Windows-1252); save it as UTF-8"
        ) from None
    # Counting fields only: a value too long for the contract is the row validation's to quarantine (bad_format),
    # so the csv module's own limit on a field's size (128 KiB) must not refuse the whole file first.
    csv.field_size_limit(max(csv.field_size_limit(), len(text) + 1))
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            return []
        for delimiter, name in ((";", "semicolon"), ("\t", "tab"), ("|", "pipe")):
            if len(header) == 1 and delimiter in header[0]:
                raise FileRejected(
                    f"{path.name}: the header is one column that {name}s would split; riskstrat reads "
                    "comma-separated files"
                )
        ragged: list[int] = []
        rows = 0
        for record in reader:
            rows += 1
            if len(record) != len(header) and record:
                ragged.append(reader.line_num)
    except csv.Error as exc:
        raise FileRejected(f"{path.name}: line {reader.line_num} cannot be read as CSV ({exc})") from None
    if ragged:
        shown = ", ".join(str(n) for n in ragged[:5]) + (f" and {len(ragged) - 5} more" if len(ragged) > 5 else "")
        raise FileRejected(
            f"{path.name}: {len(ragged)} row(s) with more or fewer fields than the header's {len(header)} "
            f"(line {shown}): a cut or shifted row; nothing of the file is loaded"
        )
    return header


def check_required_columns(path: Path, table: Table, present: list[str] | None = None) -> list[str]:
    """Raise FileRejected naming the file and the missing required columns; return ignored extra columns."""
    present = file_columns(path) if present is None else present
    missing = [c for c in table.required_columns if c not in present]
    if missing:
        raise FileRejected(f"{path.name}: missing required column(s) {', '.join(missing)} for table {table.name}")
    expected = {c.name for c in table.input_columns}
    return [c for c in present if c not in expected]


def read_table_file(path: Path, table: Table) -> pl.DataFrame:
    """The file's contract input columns (raw), absent optional columns as nulls, and `source_row`
    (1-based data row number, header not counted). Derived and unknown columns are ignored."""
    present = file_columns(path)
    check_required_columns(path, table, present)
    wanted = [c.name for c in table.input_columns if c.name in present]
    try:
        if file_format(path) == "parquet":
            frame = pl.read_parquet(path, columns=wanted)
        else:
            frame = pl.read_csv(path, columns=wanted, infer_schema=False, raise_if_empty=False)
    except (Exception, PanicException) as exc:  # Polars panics on some corrupt Parquet (a date out of range)
        raise FileRejected(_unreadable(path, exc)) from exc
    absent = [pl.lit(None, dtype=pl.String).alias(c.name) for c in table.input_columns if c.name not in present]
    return (
        frame.with_columns(*absent, *_readable_dates(frame))
        .with_row_index(SOURCE_ROW, offset=1)
        .cast({SOURCE_ROW: pl.Int64})
    )


_DATE_RANGE = (date(1800, 1, 1), date(2200, 1, 1))


def _readable_dates(frame: pl.DataFrame) -> list[pl.Expr]:
    """A Parquet date column holding a day outside 1800-2200 (a corrupt value) becomes text, that day reading
    "date out of range", so it is quarantined as bad_type; Polars panics when it formats such a date."""
    exprs = []
    for name, dtype in frame.schema.items():
        if dtype != pl.Date:
            continue
        days = pl.col(name).cast(pl.Int32)
        ok = days.is_between(*(pl.lit(d).cast(pl.Int32) for d in _DATE_RANGE))
        if frame.select(ok.fill_null(True).all()).item():
            continue
        safe = pl.when(ok).then(pl.col(name)).otherwise(pl.lit(_DATE_RANGE[0]))  # nothing out of range formatted
        exprs.append(
            pl.when(ok | pl.col(name).is_null())
            .then(safe.cast(pl.String))
            .otherwise(pl.lit("date out of range"))
            .alias(name)
        )
    return exprs


# ---------------------------------------------------------------------------------------------- parsing


def clean_text(expr: pl.Expr) -> pl.Expr:
    """Trimmed text; blank means missing."""
    text = expr.cast(pl.String).str.strip_chars()
    return pl.when(text != "").then(text)


def parse_text(text: pl.Expr, column_type: str) -> pl.Expr:
    """Typed value from cleaned text; null where it does not parse (the caller flags those as bad_type)."""
    if column_type == "string":
        return text
    if column_type == "int":
        return text.str.to_integer(strict=False)
    if column_type == "float":
        number = text.cast(pl.Float64, strict=False)
        return pl.when(number.is_finite()).then(number)
    if column_type == "date":
        # Only the contract's shape: the parser alone would also read 2026-1-5 and 1-1-1.
        return pl.when(text.str.contains(ISO_DATE_SHAPE)).then(text.str.to_date(DATE_FORMAT, strict=False))
    if column_type == "bool":
        return text.str.to_lowercase().replace_strict(_BOOL_TEXT, default=None, return_dtype=pl.Boolean)
    raise ValueError(f"unknown column type {column_type}")


def parse_expr(column: Column, source: pl.DataType) -> pl.Expr:
    """Contract-typed value of `column` read with dtype `source`."""
    raw = pl.col(column.name)
    target = column.polars_type
    if column.type == "string":
        return clean_text(raw)
    if source == target and column.type != "float":
        return raw
    if column.type == "int" and source.is_integer():
        return raw.cast(pl.Int64, strict=False)
    if column.type == "float" and source.is_numeric():
        number = raw.cast(pl.Float64)
        return pl.when(number.is_finite()).then(number)  # NaN and inf are not costs
    return parse_text(clean_text(raw), column.type)


def parse_columns(raw: FrameT, table: Table) -> FrameT:
    """Keep each input column's raw text as `_raw_<name>` and replace the column by its typed value."""
    columns = table.input_columns
    schema = raw.collect_schema()
    return raw.with_columns(
        *(pl.col(c.name).cast(pl.String).alias(RAW_PREFIX + c.name) for c in columns),
        *(parse_expr(c, schema[c.name]).alias(c.name) for c in columns),
    )


# ---------------------------------------------------------------------------------------------- checks


def birth_floor(year: pl.Expr, month: pl.Expr) -> pl.Expr:
    """First day of the birth month (January when the month is unknown); null for an invalid year."""
    year_column = PERSONS.column("birth_year")
    low, high = int(year_column.minimum or 1), int(year_column.maximum or 9999)
    safe_month = pl.when(month.is_between(1, 12)).then(month).otherwise(1)
    return pl.when(year.is_between(low, high)).then(pl.date(year.clip(low, high), safe_month, 1))


def _iso_shaped(raw: pl.Expr) -> pl.Expr:
    """The value has the contract's date shape (YYYY-MM-DD), whether or not that day exists."""
    return clean_text(raw).str.contains(ISO_DATE_SHAPE).fill_null(False)


def _value_checks(table: Table, extract_date: date | None) -> list[_Check]:
    """Row-level checks in CHECK_ORDER up to and including the order rules."""
    columns = table.input_columns
    checks: list[_Check] = []
    present = {c.name: clean_text(pl.col(RAW_PREFIX + c.name)).is_not_null() for c in columns}
    for c in columns:
        if c.required:
            checks.append(_Check("missing_required", c.name, ~present[c.name]))
    unparsed = {c.name: present[c.name] & pl.col(c.name).is_null() for c in columns}
    for c in columns:
        if c.type == "date":
            checks.append(_Check("bad_date", c.name, unparsed[c.name] & _iso_shaped(pl.col(RAW_PREFIX + c.name))))
    for c in columns:
        # A date column's value in another shape ("01/06/2024", "not-a-date") is of the wrong type.
        is_date = c.type == "date"
        failed = unparsed[c.name] & ~_iso_shaped(pl.col(RAW_PREFIX + c.name)) if is_date else unparsed[c.name]
        checks.append(_Check("bad_type", c.name, failed))
    for c in columns:
        if c.codelist:
            accepted = sorted(codelist(c.codelist).accepted())
            checks.append(_Check("unknown_code", c.name, ~pl.col(c.name).is_in(accepted)))
    for c in columns:
        if c.minimum is not None:
            checks.append(_Check("out_of_range", c.name, pl.col(c.name) < c.minimum))
        if c.maximum is not None:
            checks.append(_Check("out_of_range", c.name, pl.col(c.name) > c.maximum))
    for c in columns:
        if c.type == "string":
            # Longer than any real value, or a NUL or line break inside: a corrupt or hostile file.
            text = pl.col(c.name)
            odd = (text.str.len_chars() > c.max_length) | text.str.contains(_CONTROL_CHARACTERS)
            checks.append(_Check("bad_format", c.name, odd))
        if c.pattern:
            checks.append(_Check("bad_format", c.name, ~pl.col(c.name).str.contains(c.pattern)))
    if extract_date is not None:
        for c in columns:
            if c.event_date:
                checks.append(_Check("future_date", c.name, pl.col(c.name) > pl.lit(extract_date)))
            if c.year_not_after_extract:
                checks.append(_Check("future_date", c.name, pl.col(c.name) > extract_date.year))
    for rule in table.order_rules:
        checks.append(_Check(rule.reason, rule.later, pl.col(rule.later) < pl.col(rule.earlier)))
    for need in table.required_when:
        applies = pl.col(need.when_column).is_in(list(need.values))
        checks.append(_Check(need.reason, need.column, applies & ~present[need.column]))
    return checks


def _before_birth_checks(table: Table, floor: pl.Expr) -> list[_Check]:
    return [_Check("before_birth", c.name, pl.col(c.name) < floor) for c in table.input_columns if c.event_date]


def _with_person_lookup(frame: pl.LazyFrame, persons: pl.DataFrame) -> pl.LazyFrame:
    """Add `_known` and `_birth_floor` from the lookup of the batch's and database's persons."""
    lookup = (
        persons.select(
            pl.col("person_id"),
            pl.lit(True).alias("_known"),
            birth_floor(pl.col("birth_year"), pl.col("birth_month")).alias("_birth_floor"),
        )
        .unique("person_id", keep="last")
        .lazy()
    )
    # Row order is not kept (cheaper); duplicate and quarantine steps order by source_row themselves.
    return frame.join(lookup, on="person_id", how="left")


def _with_duplicate_flags(frame: pl.DataFrame, table: Table) -> pl.LazyFrame:
    """`_duplicate_key` / `_duplicate_row` (see module docstring). Only rows whose key repeats are
    grouped, so a clean file pays one hash pass over its keys."""
    grain = list(table.grain)
    key = pl.struct(grain) if len(grain) > 1 else pl.col(grain[0])
    keyed = pl.all_horizontal(pl.col(k).is_not_null() for k in grain)
    repeated = frame.filter(keyed & key.is_duplicated()).sort(SOURCE_ROW)
    if repeated.is_empty():
        return frame.lazy().with_columns(pl.lit(False).alias("_duplicate_key"), pl.lit(False).alias("_duplicate_row"))
    raw_values = pl.struct([RAW_PREFIX + c.name for c in table.input_columns])
    conflicting = raw_values.n_unique().over(grain) > 1
    later_copy = pl.int_range(pl.len()).over(grain) > 0  # file order: the first copy is 0
    flags = repeated.select(
        SOURCE_ROW, conflicting.alias("_duplicate_key"), (~conflicting & later_copy).alias("_duplicate_row")
    )
    return (
        frame.lazy()
        .join(flags.lazy(), on=SOURCE_ROW, how="left")
        .with_columns(pl.col("_duplicate_key", "_duplicate_row").fill_null(False))
    )


def _all_checks(table: Table, extract_date: date | None, person_checks: bool) -> list[_Check]:
    checks = _value_checks(table, extract_date)
    if table.name == PERSONS.name:
        checks += _before_birth_checks(table, birth_floor(pl.col("birth_year"), pl.col("birth_month")))
    elif person_checks:
        checks += _before_birth_checks(table, pl.col("_birth_floor"))
        checks.append(
            _Check("unlinked_person", "person_id", pl.col("person_id").is_not_null() & pl.col("_known").is_null())
        )
    grain = ",".join(table.grain)
    checks.append(_Check("duplicate_key", grain, pl.col("_duplicate_key")))
    checks.append(_Check("duplicate_row", grain, pl.col("_duplicate_row")))
    return checks


def _any_failed(checks: Sequence[_Check]) -> pl.Expr:
    """True when any check fails (null-safe: a check on a null value is a pass)."""
    return pl.any_horizontal(c.failed.fill_null(False) for c in checks)


def _describe_failures(rejected: pl.LazyFrame, checks: Sequence[_Check]) -> pl.LazyFrame:
    """Add `reason` and `column_name` (first failing check) and `all_reasons`. Run on rejected rows only:
    the string work then scales with the rejects, not the file."""
    hits = [(c.failed.fill_null(False), c) for c in checks]
    return rejected.with_columns(
        pl.coalesce([pl.when(hit).then(pl.lit(c.reason)) for hit, c in hits]).alias("reason"),
        pl.coalesce([pl.when(hit).then(pl.lit(c.column)) for hit, c in hits]).alias("column_name"),
        pl.concat_str(
            [pl.when(hit).then(pl.lit(f"{c.reason}:{c.column}")) for hit, c in hits], separator=";", ignore_nulls=True
        ).alias("all_reasons"),
    )


def _map_aliases(table: Table) -> list[pl.Expr]:
    return [
        pl.col(c.name).replace(codelist(c.codelist).aliases)
        for c in table.input_columns
        if c.codelist and codelist(c.codelist).aliases
    ]


def _quarantine_rows(rejected: pl.DataFrame, table: Table, cap: int | None) -> pl.DataFrame:
    if cap is not None:
        rejected = rejected.filter(pl.int_range(pl.len()).over("reason") < cap)
    raw = [pl.col(RAW_PREFIX + c.name).alias(c.name) for c in table.input_columns]
    return rejected.select(
        pl.col(SOURCE_ROW).cast(pl.Int64),
        "column_name",
        "reason",
        "all_reasons",
        pl.struct(raw).struct.json_encode().alias("raw_values"),
    )


def validate_table(
    raw: pl.DataFrame,
    table: Table,
    extract_date: date | None,
    persons: pl.DataFrame | None = None,
    opted_out: pl.Series | None = None,
    quarantine_cap: int | None = None,
) -> ValidationResult:
    """Split a file's rows (from `read_table_file`) into valid, quarantined and excluded.

    persons: `PERSON_LOOKUP_COLUMNS` of every known person (this batch's and the database's) among the
        frame's person ids; required for person-linked tables (linkage and before-birth checks).
    opted_out: person ids whose rows are excluded (persons and person-linked tables only).
    extract_date: event dates after it are `future_date`; None skips that check.
    """
    rows_read = raw.height
    lazy = parse_columns(raw.lazy(), table)
    has_person = table.person_linked or table.name == PERSONS.name
    if has_person and opted_out is not None and opted_out.len() > 0:
        lazy = lazy.filter(~pl.col("person_id").is_in(opted_out.implode()).fill_null(False))
    if table.person_linked:
        if persons is None:
            raise ValueError(f"{table.name} is person-linked: pass the persons lookup")
        lazy = _with_person_lookup(lazy, persons.select(PERSON_LOOKUP_COLUMNS))
    frame = lazy.collect()
    rows_excluded = rows_read - frame.height

    checks = _all_checks(table, extract_date, person_checks=table.person_linked)
    flagged = _with_duplicate_flags(frame, table).with_columns(_any_failed(checks).alias("_failed")).collect()
    valid, rejected = pl.collect_all(
        [
            flagged.lazy()
            .filter(~pl.col("_failed"))
            .select(c.name for c in table.input_columns)
            .with_columns(_map_aliases(table)),
            _describe_failures(flagged.lazy().filter(pl.col("_failed")).sort(SOURCE_ROW), checks),
        ]
    )
    reason_counts = dict(rejected.group_by("reason").len().sort("reason").iter_rows())
    return ValidationResult(
        valid=valid,
        quarantine=_quarantine_rows(rejected, table, quarantine_cap),
        rows_read=rows_read,
        rows_excluded=rows_excluded,
        rows_quarantined=rejected.height,
        reason_counts=reason_counts,
    )
