"""Apply a source mapping (`data_contracts.mapping`) to a folder of source files and write a contract batch.

The batch is what `riskstrat ingest` reads: one `<table>.csv` per contract table the mapping fills and a
`batch.json` with the batch id, extract date, currency and the import's reconciliation. The importer only
reshapes: it renames, maps values, reformats dates and drops rows the mapping names with a reason. It does not
judge values (the ingest validates every row against the contract and quarantines what fails), so the journey
of every source row is: taken by a table or not (with a reason), then written or dropped with a reason, then
loaded, quarantined or excluded by the ingest.

Per table, rows in = rows written + rows dropped (by reason); per source file, rows read = rows taken by at least
one table + rows taken by none (by reason). A file may feed several tables (a CLD file gives events and persons),
so its rows are accounted for once per table that takes them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl

from data_contracts.mapping import MappingError, SourceMapping, TableMapping, load_mapping
from data_contracts.sources import TRANSFORMS
from data_contracts.tables import TABLES
from data_contracts.validation import DATE_FORMAT, FileRejected, clean_text

log = logging.getLogger("riskstrat.import")

BATCH_MANIFEST = "batch.json"
"""The batch metadata file beside the table files (read by the ingest)."""


@dataclass
class TableImport:
    table: str
    file: str | None  # None for rows given in the mapping itself
    rows_in: int
    rows_written: int
    dropped: dict[str, int] = field(default_factory=dict)

    def reconciles(self) -> bool:
        return self.rows_in == self.rows_written + sum(self.dropped.values())


@dataclass
class FileImport:
    file: str
    rows_read: int
    tables: list[str]
    not_taken: dict[str, int] = field(default_factory=dict)


@dataclass
class ImportReport:
    batch_id: str
    batch_dir: Path
    mapping: str
    currency: str
    extract_date: date | None
    tables: list[TableImport]
    files: list[FileImport]
    unused_files: dict[str, str]

    def manifest(self, mapping: SourceMapping) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "extract_date": self.extract_date.isoformat() if self.extract_date else None,
            "currency": self.currency,
            "source": {
                "mapping": self.mapping,
                "mapping_sha256": hashlib.sha256(mapping.text.encode()).hexdigest(),
                "description": mapping.description,
                "unused_files": self.unused_files,
            },
            "import": {"files": [asdict(f) for f in self.files], "tables": [asdict(t) for t in self.tables]},
        }


class SourceFolder:
    """The source files, read once each, every value as text (so nothing is guessed before the contract checks)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._frames: dict[str, pl.DataFrame] = {}

    def read(self, file_name: str) -> pl.DataFrame:
        if file_name not in self._frames:
            path = self.directory / file_name
            try:
                if path.suffix == ".parquet":
                    frame = pl.read_parquet(path)
                    frame = frame.with_columns(pl.all().cast(pl.String))
                else:
                    frame = pl.read_csv(path, infer_schema=False, raise_if_empty=False)
            except Exception as exc:  # any reader error: the file as a whole is unusable
                first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                raise FileRejected(f"{path}: cannot be read ({type(exc).__name__}: {first_line})") from exc
            self._frames[file_name] = frame
        return self._frames[file_name]


# ---------------------------------------------------------------------------------------------- one table


def _parsed_date(mapping: TableMapping, column: str) -> pl.Expr:
    """A source date column as a Date: by its declared format (which may match just the start of the value, so
    "%Y-%m-%d" reads the local date of an ISO timestamp), else as an ISO date."""
    fmt = mapping.dates.get(column, DATE_FORMAT)
    return clean_text(pl.col(column)).str.to_date(fmt, strict=False, exact=False)


def _contract_value(mapping: TableMapping, column: str, source: str) -> pl.Expr:
    text = clean_text(pl.col(source))
    if TABLES[mapping.table].column(column).type == "date":
        # An unparseable date is passed on as it came, for the ingest to quarantine as bad_type.
        text = pl.coalesce(_parsed_date(mapping, source).dt.strftime(DATE_FORMAT), text)
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
    """One contract table from the rows of its source file (already transformed and selected)."""
    table = TABLES[mapping.table]
    result = TableImport(mapping.table, mapping.file, frame.height, 0)
    for rule in mapping.drop:
        mask = _drop_mask(frame, rule.column, rule.values, rule.blank)
        if mask.any():
            result.dropped[rule.reason] = result.dropped.get(rule.reason, 0) + int(mask.sum())
            frame = frame.filter(~mask)
    exprs = [_contract_value(mapping, c, s).alias(c) for c, s in mapping.columns.items()]
    exprs += [
        pl.concat_str([clean_text(pl.col(s)).fill_null("") for s in sources], separator="|").alias(c)
        for c, sources in mapping.combine.items()
    ]
    exprs += [pl.lit(str(v)).alias(c) for c, v in mapping.constants.items()]
    for column, (source, part) in mapping.date_parts.items():
        parsed = _parsed_date(mapping, source)
        exprs.append((parsed.dt.year() if part == "year" else parsed.dt.month()).cast(pl.String).alias(column))
    order = [_parsed_date(mapping, mapping.order_by).alias("_order")] if mapping.order_by else []
    shaped = frame.select(*exprs, *order)
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
    if not (source.directory / table.file).exists():
        raise mapping.error(
            f"source file {table.file} not found in {source.directory}", f"tables.{table.table}", "file"
        )
    frame = source.read(table.file)
    if table.transform:
        transform = TRANSFORMS[table.transform]
        before = frame.height
        frame = transform.function(frame, source)
        if frame.height != before:
            raise RuntimeError(f"transform {transform.name} changed the row count ({before} -> {frame.height})")
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


def _selected(frame: pl.DataFrame, table: TableMapping) -> pl.DataFrame:
    if table.where is None:
        return frame
    return frame.filter(clean_text(pl.col(table.where.column)).is_in(list(table.where.values)).fill_null(False))


def _not_taken(frame: pl.DataFrame, tables: list[TableMapping]) -> dict[str, int]:
    """Rows of a file that no table takes, by reason (the value that no table's `where` selects)."""
    if any(t.where is None for t in tables):
        return {}
    taken = pl.lit(False)
    for t in tables:
        assert t.where is not None
        taken = taken | clean_text(pl.col(t.where.column)).is_in(list(t.where.values)).fill_null(False)
    columns = sorted({t.where.column for t in tables if t.where})
    left = frame.filter(~taken)
    if left.is_empty():
        return {}
    described = left.select(
        pl.concat_str(
            [pl.lit(f"{c} = ") + clean_text(pl.col(c)).fill_null("(blank)") for c in columns], separator=", "
        ).alias("value")
    )
    counts = described.group_by("value").len().sort("value")
    return {f"no table of the mapping takes {value}": n for value, n in counts.iter_rows()}


def _latest_event_date(frames: dict[str, pl.DataFrame]) -> date | None:
    latest: list[date] = []
    for name, frame in frames.items():
        dated_by = TABLES[name].dated_by
        if dated_by and dated_by in frame.columns:
            value = frame.select(clean_text(pl.col(dated_by)).str.to_date(DATE_FORMAT, strict=False).max()).item()
            if value is not None:
                latest.append(value)
    return max(latest) if latest else None


def _unlisted_files(mapping: SourceMapping, source_dir: Path) -> list[str]:
    known = set(mapping.files()) | set(mapping.unused_files)
    return sorted(
        p.name for p in source_dir.iterdir() if p.is_file() and p.suffix in (".csv", ".parquet") and p.name not in known
    )


def import_source(
    mapping_path: str | Path | SourceMapping,
    source_dir: Path,
    out_dir: Path,
    batch_id: str | None = None,
    extract_date: date | None = None,
) -> ImportReport:
    """Write the contract batch for `source_dir` into `out_dir` (which must not exist or be empty).

    extract_date defaults to the latest event date written (the `dated_by` column of each table). Raises
    MappingError for a mapping that does not fit the files (naming the mapping file and line)."""
    mapping = mapping_path if isinstance(mapping_path, SourceMapping) else load_mapping(mapping_path)
    source_dir, out_dir = Path(source_dir), Path(out_dir)
    if not source_dir.is_dir():
        raise FileNotFoundError(f"source folder {source_dir} does not exist")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} is not empty: write each batch to a new folder")
    source = SourceFolder(source_dir)
    outputs: dict[str, pl.DataFrame] = {}
    table_reports: list[TableImport] = []
    by_file: dict[str, list[TableMapping]] = {}
    for table in mapping.tables.values():
        if table.file is None:
            frame, report = _rows_table(table)
        else:
            selected = _selected(_source_frame(mapping, table, source), table)
            frame, report = import_table(table, selected)
            by_file.setdefault(table.file, []).append(table)
        outputs[table.table] = frame
        table_reports.append(report)
        if not report.reconciles():
            raise RuntimeError(f"import of {table.table} does not reconcile: {report}")
    file_reports = [
        FileImport(name, source.read(name).height, [t.table for t in tables], _not_taken(source.read(name), tables))
        for name, tables in sorted(by_file.items())
    ]
    unlisted = _unlisted_files(mapping, source_dir)
    if unlisted:
        log.warning("%s: files neither mapped nor listed as unused, ignored: %s", mapping.path.name, unlisted)
    report = ImportReport(
        batch_id=batch_id or out_dir.name,
        batch_dir=out_dir,
        mapping=mapping.name,
        currency=mapping.currency,
        extract_date=extract_date or _latest_event_date(outputs),
        tables=table_reports,
        files=file_reports,
        unused_files={
            **{f: r for f, r in mapping.unused_files.items() if (source_dir / f).exists()},
            **dict.fromkeys(unlisted, "not mentioned by the mapping"),
        },
    )
    _write_batch(out_dir, outputs, report.manifest(mapping))
    return report


def _write_batch(out_dir: Path, outputs: dict[str, pl.DataFrame], manifest: dict[str, Any]) -> None:
    """Write into a staging folder and rename it into place, so a failed import leaves no half batch."""
    staging = out_dir.with_name(f".{out_dir.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        for name, frame in outputs.items():
            frame.write_csv(staging / f"{name}.csv")
        (staging / BATCH_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        if out_dir.exists():
            out_dir.rmdir()
        staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


__all__ = ["ImportReport", "MappingError", "TableImport", "import_source"]
