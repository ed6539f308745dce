"""The batch folder: one delivery of contract tables, its manifest, its one writer and its reader.

A batch folder holds one file per contract table it delivers (`<table>.csv`, `<table>.csv.gz` or
`<table>.parquet`, the name in any case; any table may be absent), `batch.json`, the manifest:

    {"batch_id": "...", "extract_date": "YYYY-MM-DD", "currency": "GBP", "kind": "weekly",
     "files": [{"name": "persons.csv", "table": "persons", "rows": 123, "sha256": "..."}, ...],
     ...details of the writer (the import's reconciliation, the generator's seed)...}

and `batch.complete`, the marker that the batch is whole: it holds the manifest's sha256. `rows` counts data
rows (a CSV's header is not a row).

`write_batch` is the one writer (the importer, the synthetic generator and the workspace's caseload export use
it): the files and the manifest are written into a hidden sibling folder (`.<name>.writing`), each fsynced,
then the marker is written last and the folder is renamed into place.

`read_batch` reads a folder back, and decides between three outcomes:
- incomplete (`BatchIncomplete`, the batch waits for a later run; nothing is loaded or recorded): no marker, no
  manifest, a marker of another manifest, a listed file missing or with another checksum (still being copied);
- refused (`BatchRejected`, one line): a manifest that cannot be read or gives no extract date (the extract date
  never comes from the data), a file in the folder that the manifest does not list or that is not a table file
  (named: an opt-out must never be silently ignored), a table file inside a subfolder;
- a `Batch`: its manifest, table files, checksums and row counts (the ingest checks the rows it reads).

`is_batch` and `batches_in` say which folders are batches (hidden folders are writers' staging, never batches; a
folder with neither manifest nor marker whose name is not a batch name is stray, `is_stray`, and holds nothing back);
`last_changed` says how long a waiting batch has waited (`pipelines.ingest.check_not_stale` fails it in the end).
A batch's currency binds only when it carries costs (`Batch.holds_costs`, from the columns declared `money`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl

from data_contracts.errors import DomainError
from data_contracts.reference import REFERENCE_CURRENCY
from data_contracts.tables import TABLES

log = logging.getLogger("riskstrat.batch")

BATCH_MANIFEST = "batch.json"
"""The manifest beside the table files."""
COMPLETE_MARKER = "batch.complete"
"""Written last by `write_batch`; holds the sha256 of the manifest it completes."""
FILE_FORMATS = ("csv", "parquet")
"""How the writer writes a table file: `<table>.<format>`."""
TABLE_SUFFIXES = {".csv": "csv", ".csv.gz": "csv", ".parquet": "parquet"}
"""How a table file may be named (any case) and how it is read (gzip-compressed CSV is read as CSV)."""
MANIFEST_KEYS = ("batch_id", "extract_date", "currency", "kind", "files")
"""The manifest's own keys; any other key is a detail of the writer, kept as written."""


class BatchRejected(DomainError):
    """The batch as a whole cannot be loaded; nothing from it was loaded."""


class BatchIncomplete(Exception):
    """The batch is not whole yet (still being written or copied): it waits, neither loaded nor rejected."""


@dataclass(frozen=True)
class BatchFile:
    """One table file as the manifest lists it."""

    name: str
    table: str
    rows: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    batch_id: str
    extract_date: date | None
    currency: str | None  # of every cost in the batch; never converted
    kind: str | None  # "history", "weekly", "import", "caseload decisions"
    files: tuple[BatchFile, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)  # the writer's own keys (import reconciliation, seed)

    def to_json(self) -> str:
        body: dict[str, Any] = {
            "batch_id": self.batch_id,
            "extract_date": self.extract_date.isoformat() if self.extract_date else None,
            "currency": self.currency,
            "kind": self.kind,
            "files": [vars(f) for f in self.files],
            **self.details,
        }
        return json.dumps(body, indent=2) + "\n"


@dataclass(frozen=True)
class Batch:
    """A complete batch folder as read: its manifest, table files, their checksums and row counts."""

    directory: Path
    manifest: Manifest
    files: dict[str, Path]  # table name -> file
    sha256: dict[str, str]  # table name -> checksum
    rows: dict[str, int]  # table name -> data rows, as the manifest lists them
    combined_sha256: str  # of the table files and the manifest: a changed extract date is a changed batch

    @property
    def batch_id(self) -> str:
        return self.manifest.batch_id

    @property
    def extract_date(self) -> date:
        assert self.manifest.extract_date is not None  # read_batch refuses a manifest without one
        return self.manifest.extract_date

    @property
    def holds_costs(self) -> bool:
        """Whether any of its tables carries amounts of money (`Column.money`): only then does it have a
        currency. A caseload batch, an opt-outs-only batch, persons: no costs, so no currency to agree with."""
        return any(TABLES[table].holds_costs for table in self.files)

    @property
    def currency(self) -> str | None:
        """The currency of its costs (the unit costs' when the manifest gives none); None without costs."""
        if not self.holds_costs:
            return None
        return self.manifest.currency or REFERENCE_CURRENCY


# ---------------------------------------------------------------------------------------------- files


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def table_file(name: str) -> tuple[str, str] | None:
    """(table, how it is read) for a table file's name, matched without regard to case; None for another name."""
    lower = name.lower()
    for suffix, read_as in TABLE_SUFFIXES.items():
        if lower.endswith(suffix) and lower[: -len(suffix)] in TABLES:
            return lower[: -len(suffix)], read_as
    return None


def file_format(path: Path) -> str:
    """'parquet' or 'csv' (plain or gzip-compressed): how a table file is read."""
    found = table_file(path.name)
    return found[1] if found else ("parquet" if path.suffix.lower() == ".parquet" else "csv")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------- the writer


class BatchWriter:
    """Collects a batch's table files in the staging folder (see `write_batch`)."""

    def __init__(self, staging: Path) -> None:
        self.staging = staging
        self.files: list[BatchFile] = []

    def add_frame(self, table: str, frame: pl.DataFrame, file_format: str = "csv") -> Path:
        """Write one table's rows as `<table>.<file_format>`."""
        if table not in TABLES:
            raise ValueError(f"{table!r} is not a contract table")
        if file_format not in FILE_FORMATS:
            raise ValueError(f"file_format must be one of {FILE_FORMATS}, not {file_format!r}")
        path = self.staging / f"{table}.{file_format}"
        if file_format == "csv":
            frame.write_csv(path)
        else:
            frame.write_parquet(path, compression="zstd")
        return self._added(path, table, frame.height)

    def add_file(self, name: str, table: str, data: bytes, rows: int) -> Path:
        """A table file given as its bytes (already encoded), with the number of data rows it holds."""
        if table not in TABLES:
            raise ValueError(f"{table!r} is not a contract table")
        path = self.staging / name
        path.write_bytes(data)
        return self._added(path, table, rows)

    def add_copy(self, source: Path, table: str, rows: int) -> Path:
        """A copy of an existing table file (e.g. of another batch), under its own name."""
        if table not in TABLES:
            raise ValueError(f"{table!r} is not a contract table")
        path = self.staging / source.name
        shutil.copyfile(source, path)
        return self._added(path, table, rows)

    def _added(self, path: Path, table: str, rows: int) -> Path:
        if any(f.table == table for f in self.files):
            raise ValueError(f"{self.staging.name}: table {table} given twice")
        self.files.append(BatchFile(path.name, table, rows, file_sha256(path)))
        return path


@contextmanager
def write_batch(
    folder: Path,
    batch_id: str,
    extract_date: date | None,
    currency: str | None,
    kind: str | None,
    details: dict[str, Any] | None = None,
    replace: bool = False,
) -> Iterator[BatchWriter]:
    """Write a batch folder atomically: the caller adds table files to the yielded writer; on leaving the block
    the manifest and then the complete marker are written, everything is fsynced and the staging folder is
    renamed to `folder`. An error inside the block leaves no folder behind.

    `folder` must not exist or be empty, unless `replace` (then an existing batch there is replaced)."""
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()) and not replace:
        raise FileExistsError(f"{folder} is not empty: write each batch to a new folder")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.with_name(f".{folder.name}.writing")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        writer = BatchWriter(staging)
        yield writer
        manifest = Manifest(batch_id, extract_date, currency, kind, tuple(writer.files), dict(details or {}))
        text = manifest.to_json()
        (staging / BATCH_MANIFEST).write_text(text, encoding="utf-8")
        for f in (*writer.files, BatchFile(BATCH_MANIFEST, "", 0, "")):
            _fsync(staging / f.name)
        marker = staging / COMPLETE_MARKER
        marker.write_text(hashlib.sha256(text.encode()).hexdigest() + "\n", encoding="utf-8")
        _fsync(marker)
        _fsync(staging)
        _swap_into_place(staging, folder)
        _fsync(folder.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _swap_into_place(staging: Path, folder: Path) -> None:
    if not folder.exists():
        staging.rename(folder)
        return
    if not any(folder.iterdir()):
        folder.rmdir()
        staging.rename(folder)
        return
    old = folder.with_name(f".{folder.name}.replaced")
    shutil.rmtree(old, ignore_errors=True)
    folder.rename(old)
    staging.rename(folder)
    shutil.rmtree(old)


# ---------------------------------------------------------------------------------------------- the reader


def read_manifest(folder: Path) -> Manifest | None:
    """The folder's manifest, None when it has none; BatchRejected when it cannot be read. A byte-order mark and
    a currency in another case or with spaces (`"gbp "`) are read as meant."""
    path = Path(folder) / BATCH_MANIFEST
    if not path.exists():
        return None
    where = f"{BATCH_MANIFEST} in {folder.name}"
    try:
        body = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as exc:
        raise BatchRejected(f"{where}: cannot be read ({type(exc).__name__}: {str(exc).splitlines()[0]})") from exc
    if not isinstance(body, dict):
        raise BatchRejected(f"{where}: expected a JSON object")
    extract_date = None
    if body.get("extract_date") is not None:
        try:
            extract_date = date.fromisoformat(str(body["extract_date"]).strip())
        except ValueError as exc:
            raise BatchRejected(f"{where}: extract_date {body['extract_date']!r} is not a date (YYYY-MM-DD)") from exc
    currency = str(body["currency"]).strip().upper() if body.get("currency") is not None else None
    if currency is not None and not re.fullmatch(r"[A-Z]{3}", currency):
        raise BatchRejected(f"{where}: currency {body['currency']!r} is not a three-letter code (GBP, USD, EUR)")
    return Manifest(
        batch_id=str(body.get("batch_id") or folder.name),
        extract_date=extract_date,
        currency=currency,
        kind=str(body["kind"]) if body.get("kind") else None,
        files=_manifest_files(where, body.get("files")),
        details={k: v for k, v in body.items() if k not in MANIFEST_KEYS},
    )


def _manifest_files(where: str, listed: object) -> tuple[BatchFile, ...]:
    files: list[BatchFile] = []
    for entry in listed if isinstance(listed, list) else [listed] if listed is not None else []:
        try:
            f = BatchFile(**entry)
        except TypeError as exc:
            raise BatchRejected(f"{where}: a files entry is not {{name, table, rows, sha256}} ({exc})") from exc
        if not (
            isinstance(f.name, str)
            and isinstance(f.table, str)
            and isinstance(f.rows, int)
            and not isinstance(f.rows, bool)
            and f.rows >= 0
            and isinstance(f.sha256, str)
            and re.fullmatch(r"[0-9a-f]{64}", f.sha256)
        ):
            raise BatchRejected(
                f"{where}: files entry {f.name!r} needs a table, rows >= 0 and a sha256 (64 hex digits)"
            )
        files.append(f)
    return tuple(files)


def _listed_files(folder: Path, manifest: Manifest) -> dict[str, BatchFile]:
    """The manifest's files by table; BatchRejected for a name that is not a table file or a table given twice."""
    by_table: dict[str, BatchFile] = {}
    for listed in manifest.files:
        found = table_file(listed.name)
        if found is None or found[0] != listed.table or Path(listed.name).name != listed.name:
            raise BatchRejected(
                f"{BATCH_MANIFEST} in {folder.name}: {listed.name!r} is not a file of table {listed.table!r} "
                "(expected <table>.csv, .csv.gz or .parquet at the top of the folder)"
            )
        if listed.table in by_table:
            raise BatchRejected(
                f"{folder.name}: both {by_table[listed.table].name} and {listed.name} given for table {listed.table}"
            )
        by_table[listed.table] = listed
    return by_table


def _check_complete(folder: Path, listed: dict[str, BatchFile]) -> dict[str, str]:
    """Checksums of the listed files; BatchIncomplete naming the first that is missing or differs."""
    sha256: dict[str, str] = {}
    for table, f in listed.items():
        path = folder / f.name
        if not path.is_file():
            raise BatchIncomplete(f"{f.name}, listed in {BATCH_MANIFEST}, is not there yet")
        sha256[table] = file_sha256(path)
        if sha256[table] != f.sha256:
            raise BatchIncomplete(f"{f.name}: its checksum differs from {BATCH_MANIFEST} (not completely copied?)")
    return sha256


def _unlisted(folder: Path, listed: dict[str, BatchFile]) -> list[str]:
    """Every entry of the folder that is neither a listed table file nor the manifest or the marker."""
    known = {f.name for f in listed.values()} | {BATCH_MANIFEST, COMPLETE_MARKER}
    unlisted: list[str] = []
    for path in sorted(folder.iterdir()):
        if path.is_dir():
            inside = sorted(str(p.relative_to(folder)) for p in path.rglob("*") if p.is_file())
            unlisted.extend(inside or [f"{path.name}/"])
        elif path.name not in known:
            unlisted.append(path.name)
    return unlisted


def _refuse_unlisted(folder: Path, names: list[str]) -> None:
    tables = [n for n in names if "/" not in n and table_file(n) is not None]
    nested = [n for n in names if "/" in n]
    other = [n for n in names if n not in tables and n not in nested]
    parts = []
    if tables:
        parts.append(f"table files not listed in {BATCH_MANIFEST}: {', '.join(tables)}")
    if nested:
        parts.append(f"files in a subfolder (table files belong at the top of the folder): {', '.join(nested)}")
    if other:
        parts.append(f"files that are not table files (<table>.csv, .csv.gz or .parquet): {', '.join(other)}")
    raise BatchRejected(f"batch folder {folder.name} holds {'; '.join(parts)}; nothing in it was loaded")


def read_batch(folder: Path) -> Batch:
    """The complete batch in `folder` (no rows read): BatchIncomplete while it is not whole, BatchRejected when
    it cannot be loaded (see the module docstring)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BatchRejected(f"batch folder {folder} does not exist")
    marker, manifest_path = folder / COMPLETE_MARKER, folder / BATCH_MANIFEST
    if not marker.is_file():
        raise BatchIncomplete(f"no {COMPLETE_MARKER} marker yet (its writer writes it last)")
    if not manifest_path.is_file():
        raise BatchIncomplete(f"no {BATCH_MANIFEST} yet")
    manifest_sha256 = file_sha256(manifest_path)
    if marker.read_text(encoding="utf-8", errors="replace").strip() != manifest_sha256:
        raise BatchIncomplete(f"{COMPLETE_MARKER} marks another {BATCH_MANIFEST} (one of them still being copied?)")
    manifest = read_manifest(folder)
    assert manifest is not None
    if manifest.extract_date is None:
        raise BatchRejected(
            f"{BATCH_MANIFEST} in {folder.name} gives no extract_date; it never comes from the data: "
            "write the date of the extract there"
        )
    listed = _listed_files(folder, manifest)
    sha256 = _check_complete(folder, listed)
    unlisted = _unlisted(folder, listed)
    if unlisted:
        _refuse_unlisted(folder, unlisted)
    files = {table: folder / f.name for table, f in listed.items()}
    parts = [f"{files[n].name}:{s}" for n, s in sorted(sha256.items())]
    parts.append(f"{BATCH_MANIFEST}:{manifest_sha256}")
    return Batch(
        directory=folder,
        manifest=manifest,
        files=files,
        sha256=sha256,
        rows={table: f.rows for table, f in listed.items()},
        combined_sha256=hashlib.sha256("\n".join(parts).encode()).hexdigest(),
    )


# ---------------------------------------------------------------------------------------------- which folders


def is_batch(folder: Path) -> bool:
    """A folder is a batch when it holds a file, or nothing at all (a batch still arriving); a folder holding
    only folders is a folder of batches, and a hidden folder is a writer's staging, never a batch."""
    folder = Path(folder)
    if not folder.is_dir() or folder.name.startswith("."):
        return False
    entries = list(folder.iterdir())
    return not entries or any(p.is_file() for p in entries)


def is_stray(folder: Path, name_pattern: str) -> bool:
    """A folder among the batches that is no batch at all: neither a manifest nor a marker, and a name that is not a
    batch name (`ingest.batch_name_pattern`, matched at the start). A batch-named folder without them is a batch
    still arriving, which waits (and holds back the later ones)."""
    folder = Path(folder)
    return (
        not (folder / BATCH_MANIFEST).exists()
        and not (folder / COMPLETE_MARKER).exists()
        and re.match(name_pattern, folder.name) is None
    )


def batches_in(folder: Path, name_pattern: str | None = None) -> list[Path]:
    """The batches directly inside a folder of batches, in name order. Left out: a folder holding only folders
    (logged), a hidden one (a writer's staging, silently) and, given a `name_pattern`, a stray folder (`is_stray`,
    logged by name): none of them holds back the batches after it."""
    found: list[Path] = []
    for child in sorted(p for p in Path(folder).iterdir() if p.is_dir()):
        if name_pattern is not None and not child.name.startswith(".") and is_stray(child, name_pattern):
            log.warning(
                "%s: no %s, no %s and not a batch name (ingest.batch_name_pattern): not a batch, left out",
                child,
                BATCH_MANIFEST,
                COMPLETE_MARKER,
            )
        elif is_batch(child):
            found.append(child)
        elif not child.name.startswith("."):
            log.warning("%s holds folders only: not a batch, left out (name its batches directly)", child)
    return found


def last_changed(folder: Path) -> float:
    """When anything in a batch folder last changed (its own and its entries' modification times, as seconds
    since the epoch): how long a batch not whole yet has waited for its copy to finish."""
    folder = Path(folder)
    return max([folder.stat().st_mtime, *(p.stat().st_mtime for p in folder.rglob("*"))])
